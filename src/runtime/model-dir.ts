import { readdir, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { InferdError } from '../errors.js';
import { ModelConfigSchema, type ModelConfig } from '../config/model-schema.js';
import { BACKENDS, detectBackend } from './backends.js';
import type { BackendName } from './worker-protocol.js';

export interface ModelLocation {
  readonly name: string;
  readonly dir: string;
  readonly backend: BackendName;
  /** The file the backend loads: the `.onnx` file, or `model.json`. */
  readonly modelPath: string;
  readonly config: ModelConfig;
}

const CONFIG_FILE = 'inferd.json';

const loadFailed = (message: string, cause?: unknown) =>
  new InferdError('INFERD_ERR_MODEL_LOAD_FAILED', message, { cause });

async function readModelConfig(dir: string, entries: readonly string[]): Promise<ModelConfig> {
  if (!entries.includes(CONFIG_FILE)) return ModelConfigSchema.parse({});
  const path = join(dir, CONFIG_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw loadFailed(`${path}: not valid JSON (${(error as Error).message})`, error);
  }
  const result = ModelConfigSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw loadFailed(`${path} is invalid: ${problems.join('; ')}`);
  }
  return result.data;
}

/**
 * Finds the model of a directory: its backend (inferd.json's `backend`, else detected from its
 * files), the one file that backend loads, and its validated `inferd.json`.
 */
export async function locateModel(modelDir: string): Promise<ModelLocation> {
  const dir = resolve(modelDir);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    throw loadFailed(`cannot read model directory ${dir}: ${(error as Error).message}`, error);
  }
  const config = await readModelConfig(dir, entries);
  const backend = config.backend ?? detectBackend(entries);
  if (backend === undefined) throw loadFailed(`no .onnx file or TF.js model.json in model directory ${dir}`);
  const { candidates, describeFile } = BACKENDS[backend];
  const files = candidates(entries);
  let file = config.model;
  if (file === undefined) {
    if (files.length === 0) throw loadFailed(`no ${describeFile} in model directory ${dir} (inferd.json says "backend": "${backend}")`);
    if (files.length > 1) {
      throw loadFailed(`model directory ${dir} holds several ${describeFile}s (${files.join(', ')}); name one as "model" in ${CONFIG_FILE}`);
    }
    file = files[0]!;
  } else if (!entries.includes(file)) {
    throw loadFailed(`${CONFIG_FILE} names "${file}", which is not in ${dir}`);
  }
  return { name: config.name ?? basename(dir), dir, backend, modelPath: join(dir, file), config };
}
