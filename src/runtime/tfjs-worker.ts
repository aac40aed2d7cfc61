/**
 * Piscina worker entry: one TensorFlow.js model per worker thread, loaded on the best engine
 * installed (tfjs-model.ts) and warmed up before the worker reports ready. TF.js computes on this
 * thread (the wasm backend and tfjs-node alike block it for the whole inference), which is the
 * reason it lives here and not on the HTTP thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import type { NamedTensors } from '../codecs/tensor.js';
import { loadTfjsModel, warmUpInputs, type LoadedTfjsModel } from './tfjs-model.js';
import type { InferenceOutcome, InferenceTask, WorkerOptions, WorkerStartMessage } from './worker-protocol.js';

const options = workerData as WorkerOptions;

async function runModel(model: LoadedTfjsModel, inputs: NamedTensors): Promise<InferenceOutcome> {
  const started = performance.now();
  try {
    const outputs = await model.run(inputs);
    return { ok: true, outputs, computeMs: performance.now() - started };
  } catch (error) {
    // The HTTP thread checked names, dtypes and shapes against the signature: what fails here is
    // the model or TF.js, never the request.
    return { ok: false, code: 'INFERD_ERR_INFERENCE_FAILED', message: (error as Error).message };
  }
}

/** Moves the output buffers to the main thread instead of copying them. */
function transferOutcome(outcome: InferenceOutcome) {
  const buffers = outcome.ok ? [...new Set(Object.values(outcome.outputs).map((t) => t.data.buffer as ArrayBuffer))] : [];
  return move({
    get [transferableSymbol]() {
      return buffers;
    },
    get [valueSymbol]() {
      return outcome;
    },
  } as unknown as ArrayBuffer);
}

async function start(): Promise<(task: InferenceTask) => Promise<unknown>> {
  let model: LoadedTfjsModel;
  try {
    model = await loadTfjsModel(options);
    const warmUp = await runModel(model, warmUpInputs(model.signature));
    if (!warmUp.ok) throw new Error(`warm-up run failed: ${warmUp.message}`);
  } catch (error) {
    const failed: WorkerStartMessage = { type: 'inferd:load-failed', message: (error as Error).message };
    parentPort!.postMessage(failed);
    return async () => ({ ok: false, code: 'INFERD_ERR_NOT_READY', message: failed.message } satisfies InferenceOutcome);
  }
  const ready: WorkerStartMessage = {
    type: 'inferd:ready',
    signature: model.signature,
    provider: model.provider,
    engine: model.engine,
    warnings: model.warnings,
  };
  parentPort!.postMessage(ready);
  return async (task) => transferOutcome(await runModel(model, task.inputs));
}

// Piscina awaits a default export that is a promise before it marks the worker ready.
export default start();
