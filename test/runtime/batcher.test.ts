/**
 * The batcher's dispatch policy, deadlines and removals. `run` is a gate the test opens by hand,
 * echoing inputs back as outputs, so every state is reached deterministically; the real pool
 * and models are covered by the server tests.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NamedTensors } from '../../src/codecs/tensor.js';
import { batchLayout, mergeInputs } from '../../src/runtime/batch-merge.js';
import { Batcher, MERGE_IN_WORKER_MIN_BYTES, type BatcherOptions, type DispatchReason } from '../../src/runtime/batcher.js';
import type { InferenceOutcome, InferenceTask } from '../../src/runtime/worker-protocol.js';

const SIGNATURE = {
  inputs: [{ name: 'x', dtype: 'float32' as const, shape: [null, null], dimNames: ['batch', 'width'] }],
  outputs: [{ name: 'x', dtype: 'float32' as const, shape: [null, null], dimNames: ['batch', 'width'] }],
};

function request(rows: number, width = 2, value = rows): NamedTensors {
  return { x: { dtype: 'float32', dims: [rows, width], data: new Float32Array(rows * width).fill(value) } };
}

function gatedBatcher(options: Partial<BatcherOptions> = {}) {
  const runs: Array<{ rows: number; open: (outcome?: InferenceOutcome) => void }> = [];
  const dispatches: Array<{ reason: DispatchReason; rows: number; requests: number }> = [];
  const tasks: InferenceTask[] = [];
  const layout = options.layout ?? batchLayout(SIGNATURE, {});
  const batcher: Batcher = new Batcher({
    maxBatchSize: 8,
    maxQueueDelayMs: 1_000,
    preferredBatchSizes: [],
    maxQueueSize: 16,
    maxBatchesInFlight: 1,
    timeoutMs: 10_000,
    layout,
    observer: { dispatched: ({ reason, rows, requests }) => dispatches.push({ reason, rows, requests }), completed: () => {} },
    run: (task) =>
      new Promise((resolve) => {
        // Merged as a worker would, for the tasks that leave the merge to it.
        const inputs = 'members' in task ? mergeInputs(task.members, layout).inputs : task.inputs;
        tasks.push(task);
        runs.push({ rows: inputs.x!.dims[0]!, open: (outcome) => resolve(outcome ?? { ok: true, outputs: inputs, computeMs: 1 }) });
      }),
    ...options,
  });
  /** Opens every gate until nothing is queued or running, so no timer outlives the test. */
  const finish = async () => {
    for (let opened = 0; batcher.stats().queued + batcher.stats().inFlight > 0; ) {
      while (opened < runs.length) runs[opened++]!.open();
      await tick();
    }
  };
  const submit = (inputs: NamedTensors, isCancelled?: () => boolean) => {
    const result = batcher.submit(inputs, { isCancelled });
    result.catch(() => {});
    return result;
  };
  return { batcher, submit, runs, tasks, dispatches, finish };
}

/**
 * Lets the batcher finish the event-loop turn: it dispatches once per turn, from an immediate
 * that may be queued behind the caller's own.
 */
const tick = async () => {
  for (let turn = 0; turn < 2; turn += 1) await new Promise((resolve) => setImmediate(resolve));
};

describe('Batcher', () => {
  it('runs what arrived in one turn as soon as an instance is idle, then merges what queued meanwhile, by rows', async () => {
    const { batcher, submit, runs, dispatches, finish } = gatedBatcher({ maxBatchSize: 6 });
    const first = submit(request(1));
    assert.deepEqual(dispatches, [], 'dispatched once the turn is over');
    await tick();
    assert.deepEqual(dispatches, [{ reason: 'idle', rows: 1, requests: 1 }]);
    const queued = [submit(request(3)), submit(request(2)), submit(request(4))];
    await tick();
    assert.deepEqual(batcher.stats(), { queued: 3, queuedRows: 9, inFlight: 1 });
    runs[0]!.open();
    await first;
    await tick();
    // 3 + 2 rows fit in 6; the 4-row request would not: the batch is full.
    assert.deepEqual(dispatches[1], { reason: 'full', rows: 5, requests: 2 });
    runs[1]!.open();
    await tick();
    assert.deepEqual(dispatches[2], { reason: 'idle', rows: 4, requests: 1 });
    runs[2]!.open();
    const results = await Promise.all(queued);
    // Each request gets its own rows back, in order.
    results.forEach((result, i) => {
      assert.deepEqual(result.outputs.x!.dims, [[3, 2, 4][i], 2]);
      assert.ok(Array.from(result.outputs.x!.data as Float32Array).every((v) => v === [3, 2, 4][i]));
    });
    assert.equal(results[0]!.batchRows, 5);
    await finish();
  });

  it('sends requests that arrive in the same turn to an idle instance as one batch', async () => {
    const { submit, runs, dispatches, finish } = gatedBatcher();
    const all = [submit(request(1)), submit(request(2)), submit(request(1))];
    await tick();
    assert.deepEqual(dispatches, [{ reason: 'idle', rows: 4, requests: 3 }]);
    runs[0]!.open();
    assert.deepEqual((await Promise.all(all)).map((result) => result.outputs.x!.dims[0]), [1, 2, 1]);
    await finish();
  });

  it('leaves the merge of large members to the worker, and merges small ones itself', async () => {
    const { submit, runs, tasks, finish } = gatedBatcher();
    // Two one-row requests that together reach the size from which the worker merges.
    const width = MERGE_IN_WORKER_MIN_BYTES / Float32Array.BYTES_PER_ELEMENT / 2;
    const large = [submit(request(1, width, 7)), submit(request(1, width, 9))];
    await tick();
    runs[0]!.open();
    const answers = await Promise.all(large);
    const [toWorker] = tasks;
    assert.ok(toWorker && 'members' in toWorker, 'the members go to the worker unmerged');
    assert.deepEqual(toWorker.members.map((member) => member.x!.dims), [[1, width], [1, width]]);
    answers.forEach((answer, i) => {
      assert.deepEqual(answer.outputs.x!.dims, [1, width]);
      assert.ok(Array.from(answer.outputs.x!.data as Float32Array).every((v) => v === [7, 9][i]));
    });

    const small = [submit(request(1)), submit(request(2))];
    await tick();
    runs[1]!.open();
    assert.deepEqual((await Promise.all(small)).map((answer) => answer.outputs.x!.dims), [[1, 2], [2, 2]]);
    const merged = tasks[1];
    assert.ok(merged && 'inputs' in merged, 'small members are merged before the hand-off');
    assert.deepEqual(merged.inputs.x!.dims, [3, 2]);
    await finish();
  });

  it('holds a batch while another instance is busy, until maxQueueDelayMs or a preferred size', async () => {
    const { submit, runs, dispatches, finish } = gatedBatcher({ maxBatchesInFlight: 2, maxQueueDelayMs: 30, preferredBatchSizes: [3] });
    void submit(request(1));
    await tick();
    void submit(request(1));
    await tick();
    assert.equal(dispatches.length, 1, 'the second waits: one instance is busy');
    // Only its delay timer can send it now.
    const deadline = Date.now() + 10_000;
    while (dispatches.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.deepEqual(dispatches[1], { reason: 'delay', rows: 1, requests: 1 });
    runs[1]!.open();
    await tick();
    void submit(request(1));
    void submit(request(2));
    await tick();
    assert.deepEqual(dispatches[2], { reason: 'preferred', rows: 3, requests: 2 });
    await finish();
  });

  it('never merges requests of different shapes, and lets other shapes go first', async () => {
    const { submit, runs, dispatches, finish } = gatedBatcher();
    void submit(request(1, 2));
    await tick();
    const a = submit(request(1, 3));
    const b = submit(request(1, 2));
    const c = submit(request(1, 3));
    runs[0]!.open();
    await tick();
    assert.deepEqual(dispatches[1], { reason: 'shape', rows: 2, requests: 2 });
    runs[1]!.open();
    await tick();
    runs[2]!.open();
    assert.deepEqual((await a).outputs.x!.dims, [1, 3]);
    assert.deepEqual((await c).outputs.x!.dims, [1, 3]);
    assert.deepEqual((await b).outputs.x!.dims, [1, 2]);
    await finish();
  });

  it('answers a queued request 504 at its deadline and drops it; a running one is never cut', async () => {
    const { batcher, submit, runs, finish } = gatedBatcher({ timeoutMs: 40 });
    const running = submit(request(1));
    const queued = submit(request(1));
    await Promise.all([
      assert.rejects(queued, { code: 'INFERD_ERR_TIMEOUT' }),
      assert.rejects(running, { code: 'INFERD_ERR_TIMEOUT' }),
    ]);
    assert.deepEqual(batcher.stats(), { queued: 0, queuedRows: 0, inFlight: 1 });
    runs[0]!.open();
    await tick();
    assert.equal(runs.length, 1, 'the expired request never ran');
    assert.equal(batcher.stats().inFlight, 0);
    await finish();
  });

  it('drops a request whose client disconnects while it is queued', async () => {
    const { submit, runs, finish } = gatedBatcher();
    void submit(request(1));
    await tick();
    let gone = false;
    const queued = submit(request(1), () => gone);
    const after = submit(request(1));
    gone = true;
    runs[0]!.open();
    await assert.rejects(queued, { code: 'INFERD_ERR_CANCELLED' });
    await tick();
    assert.equal(runs.length, 2, 'the next request ran; the cancelled one never did');
    assert.equal(runs[1]!.rows, 1);
    runs[1]!.open();
    await after;
    await finish();
  });

  it('drops the disconnected requests behind a full batch at once, so they hold no place in the queue', async () => {
    const { batcher, submit, runs, dispatches, finish } = gatedBatcher({ maxBatchSize: 2 });
    void submit(request(1));
    await tick();
    let gone = false;
    const waiting = [submit(request(1)), submit(request(1))];
    const left = [submit(request(1), () => gone), submit(request(1), () => gone)];
    gone = true;
    runs[0]!.open();
    await tick();
    assert.deepEqual(dispatches[1], { reason: 'full', rows: 2, requests: 2 });
    for (const request of left) await assert.rejects(request, { code: 'INFERD_ERR_CANCELLED' });
    assert.deepEqual(batcher.stats(), { queued: 0, queuedRows: 0, inFlight: 1 });
    runs[1]!.open();
    await Promise.all(waiting);
    await finish();
  });

  it('refuses with 503 beyond maxQueueSize', async () => {
    const { submit, finish } = gatedBatcher({ maxQueueSize: 2 });
    void submit(request(1));
    void submit(request(1));
    void submit(request(1));
    await assert.rejects(submit(request(1)), { code: 'INFERD_ERR_QUEUE_FULL' });
    await finish();
  });

  it('fails every member of a batch that failed for a reason none of them caused', async () => {
    const { submit, runs, finish } = gatedBatcher();
    void submit(request(1)).catch(() => {});
    await tick();
    const members = [submit(request(1)), submit(request(2))];
    runs[0]!.open();
    await tick();
    runs[1]!.open({ ok: false, code: 'INFERD_ERR_INTERNAL', message: 'worker failed' });
    for (const member of members) await assert.rejects(member, { code: 'INFERD_ERR_INTERNAL', message: 'worker failed' });
    await finish();
  });

  it('reruns the members of a batch that failed on its data one by one, so only the bad one fails', async () => {
    const { submit, runs, finish } = gatedBatcher();
    void submit(request(1));
    await tick();
    const good = submit(request(1, 2, 7));
    const bad = submit(request(2, 2, 9));
    runs[0]!.open();
    await tick();
    assert.equal(runs[1]!.rows, 3, 'the two were merged');
    runs[1]!.open({ ok: false, code: 'INFERD_ERR_INFERENCE_FAILED', message: 'index out of range' });
    await tick();
    assert.equal(runs[2]!.rows, 1);
    runs[2]!.open();
    await tick();
    assert.equal(runs[3]!.rows, 2);
    runs[3]!.open({ ok: false, code: 'INFERD_ERR_INFERENCE_FAILED', message: 'index out of range' });
    assert.deepEqual((await good).outputs.x!.dims, [1, 2]);
    await assert.rejects(bad, { code: 'INFERD_ERR_INFERENCE_FAILED' });
    await finish();
  });

  it('fails the whole batch when the model returns the wrong row count', async () => {
    const { submit, runs, finish } = gatedBatcher();
    void submit(request(1));
    await tick();
    const members = [submit(request(1)), submit(request(2))];
    runs[0]!.open();
    await tick();
    runs[1]!.open({ ok: true, outputs: request(2), computeMs: 1 });
    for (const member of members) await assert.rejects(member, { code: 'INFERD_ERR_INFERENCE_FAILED', message: /2 rows for a batch of 3/ });
    await finish();
  });

  it('with maxBatchSize 1, never merges', async () => {
    const { submit, runs, dispatches, finish } = gatedBatcher({ maxBatchSize: 1 });
    const all = [1, 2, 3].map(() => submit(request(1)));
    await tick();
    for (let i = 0; i < 3; i += 1) {
      runs[i]!.open();
      await tick();
    }
    await Promise.all(all);
    assert.deepEqual(dispatches.map((d) => d.requests), [1, 1, 1]);
    await finish();
  });

  it('drain waits for queued and running work, then refuses new work', async () => {
    const { batcher, submit, runs, finish } = gatedBatcher();
    const work = [submit(request(1))];
    await tick();
    work.push(submit(request(1)));
    let drained = false;
    const draining = batcher.drain().then(() => (drained = true));
    await assert.rejects(submit(request(1)), { code: 'INFERD_ERR_SHUTTING_DOWN' });
    runs[0]!.open();
    await tick();
    assert.equal(drained, false);
    runs[1]!.open();
    await Promise.all([...work, draining]);
    assert.equal(drained, true);
    await finish();
  });
});

describe('Batcher, when merging fails', () => {
  it('answers every member with an error and keeps serving', async () => {
    const ids = { name: 'x', dtype: 'int64' as const, shape: [null, null], dimNames: ['batch', 'seq'] };
    // A fill value int64 cannot hold makes mergeInputs throw (the runtime refuses it at load).
    const layout = batchLayout({ inputs: [ids], outputs: [ids] }, { seq: { value: 0.5 } });
    const { submit, runs, finish } = gatedBatcher({ layout });
    const tokens = (length: number): NamedTensors => ({ x: { dtype: 'int64', dims: [1, length], data: new BigInt64Array(length) } });
    const first = submit(tokens(2));
    await tick();
    const members = [submit(tokens(3)), submit(tokens(4))];
    runs[0]!.open();
    await first;
    for (const member of members) await assert.rejects(member, { code: 'INFERD_ERR_INTERNAL' });
    const after = submit(tokens(5));
    await tick();
    runs[1]!.open();
    assert.deepEqual((await after).outputs.x!.dims, [1, 5]);
    await finish();
  });
});
