/**
 * The one place errors become responses: `{ code, message }`, the status that code maps to, a
 * `Retry-After` on transient 503s, and never a stack trace. Fastify's own errors are translated
 * to inferd codes so a client sees one vocabulary.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { InferdError, type ErrorCode } from '../errors.js';

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'INFERD_ERR_PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'INFERD_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'INFERD_ERR_BODY_MALFORMED',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INFERD_ERR_BODY_EMPTY',
  FST_ERR_CTP_INVALID_TYPE: 'INFERD_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_BAD_URL: 'INFERD_ERR_BAD_REQUEST',
};

export interface ErrorHandlerOptions {
  readonly maxPayloadMb: number;
}

export function toInferdError(error: unknown, { maxPayloadMb }: ErrorHandlerOptions): InferdError {
  if (error instanceof InferdError) return error;
  const fastifyError = error as Partial<FastifyError>;
  const code = fastifyError.code ? FASTIFY_CODES[fastifyError.code] : undefined;
  if (code === 'INFERD_ERR_PAYLOAD_TOO_LARGE') {
    return new InferdError(
      code,
      `the request body is larger than ${maxPayloadMb} MB (the limit set by SAGEMAKER_MAX_PAYLOAD_IN_MB)`,
    );
  }
  if (code) return new InferdError(code, fastifyError.message ?? code);
  const status = fastifyError.statusCode ?? 500;
  if (status >= 400 && status < 500) return new InferdError('INFERD_ERR_BAD_REQUEST', fastifyError.message ?? 'bad request');
  return new InferdError('INFERD_ERR_INTERNAL', 'internal server error', { cause: error });
}

export function sendError(reply: FastifyReply, error: InferdError): FastifyReply {
  if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
  return reply.code(error.statusCode).type('application/json').send(JSON.stringify(error));
}

export function installErrorHandler(app: FastifyInstance, options: ErrorHandlerOptions): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const inferdError = toInferdError(error, options);
    if (inferdError.statusCode >= 500) request.log.error({ err: error, code: inferdError.code }, inferdError.message);
    else request.log.info({ code: inferdError.code }, inferdError.message);
    return sendError(reply, inferdError);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, new InferdError('INFERD_ERR_NOT_FOUND', `no route ${request.method} ${request.url}`)),
  );
}
