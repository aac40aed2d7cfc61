/**
 * Piscina worker entry: one TensorFlow.js model per worker thread, loaded on the best engine
 * installed (tfjs-model.ts) and warmed up before the worker reports ready. TF.js computes on this
 * thread (the wasm backend and tfjs-node alike block it for the whole inference), which is the
 * reason it lives here and not on the HTTP thread.
 */
import { workerData } from 'node:worker_threads';
import type { NamedTensors } from '../codecs/tensor.js';
import { loadTfjsModel, type LoadedTfjsModel } from './tfjs-model.js';
import { serveModel } from './worker-entry.js';
import type { InferenceOutcome, WorkerOptions } from './worker-protocol.js';

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

// Piscina awaits a default export that is a promise before it marks the worker ready.
export default serveModel(async () => {
  const model = await loadTfjsModel(options);
  return { ...model, run: (inputs) => runModel(model, inputs) };
});
