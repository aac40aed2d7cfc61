/**
 * Accepted means durable: a server child process is killed with SIGKILL while it works through
 * 50 accepted requests, and restarted on the same state directory; every request then completes,
 * and each answer is there exactly once, under its inference id, in a real S3-compatible server.
 * The kill lands after exactly 10 answers, whatever the speed of the machine: the first process
 * reaches S3 through a gate that passes 10 answer uploads and holds the 11th forever.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openObjectStore } from '../../src/storage/open-store.js';
import { freePort, spawnServer, waitUntilReady, type Child } from '../child.js';
import { MODELS, invoke } from '../helper.js';
import { startHttpGate } from '../http-gate.js';
import { writeNpy } from '../npy.js';
import { S3RVER_ENV, startS3Server, type S3Server } from '../s3-server.js';
import { asyncStatus, finished, submitAsync, until } from './toolkit.js';

Object.assign(process.env, S3RVER_ENV, { AWS_EC2_METADATA_DISABLED: 'true' });

const OUT = 'crash-out';
const REQUESTS = 50;
const ANSWERED_BEFORE_KILL = 10;
let s3: S3Server;
let stateDir: string;
const children: Child[] = [];

before(async () => {
  s3 = await startS3Server({ buckets: [OUT] });
  stateDir = await mkdtemp(join(tmpdir(), 'inferd-async-crash-'));
});

after(async () => {
  for (const child of children) child.process.kill('SIGKILL');
  await s3?.close();
  await rm(stateDir, { recursive: true, force: true });
});

async function start(port: number, s3Endpoint: string): Promise<Child> {
  const child = await spawnServer(
    ['dist/src/main.js', 'serve'],
    {
      ...S3RVER_ENV,
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_ENDPOINT_URL_S3: s3Endpoint,
      AWS_REGION: 'us-east-1',
      SAGEMAKER_BIND_TO_PORT: String(port),
      INFERD_HOST: '127.0.0.1',
      INFERD_MODEL_DIR: MODELS.slow,
      SAGEMAKER_MODEL_SERVER_WORKERS: '1',
      INFERD_ASYNC_OUTPUT_PATH: `s3://${OUT}/results`,
      INFERD_ASYNC_STATE_DIR: stateDir,
      INFERD_ASYNC_MAX_CONCURRENT_INVOCATIONS: '1',
      // A dead instance's leases run out quickly, so the restarted one takes its work back.
      INFERD_ASYNC_LEASE_S: '1',
    },
    port,
  );
  children.push(child);
  await waitUntilReady(child);
  return child;
}

describe('async inference survives kill -9', () => {
  it('completes all 50 accepted requests once after a restart, none lost, none doubled', async (t) => {
    const port = await freePort();
    // Each request different values, so that an answer in the wrong place shows.
    const payloads = Array.from({ length: REQUESTS }, (_, i) => writeNpy('<f4', [1000, 256], new Float32Array(1000 * 256).fill(i / REQUESTS)));
    const NPY = { 'content-type': 'application/x-npy', 'x-amzn-sagemaker-accept': 'application/x-npy' };

    let uploads = 0;
    const gate = await startHttpGate(s3.endpoint, (request) => request.method === 'PUT' && request.url!.startsWith(`/${OUT}/results/`) && ++uploads > ANSWERED_BEFORE_KILL);
    t.after(() => gate.close());
    const first = await start(port, gate.url);
    const ids: string[] = [];
    for (const [i, payload] of payloads.entries()) {
      const accepted = await submitAsync(first.url, { ...NPY, 'x-amzn-sagemaker-inference-id': `crash-${i}` }, payload);
      assert.equal(accepted.status, 202);
      ids.push(accepted.json.InferenceId as string);
    }
    // The one invocation slot is held by the 11th request, its answer upload hanging at the gate.
    const completedBefore = await until(
      async () => {
        const statuses = await Promise.all(ids.map((id) => asyncStatus(first.url, id)));
        const completed = new Set(statuses.filter((s) => s?.status === 'completed').map((s) => s!.inferenceId));
        return gate.held === 1 && completed.size === ANSWERED_BEFORE_KILL ? completed : undefined;
      },
      60_000,
      `${ANSWERED_BEFORE_KILL} requests completed and the next one's upload held`,
    );
    first.process.kill('SIGKILL');
    await first.exited;
    assert.deepEqual([...completedBefore].sort(), ids.slice(0, ANSWERED_BEFORE_KILL).sort(), 'oldest first');

    const second = await start(port, s3.endpoint);
    const statuses = await Promise.all(ids.map((id) => finished(second.url, id, 60_000)));
    assert.deepEqual(new Set(statuses.map((s) => s.status)), new Set(['completed']));
    // What had completed before the kill was not run again; the one cut short ran again, once more.
    assert.deepEqual(statuses.map((s) => s.attempts), ids.map((_, i) => (i === ANSWERED_BEFORE_KILL ? 2 : 1)));

    const store = openObjectStore(`s3://${OUT}/results`, { s3Endpoint: s3.endpoint });
    const keys: string[] = [];
    for await (const object of store.list(`s3://${OUT}/results/`)) keys.push(object.uri);
    assert.deepEqual(keys.sort(), ids.map((id) => `s3://${OUT}/results/${id}.out`).sort());
    for (const [i, id] of ids.entries()) {
      const expected = await invoke(second.url, payloads[i]!, { 'content-type': 'application/x-npy', accept: 'application/x-npy' });
      assert.deepEqual(new Uint8Array(await store.getBuffer(`s3://${OUT}/results/${id}.out`)), expected.bytes, id);
    }
    second.process.kill('SIGTERM');
    await second.exited;
  });
});
