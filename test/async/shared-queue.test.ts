/**
 * Scaling out: two inferd instances share one backlog through a real redis-server (Redis
 * Streams, one consumer group) and a real S3-compatible server for payloads and answers. Every
 * request is run by exactly one of them, once.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { openObjectStore } from '../../src/storage/open-store.js';
import { MODELS, REPO_ROOT, invoke, startServer, type TestServer } from '../helper.js';
import { startHttpGate, type HttpGate } from '../http-gate.js';
import { startRedisServer, type RedisServer } from '../redis-server.js';
import { S3RVER_ENV, startS3Server, type S3Server } from '../s3-server.js';
import { counterValue, finished, submitAsync, until } from './toolkit.js';

Object.assign(process.env, S3RVER_ENV, { AWS_EC2_METADATA_DISABLED: 'true' });

const BUCKET = 'shared';
const REQUESTS = 60;
let s3: S3Server;
let redis: RedisServer;
const servers: TestServer[] = [];
/** The first instance's S3: it holds that instance's answer uploads while `holdingFirst`. */
let gate: HttpGate;
let holdingFirst = true;

before(async () => {
  [s3, redis] = await Promise.all([startS3Server({ buckets: [BUCKET] }), startRedisServer()]);
  gate = await startHttpGate(s3.endpoint, (request) => holdingFirst && request.method === 'PUT' && request.url!.startsWith(`/${BUCKET}/results/`));
  for (let i = 0; i < 2; i++) {
    servers.push(
      await startServer(MODELS.forest, {
        env: {
          AWS_ENDPOINT_URL_S3: i === 0 ? gate.url : s3.endpoint,
          AWS_REGION: 'us-east-1',
          INFERD_ASYNC_OUTPUT_PATH: `s3://${BUCKET}/results`,
          // Inline payloads are staged where every instance can read them.
          INFERD_ASYNC_INPUT_PATH: `s3://${BUCKET}/staged`,
          INFERD_ASYNC_REDIS_URL: redis.url,
          INFERD_ASYNC_MAX_CONCURRENT_INVOCATIONS: '2',
        },
      }),
    );
  }
});

after(async () => {
  for (const server of servers) await server.http.close();
  await gate?.close();
  await redis?.close();
  await s3?.close();
});

describe('async inference on a shared Redis backlog', () => {
  it('two instances drain one backlog: each request run once, by one of them, whichever accepted it', async () => {
    const [a, b] = servers as [TestServer, TestServer];
    const rows = (await readFile(`${REPO_ROOT}test/fixtures/churn-requests.csv`, 'utf8')).trim().split('\n');
    const payloads = Array.from({ length: REQUESTS }, (_, i) => `${rows[i % rows.length]}\n${rows[(i + 1) % rows.length]}\n`);
    // Everything goes to one instance: the other can only get work through the shared queue.
    const ids = await Promise.all(
      payloads.map(async (payload, i) => {
        const accepted = await submitAsync(a.url, { 'content-type': 'text/csv', 'x-amzn-sagemaker-accept': 'text/csv', 'x-amzn-sagemaker-inference-id': `shared-${i}` }, payload);
        assert.equal(accepted.status, 202);
        return accepted.json.InferenceId as string;
      }),
    );
    // The accepting instance could drain the backlog alone on a fast enough machine: its answers
    // wait at the gate until the other has run one, so both provably take part.
    await until(async () => (counterValue(await (await fetch(`${b.url}/metrics`)).text(), 'inferd_async_completed_total') > 0 ? true : undefined), 30_000, 'the other instance to run a request');
    holdingFirst = false;
    gate.release();
    // Either instance answers status queries for any request.
    const statuses = await Promise.all(ids.map((id, i) => finished(i % 2 === 0 ? a.url : b.url, id)));
    assert.deepEqual(new Set(statuses.map((s) => s.status)), new Set(['completed']));
    assert.deepEqual(new Set(statuses.map((s) => s.attempts)), new Set([1]), 'no request was claimed twice');

    const completed = await Promise.all(servers.map(async (server) => counterValue(await (await fetch(`${server.url}/metrics`)).text(), 'inferd_async_completed_total')));
    assert.equal(completed[0]! + completed[1]!, REQUESTS, `runs per instance: ${completed.join(', ')}`);
    assert.ok(completed[1]! > 0, 'the instance that accepted nothing ran some of the backlog');

    const store = openObjectStore(`s3://${BUCKET}/results`, { s3Endpoint: s3.endpoint });
    for (const [i, id] of ids.entries()) {
      const expected = await invoke(b.url, payloads[i]!, { 'content-type': 'text/csv', accept: 'text/csv' });
      assert.equal((await store.getBuffer(`s3://${BUCKET}/results/${id}.out`)).toString('utf8'), expected.text, id);
    }
    // Staged inline payloads are removed once their requests finished.
    const staged: string[] = [];
    for await (const object of store.list(`s3://${BUCKET}/staged/`)) staged.push(object.uri);
    assert.deepEqual(staged, []);
  });

  it('an accept-only instance takes submissions and runs none; a worker started later drains them (scale from zero)', async (t) => {
    const env = (maxConcurrent: string) => ({
      AWS_ENDPOINT_URL_S3: s3.endpoint,
      AWS_REGION: 'us-east-1',
      INFERD_ASYNC_OUTPUT_PATH: `s3://${BUCKET}/from-zero`,
      INFERD_ASYNC_INPUT_PATH: `s3://${BUCKET}/from-zero-staged`,
      INFERD_ASYNC_REDIS_URL: redis.url,
      INFERD_ASYNC_REDIS_KEY_PREFIX: 'from-zero',
      INFERD_ASYNC_MAX_CONCURRENT_INVOCATIONS: maxConcurrent,
    });
    const front = await startServer(MODELS.forest, { env: env('0') });
    t.after(() => front.http.close());
    const rows = (await readFile(`${REPO_ROOT}test/fixtures/churn-requests.csv`, 'utf8')).trim().split('\n');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const accepted = await submitAsync(front.url, { 'content-type': 'text/csv', 'x-amzn-sagemaker-inference-id': `from-zero-${i}` }, `${rows[i]}\n`);
      assert.equal(accepted.status, 202);
      ids.push(accepted.json.InferenceId as string);
    }
    // Several poll intervals pass: nothing runs on the front instance, and it says capacity is missing.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const waiting = await Promise.all(ids.map(async (id) => (await (await fetch(`${front.url}/async-invocations/${id}`)).json()) as { status: string }));
    assert.deepEqual(waiting.map((s) => s.status), ['queued', 'queued', 'queued']);
    const frontMetrics = await (await fetch(`${front.url}/metrics`)).text();
    assert.equal(counterValue(frontMetrics, 'inferd_async_has_backlog_without_capacity'), 1);
    assert.equal(counterValue(frontMetrics, 'inferd_async_backlog_size'), 3);

    const worker = await startServer(MODELS.forest, { env: env('2') });
    t.after(() => worker.http.close());
    const statuses = await Promise.all(ids.map((id) => finished(front.url, id)));
    assert.deepEqual(statuses.map((s) => s.status), ['completed', 'completed', 'completed']);
    assert.equal(counterValue(await (await fetch(`${worker.url}/metrics`)).text(), 'inferd_async_completed_total'), 3);
    assert.equal(counterValue(await (await fetch(`${front.url}/metrics`)).text(), 'inferd_async_completed_total'), 0);
  });
});
