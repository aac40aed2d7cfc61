import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import type { DataCapture } from '../../capture/data-capture.js';
import { recordLines } from '../../codecs/batch-records.js';
import type { ResponseEncoder } from '../../codecs/codec.js';
import { modelStreamErrorEvent, payloadPartEvent } from '../../codecs/event-stream.js';
import { jsonLinesEncoder } from '../../codecs/jsonlines.js';
import type { Config } from '../../config/schema.js';
import { InferdError } from '../../errors.js';
import { invokeBatch } from '../../modes/batch-invocation.js';
import { invokeWhole } from '../../modes/invocation.js';
import { invokeStreamed } from '../../modes/streamed-invocation.js';
import type { Metrics } from '../../metrics.js';
import type { ModelInfo, Runtime } from '../../runtime/runtime.js';
import { mediaTypeOf, requestDecoder, responseEncoder } from '../content-types.js';
import { installCaptureHooks } from '../capture-hooks.js';
import { toInferdError } from '../error-handler.js';

const CUSTOM_ATTRIBUTES = 'x-amzn-sagemaker-custom-attributes';
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

/** Tells whether the client went away before its response was written. */
function clientGone(reply: FastifyReply): () => boolean {
  let gone = false;
  reply.raw.once('close', () => {
    gone = !reply.raw.writableFinished;
  });
  return () => gone;
}

/** Records in flight at once while a request is streamed, per model instance. */
const STREAM_PARTS_IN_FLIGHT_PER_INSTANCE = 2;

/** A record stream in Server-Sent Events: each record one `data:` event; a late failure one `error` event. */
async function* serverSentEvents(first: Buffer, rest: AsyncGenerator<Buffer>, log: FastifyBaseLogger): AsyncGenerator<string> {
  const frames = (part: Buffer) =>
    recordLines(part)
      .map((record) => `data: ${record.toString('utf8')}\n\n`)
      .join('');
  yield frames(first);
  try {
    for await (const part of rest) yield frames(part);
  } catch (error) {
    const inferdError = toInferdError(error);
    log.error({ err: error, code: inferdError.code }, `the stream failed after its first part: ${inferdError.message}`);
    yield `event: error\ndata: ${JSON.stringify(inferdError)}\n\n`;
  }
}

/** A record stream as AWS event stream messages: `PayloadPart`s, a late failure `ModelStreamError`. */
async function* eventStream(first: Buffer, rest: AsyncGenerator<Buffer>, log: FastifyBaseLogger): AsyncGenerator<Uint8Array> {
  yield payloadPartEvent(first);
  try {
    for await (const part of rest) yield payloadPartEvent(part);
  } catch (error) {
    const inferdError = toInferdError(error);
    log.error({ err: error, code: inferdError.code }, `the stream failed after its first part: ${inferdError.message}`);
    const errorCode = inferdError.code === 'INFERD_ERR_TIMEOUT' ? 'ModelInvocationTimeExceeded' : inferdError.code;
    yield modelStreamErrorEvent(errorCode, JSON.stringify(inferdError));
  }
}

/** `POST /invocations`, and SageMaker's runtime API for unchanged clients: `InvokeEndpoint` and `InvokeEndpointWithResponseStream`. */
export function invocationRoutes(runtime: Runtime, config: Config, metrics: Metrics, capture: DataCapture | undefined) {
  const errorCodes = new WeakMap<FastifyRequest, string>();

  /** What every invocation checks first: a model ready, no session, a body. */
  const accept = (request: FastifyRequest): { model: ModelInfo; body: Buffer } => {
    const model = runtime.model;
    if (!model || runtime.state !== 'ready') {
      throw new InferdError(runtime.state === 'loading' ? 'INFERD_ERR_NOT_READY' : 'INFERD_ERR_SHUTTING_DOWN', `the server is ${runtime.state}`);
    }
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

  const streamed = (request: FastifyRequest, reply: FastifyReply, model: ModelInfo, body: Buffer, mediaType: string, encoder: ResponseEncoder) =>
    invokeStreamed(runtime, model, {
      body,
      mediaType,
      encoder,
      recordsPerPart: model.batching.maxBatchSize,
      partsInFlight: STREAM_PARTS_IN_FLIGHT_PER_INSTANCE * model.maxInstances,
      isCancelled: clientGone(reply),
    });

  /** The first part is awaited before any header goes out: a failure there is a plain error answer. */
  const firstPart = async (parts: AsyncGenerator<Buffer>): Promise<Buffer> => {
    const first = await parts.next();
    if (first.done) throw new InferdError('INFERD_ERR_INTERNAL', 'the answer has no parts');
    return first.value;
  };

  const invoke = async (request: FastifyRequest, reply: FastifyReply) => {
    const { model, body } = accept(request);
    const { headers } = request;
    const decoder = requestDecoder(headers['content-type']);
    const wantsEvents = !config.batch.enabled && mediaTypeOf(headers.accept) === 'text/event-stream';
    const encoder = wantsEvents ? jsonLinesEncoder : responseEncoder(headers.accept, config.server.defaultAccept);
    encoder.assertCanEncode?.(model.signature);
    const send = (payload: Buffer) => withCustomAttributes(request, reply).type(encoder.mediaType).send(payload);

    if (config.batch.enabled) {
      const answer = await invokeBatch(runtime, model, {
        body,
        mediaType: decoder.mediaType,
        encoder,
        recordErrors: config.batch.recordErrors,
        shapeHeader: shapeHeaderOf(request),
        isCancelled: clientGone(reply),
      });
      metrics.queueWait(model.name, answer.queueMs);
      return send(answer.body);
    }

    // Records one a line can go out as they are computed: chunked, or as Server-Sent Events.
    if (wantsEvents || encoder.mediaType === 'application/jsonlines') {
      const answer = streamed(request, reply, model, body, decoder.mediaType, encoder);
      const first = await firstPart(answer.parts);
      if (wantsEvents) {
        return withCustomAttributes(request, reply).type('text/event-stream').send(Readable.from(serverSentEvents(first, answer.parts, request.log)));
      }
      if (answer.partCount === 1) return send(first);
      return withCustomAttributes(request, reply).type(answer.mediaType).send(Readable.from(prepend(first, answer.parts)));
    }

    const answer = await invokeWhole(runtime, model, { body, decoder, encoder, shapeHeader: shapeHeaderOf(request), isCancelled: clientGone(reply) });
    metrics.codec(model.name, 'decode', answer.decodeMs);
    metrics.queueWait(model.name, answer.queueMs);
    metrics.codec(model.name, 'encode', answer.encodeMs);
    return send(answer.body);
  };

  /** `InvokeEndpointWithResponseStream`: the client's Accept travels as `X-Amzn-SageMaker-Accept`. */
  const invokeWithResponseStream = async (request: FastifyRequest, reply: FastifyReply) => {
    const { model, body } = accept(request);
    const { headers } = request;
    const decoder = requestDecoder(headers['content-type']);
    const acceptHeader = headers['x-amzn-sagemaker-accept'];
    const encoder = responseEncoder(typeof acceptHeader === 'string' ? acceptHeader : headers.accept, config.server.defaultAccept);
    encoder.assertCanEncode?.(model.signature);
    const answer = streamed(request, reply, model, body, decoder.mediaType, encoder);
    const first = await firstPart(answer.parts);
    return withCustomAttributes(request, reply)
      .header('x-amzn-sagemaker-content-type', answer.mediaType)
      .type('application/vnd.amazon.eventstream')
      .send(Readable.from(eventStream(first, answer.parts, request.log)));
  };

  return async (app: FastifyInstance) => {
    if (capture) installCaptureHooks(app, capture);
    app.addHook('onError', (request, _reply, error, done) => {
      errorCodes.set(request, toInferdError(error).code);
      done();
    });
    // Counted from arrival to the last byte (or the client leaving): what the container holds.
    app.addHook('onRequest', (_request, reply, done) => {
      reply.raw.once('close', metrics.load.started());
      done();
    });
    app.addHook('onResponse', (request, reply, done) => {
      metrics.request(runtime.model?.name ?? 'none', reply.statusCode, reply.elapsedTime, errorCodes.get(request));
      done();
    });
    app.post('/invocations', invoke);
    app.post('/endpoints/:endpointName/invocations', { config: { runtimeApi: 'invoke' } }, invoke);
    app.post('/endpoints/:endpointName/invocations-response-stream', { config: { runtimeApi: 'stream' } }, invokeWithResponseStream);
  };
}

async function* prepend(first: Buffer, rest: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
  yield first;
  yield* rest;
}
