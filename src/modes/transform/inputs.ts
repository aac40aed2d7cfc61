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

/**
 * Refuses an output prefix whose answers the input prefix would list: a rerun would take the
 * first run's answers for inputs. Both are compared as the string prefixes that listing uses.
 */
async function checkOutputOutsideInput(prefix: string, outputUri: string): Promise<void> {
  const input = parseUri(prefix);
  const output = parseUri(outputUri);
  if (input.scheme !== output.scheme || (input.scheme === 's3' && output.scheme === 's3' && input.bucket !== output.bucket)) return;
  const inputKey = keyOf(prefix);
  const outputFolder = `${keyOf(outputUri).replace(/\/$/, '')}/`;
  if (outputFolder.startsWith(inputKey) || inputKey.startsWith(outputFolder)) {
    throw new InputError(`--output ${outputUri} overlaps --input ${prefix}: a rerun would read the answers as inputs`);
  }
}

export async function listInputs(store: ObjectStore, prefixUri: string, outputUri: string): Promise<InputObject[]> {
  const prefix = await listPrefix(prefixUri);
  await checkOutputOutsideInput(prefix, outputUri);
  const prefixKey = keyOf(prefix);
  const inputs: InputObject[] = [];
  for await (const object of store.list(prefix)) {
    // S3 consoles create zero-byte "folder" objects ending in "/": not inputs.
    if (object.uri.endsWith('/')) continue;
    inputs.push({ uri: object.uri, relativePath: relativePath(prefixKey, keyOf(object.uri)), sizeBytes: object.sizeBytes });
  }
  // As SageMaker fails a job whose prefix matches nothing, rather than succeed with no output.
  if (inputs.length === 0) throw new InputError(`no objects found under ${prefixUri}`);
  return inputs;
}

/** Two inputs that would write the same answer: one would be lost, and a rerun would skip it. */
export function checkDistinctOutputs(inputs: readonly InputObject[], outputPrefix: string): void {
  const seen = new Map<string, string>();
  for (const input of inputs) {
    const output = outputUriFor(outputPrefix, input);
    const other = seen.get(output);
    if (other !== undefined) throw new InputError(`${other} and ${input.uri} would both be answered in ${output}`);
    seen.set(output, input.uri);
  }
}

/**
 * A SageMaker manifest: `[{"prefix": "s3://bucket/prefix/"}, "relative/key", ...]`. Keys are not
 * checked here: one that does not exist fails its own file when it is read, as in SageMaker.
 */
export async function readManifest(manifestStore: ObjectStore, manifestUri: string): Promise<InputObject[]> {
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
  return (keys as string[]).map((key) => {
    try {
      return { uri: joinUri(prefix, key), relativePath: key.replace(/^\/+/, ''), sizeBytes: 0 };
    } catch (error) {
      throw new InputError(`manifest ${manifestUri}: key "${key}": ${(error as Error).message}`);
    }
  });
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
