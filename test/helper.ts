/** Starts the real server on an ephemeral port, with the real model, for one test file. */
import { fileURLToPath } from 'node:url';
import { buildApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config/load-config.js';
import type { Config } from '../src/config/schema.js';
import type { ModelInfo, ModelStats } from '../src/runtime/runtime.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const MODELS = {
  forest: `${REPO_ROOT}models/churn-forest`,
  mlp: `${REPO_ROOT}models/churn-mlp`,
  failing: `${REPO_ROOT}test/fixtures/models/gather-oob`,
  slow: `${REPO_ROOT}test/fixtures/models/slow-matmul`,
  tokens: `${REPO_ROOT}test/fixtures/models/token-scores`,
  fixedBatch: `${REPO_ROOT}test/fixtures/models/fixed-batch`,
  int64Step: `${REPO_ROOT}test/fixtures/models/int64-step`,
  tfjsGatherOob: `${REPO_ROOT}test/fixtures/models/tfjs-gather-oob`,
};

export interface Reference {
  rows: number[][];
  forest_labels: number[];
  forest_probabilities: number[][];
  mlp_probabilities: number[][];
}

export async function loadReference(): Promise<Reference> {
  const { readFile } = await import('node:fs/promises');
  return JSON.parse(await readFile(`${REPO_ROOT}test/fixtures/churn-reference.json`, 'utf8')) as Reference;
}

export interface TestServer extends App {
  readonly url: string;
  readonly config: Config;
}

export interface StartOptions {
  readonly env?: Record<string, string>;
  /** Listen without loading the model, to observe the loading state. */
  readonly load?: boolean;
  /** Wall clock for async TTLs and leases. */
  readonly clock?: () => number;
}

/** The caller closes it: `after(() => server.http.close())`. Without a model directory, none is loaded by default. */
export async function startServer(modelDir: string | undefined, options: StartOptions = {}): Promise<TestServer> {
  const config = loadConfig({
    env: {
      ...(modelDir !== undefined && { INFERD_MODEL_DIR: modelDir }),
      SAGEMAKER_MODEL_SERVER_WORKERS: '1',
      SAGEMAKER_CONTAINER_LOG_LEVEL: 'silent',
      ...options.env,
    },
  });
  const app = buildApp(config, { clock: options.clock });
  await app.http.listen({ port: 0, host: '127.0.0.1' });
  const address = app.http.server.address();
  if (typeof address !== 'object' || address === null) throw new Error('server has no address');
  if (options.load !== false) await app.start();
  return { ...app, url: `http://127.0.0.1:${address.port}`, config };
}

/** The default model (`--model-dir`) as loaded, with its numbers now. */
export function defaultModel(app: App): { info: ModelInfo; stats: ModelStats } {
  const name = app.dataPlane.defaultModel;
  const loaded = name === undefined ? undefined : [...app.runtime.stats()].find((model) => model.name === name);
  if (!loaded) throw new Error('the default model is not loaded');
  return { info: app.runtime.get(loaded.name)!.info!, stats: loaded.stats };
}

export async function invoke(
  url: string,
  body: string | Uint8Array,
  headers: Record<string, string> = {},
  path = '/invocations',
): Promise<{ status: number; headers: Headers; text: string; bytes: Uint8Array }> {
  const response = await fetch(`${url}${path}`, { method: 'POST', body, headers });
  const bytes = new Uint8Array(await response.arrayBuffer());
  return { status: response.status, headers: response.headers, text: new TextDecoder().decode(bytes), bytes };
}

export function assertClose(actual: readonly number[], expected: readonly number[], tolerance = 1e-5, label = ''): void {
  if (actual.length !== expected.length) throw new Error(`${label}: length ${actual.length} != ${expected.length}`);
  actual.forEach((value, i) => {
    if (!(Math.abs(value - expected[i]!) <= tolerance)) {
      throw new Error(`${label}[${i}]: ${value} differs from ${expected[i]} by more than ${tolerance}`);
    }
  });
}

/** A model directory of its own: a copy of `source`'s files, with `inferdJson` as its inferd.json when given. */
export async function copyModel(source: string, inferdJson?: Record<string, unknown>, into?: string): Promise<string> {
  const { cp, mkdtemp, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = into ?? (await mkdtemp(join(tmpdir(), 'inferd-model-')));
  await cp(source, dir, { recursive: true });
  if (inferdJson) await writeFile(join(dir, 'inferd.json'), JSON.stringify(inferdJson));
  return dir;
}
