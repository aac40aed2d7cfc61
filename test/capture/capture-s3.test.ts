/**
 * Data capture against a real S3-compatible server process (s3rver): exact once delivery at
 * 100%, binomial sampling at 20%, an S3 outage that loses nothing, an S3 that never answers and
 * holds no request up, and a spool that survives kill -9.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openObjectStore } from '../../src/storage/open-store.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import { freePort, spawnServer, waitUntilReady } from '../child.js';
import { MODELS, invoke, startServer, type TestServer } from '../helper.js';
import { counterValue } from '../async/toolkit.js';
import { S3RVER_ENV, startS3Server, type S3Server } from '../s3-server.js';
import { KEY_LAYOUT, decode, parseRecords } from './records.js';

Object.assign(process.env, S3RVER_ENV, { AWS_EC2_METADATA_DISABLED: 'true' });

const BUCKET = 'capture';
const ROW = Array.from({ length: 20 }, (_, i) => i / 10);
const csv = (i: number) => `${ROW.map((v) => v + i).join(',')}\n`;

let s3: S3Server;
let store: ObjectStore;
before(async () => {
  s3 = await startS3Server({ buckets: [BUCKET] });
  store = openObjectStore(`s3://${BUCKET}/`, { s3Endpoint: s3.endpoint });
});
after(() => s3.close());

async function capturedRecords(prefix: string) {
  const records = [];
  for await (const object of store.list(`s3://${BUCKET}/${prefix}/`)) {
    assert.match(object.uri.slice(`s3://${BUCKET}/${prefix}/`.length), KEY_LAYOUT);
    records.push(...parseRecords((await store.getBuffer(object.uri)).toString('utf8')));
  }
  return records;
}

function captureEnv(prefix: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...S3RVER_ENV,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    INFERD_CAPTURE_ENABLED: 'true',
    INFERD_CAPTURE_DESTINATION: `s3://${BUCKET}/${prefix}`,
    INFERD_CAPTURE_SAMPLING_PERCENTAGE: '100',
    INFERD_CAPTURE_FLUSH_INTERVAL_MS: '100',
    INFERD_ENDPOINT_NAME: 'ep',
    ...extra,
  };
}

/** `count` requests, `concurrency` at a time; each must be answered 200. */
async function send(url: string, count: number, concurrency: number, offset = 0): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < count; i = next++) {
        const res = await invoke(url, csv(i), { 'content-type': 'text/csv', 'x-amzn-sagemaker-inference-id': `id-${offset + i}` });
        assert.equal(res.status, 200, res.text);
      }
    }),
  );
}

async function until(what: string, condition: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function metric(url: string, series: string): Promise<number> {
  return counterValue(await (await fetch(`${url}/metrics`)).text(), series);
}

async function captureCounts(url: string) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const records = (outcome: string) => counterValue(text, `inferd_capture_records_total{outcome="${outcome}"}`);
  return {
    captured: records('captured'),
    dropped: records('dropped'),
    spooled: records('spooled'),
    uploads: counterValue(text, 'inferd_capture_upload_seconds_count'),
    uploadFailures: counterValue(text, 'inferd_capture_upload_failures_total'),
  };
}

interface BlackHole {
  readonly endpoint: string;
  /** Bytes received on connections held so far: an upload was sent and waits for an answer. */
  readonly bytesHeld: number;
  /** Drops the held connections and passes every new one through to the real server. */
  open(): void;
  close(): Promise<void>;
}

/** S3 that accepts connections, reads what is sent, and never answers, until it is opened. */
async function startBlackHole(target: string): Promise<BlackHole> {
  const { hostname, port } = new URL(target);
  const held = new Set<Socket>();
  const connections = new Set<Socket>();
  let bytesHeld = 0;
  let open = false;
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    if (open) {
      const upstream = connect(Number(port), hostname);
      upstream.on('error', () => socket.destroy());
      socket.pipe(upstream).pipe(socket);
      return;
    }
    held.add(socket);
    socket.on('data', (chunk: Buffer) => (bytesHeld += chunk.length));
    socket.on('close', () => held.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: holePort } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${holePort}`,
    get bytesHeld() {
      return bytesHeld;
    },
    open() {
      open = true;
      for (const socket of held) socket.destroy();
    },
    close() {
      // Passed-through connections stay open while the client keeps them alive.
      for (const socket of connections) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('data capture to S3 (s3rver)', () => {
  it('at 100%, every request appears exactly once and decodes back to its bytes', async () => {
    const server: TestServer = await startServer(MODELS.forest, {
      env: captureEnv('full', { INFERD_CAPTURE_SPOOL_DIR: await mkdtemp(join(tmpdir(), 'inferd-spool-')) }),
    });
    await send(server.url, 60, 6);
    await server.http.close();
    const records = await capturedRecords('full');
    assert.equal(records.length, 60);
    assert.equal(new Set(records.map((r) => r.eventMetadata.inferenceId)).size, 60);
    for (const record of records) {
      const i = Number(record.eventMetadata.inferenceId!.slice(3));
      assert.equal(decode(record.captureData.endpointInput!).toString(), csv(i));
      assert.equal(record.captureData.endpointOutput!.observedContentType, 'application/json');
    }
  });

  it('at 20% over 2,000 requests, captures a binomial share', async () => {
    const server = await startServer(MODELS.forest, {
      env: captureEnv('sampled', {
        INFERD_CAPTURE_SAMPLING_PERCENTAGE: '20',
        INFERD_CAPTURE_SPOOL_DIR: await mkdtemp(join(tmpdir(), 'inferd-spool-')),
      }),
    });
    await send(server.url, 2000, 16);
    await server.http.close();
    const records = await capturedRecords('sampled');
    // Mean 400, standard deviation 17.9: ±5 sd fails once in about 3.5 million runs.
    assert.ok(records.length >= 311 && records.length <= 489, `${records.length} of 2000 captured`);
    assert.equal(new Set(records.map((r) => r.eventMetadata.inferenceId)).size, records.length);
  });

  it('loses nothing while S3 refuses connections, and delivers once it is back', async () => {
    const server = await startServer(MODELS.forest, {
      env: captureEnv('outage', { INFERD_CAPTURE_SPOOL_DIR: await mkdtemp(join(tmpdir(), 'inferd-spool-')) }),
    });
    let s3Down = false;
    try {
      await send(server.url, 100, 8, 10_000);
      await s3.stop();
      s3Down = true;
      await send(server.url, 400, 8);
      await until('records are spooled', async () => (await metric(server.url, 'inferd_capture_spool_bytes')) > 0);
      await s3.restart();
      s3Down = false;
      await until('the spool is empty', async () => (await metric(server.url, 'inferd_capture_spool_bytes')) === 0);
      const counts = await captureCounts(server.url);
      assert.equal(counts.captured, 500);
      assert.equal(counts.dropped, 0);
      assert.ok(counts.spooled > 0 && counts.uploadFailures > 0, JSON.stringify(counts));
    } finally {
      if (s3Down) await s3.restart();
      await server.http.close();
    }
    const ids = (await capturedRecords('outage')).map((r) => r.eventMetadata.inferenceId!);
    assert.equal(ids.length, 500, 'every record arrived');
    assert.equal(new Set(ids).size, 500, 'none twice');
  });

  it('answers every request while S3 accepts connections and never responds: records wait or are dropped, none waited on', async (t) => {
    const hole = await startBlackHole(s3.endpoint);
    t.after(() => hole.close());
    const server = await startServer(MODELS.forest, {
      env: captureEnv('black-hole', {
        AWS_ENDPOINT_URL_S3: hole.endpoint,
        INFERD_CAPTURE_SPOOL_DIR: await mkdtemp(join(tmpdir(), 'inferd-spool-')),
        // A few records: the buffer is full while the uploads holding them hang.
        INFERD_CAPTURE_BUFFER_MAX_BYTES: '4096',
      }),
    });
    let held: Awaited<ReturnType<typeof captureCounts>>;
    try {
      await send(server.url, 1, 1);
      await until('an upload waits on S3', async () => hole.bytesHeld > 0);
      await send(server.url, 200, 8, 1);
      held = await captureCounts(server.url);
      t.diagnostic(`while S3 hung: ${JSON.stringify(held)}`);
      assert.equal(held.captured + held.dropped, 201, `every request's record was buffered or dropped: ${JSON.stringify(held)}`);
      assert.ok(held.dropped > 0, `the buffer filled behind the hung uploads: ${JSON.stringify(held)}`);
      assert.deepEqual([held.uploads, held.uploadFailures, held.spooled], [0, 0, 0], 'no upload had ended: no request waited on one');
      // S3 answers again: what was held in memory is delivered on close.
      hole.open();
    } finally {
      await server.http.close();
    }
    const ids = (await capturedRecords('black-hole')).map((r) => r.eventMetadata.inferenceId!);
    assert.equal(ids.length, held.captured, 'every buffered record arrived');
    assert.equal(new Set(ids).size, ids.length, 'none twice');
  });

  it('uploads after kill -9 what the spool held', async () => {
    const spool = await mkdtemp(join(tmpdir(), 'inferd-spool-'));
    const env = captureEnv('crash', { INFERD_CAPTURE_SPOOL_DIR: spool, INFERD_MODEL_DIR: MODELS.forest });
    await s3.stop();
    let port = await freePort();
    const first = await spawnServer(['dist/src/main.js', 'serve', '--port', String(port)], env, port);
    try {
      await waitUntilReady(first);
      await send(first.url, 30, 4);
      await until('every record is spooled', async () => (await readdir(spool)).filter((f) => f.endsWith('.spool')).length > 0 && (await metric(first.url, 'inferd_capture_records_total{outcome="spooled"}')) === 30);
    } finally {
      first.process.kill('SIGKILL');
      await first.exited;
    }
    await s3.restart();
    port = await freePort();
    const second = await spawnServer(['dist/src/main.js', 'serve', '--port', String(port)], env, port);
    try {
      await waitUntilReady(second);
      await until('the spool is uploaded', async () => (await readdir(spool)).filter((f) => f.endsWith('.spool')).length === 0);
    } finally {
      second.process.kill('SIGTERM');
      await second.exited;
    }
    const ids = (await capturedRecords('crash')).map((r) => r.eventMetadata.inferenceId);
    assert.equal(ids.length, 30);
    assert.equal(new Set(ids).size, 30);
  });
});

describe('inferd monitor on what was captured to S3', () => {
  it('finds no violation for requests drawn from the training distribution', async () => {
    const { readFile, mkdtemp: makeTemp } = await import('node:fs/promises');
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const { REPO_ROOT } = await import('../helper.js');
    const run = promisify(execFile);
    const lines = (await readFile(`${REPO_ROOT}test/fixtures/churn-requests.csv`, 'utf8')).trim().split('\n');
    const server = await startServer(MODELS.forest, {
      env: captureEnv('monitored', { INFERD_CAPTURE_SPOOL_DIR: await makeTemp(join(tmpdir(), 'inferd-spool-')) }),
    });
    const from = new Date(Date.now() - 60_000).toISOString();
    for (let i = 0; i < lines.length; i += 4) {
      const res = await invoke(server.url, `${lines.slice(i, i + 4).join('\n')}\n`, { 'content-type': 'text/csv' });
      assert.equal(res.status, 200);
    }
    await server.http.close();
    const to = new Date(Date.now() + 60_000).toISOString();

    const work = await makeTemp(join(tmpdir(), 'inferd-monitor-'));
    const env = { ...process.env, AWS_ENDPOINT_URL_S3: s3.endpoint };
    const cli = (...args: string[]) => run(process.execPath, ['dist/src/main.js', 'monitor', ...args], { cwd: REPO_ROOT, env });
    await cli('baseline', '--data', `${REPO_ROOT}test/fixtures/churn-train.csv`, '--label-column', 'churn', '--out', join(work, 'baseline'));
    const { stdout } = await cli('check', '--capture', `s3://${BUCKET}/monitored`, '--endpoint', 'ep', '--baseline', join(work, 'baseline'), '--from', from, '--to', to, '--out', join(work, 'report'));
    assert.match(stdout, /200 rows from 50 records/);
    const report = JSON.parse(await readFile(join(work, 'report', 'constraint_violations.json'), 'utf8')) as { violations: unknown[] };
    assert.deepEqual(report.violations, []);
  });
});
