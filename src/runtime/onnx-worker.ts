/**
 * Piscina worker entry: one ONNX Runtime session per worker thread, loaded and warmed up before
 * the worker reports ready. `run()` blocks this thread for the whole inference, which is the
 * reason it lives here and not on the HTTP thread.
 */
import { workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import type { DType, NamedTensors, TensorData } from '../codecs/tensor.js';
import { loadSession, type LoadedSession } from './onnx-session.js';
import { serveModel } from './worker-entry.js';
import type { InferenceOutcome, WorkerOptions } from './worker-protocol.js';

const options = workerData as WorkerOptions;

function toOrtFeeds(inputs: NamedTensors): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of Object.entries(inputs)) {
    feeds[name] = new ort.Tensor(tensor.dtype, tensor.data as ort.Tensor.DataType, [...tensor.dims]);
  }
  return feeds;
}

// ORT reports shape and type mismatches it finds itself with these phrases; they are the
// client's fault (422), anything else is an inference failure (500).
const INPUT_ERROR = /invalid dimensions|invalid rank|unexpected input data type|input .* not found|invalid input name/i;

async function runSession(loaded: LoadedSession, inputs: NamedTensors): Promise<InferenceOutcome> {
  const started = performance.now();
  let results: ort.InferenceSession.ReturnType;
  try {
    results = await loaded.session.run(
      toOrtFeeds(inputs),
      loaded.signature.outputs.map((o) => o.name),
    );
  } catch (error) {
    const message = (error as Error).message;
    return { ok: false, code: INPUT_ERROR.test(message) ? 'INFERD_ERR_INPUT_INVALID' : 'INFERD_ERR_INFERENCE_FAILED', message };
  }
  const computeMs = performance.now() - started;
  const outputs: NamedTensors = {};
  for (const spec of loaded.signature.outputs) {
    const tensor = results[spec.name]!;
    outputs[spec.name] = { dtype: tensor.type as DType, dims: [...tensor.dims], data: tensor.data as TensorData };
  }
  return { ok: true, outputs, computeMs };
}

// Piscina awaits a default export that is a promise before it marks the worker ready.
export default serveModel(async () => {
  const loaded = await loadSession(options);
  return { ...loaded, engine: loaded.provider, run: (inputs) => runSession(loaded, inputs) };
});
