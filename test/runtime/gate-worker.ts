/**
 * A stand-in for the inference worker in WorkerPool tests: ready at once, and a task runs until
 * the test opens its gate, so tasks end in the order a test chooses, not in the order a machine
 * gets through them. A task names its gate by the value of its input `x`; it answers with the
 * worker thread that ran it. The gates are an Int32Array over `workerData.gates`, shared with
 * the test: a task waits while its slot is 0.
 */
import { isMainThread, parentPort, threadId, workerData } from 'node:worker_threads';
import type { InferenceOutcome, InferenceTask, WorkerStartMessage } from '../../src/runtime/worker-protocol.js';

export const GATE_SIGNATURE = {
  inputs: [{ name: 'x', dtype: 'float32' as const, shape: [1], dimNames: ['gate'] }],
  outputs: [{ name: 'thread', dtype: 'int32' as const, shape: [1], dimNames: ['thread'] }],
};

function start(): (task: InferenceTask) => InferenceOutcome {
  const gates = new Int32Array((workerData as { gates: SharedArrayBuffer }).gates);
  const ready: WorkerStartMessage = { type: 'inferd:ready', signature: GATE_SIGNATURE, provider: 'cpu', engine: 'gate', warnings: [] };
  parentPort!.postMessage(ready);
  return (task) => {
    const gate = ('inputs' in task ? task.inputs : task.members[0]!).x!.data[0] as number;
    Atomics.wait(gates, gate, 0);
    return { ok: true, outputs: { thread: { dtype: 'int32', dims: [1], data: Int32Array.of(threadId) } }, computeMs: 0 };
  };
}

// Run as a test file (`node --test dist/test/` takes every file under test/), it does nothing.
export default isMainThread ? undefined : start();
