/**
 * What the model-repository tests share: a repository of real models on disk (model
 * directories, and SageMaker `model.tar.gz` archives made with the system `tar`), refused
 * archives, and checks of an answer against the reference outputs of churn-forest or churn-mlp.
 */
import assert from 'node:assert/strict';
import { lstat, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { MODELS, assertClose, copyModel, type Reference } from '../helper.js';
import { systemTar, tarGz } from '../repository/tar-writer.js';

export type Kind = 'forest' | 'mlp';

export const TARGET_MODEL = 'x-amzn-sagemaker-target-model';
export const CSV = { 'content-type': 'text/csv', accept: 'text/csv' };
export const toCsv = (rows: number[][]) => rows.map((row) => row.join(',')).join('\n') + '\n';

/** The CSV answer for the reference rows, checked against the named model's reference outputs. */
export function assertAnswers(kind: Kind, text: string, ref: Reference, label: string): void {
  const lines = text.trim().split('\n');
  assert.equal(lines.length, ref.rows.length, `${label}: ${text}`);
  lines.forEach((line, i) => {
    const values = line.split(',').map(Number);
    if (kind === 'forest') {
      assert.equal(values.length, 4, `${label}: a forest answer is a label and 3 probabilities: ${line}`);
      assert.equal(values[0], ref.forest_labels[i], `${label}: label of row ${i}`);
      assertClose(values.slice(1), ref.forest_probabilities[i]!, 1e-5, `${label} row ${i}`);
    } else {
      assert.equal(values.length, 2, `${label}: an mlp answer is 2 probabilities: ${line}`);
      assertClose(values, ref.mlp_probabilities[i]!, 1e-5, `${label} row ${i}`);
    }
  });
}

/** The AWS SDK for JavaScript v3 against the server, tried once so that every answer is the first. */
export const runtimeClient = (url: string) =>
  new SageMakerRuntimeClient({ endpoint: url, region: 'us-east-1', maxAttempts: 1, credentials: { accessKeyId: 'unused', secretAccessKey: 'unused' } });

export const metricsOf = async (url: string) => (await fetch(`${url}/metrics`)).text();

export interface ModelEntry {
  readonly modelName: string;
  readonly modelUrl: string;
  readonly state: string;
  readonly footprintBytes?: number;
  readonly footprintSource?: string;
}

export async function listModels(url: string): Promise<ModelEntry[]> {
  return ((await (await fetch(`${url}/models`)).json()) as { models: ModelEntry[] }).models;
}

/** An archive of a model directory as SageMaker users make it: `tar czf model.tar.gz -C dir .`, or wrapped in one directory. */
export async function archiveModel(source: string, archive: string, wrapped: boolean): Promise<void> {
  await mkdir(dirname(archive), { recursive: true });
  if (wrapped) systemTar(['czf', archive, '-C', dirname(source), basename(source)]);
  else systemTar(['czf', archive, '-C', source, '.']);
}

export interface LocalRepository {
  readonly root: string;
  /** Where the server unpacks archives (INFERD_MODEL_CACHE_DIR). */
  readonly cacheDir: string;
  /** Where `evil/dotdot.tar.gz` would write if `..` were followed: outside the cache. */
  readonly escapedFile: string;
  /** The kind of each model target. */
  readonly models: Record<string, Kind>;
}

/**
 * Under `work`: `repo/` holds `forest/` and `mlp/` (directories), `customers/42/model.tar.gz`
 * (mlp, wrapped in a directory), `customers/7/model.tar.gz` (forest, flat), `concurrent/model.tar.gz`
 * (forest), `lru/{a,b,c}` (30 MiB declared each), `busy/{slow,x,y}` (30 MiB declared each),
 * `escape` (a link to a model outside the repository), `linked` (a model directory whose
 * `model.onnx` links to one outside the repository), `churn-forest` (the mlp, under the name
 * of the `--model-dir` model models/churn-forest), and the refused archives
 * `evil/symlink.tar.gz` and `evil/dotdot.tar.gz`.
 */
export async function buildLocalRepository(work: string): Promise<LocalRepository> {
  const root = join(work, 'repo');
  const staging = join(work, 'staging');
  const cacheDir = join(work, 'cache');
  await mkdir(root, { recursive: true });
  await copyModel(MODELS.forest, undefined, join(root, 'forest'));
  await copyModel(MODELS.mlp, undefined, join(root, 'mlp'));
  const mlpDir = await copyModel(MODELS.mlp, undefined, join(staging, 'mymodel'));
  const forestDir = await copyModel(MODELS.forest, undefined, join(staging, 'forest'));
  await archiveModel(mlpDir, join(root, 'customers', '42', 'model.tar.gz'), true);
  await archiveModel(forestDir, join(root, 'customers', '7', 'model.tar.gz'), false);
  await archiveModel(forestDir, join(root, 'concurrent', 'model.tar.gz'), false);
  await copyModel(MODELS.mlp, { memoryMb: 30 }, join(root, 'lru', 'a'));
  await copyModel(MODELS.forest, { memoryMb: 30 }, join(root, 'lru', 'b'));
  await copyModel(MODELS.mlp, { memoryMb: 30 }, join(root, 'lru', 'c'));
  await copyModel(MODELS.slow, { memoryMb: 30 }, join(root, 'busy', 'slow'));
  await copyModel(MODELS.mlp, { memoryMb: 30 }, join(root, 'busy', 'x'));
  await copyModel(MODELS.forest, { memoryMb: 30 }, join(root, 'busy', 'y'));
  const outside = await copyModel(MODELS.mlp, undefined, join(work, 'outside'));
  await symlink(outside, join(root, 'escape'));
  // A model directory inside the repository, but its model.onnx leads outside.
  await mkdir(join(root, 'linked'), { recursive: true });
  await symlink(join(outside, 'model.onnx'), join(root, 'linked', 'model.onnx'));
  // Named as the `--model-dir` model models/churn-forest is, but holding the mlp.
  await copyModel(MODELS.mlp, undefined, join(root, 'churn-forest'));

  const onnx = await readFile(join(MODELS.mlp, 'model.onnx'));
  await mkdir(join(root, 'evil'), { recursive: true });
  // A real model first, so that the refusal comes after files were written to the partial directory.
  await writeFile(join(root, 'evil', 'symlink.tar.gz'), tarGz([{ name: 'model.onnx', content: onnx }, { name: 'passwd', type: '2', linkName: '/etc/passwd' }]));
  await writeFile(join(root, 'evil', 'dotdot.tar.gz'), tarGz([{ name: 'model.onnx', content: onnx }, { name: '../../escaped.onnx', content: onnx }]));
  return {
    root,
    cacheDir,
    escapedFile: join(work, 'escaped.onnx'),
    models: { forest: 'forest', mlp: 'mlp', 'customers/42/model.tar.gz': 'mlp', 'customers/7/model.tar.gz': 'forest' },
  };
}

/** Every path under `dir` (relative), and whether any of them is a symbolic link. */
export async function treeUnder(dir: string): Promise<{ paths: string[]; links: string[] }> {
  const paths = (await readdir(dir, { recursive: true }).catch(() => [] as string[])).sort();
  const links: string[] = [];
  for (const path of paths) if ((await lstat(join(dir, path))).isSymbolicLink()) links.push(path);
  return { paths, links };
}
