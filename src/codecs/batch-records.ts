/**
 * Batch transform's framing of request and response bodies. SageMaker splits input files by
 * line and sends mini-batches of records, one a line; the answer must hold exactly one record a
 * line, in order, so that `AssembleWith=Line` and joins line up. So in batch mode an
 * `application/json` body is read as JSON Lines, and JSON answers are written one record a line.
 */
import type { DecodeOptions, DecodedRequest, ResponseEncoder } from './codec.js';
import { decodeJsonValue } from './json.js';
import { jsonLinesDecoder, jsonLinesEncoder } from './jsonlines.js';
import { isJsonObject } from './records.js';
import { decoderFor, encoderFor } from './registry.js';
import type { ModelSignature } from './tensor.js';
import { unsupportedMediaType } from '../errors.js';

const LF = 0x0a;

/** Types whose bodies are records, one a line, and whose answers can be too. */
export function isLineType(mediaType: string): boolean {
  const canonical = encoderFor(mediaType)?.mediaType ?? decoderFor(mediaType)?.mediaType;
  return canonical === 'text/csv' || canonical === 'application/json' || canonical === 'application/jsonlines';
}

/**
 * Records, one a line, whatever their count, so that a record decodes the same alone or in a
 * mini-batch. Only a body that is not JSON Lines gets a second reading as one real-time request
 * (`{"instances": ...}`, `{"inputs": ...}`, also pretty-printed), so that those still work.
 */
function decodeJsonRecords(body: Buffer, signature: ModelSignature): DecodedRequest {
  try {
    return jsonLinesDecoder.decode(body, signature, {});
  } catch (linesError) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      throw linesError;
    }
    const envelope = isJsonObject(parsed) && ['instances', 'inputs'].some((key) => Object.hasOwn(parsed, key));
    const inputNamed = signature.inputs.some((input) => input.name === 'instances' || input.name === 'inputs');
    if (!envelope || inputNamed) throw linesError;
    return decodeJsonValue(parsed, signature);
  }
}

/** Decodes a mini-batch; `mediaType` is lower-case, without parameters. */
export function decodeBatchBody(body: Buffer, mediaType: string, signature: ModelSignature, options: DecodeOptions): DecodedRequest {
  const decoder = decoderFor(mediaType);
  if (!decoder) throw unsupportedMediaType(`Content-Type ${mediaType} is not supported`);
  return decoder.mediaType === 'application/json' ? decodeJsonRecords(body, signature) : decoder.decode(body, signature, options);
}

/** The encoder for batch answers: JSON becomes one record a line (an OIP v2 request still gets its one document). */
export function batchEncoder(encoder: ResponseEncoder): ResponseEncoder {
  if (encoder.mediaType !== 'application/json') return encoder;
  return {
    mediaType: encoder.mediaType,
    encode: (outputs, signature, options) =>
      options.style === 'v2' ? encoder.encode(outputs, signature, options) : jsonLinesEncoder.encode(outputs, signature, options),
  };
}

/** The non-blank lines of a body, without their line endings: its records. */
export function recordLines(body: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  while (start < body.length) {
    const newline = body.indexOf(LF, start);
    const end = newline === -1 ? body.length : newline;
    const line = body.subarray(start, end > start && body[end - 1] === 0x0d ? end - 1 : end);
    if (line.toString('latin1').trim() !== '') lines.push(line);
    start = end + 1;
  }
  return lines;
}

/** The line written in place of a record that failed: JSON, or `ERROR,<code>,"<message>"` for CSV. */
export function errorRecord(responseMediaType: string, error: { readonly code: string; readonly message: string }): string {
  if (encoderFor(responseMediaType)?.mediaType === 'text/csv') return `ERROR,${error.code},"${error.message.replaceAll('"', '""')}"`;
  return JSON.stringify({ error: { code: error.code, message: error.message } });
}
