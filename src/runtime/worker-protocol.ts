/** Plain-data messages between the main thread and an inference worker. */
import type { ModelSignature, NamedTensors } from '../codecs/tensor.js';
import type { ErrorCode } from '../errors.js';

export type ExecutionProviderName = 'cpu' | 'cuda';

export interface WorkerOptions {
  readonly onnxPath: string;
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
      readonly provider: ExecutionProviderName;
      readonly warnings: readonly string[];
    }
  | { readonly type: 'inferd:load-failed'; readonly message: string };

export interface InferenceTask {
  readonly inputs: NamedTensors;
}

export type InferenceOutcome =
  | { readonly ok: true; readonly outputs: NamedTensors; readonly computeMs: number }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string };

export function isWorkerStartMessage(value: unknown): value is WorkerStartMessage {
  const type = (value as { type?: unknown } | null)?.type;
  return type === 'inferd:ready' || type === 'inferd:load-failed';
}
