/**
 * One mini-batch of a transform job through the in-process inference API: what `POST
 * /invocations` does under `SAGEMAKER_BATCH`, and what `inferd transform` does without HTTP.
 * N records in give exactly N records out, one a line, in order. With `recordErrors: 'line'` a
 * record that cannot be decoded or run is answered by an error line in its place, and the others
 * are still answered; with `'fail'` it fails the whole mini-batch.
 */
import { batchEncoder, decodeBatchBody, errorRecord, isLineType, recordLines } from '../codecs/batch-records.js';
import type { ResponseEncoder } from '../codecs/codec.js';
import { ownedTensors } from '../codecs/tensor.js';
import { InferdError, type ErrorCode } from '../errors.js';
import type { ModelInfo, Runtime } from '../runtime/runtime.js';

export type RecordErrors = 'fail' | 'line';

export interface BatchInvocation {
  readonly body: Buffer;
  /** Lower-case, without parameters. */
  readonly mediaType: string;
  /** The negotiated response encoder; JSON is written a record a line. */
  readonly encoder: ResponseEncoder;
  readonly recordErrors: RecordErrors;
  readonly shapeHeader?: string | undefined;
  readonly isCancelled?: (() => boolean) | undefined;
  /** A later part of a request already admitted (see the runtime's `SubmitOptions`). */
  readonly admitted?: boolean | undefined;
}

export interface BatchAnswer {
  readonly body: Buffer;
  /** Longest a part of this mini-batch waited in the queue. */
  readonly queueMs: number;
}

/** Errors that belong to one record's data, not to the server: the ones worth an error line. */
const RECORD_ERRORS: ReadonlySet<ErrorCode> = new Set(['INFERD_ERR_BODY_MALFORMED', 'INFERD_ERR_INPUT_INVALID', 'INFERD_ERR_INFERENCE_FAILED']);

function isRecordError(error: unknown): error is InferdError {
  return error instanceof InferdError && RECORD_ERRORS.has(error.code);
}

/** Records answered one at a time, at most this many in the queue at once, when their batch failed. */
const RECORD_RERUN_CONCURRENCY = 16;

export async function invokeBatch(runtime: Runtime, model: ModelInfo, request: BatchInvocation): Promise<BatchAnswer> {
  const encoder = batchEncoder(request.encoder);
  try {
    return await inferBody(runtime, model, request.body, request, encoder);
  } catch (error) {
    if (request.recordErrors !== 'line' || !isLineType(request.mediaType) || !isRecordError(error)) throw error;
    return answerRecordByRecord(runtime, model, request, encoder);
  }
}

async function inferBody(runtime: Runtime, model: ModelInfo, body: Buffer, request: BatchInvocation, encoder: ResponseEncoder): Promise<BatchAnswer> {
  const decoded = decodeBatchBody(body, request.mediaType, model.signature, { shapeHeader: request.shapeHeader });
  const result = await runtime.infer(model.name, ownedTensors(decoded.inputs, body), { isCancelled: request.isCancelled, admitted: request.admitted });
  const encoded = encoder.encode(result.outputs, model.signature, { style: decoded.style, modelName: model.name });
  return { body: encoded, queueMs: result.queueMs };
}

/**
 * The good records still go as one batch; only when that batch fails too (a record whose data
 * breaks the model, not its decoding) is each record run on its own to find the culprits.
 */
async function answerRecordByRecord(runtime: Runtime, model: ModelInfo, request: BatchInvocation, encoder: ResponseEncoder): Promise<BatchAnswer> {
  const records = recordLines(request.body);
  if (records.length === 0) throw new InferdError('INFERD_ERR_BODY_EMPTY', 'the request has no records, only blank lines');
  const answers = new Array<string | undefined>(records.length);
  const good: number[] = [];
  records.forEach((record, i) => {
    try {
      decodeBatchBody(record, request.mediaType, model.signature, {});
      good.push(i);
    } catch (error) {
      if (!isRecordError(error)) throw error;
      answers[i] = errorRecord(encoder.mediaType, error);
    }
  });

  let queueMs = 0;
  const answer = async (indexes: readonly number[]) => {
    const body = Buffer.concat(indexes.flatMap((i) => [records[i]!, Buffer.from('\n')]));
    const result = await inferBody(runtime, model, body, request, encoder);
    queueMs = Math.max(queueMs, result.queueMs);
    const lines = recordLines(result.body);
    if (lines.length !== indexes.length) {
      throw new InferdError('INFERD_ERR_INTERNAL', `${indexes.length} records gave ${lines.length} answer lines`);
    }
    indexes.forEach((record, k) => (answers[record] = lines[k]!.toString('utf8')));
  };
  if (good.length > 0) {
    try {
      await answer(good);
    } catch (error) {
      if (!isRecordError(error)) throw error;
      for (let from = 0; from < good.length; from += RECORD_RERUN_CONCURRENCY) {
        await Promise.all(
          good.slice(from, from + RECORD_RERUN_CONCURRENCY).map((i) =>
            answer([i]).catch((recordError: unknown) => {
              if (!isRecordError(recordError)) throw recordError;
              answers[i] = errorRecord(encoder.mediaType, recordError);
            }),
          ),
        );
      }
    }
  }
  return { body: Buffer.from(answers.map((line) => `${line}\n`).join(''), 'utf8'), queueMs };
}
