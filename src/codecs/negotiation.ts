/** Content negotiation: Content-Type picks the decoder, Accept picks the encoder. Every door uses it. */
import { notAcceptable, unsupportedMediaType } from '../errors.js';
import type { RequestDecoder, ResponseEncoder } from './codec.js';
import { decoderFor, encoderFor, negotiateResponseType, SUPPORTED_REQUEST_TYPES, SUPPORTED_RESPONSE_TYPES } from './registry.js';

/** Distinct header values remembered per memo; past it the memo starts over (headers are the client's to choose). */
const MEMO_SIZE = 256;

/**
 * `compute` once per distinct header value: clients send the same few Content-Type and Accept
 * headers on every request, and parsing them was a measurable share of a small request's cost.
 * A value that throws is not remembered.
 */
function memoized<T>(compute: (header: string) => T): (header: string) => T {
  const memo = new Map<string, T>();
  return (header) => {
    let value = memo.get(header);
    if (value === undefined) {
      value = compute(header);
      if (memo.size >= MEMO_SIZE) memo.clear();
      memo.set(header, value);
    }
    return value;
  };
}

const parsedMediaType = memoized((header) => header.split(';', 1)[0]?.trim().toLowerCase() || 'application/json');

/** Lower-cased media type without parameters; `application/json` when absent. */
export function mediaTypeOf(header: string | undefined): string {
  return header === undefined ? 'application/json' : parsedMediaType(header);
}

const decoderOf = memoized((contentType) => {
  const mediaType = mediaTypeOf(contentType);
  const decoder = decoderFor(mediaType);
  if (!decoder) {
    throw unsupportedMediaType(`Content-Type ${mediaType} is not supported; use one of ${SUPPORTED_REQUEST_TYPES.join(', ')}`);
  }
  return decoder;
});

export function requestDecoder(contentType: string | undefined): RequestDecoder {
  return decoderOf(contentType ?? '');
}

function negotiatedEncoder(accept: string | undefined, defaultAccept: string): ResponseEncoder {
  const mediaType = negotiateResponseType(accept, defaultAccept);
  const encoder = mediaType === undefined ? undefined : encoderFor(mediaType);
  if (!encoder) {
    throw notAcceptable(`Accept ${accept ?? defaultAccept} matches no supported type; use one of ${SUPPORTED_RESPONSE_TYPES.join(', ')}`);
  }
  return encoder;
}

/** One memo per default type: in practice one, the server's. */
const encoderMemos = new Map<string, (accept: string) => ResponseEncoder>();

export function responseEncoder(accept: string | undefined, defaultAccept: string): ResponseEncoder {
  if (accept === undefined) return negotiatedEncoder(accept, defaultAccept);
  let memo = encoderMemos.get(defaultAccept);
  if (!memo) {
    memo = memoized((header) => negotiatedEncoder(header, defaultAccept));
    encoderMemos.set(defaultAccept, memo);
  }
  return memo(accept);
}
