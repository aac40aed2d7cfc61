/**
 * Piscina worker entry: one ONNX Runtime session per worker thread, loaded and warmed up before
 * the worker reports ready. `run()` blocks this thread for the whole inference, which is the
 * reason it lives here and not on the HTTP thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { allocate, type DType, type ModelSignature, type NamedTensors, type TensorData } from '../codecs/tensor.js';
import { loadSession, type LoadedSession } from './onnx-session.js';
import type { InferenceOutcome, InferenceTask, WorkerOptions, WorkerStartMessage } from './worker-protocol.js';

const options = workerData as WorkerOptions;

function toOrtFeeds(inputs: NamedTensors): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of Object.entries(inputs)) {
    feeds[name] = new ort.Tensor(tensor.dtype, tensor.data as ort.Tensor.DataType, [...tensor.dims]);
  }
  return feeds;
}

/** A batch of one with every dynamic dimension at 1: enough to make ORT allocate and compile. */
function warmUpInputs(signature: ModelSignature): NamedTensors {
  const inputs: NamedTensors = {};
  for (const spec of signature.inputs) {
    const dims = spec.shape.map((d) => d ?? 1);
    inputs[spec.name] = { dtype: spec.dtype, dims, data: allocate(spec.dtype, dims.reduce((a, b) => a * b, 1)) };
  }
  return inputs;
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
  let loaded: LoadedSession;
  try {
    loaded = await loadSession(options);
    const warmUp = await runSession(loaded, warmUpInputs(loaded.signature));
    if (!warmUp.ok) throw new Error(`warm-up run failed: ${warmUp.message}`);
  } catch (error) {
    const failed: WorkerStartMessage = { type: 'inferd:load-failed', message: (error as Error).message };
    parentPort!.postMessage(failed);
    return async () => ({ ok: false, code: 'INFERD_ERR_NOT_READY', message: failed.message } satisfies InferenceOutcome);
  }
  const ready: WorkerStartMessage = {
    type: 'inferd:ready',
    signature: loaded.signature,
    provider: loaded.provider,
    engine: loaded.provider,
    warnings: loaded.warnings,
  };
  parentPort!.postMessage(ready);
  return async (task) => transferOutcome(await runSession(loaded, task.inputs));
}

// Piscina awaits a default export that is a promise before it marks the worker ready.
export default start();
