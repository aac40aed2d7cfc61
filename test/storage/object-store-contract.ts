/** The behaviour every ObjectStore must have, run against each implementation. */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import type { ObjectInfo, ObjectStore } from '../../src/storage/object-store.js';
import { formatUri, joinUri, parseUri } from '../../src/storage/uri.js';

export interface ContractTarget {
  readonly store: ObjectStore;
  /** A URI prefix under which the suite may write; each test uses a fresh prefix below it. */
  readonly root: string;
}

const MiB = 1024 * 1024;

/** `target` is called inside each test, so it may come from a `before` hook. */
export function objectStoreContract(name: string, target: () => ContractTarget): void {
  describe(`${name}: ObjectStore contract`, () => {
    const fresh = (): { store: ObjectStore; at: (...parts: string[]) => string } => {
      const { store, root } = target();
      const base = joinUri(root, randomUUID());
      // Listings name objects by URI (`file:///…` even when the root is a plain path).
      return { store, at: (...parts) => formatUri(parseUri(joinUri(base, ...parts))) };
    };

    it('round-trips a Buffer, a string and a stream, and overwrites', async () => {
      const { store, at } = fresh();
      const bytes = Buffer.from([0, 1, 2, 254, 255]);
      await store.put(at('buffer.bin'), bytes, { contentType: 'application/octet-stream' });
      await store.put(at('text.txt'), 'héllo\n', { contentType: 'text/plain' });
      await store.put(at('stream.jsonl'), Readable.from(['{"a":1}\n', '{"a":2}\n']));

      assert.deepEqual(await store.getBuffer(at('buffer.bin')), bytes);
      assert.equal((await store.getBuffer(at('text.txt'))).toString(), 'héllo\n');
      assert.equal(Buffer.concat(await (await store.get(at('stream.jsonl'))).toArray()).toString(), '{"a":1}\n{"a":2}\n');

      await store.put(at('text.txt'), 'replaced');
      assert.equal((await store.getBuffer(at('text.txt'))).toString(), 'replaced');
    });

    it('streams a 12 MiB object through in parts, generated and checked lazily', async () => {
      const { store, at } = fresh();
      const size = 12 * MiB + 12_345;
      await store.put(at('large.bin'), Readable.from(patternChunks(size)));

      const received = createHash('sha256');
      let receivedBytes = 0;
      for await (const chunk of await store.get(at('large.bin'))) {
        received.update(chunk as Buffer);
        receivedBytes += (chunk as Buffer).length;
      }
      const expected = createHash('sha256');
      for (const chunk of patternChunks(size)) expected.update(chunk);
      assert.equal(receivedBytes, size);
      assert.equal(received.digest('hex'), expected.digest('hex'));
      const { version } = await store.stat(at('large.bin'));
      assert.deepEqual(await collect(store.list(at('large.bin'))), [{ uri: at('large.bin'), sizeBytes: size, version }]);
    });

    it('tells whether an object exists, and deletes it (idempotently)', async () => {
      const { store, at } = fresh();
      assert.equal(await store.exists(at('x')), false);
      await store.put(at('x'), 'x');
      assert.equal(await store.exists(at('x')), true);
      await store.delete(at('x'));
      assert.equal(await store.exists(at('x')), false);
      await store.delete(at('x'));
      await assert.rejects(store.getBuffer(at('x')), { code: 'NOT_FOUND' });
    });

    it('lists in key order, filtered by a string prefix', async () => {
      const { store, at } = fresh();
      // `-` and `.` sort before `/`, so `a/x` comes after `a-b` and `a.txt` but before `a0`.
      for (const key of ['b/2', 'a0', 'b/1', 'a-b', 'a/x', 'c', 'a.txt', 'b0']) await store.put(at(key), key);

      const all = await collect(store.list(at('/')));
      const inOrder = ['a-b', 'a.txt', 'a/x', 'a0', 'b/1', 'b/2', 'b0', 'c'];
      assert.deepEqual(
        all.map(({ uri, sizeBytes }) => ({ uri, sizeBytes })),
        inOrder.map((key) => ({ uri: at(key), sizeBytes: key.length })),
      );
      assert.deepEqual(uris(await collect(store.list(at('a')))), ['a-b', 'a.txt', 'a/x', 'a0'].map((key) => at(key)));
      assert.deepEqual(uris(await collect(store.list(at('b/')))), [at('b/1'), at('b/2')]);
      assert.deepEqual(uris(await collect(store.list(at('b')))), [at('b/1'), at('b/2'), at('b0')]);
      assert.deepEqual(await collect(store.list(at('nothing-here/'))), []);
    });

    it('rejects reads of a missing object with NOT_FOUND', async () => {
      const { store, at } = fresh();
      await assert.rejects(store.get(at('missing')), { name: 'StorageError', code: 'NOT_FOUND' });
      await assert.rejects(store.getBuffer(at('missing')), { name: 'StorageError', code: 'NOT_FOUND' });
      await assert.rejects(store.stat(at('missing')), { name: 'StorageError', code: 'NOT_FOUND' });
    });

    it('tells an object\'s size', async () => {
      const { store, at } = fresh();
      await store.put(at('sized'), Buffer.alloc(1234, 7));
      assert.equal((await store.stat(at('sized'))).sizeBytes, 1234);
      await store.put(at('empty'), '');
      assert.equal((await store.stat(at('empty'))).sizeBytes, 0);
    });

    it('changes an object\'s version when it is overwritten, even with the same size, and lists the version stat tells', async () => {
      const { store, at } = fresh();
      await store.put(at('model.tar.gz'), 'first retraining');
      const first = await store.stat(at('model.tar.gz'));
      await store.put(at('model.tar.gz'), 'other retraining');
      const second = await store.stat(at('model.tar.gz'));
      assert.equal(second.sizeBytes, first.sizeBytes);
      assert.equal(typeof first.version, 'string');
      assert.notEqual(first.version, '');
      assert.notEqual(second.version, first.version);
      assert.deepEqual(await collect(store.list(at('model.tar.gz'))), [second]);
      assert.equal((await store.stat(at('model.tar.gz'))).version, second.version, 'unchanged while the object is');
    });
  });
}

/** `size` bytes in 64 KiB chunks, each derived from its index, so misordered parts show. */
export function* patternChunks(size: number): Generator<Buffer> {
  const chunkSize = 64 * 1024;
  for (let index = 0, offset = 0; offset < size; index += 1, offset += chunkSize) {
    const seed = createHash('sha256').update(String(index)).digest();
    const chunk = Buffer.alloc(Math.min(chunkSize, size - offset));
    for (let i = 0; i < chunk.length; i += seed.length) seed.copy(chunk, i);
    yield chunk;
  }
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

function uris(infos: readonly ObjectInfo[]): string[] {
  return infos.map((info) => info.uri);
}
