/**
 * Which objects a transform job reads and where each one's answer goes: SageMaker's `S3Prefix`
 * and `ManifestFile` data types, its output naming, and a shard's share of the inputs.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { ObjectStore } from '../../storage/object-store.js';
import { joinUri, parseUri } from '../../storage/uri.js';

export interface InputObject {
  readonly uri: string;
  /** Path relative to the input prefix's folder: `sub/data.csv`. Names the output. */
  readonly relativePath: string;
  readonly sizeBytes: number;
}

export class InputError extends Error {}

/**
 * A directory named without its trailing slash is still a directory; S3 prefixes are string
 * prefixes, as in SageMaker (`s3://b/in/data` also takes `s3://b/in/data-2.csv`).
 */
async function listPrefix(uri: string): Promise<string> {
  const location = parseUri(uri);
  if (location.scheme !== 'file' || location.path.endsWith('/')) return uri;
  const isDirectory = await stat(location.path).then((stats) => stats.isDirectory(), () => false);
  return isDirectory ? `${uri}/` : uri;
}

function keyOf(uri: string): string {
  const location = parseUri(uri);
  return location.scheme === 's3' ? location.key : location.path;
}

/**
 * Answers keep the sub-folders below the input prefix: below the prefix itself when it names a
 * folder (`in` for `in/a.csv`), else below its last `/` (`in/data` for `in/data-2.csv`).
 */
function relativePath(prefixKey: string, objectKey: string): string {
  const folder = objectKey.startsWith(`${prefixKey}/`) ? `${prefixKey}/` : prefixKey.slice(0, prefixKey.lastIndexOf('/') + 1);
  return objectKey.slice(folder.length);
}

export async function listInputs(store: ObjectStore, prefixUri: string): Promise<InputObject[]> {
  const prefix = await listPrefix(prefixUri);
  const prefixKey = keyOf(prefix);
  const inputs: InputObject[] = [];
  for await (const object of store.list(prefix)) {
    // S3 consoles create zero-byte "folder" objects ending in "/": not inputs.
    if (object.uri.endsWith('/')) continue;
    inputs.push({ uri: object.uri, relativePath: relativePath(prefixKey, keyOf(object.uri)), sizeBytes: object.sizeBytes });
  }
  return inputs;
}

/** A SageMaker manifest: `[{"prefix": "s3://bucket/prefix/"}, "relative/key", ...]`. */
export async function readManifest(manifestStore: ObjectStore, manifestUri: string, openStore: (uri: string) => ObjectStore): Promise<InputObject[]> {
  let manifest: unknown;
  try {
    manifest = JSON.parse((await manifestStore.getBuffer(manifestUri)).toString('utf8'));
  } catch (error) {
    throw new InputError(`manifest ${manifestUri}: ${(error as Error).message}`);
  }
  const [head, ...keys] = Array.isArray(manifest) ? manifest : [];
  const prefix = (head as { prefix?: unknown } | undefined)?.prefix;
  if (typeof prefix !== 'string' || keys.length === 0 || !keys.every((key) => typeof key === 'string' && key !== '')) {
    throw new InputError(`manifest ${manifestUri}: expected [{"prefix": "s3://bucket/prefix/"}, "key", ...]`);
  }
  const store = openStore(prefix);
  return Promise.all(
    (keys as string[]).map(async (key) => {
      const uri = joinUri(prefix, key);
      const exists = await store.exists(uri);
      if (!exists) throw new InputError(`manifest ${manifestUri}: ${uri} does not exist`);
      return { uri, relativePath: key.replace(/^\/+/, ''), sizeBytes: 0 };
    }),
  );
}

/** `<output>/<relative path>.out`, as SageMaker names answers. */
export function outputUriFor(outputPrefix: string, input: InputObject): string {
  return joinUri(outputPrefix, `${input.relativePath}.out`);
}

/**
 * Shard i of n takes the inputs whose relative path hashes to i: every input lands in exactly
 * one shard, and in the same one whichever machine lists the prefix, in whatever order, even if
 * objects are added to the prefix between two shards' listings.
 */
export function inShard(input: InputObject, shardIndex: number, shardCount: number): boolean {
  if (shardCount === 1) return true;
  const digest = createHash('sha256').update(input.relativePath).digest();
  return digest.readUInt32BE(0) % shardCount === shardIndex;
}
