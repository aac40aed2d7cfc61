/**
 * Data capture against a real S3-compatible server process (s3rver): exact once delivery at
 * 100%, binomial sampling at 20%, an S3 outage that loses nothing and does not slow requests,
 * and a spool that survives kill -9.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openObjectStore } from '../../src/storage/open-store.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import { freePort, spawnServer, waitUntilReady } from '../child.js';
import { MODELS, invoke, startServer, type TestServer } from '../helper.js';
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

async function send(url: string, count: number, concurrency: number, offset = 0): Promise<number[]> {
  const latencies: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < count; i = next++) {
        const started = performance.now();
        const res = await invoke(url, csv(i), { 'content-type': 'text/csv', 'x-amzn-sagemaker-inference-id': `id-${offset + i}` });
        latencies.push(performance.now() - started);
        assert.equal(res.status, 200, res.text);
      }
    }),
  );
  return latencies.sort((a, b) => a - b);
}

const p99 = (sorted: number[]) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!;

async function until(what: string, condition: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function metric(url: string, series: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
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

  it('loses nothing and slows nothing while S3 is down, and delivers once it is back', async (t) => {
    const server = await startServer(MODELS.forest, {
      env: captureEnv('outage', { INFERD_CAPTURE_SPOOL_DIR: await mkdtemp(join(tmpdir(), 'inferd-spool-')) }),
    });
    let s3Down = false;
    try {
      await send(server.url, 100, 8, 10_000);
      const normal = await send(server.url, 400, 8);
      await s3.stop();
      s3Down = true;
      const outage = await send(server.url, 400, 8, 400);
      await until('records are spooled', async () => (await metric(server.url, 'inferd_capture_spool_bytes')) > 0);
      await s3.restart();
      s3Down = false;
      await until('the spool is empty', async () => (await metric(server.url, 'inferd_capture_spool_bytes')) === 0);
      // 10% of p99, plus 50 ms for the noise of a shared 2-core machine (a GC or a neighbour can
      // add tens of ms to a 400-request p99). Capture that waited on S3 would add the SDK's
      // retry backoff, hundreds of milliseconds, to every sampled request.
      t.diagnostic(`p99 ${p99(normal).toFixed(1)} ms before the outage, ${p99(outage).toFixed(1)} ms during it`);
      assert.ok(p99(outage) <= p99(normal) * 1.1 + 50, `p99 ${p99(outage).toFixed(1)} ms during the outage, ${p99(normal).toFixed(1)} ms before`);
    } finally {
      if (s3Down) await s3.restart();
      await server.http.close();
    }
    const ids = (await capturedRecords('outage')).map((r) => r.eventMetadata.inferenceId!);
    assert.equal(ids.length, 900, 'every record arrived');
    assert.equal(new Set(ids).size, 900, 'none twice');
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
