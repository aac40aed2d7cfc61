/**
 * TF.js models in the real server: a model that fails inside TF.js answers 500 with the stable
 * code and the server goes on; a wrong shape is refused before it reaches a worker; TF.js and
 * ONNX models side by side in one registry.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { counterValue } from '../async/toolkit.js';
import { MODELS, assertClose, copyModel, invoke, startServer, type TestServer } from '../helper.js';

const JSON_TYPE = { 'content-type': 'application/json' };
const metricsOf = async (server: TestServer) => (await fetch(`${server.url}/metrics`)).text();

describe('a TF.js graph model that fails inside TF.js', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(MODELS.tfjsGatherOob);
  });
  after(() => server.http.close());

  it('says its backend and engine in /models', async () => {
    const { models } = (await (await fetch(`${server.url}/models`)).json()) as { models: Array<Record<string, unknown>> };
    assert.equal(models[0]!.backend, 'tfjs');
    assert.equal(models[0]!.engine, 'wasm');
    assert.equal(models[0]!.provider, 'cpu');
    assert.deepEqual(models[0]!.signature, {
      inputs: [{ name: 'ids', dtype: 'int32', shape: [null], dimNames: [null] }],
      outputs: [{ name: 'Identity', dtype: 'float32', shape: [null, 2], dimNames: [null, null] }],
    });
  });

  it('answers a valid request, 500 INFERD_ERR_INFERENCE_FAILED when TF.js fails, then answers again', async () => {
    const ok = await invoke(server.url, JSON.stringify({ inputs: { ids: [0, 3] } }), JSON_TYPE);
    assert.equal(ok.status, 200, ok.text);
    assertClose((JSON.parse(ok.text).predictions as number[][]).flat(), [0, 0.1, 0.6, 0.7]);
    const failed = await invoke(server.url, JSON.stringify({ inputs: { ids: [9] } }), JSON_TYPE);
    assert.equal(failed.status, 500, failed.text);
    assert.equal(JSON.parse(failed.text).code, 'INFERD_ERR_INFERENCE_FAILED');
    const again = await invoke(server.url, JSON.stringify({ inputs: { ids: [1] } }), JSON_TYPE);
    assert.equal(again.status, 200, again.text);
  });

  it('refuses a wrong shape with 422 before it reaches a worker', async () => {
    const dispatched = () => metricsOf(server).then((text) => counterValue(text, 'inferd_rows_inferred_total{model="tfjs-gather-oob"}'));
    const before = await dispatched();
    const refused = await invoke(server.url, JSON.stringify({ inputs: { ids: [[1, 2]] } }), JSON_TYPE);
    assert.equal(refused.status, 422, refused.text);
    assert.equal(JSON.parse(refused.text).code, 'INFERD_ERR_INPUT_INVALID');
    const floats = await invoke(server.url, JSON.stringify({ inputs: { ids: [0.5] } }), JSON_TYPE);
    assert.equal(floats.status, 422, floats.text);
    assert.equal(await dispatched(), before, 'no rows ran');
  });
});

describe('TF.js and ONNX models side by side in one registry', () => {
  it('answers each from the repository, with its own backend', async (t) => {
    const repository = await mkdtemp(join(tmpdir(), 'inferd-tfjs-repo-'));
    t.after(() => rm(repository, { recursive: true, force: true }));
    await copyModel(MODELS.tfjsGatherOob, undefined, join(repository, 'gather'));
    await copyModel(MODELS.forest, undefined, join(repository, 'forest'));
    const server = await startServer(undefined, { env: { INFERD_MODEL_REPOSITORY: repository, INFERD_MODEL_CACHE_DIR: join(repository, '.cache') } });
    t.after(() => server.http.close());
    const gather = await invoke(server.url, JSON.stringify({ inputs: { ids: [2] } }), { ...JSON_TYPE, 'x-amzn-sagemaker-target-model': 'gather' });
    assert.equal(gather.status, 200, gather.text);
    assertClose((JSON.parse(gather.text).predictions as number[][]).flat(), [0.4, 0.5]);
    const forest = await invoke(server.url, `${Array(20).fill(0.1).join(',')}\n`, { 'content-type': 'text/csv', 'x-amzn-sagemaker-target-model': 'forest' });
    assert.equal(forest.status, 200, forest.text);
    const { models } = (await (await fetch(`${server.url}/models`)).json()) as { models: Array<{ modelName: string; backend: string }> };
    assert.deepEqual(models.map((m) => [m.modelName, m.backend]), [['forest', 'onnx'], ['gather', 'tfjs']]);
  });
});
