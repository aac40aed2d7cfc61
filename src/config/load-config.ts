import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { captureLayerFrom } from './data-capture-config.js';
import { CLI_FLAGS as FLAG_TARGETS, ConfigSchema, ENV_VARS, type Config } from './schema.js';

export interface ConfigSources {
  /** Parsed CLI flags, keyed by flag name (`model-dir`), as `parseArgs` returns them. */
  readonly flags?: Readonly<Record<string, string | undefined>>;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Path of an optional JSON file shaped like the schema (`--config` / `INFERD_CONFIG_FILE`). */
  readonly configFile?: string | undefined;
}

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const SAGEMAKER_MODEL_DIR = '/opt/ml/model';
export const BUNDLED_MODEL_DIR = fileURLToPath(new URL('../../../models/churn-forest', import.meta.url));

type Layer = Record<string, Record<string, unknown>>;

function setIn(layer: Layer, [group, key]: readonly [string, string], value: unknown): void {
  (layer[group] ??= {})[key] = value;
}

function mergeLayers(...layers: Layer[]): Layer {
  const merged: Layer = {};
  for (const layer of layers) {
    for (const [group, values] of Object.entries(layer)) {
      merged[group] = typeof values === 'object' && values !== null ? { ...merged[group], ...values } : values;
    }
  }
  return merged;
}

function readConfigFile(path: string): Layer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError([`config file ${path}: ${(error as Error).message}`]);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError([`config file ${path}: not valid JSON (${(error as Error).message})`]);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError([`config file ${path}: must hold a JSON object`]);
  }
  return parsed as Layer;
}

/** Names a schema path by the sources that set it, so every problem points at something a user typed. */
function describePath(path: readonly PropertyKey[], flags: ConfigSources['flags'], env: ConfigSources['env']): string {
  const dotted = path.map(String).join('.');
  const names = [dotted];
  for (const [name, target] of Object.entries(ENV_VARS)) {
    if (target.join('.') === dotted && env?.[name] !== undefined) names.push(name);
  }
  for (const [flag, target] of Object.entries(FLAG_TARGETS)) {
    if (target.join('.') === dotted && flags?.[flag] !== undefined) names.push(`--${flag}`);
  }
  return names.join(' / ');
}


/**
 * Builds the typed, frozen configuration from its sources. Throws ConfigError listing every
 * problem with the key that caused it; nothing else in inferd reads `process.env`.
 */
export function loadConfig({ flags = {}, env = {}, configFile }: ConfigSources): Config {
  const envLayer: Layer = {};
  for (const [name, target] of Object.entries(ENV_VARS)) {
    const value = env[name];
    if (value !== undefined && value !== '') setIn(envLayer, target, value);
  }
  const flagLayer: Layer = {};
  for (const [flag, target] of Object.entries(FLAG_TARGETS)) {
    const value = flags[flag];
    if (value !== undefined) setIn(flagLayer, target, value);
  }
  const file = configFile ?? env.INFERD_CONFIG_FILE;
  const fileLayer = file ? readConfigFile(file) : {};
  const captureDocLayer: Layer = {};
  if (env.INFERD_DATA_CAPTURE_CONFIG) {
    const translated = captureLayerFrom(env.INFERD_DATA_CAPTURE_CONFIG);
    if ('problems' in translated) throw new ConfigError(translated.problems);
    captureDocLayer.capture = translated.layer;
  }

  const result = ConfigSchema.safeParse(mergeLayers(fileLayer, captureDocLayer, envLayer, flagLayer));
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => `${describePath(issue.path, flags, env)}: ${issue.message}`));
  }
  const config = result.data;
  // With many models, none is served by default unless one is named.
  if (!config.model.multiModel && config.model.repository === undefined) {
    config.model.dir ??= existsSync(SAGEMAKER_MODEL_DIR) ? SAGEMAKER_MODEL_DIR : BUNDLED_MODEL_DIR;
  }
  return deepFreeze(config);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
