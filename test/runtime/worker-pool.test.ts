/**
 * The worker pool with real ONNX Runtime workers on the slow model: a task never waits behind a
 * long one while an instance is idle; a shrink lets the leaving worker finish its task; closing
 * while a worker still loads waits for it (terminating it mid warm-up would abort the process).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { WorkerPool } from '../../src/runtime/worker-pool.js';
import type { InferenceOutcome, WorkerOptions } from '../../src/runtime/worker-protocol.js';
import { MODELS } from '../helper.js';

const WORKER: WorkerOptions = {
  onnxPath: `${MODELS.slow}/model.onnx`,
  executionProvider: 'cpu',
  deviceId: 0,
  requireGpu: false,
  intraOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  outputs: undefined,
};

/** `rows` rows of the slow model's input: 6,000 are most of a second of one core. */
const rows = (count: number) => ({ x: { dtype: 'float32' as const, dims: [count, 256], data: new Float32Array(count * 256).fill(0.5) } });

const workerErrors: Error[] = [];
const pools: WorkerPool[] = [];
async function startPool(size: number): Promise<WorkerPool> {
  const { pool } = await WorkerPool.start(size, WORKER, (error) => workerErrors.push(error));
  pools.push(pool);
  return pool;
}

after(async () => {
  await Promise.all(pools.map((pool) => pool.close()));
  assert.deepEqual(workerErrors, []);
});

describe('WorkerPool', () => {
  it('sends each task to the first free instance: short ones pass a long one on the other instance', async () => {
    const pool = await startPool(2);
    const finished: string[] = [];
    const track = (name: string, outcome: Promise<InferenceOutcome>) =>
      outcome.then((result) => {
        assert.ok(result.ok, name);
        finished.push(name);
      });
    const long = track('long', pool.run(rows(6000)));
    // Three at a time: with the long one running, two of them always wait for an instance.
    const shorts = (async () => {
      for (let round = 0; round < 3; round += 1) {
        await Promise.all([0, 1, 2].map((i) => track(`short ${round}.${i}`, pool.run(rows(10)))));
      }
    })();
    await Promise.all([long, shorts]);
    assert.equal(finished.at(-1), 'long', `order: ${finished.join(', ')}`);
  });

  it('shrinks by letting the leaving instance finish its task, then closing it', async () => {
    const pool = await startPool(2);
    const tasks = [pool.run(rows(6000)), pool.run(rows(6000))];
    // Both instances are busy: the one that leaves is running a task.
    assert.equal(pool.busy, 2);
    const shrunk = pool.shrink();
    assert.equal(pool.size, 1);
    const outcomes = await Promise.all(tasks);
    assert.deepEqual(outcomes.map((o) => o.ok), [true, true]);
    assert.equal(await shrunk, true);
    assert.equal((await pool.run(rows(10))).ok, true);
    assert.equal(await pool.shrink(), false, 'the last instance stays');
  });

  it('grows by an instance that takes work once warmed up, and closes safely while one still loads', async () => {
    const pool = await startPool(1);
    await pool.grow();
    assert.equal(pool.size, 2);
    const loading = pool.grow();
    assert.equal(pool.starting, 1);
    await pool.close();
    await loading;
    assert.equal(pool.size, 0);
  });
});
