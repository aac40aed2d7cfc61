import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, realpath, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ModelRepository, type RepositorySettings } from '../../src/repository/repository.js';
import { openObjectStore } from '../../src/storage/open-store.js';
import { MLP_MODEL, systemTar, tarGz } from './tar-writer.js';

const MiB = 1024 * 1024;
let work = '';
let repo = '';
let outside = '';
let onnx: Buffer;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'inferd-repository-'));
  repo = join(work, 'repo');
  outside = join(work, 'outside');
  onnx = await readFile(MLP_MODEL);
  const staging = join(work, 'staging');
  await mkdir(join(staging, 'mymodel'), { recursive: true });
  await copyFile(MLP_MODEL, join(staging, 'mymodel', 'model.onnx'));

  await mkdir(join(repo, 'mlp'), { recursive: true });
  await copyFile(MLP_MODEL, join(repo, 'mlp', 'model.onnx'));
  await mkdir(join(repo, 'customers', '42'), { recursive: true });
  // `tar czf x mymodel/` wraps the model in a directory; `-C mymodel .` does not.
  systemTar(['czf', join(repo, 'churn.tar.gz'), '-C', staging, 'mymodel']);
  systemTar(['czf', join(repo, 'customers', '42', 'model.tgz'), '-C', join(staging, 'mymodel'), '.']);
  await writeFile(join(repo, 'notes.txt'), 'not a model\n');
  await writeFile(join(repo, 'links.tar.gz'), tarGz([{ name: 'model.onnx', content: 'x' }, { name: 'evil', type: '2', linkName: '/etc/passwd' }]));

  await mkdir(outside, { recursive: true });
  await copyFile(MLP_MODEL, join(outside, 'model.onnx'));
  systemTar(['czf', join(outside, 'stolen.tar.gz'), '-C', staging, 'mymodel']);
  await symlink(outside, join(repo, 'escape'));
  await symlink(join(outside, 'stolen.tar.gz'), join(repo, 'escape.tar.gz'));
  await symlink(join(repo, 'mlp'), join(repo, 'alias'));

  // Model directories whose entries lead elsewhere, and one whose link stays inside it.
  await mkdir(join(repo, 'linked'));
  await symlink(join(outside, 'model.onnx'), join(repo, 'linked', 'model.onnx'));
  await mkdir(join(repo, 'to-mlp'));
  await symlink('../mlp/model.onnx', join(repo, 'to-mlp', 'model.onnx'));
  await mkdir(join(repo, 'zeros'));
  await symlink('/dev/zero', join(repo, 'zeros', 'model.onnx'));
  await mkdir(join(repo, 'dangling'));
  await symlink(join(work, 'nothing-here.onnx'), join(repo, 'dangling', 'model.onnx'));
  await mkdir(join(repo, 'fifo'));
  await copyFile(MLP_MODEL, join(repo, 'fifo', 'model.onnx'));
  execFileSync('mkfifo', [join(repo, 'fifo', 'inferd.json')]);
  await mkdir(join(repo, 'inside', 'weights'), { recursive: true });
  await copyFile(MLP_MODEL, join(repo, 'inside', 'weights', 'mlp.bin'));
  await symlink('weights/mlp.bin', join(repo, 'inside', 'model.onnx'));
});
after(() => rm(work, { recursive: true, force: true }));

async function repository(overrides: Partial<RepositorySettings> = {}): Promise<{ models: ModelRepository; cacheDir: string }> {
  const cacheDir = await mkdtemp(join(work, 'cache-'));
  const settings = { root: repo, cacheDir, maxModelBytes: 64 * MiB, ...overrides };
  return { models: new ModelRepository(settings, (uri) => openObjectStore(uri, {})), cacheDir };
}

describe('model repository on a local directory', () => {
  it('returns a model directory as it is, without copying it', async () => {
    const { models, cacheDir } = await repository();
    assert.deepEqual(await models.fetch('mlp'), { dir: await realpath(join(repo, 'mlp')), url: join(repo, 'mlp'), fetched: false });
    assert.deepEqual(await models.fetch('./alias'), { dir: await realpath(join(repo, 'mlp')), url: join(repo, 'alias'), fetched: false });
    // A link among its entries is fine while it stays inside the model directory.
    assert.deepEqual(await models.fetch('inside'), { dir: await realpath(join(repo, 'inside')), url: join(repo, 'inside'), fetched: false });
    assert.deepEqual(await readdir(cacheDir), []);
  });

  it('unpacks an archive into the cache once, and looks inside its one top directory', async () => {
    const { models, cacheDir } = await repository();
    const first = await models.fetch('churn.tar.gz');
    assert.equal(first.fetched, true);
    assert.equal(first.url, join(repo, 'churn.tar.gz'));
    assert.ok(first.dir.startsWith(`${cacheDir}/`) && first.dir.endsWith('/mymodel'), first.dir);
    assert.deepEqual(await readFile(join(first.dir, 'model.onnx')), onnx);
    assert.deepEqual(await models.fetch('churn.tar.gz'), { ...first, fetched: false });
    // Another repository object on the same cache (a restart) finds it on disk.
    const restarted = new ModelRepository({ root: repo, cacheDir, maxModelBytes: 64 * MiB }, (uri) => openObjectStore(uri, {}));
    assert.deepEqual(await restarted.fetch('./churn.tar.gz'), { ...first, fetched: false });
  });

  it('unpacks a nested .tgz made without a top directory', async () => {
    const { models } = await repository();
    const fetched = await models.fetch('customers/42/model.tgz');
    assert.equal(fetched.fetched, true);
    assert.deepEqual(await readdir(fetched.dir), ['model.onnx']);
  });

  it('unpacks again when the archive is replaced', async () => {
    const { models, cacheDir } = await repository();
    const archive = join(repo, 'replaced.tar.gz');
    await writeFile(archive, tarGz([{ name: 'model.onnx', content: 'first' }]));
    const first = await models.fetch('replaced.tar.gz');
    // Same size, new modification time: only the time tells them apart.
    await writeFile(archive, tarGz([{ name: 'model.onnx', content: 'other' }]));
    await utimes(archive, new Date(), new Date(Date.now() + 60_000));
    const second = await models.fetch('replaced.tar.gz');
    assert.equal(second.fetched, true);
    assert.notEqual(second.dir, first.dir);
    assert.equal(await readFile(join(second.dir, 'model.onnx'), 'utf8'), 'other');
    // The copy of the old archive is removed; the copies of other targets are not.
    assert.equal(existsSync(first.dir), false);
    await models.fetch('churn.tar.gz');
    assert.equal((await readdir(cacheDir)).length, 2);
    assert.equal(existsSync(second.dir), true);
  });

  it('shares one unpacking among concurrent fetches of one archive', async () => {
    const { models, cacheDir } = await repository();
    const results = await Promise.all(Array.from({ length: 20 }, (_, index) => models.fetch(index % 2 === 0 ? 'churn.tar.gz' : './churn.tar.gz')));
    assert.equal(results.filter((result) => result.fetched).length, 1);
    assert.equal(new Set(results.map((result) => result.dir)).size, 1);
    assert.equal((await readdir(cacheDir)).length, 1, 'one cache entry and no partial directory');
  });

  it('refuses what is not there or not allowed', async () => {
    const { models, cacheDir } = await repository();
    const refusals: [string, string, RegExp][] = [
      ['missing.tar.gz', 'INFERD_ERR_MODEL_NOT_FOUND', /no model at/],
      ['missing/model', 'INFERD_ERR_MODEL_NOT_FOUND', /no model at/],
      ['notes.txt/model', 'INFERD_ERR_MODEL_NOT_FOUND', /no model at/],
      ['notes.txt', 'INFERD_ERR_MODEL_SOURCE_INVALID', /neither a model directory nor/],
      ['escape', 'INFERD_ERR_MODEL_SOURCE_INVALID', /outside the model repository/],
      ['escape/model.onnx', 'INFERD_ERR_MODEL_SOURCE_INVALID', /outside the model repository/],
      ['escape.tar.gz', 'INFERD_ERR_MODEL_SOURCE_INVALID', /outside the model repository/],
      ['linked', 'INFERD_ERR_MODEL_SOURCE_INVALID', /"model\.onnx", a symbolic link that leads outside the model directory/],
      ['to-mlp', 'INFERD_ERR_MODEL_SOURCE_INVALID', /"model\.onnx", a symbolic link that leads outside the model directory/],
      ['zeros', 'INFERD_ERR_MODEL_SOURCE_INVALID', /"model\.onnx", a symbolic link that leads outside the model directory/],
      ['dangling', 'INFERD_ERR_MODEL_SOURCE_INVALID', /"model\.onnx", a symbolic link that leads nowhere/],
      ['fifo', 'INFERD_ERR_MODEL_SOURCE_INVALID', /"inferd\.json", which is neither a file nor a directory/],
      ['links.tar.gz', 'INFERD_ERR_MODEL_SOURCE_INVALID', /symbolic link/],
      ['../outside', 'INFERD_ERR_MODEL_SOURCE_INVALID', /"\.\."/],
      ['/etc', 'INFERD_ERR_MODEL_SOURCE_INVALID', /absolute/],
    ];
    for (const [target, code, message] of refusals) {
      await assert.rejects(models.fetch(target), { name: 'InferdError', code, message }, target);
    }
    assert.deepEqual(await readdir(cacheDir), [], 'a refused archive leaves nothing in the cache');
  });

  it('refuses an archive that unpacks past maxModelBytes', async () => {
    const { models, cacheDir } = await repository({ maxModelBytes: onnx.length });
    await assert.rejects(models.fetch('churn.tar.gz'), { code: 'INFERD_ERR_MODEL_SOURCE_INVALID', message: /bound/ });
    assert.deepEqual(await readdir(cacheDir), []);
  });

  it('removes, on its first fetch, the partial directories of processes that died mid-download, and only those', async () => {
    const cacheDir = await mkdtemp(join(work, 'cache-'));
    const entry = `${'a'.repeat(32)}-${'b'.repeat(32)}`;
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid;
    const partials = {
      // A restarted container runs the server under the pid of the one before.
      restarted: `.${entry}.${process.pid}.0badf00d.${randomUUID()}.partial`,
      dead: `.${entry}.${deadPid}.0badf00d.${randomUUID()}.partial`,
      unnamed: `.${entry}.${randomUUID()}.partial`,
      // A live process (a cluster worker beside this one) is still writing its own.
      live: `.${entry}.${process.ppid}.0badf00d.${randomUUID()}.partial`,
    };
    for (const name of Object.values(partials)) {
      await mkdir(join(cacheDir, name));
      await writeFile(join(cacheDir, name, 'model.onnx'), 'half');
    }
    await mkdir(join(cacheDir, entry));
    const models = new ModelRepository({ root: repo, cacheDir, maxModelBytes: 64 * MiB }, (uri) => openObjectStore(uri, {}));
    assert.equal((await readdir(cacheDir)).length, 5, 'making the repository touches nothing');
    await models.fetch('mlp');
    assert.deepEqual((await readdir(cacheDir)).sort(), [partials.live, entry].sort());
  });

  it('says MODEL_NOT_FOUND when the repository itself is missing', async () => {
    const { models } = await repository({ root: join(work, 'no-such-repo') });
    await assert.rejects(models.fetch('mlp'), { code: 'INFERD_ERR_MODEL_NOT_FOUND', message: /repository/ });
  });
});
