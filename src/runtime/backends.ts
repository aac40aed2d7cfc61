/**
 * The backends a model can run on, and how a model directory tells which: one `.onnx` file is
 * ONNX Runtime's, a `model.json` (TF.js's graph or layers format) is TensorFlow.js's. Each
 * backend is a worker entry that speaks worker-protocol.ts: it loads the model, reports its
 * signature, warms up, runs batches, and tells an input error from a failure.
 */
import { fileURLToPath } from 'node:url';
import type { BackendName } from './worker-protocol.js';

export interface Backend {
  readonly name: BackendName;
  /** The Piscina entry that loads one model in its thread. */
  readonly workerFile: string;
  /** The files of a directory this backend could serve, sorted. */
  candidates(entries: readonly string[]): string[];
  /** What a model file of this backend is called, for messages. */
  readonly describeFile: string;
}

export const BACKENDS: Readonly<Record<BackendName, Backend>> = {
  onnx: {
    name: 'onnx',
    workerFile: fileURLToPath(new URL('./onnx-worker.js', import.meta.url)),
    candidates: (entries) => entries.filter((entry) => entry.endsWith('.onnx')).sort(),
    describeFile: '.onnx file',
  },
  tfjs: {
    name: 'tfjs',
    workerFile: fileURLToPath(new URL('./tfjs-worker.js', import.meta.url)),
    candidates: (entries) => entries.filter((entry) => entry === 'model.json'),
    describeFile: 'TF.js model.json',
  },
};

/** Without `backend` in inferd.json: ONNX when the directory holds an `.onnx` file, else TF.js when it holds a `model.json`. */
export function detectBackend(entries: readonly string[]): BackendName | undefined {
  if (BACKENDS.onnx.candidates(entries).length > 0) return 'onnx';
  if (BACKENDS.tfjs.candidates(entries).length > 0) return 'tfjs';
  return undefined;
}
