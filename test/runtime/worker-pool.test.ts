/**
 * The worker pool: where a task waits when every instance is busy, in the pool's queue or inside a
 * worker (with a stand-in worker whose tasks end when the test opens their gates, so the order
 * does not depend on the machine's speed); with real ONNX Runtime workers on the slow model, a shrink lets the
 * leaving worker finish its task, a grown one takes work once warmed up, and closing while a
 * worker still loads waits for it (terminating it mid warm-up would abort the process).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { NamedTensors } from '../../src/codecs/tensor.js';
import { batchLayout, batchMembers, mergeInputs, splitOutputs } from '../../src/runtime/batch-merge.js';
import { BACKENDS } from '../../src/runtime/backends.js';
import { MOVE_OUTPUTS_MIN_BYTES } from '../../src/runtime/worker-entry.js';
import { WorkerPool } from '../../src/runtime/worker-pool.js';
import type { InferenceOutcome, InferenceTask, WorkerOptions } from '../../src/runtime/worker-protocol.js';
import { MODELS } from '../helper.js';

const WORKER: WorkerOptions = {
  modelPath: `${MODELS.slow}/model.onnx`,
  executionProvider: 'cpu',
  deviceId: 0,
  requireGpu: false,
  intraOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  outputs: undefined,
};

/** `rows` rows of the slow model's input: 6,000 are most of a second of one core. */
const rows = (count: number): InferenceTask => ({ inputs: { x: { dtype: 'float32', dims: [count, 256], data: new Float32Array(count * 256).fill(0.5) } } });

const GATE_WORKER = fileURLToPath(new URL('./gate-worker.js', import.meta.url));
/** The gate worker's gates, shared with its threads: task `gated(i)` runs until `open(i)`; 0 never waits. */
const gates = new Int32Array(new SharedArrayBuffer(16 * Int32Array.BYTES_PER_ELEMENT));
const open = (gate: number) => {
  Atomics.store(gates, gate, 1);
  Atomics.notify(gates, gate);
};
/** A gated task of `size` floats (the gate first): its bytes are what the pool weighs. */
const gated = (gate: number, size = 1): InferenceTask => {
  const data = new Float32Array(size);
  data[0] = gate;
  return { inputs: { x: { dtype: 'float32', dims: [size], data } } };
};
function threadOf(outcome: InferenceOutcome): number {
  assert.ok(outcome.ok, outcome.ok ? '' : outcome.message);
  return outcome.outputs.thread!.data[0] as number;
}

const workerErrors: Error[] = [];
const pools: WorkerPool[] = [];
async function startPool(size: number, workerFile?: string): Promise<WorkerPool> {
  const worker = workerFile ? ({ ...WORKER, gates: gates.buffer } as WorkerOptions) : WORKER;
  const { pool } = await WorkerPool.start(size, worker, (error) => workerErrors.push(error), workerFile ?? BACKENDS.onnx.workerFile);
  pools.push(pool);
  return pool;
}

after(async () => {
  // A failed test may leave a gated task running, and closing waits for it.
  for (let gate = 0; gate < gates.length; gate += 1) open(gate);
  await Promise.all(pools.map((pool) => pool.close()));
  assert.deepEqual(workerErrors, []);
});

describe('WorkerPool', () => {
  it('by default sends each task to the first free instance: none waits behind a long one while another is free', { timeout: 20_000 }, async () => {
    const pool = await startPool(2, GATE_WORKER);
    const long = pool.run(gated(9));
    const shorts = [10, 11, 12].map((gate) => pool.run(gated(gate)));
    // Tasks 9 and 10 run, 11 and 12 wait in the pool's one queue.
    assert.equal(pool.busy, 2);
    const threads: number[] = [];
    for (const [i, short] of shorts.entries()) {
      open(10 + i);
      threads.push(threadOf(await short));
    }
    // Task 9 holds its instance throughout: the short ones all ran on the other.
    assert.equal(new Set(threads).size, 1);
    open(9);
    assert.notEqual(threadOf(await long), threads[0]);
  });

  it('with two tasks per worker, hands a task to an idle instance first, then to the busy worker holding the fewest bytes', { timeout: 20_000 }, async () => {
    const pool = await startPool(2, GATE_WORKER);
    pool.setTasksPerWorker(2);
    const long = pool.run(gated(1, 4096));
    const short = pool.run(gated(2));
    // Both instances run one task each: the next waits inside the worker of the short one.
    assert.equal(pool.busy, 2);
    const next = pool.run(gated(3));
    open(2);
    const shortThread = threadOf(await short);
    open(3);
    assert.equal(threadOf(await next), shortThread);
    open(1);
    assert.notEqual(threadOf(await long), shortThread);
  });

  it('with two tasks per worker, holds one waiting task in each; the rest wait in the pool for whichever worker frees first', { timeout: 20_000 }, async () => {
    const pool = await startPool(2, GATE_WORKER);
    pool.setTasksPerWorker(2);
    // Equal sizes: the oldest instance takes the first and third, the other the second and fourth.
    const first = pool.run(gated(4));
    const second = pool.run(gated(5));
    const third = pool.run(gated(6));
    const fourth = pool.run(gated(7));
    const fifth = pool.run(gated(8));
    open(5);
    open(7);
    const freed = threadOf(await second);
    assert.equal(threadOf(await fourth), freed);
    open(8);
    assert.equal(threadOf(await fifth), freed, 'the fifth went to the instance that freed first');
    open(4);
    open(6);
    const held = threadOf(await first);
    assert.notEqual(held, freed);
    assert.equal(threadOf(await third), held);
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
    const growing = pool.grow();
    // While it loads, the new instance takes nothing: of two tasks, one runs and one waits.
    const early = [pool.run(rows(10)), pool.run(rows(10))];
    assert.deepEqual([pool.starting, pool.busy], [1, 1]);
    await growing;
    assert.deepEqual((await Promise.all(early)).map((o) => o.ok), [true, true]);
    assert.deepEqual([pool.size, pool.busy], [2, 0]);
    // Tasks are handed over as they are submitted: two at once keep both instances busy, so the
    // grown one is running one of them.
    const both = [pool.run(rows(10)), pool.run(rows(10))];
    assert.equal(pool.busy, 2);
    assert.deepEqual((await Promise.all(both)).map((o) => o.ok), [true, true]);

    const loading = pool.grow();
    assert.equal(pool.starting, 1);
    await pool.close();
    await loading;
    assert.equal(pool.size, 0);
  });

  it('answers the same numbers whether its outputs come back copied (small) or moved (large)', async () => {
    const { pool } = await WorkerPool.start(1, { ...WORKER, modelPath: `${MODELS.forest}/model.onnx` }, (error) => workerErrors.push(error), BACKENDS.onnx.workerFile);
    pools.push(pool);
    const row = Float32Array.from({ length: 20 }, (_, i) => (i % 7) - 3);
    const batchOf = (count: number): InferenceTask => {
      const data = new Float32Array(count * 20);
      for (let r = 0; r < count; r += 1) data.set(row, r * 20);
      return { inputs: { features: { dtype: 'float32', dims: [count, 20], data } } };
    };
    const one = await pool.run(batchOf(1));
    // 20 bytes of outputs a row (an int64 label, three float32 probabilities): past the size that moves.
    const largeRows = Math.ceil(MOVE_OUTPUTS_MIN_BYTES / 20) + 1;
    const large = await pool.run(batchOf(largeRows));
    assert.ok(one.ok && large.ok);
    for (const [name, tensor] of Object.entries(large.outputs)) {
      assert.equal(tensor.dims[0], largeRows);
      const width = tensor.data.length / largeRows;
      const values = (data: ArrayLike<number | bigint>, from: number, to: number): Array<number | bigint> => Array.prototype.slice.call(data, from, to);
      const expected = values(one.outputs[name]!.data, 0, width);
      for (const r of [0, largeRows >> 1, largeRows - 1]) assert.deepEqual(values(tensor.data, r * width, (r + 1) * width), expected, `${name}, row ${r}`);
    }
  });

  it('merges the members it is handed as the main thread would, padding included, and leaves them readable', async () => {
    const { pool, signature } = await WorkerPool.start(1, { ...WORKER, modelPath: `${MODELS.tokens}/model.onnx` }, (error) => workerErrors.push(error), BACKENDS.onnx.workerFile);
    pools.push(pool);
    const layout = batchLayout(signature, { seq: { value: 0, buckets: [8] } });
    const members = [3, 5, 8].map((length, i) => ({
      input_ids: { dtype: 'int64' as const, dims: [1, length], data: BigInt64Array.from({ length }, (_, j) => BigInt(1 + ((i + j) % 15))) },
      attention_mask: { dtype: 'int64' as const, dims: [1, length], data: new BigInt64Array(length).fill(1n) },
    }));
    const here = mergeInputs(members, layout);
    const mergedHere = await pool.run({ inputs: here.inputs });
    const mergedThere = await pool.run({ members, pad: layout.pad });
    assert.ok(mergedHere.ok && mergedThere.ok);
    const split = (outputs: NamedTensors) => splitOutputs(outputs, batchMembers(members, layout), layout).map((own) => own.scores!);
    const there = split(mergedThere.outputs);
    assert.deepEqual(there.map((scores) => Array.from(scores.data as Float32Array)), split(mergedHere.outputs).map((scores) => Array.from(scores.data as Float32Array)));
    assert.deepEqual(there.map((scores) => scores.dims[1]), [3, 5, 8], 'each member gets its own length back');
    // Cloned, not moved: the members can still be run one by one should the batch fail.
    assert.deepEqual(members.map((member) => member.input_ids.data.length), [3, 5, 8]);
  });
});
