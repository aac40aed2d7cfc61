/**
 * Codecs turn request bytes into named tensors checked against the model's signature, and model
 * outputs back into response bytes. They are pure: no I/O, no Fastify, no onnxruntime.
 */
import type { ModelSignature, NamedTensors } from './tensor.js';

/** How the client framed its request, so a JSON answer can be framed the same way. */
export type ResponseStyle = 'predictions' | 'v2';

export interface DecodedRequest {
  readonly inputs: NamedTensors;
  readonly style: ResponseStyle;
}

export interface DecodeOptions {
  /** Raw `X-Inferd-Shape` header (`"2,20"`), for application/octet-stream. */
  readonly shapeHeader?: string | undefined;
}

export interface RequestDecoder {
  readonly mediaType: string;
  /** Throws InferdError: INFERD_ERR_BODY_MALFORMED, INFERD_ERR_INPUT_INVALID or INFERD_ERR_UNSUPPORTED_MEDIA_TYPE. */
  decode(body: Buffer, signature: ModelSignature, options: DecodeOptions): DecodedRequest;
}

export interface EncodeOptions {
  readonly style: ResponseStyle;
  readonly modelName: string;
}

export interface ResponseEncoder {
  readonly mediaType: string;
  /** Throws INFERD_ERR_NOT_ACCEPTABLE when this format can never carry the model's outputs: checked before inference. */
  assertCanEncode?(signature: ModelSignature): void;
  /** Throws InferdError INFERD_ERR_NOT_ACCEPTABLE when the format cannot carry these outputs. */
  encode(outputs: NamedTensors, signature: ModelSignature, options: EncodeOptions): Buffer;
}
