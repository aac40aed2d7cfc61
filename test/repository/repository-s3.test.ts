import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ModelRepository } from '../../src/repository/repository.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import { openObjectStore } from '../../src/storage/open-store.js';
import { S3RVER_ENV, startS3Server, type S3Server } from '../s3-server.js';
import { MLP_MODEL, systemTar, tarArchive, tarGz } from './tar-writer.js';

Object.assign(process.env, S3RVER_ENV);
process.env.AWS_EC2_METADATA_DISABLED = 'true';

const BUCKET = 'inferd-models';
const ROOT = `s3://${BUCKET}/repo`;
const MiB = 1024 * 1024;
let server: S3Server;
let store: ObjectStore;
let work = '';
let onnx: Buffer;

before(async () => {
  server = await startS3Server({ buckets: [BUCKET] });
  store = openStore(ROOT);
  work = await mkdtemp(join(tmpdir(), 'inferd-repository-s3-'));
  onnx = await readFile(MLP_MODEL);
  await mkdir(join(work, 'mymodel'));
  await copyFile(MLP_MODEL, join(work, 'mymodel', 'model.onnx'));
  systemTar(['czf', join(work, 'churn.tar.gz'), '-C', work, 'mymodel']);

  await store.put(`${ROOT}/churn.tar.gz`, await readFile(join(work, 'churn.tar.gz')));
  await store.put(`${ROOT}/customers/42/model.tar.gz`, tarGz([{ name: 'model.onnx', content: onnx }]));
  // A model stored as objects under a prefix, with the empty `folder/` marker consoles create.
  await store.put(`${ROOT}/mlp/`, '');
  await store.put(`${ROOT}/mlp/model.onnx`, onnx);
  await store.put(`${ROOT}/mlp/inferd.json`, '{"name":"mlp"}\n');
  await store.put(`${ROOT}/mlp/assets/vocab.txt`, 'a\nb\n');
  await store.put(`${ROOT}/notes.txt`, 'not a model');
  await store.put(`${ROOT}/links.tgz`, tarGz([{ name: 'evil', type: '1', linkName: '/etc/passwd' }]));
});
after(async () => {
  await server.close();
  await rm(work, { recursive: true, force: true });
});

function openStore(uri: string): ObjectStore {
  return openObjectStore(uri, { s3Endpoint: server.endpoint, region: 'us-east-1' });
}

async function repository(maxModelBytes = 64 * MiB): Promise<{ models: ModelRepository; cacheDir: string }> {
  const cacheDir = await mkdtemp(join(work, 'cache-'));
  return { models: new ModelRepository({ root: ROOT, cacheDir, maxModelBytes }, openStore), cacheDir };
}

describe('model repository on S3 (s3rver)', () => {
  it('streams an archive into the cache once', async () => {
    const { models } = await repository();
    const first = await models.fetch('churn.tar.gz');
    assert.equal(first.fetched, true);
    assert.equal(first.url, `${ROOT}/churn.tar.gz`);
    assert.ok(first.dir.endsWith('/mymodel'));
    assert.deepEqual(await readFile(join(first.dir, 'model.onnx')), onnx);
    assert.deepEqual(await models.fetch('./churn.tar.gz'), { ...first, fetched: false });

    const nested = await models.fetch('customers/42/model.tar.gz');
    assert.deepEqual(await readdir(nested.dir), ['model.onnx']);
  });

  it('downloads a model stored as objects under a prefix', async () => {
    const { models, cacheDir } = await repository();
    const results = await Promise.all(Array.from({ length: 5 }, () => models.fetch('mlp')));
    assert.equal(results.filter((result) => result.fetched).length, 1);
    const { dir, url } = results[0]!;
    assert.equal(url, `${ROOT}/mlp`);
    assert.deepEqual((await readdir(dir, { recursive: true })).sort(), ['assets', 'assets/vocab.txt', 'inferd.json', 'model.onnx']);
    assert.deepEqual(await readFile(join(dir, 'model.onnx')), onnx);
    assert.equal(await readFile(join(dir, 'assets', 'vocab.txt'), 'utf8'), 'a\nb\n');
    assert.equal((await models.fetch('mlp')).fetched, false);

    // A file added under the prefix makes it a new model, and the old copy goes.
    await store.put(`${ROOT}/mlp/assets/extra.txt`, 'extra');
    try {
      const changed = await models.fetch('mlp');
      assert.equal(changed.fetched, true);
      assert.equal(await readFile(join(changed.dir, 'assets', 'extra.txt'), 'utf8'), 'extra');
      assert.deepEqual(await readdir(cacheDir), [basename(changed.dir)]);

      // So does a file rewritten with the same size.
      await store.put(`${ROOT}/mlp/assets/extra.txt`, 'EXTRA');
      const rewritten = await models.fetch('mlp');
      assert.equal(rewritten.fetched, true);
      assert.equal(await readFile(join(rewritten.dir, 'assets', 'extra.txt'), 'utf8'), 'EXTRA');
      assert.deepEqual(await readdir(cacheDir), [basename(rewritten.dir)]);
    } finally {
      await store.delete(`${ROOT}/mlp/assets/extra.txt`);
    }
  });

  it('downloads an archive again when it is overwritten with one of the same size, and removes the old copy', async () => {
    const { models, cacheDir } = await repository();
    // Stored, not compressed: the two archives are the same size whatever their content.
    const archive = (content: string) => gzipSync(tarArchive([{ name: 'model.onnx', content }]), { level: 0 });
    const [first, retrained] = [archive('first retraining'), archive('other retraining')];
    assert.equal(first.length, retrained.length);
    await store.put(`${ROOT}/retrained.tar.gz`, first);
    const original = await models.fetch('retrained.tar.gz');
    assert.equal(await readFile(join(original.dir, 'model.onnx'), 'utf8'), 'first retraining');

    await store.put(`${ROOT}/retrained.tar.gz`, retrained);
    const updated = await models.fetch('retrained.tar.gz');
    assert.equal(updated.fetched, true);
    assert.equal(await readFile(join(updated.dir, 'model.onnx'), 'utf8'), 'other retraining');
    assert.equal(existsSync(original.dir), false, 'the old copy is removed');
    assert.deepEqual(await readdir(cacheDir), [basename(updated.dir)]);
    assert.equal((await models.fetch('retrained.tar.gz')).fetched, false);
  });

  it('refuses what is not there or not allowed', async () => {
    const { models, cacheDir } = await repository();
    await assert.rejects(models.fetch('missing.tar.gz'), { code: 'INFERD_ERR_MODEL_NOT_FOUND' });
    await assert.rejects(models.fetch('missing'), { code: 'INFERD_ERR_MODEL_NOT_FOUND' });
    // `mlp/model` is a prefix of nothing, though `mlp/model.onnx` exists.
    await assert.rejects(models.fetch('mlp/model'), { code: 'INFERD_ERR_MODEL_NOT_FOUND' });
    await assert.rejects(models.fetch('notes.txt'), { code: 'INFERD_ERR_MODEL_SOURCE_INVALID', message: /neither/ });
    await assert.rejects(models.fetch('links.tgz'), { code: 'INFERD_ERR_MODEL_SOURCE_INVALID', message: /hard link/ });
    await assert.rejects(models.fetch('../repo/mlp'), { code: 'INFERD_ERR_MODEL_SOURCE_INVALID' });
    assert.deepEqual(await readdir(cacheDir), []);
  });

  it('refuses a prefix holding more than maxModelBytes before downloading it', async () => {
    const { models, cacheDir } = await repository(onnx.length);
    await assert.rejects(models.fetch('mlp'), { code: 'INFERD_ERR_MODEL_SOURCE_INVALID', message: /bound/ });
    assert.deepEqual(await readdir(cacheDir), []);
  });

  it('reports STORAGE_UNAVAILABLE while S3 is down', async () => {
    const { models } = await repository();
    await server.stop();
    try {
      await assert.rejects(models.fetch('churn.tar.gz'), { code: 'INFERD_ERR_STORAGE_UNAVAILABLE' });
      await assert.rejects(models.fetch('mlp'), { code: 'INFERD_ERR_STORAGE_UNAVAILABLE' });
    } finally {
      await server.restart();
    }
    assert.equal((await models.fetch('churn.tar.gz')).fetched, true);
  });
});
