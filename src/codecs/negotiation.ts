/** Content negotiation: Content-Type picks the decoder, Accept picks the encoder. Every door uses it. */
import { notAcceptable, unsupportedMediaType } from '../errors.js';
import type { RequestDecoder, ResponseEncoder } from './codec.js';
import { decoderFor, encoderFor, negotiateResponseType, SUPPORTED_REQUEST_TYPES, SUPPORTED_RESPONSE_TYPES } from './registry.js';

/** Lower-cased media type without parameters; `application/json` when absent. */
export function mediaTypeOf(header: string | undefined): string {
  const type = header?.split(';', 1)[0]?.trim().toLowerCase();
  return type || 'application/json';
}

export function requestDecoder(contentType: string | undefined): RequestDecoder {
  const mediaType = mediaTypeOf(contentType);
  const decoder = decoderFor(mediaType);
  if (!decoder) {
    throw unsupportedMediaType(`Content-Type ${mediaType} is not supported; use one of ${SUPPORTED_REQUEST_TYPES.join(', ')}`);
  }
  return decoder;
}

export function responseEncoder(accept: string | undefined, defaultAccept: string): ResponseEncoder {
  const mediaType = negotiateResponseType(accept, defaultAccept);
  const encoder = mediaType === undefined ? undefined : encoderFor(mediaType);
  if (!encoder) {
    throw notAcceptable(`Accept ${accept ?? defaultAccept} matches no supported type; use one of ${SUPPORTED_RESPONSE_TYPES.join(', ')}`);
  }
  return encoder;
}
