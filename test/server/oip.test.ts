/**
 * The Open Inference Protocol v2 over REST, against the real server and real models: server and
 * model health and metadata, `infer` with the reference outputs, the `{"error"}` shape with the
 * status of each inferd code, models named by a repository path (`%2F`), SageMaker MME models,
 * a loading server and a draining one.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { counterValue } from '../async/toolkit.js';
import { MODELS, assertClose, copyModel, invoke, loadReference, startServer, type Reference, type TestServer } from '../helper.js';

interface V2Output {
  name: string;
  datatype: string;
  shape: number[];
  data: number[];
}
interface V2Response {
  model_name: string;
  id?: string;
  outputs: V2Output[];
}

async function get(server: TestServer, path: string) {
  const response = await fetch(`${server.url}${path}`);
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: JSON.parse(text) as Record<string, unknown> };
}

/** The v2 body for `rows` of the churn models' one input. */
const v2Body = (rows: number[][], extra: Record<string, unknown> = {}) =>
  JSON.stringify({ ...extra, inputs: [{ name: 'features', shape: [rows.length, 20], datatype: 'FP32', data: rows.flat() }] });

async function infer(server: TestServer, model: string, body: string | Uint8Array, headers: Record<string, string> = {}) {
  const answer = await invoke(server.url, body, { 'content-type': 'application/json', ...headers }, `/v2/models/${model}/infer`);
  return { ...answer, json: JSON.parse(answer.text) as V2Response & { error?: unknown } };
}

const outputOf = (response: V2Response, name: string) => {
  const output = response.outputs.find((o) => o.name === name);
  assert.ok(output, `no output '${name}' in ${JSON.stringify(response)}`);
  return output;
};

/** An error answer in the protocol's shape: `{"error": message}` and nothing else. */
function assertError(answer: { status: number; json: unknown }, status: number, pattern?: RegExp): void {
  assert.equal(answer.status, status, JSON.stringify(answer.json));
  const body = answer.json as Record<string, unknown>;
  assert.deepEqual(Object.keys(body), ['error'], JSON.stringify(body));
  assert.equal(typeof body.error, 'string');
  assert.doesNotMatch(body.error as string, /\n\s+at /, 'no stack trace');
  if (pattern) assert.match(body.error as string, pattern);
}

function assertForest(response: V2Response, ref: Reference, rows = ref.rows.length): void {
  const label = outputOf(response, 'label');
  assert.equal(label.datatype, 'INT64');
  assert.deepEqual(label.shape, [rows]);
  assert.deepEqual(label.data, ref.forest_labels.slice(0, rows));
  const probabilities = outputOf(response, 'probabilities');
  assert.equal(probabilities.datatype, 'FP32');
  assert.deepEqual(probabilities.shape, [rows, 3]);
  assertClose(probabilities.data, ref.forest_probabilities.slice(0, rows).flat(), 1e-5, 'probabilities');
}

function assertMlp(response: V2Response, ref: Reference): void {
  const probabilities = outputOf(response, 'probabilities');
  assert.equal(probabilities.datatype, 'FP32');
  assert.deepEqual(probabilities.shape, [ref.rows.length, 2]);
  assertClose(probabilities.data, ref.mlp_probabilities.flat(), 1e-5, 'probabilities');
}

describe('Open Inference Protocol v2 on the model of --model-dir', () => {
  let server: TestServer;
  let ref: Reference;

  before(async () => {
    ref = await loadReference();
    server = await startServer(MODELS.forest);
  });
  after(() => server.http.close());

  it('answers the server metadata, and live and ready once the model is loaded', async () => {
    const metadata = await get(server, '/v2');
    assert.equal(metadata.status, 200);
    assert.equal(metadata.json.name, 'inferd');
    assert.match(metadata.json.version as string, /^\d+\.\d+\.\d+/);
    assert.deepEqual(metadata.json.extensions, []);
    assert.equal((await get(server, '/v2/health/live')).status, 200);
    assert.equal((await get(server, '/v2/health/ready')).status, 200);
  });

  it('describes the model with v2 datatypes and -1 for dynamic dimensions, under any version', async () => {
    const expected = {
      name: 'churn-forest',
      versions: [],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, 20] }],
      outputs: [
        { name: 'label', datatype: 'INT64', shape: [-1] },
        { name: 'probabilities', datatype: 'FP32', shape: [-1, 3] },
      ],
    };
    for (const path of ['/v2/models/churn-forest', '/v2/models/churn-forest/versions/1']) {
      const metadata = await get(server, path);
      assert.equal(metadata.status, 200, path);
      assert.deepEqual(metadata.json, expected, path);
    }
    assertError(await get(server, '/v2/models/nope'), 404, /nope/);
  });

  it('says whether a model is ready: 200 when loaded, 404 when not', async () => {
    assert.deepEqual((await get(server, '/v2/models/churn-forest/ready')).json, { name: 'churn-forest', ready: true });
    assert.equal((await get(server, '/v2/models/churn-forest/versions/1/ready')).status, 200);
    assertError(await get(server, '/v2/models/nope/ready'), 404, /not loaded/);
  });

  it('infers from the v2 JSON body with the reference outputs, and echoes the id', async () => {
    const answer = await infer(server, 'churn-forest', v2Body(ref.rows, { id: 'req-42', parameters: { anything: 1 } }));
    assert.equal(answer.status, 200, answer.text);
    assert.match(answer.headers.get('content-type')!, /^application\/json/);
    assert.equal(answer.json.model_name, 'churn-forest');
    assert.equal(answer.json.id, 'req-42');
    assert.deepEqual(answer.json.outputs.map((o) => o.name), ['label', 'probabilities']);
    assertForest(answer.json, ref);

    const versioned = await invoke(server.url, v2Body(ref.rows.slice(0, 2)), {}, '/v2/models/churn-forest/versions/1/infer');
    assert.equal(versioned.status, 200, versioned.text);
    const response = JSON.parse(versioned.text) as V2Response;
    assert.equal(Object.hasOwn(response, 'id'), false, 'no id when the request has none');
    assertForest(response, ref, 2);
    // Counted as every inference is, under its model.
    const exposition = await (await fetch(`${server.url}/metrics`)).text();
    assert.ok(counterValue(exposition, 'inferd_requests_total{model="churn-forest",status_class="2xx"}') >= 2);
    assert.ok(counterValue(exposition, 'inferd_codec_seconds_count{model="churn-forest",operation="decode"}') >= 2);
  });

  it('reads the body as JSON whatever its Content-Type, as Triton does', async () => {
    for (const headers of [{ 'content-type': 'application/x-www-form-urlencoded' }, { 'content-type': 'text/plain' }]) {
      const answer = await infer(server, 'churn-forest', v2Body(ref.rows), headers);
      assert.equal(answer.status, 200, answer.text);
      assertForest(answer.json, ref);
    }
  });

  it('answers only the outputs requested, in their order; an unknown one is 422 before inference', async () => {
    const one = await infer(server, 'churn-forest', v2Body(ref.rows, { outputs: [{ name: 'probabilities', parameters: { binary_data: false } }] }));
    assert.equal(one.status, 200, one.text);
    assert.deepEqual(one.json.outputs.map((o) => o.name), ['probabilities']);
    assertClose(outputOf(one.json, 'probabilities').data, ref.forest_probabilities.flat());
    const both = await infer(server, 'churn-forest', v2Body(ref.rows, { outputs: [{ name: 'probabilities' }, { name: 'label' }] }));
    assert.deepEqual(both.json.outputs.map((o) => o.name), ['probabilities', 'label']);
    const all = await infer(server, 'churn-forest', v2Body(ref.rows, { outputs: [] }));
    assert.deepEqual(all.json.outputs.map((o) => o.name), ['label', 'probabilities']);
    assertError(await infer(server, 'churn-forest', v2Body(ref.rows, { outputs: [{ name: 'logits' }] })), 422, /unknown output 'logits'/);
    assertError(await infer(server, 'churn-forest', v2Body(ref.rows, { outputs: [{ name: 'label' }, { name: 'label' }] })), 422, /twice/);
    assertError(await infer(server, 'churn-forest', v2Body(ref.rows, { outputs: 'label' })), 400);
  });

  it('answers errors as {"error"} with the status of their inferd code', async () => {
    const row = ref.rows[0]!;
    const tensor = (fields: Record<string, unknown>) => JSON.stringify({ inputs: [{ name: 'features', shape: [1, 20], datatype: 'FP32', data: row, ...fields }] });
    const cases: Array<[string, string | Uint8Array, number, RegExp?]> = [
      ['nope', v2Body(ref.rows), 404, /model nope is not loaded/],
      ['churn-forest', '{"inputs": [', 400, /not valid JSON/],
      ['churn-forest', '', 400, /no body/],
      ['churn-forest', JSON.stringify({ instances: ref.rows }), 400, /Open Inference Protocol/],
      ['churn-forest', JSON.stringify({ inputs: [] }), 400, /Open Inference Protocol/],
      ['churn-forest', v2Body(ref.rows, { id: 7 }), 400, /"id" must be a string/],
      ['churn-forest', tensor({ datatype: 'INT64' }), 422, /features/],
      ['churn-forest', tensor({ datatype: 'BYTES' }), 422, /unsupported datatype 'BYTES'/],
      ['churn-forest', tensor({ shape: [2, 20] }), 422, /shape \[2,20\]/],
      ['churn-forest', tensor({ shape: [1, 19], data: row.slice(1) }), 422],
      ['churn-forest', tensor({ name: 'pixels' }), 422, /unknown input 'pixels'/],
    ];
    for (const [model, body, status, pattern] of cases) {
      const answer = await invoke(server.url, body, { 'content-type': 'application/json' }, `/v2/models/${model}/infer`);
      assertError({ status: answer.status, json: JSON.parse(answer.text) }, status, pattern);
    }
  });

  it('refuses the binary tensor data extension with 415, saying so', async () => {
    const header = JSON.stringify({ inputs: [{ name: 'features', shape: [1, 20], datatype: 'FP32', parameters: { binary_data_size: 80 } }] });
    const body = Buffer.concat([Buffer.from(header), Buffer.from(Float32Array.from(ref.rows[0]!).buffer)]);
    const answer = await infer(server, 'churn-forest', body, { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) });
    assertError(answer, 415, /binary tensor data extension/);
  });

  it('answers unknown /v2 paths and wrong methods as {"error"}, reading the body first; other paths keep {code, message}', async () => {
    const unknown = await invoke(server.url, Buffer.alloc(1024 * 1024, 'x'), {}, '/v2/repository/index');
    assertError({ status: unknown.status, json: JSON.parse(unknown.text) }, 404, /no route/);
    const wrongMethod = await get(server, '/v2/models/churn-forest/infer');
    assertError(wrongMethod, 405);
    assert.equal(wrongMethod.headers.get('allow'), 'POST');
    // A malformed URL is refused before routing: still in the protocol's shape.
    assertError(await get(server, '/v2/models/%E0%A4%A/ready'), 400);
    const elsewhere = await get(server, '/v2x');
    assert.equal(elsewhere.status, 404);
    assert.equal(elsewhere.json.code, 'INFERD_ERR_NOT_FOUND');
  });
});

describe('Open Inference Protocol v2 while the server loads its model', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer(MODELS.forest, { load: false });
  });
  after(() => server.http.close());

  it('is live but not ready (503) until the model is loaded, then ready', async () => {
    assert.equal((await get(server, '/v2/health/live')).status, 200);
    const notReady = await get(server, '/v2/health/ready');
    assertError(notReady, 503, /loading/);
    assert.equal(notReady.headers.get('retry-after'), '1');
    assertError(await get(server, '/v2/models/churn-forest/ready'), 404);
    await server.start();
    assert.equal((await get(server, '/v2/health/ready')).status, 200);
    assert.equal((await get(server, '/v2/models/churn-forest/ready')).status, 200);
  });
});

describe('Open Inference Protocol v2 on SageMaker multi-model endpoints', () => {
  let server: TestServer;
  let ref: Reference;
  let scratch: string;

  before(async () => {
    ref = await loadReference();
    scratch = await mkdtemp(join(tmpdir(), 'inferd-oip-mme-'));
    server = await startServer(undefined, { env: { SAGEMAKER_MULTI_MODEL: 'true' } });
  });
  after(async () => {
    await server.http.close();
    await rm(scratch, { recursive: true, force: true });
  });

  const load = async (name: string, source: string, dir: string) => {
    const url = await copyModel(source, undefined, join(scratch, dir));
    const response = await fetch(`${server.url}/models`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model_name: name, url }) });
    assert.equal(response.status, 200, await response.text());
  };

  it('is live and ready with zero models', async () => {
    assert.equal((await get(server, '/v2/health/live')).status, 200);
    assert.equal((await get(server, '/v2/health/ready')).status, 200);
    assertError(await get(server, '/v2/models/forest/ready'), 404);
  });

  it('serves each loaded model at /v2/models/{model_name}, a name with "/" sent as %2F', async () => {
    await load('team/forest', MODELS.forest, 'a1');
    await load('mlp', MODELS.mlp, 'b2');
    assert.deepEqual((await get(server, '/v2/models/team%2Fforest/ready')).json, { name: 'team/forest', ready: true });
    assert.equal((await get(server, '/v2/models/team%2Fforest')).json.name, 'team/forest');
    const forest = await infer(server, 'team%2Fforest', v2Body(ref.rows, { id: 'f' }));
    assert.equal(forest.status, 200, forest.text);
    assert.equal(forest.json.model_name, 'team/forest');
    assert.equal(forest.json.id, 'f');
    assertForest(forest.json, ref);
    const mlp = await infer(server, 'mlp', v2Body(ref.rows));
    assert.equal(mlp.status, 200, mlp.text);
    assert.equal(mlp.json.model_name, 'mlp');
    assertMlp(mlp.json, ref);
    assert.deepEqual((await get(server, '/v2/models/mlp')).json.outputs, [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 2] }]);
  });

  it('says 404 once a model is unloaded', async () => {
    assert.equal((await fetch(`${server.url}/models/mlp`, { method: 'DELETE' })).status, 200);
    assertError(await get(server, '/v2/models/mlp/ready'), 404);
    assertError(await infer(server, 'mlp', v2Body(ref.rows)), 404);
  });
});

describe('Open Inference Protocol v2 on a model repository', () => {
  let server: TestServer;
  let ref: Reference;
  let scratch: string;

  before(async () => {
    ref = await loadReference();
    scratch = await mkdtemp(join(tmpdir(), 'inferd-oip-repo-'));
    await copyModel(MODELS.forest, undefined, join(scratch, 'repo', 'customers', 'forest'));
    server = await startServer(undefined, { env: { INFERD_MODEL_REPOSITORY: join(scratch, 'repo'), INFERD_MODEL_CACHE_DIR: join(scratch, 'cache') } });
  });
  after(async () => {
    await server.http.close();
    await rm(scratch, { recursive: true, force: true });
  });

  it('loads a model named by its repository path on its first inference, never on a readiness check', async () => {
    assertError(await get(server, '/v2/models/customers%2Fforest/ready'), 404);
    assert.equal(server.runtime.get('customers/forest'), undefined, 'the readiness check loaded nothing');
    const answer = await infer(server, 'customers%2Fforest', v2Body(ref.rows));
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.json.model_name, 'customers/forest');
    assertForest(answer.json, ref);
    assert.equal((await get(server, '/v2/models/customers%2Fforest/ready')).status, 200);
    assertError(await infer(server, 'customers%2Fnothing', v2Body(ref.rows)), 404);
    assertError(await infer(server, '..%2Fescape', v2Body(ref.rows)), 400);
  });
});

describe('Open Inference Protocol v2 while the server drains', () => {
  it('answers live and ready 503 in the {"error"} shape', async () => {
    const server = await startServer(undefined, { env: { SAGEMAKER_MULTI_MODEL: 'true', INFERD_DRAIN_IDLE_GRACE_MS: '1000' } });
    try {
      assert.equal((await get(server, '/v2/health/live')).status, 200);
      const drained = server.drain();
      // The listener stays open through the grace, and the connection above stays open after it.
      for (const path of ['/v2/health/live', '/v2/health/ready']) assertError(await get(server, path), 503, /shutting down/);
      await drained;
    } finally {
      await server.http.close();
    }
  });
});
