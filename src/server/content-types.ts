/** Wires the pure codecs to HTTP: Content-Type picks the decoder, Accept picks the encoder. */
import type { FastifyInstance } from 'fastify';
import { decoderFor, encoderFor, negotiateResponseType, SUPPORTED_REQUEST_TYPES, SUPPORTED_RESPONSE_TYPES } from '../codecs/registry.js';
import type { RequestDecoder, ResponseEncoder } from '../codecs/codec.js';
import { notAcceptable, unsupportedMediaType } from '../errors.js';
import type { RequestBodies } from './request-body.js';

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

/**
 * Every body arrives as a Buffer, decoded from its Content-Encoding, whatever its type:
 * decoding the type is the codecs' job, after the route knows the model.
 */
export function installBodyParser(app: FastifyInstance, bodies: RequestBodies): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, _payload, done) => bodies.read(request.raw, done));
}
