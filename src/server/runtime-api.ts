/**
 * SageMaker's runtime API (`POST /endpoints/:name/invocations` and its streaming and async
 * siblings) as the AWS SDKs parse it: REST-JSON, the error type in `x-amzn-ErrorType` and its
 * members in a JSON body, so that botocore and the JS SDK raise `ModelError`,
 * `ServiceUnavailable`… and retry exactly what SageMaker lets them retry. Every answer names the
 * variant and carries a request id. `/invocations` itself keeps the container's semantics.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_CODES, RUNTIME_API_STATUS, type InferdError, type RuntimeApiError } from '../errors.js';

/** Which runtime-API operation a route answers; set in the route's `config`. */
export type RuntimeApiRoute = 'invoke' | 'stream' | 'async';

declare module 'fastify' {
  interface FastifyContextConfig {
    runtimeApi?: RuntimeApiRoute;
  }
}

/**
 * The runtime-API operation a request is for: any path under `/endpoints/` answers in that API's
 * terms, an unknown one (404, 405) as `InvokeEndpoint` would. The path is checked first, so the
 * hot `/invocations` never reads the route's options.
 */
export function runtimeApiRouteOf(request: FastifyRequest): RuntimeApiRoute | undefined {
  if (!request.url.startsWith('/endpoints/')) return undefined;
  return request.routeOptions?.config?.runtimeApi ?? 'invoke';
}

/** What SageMaker adds to each runtime answer: the variant, and an id the SDKs report. */
export function stampRuntimeApiHeaders(request: FastifyRequest, reply: FastifyReply, variantName: string): void {
  const inferenceId = request.headers['x-amzn-sagemaker-inference-id'];
  reply.header('x-amzn-invoked-production-variant', variantName);
  reply.header('x-amzn-requestid', typeof inferenceId === 'string' ? inferenceId : randomUUID());
}

export interface RuntimeApiErrorAnswer {
  readonly status: number;
  readonly type: RuntimeApiError;
  readonly body: Record<string, string | number>;
}

/**
 * An inferd error in the runtime API's terms. A model or input error is a `ModelError` in
 * SageMaker's wording, carrying what `/invocations` would have answered; a timeout reads
 * `server error (0)` as SageMaker's does. An async submission runs nothing yet, so what would be
 * a model error there is the request's fault: `ValidationError`.
 */
export function runtimeApiError(error: InferdError, route: RuntimeApiRoute): RuntimeApiErrorAnswer {
  const mapped = ERROR_CODES[error.code].runtimeApi;
  const type: RuntimeApiError = mapped === 'ModelError' && route === 'async' ? 'ValidationError' : mapped;
  if (type !== 'ModelError') return { status: RUNTIME_API_STATUS[type], type, body: { Message: `${error.code}: ${error.message}` } };
  const original = JSON.stringify(error);
  const side = error.statusCode < 500 ? 'client' : 'server';
  const shownStatus = error.code === 'INFERD_ERR_TIMEOUT' ? 0 : error.statusCode;
  return {
    status: RUNTIME_API_STATUS.ModelError,
    type,
    body: {
      Message: `Received ${side} error (${shownStatus}) from primary with message "${original}". See the inferd logs for more information.`,
      OriginalStatusCode: error.statusCode,
      OriginalMessage: original,
    },
  };
}

export function sendRuntimeApiError(reply: FastifyReply, error: InferdError, route: RuntimeApiRoute): FastifyReply {
  const answer = runtimeApiError(error, route);
  if (answer.type === 'ServiceUnavailable' && error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
  return reply
    .code(answer.status)
    .header('x-amzn-errortype', answer.type)
    .type('application/json')
    .send(Buffer.from(JSON.stringify(answer.body)));
}
