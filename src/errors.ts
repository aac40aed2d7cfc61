/**
 * The one error hierarchy. Every error that reaches a client is an InferdError with a stable
 * `code` and the HTTP status that code maps to; the mapping lives here and nowhere else.
 * Errors crossing the worker boundary travel as `{ code, message }` and are rebuilt with
 * `errorFromCode`, so callers match on `code`, never on `instanceof` across threads.
 */

/**
 * The error types of SageMaker's runtime API (`InvokeEndpoint` and friends), which the AWS SDKs
 * raise as modelled exceptions. On the runtime-API routes an error answers as its type: a model
 * or input error is `ModelError` (424, never retried), an overload `ServiceUnavailable` (503,
 * retried), and so on; `/invocations` keeps inferd's own `{ code, message }` and status.
 */
export type RuntimeApiError =
  | 'ModelError'
  | 'ValidationError'
  | 'ModelNotReadyException'
  | 'ServiceUnavailable'
  | 'InternalFailure'
  // AWS's own authentication and authorization answers, common to its APIs (not modelled per service).
  | 'MissingAuthenticationTokenException'
  | 'UnrecognizedClientException'
  | 'InvalidSignatureException'
  | 'AccessDeniedException';

export const RUNTIME_API_STATUS: Record<RuntimeApiError, number> = {
  ModelError: 424,
  ValidationError: 400,
  ModelNotReadyException: 429,
  ServiceUnavailable: 503,
  InternalFailure: 500,
  MissingAuthenticationTokenException: 403,
  UnrecognizedClientException: 403,
  InvalidSignatureException: 403,
  AccessDeniedException: 403,
};

export const ERROR_CODES = {
  INFERD_ERR_BODY_MALFORMED: {
    status: 400,
    runtimeApi: 'ModelError',
    summary: 'The body cannot be parsed as its Content-Type says, or its `Content-Encoding` stream is corrupt.',
  },
  INFERD_ERR_BODY_EMPTY: { status: 400, runtimeApi: 'ModelError', summary: 'The request has no body.' },
  INFERD_ERR_BAD_REQUEST: { status: 400, runtimeApi: 'ValidationError', summary: 'The request line or headers are malformed.' },
  INFERD_ERR_SESSIONS_DISABLED: {
    status: 400,
    runtimeApi: 'ValidationError',
    summary: 'An `X-Amzn-SageMaker-Session-Id` arrived, but stateful sessions are not enabled (inferd serves stateless models).',
  },
  INFERD_ERR_UNAUTHENTICATED: {
    status: 401,
    runtimeApi: 'MissingAuthenticationTokenException',
    summary: 'The route needs a credential and the request has none: no `Authorization: Bearer` token (answered with `WWW-Authenticate: Bearer`), or on the runtime API no SigV4 signature.',
  },
  INFERD_ERR_CREDENTIALS_UNKNOWN: {
    status: 401,
    runtimeApi: 'UnrecognizedClientException',
    summary: 'The bearer token or the SigV4 access key id is not one configured (`INFERD_AUTH_TOKENS`, `INFERD_AUTH_SIGV4_CREDENTIALS`), or the request carries a session token.',
  },
  INFERD_ERR_SIGNATURE_INVALID: {
    status: 401,
    runtimeApi: 'InvalidSignatureException',
    summary: 'The SigV4 signature is malformed or does not match the request and its body, the body is content-encoded, or the request is dated more than 5 minutes from the server\'s clock (`Signature expired`).',
  },
  INFERD_ERR_FORBIDDEN: {
    status: 403,
    runtimeApi: 'AccessDeniedException',
    summary: 'The credential is valid but not for this: a token without the route\'s scope (`invoke`, `manage`, `metrics`), a SigV4 key not allowed this model or operation, or model management outside SageMaker with no `manage` token configured.',
  },
  INFERD_ERR_NOT_FOUND: { status: 404, runtimeApi: 'ValidationError', summary: 'No such route.' },
  INFERD_ERR_MODEL_NOT_LOADED: {
    status: 404,
    runtimeApi: 'ValidationError',
    summary: 'No model of this name is loaded, or it is being unloaded.',
  },
  INFERD_ERR_MODEL_NOT_FOUND: {
    status: 404,
    runtimeApi: 'ValidationError',
    summary: 'The model `url` or `TargetModel` names nothing: no such directory, archive or S3 prefix.',
  },
  INFERD_ERR_MODEL_SOURCE_INVALID: {
    status: 400,
    runtimeApi: 'ValidationError',
    summary:
      'The model `url` or `TargetModel` is refused: not an absolute path, under `/proc`, `/sys` or `/dev`, outside the repository, or an archive holding links, `..` or more than its size bound.',
  },
  INFERD_ERR_MODEL_ALREADY_LOADED: { status: 409, runtimeApi: 'ValidationError', summary: 'A model of this name is already loaded (or loading).' },
  INFERD_ERR_MODEL_LOADING: {
    status: 429,
    runtimeApi: 'ModelNotReadyException',
    summary: 'The model has been loading for 60 s and is not ready yet; loading goes on, retry.',
  },
  INFERD_ERR_INSUFFICIENT_MEMORY: {
    status: 507,
    runtimeApi: 'ServiceUnavailable',
    summary: 'The model does not fit in `INFERD_MODEL_MEMORY_BUDGET_MB` beside the models loaded (and, on-prem, none idle could be evicted).',
  },
  INFERD_ERR_METHOD_NOT_ALLOWED: { status: 405, runtimeApi: 'ValidationError', summary: 'The route exists for other methods; `Allow` lists them.' },
  INFERD_ERR_ASYNC_INPUT_FORBIDDEN: {
    status: 403,
    runtimeApi: 'ValidationError',
    summary: 'The async `X-Amzn-SageMaker-InputLocation` is outside `INFERD_ASYNC_ALLOWED_INPUT_PREFIXES`.',
  },
  INFERD_ERR_ASYNC_INPUT_NOT_FOUND: { status: 400, runtimeApi: 'ValidationError', summary: 'No object at the async `X-Amzn-SageMaker-InputLocation`.' },
  INFERD_ERR_ASYNC_NOT_FOUND: { status: 404, runtimeApi: 'ValidationError', summary: 'No async request has this inference id (or it is past its retention).' },
  INFERD_ERR_NOT_ACCEPTABLE: {
    status: 406,
    runtimeApi: 'ModelError',
    summary: 'No supported response format matches `Accept`, or the format cannot carry the model outputs.',
  },
  INFERD_ERR_PAYLOAD_TOO_LARGE: {
    status: 413,
    runtimeApi: 'ValidationError',
    summary: 'The body is larger than `SAGEMAKER_MAX_PAYLOAD_IN_MB` (async: than `INFERD_ASYNC_MAX_PAYLOAD_MB`, or 1024 MiB for CSV and JSON Lines).',
  },
  INFERD_ERR_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    runtimeApi: 'ModelError',
    summary: 'The `Content-Type` is not supported, or not for this model.',
  },
  INFERD_ERR_UNSUPPORTED_CONTENT_ENCODING: {
    status: 415,
    runtimeApi: 'ModelError',
    summary: 'The `Content-Encoding` is not `gzip`, `deflate` or `identity`.',
  },
  INFERD_ERR_INPUT_INVALID: {
    status: 422,
    runtimeApi: 'ModelError',
    summary: 'The tensors do not match the model signature: names, dtype, rank, dimensions or element count.',
  },
  INFERD_ERR_CANCELLED: {
    status: 499,
    runtimeApi: 'InternalFailure',
    summary: 'The client closed the connection before its answer (while sending its body, or while its request was queued); logged only, nothing is sent.',
  },
  INFERD_ERR_QUEUE_FULL: { status: 503, runtimeApi: 'ServiceUnavailable', summary: 'The inference queue is full; retry after `Retry-After` seconds.' },
  INFERD_ERR_NOT_READY: { status: 503, runtimeApi: 'ModelNotReadyException', summary: 'The model is still loading or warming up.' },
  INFERD_ERR_SHUTTING_DOWN: { status: 503, runtimeApi: 'ServiceUnavailable', summary: 'The server is draining before it exits.' },
  INFERD_ERR_STORAGE_UNAVAILABLE: { status: 503, runtimeApi: 'ServiceUnavailable', summary: 'Object storage (S3) or the async queue could not be reached; retry.' },
  INFERD_ERR_TIMEOUT: { status: 504, runtimeApi: 'ModelError', summary: 'No answer within `SAGEMAKER_MODEL_SERVER_TIMEOUT` seconds.' },
  INFERD_ERR_INFERENCE_FAILED: { status: 500, runtimeApi: 'ModelError', summary: 'ONNX Runtime failed to run the model.' },
  INFERD_ERR_INTERNAL: { status: 500, runtimeApi: 'ModelError', summary: 'An unexpected server error; details are logged, never returned.' },
  INFERD_ERR_CONFIG_INVALID: { status: 500, runtimeApi: 'InternalFailure', summary: 'Startup only: the configuration is invalid (exit code 1).' },
  INFERD_ERR_MODEL_LOAD_FAILED: {
    status: 400,
    runtimeApi: 'ModelError',
    summary: 'The model cannot be loaded: no `.onnx` file, an invalid `inferd.json`, or ONNX Runtime refuses it. At startup: exit code 1.',
  },
} as const satisfies Record<string, { status: number; runtimeApi: RuntimeApiError; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Seconds a client should wait before retrying a 503. */
const RETRY_AFTER_SECONDS = 1;

export class InferdError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  /** `Retry-After` for the transient (503) conditions. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InferdError';
    this.code = code;
    this.statusCode = ERROR_CODES[code].status;
    this.retryAfterSeconds = this.statusCode === 503 ? RETRY_AFTER_SECONDS : undefined;
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

export const malformedBody = (message: string, cause?: unknown) =>
  new InferdError('INFERD_ERR_BODY_MALFORMED', message, { cause });
export const invalidInput = (message: string) => new InferdError('INFERD_ERR_INPUT_INVALID', message);
export const unsupportedMediaType = (message: string) => new InferdError('INFERD_ERR_UNSUPPORTED_MEDIA_TYPE', message);
export const notAcceptable = (message: string) => new InferdError('INFERD_ERR_NOT_ACCEPTABLE', message);
export const shuttingDown = () => new InferdError('INFERD_ERR_SHUTTING_DOWN', 'the server is shutting down');

/** Rebuilds an error that crossed a thread boundary as plain `{ code, message }`. */
export function errorFromCode(code: unknown, message: string): InferdError {
  return new InferdError(isErrorCode(code) ? code : 'INFERD_ERR_INFERENCE_FAILED', message);
}
