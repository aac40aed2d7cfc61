/**
 * Who may call what. Every route's access comes from one table (route-access.ts): SigV4 on the
 * runtime API, a bearer token with a scope everywhere else, `/ping` always open.
 *
 * - With no credential configured, inference and `/metrics` stay open (what `docker run IMAGE
 *   serve` users expect), with a warning when the server listens beyond loopback; model
 *   management refuses everyone outside SageMaker until a `manage` token is configured.
 * - Once any credential file is configured, every route but the open ones needs a credential.
 * - Under SageMaker the container contract is unchanged: the platform, its only caller, sends no
 *   credentials, so its routes stay open there.
 *
 * Refusals go through the error handler, so they answer in each route's form (the runtime API's
 * `x-amzn-ErrorType` on `/endpoints/...`) and are counted under their code. No credential, nor
 * anything derived from one, is ever logged or answered.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest, onRequestHookHandler, preHandlerHookHandler } from 'fastify';
import type { Config } from '../../config/schema.js';
import { InferdError } from '../../errors.js';
import { targetModelPath } from '../../repository/target-model.js';
import type { RuntimeApiRoute } from '../runtime-api.js';
import { BearerTokens, bearerTokenOf } from './bearer.js';
import { readSigV4Keys, readTokens, type Operation, type SigV4Key } from './credentials.js';
import { routeAccess, type RouteAccess, type Scope } from './route-access.js';
import { expectedPayloadOf, expectPayload } from './signed-payloads.js';
import { EMPTY_SHA256, SigV4Verifier, keyAllows, payloadMismatch, type CheckedRequest } from './sigv4.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set for every route from route-access.ts as it is registered. */
    auth?: RouteAccess;
  }
}

export interface AuthContext {
  /** The model a runtime request runs when it names no `TargetModel`. */
  readonly defaultModel: () => string | undefined;
}

const OPERATIONS: Record<RuntimeApiRoute, Operation> = {
  invoke: 'InvokeEndpoint',
  stream: 'InvokeEndpointWithResponseStream',
  async: 'InvokeEndpointAsync',
};

const REALM = 'Bearer realm="inferd"';

const toArray = <T>(hooks: T | T[] | undefined): T[] => (hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks]);

/** Whether SageMaker calls the container contract: said outright, or read from its own variables. */
export function underSageMaker(config: Config): boolean {
  return config.auth.sagemaker ?? (config.model.multiModel || config.batch.enabled || config.server.safePortRange !== undefined);
}

const isLoopback = (address: string) => address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');

const hasBody = (request: FastifyRequest) => Number(request.headers['content-length'] ?? 0) > 0 || request.headers['transfer-encoding'] !== undefined;

/** Registers the access checks on `http`; call before any route is registered. Reads the credential files (ConfigError when bad). */
export function installAuth(http: FastifyInstance, config: Config, { defaultModel }: AuthContext): void {
  const { sigv4Credentials, tokens: tokensFile } = config.auth;
  const tokens = tokensFile === undefined ? undefined : new BearerTokens(readTokens(tokensFile));
  // With tokens alone, the runtime API knows no key: every signature is refused.
  const verifier = new SigV4Verifier(sigv4Credentials === undefined ? [] : readSigV4Keys(sigv4Credentials));
  const configured = sigv4Credentials !== undefined || tokens !== undefined;
  const platform = underSageMaker(config);
  /** Signed requests whose signature covers a body not read yet: verified once it is. */
  const awaitingBody = new WeakMap<FastifyRequest, CheckedRequest>();

  /** A key's refusal for this request's operation and model (`TargetModel`, else the default model). */
  const unauthorized = (key: SigV4Key, request: FastifyRequest): InferdError | undefined => {
    const operation = OPERATIONS[request.routeOptions.config.runtimeApi ?? 'invoke'];
    const target = request.headers['x-amzn-sagemaker-target-model'];
    // Matched as the data plane will name it (`./m` is `m`), never as sent.
    const model = typeof target === 'string' ? targetModelPath(target) : (defaultModel() ?? '');
    if (keyAllows(key, operation, model)) return undefined;
    return new InferdError('INFERD_ERR_FORBIDDEN', `User: ${key.accessKeyId} is not authorized to perform: sagemaker:${operation} on model: ${model || '(none)'}`);
  };

  /**
   * Verifies what can be before the body is read: the whole signature when it covers a hash of the
   * body, or no body at all. Otherwise the signature waits for the body (buffered routes only).
   */
  const checkSignature = async (request: FastifyRequest): Promise<void> => {
    const checked = verifier.check({ method: request.raw.method ?? 'GET', url: request.raw.url ?? '/', headers: request.raw.headersDistinct }, Date.now());
    const declared = checked.declaredPayloadHash;
    const withBody = hasBody(request);
    if (declared === undefined && withBody) {
      if (request.routeOptions.config.runtimeApi === 'async') {
        throw new InferdError('INFERD_ERR_SIGNATURE_INVALID', 'An inline async body must be signed with X-Amz-Content-SHA256.');
      }
      awaitingBody.set(request, checked);
      return;
    }
    await verifier.verify(checked, undefined);
    if (declared !== undefined && !withBody && declared !== EMPTY_SHA256) throw payloadMismatch();
    const refusal = unauthorized(checked.key, request);
    if (refusal !== undefined) throw refusal;
    if (declared !== undefined && withBody) expectPayload(request, declared);
  };

  /** A bearer route's refusal, and the `WWW-Authenticate` challenge that goes with it (RFC 6750). */
  const bearerRefusal = (request: FastifyRequest, scope: Scope): { error: InferdError; challenge?: string } | undefined => {
    if (scope === 'manage' && !tokens?.grants('manage')) {
      return { error: new InferdError('INFERD_ERR_FORBIDDEN', 'model management is refused until a token with the manage scope is configured (INFERD_AUTH_TOKENS)') };
    }
    if (!configured) return undefined;
    const token = bearerTokenOf(request.headers.authorization);
    if (token === undefined) {
      return { error: new InferdError('INFERD_ERR_UNAUTHENTICATED', `this route needs a bearer token with the ${scope} scope: Authorization: Bearer <token>`), challenge: REALM };
    }
    const scopes = tokens?.scopesOf(token);
    if (scopes === undefined) {
      return { error: new InferdError('INFERD_ERR_CREDENTIALS_UNKNOWN', 'the bearer token is not one configured'), challenge: `${REALM}, error="invalid_token"` };
    }
    if (!scopes.has(scope)) {
      return {
        error: new InferdError('INFERD_ERR_FORBIDDEN', `the bearer token does not have the ${scope} scope`),
        challenge: `${REALM}, error="insufficient_scope", scope="${scope}"`,
      };
    }
    return undefined;
  };

  /**
   * The check a route needs, or none: routes open in this configuration carry no hook at all,
   * so that with no credentials configured inference costs nothing here.
   */
  const guardOf = (access: RouteAccess): onRequestHookHandler | undefined => {
    if (access.kind === 'open') return undefined;
    if (access.kind === 'sigv4') {
      if (!configured) return undefined;
      return (request, _reply, done) => {
        checkSignature(request).then(() => done(), done);
      };
    }
    if (platform && access.platform) return undefined;
    if (!configured && access.scope !== 'manage') return undefined;
    const { scope } = access;
    return (request, reply, done) => {
      const refusal = bearerRefusal(request, scope);
      if (refusal === undefined) return done();
      if (refusal.challenge !== undefined) reply.header('www-authenticate', refusal.challenge);
      done(refusal.error);
    };
  };

  /** After the body parser, on the buffered SigV4 routes: the signature that waited for the body, or the body against its signed hash. */
  const bodyCheck: preHandlerHookHandler = (request, _reply, done) => {
    const checked = awaitingBody.get(request);
    const declared = checked === undefined ? expectedPayloadOf(request) : undefined;
    if (checked === undefined && declared === undefined) return done();
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    if (checked !== undefined) {
      verifier.verify(checked, body).then(() => done(unauthorized(checked.key, request)), done);
      return;
    }
    done(createHash('sha256').update(body).digest('hex') === declared ? undefined : payloadMismatch());
  };

  http.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const accesses = new Set(methods.map((method) => routeAccess(method, route.url)));
    const [access] = accesses;
    if (access === undefined || accesses.size > 1) {
      throw new Error(`${methods.join(',')} ${route.url} needs one entry in src/server/auth/route-access.ts: which credential does it take?`);
    }
    route.config = { ...route.config, auth: access };
    const guard = guardOf(access);
    if (guard) route.onRequest = [...toArray(route.onRequest), guard];
    // The async route checks its streamed body itself (verifiedBody).
    if (guard && access.kind === 'sigv4' && route.config.runtimeApi !== 'async') route.preHandler = [...toArray(route.preHandler), bodyCheck];
  });

  http.addHook('onListen', function (done) {
    const address = this.server.address();
    const host = typeof address === 'object' && address !== null ? address.address : undefined;
    if (configured) {
      this.log.info({ sigv4Keys: verifier.size, bearerTokens: tokens?.size ?? 0, sagemaker: platform }, 'authentication on');
      // SAGEMAKER_MULTI_MODEL on-prem would leave model management open: say so where it shows.
      if (platform && config.auth.sagemaker === undefined) {
        this.log.warn(
          {},
          'SageMaker variables are set, so the routes SageMaker calls (/invocations, /models, /metrics, /execution-parameters) take no credential; outside SageMaker set INFERD_AUTH_SAGEMAKER=false',
        );
      }
    } else if (!platform && host !== undefined && !isLoopback(host)) {
      this.log.warn(
        { address: host },
        'no credentials are configured and the server listens beyond loopback: anyone who reaches it may run inference and read /metrics (set INFERD_AUTH_TOKENS and INFERD_AUTH_SIGV4_CREDENTIALS)',
      );
    }
    done();
  });
}
