/**
 * Creating an ONNX Runtime session with the configured execution provider, falling back to CPU
 * when CUDA cannot load (onnxruntime-node throws instead of falling back by itself).
 * Imported only by the worker: onnxruntime-node must never load on the HTTP thread.
 */
import ort from 'onnxruntime-node';
import { DTYPES, type DType, type ModelSignature, type TensorSpec } from '../codecs/tensor.js';
import type { ExecutionProviderName, WorkerOptions } from './worker-protocol.js';

export interface LoadedSession {
  readonly session: ort.InferenceSession;
  readonly provider: ExecutionProviderName;
  readonly signature: ModelSignature;
  readonly warnings: readonly string[];
}

function sessionOptions(options: WorkerOptions, provider: ExecutionProviderName): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: provider === 'cuda' ? [{ name: 'cuda', deviceId: options.deviceId }] : ['cpu'],
    intraOpNumThreads: options.intraOpNumThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: options.graphOptimizationLevel,
    // Spinning threads would steal the core the HTTP thread needs between bursts.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}

function toSpec(meta: ort.InferenceSession.ValueMetadata): TensorSpec {
  if (!meta.isTensor || !(DTYPES as readonly string[]).includes(meta.type)) {
    throw new Error(`${meta.name}: ${meta.isTensor ? `dtype ${meta.type}` : 'non-tensor value'} is not supported`);
  }
  return {
    name: meta.name,
    dtype: meta.type as DType,
    shape: meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : null)),
    dimNames: meta.shape.map((d) => (typeof d === 'string' ? d : null)),
  };
}

function readSignature(session: ort.InferenceSession, outputs: WorkerOptions['outputs']): ModelSignature {
  const declared = session.outputMetadata.map(toSpec);
  const selected =
    outputs?.map((name) => {
      const spec = declared.find((o) => o.name === name);
      if (!spec) throw new Error(`output "${name}" named in inferd.json is not in the model (${declared.map((o) => o.name).join(', ')})`);
      return spec;
    }) ?? declared;
  return { inputs: session.inputMetadata.map(toSpec), outputs: selected };
}

export async function loadSession(options: WorkerOptions): Promise<LoadedSession> {
  const warnings: string[] = [];
  let provider = options.executionProvider;
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(options.modelPath, sessionOptions(options, provider));
  } catch (error) {
    if (provider !== 'cuda' || options.requireGpu) throw error;
    warnings.push(`CUDA execution provider unavailable, falling back to CPU: ${(error as Error).message}`);
    provider = 'cpu';
    session = await ort.InferenceSession.create(options.modelPath, sessionOptions(options, provider));
  }
  return { session, provider, signature: readSignature(session, options.outputs), warnings };
}
