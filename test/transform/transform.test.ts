/**
 * `inferd transform` end to end, on local files and on a real S3-compatible server process
 * (s3rver): answers equal a direct `session.run` of the same rows; MultiRecord equals
 * SingleRecord byte for byte; SageMaker's join and filter examples; a bad record fails its file
 * only; a job killed mid-way resumes to byte-identical answers; gzip inputs; shards.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import { runTransformCommand } from '../../src/modes/transform/cli.js';
import type { TransformSummary } from '../../src/modes/transform/job.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import { openObjectStore } from '../../src/storage/open-store.js';
import { joinUri, parseUri } from '../../src/storage/uri.js';
import { spawnServer } from '../child.js';
import { MODELS, REPO_ROOT, startServer } from '../helper.js';
import { startHttpGate } from '../http-gate.js';
import { S3RVER_ENV, startS3Server, type S3Server } from '../s3-server.js';

Object.assign(process.env, S3RVER_ENV, { AWS_EC2_METADATA_DISABLED: 'true' });

const BUCKET = 'transform';
const REQUESTS_CSV = `${REPO_ROOT}test/fixtures/churn-requests.csv`;

interface Place {
  readonly name: string;
  /** A fresh, empty prefix for one test. */
  root(): Promise<string>;
  readonly store: () => ObjectStore;
  readonly env: () => Record<string, string>;
}

let s3: S3Server;
const places: Place[] = [
  {
    name: 'local files',
    root: () => mkdtemp(join(tmpdir(), 'inferd-transform-')),
    store: () => openObjectStore('/', {}),
    env: () => ({}),
  },
  {
    name: 's3rver',
    root: async () => `s3://${BUCKET}/${randomUUID()}`,
    store: () => openObjectStore(`s3://${BUCKET}/`, { s3Endpoint: s3.endpoint }),
    env: () => ({ AWS_ENDPOINT_URL_S3: s3.endpoint }),
  },
];

before(async () => {
  s3 = await startS3Server({ buckets: [BUCKET] });
});
after(() => s3.close());

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly summary: TransformSummary | undefined;
}

async function transform(place: Place, args: readonly string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await runTransformCommand(['--model-dir', MODELS.forest, ...args], {
    stdout: (text) => (stdout += text),
    stderr: { write: (text: string) => (stderr += text) },
    env: { SAGEMAKER_CONTAINER_LOG_LEVEL: 'silent', SAGEMAKER_MODEL_SERVER_WORKERS: '1', ...place.env() },
  });
  const summary = stdout === '' ? undefined : (JSON.parse(stdout) as TransformSummary);
  return { code, stdout, stderr, summary };
}

async function put(place: Place, uri: string, body: string | Buffer): Promise<void> {
  await place.store().put(uri, body);
}

async function read(place: Place, uri: string): Promise<string> {
  return (await place.store().getBuffer(uri)).toString('utf8');
}

/** Object names under `prefix`, relative to it. */
async function listed(place: Place, prefix: string): Promise<string[]> {
  const base = parseUri(`${prefix}/`);
  const baseKey = base.scheme === 's3' ? base.key : base.path;
  const names: string[] = [];
  for await (const object of place.store().list(`${prefix}/`)) {
    const location = parseUri(object.uri);
    names.push((location.scheme === 's3' ? location.key : location.path).slice(baseKey.length));
  }
  return names;
}

/**
 * The forest's answer to each row, from `session.run` in this thread with inferd's session
 * options (one thread: the trees are summed in one order), as inferd's CSV writes it.
 */
async function directAnswers(rows: readonly number[][]): Promise<string[]> {
  const session = await ort.InferenceSession.create(`${MODELS.forest}/model.onnx`, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    const features = new ort.Tensor('float32', Float32Array.from(rows.flat()), [rows.length, 20]);
    const result = await session.run({ features });
    const labels = result.label!.data as BigInt64Array;
    const probabilities = result.probabilities!.data as Float32Array;
    return rows.map((_, i) => [String(labels[i]), ...Array.from(probabilities.subarray(i * 3, i * 3 + 3), String)].join(','));
  } finally {
    await session.release();
  }
}

let requestsCsv: string;
let rows: number[][];
let expected: string[];
before(async () => {
  requestsCsv = await readFile(REQUESTS_CSV, 'utf8');
  rows = requestsCsv.trim().split('\n').map((line) => line.split(',').map(Number));
  expected = await directAnswers(rows);
});

for (const place of places) {
  describe(`inferd transform on ${place.name}`, () => {
    it('answers every row of churn-requests.csv as a direct session.run does', async () => {
      const root = await place.root();
      await put(place, joinUri(root, 'in/requests.csv'), requestsCsv);
      const run = await transform(place, ['--input', joinUri(root, 'in'), '--output', joinUri(root, 'out'), '--split-type', 'Line', '--assemble-with', 'Line']);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(await read(place, joinUri(root, 'out/requests.csv.out')), expected.map((line) => `${line}\n`).join(''));
      assert.deepEqual(run.summary?.files, { total: 1, done: 1, skipped: 0, failed: 0 });
      assert.equal(run.summary?.records, rows.length);
      const summary = JSON.parse(await read(place, joinUri(root, 'out/transform-summary.json'))) as TransformSummary;
      assert.equal(summary.records, rows.length);
    });

    it('gives the same bytes with MultiRecord under a small payload limit as with SingleRecord', async () => {
      const root = await place.root();
      await put(place, joinUri(root, 'in/requests.csv'), requestsCsv);
      const common = ['--input', joinUri(root, 'in'), '--split-type', 'Line', '--assemble-with', 'Line'];
      const single = await transform(place, [...common, '--output', joinUri(root, 'single'), '--batch-strategy', 'SingleRecord']);
      // 1,000 bytes: about six 150-byte rows a mini-batch, so 30-odd mini-batches for the file.
      const multi = await transform(place, [...common, '--output', joinUri(root, 'multi'), '--batch-strategy', 'MultiRecord', '--max-payload-mb', '0.001']);
      assert.equal(single.code, 0, single.stderr);
      assert.equal(multi.code, 0, multi.stderr);
      const singleBytes = await read(place, joinUri(root, 'single/requests.csv.out'));
      assert.equal(await read(place, joinUri(root, 'multi/requests.csv.out')), singleBytes);
      assert.equal(singleBytes, expected.map((line) => `${line}\n`).join(''));
    });

    it('filters and joins CSV as SageMaker documents it: $[1:] in, JoinSource=Input, $[0,-1] out', async () => {
      const root = await place.root();
      const withIds = rows.map((row, i) => `id-${i},${row.join(',')}`).join('\n');
      await put(place, joinUri(root, 'in/with-ids.csv'), `${withIds}\n`);
      const run = await transform(place, [
        ...['--input', joinUri(root, 'in'), '--output', joinUri(root, 'out'), '--split-type', 'Line', '--assemble-with', 'Line'],
        ...['--input-filter', '$[1:]', '--join-source', 'Input', '--output-filter', '$[0,-1]'],
      ]);
      assert.equal(run.code, 0, run.stderr);
      const lastProbability = expected.map((line, i) => `id-${i},${line.split(',').at(-1)}\n`).join('');
      assert.equal(await read(place, joinUri(root, 'out/with-ids.csv.out')), lastProbability);
    });

    it('joins JSON records under SageMakerOutput', async () => {
      const root = await place.root();
      const records = rows.slice(0, 20).map((row, i) => JSON.stringify({ id: i, features: row }));
      await put(place, joinUri(root, 'in/records.jsonl'), `${records.join('\n')}\n`);
      const run = await transform(place, [
        ...['--input', joinUri(root, 'in'), '--output', joinUri(root, 'out'), '--split-type', 'Line', '--assemble-with', 'Line'],
        ...['--content-type', 'application/jsonlines', '--input-filter', '$.features', '--join-source', 'Input', '--output-filter', "$['id','SageMakerOutput']"],
      ]);
      assert.equal(run.code, 0, run.stderr);
      const lines = (await read(place, joinUri(root, 'out/records.jsonl.out'))).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
      assert.equal(lines.length, 20);
      lines.forEach((line, i) => {
        const [label, ...probabilities] = expected[i]!.split(',').map(Number);
        assert.deepEqual(line, { id: i, SageMakerOutput: { label, probabilities } });
      });
    });

    it('fails only the file with a malformed record, and says which record', async () => {
      const root = await place.root();
      const lines = requestsCsv.trim().split('\n');
      lines[41] = lines[41]!.replace(/^[^,]+/, 'not-a-number');
      await put(place, joinUri(root, 'in/bad.csv'), `${lines.join('\n')}\n`);
      await put(place, joinUri(root, 'in/good.csv'), requestsCsv);
      const run = await transform(place, ['--input', joinUri(root, 'in'), '--output', joinUri(root, 'out'), '--split-type', 'Line', '--assemble-with', 'Line']);
      assert.equal(run.code, 1);
      assert.deepEqual(run.summary?.files, { total: 2, done: 1, skipped: 0, failed: 1 });
      assert.match(run.summary!.failures[0]!.input, /bad\.csv$/);
      assert.match(run.summary!.failures[0]!.reason, /not-a-number/);
      assert.match(run.stderr, /bad\.csv/);
      assert.deepEqual((await listed(place, joinUri(root, 'out'))).sort(), ['good.csv.out', 'transform-summary.json']);
    });

    it('fails a file whose first record is over the payload limit, and goes on with the others', async () => {
      const root = await place.root();
      await put(place, joinUri(root, 'in/a-wide.csv'), `${'1,'.repeat(600)}1\n${requestsCsv}`);
      await put(place, joinUri(root, 'in/b.csv'), requestsCsv);
      const run = await transform(place, [
        ...['--input', joinUri(root, 'in'), '--output', joinUri(root, 'out'), '--split-type', 'Line', '--assemble-with', 'Line'],
        ...['--max-payload-mb', '0.001'],
      ]);
      assert.equal(run.code, 1, run.stderr);
      assert.deepEqual(run.summary?.files, { total: 2, done: 1, skipped: 0, failed: 1 });
      assert.match(run.summary!.failures[0]!.reason, /line 1 is longer than the 1048-byte/);
      assert.deepEqual((await listed(place, joinUri(root, 'out'))).sort(), ['b.csv.out', 'transform-summary.json']);
    });

    it('refuses inputs it cannot answer apart: nothing to read, an output inside the input, two inputs for one .out', async () => {
      const root = await place.root();
      const empty = await transform(place, ['--input', joinUri(root, 'nothing'), '--output', joinUri(root, 'out')]);
      assert.equal(empty.code, 1);
      assert.match(empty.stderr, /no objects found/);

      await put(place, joinUri(root, 'p/data-2.csv'), requestsCsv);
      await put(place, joinUri(root, 'p/data/data-2.csv'), requestsCsv);
      const inside = await transform(place, ['--input', joinUri(root, 'p'), '--output', joinUri(root, 'p/out')]);
      assert.equal(inside.code, 1);
      assert.match(inside.stderr, /overlaps/);
      const manifest = joinUri(root, 'manifest.json');
      await put(place, manifest, JSON.stringify([{ prefix: `${joinUri(root, 'p')}/` }, 'data-2.csv', '/data-2.csv']));
      const twice = await transform(place, ['--manifest', manifest, '--output', joinUri(root, 'out')]);
      assert.equal(twice.code, 1);
      assert.match(twice.stderr, /would both be answered in/);
    });

    it('reads gzip inputs', async () => {
      const root = await place.root();
      await put(place, joinUri(root, 'in/requests.csv.gz'), gzipSync(requestsCsv));
      const run = await transform(place, [
        ...['--input', joinUri(root, 'in'), '--output', joinUri(root, 'out'), '--split-type', 'Line', '--assemble-with', 'Line'],
        ...['--compression', 'Gzip'],
      ]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(await read(place, joinUri(root, 'out/requests.csv.gz.out')), expected.map((line) => `${line}\n`).join(''));
    });

    it('covers every file exactly once with shards 0, 1 and 2 of 3', async () => {
      const root = await place.root();
      const names = Array.from({ length: 12 }, (_, i) => `part-${String(i).padStart(2, '0')}.csv`);
      for (const [i, name] of names.entries()) await put(place, joinUri(root, `in/${name}`), `${rows[i]!.join(',')}\n`);
      const runs = [];
      for (const shard of [0, 1, 2]) {
        runs.push(await transform(place, ['--input', joinUri(root, 'in'), '--output', joinUri(root, 'out'), '--split-type', 'Line', '--shard-index', String(shard), '--shard-count', '3']));
      }
      assert.deepEqual(runs.map((run) => run.code), [0, 0, 0]);
      assert.equal(runs.reduce((sum, run) => sum + run.summary!.files.done, 0), names.length);
      const outputs = await listed(place, joinUri(root, 'out'));
      assert.deepEqual(outputs.filter((name) => name.endsWith('.out')).sort(), names.map((name) => `${name}.out`));
      for (const [i, name] of names.entries()) assert.equal(await read(place, joinUri(root, `out/${name}.out`)), `${expected[i]}\n`);
    });

    it('resumes a job killed mid-way (kill -9) to byte-identical outputs', async (t) => {
      const root = await place.root();
      const files = 24;
      const inputName = (i: number) => `f${String(i).padStart(2, '0')}.csv`;
      for (let i = 0; i < files - 1; i++) await put(place, joinUri(root, `in/${inputName(i)}`), requestsCsv);
      // The last file in order starts with a record the first run can never get answered.
      const STUCK = '424242';
      await put(place, joinUri(root, `in/${inputName(files - 1)}`), requestsCsv.replace(/^[^,]+/, STUCK));
      const common = [
        ...['dist/src/main.js', 'transform', '--input', joinUri(root, 'in'), '--split-type', 'Line', '--assemble-with', 'Line'],
        ...['--batch-strategy', 'SingleRecord', '--max-concurrent-transforms', '1'],
      ];
      const args = [...common, '--model-dir', MODELS.forest];
      const env = { ...S3RVER_ENV, AWS_EC2_METADATA_DISABLED: 'true', SAGEMAKER_CONTAINER_LOG_LEVEL: 'silent', SAGEMAKER_MODEL_SERVER_WORKERS: '1', ...place.env() };

      // The first run sends its records to a server through a gate that never answers that
      // record: the job provably cannot finish, and it is killed once it waits there.
      const server = await startServer(MODELS.forest, { env: { SAGEMAKER_BATCH: 'true' } });
      t.after(() => server.http.close());
      const gate = await startHttpGate(server.url, (_request, body) => body.includes(STUCK));
      t.after(() => gate.close());
      const first = await spawnServer([...common, '--endpoint', gate.url, '--output', joinUri(root, 'out')], env);
      const deadline = Date.now() + 60_000;
      while (gate.held === 0) {
        assert.equal(first.process.exitCode, null, `the job ended while a record was unanswered:\n${first.output()}`);
        assert.ok(Date.now() < deadline, `the job never reached the last file:\n${first.output()}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      first.process.kill('SIGKILL');
      await first.exited;
      // Files are taken in order, two at a time: every file before the last two is complete.
      const before = (await listed(place, joinUri(root, 'out'))).filter((name) => name.endsWith('.out'));
      assert.ok(before.length >= files - 2 && !before.includes(`${inputName(files - 1)}.out`), `killed with ${before.join(', ')} written`);

      const resumed = await spawnServer([...args, '--output', joinUri(root, 'out')], env);
      assert.equal((await resumed.exited).code, 0, resumed.output());
      const summary = JSON.parse(await read(place, joinUri(root, 'out/transform-summary.json'))) as TransformSummary;
      assert.ok(summary.files.skipped >= before.length, `skipped ${summary.files.skipped}, ${before.length} were complete`);
      assert.equal(summary.files.skipped + summary.files.done, files);

      const fresh = await spawnServer([...args, '--output', joinUri(root, 'fresh')], env);
      assert.equal((await fresh.exited).code, 0, fresh.output());
      const answers = (await listed(place, joinUri(root, 'out'))).filter((name) => name.endsWith('.out')).sort();
      assert.equal(answers.length, files);
      for (const name of answers) assert.equal(await read(place, joinUri(root, `out/${name}`)), await read(place, joinUri(root, `fresh/${name}`)), name);
    });
  });
}

describe('inferd transform --endpoint', () => {
  it('sends the mini-batches to a running server in batch mode and gets the same bytes', async () => {
    const server = await startServer(MODELS.forest, { env: { SAGEMAKER_BATCH: 'true' } });
    after(() => server.http.close());
    const place = places[0]!;
    const root = await place.root();
    await put(place, joinUri(root, 'in/requests.csv'), requestsCsv);
    let stdout = '';
    const code = await runTransformCommand(
      ['--endpoint', server.url, '--input', joinUri(root, 'in'), '--output', joinUri(root, 'out'), '--split-type', 'Line', '--assemble-with', 'Line', '--max-payload-mb', '0.002'],
      { stdout: (text) => (stdout += text), stderr: { write: () => true }, env: {} },
    );
    assert.equal(code, 0, stdout);
    assert.equal(await read(place, joinUri(root, 'out/requests.csv.out')), expected.map((line) => `${line}\n`).join(''));
  });

  it('refuses bad options with exit 2 before reading anything', async () => {
    const place = places[0]!;
    const cases = [
      ['--input', '/tmp/x', '--output', '/tmp/y', '--split-type', 'Bytes'],
      ['--input', '/tmp/x', '--output', '/tmp/y', '--batch-strategy', 'MultiRecord'],
      ['--output', '/tmp/y'],
      ['--input', '/tmp/x', '--output', '/tmp/y', '--join-source', 'Input', '--split-type', 'Line'],
      ['--input', '/tmp/x', '--output', '/tmp/y', '--shard-index', '3', '--shard-count', '3'],
      ['--input', '/tmp/x', '--output', '/tmp/y', '--shard-index', ''],
      ['--input', '/tmp/x', '--output', '/tmp/y', '--max-payload-mb', ''],
    ];
    for (const args of cases) {
      const run = await transform(place, args);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    }
  });

  it('sends a whole object over 1 MB with SplitType None (SageMaker\'s 6 MB limit)', async () => {
    const place = places[0]!;
    const root = await place.root();
    const big = requestsCsv.repeat(60);
    assert.ok(big.length > 1.5 * 1024 * 1024);
    await put(place, joinUri(root, 'in/big.csv'), big);
    const run = await transform(place, ['--input', joinUri(root, 'in'), '--output', joinUri(root, 'out')]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(await read(place, joinUri(root, 'out/big.csv.out')), expected.map((line) => `${line}\n`).join('').repeat(60));
  });
});
