import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import type { DataCapture } from '../../capture/data-capture.js';
import { recordLines } from '../../codecs/batch-records.js';
import type { RequestDecoder, ResponseEncoder } from '../../codecs/codec.js';
import { internalStreamFailureEvent, modelStreamErrorEvent, payloadPartEvent } from '../../codecs/event-stream.js';
import { jsonLinesEncoder } from '../../codecs/jsonlines.js';
import type { LoadSignals } from '../../autoscale/load-signals.js';
import type { Config } from '../../config/schema.js';
import type { DataPlane } from '../../data-plane.js';
import { InferdError } from '../../errors.js';
import { invokeBatch } from '../../modes/batch-invocation.js';
import { invokeWhole } from '../../modes/invocation.js';
import { invokeStreamed } from '../../modes/streamed-invocation.js';
import type { Metrics } from '../../metrics.js';
import type { ModelInfo, Runtime } from '../../runtime/runtime.js';
import { mediaTypeOf, requestDecoder, responseEncoder } from '../../codecs/negotiation.js';
import { installCaptureHooks } from '../capture-hooks.js';
import { clientGone } from '../client-gone.js';
import { toInferdError } from '../error-handler.js';
import { runtimeApiRouteOf } from '../runtime-api.js';

const CUSTOM_ATTRIBUTES = 'x-amzn-sagemaker-custom-attributes';
const TARGET_MODEL = 'x-amzn-sagemaker-target-model';
const SESSION_ID = 'x-amzn-sagemaker-session-id';

/**
 * Node joins a repeated header with ", ", which would read as one longer shape. The distinct
 * view is only built when the header is there at all: it copies every header.
 */
function shapeHeaderOf(request: FastifyRequest): string | undefined {
  if (request.headers['x-inferd-shape'] === undefined) return undefined;
  const values = request.raw.headersDistinct['x-inferd-shape'] ?? [];
  if (values.length > 1) throw new InferdError('INFERD_ERR_BAD_REQUEST', 'X-Inferd-Shape must be sent once');
  return values[0];
}

/** Records in one part of a streamed answer, and parts computed ahead per model instance. */
const STREAM_RECORDS_PER_PART = 64;
const STREAM_PARTS_IN_FLIGHT_PER_INSTANCE = 2;

/**
 * The frames of a streamed answer: its first part (already computed, before any header went
 * out), then the rest; a failure after the first part can no longer change the status, so it
 * becomes a last frame of its own, and is logged as the error handler would.
 */
async function* framed<T>(
  first: Buffer,
  rest: AsyncGenerator<Buffer>,
  frame: (part: Buffer) => T,
  failureFrame: (error: InferdError) => T,
  failed: (error: InferdError) => void,
): AsyncGenerator<T> {
  yield frame(first);
  try {
    for await (const part of rest) yield frame(part);
  } catch (error) {
    const inferdError = toInferdError(error);
    failed(inferdError);
    yield failureFrame(inferdError);
  }
}

/**
 * A chunked answer whose late failure ends the response unfinished: the client sees a broken
 * stream, never a partial answer that looks whole.
 */
async function* brokenOnFailure(first: Buffer, rest: AsyncGenerator<Buffer>, failed: (error: InferdError) => void): AsyncGenerator<Buffer> {
  yield first;
  try {
    yield* rest;
  } catch (error) {
    failed(toInferdError(error));
    throw error;
  }
}

/** Logged as the error handler logs: by status. */
function logLateFailure(log: FastifyBaseLogger, error: InferdError): void {
  const line = { err: error, code: error.code };
  const message = `the stream failed after its first part: ${error.message}`;
  if (error.statusCode >= 500) log.error(line, message);
  else log.info(line, message);
}

/** Server-Sent Events: each record one `data:` event; a late failure one `error` event. */
const serverSentEvent = (part: Buffer) =>
  recordLines(part)
    .map((record) => `data: ${record.toString('utf8')}\n\n`)
    .join('');
const serverSentError = (error: InferdError) => `event: error\ndata: ${JSON.stringify(error)}\n\n`;

/** AWS event stream: a late failure is SageMaker's ModelStreamError, or InternalStreamFailure for ours. */
const streamFailureEvent = (error: InferdError) => {
  if (error.code === 'INFERD_ERR_INTERNAL') return internalStreamFailureEvent(error.message);
  return modelStreamErrorEvent(error.code === 'INFERD_ERR_TIMEOUT' ? 'ModelInvocationTimeExceeded' : error.code, JSON.stringify(error));
};

/** One Buffer a chunk, computed no further ahead than the stream is read. */
const chunks = <T>(frames: AsyncGenerator<T>) => Readable.from(frames, { highWaterMark: 1 });

declare module 'fastify' {
  interface FastifyRequest {
    /** The model an invocation named, for its request metrics; null until it is admitted. */
    inferdModel: string | null;
    /** The code of the error it was answered with, for its request metrics. */
    inferdErrorCode: string | null;
  }
}

interface Admitted {
  readonly model: ModelInfo;
  readonly body: Buffer;
}

export interface InvocationContext {
  readonly dataPlane: DataPlane;
  readonly runtime: Runtime;
  readonly config: Config;
  readonly metrics: Metrics;
  /** Requests in the container, for external autoscalers. */
  readonly load: LoadSignals;
  readonly capture: DataCapture | undefined;
}

/**
 * `POST /invocations`, SageMaker's runtime API for unchanged clients (`InvokeEndpoint` and
 * `InvokeEndpointWithResponseStream`), and `POST /models/{name}/invoke` (multi-model endpoints).
 */
export function invocationRoutes({ dataPlane, runtime, config, metrics, load, capture }: InvocationContext) {
  /** The model a request names by its route or `X-Amzn-SageMaker-Target-Model`, or the default model. */
  const modelOf = (request: FastifyRequest): ModelInfo | Promise<ModelInfo> => {
    const { name } = request.params as { name?: string };
    const target = request.headers[TARGET_MODEL];
    const targetModel = typeof target === 'string' ? target : undefined;
    // Every log line of a request that names its model says which: the client's TargetModel as
    // SageMaker sends it, and on /models/{name}/invoke the name SageMaker loaded it under.
    if (name !== undefined || targetModel !== undefined) request.log = request.log.child({ model: name, targetModel });
    return name !== undefined ? runtime.model(name) : dataPlane.resolve(targetModel);
  };

  /** What every invocation checks first: its model ready, no session, a body. */
  const admit = (request: FastifyRequest): Admitted | Promise<Admitted> => {
    const model = modelOf(request);
    // A loaded model is answered without a promise: most requests find theirs loaded.
    return model instanceof Promise ? model.then((loaded) => admitted(request, loaded)) : admitted(request, model);
  };

  const admitted = (request: FastifyRequest, model: ModelInfo): Admitted => {
    request.inferdModel = model.name;
    if (request.headers[SESSION_ID] !== undefined) {
      throw new InferdError('INFERD_ERR_SESSIONS_DISABLED', 'X-Amzn-SageMaker-Session-Id: stateful sessions not enabled; inferd serves stateless models');
    }
    const body = request.body as Buffer | undefined;
    if (!body || body.length === 0) throw new InferdError('INFERD_ERR_BODY_EMPTY', 'the request has no body');
    return { model, body };
  };

  const withCustomAttributes = (request: FastifyRequest, reply: FastifyReply) => {
    const customAttributes = request.headers[CUSTOM_ATTRIBUTES];
    if (customAttributes !== undefined) reply.header(CUSTOM_ATTRIBUTES, customAttributes);
    return reply;
  };

  const streamed = (request: FastifyRequest, reply: FastifyReply, model: ModelInfo, body: Buffer, decoder: RequestDecoder, encoder: ResponseEncoder) =>
    invokeStreamed(runtime, model, {
      body,
      decoder,
      encoder,
      shapeHeader: shapeHeaderOf(request),
      recordsPerPart: STREAM_RECORDS_PER_PART,
      partsInFlight: STREAM_PARTS_IN_FLIGHT_PER_INSTANCE * model.maxInstances,
      isCancelled: clientGone(reply),
    });

  /**
   * A failure after the first part is logged and counted under its code. An answer that still
   * ends normally is counted when it does (onResponse); one broken off never reaches onResponse,
   * so it is counted here.
   */
  const lateFailure =
    (request: FastifyRequest, reply: FastifyReply, model: ModelInfo, { answerEnds } = { answerEnds: true }) =>
    (error: InferdError) => {
      logLateFailure(request.log, error);
      request.inferdErrorCode = error.code;
      if (!answerEnds) metrics.request(model.name, reply.statusCode, reply.elapsedTime, error.code);
    };

  /** The first part is awaited before any header goes out: a failure there is a plain error answer. */
  const firstPart = async (parts: AsyncGenerator<Buffer>): Promise<Buffer> => {
    const first = await parts.next();
    if (first.done) throw new InferdError('INFERD_ERR_INTERNAL', 'the answer has no parts');
    return first.value;
  };

  const send = (request: FastifyRequest, reply: FastifyReply, encoder: ResponseEncoder, payload: Buffer) =>
    withCustomAttributes(request, reply).type(encoder.mediaType).send(payload);

  /** The common case, kept apart from the others: one answer, whole. */
  const answerWhole = async (request: FastifyRequest, reply: FastifyReply, model: ModelInfo, body: Buffer, decoder: RequestDecoder, encoder: ResponseEncoder) => {
    const answer = await invokeWhole(runtime, model, { body, decoder, encoder, shapeHeader: shapeHeaderOf(request), isCancelled: clientGone(reply) });
    metrics.codec(model.name, 'decode', answer.decodeMs);
    metrics.queueWait(model.name, answer.queueMs);
    metrics.codec(model.name, 'encode', answer.encodeMs);
    return send(request, reply, encoder, answer.body);
  };

  /** Under `SAGEMAKER_BATCH`: a mini-batch of records, answered record for record. */
  const answerBatch = async (request: FastifyRequest, reply: FastifyReply, model: ModelInfo, body: Buffer, decoder: RequestDecoder, encoder: ResponseEncoder) => {
    const answer = await invokeBatch(runtime, model, {
      body,
      mediaType: decoder.mediaType,
      encoder,
      recordErrors: config.batch.recordErrors,
      shapeHeader: shapeHeaderOf(request),
      isCancelled: clientGone(reply),
    });
    metrics.queueWait(model.name, answer.queueMs);
    return send(request, reply, encoder, answer.body);
  };

  /** Records one a line go out as they are computed: chunked, or as Server-Sent Events. */
  const answerStreamed = async (request: FastifyRequest, reply: FastifyReply, model: ModelInfo, body: Buffer, decoder: RequestDecoder, encoder: ResponseEncoder, wantsEvents: boolean) => {
    const answer = streamed(request, reply, model, body, decoder, encoder);
    const first = await firstPart(answer.parts);
    if (wantsEvents) {
      return withCustomAttributes(request, reply)
        .type('text/event-stream')
        .header('cache-control', 'no-cache')
        .send(chunks(framed(first, answer.parts, serverSentEvent, serverSentError, lateFailure(request, reply, model))));
    }
    if (answer.partCount === 1) return send(request, reply, encoder, first);
    return withCustomAttributes(request, reply)
      .type(answer.mediaType)
      .send(chunks(brokenOnFailure(first, answer.parts, lateFailure(request, reply, model, { answerEnds: false }))));
  };

  /**
   * Not an async function itself: an async function keeps all its locals while it waits, and
   * every request of the hot path would carry those of the paths it does not take.
   */
  const answerAdmitted = (request: FastifyRequest, reply: FastifyReply, { model, body }: Admitted) => {
    const { headers } = request;
    const decoder = requestDecoder(headers['content-type']);
    // Only the container route streams: on the runtime route a late failure must still be a
    // ModelError with its status, which a stream that has begun can no longer give.
    const canStream = !config.batch.enabled && runtimeApiRouteOf(request) === undefined;
    const wantsEvents = canStream && mediaTypeOf(headers.accept) === 'text/event-stream';
    const encoder = wantsEvents ? jsonLinesEncoder : responseEncoder(headers.accept, config.server.defaultAccept);
    encoder.assertCanEncode?.(model.signature);
    if (config.batch.enabled) return answerBatch(request, reply, model, body, decoder, encoder);
    if (wantsEvents || (canStream && encoder.mediaType === 'application/jsonlines')) {
      return answerStreamed(request, reply, model, body, decoder, encoder, wantsEvents);
    }
    return answerWhole(request, reply, model, body, decoder, encoder);
  };

  const invoke = (request: FastifyRequest, reply: FastifyReply) => {
    const admission = admit(request);
    return admission instanceof Promise ? admission.then((admitted) => answerAdmitted(request, reply, admitted)) : answerAdmitted(request, reply, admission);
  };

  /** `InvokeEndpointWithResponseStream`: the client's Accept travels as `X-Amzn-SageMaker-Accept`. */
  const invokeWithResponseStream = async (request: FastifyRequest, reply: FastifyReply) => {
    const admission = admit(request);
    const { model, body } = admission instanceof Promise ? await admission : admission;
    const { headers } = request;
    const decoder = requestDecoder(headers['content-type']);
    const acceptHeader = headers['x-amzn-sagemaker-accept'];
    const encoder = responseEncoder(typeof acceptHeader === 'string' ? acceptHeader : headers.accept, config.server.defaultAccept);
    encoder.assertCanEncode?.(model.signature);
    const answer = streamed(request, reply, model, body, decoder, encoder);
    const first = await firstPart(answer.parts);
    return withCustomAttributes(request, reply)
      .header('x-amzn-sagemaker-content-type', answer.mediaType)
      .type('application/vnd.amazon.eventstream')
      .send(chunks(framed(first, answer.parts, payloadPartEvent, streamFailureEvent, lateFailure(request, reply, model))));
  };

  return async (app: FastifyInstance) => {
    // Declared once, so every request of these routes has the same shape (a WeakMap per request cost more).
    app.decorateRequest('inferdModel', null);
    app.decorateRequest('inferdErrorCode', null);
    if (capture) installCaptureHooks(app, capture);
    app.addHook('onError', (request, _reply, error, done) => {
      request.inferdErrorCode = toInferdError(error).code;
      done();
    });
    // Counted from arrival to the last byte (or the client leaving): what the container holds.
    // A response emits 'close' once, either way; one listener for all, nothing made per request.
    const answered = () => load.answered();
    app.addHook('onRequest', (_request, reply, done) => {
      load.arrived();
      reply.raw.on('close', answered);
      done();
    });
    app.addHook('onResponse', (request, reply, done) => {
      metrics.request(request.inferdModel ?? 'none', reply.statusCode, reply.elapsedTime, request.inferdErrorCode ?? undefined);
      done();
    });
    app.post('/invocations', invoke);
    app.post('/endpoints/:endpointName/invocations', { config: { runtimeApi: 'invoke' } }, invoke);
    app.post('/endpoints/:endpointName/invocations-response-stream', { config: { runtimeApi: 'stream' } }, invokeWithResponseStream);
    app.post('/models/:name/invoke', invoke);
  };
}

