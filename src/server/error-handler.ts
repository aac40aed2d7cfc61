/**
 * The one place errors become responses: `{ code, message }`, the status that code maps to, a
 * `Retry-After` on transient 503s, and never a stack trace. Fastify's own errors are translated
 * to inferd codes so a client sees one vocabulary; on the runtime-API routes the same errors
 * answer in that API's terms (runtime-api.ts), and on the Open Inference Protocol's paths as
 * `{"error": message}`. Every error answer waits until the rest of the request body has been read
 * (up to a cap), so a client still writing it hears the answer.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { InferdError, type ErrorCode } from '../errors.js';
import type { RequestBodies } from './request-body.js';
import { runtimeApiRouteOf, sendRuntimeApiError } from './runtime-api.js';

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'INFERD_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'INFERD_ERR_BODY_MALFORMED',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INFERD_ERR_BODY_EMPTY',
  FST_ERR_CTP_INVALID_TYPE: 'INFERD_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_BAD_URL: 'INFERD_ERR_BAD_REQUEST',
};

/** Methods a route may answer; the 405's `Allow` lists those that exist for the path. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

export function toInferdError(error: unknown): InferdError {
  if (error instanceof InferdError) return error;
  const fastifyError = error as Partial<FastifyError>;
  const code = fastifyError.code ? FASTIFY_CODES[fastifyError.code] : undefined;
  if (code) return new InferdError(code, fastifyError.message ?? code);
  const status = fastifyError.statusCode ?? 500;
  if (status >= 400 && status < 500) return new InferdError('INFERD_ERR_BAD_REQUEST', fastifyError.message ?? 'bad request');
  return new InferdError('INFERD_ERR_INTERNAL', 'internal server error', { cause: error });
}

export function sendError(reply: FastifyReply, error: InferdError): FastifyReply {
  if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
  // A Buffer, so the type reads `application/json` as the invocation routes' JSON answers do (a
  // string would gain `; charset=utf-8`): data capture records one form for both.
  return reply.code(error.statusCode).type('application/json').send(Buffer.from(JSON.stringify(error)));
}

/**
 * The Open Inference Protocol's paths (`/v2`, `/v2/...`, routes/oip.ts), unknown ones included:
 * their errors answer in that protocol's shape, `{"error": message}`, with the same status.
 */
export function isOipRequest(request: FastifyRequest): boolean {
  const { url } = request;
  return url.startsWith('/v2') && (url.length === 3 || url[3] === '/' || url[3] === '?');
}

export function sendOipError(reply: FastifyReply, error: InferdError): FastifyReply {
  if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
  return reply.code(error.statusCode).type('application/json').send(Buffer.from(JSON.stringify({ error: error.message })));
}

/**
 * Reads what is left of the request body, then answers with the error; a body left unread (never
 * asked for, or past the discard cap) would be read as the next request, so the connection closes.
 */
export async function answerError(bodies: RequestBodies, request: FastifyRequest, reply: FastifyReply, error: InferdError): Promise<FastifyReply> {
  if (!(await bodies.discardRest(request.raw))) reply.header('connection', 'close');
  if (isOipRequest(request)) return sendOipError(reply, error);
  const runtimeApi = runtimeApiRouteOf(request);
  return runtimeApi === undefined ? sendError(reply, error) : sendRuntimeApiError(reply, error, runtimeApi);
}

export function installErrorHandler(app: FastifyInstance, bodies: RequestBodies): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const inferdError = toInferdError(error);
    if (inferdError.statusCode >= 500) request.log.error({ err: error, code: inferdError.code }, inferdError.message);
    else request.log.info({ code: inferdError.code }, inferdError.message);
    return answerError(bodies, request, reply, inferdError);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?', 1)[0]!;
    const allowed = METHODS.filter((method) => app.findRoute({ method, url: path }) !== null);
    if (allowed.length === 0) return answerError(bodies, request, reply, new InferdError('INFERD_ERR_NOT_FOUND', `no route ${request.method} ${path}`));
    reply.header('allow', allowed.join(', '));
    return answerError(bodies, request, reply, new InferdError('INFERD_ERR_METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${path}; use ${allowed.join(', ')}`));
  });
}
