/**
 * A multi-record request answered record by record, for response streaming: its records (CSV
 * rows, JSON Lines, the items of a JSON `instances` array) go through the in-process inference
 * API in mini-batches, a few in flight, and each mini-batch's answer is yielded, in order, as
 * soon as it and those before it are done. The first records therefore go out before the last
 * are computed, and only a few mini-batches' answers are held at a time. Every part holds whole
 * records, one a line, so a client can split the stream between parts.
 */
import { batchEncoder, isLineType, recordLines } from '../codecs/batch-records.js';
import type { ResponseEncoder } from '../codecs/codec.js';
import { decoderFor } from '../codecs/registry.js';
import { InferdError, malformedBody } from '../errors.js';
import type { ModelInfo, Runtime } from '../runtime/runtime.js';
import { invokeBatch } from './batch-invocation.js';
import { invokeWhole } from './invocation.js';

export interface StreamedInvocation {
  readonly body: Buffer;
  /** The request's media type: lower-case, without parameters. */
  readonly mediaType: string;
  readonly encoder: ResponseEncoder;
  /** Records in one mini-batch, and so in one part. */
  readonly recordsPerPart: number;
  /** Mini-batches computed ahead of the one being sent. */
  readonly partsInFlight: number;
  readonly isCancelled?: (() => boolean) | undefined;
}

export interface StreamedAnswer {
  /** The parts' media type: JSON is written a record a line (`application/jsonlines`). */
  readonly mediaType: string;
  /** How many parts will come. */
  readonly partCount: number;
  readonly parts: AsyncGenerator<Buffer>;
}

interface Records {
  readonly lines: readonly Buffer[];
  /** The media type the lines decode as. */
  readonly mediaType: string;
}

/** A JSON body's records: the items of `{"instances": [...]}`, else none (one document). */
function jsonRecords(body: Buffer): Records | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw malformedBody(`the body is not JSON: ${(error as Error).message}`, error);
  }
  const instances = (parsed as { instances?: unknown } | null)?.instances;
  if (!Array.isArray(instances) || instances.length === 0) return undefined;
  return { lines: instances.map((instance) => Buffer.from(JSON.stringify(instance))), mediaType: 'application/jsonlines' };
}

function recordsOf(body: Buffer, mediaType: string): Records | undefined {
  const canonical = decoderFor(mediaType)?.mediaType;
  if (canonical === 'application/json') return jsonRecords(body);
  if (!isLineType(mediaType)) return undefined;
  const lines = recordLines(body);
  if (lines.length === 0) throw new InferdError('INFERD_ERR_BODY_EMPTY', 'the request has no records, only blank lines');
  return { lines, mediaType };
}

export function invokeStreamed(runtime: Runtime, model: ModelInfo, request: StreamedInvocation): StreamedAnswer {
  const records = recordsOf(request.body, request.mediaType);
  if (records === undefined) {
    // One tensor document (NPY, raw bytes, a JSON object of named inputs): one part, the answer.
    const decoder = decoderFor(request.mediaType);
    if (!decoder) throw new InferdError('INFERD_ERR_UNSUPPORTED_MEDIA_TYPE', `Content-Type ${request.mediaType} is not supported`);
    const whole = async function* () {
      yield (await invokeWhole(runtime, model, { body: request.body, decoder, encoder: request.encoder, isCancelled: request.isCancelled })).body;
    };
    return { mediaType: request.encoder.mediaType, partCount: 1, parts: whole() };
  }
  const encoder = batchEncoder(request.encoder);
  const mediaType = encoder.mediaType === 'application/json' ? 'application/jsonlines' : encoder.mediaType;
  const partCount = Math.ceil(records.lines.length / request.recordsPerPart);
  return { mediaType, partCount, parts: answerParts(runtime, model, request, records, encoder) };
}

async function* answerParts(runtime: Runtime, model: ModelInfo, request: StreamedInvocation, records: Records, encoder: ResponseEncoder): AsyncGenerator<Buffer> {
  const { lines } = records;
  const pending: Array<Promise<Buffer>> = [];
  let next = 0;
  const startNext = () => {
    const part = lines.slice(next, next + request.recordsPerPart);
    next += part.length;
    const body = Buffer.concat(part.flatMap((line) => [line, NEWLINE]));
    const answer = invokeBatch(runtime, model, { body, mediaType: records.mediaType, encoder, recordErrors: 'fail', isCancelled: request.isCancelled });
    const answered = answer.then((result) => result.body);
    // Awaited in order later; a failure before its turn must not count as unhandled meanwhile.
    answered.catch(() => {});
    pending.push(answered);
  };
  while (pending.length < request.partsInFlight && next < lines.length) startNext();
  while (pending.length > 0) {
    const part = await pending.shift()!;
    if (next < lines.length && !request.isCancelled?.()) startNext();
    yield part;
  }
}

const NEWLINE = Buffer.from('\n');
