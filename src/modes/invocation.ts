/**
 * One payload answered whole through the in-process inference API: what `POST /invocations`
 * does in real time, and what an async request does when its payload is not a record stream.
 */
import type { RequestDecoder, ResponseEncoder } from '../codecs/codec.js';
import { ownedTensors } from '../codecs/tensor.js';
import type { ModelInfo, Runtime } from '../runtime/runtime.js';

export interface Invocation {
  readonly body: Buffer;
  readonly decoder: RequestDecoder;
  readonly encoder: ResponseEncoder;
  readonly shapeHeader?: string | undefined;
  readonly isCancelled?: (() => boolean) | undefined;
  /** Already admitted by a limit of its own (see the runtime's `SubmitOptions`): never refused for a full queue. */
  readonly admitted?: boolean | undefined;
}

export interface InvocationAnswer {
  readonly body: Buffer;
  readonly queueMs: number;
  readonly decodeMs: number;
  readonly encodeMs: number;
}

export async function invokeWhole(runtime: Runtime, model: ModelInfo, request: Invocation): Promise<InvocationAnswer> {
  const decodeStarted = performance.now();
  const decoded = request.decoder.decode(request.body, model.signature, { shapeHeader: request.shapeHeader });
  const inputs = ownedTensors(decoded.inputs, request.body);
  const decodeMs = performance.now() - decodeStarted;

  const result = await runtime.infer(model.name, inputs, { isCancelled: request.isCancelled, admitted: request.admitted });

  const encodeStarted = performance.now();
  const body = request.encoder.encode(result.outputs, model.signature, { style: decoded.style, modelName: model.name });
  return { body, queueMs: result.queueMs, decodeMs, encodeMs: performance.now() - encodeStarted };
}
