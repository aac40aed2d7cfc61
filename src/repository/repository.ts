/**
 * The model repository (`INFERD_MODEL_REPOSITORY`), as in SageMaker multi-model endpoints: a
 * local directory or an `s3://bucket/prefix` holding models, which clients name by `TargetModel`
 * (a path relative to it). `fetch` turns a target into a local directory the runtime can load:
 * a local model directory as it is, anything else (an archive, an S3 prefix) through a disk
 * cache, so a model is downloaded and unpacked once, not once per load.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InferdError } from '../errors.js';
import { fileVersion, syncDirectory } from '../storage/file-store.js';
import { StorageError, type ObjectStore } from '../storage/object-store.js';
import { joinUri, parseUri, type ObjectLocation } from '../storage/uri.js';
import { checkModelEntries } from './model-source.js';
import { unpackTarGz, type UnpackLimits } from './tar.js';
import { relativeSegments, sourceInvalid, targetModelPath } from './target-model.js';

export interface RepositorySettings {
  /** Local absolute directory, or s3://bucket/prefix. */
  readonly root: string;
  /** Where archives are unpacked and S3 models downloaded; one subdirectory per model. */
  readonly cacheDir: string;
  /** Bound on one model's unpacked or downloaded bytes. */
  readonly maxModelBytes: number;
}

export interface FetchedModel {
  /** The local directory to load. */
  readonly dir: string;
  /** Where it came from: the repository URI of the target (file path or s3://...). */
  readonly url: string;
  /**
   * True when this call had to download or unpack (a disk-cache miss): the data plane logs
   * downloads with it, which tell a slow first load from a slow model.
   */
  readonly fetched: boolean;
}

/** A model is a handful of files; tens of thousands is an archive built to exhaust inodes. */
const MAX_MODEL_ENTRIES = 10_000;
const ARCHIVE_SUFFIXES = ['.tar.gz', '.tgz'];
const FILE_MODE = 0o644;
const DIRECTORY_MODE = 0o755;
/** What rename says when another process put the same model into the cache first. */
const ALREADY_CACHED_CODES = new Set(['EEXIST', 'ENOTEMPTY']);
/** What realpath says when nothing is at a path. */
const MISSING_CODES = new Set(['ENOENT', 'ENOTDIR']);
const PARTIAL_SUFFIX = '.partial';
/**
 * Names this process's partial directories: its pid, to tell a live sibling (a cluster worker on
 * the same cache) from a process that died mid-download, and a token of its own, because a
 * restarted container often runs the server under the same pid as the one before.
 */
const PROCESS_TOKEN = randomUUID().slice(0, 8);

/** One object of a model stored as an S3 prefix, and where it goes in the model directory. */
interface ModelObject {
  readonly uri: string;
  readonly segments: readonly string[];
  readonly sizeBytes: number;
  readonly version: string | undefined;
}

export class ModelRepository {
  readonly #settings: RepositorySettings;
  readonly #openStore: (uri: string) => ObjectStore;
  readonly #root: ObjectLocation;
  /** Fetches under way, by normalised target: concurrent callers share one download. */
  readonly #inFlight = new Map<string, Promise<FetchedModel>>();
  /** The removal of partial directories that dead processes left, started by the first fetch. */
  #sweep: Promise<void> | undefined;

  constructor(settings: RepositorySettings, openStore: (uri: string) => ObjectStore) {
    this.#settings = settings;
    this.#openStore = openStore;
    try {
      this.#root = parseUri(settings.root);
    } catch (error) {
      throw new InferdError('INFERD_ERR_CONFIG_INVALID', `model repository ${settings.root}: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * The local directory of the model `target` names. Rejects with INFERD_ERR_MODEL_NOT_FOUND,
   * INFERD_ERR_MODEL_SOURCE_INVALID (a refused target or archive) or
   * INFERD_ERR_STORAGE_UNAVAILABLE (S3 could not be reached; worth retrying).
   */
  async fetch(target: string): Promise<FetchedModel> {
    const path = targetModelPath(target);
    const shared = this.#inFlight.get(path);
    // Only the call that started the download reports the cache miss; the others waited for it.
    if (shared !== undefined) return { ...(await shared), fetched: false };
    const fetching = this.#fetchPath(path).finally(() => this.#inFlight.delete(path));
    this.#inFlight.set(path, fetching);
    return fetching;
  }

  async #fetchPath(path: string): Promise<FetchedModel> {
    // Once, on the first fetch rather than in the constructor, which must not wait on the disk;
    // the fetches that follow find it settled.
    this.#sweep ??= removeAbandonedPartials(this.#settings.cacheDir);
    await this.#sweep;
    try {
      return this.#root.scheme === 's3' ? await this.#fetchFromS3(path) : await this.#fetchLocal(this.#root.path, path);
    } catch (error) {
      throw asInferdError(error);
    }
  }

  async #fetchLocal(rootDir: string, path: string): Promise<FetchedModel> {
    const url = joinUri(this.#settings.root, path);
    const source = await realPathInside(rootDir, join(rootDir, path), url);
    const stats = await stat(source);
    if (stats.isDirectory()) {
      // Used in place, so its own links are checked: the directory's real path is not enough.
      await checkModelEntries(source, url);
      return { dir: source, url, fetched: false };
    }
    if (!stats.isFile() || !isArchiveName(path)) {
      throw sourceInvalid(`${url} is neither a model directory nor a .tar.gz or .tgz archive`);
    }
    // The modification time too: an archive replaced in place often keeps its size.
    return this.#cached(path, url, ['archive', fileVersion(stats)], async (dir) => {
      const body = createReadStream(source);
      try {
        await unpackTarGz(body, dir, this.#limits());
      } finally {
        body.destroy();
      }
    });
  }

  async #fetchFromS3(path: string): Promise<FetchedModel> {
    const url = joinUri(this.#settings.root, path);
    const store = this.#openStore(this.#settings.root);
    if (isArchiveName(path)) {
      const archive = await store.stat(url).catch(ifNotFound(undefined));
      if (archive !== undefined) {
        // The ETag too: a retrained model uploaded under the same key often keeps its size.
        return this.#cached(path, url, ['archive', archive.sizeBytes, archive.version], (dir) => this.#unpackObject(store, url, dir));
      }
    }
    const objects = await this.#listModelObjects(store, url);
    if (objects.length === 0) {
      if (await store.exists(url)) throw sourceInvalid(`${url} is neither a .tar.gz or .tgz archive nor a prefix holding a model`);
      throw new InferdError('INFERD_ERR_MODEL_NOT_FOUND', `no archive at ${url} and no objects under ${url}/`);
    }
    // The listing is the fingerprint: a file added, removed, resized or rewritten is a new model.
    const listing = objects.map(({ segments, sizeBytes, version }) => [segments.join('/'), sizeBytes, version]);
    return this.#cached(path, url, ['prefix', listing], (dir) => this.#downloadObjects(store, objects, dir));
  }

  async #unpackObject(store: ObjectStore, url: string, dir: string): Promise<void> {
    await download(store, url, (body) => unpackTarGz(body, dir, this.#limits()));
  }

  /** The objects under `url/`, checked and bounded before anything is downloaded. */
  async #listModelObjects(store: ObjectStore, url: string): Promise<ModelObject[]> {
    const prefixKey = objectKey(`${url}/`);
    const objects: ModelObject[] = [];
    let totalBytes = 0;
    for await (const info of store.list(`${url}/`)) {
      const key = objectKey(info.uri).slice(prefixKey.length);
      // Consoles create empty `folder/` objects to show folders; they hold nothing.
      if (key === '' || key.endsWith('/')) continue;
      const segments = relativeSegments(key, `object key under ${url}/`);
      totalBytes += info.sizeBytes;
      if (totalBytes > this.#settings.maxModelBytes) {
        throw sourceInvalid(`the objects under ${url}/ hold more than the bound of ${this.#settings.maxModelBytes} bytes`);
      }
      objects.push({ uri: info.uri, segments, sizeBytes: info.sizeBytes, version: info.version });
      if (objects.length > MAX_MODEL_ENTRIES) throw sourceInvalid(`more than ${MAX_MODEL_ENTRIES} objects under ${url}/`);
    }
    return objects;
  }

  async #downloadObjects(store: ObjectStore, objects: readonly ModelObject[], dir: string): Promise<void> {
    // Counted again while downloading: an object may have grown since it was listed.
    const bound = byteBound(this.#settings.maxModelBytes, 'the model objects');
    for (const object of objects) {
      const destination = join(dir, ...object.segments);
      await mkdir(dirname(destination), { recursive: true, mode: DIRECTORY_MODE });
      // `flush`: the model is renamed into the cache once downloaded; its files must be on disk by then.
      await download(store, object.uri, (body) =>
        pipeline(body, bound, createWriteStream(destination, { flags: 'wx', mode: FILE_MODE, flush: true })),
      );
    }
  }

  #limits(): UnpackLimits {
    return { maxBytes: this.#settings.maxModelBytes, maxEntries: MAX_MODEL_ENTRIES };
  }

  /**
   * The cached copy of the target at `path`, made by `fill` on a miss. The cache entry is named
   * `<target>-<fingerprint>`, hashes of the repository and path, and of `fingerprint`, which
   * changes when the source does. `fill` writes into a temporary sibling that is renamed into
   * place only once complete, so a crash never leaves a partial model under a name that looks
   * whole. The target's entries of other fingerprints are then stale, and removed.
   */
  async #cached(path: string, url: string, fingerprint: readonly unknown[], fill: (dir: string) => Promise<void>): Promise<FetchedModel> {
    const { cacheDir } = this.#settings;
    const target = shortHash([this.#settings.root, path]);
    const name = `${target}-${shortHash(fingerprint)}`;
    const finalDir = join(cacheDir, name);
    if (await isDirectory(finalDir)) {
      // Another process of this cache (a cluster worker) may have fetched it, and left the old one.
      await removeStaleEntries(cacheDir, target, name);
      return { dir: await modelDirIn(finalDir), url, fetched: false };
    }

    await mkdir(cacheDir, { recursive: true });
    const partialDir = join(cacheDir, `.${name}.${process.pid}.${PROCESS_TOKEN}.${randomUUID()}${PARTIAL_SUFFIX}`);
    try {
      await fill(partialDir);
    } catch (error) {
      await rm(partialDir, { recursive: true, force: true });
      throw error;
    }
    try {
      await rename(partialDir, finalDir);
      await syncDirectory(cacheDir);
    } catch (error) {
      await rm(partialDir, { recursive: true, force: true });
      // Another process (a cluster worker) cached the same model first: theirs is as good.
      if (!ALREADY_CACHED_CODES.has((error as NodeJS.ErrnoException).code ?? '')) throw error;
    }
    await removeStaleEntries(cacheDir, target, name);
    return { dir: await modelDirIn(finalDir), url, fetched: true };
  }
}

/** 32 hex digits of the SHA-256 of `value` as JSON. */
function shortHash(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 32);
}

/**
 * Removes the entries of `target` other than `current`: copies of a source that has changed
 * since. A model still loaded from one keeps working: on Linux a deleted file lives on while open,
 * and onnxruntime holds the model in memory once its session is made. Best effort: a stale copy
 * left behind costs disk, never a wrong answer, since its name is never asked for again.
 */
async function removeStaleEntries(cacheDir: string, target: string, current: string): Promise<void> {
  const names = await readdir(cacheDir).catch(() => [] as string[]);
  const stale = names.filter((name) => name.startsWith(`${target}-`) && name !== current);
  await Promise.all(stale.map((name) => rm(join(cacheDir, name), { recursive: true, force: true }).catch(() => undefined)));
}

/**
 * Removes the partial directories of processes that died mid-download (a crash, a SIGKILL, a
 * container stopped), which nothing else would ever remove. A partial directory of a live
 * process, a sibling cluster worker on the same cache, is left alone: it is being written. Best
 * effort, as removeStaleEntries.
 */
async function removeAbandonedPartials(cacheDir: string): Promise<void> {
  const names = await readdir(cacheDir).catch(() => [] as string[]);
  const abandoned = names.filter((name) => name.startsWith('.') && name.endsWith(PARTIAL_SUFFIX) && isAbandoned(name));
  await Promise.all(abandoned.map((name) => rm(join(cacheDir, name), { recursive: true, force: true }).catch(() => undefined)));
}

/** Whether the process named in a partial directory's name (`.<entry>.<pid>.<token>.<uuid>.partial`) is gone. */
function isAbandoned(partialName: string): boolean {
  const [, , pidText, token] = partialName.split('.');
  const pid = Number(pidText);
  // Not named by this code: nothing can be writing it.
  if (!Number.isSafeInteger(pid) || pid <= 0) return true;
  if (pid === process.pid) return token !== PROCESS_TOKEN;
  try {
    // Signal 0 sends nothing: it only asks whether the process exists.
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function isArchiveName(path: string): boolean {
  const lower = path.toLowerCase();
  return ARCHIVE_SUFFIXES.some((suffix) => lower.endsWith(suffix));
}

function objectKey(uri: string): string {
  const location = parseUri(uri);
  return location.scheme === 's3' ? location.key : location.path;
}

/**
 * The real path of `path`, which must exist and stay inside the real repository root: a
 * symbolic link in the repository must not hand out files from elsewhere on the host.
 */
async function realPathInside(rootDir: string, path: string, url: string): Promise<string> {
  const notFound = (message: string) => (error: unknown) => {
    if (MISSING_CODES.has((error as NodeJS.ErrnoException).code ?? '')) throw new InferdError('INFERD_ERR_MODEL_NOT_FOUND', message, { cause: error });
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw sourceInvalid(`${url} is a symbolic link loop`, error);
    throw error;
  };
  const realRoot = await realpath(rootDir).catch(notFound(`the model repository ${rootDir} does not exist`));
  const real = await realpath(path).catch(notFound(`no model at ${url}`));
  const fromRoot = relative(realRoot, real);
  if (fromRoot === '..' || fromRoot.startsWith(`..${sep}`)) throw sourceInvalid(`${url} leads outside the model repository`);
  return real;
}

/**
 * `tar czf model.tar.gz mymodel/` wraps the model in one directory: when the root holds only
 * that directory (and nothing that marks a model), the model is inside it.
 */
async function modelDirIn(dir: string): Promise<string> {
  const entries = await readdir(dir, { withFileTypes: true });
  const marksModel = entries.some((entry) => entry.name === 'inferd.json' || entry.name.endsWith('.onnx'));
  const only = entries.length === 1 ? entries[0] : undefined;
  return !marksModel && only?.isDirectory() === true ? join(dir, only.name) : dir;
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (stats) => stats.isDirectory(),
    () => false,
  );
}


/**
 * Downloads `uri` and hands its body to `consume`. The body failing (a connection reset
 * mid-object) is a storage outage worth retrying, not a bad model: the body `consume` reads
 * fails with INFERD_ERR_STORAGE_UNAVAILABLE then, while its own errors (a full disk, a refused
 * archive) pass unchanged. The body is destroyed at the end, so an early stop leaves no
 * connection hanging.
 */
async function download(store: ObjectStore, uri: string, consume: (body: Readable) => Promise<void>): Promise<void> {
  const body = await store.get(uri);
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of body) yield chunk as Buffer;
    } catch (error) {
      throw new InferdError('INFERD_ERR_STORAGE_UNAVAILABLE', `reading ${uri} failed: ${String(error)}`, { cause: error });
    }
  }
  const failingAsUnavailable = Readable.from(chunks(), { objectMode: false });
  try {
    await consume(failingAsUnavailable);
  } finally {
    failingAsUnavailable.destroy();
    body.destroy();
  }
}

/** A pipeline stage that passes bytes on until `maxBytes` have passed, then fails the pipeline. */
function byteBound(maxBytes: number, what: string): (chunks: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
  let totalBytes = 0;
  return async function* bounded(chunks) {
    for await (const chunk of chunks) {
      totalBytes += chunk.length;
      if (totalBytes > maxBytes) throw sourceInvalid(`${what} hold more than the bound of ${maxBytes} bytes`);
      yield chunk;
    }
  };
}

function ifNotFound<T>(value: T): (error: unknown) => T {
  return (error) => {
    if (error instanceof StorageError && error.code === 'NOT_FOUND') return value;
    throw error;
  };
}

function asInferdError(error: unknown): unknown {
  if (!(error instanceof StorageError)) return error;
  if (error.code === 'UNAVAILABLE') return new InferdError('INFERD_ERR_STORAGE_UNAVAILABLE', error.message, { cause: error });
  if (error.code === 'NOT_FOUND') return new InferdError('INFERD_ERR_MODEL_NOT_FOUND', error.message, { cause: error });
  if (error.code === 'INVALID_URI') return sourceInvalid(error.message, error);
  return error;
}
