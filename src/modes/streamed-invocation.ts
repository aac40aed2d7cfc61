/**
 * A multi-record request answered record by record, for response streaming: its records (CSV
 * rows, JSON Lines, the items of a JSON `instances` array) go through the in-process inference
 * API in parts of `recordsPerPart`, `partsInFlight` at a time, and each part's answer is yielded,
 * in order, as soon as it and those before it are done. The first records therefore go out
 * before the last are computed. Every part holds whole records, one a line (CSV or JSON Lines),
 * so a client can split the stream between parts. Anything else is answered in one part.
 */
import { batchEncoder, isLineType, recordLines } from '../codecs/batch-records.js';
import type { RequestDecoder, ResponseEncoder } from '../codecs/codec.js';
import { InferdError, malformedBody } from '../errors.js';
import type { ModelInfo, Runtime } from '../runtime/runtime.js';
import { invokeBatch } from './batch-invocation.js';
import { invokeWhole } from './invocation.js';

export interface StreamedInvocation {
  readonly body: Buffer;
  readonly decoder: RequestDecoder;
  readonly encoder: ResponseEncoder;
  readonly shapeHeader?: string | undefined;
  /** Records in one part. */
  readonly recordsPerPart: number;
  /** Parts computed ahead of the one being sent. */
  readonly partsInFlight: number;
  readonly isCancelled?: (() => boolean) | undefined;
}

export interface StreamedAnswer {
  /** The parts' media type: JSON records are written a record a line (`application/jsonlines`). */
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
  if (mediaType === 'application/json') return jsonRecords(body);
  if (!isLineType(mediaType)) return undefined;
  const lines = recordLines(body);
  if (lines.length === 0) throw new InferdError('INFERD_ERR_BODY_EMPTY', 'the request has no records, only blank lines');
  return { lines, mediaType };
}

/** A model whose batch dimension is fixed takes its records whole, not in parts. */
const takesParts = (model: ModelInfo) => model.signature.inputs.every((input) => input.shape[0] === null);

export function invokeStreamed(runtime: Runtime, model: ModelInfo, request: StreamedInvocation): StreamedAnswer {
  const records = isLineType(request.encoder.mediaType) && takesParts(model) ? recordsOf(request.body, request.decoder.mediaType) : undefined;
  if (records === undefined) {
    const whole = async function* () {
      const { body, decoder, encoder, shapeHeader, isCancelled } = request;
      yield (await invokeWhole(runtime, model, { body, decoder, encoder, shapeHeader, isCancelled })).body;
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
  let stopped = false;
  // Once the stream has ended, failed or lost its client, parts not yet run are dropped.
  const isCancelled = () => stopped || (request.isCancelled?.() ?? false);
  const pending: Array<Promise<Buffer>> = [];
  let next = 0;
  const startNext = () => {
    const part = lines.slice(next, next + request.recordsPerPart);
    // The queue's verdict on the first part is the request's: a later part is never refused
    // for a full queue half-way through the stream.
    const admitted = next > 0;
    const partRecords = `records ${next + 1}-${next + part.length}`;
    next += part.length;
    const body = Buffer.concat(part.flatMap((line) => [line, NEWLINE]));
    const answered = invokeBatch(runtime, model, { body, mediaType: records.mediaType, encoder, recordErrors: 'fail', shapeHeader: request.shapeHeader, isCancelled, admitted }).then(
      (result) => result.body,
      // A decoder counts lines within the part; the client counts them within its request.
      (error: unknown) => {
        throw error instanceof InferdError ? new InferdError(error.code, `${partRecords} of the request: ${error.message}`) : error;
      },
    );
    // Awaited in order later; a failure before its turn must not count as unhandled meanwhile.
    answered.catch(() => {});
    pending.push(answered);
  };
  try {
    while (pending.length < request.partsInFlight && next < lines.length) startNext();
    while (pending.length > 0) {
      const part = await pending.shift()!;
      if (next < lines.length) startNext();
      yield part;
    }
  } finally {
    stopped = true;
  }
}

const NEWLINE = Buffer.from('\n');
