import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { FileObjectStore, syncDirectory } from '../../src/storage/file-store.js';
import { collect, objectStoreContract } from './object-store-contract.js';

const store = new FileObjectStore();
let directory = '';

before(async () => {
  directory = await mkdtemp(join(tmpdir(), 'inferd-file-store-'));
});
after(() => rm(directory, { recursive: true, force: true }));

objectStoreContract('file store (file:// URIs)', () => ({ store, root: pathToFileURL(`${directory}/uris/`).href }));
objectStoreContract('file store (plain paths)', () => ({ store, root: `${directory}/paths/` }));

describe('file store', () => {
  it('never shows a partial object under the final name, and leaves nothing behind on failure', async () => {
    const path = join(directory, 'atomic', 'nested', 'object.bin');
    const entries = (): Promise<string[]> => readdir(join(directory, 'atomic', 'nested')).catch(() => []);
    const body = new PassThrough();
    const writing = store.put(path, body);
    body.write(Buffer.alloc(64 * 1024, 1));
    await waitFor(async () => (await entries()).length > 0);
    assert.equal(existsSync(path), false, 'the final name appears only when the object is complete');
    assert.deepEqual(await collect(store.list(path)), [], 'a partial object is not listed');
    body.end(Buffer.alloc(64 * 1024, 2));
    await writing;
    assert.equal((await readFile(path)).length, 128 * 1024);

    const failing = new PassThrough();
    const replacing = store.put(path, failing);
    failing.write(Buffer.alloc(1024, 3));
    await waitFor(async () => (await entries()).length > 1);
    failing.destroy(new Error('source failed'));
    await assert.rejects(replacing, { code: 'FAILED' });
    assert.equal((await readFile(path)).length, 128 * 1024, 'the previous object is intact');
    assert.deepEqual(await entries(), ['object.bin']);
  });

  it('lands every one of many concurrent puts into one directory (they share its syncs)', async () => {
    const keys = Array.from({ length: 40 }, (_, i) => join(directory, 'concurrent', `object-${i}`));
    await Promise.all(keys.map((key, i) => store.put(key, `body ${i}`)));
    assert.deepEqual(await Promise.all(keys.map((key) => readFile(key, 'utf8'))), keys.map((_, i) => `body ${i}`));
  });

  it('fails a directory sync only for the callers of that sync: the next one starts afresh', async () => {
    const later = join(directory, 'appears-later');
    const failed = [syncDirectory(later), syncDirectory(later), syncDirectory(later)];
    for (const sync of failed) await assert.rejects(sync, { code: 'ENOENT' });
    await mkdir(later);
    await Promise.all([syncDirectory(later), syncDirectory(later)]);
  });

  it('treats a directory as no object', async () => {
    await assert.rejects(store.get(directory), { code: 'NOT_FOUND' });
    await assert.rejects(store.getBuffer(directory), { code: 'NOT_FOUND' });
    assert.equal(await store.exists(directory), false);
    await assert.rejects(store.get(`${directory}/`), { code: 'INVALID_URI' });
  });

  it('refuses S3 URIs', async () => {
    await assert.rejects(store.put('s3://bucket/key', 'x'), { code: 'INVALID_URI' });
    await assert.rejects(collect(store.list('s3://bucket/')), { code: 'INVALID_URI' });
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
