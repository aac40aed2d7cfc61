/**
 * Runs one async request: reads its payload, answers it through the in-process inference API,
 * and writes the answer to its output location. A payload that fits the real-time limit is
 * answered byte for byte as `/invocations` answers it. A larger record stream (CSV, JSON Lines)
 * goes through the batch-transform path, record by record, so a payload of up to 1 GB is never
 * held whole, and is stored a record a line under the type that says so (`text/csv` or
 * `application/jsonlines`); any other payload is read whole, up to `maxPayloadBytes`.
 */
import { isLineType } from '../../codecs/batch-records.js';
import { InferdError, type ErrorCode } from '../../errors.js';
import type { DataPlane } from '../../data-plane.js';
import type { ModelInfo, Runtime } from '../../runtime/runtime.js';
import { requestDecoder, responseEncoder } from '../../codecs/negotiation.js';
import { StorageError, type ObjectStore } from '../../storage/object-store.js';
import { invokeWhole } from '../invocation.js';
import { inProcessInvoker } from '../transform/invokers.js';
import { transformObject, type TransformProgress } from '../transform/job.js';
import { resolveOptions, TransformOptionsSchema } from '../transform/options.js';
import type { AsyncJob } from './queue.js';

/** Why a request failed, as counted in `inferd_async_failures_total`. */
export type FailureKind = 'request_download' | 'payload_too_large' | 'invocation' | 'timeout' | 'response_upload';

/** A failed request: the kind, inferd's error code, and the reason given to the client. */
export class JobFailure extends Error {
  constructor(
    readonly kind: FailureKind,
    readonly code: ErrorCode,
    readonly reason: string,
    readonly statusCode: number,
  ) {
    super(reason);
    this.name = 'JobFailure';
  }

  /** In SageMaker's words where it has them ("Received client error (4xx) from model"). */
  static from(error: unknown, job: AsyncJob): JobFailure {
    if (error instanceof JobFailure) return error;
    const cause = error instanceof Error ? error.cause : undefined;
    const message = error instanceof Error ? error.message : String(error);
    const inferd = error instanceof InferdError ? error : cause instanceof InferdError ? cause : undefined;
    if (inferd?.code === 'INFERD_ERR_TIMEOUT') return new JobFailure('timeout', inferd.code, `ModelTimeout: ${inferd.message}`, 504);
    if (inferd?.code === 'INFERD_ERR_PAYLOAD_TOO_LARGE') return new JobFailure('payload_too_large', inferd.code, `ClientError: ${inferd.message}`, 413);
    if (inferd) {
      const side = inferd.statusCode < 500 ? 'client' : 'server';
      const reason = `${side === 'client' ? 'ClientError' : 'ServerError'}: Received ${side} error (${inferd.statusCode}) from model: ${inferd.code}: ${message}`;
      return new JobFailure('invocation', inferd.code, reason, inferd.statusCode);
    }
    if (error instanceof StorageError || cause instanceof StorageError) {
      return new JobFailure('response_upload', 'INFERD_ERR_STORAGE_UNAVAILABLE', `ServerError: could not write ${job.outputLocation}: ${message}`, 503);
    }
    return new JobFailure('invocation', 'INFERD_ERR_INTERNAL', `ServerError: ${message}`, 500);
  }
}

export interface RunDeps {
  readonly runtime: Runtime;
  readonly dataPlane: DataPlane;
  readonly openStore: (uri: string) => ObjectStore;
  readonly defaultAccept: string;
  readonly maxPayloadBytes: number;
  /** Payloads up to this size are answered exactly as `/invocations` answers them. */
  readonly realTimeMaxPayloadBytes: number;
  /** Answers at most this large are read back for the notification; 0: none. */
  readonly keepResponseUpToBytes: number;
  /** Aborted when the request runs past its invocation timeout. */
  readonly signal: AbortSignal;
}

export interface JobResult {
  readonly contentType: string;
  readonly responseBody?: Buffer | undefined;
}

/**
 * CSV and JSON Lines payloads are record streams. `application/json` is one document here, as in
 * real time (batch transform alone reads it a record a line).
 */
export function isRecordStream(mediaType: string): boolean {
  return mediaType !== 'application/json' && isLineType(mediaType);
}

const SILENT: TransformProgress = { start() {}, bytesRead() {}, recordsDone() {}, fileDone() {} };

/** Mini-batches of a streamed payload: small, so that several keep every instance busy. */
const STREAM_MINI_BATCH_MB = 1;

async function download<T>(job: AsyncJob, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof InferdError) throw error;
    throw new JobFailure('request_download', 'INFERD_ERR_ASYNC_INPUT_NOT_FOUND', `ClientError: could not read the input ${job.inputLocation}: ${(error as Error).message}`, 400);
  }
}

export async function runJob(job: AsyncJob, deps: RunDeps): Promise<JobResult> {
  // The model is waited for however long it loads (the job's own timeout bounds it), and held
  // from eviction while the input is read.
  const { model, release } = await deps.dataPlane.acquire(job.targetModel);
  try {
    return await runOn(model, job, deps);
  } finally {
    release();
  }
}

async function runOn(model: ModelInfo, job: AsyncJob, deps: RunDeps): Promise<JobResult> {
  const decoder = requestDecoder(job.contentType);
  const encoder = responseEncoder(job.accept, deps.defaultAccept);
  encoder.assertCanEncode?.(model.signature);
  const outputStore = deps.openStore(job.outputLocation);
  const isCancelled = () => deps.signal.aborted;
  // An async request was admitted when it was accepted, and the requests running at once are
  // bounded by maxConcurrentInvocations: a queue full of real-time requests makes it wait its
  // turn rather than fail it.
  const admitted = true;
  if (job.payloadBase64 !== undefined) {
    const answer = await invokeWhole(deps.runtime, model, { body: Buffer.from(job.payloadBase64, 'base64'), decoder, encoder, isCancelled, admitted });
    return writeAnswer(job, deps, outputStore, answer.body, encoder.mediaType);
  }
  const inputStore = deps.openStore(job.inputLocation);
  const info = await download(job, () => inputStore.stat(job.inputLocation));

  if (isRecordStream(decoder.mediaType) && info.sizeBytes > deps.realTimeMaxPayloadBytes) {
    // Written a record a line: JSON answers are JSON Lines, and stored as such.
    const accept = encoder.mediaType === 'application/json' ? 'application/jsonlines' : encoder.mediaType;
    const options = resolveOptions(
      TransformOptionsSchema.parse({
        input: job.inputLocation,
        output: job.outputLocation,
        contentType: decoder.mediaType,
        accept,
        splitType: 'Line',
        batchStrategy: 'MultiRecord',
        maxPayloadMb: STREAM_MINI_BATCH_MB,
        maxConcurrentTransforms: model.maxInstances * 2,
        assembleWith: 'Line',
      }),
      {},
    );
    const invoker = inProcessInvoker(deps.runtime, model, { contentType: decoder.mediaType, accept, recordErrors: 'fail', isCancelled, admitted });
    await transformObject({ options, invoker, openStore: deps.openStore, progress: SILENT }, { uri: job.inputLocation, relativePath: job.inferenceId, sizeBytes: info.sizeBytes }, job.outputLocation);
    const written = deps.keepResponseUpToBytes > 0 ? await outputStore.stat(job.outputLocation) : undefined;
    const responseBody = written && written.sizeBytes <= deps.keepResponseUpToBytes ? await outputStore.getBuffer(job.outputLocation) : undefined;
    return { contentType: accept, responseBody };
  }

  if (!isRecordStream(decoder.mediaType) && info.sizeBytes > deps.maxPayloadBytes) {
    throw new InferdError('INFERD_ERR_PAYLOAD_TOO_LARGE', `the payload is ${info.sizeBytes} bytes, more than INFERD_ASYNC_MAX_PAYLOAD_MB allows`);
  }
  const body = await download(job, () => inputStore.getBuffer(job.inputLocation));
  const answer = await invokeWhole(deps.runtime, model, { body, decoder, encoder, isCancelled, admitted });
  return writeAnswer(job, deps, outputStore, answer.body, encoder.mediaType);
}

async function writeAnswer(job: AsyncJob, deps: RunDeps, outputStore: ObjectStore, body: Buffer, contentType: string): Promise<JobResult> {
  if (deps.signal.aborted) throw new InferdError('INFERD_ERR_TIMEOUT', 'the invocation ran past its timeout');
  await outputStore.put(job.outputLocation, body, { contentType });
  return { contentType, responseBody: body.length <= deps.keepResponseUpToBytes ? body : undefined };
}
