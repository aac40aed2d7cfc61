/**
 * The CUDA path on a machine without the CUDA provider: onnxruntime-node throws instead of
 * falling back, so inferd falls back to CPU with a warning, or refuses when a GPU is required.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MODELS, invoke, startServer } from '../helper.js';
import { modelDir } from './model-dir.test.js';

const cudaModel = () =>
  modelDir({ 'model.onnx': { copyOf: join(MODELS.mlp, 'model.onnx') }, 'inferd.json': '{"executionProvider": "cuda", "deviceId": 0}' });

describe('execution providers', () => {
  it('falls back to CPU when CUDA cannot load, and reports the provider in use', async (t) => {
    const server = await startServer(await cudaModel());
    t.after(() => server.http.close());
    const { models } = (await (await fetch(`${server.url}/models`)).json()) as {
      models: Array<{ provider: string; requestedProvider: string }>;
    };
    assert.equal(models[0]!.requestedProvider, 'cuda');
    assert.equal(models[0]!.provider, 'cpu');
    const res = await invoke(server.url, JSON.stringify([Array(20).fill(0)]), { 'content-type': 'application/json' });
    assert.equal(res.status, 200, res.text);
  });

  it('fails startup instead when INFERD_REQUIRE_GPU=true', async (t) => {
    const dir = await cudaModel();
    const server = await startServer(dir, { load: false, env: { INFERD_REQUIRE_GPU: 'true' } });
    t.after(() => server.http.close());
    await assert.rejects(server.start(), (error: { code?: string; message: string }) => {
      assert.equal(error.code, 'INFERD_ERR_MODEL_LOAD_FAILED');
      assert.match(error.message, /cuda/i);
      return true;
    });
    assert.equal((await fetch(`${server.url}/ping`)).status, 503);
  });
});

describe('batching configuration checked against the model', () => {
  it('refuses a pad value the padded inputs cannot hold', async (t) => {
    const dir = await modelDir({
      'model.onnx': { copyOf: join(MODELS.tokens, 'model.onnx') },
      'inferd.json': '{"batching": {"pad": {"seq": {"value": 0.5}}}}',
    });
    const server = await startServer(dir, { load: false });
    t.after(() => server.http.close());
    await assert.rejects(server.start(), /batching\.pad: "seq" pads int64 input 'input_ids' with 0\.5/);
  });

  it('refuses padding of a dimension the model does not have', async (t) => {
    const dir = await modelDir({
      'model.onnx': { copyOf: join(MODELS.tokens, 'model.onnx') },
      'inferd.json': '{"batching": {"pad": {"tokens": {"value": 0}}}}',
    });
    const server = await startServer(dir, { load: false });
    t.after(() => server.http.close());
    await assert.rejects(server.start(), /"tokens" is not one of the model's variable dimensions \[seq\]/);
  });
});
