/**
 * Which credential each route takes, in one table: a route missing from it stops the server from
 * starting (install-auth.ts checks every route as it is registered), so a new route can never
 * skip authentication unnoticed.
 */

/** What a bearer token may do. */
export type Scope = 'invoke' | 'manage' | 'metrics';
export const SCOPES = ['invoke', 'manage', 'metrics'] as const satisfies readonly Scope[];

export type RouteAccess =
  /** Always answered, whoever asks: health probes. */
  | { readonly kind: 'open' }
  /** SageMaker's runtime API: the AWS SDKs' SigV4 signature. */
  | { readonly kind: 'sigv4' }
  /**
   * A bearer token with `scope`. `platform` marks SageMaker's container contract: under SageMaker
   * the platform is its only caller, and it sends no credentials.
   */
  | { readonly kind: 'bearer'; readonly scope: Scope; readonly platform: boolean };

const open: RouteAccess = { kind: 'open' };
const sigv4: RouteAccess = { kind: 'sigv4' };
const bearer = (scope: Scope, { platform = false } = {}): RouteAccess => ({ kind: 'bearer', scope, platform });

/**
 * Keyed by method and route pattern as registered. `GET /models` only reads what is loaded, as
 * the v2 model metadata does: `invoke`. The v2 health probes are open as `/ping` is (Kubernetes
 * probes send no credentials).
 */
const ROUTE_ACCESS: Readonly<Record<string, RouteAccess>> = {
  'GET /ping': open,
  'GET /execution-parameters': bearer('invoke', { platform: true }),
  'POST /invocations': bearer('invoke', { platform: true }),
  'GET /models': bearer('invoke', { platform: true }),
  'GET /models/:name': bearer('invoke', { platform: true }),
  'POST /models/:name/invoke': bearer('invoke', { platform: true }),
  'POST /models': bearer('manage', { platform: true }),
  'DELETE /models/:name': bearer('manage', { platform: true }),
  'GET /metrics': bearer('metrics', { platform: true }),
  'POST /endpoints/:endpointName/invocations': sigv4,
  'POST /endpoints/:endpointName/invocations-response-stream': sigv4,
  'POST /endpoints/:endpointName/async-invocations': sigv4,
  'POST /async-invocations': bearer('invoke'),
  'GET /async-invocations/:inferenceId': bearer('invoke'),
  'GET /v2': bearer('invoke'),
  'GET /v2/health/live': open,
  'GET /v2/health/ready': open,
  'GET /v2/models/:name': bearer('invoke'),
  'GET /v2/models/:name/versions/:version': bearer('invoke'),
  'GET /v2/models/:name/ready': bearer('invoke'),
  'GET /v2/models/:name/versions/:version/ready': bearer('invoke'),
  'POST /v2/models/:name/infer': bearer('invoke'),
  'POST /v2/models/:name/versions/:version/infer': bearer('invoke'),
};

/** The access of a route; undefined when the table does not name it. HEAD goes as GET does. */
export function routeAccess(method: string, url: string): RouteAccess | undefined {
  const key = `${method === 'HEAD' ? 'GET' : method} ${url}`;
  return Object.hasOwn(ROUTE_ACCESS, key) ? ROUTE_ACCESS[key] : undefined;
}
