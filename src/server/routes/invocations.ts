import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { DataCapture } from '../../capture/data-capture.js';
import type { Config } from '../../config/schema.js';
import { InferdError } from '../../errors.js';
import { invokeBatch } from '../../modes/batch-invocation.js';
import { invokeWhole } from '../../modes/invocation.js';
import type { Metrics } from '../../metrics.js';
import type { Runtime } from '../../runtime/runtime.js';
import { requestDecoder, responseEncoder } from '../content-types.js';
import { installCaptureHooks } from '../capture-hooks.js';
import { toInferdError } from '../error-handler.js';

const CUSTOM_ATTRIBUTES = 'x-amzn-sagemaker-custom-attributes';

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

/** `POST /invocations`, and `POST /endpoints/:name/invocations` for unchanged SageMaker runtime clients. */
export function invocationRoutes(runtime: Runtime, config: Config, metrics: Metrics, capture: DataCapture | undefined) {
  const errorCodes = new WeakMap<FastifyRequest, string>();

  const invoke = async (request: FastifyRequest, reply: FastifyReply) => {
    const model = runtime.model;
    if (!model || runtime.state !== 'ready') {
      throw new InferdError(runtime.state === 'loading' ? 'INFERD_ERR_NOT_READY' : 'INFERD_ERR_SHUTTING_DOWN', `the server is ${runtime.state}`);
    }
    const { headers } = request;
    const decoder = requestDecoder(headers['content-type']);
    const encoder = responseEncoder(headers.accept, config.server.defaultAccept);
    encoder.assertCanEncode?.(model.signature);
    const body = request.body as Buffer | undefined;
    if (!body || body.length === 0) throw new InferdError('INFERD_ERR_BODY_EMPTY', 'the request has no body');

    const send = (payload: Buffer) => {
      const customAttributes = headers[CUSTOM_ATTRIBUTES];
      if (customAttributes !== undefined) reply.header(CUSTOM_ATTRIBUTES, customAttributes);
      return reply.type(encoder.mediaType).send(payload);
    };

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

    const answer = await invokeWhole(runtime, model, { body, decoder, encoder, shapeHeader: shapeHeaderOf(request), isCancelled: clientGone(reply) });
    metrics.codec(model.name, 'decode', answer.decodeMs);
    metrics.queueWait(model.name, answer.queueMs);
    metrics.codec(model.name, 'encode', answer.encodeMs);
    return send(answer.body);
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
    app.post('/endpoints/:endpointName/invocations', invoke);
  };
}
