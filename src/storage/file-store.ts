/** ObjectStore on local disk: an object is a regular file, its key the absolute path. */
import { randomUUID } from 'node:crypto';
import { createWriteStream, type Dirent, type Stats } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StorageError, type ObjectInfo, type ObjectStore } from './object-store.js';
import { SharedSync } from './shared-sync.js';
import { formatUri, parseUri } from './uri.js';

/** Names of objects still being written; `list` passes over them. */
const PARTIAL_SUFFIX = '.inferd-partial';

/** What the file system says when there is no regular file at a path. */
const NO_OBJECT_CODES = new Set(['ENOENT', 'ENOTDIR', 'EISDIR']);

export class FileObjectStore implements ObjectStore {
  /** Writes a temporary file beside the target and renames it, so no reader sees a partial object. */
  async put(uri: string, body: Buffer | string | Readable): Promise<void> {
    const path = objectPath(uri);
    const partial = join(dirname(path), `.${randomUUID()}${PARTIAL_SUFFIX}`);
    // The writer may destroy the body before the pipeline below listens (while mkdir runs); an
    // 'error' with no listener would take the whole process down. The pipeline still sees it.
    if (body instanceof Readable) body.on('error', () => {});
    try {
      if (body instanceof Readable) {
        await mkdir(dirname(path), { recursive: true });
        await pipeline(body, createWriteStream(partial, { flags: 'wx', flush: true }));
      } else {
        // The directory usually exists (answers go to one): try first, make it when missing.
        // Each file-system call is a round trip through libuv's thread pool.
        await writeFile(partial, body, { flag: 'wx', flush: true }).catch(async (error: unknown) => {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
          await mkdir(dirname(path), { recursive: true });
          await writeFile(partial, body, { flag: 'wx', flush: true });
        });
      }
      await rename(partial, path);
      // The rename is only durable once the directory entry is: callers acknowledge after put.
      await syncDirectory(dirname(path));
    } catch (error) {
      // Best effort: the error that stopped the write is the one worth reporting.
      await rm(partial, { force: true }).catch(() => undefined);
      throw new StorageError('FAILED', `cannot write ${uri}: ${String(error)}`, { cause: error });
    }
  }

  async get(uri: string): Promise<Readable> {
    const path = objectPath(uri);
    return withStorageErrors(uri, async () => {
      const handle = await open(path);
      // A directory opens without error and only fails on the first read.
      if (!(await handle.stat()).isFile()) {
        await handle.close();
        throw new StorageError('NOT_FOUND', `${uri} is a directory, not an object`);
      }
      return handle.createReadStream();
    });
  }

  async getBuffer(uri: string): Promise<Buffer> {
    const path = objectPath(uri);
    return withStorageErrors(uri, () => readFile(path));
  }

  async exists(uri: string): Promise<boolean> {
    const path = objectPath(uri);
    return withStorageErrors(uri, () => stat(path).then((stats) => stats.isFile(), ifNoObject(false)));
  }

  async stat(uri: string): Promise<ObjectInfo> {
    const path = objectPath(uri);
    return withStorageErrors(uri, async () => {
      const stats = await stat(path);
      if (!stats.isFile()) throw new StorageError('NOT_FOUND', `${uri} is a directory, not an object`);
      return { uri: formatUri({ scheme: 'file', path }), sizeBytes: stats.size, version: fileVersion(stats) };
    });
  }

  async *list(prefixUri: string): AsyncIterable<ObjectInfo> {
    const location = parseUri(prefixUri);
    if (location.scheme !== 'file') throw notAFileUri(prefixUri);
    const prefix = location.path;
    yield* withinPrefix(prefix.endsWith('/') ? prefix : dirname(prefix), prefix, prefixUri);
  }

  async delete(uri: string): Promise<void> {
    const path = objectPath(uri);
    await withStorageErrors(uri, () => unlink(path).catch(ifNoObject(undefined)));
  }
}

/**
 * The ObjectInfo `version` of a local file. The modification time alone can repeat: the kernel
 * stamps files from a clock that ticks every few milliseconds, so two writes of the same size in
 * one tick look alike. `put` writes a new file and renames it over the old one, and the two
 * exist at once, so the inode tells consecutive puts apart whatever the clock says.
 */
export function fileVersion(stats: Stats): string {
  return `${stats.mtimeMs}-${stats.size}-${stats.ino}`;
}

/** Directories being synced, each with the sync its writers share. */
const directorySyncs = new Map<string, SharedSync>();

/**
 * Makes a rename or a new entry in `directory` durable (fsync of the directory itself). Writers
 * of one directory share syncs, so concurrent puts pay one sync, not one each.
 */
export function syncDirectory(directory: string): Promise<void> {
  let shared = directorySyncs.get(directory);
  if (!shared) {
    // Forgotten once idle, so the map holds only directories being written.
    shared = new SharedSync(
      () => fsyncDirectory(directory),
      () => directorySyncs.delete(directory),
    );
    directorySyncs.set(directory, shared);
  }
  return shared.request();
}

async function fsyncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Walks `directory` depth first, visiting entries in the order of their keys: a directory
 * sorts as its name plus `/`, so `a-b` (file) comes before `a/x`, as `-` sorts before `/`.
 */
async function* withinPrefix(directory: string, prefix: string, prefixUri: string): AsyncGenerator<ObjectInfo> {
  const entries = await withStorageErrors(prefixUri, () =>
    readdir(directory, { withFileTypes: true }).catch(ifNoObject([] as Dirent[])),
  );
  const byKey = entries
    .map((entry) => ({ entry, sortKey: Buffer.from(entry.isDirectory() ? `${entry.name}/` : entry.name) }))
    .sort((a, b) => Buffer.compare(a.sortKey, b.sortKey));
  for (const { entry } of byKey) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) {
      if (`${path}/`.startsWith(prefix) || prefix.startsWith(`${path}/`)) yield* withinPrefix(path, prefix, prefixUri);
    } else if (entry.isFile() && path.startsWith(prefix) && !entry.name.endsWith(PARTIAL_SUFFIX)) {
      // A file removed since readdir is simply not listed.
      const stats = await stat(path).catch(ifNoObject(undefined));
      if (stats !== undefined) yield { uri: formatUri({ scheme: 'file', path }), sizeBytes: stats.size, version: fileVersion(stats) };
    }
  }
}

function objectPath(uri: string): string {
  const location = parseUri(uri);
  if (location.scheme !== 'file') throw notAFileUri(uri);
  if (location.path.endsWith('/')) throw new StorageError('INVALID_URI', `${uri} names a directory, not an object`);
  return location.path;
}

function notAFileUri(uri: string): StorageError {
  return new StorageError('INVALID_URI', `not a file URI or path: ${uri}`);
}

/** A rejection handler that turns "no such object" into `value` and rethrows anything else. */
function ifNoObject<T>(value: T): (error: unknown) => T {
  return (error) => {
    if (NO_OBJECT_CODES.has((error as NodeJS.ErrnoException).code ?? '')) return value;
    throw error;
  };
}

async function withStorageErrors<T>(uri: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof StorageError) throw error;
    const code = NO_OBJECT_CODES.has((error as NodeJS.ErrnoException).code ?? '') ? 'NOT_FOUND' : 'FAILED';
    throw new StorageError(code, `${uri}: ${String(error)}`, { cause: error });
  }
}
