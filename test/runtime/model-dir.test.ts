import assert from 'node:assert/strict';
import { copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { locateModel } from '../../src/runtime/model-dir.js';
import { MODELS } from '../helper.js';

async function modelDir(files: Record<string, string | { copyOf: string }>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'inferd-model-'));
  for (const [name, content] of Object.entries(files)) {
    if (typeof content === 'string') await writeFile(join(dir, name), content);
    else await copyFile(content.copyOf, join(dir, name));
  }
  return dir;
}

const forest = { copyOf: join(MODELS.forest, 'model.onnx') };

describe('locateModel', () => {
  it('takes the one .onnx file and defaults the configuration', async () => {
    const location = await locateModel(MODELS.forest);
    assert.equal(location.name, 'churn-forest');
    assert.equal(location.modelPath, join(MODELS.forest, 'model.onnx'));
    assert.equal(location.config.executionProvider, 'cpu');
    assert.equal(location.config.intraOpNumThreads, 1);
  });

  it('lets inferd.json choose among several files and name the model', async () => {
    const dir = await modelDir({ 'a.onnx': forest, 'b.onnx': forest, 'inferd.json': '{"model": "b.onnx", "name": "churn"}' });
    const location = await locateModel(dir);
    assert.equal(location.modelPath, join(dir, 'b.onnx'));
    assert.equal(location.name, 'churn');
  });

  const failures: Array<[string, Record<string, string | { copyOf: string }>, RegExp]> = [
    ['an empty directory', {}, /no \.onnx file/],
    ['several files, no choice', { 'a.onnx': forest, 'b.onnx': forest }, /several \.onnx files \(a\.onnx, b\.onnx\)/],
    ['a named file that is missing', { 'a.onnx': forest, 'inferd.json': '{"model": "c.onnx"}' }, /names "c\.onnx"/],
    ['inferd.json that is not JSON', { 'a.onnx': forest, 'inferd.json': '{' }, /not valid JSON/],
    ['an unknown key', { 'a.onnx': forest, 'inferd.json': '{"wokers": 2}' }, /wokers/],
    ['a bad provider', { 'a.onnx': forest, 'inferd.json': '{"executionProvider": "tpu"}' }, /executionProvider/],
  ];
  for (const [name, files, message] of failures) {
    it(`refuses ${name}`, async () => {
      await assert.rejects(locateModel(await modelDir(files)), (error: { code?: string; message: string }) => {
        assert.equal(error.code, 'INFERD_ERR_MODEL_LOAD_FAILED');
        assert.match(error.message, message);
        return true;
      });
    });
  }

  it('refuses a missing directory', async () => {
    await assert.rejects(locateModel('/nonexistent/model'), /cannot read model directory/);
  });
});

export { modelDir };
