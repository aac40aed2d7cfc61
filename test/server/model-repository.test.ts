/**
 * The model repository (`INFERD_MODEL_REPOSITORY`) on a local directory, against the real
 * server on a port with real models: `X-Amzn-SageMaker-Target-Model` on /invocations, on the
 * runtime route and through the AWS SDK; what it refuses (traversal, links, `..` archives)
 * without writing outside the cache; one load for concurrent first requests; LRU eviction under
 * a memory budget, which never takes a model with requests in flight.
 */
import assert from 'node:assert/strict';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InvokeEndpointCommand, ValidationError } from '@aws-sdk/client-sagemaker-runtime';
import { counterValue, until } from '../async/toolkit.js';
import { MODELS, invoke, loadReference, startServer, type Reference, type TestServer } from '../helper.js';
import { writeNpy } from '../npy.js';
import {
  CSV,
  TARGET_MODEL,
  assertAnswers,
  buildLocalRepository,
  listModels,
  metricsOf,
  runtimeClient,
  toCsv,
  treeUnder,
  type LocalRepository,
} from './model-repository-fixtures.js';

let work: string;
let repo: LocalRepository;
let ref: Reference;

before(async () => {
  ref = await loadReference();
  work = await mkdtemp(join(tmpdir(), 'inferd-model-repository-'));
  repo = await buildLocalRepository(work);
});
after(() => rm(work, { recursive: true, force: true }));

const repositoryEnv = (extra: Record<string, string> = {}) => ({ INFERD_MODEL_REPOSITORY: repo.root, INFERD_MODEL_CACHE_DIR: repo.cacheDir, ...extra });
const exists = (path: string) => access(path).then(
  () => true,
  () => false,
);

describe('a local-directory repository: TargetModel on every door', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(undefined, { env: repositoryEnv() });
  });
  after(() => server.http.close());

  it('answers each model (directories and model.tar.gz archives) with its reference outputs, on /invocations and on the runtime route', async () => {
    const csv = toCsv(ref.rows);
    for (const [target, kind] of Object.entries(repo.models)) {
      for (const path of ['/invocations', '/endpoints/ep/invocations']) {
        const answer = await invoke(server.url, csv, { ...CSV, [TARGET_MODEL]: target }, path);
        assert.equal(answer.status, 200, `${target} on ${path}: ${answer.text}`);
        assertAnswers(kind, answer.text, ref, `${target} on ${path}`);
      }
    }
    // Each is loaded once, under its TargetModel, from its place in the repository.
    const listed = await listModels(server.url);
    assert.deepEqual(listed.map((model) => model.modelName).sort(), Object.keys(repo.models).sort());
    for (const model of listed) {
      assert.equal(model.modelUrl, join(repo.root, model.modelName));
      assert.equal(model.state, 'ready');
    }
    const text = await metricsOf(server.url);
    for (const target of Object.keys(repo.models)) {
      assert.equal(counterValue(text, `inferd_model_loads_total{model="${target}"}`), 1, target);
      assert.equal(counterValue(text, `inferd_model_cache_misses_total{model="${target}"}`), 1, target);
      assert.equal(counterValue(text, `inferd_model_cache_hits_total{model="${target}"}`), 1, target);
    }
    // The archives were unpacked into the cache; the directories are served where they are.
    assert.equal((await treeUnder(repo.cacheDir)).paths.filter((path) => !path.includes('/')).length, 2);
    // Without a TargetModel there is no default model to answer.
    const unnamed = await invoke(server.url, csv, CSV);
    assert.equal(unnamed.status, 400);
    assert.match(unnamed.text, /X-Amzn-SageMaker-Target-Model/);
  });

  it('InvokeEndpoint with TargetModel through the AWS SDK answers that model', async () => {
    const client = runtimeClient(server.url);
    try {
      for (const [target, kind] of [
        ['customers/42/model.tar.gz', 'mlp'],
        ['./customers/7/model.tar.gz', 'forest'],
      ] as const) {
        const answer = await client.send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Accept: 'text/csv', Body: toCsv(ref.rows), TargetModel: target }));
        assert.equal(answer.ContentType, 'text/csv');
        assertAnswers(kind, new TextDecoder().decode(answer.Body), ref, `SDK ${target}`);
      }
    } finally {
      client.destroy();
    }
    // `./customers/7/...` is the same model as `customers/7/...`: not loaded twice.
    assert.equal(counterValue(await metricsOf(server.url), 'inferd_model_loads_total{model="customers/7/model.tar.gz"}'), 1);
  });

  it('refuses a TargetModel that leads out of the repository: 400 INFERD_ERR_MODEL_SOURCE_INVALID, ValidationError through the SDK', async () => {
    const client = runtimeClient(server.url);
    try {
      // `escape` is a link in the repository to a model outside it; `linked` holds a link to one.
      for (const target of ['../x', '/etc/passwd', 'a/../../b', '../repo/mlp', 'escape', 'linked']) {
        const answer = await invoke(server.url, toCsv(ref.rows), { ...CSV, [TARGET_MODEL]: target });
        assert.equal(answer.status, 400, `${target}: ${answer.text}`);
        assert.equal(JSON.parse(answer.text).code, 'INFERD_ERR_MODEL_SOURCE_INVALID', target);
        const error = await client
          .send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: toCsv(ref.rows), TargetModel: target }))
          .catch((e: unknown) => e);
        assert.ok(error instanceof ValidationError, `${target}: ${String(error)}`);
        assert.equal(error.$metadata.httpStatusCode, 400);
        assert.match(error.message, /^INFERD_ERR_MODEL_SOURCE_INVALID: /);
      }
    } finally {
      client.destroy();
    }
    assert.deepEqual(
      (await listModels(server.url)).filter((model) => !(model.modelName in repo.models)),
      [],
      'no refused target was left loading',
    );
  });

  it('answers a TargetModel that names nothing 404 INFERD_ERR_MODEL_NOT_FOUND, ValidationError through the SDK', async () => {
    const client = runtimeClient(server.url);
    try {
      for (const target of ['customers/43/model.tar.gz', 'nothing', 'mlp/model']) {
        const answer = await invoke(server.url, toCsv(ref.rows), { ...CSV, [TARGET_MODEL]: target }, '/invocations');
        assert.equal(answer.status, 404, `${target}: ${answer.text}`);
        assert.equal(JSON.parse(answer.text).code, 'INFERD_ERR_MODEL_NOT_FOUND', target);
        const error = await client
          .send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: toCsv(ref.rows), TargetModel: target }))
          .catch((e: unknown) => e);
        assert.ok(error instanceof ValidationError, `${target}: ${String(error)}`);
        assert.match(error.message, /^INFERD_ERR_MODEL_NOT_FOUND: /);
      }
    } finally {
      client.destroy();
    }
  });

  it('refuses an archive holding a symbolic link or a `../` entry (400), writing nothing outside the cache and leaving nothing in it', async () => {
    const cacheBefore = await treeUnder(repo.cacheDir);
    for (const [target, why] of [
      ['evil/symlink.tar.gz', /symbolic link/],
      ['evil/dotdot.tar.gz', /"\.\." segment/],
    ] as const) {
      // Twice: a refused load is not cached as loaded, and is refused again.
      for (let attempt = 0; attempt < 2; attempt += 1) {
        for (const path of ['/invocations', '/endpoints/ep/invocations']) {
          const answer = await invoke(server.url, toCsv(ref.rows), { ...CSV, [TARGET_MODEL]: target }, path);
          assert.equal(answer.status, 400, `${target} on ${path}: ${answer.text}`);
          const body = JSON.parse(answer.text) as { code?: string; message?: string; Message?: string };
          if (path === '/invocations') {
            assert.equal(body.code, 'INFERD_ERR_MODEL_SOURCE_INVALID');
            assert.match(body.message!, why);
          } else {
            assert.equal(answer.headers.get('x-amzn-errortype'), 'ValidationError');
            assert.match(body.Message!, /^INFERD_ERR_MODEL_SOURCE_INVALID: /);
          }
        }
      }
    }
    assert.equal(await exists(repo.escapedFile), false, 'the `../../` entry was not written beside the cache');
    assert.equal(await exists(join(repo.cacheDir, 'escaped.onnx')), false, 'nor into the cache root');
    const cacheAfter = await treeUnder(repo.cacheDir);
    assert.deepEqual(cacheAfter.paths, cacheBefore.paths, 'the refused archives left no partial directory behind');
    assert.deepEqual(cacheAfter.links, [], 'no link was created');
    assert.equal((await listModels(server.url)).some((model) => model.modelName.startsWith('evil/')), false);
  });

  it('loads a model once for 20 concurrent first requests: all 200, one load, every request a cache miss or hit', async () => {
    const target = 'concurrent/model.tar.gz';
    const cacheEntries = (await treeUnder(repo.cacheDir)).paths.filter((path) => !path.includes('/')).length;
    const answers = await Promise.all(Array.from({ length: 20 }, () => invoke(server.url, toCsv(ref.rows), { ...CSV, [TARGET_MODEL]: target })));
    for (const answer of answers) {
      assert.equal(answer.status, 200, answer.text);
      assertAnswers('forest', answer.text, ref, target);
    }
    const text = await metricsOf(server.url);
    assert.equal(counterValue(text, `inferd_model_loads_total{model="${target}"}`), 1);
    const misses = counterValue(text, `inferd_model_cache_misses_total{model="${target}"}`);
    const hits = counterValue(text, `inferd_model_cache_hits_total{model="${target}"}`);
    assert.ok(misses >= 1, 'the first request missed');
    assert.equal(misses + hits, 20, 'every request was counted once');
    assert.equal(counterValue(text, `inferd_requests_total{model="${target}",status_class="2xx"}`), 20);
    // One copy unpacked into the cache, one entry in the registry.
    assert.equal((await treeUnder(repo.cacheDir)).paths.filter((path) => !path.includes('/')).length, cacheEntries + 1);
    assert.equal((await listModels(server.url)).filter((model) => model.modelName === target).length, 1);
    // Loaded, the next request is a hit.
    assert.equal((await invoke(server.url, toCsv(ref.rows), { ...CSV, [TARGET_MODEL]: target })).status, 200);
    assert.equal(counterValue(await metricsOf(server.url), `inferd_model_cache_hits_total{model="${target}"}`), hits + 1);
  });
});

describe('a repository beside the --model-dir default model', () => {
  it('never answers a TargetModel with the default model of the same name: 409 INFERD_ERR_MODEL_ALREADY_LOADED, ValidationError through the SDK', async (t) => {
    // The repository's `churn-forest` holds the mlp; the default model is models/churn-forest.
    const server = await startServer(MODELS.forest, { env: repositoryEnv() });
    t.after(() => server.http.close());
    const unnamed = await invoke(server.url, toCsv(ref.rows), CSV);
    assert.equal(unnamed.status, 200);
    assertAnswers('forest', unnamed.text, ref, 'the default model');
    const client = runtimeClient(server.url);
    try {
      for (const target of ['churn-forest', './churn-forest']) {
        const answer = await invoke(server.url, toCsv(ref.rows), { ...CSV, [TARGET_MODEL]: target });
        assert.equal(answer.status, 409, `${target}: ${answer.text}`);
        assert.equal(JSON.parse(answer.text).code, 'INFERD_ERR_MODEL_ALREADY_LOADED');
        const error = await client
          .send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: toCsv(ref.rows), TargetModel: target }))
          .catch((e: unknown) => e);
        assert.ok(error instanceof ValidationError, `${target}: ${String(error)}`);
        assert.match(error.message, /^INFERD_ERR_MODEL_ALREADY_LOADED: /);
      }
    } finally {
      client.destroy();
    }
    // Other repository models answer beside it; the default model is still the one loaded under its name.
    const other = await invoke(server.url, toCsv(ref.rows), { ...CSV, [TARGET_MODEL]: 'mlp' });
    assert.equal(other.status, 200, other.text);
    assertAnswers('mlp', other.text, ref, 'mlp');
    const listed = await listModels(server.url);
    assert.deepEqual(
      listed.map((model) => [model.modelName, model.modelUrl]),
      [
        ['churn-forest', MODELS.forest],
        ['mlp', join(repo.root, 'mlp')],
      ],
    );
    assert.equal(counterValue(await metricsOf(server.url), 'inferd_model_cache_hits_total{model="churn-forest"}'), 0);
  });

  it('refuses to start with a preload named like the default model', async (t) => {
    const server = await startServer(MODELS.forest, { load: false, env: repositoryEnv({ INFERD_PRELOAD_MODELS: 'mlp,churn-forest' }) });
    t.after(() => server.http.close());
    await assert.rejects(server.start(), { code: 'INFERD_ERR_MODEL_ALREADY_LOADED' });
    assert.equal((await fetch(`${server.url}/ping`)).status, 503);
  });
});

describe('a memory budget: LRU eviction of idle repository models', () => {
  it('with room for 2 of 3 models, using A, B, A, then C evicts B (the least recently used), and B loads again on its next request', async (t) => {
    // 30 MiB declared each in inferd.json; 70 MiB hold two.
    const server = await startServer(undefined, { env: repositoryEnv({ INFERD_MODEL_MEMORY_BUDGET_MB: '70' }) });
    t.after(() => server.http.close());
    const use = async (target: string) => {
      const kind = target === 'lru/b' ? 'forest' : 'mlp';
      const answer = await invoke(server.url, toCsv(ref.rows), { ...CSV, [TARGET_MODEL]: target });
      assert.equal(answer.status, 200, `${target}: ${answer.text}`);
      assertAnswers(kind, answer.text, ref, target);
    };
    const loaded = async () => (await listModels(server.url)).map((model) => model.modelName).sort();
    await use('lru/a');
    await use('lru/b');
    await use('lru/a');
    assert.deepEqual(await loaded(), ['lru/a', 'lru/b']);
    await use('lru/c');
    assert.deepEqual(await loaded(), ['lru/a', 'lru/c'], 'B was evicted, not A');
    let text = await metricsOf(server.url);
    assert.equal(counterValue(text, 'inferd_model_evictions_total{model="lru/b"}'), 1);
    assert.equal(counterValue(text, 'inferd_model_unloads_total{model="lru/b",reason="evicted"}'), 1);
    assert.equal(counterValue(text, 'inferd_model_evictions_total{model="lru/a"}'), 0);
    assert.doesNotMatch(text, /^inferd_(model_memory_bytes|workers)\{model="lru\/b"\}/m, 'an evicted model leaves no gauge behind');
    assert.equal(counterValue(text, 'inferd_model_memory_bytes{model="lru/a"}'), 30 * 2 ** 20);
    const footprints = (await listModels(server.url)).map((model) => [model.footprintBytes, model.footprintSource]);
    assert.deepEqual(footprints, [
      [30 * 2 ** 20, 'declared'],
      [30 * 2 ** 20, 'declared'],
    ]);

    // B's next request loads it again (now A is the least recently used, and makes room).
    await use('lru/b');
    text = await metricsOf(server.url);
    assert.equal(counterValue(text, 'inferd_model_loads_total{model="lru/b"}'), 2);
    assert.equal(counterValue(text, 'inferd_model_cache_misses_total{model="lru/b"}'), 2);
    assert.equal(counterValue(text, 'inferd_model_evictions_total{model="lru/a"}'), 1);
    assert.deepEqual(await loaded(), ['lru/b', 'lru/c']);
  });

  it('never evicts a model with requests in flight: the least recently used model is busy, so the next one goes instead', async (t) => {
    const server = await startServer(undefined, { env: repositoryEnv({ INFERD_MODEL_MEMORY_BUDGET_MB: '70' }) });
    t.after(() => server.http.close());
    const NPY = { 'content-type': 'application/x-npy', accept: 'application/x-npy' };
    const slowBody = (rows: number) => writeNpy('<f4', [rows, 256], new Float32Array(rows * 256).fill(0.5));
    const hits = async (target: string) => counterValue(await metricsOf(server.url), `inferd_model_cache_hits_total{model="${target}"}`);
    const ok = async (target: string, body: string | Uint8Array, headers: Record<string, string>) => {
      const answer = await invoke(server.url, body, { ...headers, [TARGET_MODEL]: target });
      assert.equal(answer.status, 200, `${target}: ${answer.text}`);
    };
    await ok('busy/slow', slowBody(1), NPY);
    await ok('busy/x', toCsv(ref.rows), CSV);

    // A backlog on the slow model: every request is admitted (its use recorded) before X is used
    // again, so the slow model is the least recently used of the two while it works through them.
    const BACKLOG = 30;
    const backlog = Array.from({ length: BACKLOG }, () => invoke(server.url, slowBody(2000), { ...NPY, [TARGET_MODEL]: 'busy/slow' }));
    await until(async () => ((await hits('busy/slow')) === BACKLOG ? true : undefined), 60_000, 'the backlog admitted');
    await ok('busy/x', toCsv(ref.rows), CSV);
    // Y needs room: the slow model is least recently used but busy, so X is evicted.
    await ok('busy/y', toCsv(ref.rows), CSV);
    // The slow model got no new request since X's use: its work only shrinks. Work still queued
    // or running now was there all through Y's load.
    const slow = [...server.runtime.stats()].find((model) => model.name === 'busy/slow');
    const text = await metricsOf(server.url);
    assert.equal(counterValue(text, 'inferd_model_evictions_total{model="busy/slow"}'), 0);
    assert.equal(counterValue(text, 'inferd_model_evictions_total{model="busy/x"}'), 1);
    assert.ok(slow !== undefined && slow.stats.queued + slow.stats.inFlight > 0, 'the slow model was still busy when Y had loaded');
    assert.deepEqual((await listModels(server.url)).map((model) => model.modelName).sort(), ['busy/slow', 'busy/y']);
    const answers = await Promise.all(backlog);
    assert.deepEqual(
      answers.map((answer) => answer.status),
      Array(BACKLOG).fill(200),
    );
  });
});
