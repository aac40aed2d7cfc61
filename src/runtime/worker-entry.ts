/**
 * What every backend's worker entry does the same way: load the model, warm it up with a batch of
 * one before reporting ready (or report why it could not load), then run each task and answer it
 * (large output buffers moved to the main thread, small ones copied). A backend supplies only how
 * it loads and runs a model.
 */
import { parentPort } from 'node:worker_threads';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { allocate, type ModelSignature, type NamedTensors } from '../codecs/tensor.js';
import { batchLayout, mergeInputs } from './batch-merge.js';
import type { ExecutionProviderName, InferenceOutcome, InferenceTask, WorkerStartMessage } from './worker-protocol.js';

export interface WorkerModel {
  readonly signature: ModelSignature;
  readonly provider: ExecutionProviderName;
  readonly engine: string;
  readonly warnings: readonly string[];
  run(inputs: NamedTensors): Promise<InferenceOutcome>;
}

/** A batch of one with every dynamic dimension at 1: enough to make a backend allocate and compile. */
export function warmUpInputs(signature: ModelSignature): NamedTensors {
  const inputs: NamedTensors = {};
  for (const spec of signature.inputs) {
    const dims = spec.shape.map((d) => d ?? 1);
    inputs[spec.name] = { dtype: spec.dtype, dims, data: allocate(spec.dtype, dims.reduce((a, b) => a * b, 1)) };
  }
  return inputs;
}

/**
 * From this size on, the output buffers move to the main thread instead of being copied. A move
 * has a cost of its own: for the churn forest's two small outputs, moving took the worker about
 * 30 µs a batch more than copying them (125 against 155 µs a 28-row batch, alternated).
 */
export const MOVE_OUTPUTS_MIN_BYTES = 64 * 1024;

/** The outcome as the worker answers it: large output buffers moved, small ones copied. */
function transferOutcome(outcome: InferenceOutcome) {
  if (!outcome.ok) return outcome;
  const buffers = [...new Set(Object.values(outcome.outputs).map((t) => t.data.buffer as ArrayBuffer))];
  // A copy takes each whole buffer, a view's backing store included.
  if (buffers.reduce((bytes, buffer) => bytes + buffer.byteLength, 0) < MOVE_OUTPUTS_MIN_BYTES) return outcome;
  return move({
    get [transferableSymbol]() {
      return buffers;
    },
    get [valueSymbol]() {
      return outcome;
    },
  } as unknown as ArrayBuffer);
}

/** The Piscina task function of a worker entry: Piscina awaits it before it marks the worker ready. */
export async function serveModel(load: () => Promise<WorkerModel>): Promise<(task: InferenceTask) => Promise<unknown>> {
  let model: WorkerModel;
  try {
    model = await load();
    const warmUp = await model.run(warmUpInputs(model.signature));
    if (!warmUp.ok) throw new Error(`warm-up run failed: ${warmUp.message}`);
  } catch (error) {
    const failed: WorkerStartMessage = { type: 'inferd:load-failed', message: (error as Error).message };
    parentPort!.postMessage(failed);
    return async () => ({ ok: false, code: 'INFERD_ERR_NOT_READY', message: failed.message } satisfies InferenceOutcome);
  }
  const ready: WorkerStartMessage = { type: 'inferd:ready', signature: model.signature, provider: model.provider, engine: model.engine, warnings: model.warnings };
  parentPort!.postMessage(ready);
  // The pool may hand a worker its next task while one runs, and Piscina may start both at once. Each
  // starts only once the one before it has ended and its answer is posted: a run that blocks the
  // thread (TF.js's execute()) would otherwise hold that answer back, and executeAsync() runs of
  // one graph would overlap.
  let previous: Promise<unknown> = Promise.resolve();
  return (task) => {
    const outcome = previous.then(async () => transferOutcome(await model.run(taskInputs(task, model.signature))));
    previous = outcome.catch(() => {});
    return outcome;
  };
}

function taskInputs(task: InferenceTask, signature: ModelSignature): NamedTensors {
  return 'members' in task ? mergeInputs(task.members, batchLayout(signature, task.pad)).inputs : task.inputs;
}
