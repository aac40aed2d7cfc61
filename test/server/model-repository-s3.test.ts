/**
 * The model repository on a real S3-compatible server (s3rver, in a child process), reached
 * through an HTTP gate that can hold a model's requests unanswered, as a hanging S3 would: a
 * `model.tar.gz` and a model stored as objects under a prefix both answer; a load slower than
 * INFERD_MODEL_LOAD_WAIT_S answers 429 while the server's other models keep answering; and
 * INFERD_PRELOAD_MODELS keeps /ping at 503 until the preloaded model is loaded.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InvokeEndpointCommand, ModelNotReadyException } from '@aws-sdk/client-sagemaker-runtime';
import type { ObjectStore } from '../../src/storage/object-store.js';
import { openObjectStore } from '../../src/storage/open-store.js';
import { counterValue, until } from '../async/toolkit.js';
import { MODELS, copyModel, invoke, loadReference, startServer, type Reference, type TestServer } from '../helper.js';
import { startHttpGate, type HttpGate } from '../http-gate.js';
import { S3RVER_ENV, startS3Server, type S3Server } from '../s3-server.js';
import { CSV, TARGET_MODEL, archiveModel, assertAnswers, listModels, metricsOf, runtimeClient, toCsv, treeUnder } from './model-repository-fixtures.js';

// The server's S3 client finds s3rver's credentials in the environment, as on AWS it finds a role's.
Object.assign(process.env, S3RVER_ENV, { AWS_EC2_METADATA_DISABLED: 'true' });

const BUCKET = 'inferd-models';
const ROOT = `s3://${BUCKET}/repo`;

let work: string;
let ref: Reference;
let s3: S3Server;
let gate: HttpGate;
/** A key fragment whose S3 requests the gate holds; none while undefined. */
let holding: string | undefined;

before(async () => {
  ref = await loadReference();
  work = await mkdtemp(join(tmpdir(), 'inferd-model-repository-s3-'));
  s3 = await startS3Server({ buckets: [BUCKET] });
  gate = await startHttpGate(s3.endpoint, (request) => holding !== undefined && (request.url ?? '').includes(holding));
  const store: ObjectStore = openObjectStore(ROOT, { s3Endpoint: s3.endpoint, region: 'us-east-1' });
  const mlp = await copyModel(MODELS.mlp, undefined, join(work, 'staging', 'mymodel'));
  const forest = await copyModel(MODELS.forest, undefined, join(work, 'staging', 'forest'));
  const archives = join(work, 'archives');
  await archiveModel(mlp, join(archives, 'mlp.tar.gz'), true);
  await archiveModel(forest, join(archives, 'forest.tar.gz'), false);
  // A SageMaker model.tar.gz, made with the system tar.
  await store.put(`${ROOT}/customers/42/model.tar.gz`, await readFile(join(archives, 'mlp.tar.gz')));
  // A model "directory": objects under a prefix, with the empty `folder/` marker consoles create.
  await store.put(`${ROOT}/forest/`, '');
  await store.put(`${ROOT}/forest/model.onnx`, await readFile(join(MODELS.forest, 'model.onnx')));
  await store.put(`${ROOT}/forest/inferd.json`, JSON.stringify({ batching: { maxBatchSize: 32 } }));
  // Models whose S3 requests the gate holds.
  await store.put(`${ROOT}/gated/model.tar.gz`, await readFile(join(archives, 'forest.tar.gz')));
  await store.put(`${ROOT}/preload/model.tar.gz`, await readFile(join(archives, 'mlp.tar.gz')));
});
after(async () => {
  await gate?.close();
  await s3?.close();
  await rm(work, { recursive: true, force: true });
});

const s3Env = async (extra: Record<string, string> = {}) => ({
  INFERD_MODEL_REPOSITORY: ROOT,
  INFERD_MODEL_CACHE_DIR: await mkdtemp(join(work, 'cache-')),
  AWS_ENDPOINT_URL_S3: gate.url,
  AWS_REGION: 'us-east-1',
  ...extra,
});

describe('a repository on S3 (s3rver), beside the --model-dir default model', () => {
  let server: TestServer;
  before(async () => {
    holding = undefined;
    server = await startServer(MODELS.forest, { env: await s3Env({ INFERD_MODEL_LOAD_WAIT_S: '1' }) });
  });
  after(() => server?.http.close());

  it('answers a model.tar.gz object and a model stored as objects under a prefix, each with its reference outputs', async () => {
    const client = runtimeClient(server.url);
    try {
      for (const [target, kind] of [
        ['customers/42/model.tar.gz', 'mlp'],
        ['forest', 'forest'],
      ] as const) {
        const answer = await invoke(server.url, toCsv(ref.rows), { ...CSV, [TARGET_MODEL]: target });
        assert.equal(answer.status, 200, `${target}: ${answer.text}`);
        assertAnswers(kind, answer.text, ref, target);
        const sdk = await client.send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Accept: 'text/csv', Body: toCsv(ref.rows), TargetModel: target }));
        assertAnswers(kind, new TextDecoder().decode(sdk.Body), ref, `SDK ${target}`);
      }
    } finally {
      client.destroy();
    }
    const listed = await listModels(server.url);
    const byName = new Map(listed.map((model) => [model.modelName, model]));
    assert.equal(byName.get('customers/42/model.tar.gz')?.modelUrl, `${ROOT}/customers/42/model.tar.gz`);
    assert.equal(byName.get('forest')?.modelUrl, `${ROOT}/forest`);
    // The prefix's inferd.json came down with the model.
    assert.equal((byName.get('forest') as unknown as { batching: { maxBatchSize: number } }).batching.maxBatchSize, 32);
    // Both were downloaded into the cache, each once.
    const cacheDir = server.config.model.cacheDir;
    assert.equal((await treeUnder(cacheDir)).paths.filter((path) => !path.includes('/')).length, 2);
    const text = await metricsOf(server.url);
    assert.equal(counterValue(text, 'inferd_model_loads_total{model="forest"}'), 1);
    assert.equal(counterValue(text, 'inferd_model_loads_total{model="customers/42/model.tar.gz"}'), 1);
    // Missing on S3: 404.
    const missing = await invoke(server.url, toCsv(ref.rows), { ...CSV, [TARGET_MODEL]: 'customers/43/model.tar.gz' });
    assert.equal(missing.status, 404);
    assert.equal(JSON.parse(missing.text).code, 'INFERD_ERR_MODEL_NOT_FOUND');
  });

  it('answers a load slower than INFERD_MODEL_LOAD_WAIT_S with 429 (ModelNotReadyException) while other models keep answering, then serves it once S3 answers', async () => {
    const target = 'gated/model.tar.gz';
    const refusedBefore = counterValue(await metricsOf(server.url), 'inferd_requests_total{model="none",status_class="4xx"}');
    holding = `/${target}`;
    const heldBefore = gate.held;
    try {
      const waited = await invoke(server.url, toCsv(ref.rows), { ...CSV, [TARGET_MODEL]: target });
      assert.equal(waited.status, 429, waited.text);
      assert.equal(JSON.parse(waited.text).code, 'INFERD_ERR_MODEL_LOADING');
      assert.ok(gate.held > heldBefore, 'the model download is what is held');
      const client = runtimeClient(server.url);
      try {
        const error = await client
          .send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: toCsv(ref.rows), TargetModel: target }))
          .catch((e: unknown) => e);
        assert.ok(error instanceof ModelNotReadyException, String(error));
        assert.equal(error.$metadata.httpStatusCode, 429);
        assert.match(error.message, /^INFERD_ERR_MODEL_LOADING: /);
      } finally {
        client.destroy();
      }

      // Meanwhile the default model answers, and so does another repository model.
      const defaults = await Promise.all(Array.from({ length: 5 }, () => invoke(server.url, toCsv(ref.rows), CSV)));
      for (const answer of defaults) {
        assert.equal(answer.status, 200, answer.text);
        assertAnswers('forest', answer.text, ref, 'the default model');
      }
      const other = await invoke(server.url, toCsv(ref.rows), { ...CSV, [TARGET_MODEL]: 'customers/42/model.tar.gz' }, '/endpoints/ep/invocations');
      assert.equal(other.status, 200, other.text);
      assertAnswers('mlp', other.text, ref, 'another repository model');

      const loading = (await listModels(server.url)).find((model) => model.modelName === target);
      assert.equal(loading?.state, 'loading');
      assert.equal(counterValue(await metricsOf(server.url), `inferd_model_loads_total{model="${target}"}`), 0);
      assert.equal((await fetch(`${server.url}/ping`)).status, 200, 'a repository load does not make the server unready');
    } finally {
      holding = undefined;
      gate.release();
    }
    // The load the 429s left going on completes; the model answers.
    await until(async () => ((await listModels(server.url)).find((model) => model.modelName === target)?.state === 'ready' ? true : undefined), 60_000, `${target} loaded`);
    const answer = await invoke(server.url, toCsv(ref.rows), { ...CSV, [TARGET_MODEL]: target });
    assert.equal(answer.status, 200, answer.text);
    assertAnswers('forest', answer.text, ref, target);
    const text = await metricsOf(server.url);
    assert.equal(counterValue(text, `inferd_model_loads_total{model="${target}"}`), 1, 'one load, shared by every request that waited');
    assert.equal(counterValue(text, `inferd_requests_total{model="none",status_class="4xx"}`), refusedBefore + 2, 'the two 429s');
  });

  it('shuts down cleanly after the held load', async () => {
    await server.http.close();
    assert.equal(server.runtime.list().length, 0, 'every model unloaded');
  });
});

describe('INFERD_PRELOAD_MODELS', () => {
  it('keeps /ping at 503 until the preloaded model is loaded; its first request is then a cache hit', async (t) => {
    const target = 'preload/model.tar.gz';
    const server = await startServer(undefined, { load: false, env: await s3Env({ INFERD_PRELOAD_MODELS: target }) });
    t.after(() => server.http.close());
    assert.equal((await fetch(`${server.url}/ping`)).status, 503, 'before start');

    holding = `/${target}`;
    const heldBefore = gate.held;
    let starting: Promise<void> | undefined;
    try {
      starting = server.start();
      await until(() => (gate.held > heldBefore ? true : undefined), 30_000, 'the preload to reach S3');
      // The preload is under way and held: not ready.
      assert.equal((await fetch(`${server.url}/ping`)).status, 503, 'while the preload is held');
      assert.equal((await listModels(server.url)).find((model) => model.modelName === target)?.state, 'loading');
    } finally {
      holding = undefined;
      gate.release();
    }
    await starting;
    assert.equal((await fetch(`${server.url}/ping`)).status, 200, 'once loaded');
    assert.equal((await listModels(server.url)).find((model) => model.modelName === target)?.state, 'ready');

    const answer = await invoke(server.url, toCsv(ref.rows), { ...CSV, [TARGET_MODEL]: target });
    assert.equal(answer.status, 200, answer.text);
    assertAnswers('mlp', answer.text, ref, target);
    const text = await metricsOf(server.url);
    assert.equal(counterValue(text, `inferd_model_cache_hits_total{model="${target}"}`), 1);
    assert.equal(counterValue(text, `inferd_model_cache_misses_total{model="${target}"}`), 0);
    assert.equal(counterValue(text, `inferd_model_loads_total{model="${target}"}`), 1);
  });
});

describe('shutting down while a repository download hangs', () => {
  it('closes without waiting for it: the load is abandoned, the loaded models stop', async () => {
    const server = await startServer(MODELS.forest, { env: await s3Env({ INFERD_MODEL_LOAD_WAIT_S: '1' }) });
    holding = '/gated/';
    const heldBefore = gate.held;
    try {
      const answer = await invoke(server.url, toCsv(ref.rows), { ...CSV, [TARGET_MODEL]: 'gated/model.tar.gz' });
      assert.equal(answer.status, 429, answer.text);
      assert.ok(gate.held > heldBefore, 'the download is held');
      // The gate is never released before the server has closed.
      await server.http.close();
      assert.deepEqual(
        server.runtime.list().map((model) => [model.name, model.state]),
        [['gated/model.tar.gz', 'loading']],
        'only the abandoned load is left, and the default model stopped',
      );
    } finally {
      holding = undefined;
      gate.release();
    }
  });
});
