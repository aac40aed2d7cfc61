/**
 * A stand-in for the inference worker in WorkerPool tests: ready at once, and a task runs until
 * the test opens its gate, so tasks end in the order a test chooses, not in the order a machine
 * gets through them. A task names its gate by the first value of its input `x`; gate 0 (the
 * warm-up's zeros) never waits. It answers with the worker thread that ran it. The gates are an
 * Int32Array over `workerData.gates`, shared with the test: a task waits while its slot is 0.
 * It runs inside the real worker entry (`serveModel`), and blocks its thread as ONNX Runtime's
 * run() does.
 */
import { isMainThread, threadId, workerData } from 'node:worker_threads';
import { serveModel } from '../../src/runtime/worker-entry.js';

export const GATE_SIGNATURE = {
  inputs: [{ name: 'x', dtype: 'float32' as const, shape: [null], dimNames: ['gate'] }],
  outputs: [{ name: 'thread', dtype: 'int32' as const, shape: [1], dimNames: ['thread'] }],
};

// Run as a test file (`node --test dist/test/` takes every file under test/), it does nothing.
export default isMainThread
  ? undefined
  : serveModel(async () => {
      const gates = new Int32Array((workerData as { gates: SharedArrayBuffer }).gates);
      return {
        signature: GATE_SIGNATURE,
        provider: 'cpu',
        engine: 'gate',
        warnings: [],
        run: async (inputs) => {
          const gate = inputs.x!.data[0] as number;
          if (gate > 0) Atomics.wait(gates, gate, 0);
          return { ok: true, outputs: { thread: { dtype: 'int32', dims: [1], data: Int32Array.of(threadId) } }, computeMs: 0 };
        },
      };
    });
