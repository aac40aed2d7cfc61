/** Plain-data messages between the main thread and an inference worker. */
import type { ModelSignature, NamedTensors } from '../codecs/tensor.js';
import type { ErrorCode } from '../errors.js';
import type { PadRules } from './batch-merge.js';

export type ExecutionProviderName = 'cpu' | 'cuda';

/** The libraries a model runs on: ONNX Runtime, or TensorFlow.js. */
export type BackendName = 'onnx' | 'tfjs';

/** What every backend's worker entry is started with. */
export interface WorkerOptions {
  /** The file the backend loads: the `.onnx` file, or TF.js's `model.json`. */
  readonly modelPath: string;
  readonly executionProvider: ExecutionProviderName;
  readonly deviceId: number;
  readonly requireGpu: boolean;
  readonly intraOpNumThreads: number;
  readonly graphOptimizationLevel: 'disabled' | 'basic' | 'extended' | 'all';
  /** Outputs to fetch, in order; undefined: all. */
  readonly outputs: readonly string[] | undefined;
}

/** Posted once by each worker after its session is loaded and warmed up, or failed to. */
export type WorkerStartMessage =
  | {
      readonly type: 'inferd:ready';
      readonly signature: ModelSignature;
      /** Where it computes: the CPU, or a CUDA GPU. */
      readonly provider: ExecutionProviderName;
      /** What computes: ONNX Runtime's execution provider, or the TF.js engine in use (`wasm`, `tfjs-node`...). */
      readonly engine: string;
      readonly warnings: readonly string[];
    }
  | { readonly type: 'inferd:load-failed'; readonly message: string };

/**
 * One batch: its inputs, merged already, or its members for the worker to merge with the model's
 * pad rules (large tensors, whose merge on the main thread would cost a copy and its garbage there).
 */
export type InferenceTask = { readonly inputs: NamedTensors } | { readonly members: readonly NamedTensors[]; readonly pad: PadRules };

export type InferenceOutcome =
  | { readonly ok: true; readonly outputs: NamedTensors; readonly computeMs: number }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string };

export function isWorkerStartMessage(value: unknown): value is WorkerStartMessage {
  const type = (value as { type?: unknown } | null)?.type;
  return type === 'inferd:ready' || type === 'inferd:load-failed';
}
