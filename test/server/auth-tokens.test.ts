/**
 * Bearer tokens and the defaults, against the real server: each scope opens exactly its routes,
 * `/ping` and the v2 health probes are always open, model management refuses everyone outside
 * SageMaker until a `manage` token exists, and under SageMaker the platform calls the container
 * contract as it always has, without credentials.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildApp } from '../../src/app.js';
import { ConfigError, loadConfig } from '../../src/config/load-config.js';
import { MODELS, startServer, type TestServer } from '../helper.js';
import { freePort, spawnServer } from '../child.js';
import { until } from '../async/toolkit.js';
import { authEnv, writeAuthFiles, type AuthFiles } from './auth-fixtures.js';

const ROW = Array.from({ length: 20 }, (_, i) => i / 10);
const V2_BODY = JSON.stringify({ inputs: [{ name: 'features', shape: [1, 20], datatype: 'FP32', data: ROW }] });

interface Call {
  readonly method: string;
  readonly path: string;
  readonly body?: string;
  readonly headers?: Record<string, string>;
}

async function call(server: TestServer, { method, path, body, headers = {} }: Call, token?: string) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { ...headers, ...(token !== undefined && { authorization: `Bearer ${token}` }) },
    ...(body !== undefined && { body }),
  });
  const text = await response.text();
  return { status: response.status, challenge: response.headers.get('www-authenticate'), text };
}

const load = (name: string): Call => ({ method: 'POST', path: '/models', body: JSON.stringify({ model_name: name, url: MODELS.forest }), headers: { 'content-type': 'application/json' } });
const unload = (name: string): Call => ({ method: 'DELETE', path: `/models/${name}` });

describe('bearer tokens, outside SageMaker', () => {
  let files: AuthFiles;
  let server: TestServer;
  before(async () => {
    files = await writeAuthFiles();
    server = await startServer(MODELS.forest, { env: authEnv(files) });
  });
  after(() => server?.http.close());

  const ROUTES: Array<Call & { scope: 'invoke' | 'metrics' }> = [
    { method: 'POST', path: '/invocations', body: ROW.join(','), headers: { 'content-type': 'text/csv' }, scope: 'invoke' },
    { method: 'GET', path: '/models', scope: 'invoke' },
    { method: 'GET', path: '/models/churn-forest', scope: 'invoke' },
    { method: 'GET', path: '/execution-parameters', scope: 'invoke' },
    { method: 'GET', path: '/v2', scope: 'invoke' },
    { method: 'GET', path: '/v2/models/churn-forest', scope: 'invoke' },
    { method: 'GET', path: '/v2/models/churn-forest/ready', scope: 'invoke' },
    { method: 'POST', path: '/v2/models/churn-forest/infer', body: V2_BODY, scope: 'invoke' },
    { method: 'POST', path: '/v2/models/churn-forest/versions/1/infer', body: V2_BODY, scope: 'invoke' },
    { method: 'GET', path: '/metrics', scope: 'metrics' },
  ];

  for (const route of ROUTES) {
    it(`${route.method} ${route.path}: the ${route.scope} token only`, async () => {
      const none = await call(server, route);
      assert.equal(none.status, 401);
      assert.equal(none.challenge, 'Bearer realm="inferd"');
      const unknown = await call(server, route, 'not-a-token');
      assert.equal(unknown.status, 401);
      assert.equal(unknown.challenge, 'Bearer realm="inferd", error="invalid_token"');
      for (const [scope, token] of Object.entries(files.tokens)) {
        const answer = await call(server, route, token);
        if (scope === route.scope) {
          assert.equal(answer.status, 200, answer.text);
        } else {
          assert.equal(answer.status, 403, `${scope} token`);
          assert.equal(answer.challenge, `Bearer realm="inferd", error="insufficient_scope", scope="${route.scope}"`);
        }
      }
      // Each route refuses in its own form: the v2 protocol's `{"error"}`, inferd's `{code, message}`.
      const body = JSON.parse(none.text) as Record<string, unknown>;
      if (route.path.startsWith('/v2')) assert.match(String(body.error), /bearer token with the invoke scope/);
      else assert.equal(body.code, 'INFERD_ERR_UNAUTHENTICATED');
    });
  }

  it('/ping and the v2 health probes are open', async () => {
    for (const path of ['/ping', '/v2/health/live', '/v2/health/ready']) assert.equal((await call(server, { method: 'GET', path })).status, 200, path);
  });

  it('an unknown route is still 404 without a token', async () => {
    assert.equal((await call(server, { method: 'GET', path: '/nothing-here' })).status, 404);
  });

  it('refusals are counted under their code', async () => {
    const metrics = await call(server, { method: 'GET', path: '/metrics' }, files.tokens.metrics);
    assert.match(metrics.text, /inferd_request_errors_total\{model="none",code="INFERD_ERR_UNAUTHENTICATED"\} [1-9]/);
  });

  it('model management does not exist here, and /models/:name/invoke neither', async () => {
    assert.equal((await call(server, load('m'), files.tokens.manage)).status, 405);
  });
});

describe('model management (SAGEMAKER_MULTI_MODEL=true)', () => {
  it('outside SageMaker (INFERD_AUTH_SAGEMAKER=false), with no credentials, refuses everyone; inference stays open', async (t) => {
    const server = await startServer(undefined, { env: { SAGEMAKER_MULTI_MODEL: 'true', INFERD_AUTH_SAGEMAKER: 'false' } });
    t.after(() => server.http.close());
    for (const token of [undefined, 'any-token']) {
      const refused = await call(server, load('m'), token);
      assert.equal(refused.status, 403);
      assert.equal((JSON.parse(refused.text) as { code: string }).code, 'INFERD_ERR_FORBIDDEN');
      assert.match(refused.text, /until a token with the manage scope is configured/);
      assert.equal((await call(server, unload('m'), token)).status, 403);
    }
    assert.equal((await call(server, { method: 'GET', path: '/models' })).status, 200);
    assert.equal((await call(server, { method: 'GET', path: '/metrics' })).status, 200);
  });

  it('outside SageMaker, a manage token loads and unloads; the other scopes and none are refused', async (t) => {
    const files = await writeAuthFiles();
    const server = await startServer(undefined, { env: { ...authEnv(files), SAGEMAKER_MULTI_MODEL: 'true', INFERD_AUTH_SAGEMAKER: 'false' } });
    t.after(() => server.http.close());
    assert.equal((await call(server, load('m'))).status, 401);
    assert.equal((await call(server, load('m'), files.tokens.invoke)).status, 403);
    assert.equal((await call(server, load('m'), files.tokens.manage)).status, 200);
    const invokeCall: Call = { method: 'POST', path: '/models/m/invoke', body: ROW.join(','), headers: { 'content-type': 'text/csv' } };
    assert.equal((await call(server, invokeCall, files.tokens.manage)).status, 403);
    assert.equal((await call(server, invokeCall, files.tokens.invoke)).status, 200);
    assert.equal((await call(server, unload('m'), files.tokens.manage)).status, 200);
  });

  it('under SageMaker the platform calls the container contract without credentials, even with tokens configured', async (t) => {
    const files = await writeAuthFiles();
    for (const env of [{}, authEnv(files)]) {
      const server = await startServer(undefined, { env: { ...env, SAGEMAKER_MULTI_MODEL: 'true' } });
      t.after(() => server.http.close());
      assert.equal((await call(server, load('m'))).status, 200);
      assert.equal((await call(server, { method: 'GET', path: '/models' })).status, 200);
      assert.equal((await call(server, { method: 'POST', path: '/models/m/invoke', body: ROW.join(','), headers: { 'content-type': 'text/csv' } })).status, 200);
      assert.equal((await call(server, { method: 'GET', path: '/metrics' })).status, 200);
      assert.equal((await call(server, unload('m'))).status, 200);
      // What is not the platform's contract still needs its token once tokens are configured.
      assert.equal((await call(server, { method: 'GET', path: '/v2' })).status, 'INFERD_AUTH_TOKENS' in env ? 401 : 200);
    }
  });
});

describe('configuration', () => {
  it('a route with no entry in the access table stops the server from starting', async () => {
    const app = buildApp(loadConfig({ env: { SAGEMAKER_MULTI_MODEL: 'true', SAGEMAKER_CONTAINER_LOG_LEVEL: 'silent' } }));
    // Registered as every route is, in a plugin.
    void app.http.register(async (routes) => {
      routes.get('/unlisted', async () => 'hidden');
    });
    await assert.rejects(async () => app.http.ready(), /GET \/unlisted needs one entry in src\/server\/auth\/route-access\.ts/);
    await app.http.close();
  });

  it('a bad credential file is a configuration error naming the file and the field, never its contents', async () => {
    const files = await writeAuthFiles();
    const bad = join(files.tokensFile, '..', 'bad-tokens.json');
    const secret = 'plain-token-that-must-not-leak';
    await writeFile(bad, JSON.stringify({ tokens: [{ sha256: secret, scopes: ['invoke'] }] }));
    const truncated = join(files.tokensFile, '..', 'truncated.json');
    await writeFile(truncated, `{"keys": [{"accessKeyId": "AKID", "secretAccessKey": "${secret}"`);
    const attempts = [
      { INFERD_AUTH_TOKENS: bad },
      { INFERD_AUTH_SIGV4_CREDENTIALS: truncated },
      { INFERD_AUTH_SIGV4_CREDENTIALS: join(files.tokensFile, '..', 'missing.json') },
    ];
    for (const env of attempts) {
      const config = loadConfig({ env: { SAGEMAKER_MULTI_MODEL: 'true', SAGEMAKER_CONTAINER_LOG_LEVEL: 'silent', ...env } });
      const error = (() => {
        try {
          buildApp(config);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      assert.ok(error instanceof ConfigError, String(error));
      assert.ok(error.message.includes(Object.values(env)[0]!), error.message);
      assert.ok(!error.message.includes(secret), error.message);
    }
  });

  it('the real server exits 1 with INFERD_ERR_CONFIG_INVALID on a bad file', async () => {
    const files = await writeAuthFiles();
    const bad = join(files.tokensFile, '..', 'scopes.json');
    await writeFile(bad, JSON.stringify({ tokens: [{ sha256: 'a'.repeat(64), scopes: ['admin'] }] }));
    const child = await spawnServer(['dist/src/main.js', 'serve'], { INFERD_MODEL_DIR: MODELS.forest, INFERD_AUTH_TOKENS: bad, SAGEMAKER_BIND_TO_PORT: String(await freePort()) });
    assert.deepEqual(await child.exited, { code: 1, signal: null });
    assert.match(child.output(), /\[INFERD_ERR_CONFIG_INVALID\].*\n.*INFERD_AUTH_TOKENS file .*scopes\.json: tokens\.0\.scopes\.0: /);
  });

  it('warns at start when it listens beyond loopback with no credentials', async () => {
    const port = await freePort();
    const child = await spawnServer(['dist/src/main.js', 'serve'], { INFERD_MODEL_DIR: MODELS.forest, SAGEMAKER_BIND_TO_PORT: String(port) }, port);
    try {
      await until(() => (child.output().includes('no credentials are configured') ? true : undefined), 30_000, 'the warning');
    } finally {
      child.process.kill('SIGTERM');
      await child.exited;
    }
    const line = child.output().split('\n').find((text) => text.includes('no credentials are configured'))!;
    assert.equal((JSON.parse(line) as { level: number }).level, 40);
  });
});
