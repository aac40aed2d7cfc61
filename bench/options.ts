/** The benchmark's settings, all from the environment (see run.ts for the list). */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export type ScenarioId = 'churn-csv' | 'mlp-json' | 'text-json' | 'mobilenet-npy';
export const SCENARIO_IDS: readonly ScenarioId[] = ['churn-csv', 'mlp-json', 'text-json', 'mobilenet-npy'];

export type Provider = 'cpu' | 'cuda';

export interface BenchOptions {
  /** Rounds of `npm run bench`: every target once per round, in the same order. */
  readonly rounds: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly scenarioIds: readonly ScenarioId[];
  /** Extra environment for both inferd targets; it may tune the batching target's settings. */
  readonly inferdEnv: Readonly<Record<string, string>>;
  readonly provider: Provider;
  readonly modelsDir: string;
}

export function positiveNumber(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}

function scenarioIds(raw: string | undefined): ScenarioId[] {
  if (raw === undefined || raw.trim() === '') return [...SCENARIO_IDS];
  return raw.split(',').map((id) => {
    const trimmed = id.trim();
    if (!(SCENARIO_IDS as readonly string[]).includes(trimmed)) {
      throw new Error(`BENCH_SCENARIOS: unknown scenario "${trimmed}" (known: ${SCENARIO_IDS.join(', ')})`);
    }
    return trimmed as ScenarioId;
  });
}

function inferdEnv(raw: string | undefined): Record<string, string> {
  if (raw === undefined || raw.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Error('BENCH_INFERD_ENV must be a JSON object, e.g. {"INFERD_MAX_QUEUE_SIZE": 512}');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error('BENCH_INFERD_ENV must be a JSON object of variable names to values');
  }
  return Object.fromEntries(Object.entries(parsed).map(([name, value]) => [name, String(value)]));
}

function provider(env: NodeJS.ProcessEnv): Provider {
  const raw = (env.BENCH_PROVIDER ?? env.BENCH_DEVICE ?? 'cpu').toLowerCase();
  if (raw !== 'cpu' && raw !== 'cuda') throw new Error(`BENCH_PROVIDER/BENCH_DEVICE must be cpu or cuda, got "${raw}"`);
  return raw;
}

export function positiveInteger(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = positiveNumber(env, name, fallback);
  if (!Number.isInteger(value)) throw new Error(`${name} must be a whole number, got "${env[name]}"`);
  return value;
}

export function readOptions(env: NodeJS.ProcessEnv = process.env): BenchOptions {
  return {
    rounds: positiveInteger(env, 'BENCH_ROUNDS', 3),
    durationS: positiveNumber(env, 'BENCH_DURATION_S', 8),
    warmupS: positiveNumber(env, 'BENCH_WARMUP_S', 2),
    scenarioIds: scenarioIds(env.BENCH_SCENARIOS),
    inferdEnv: inferdEnv(env.BENCH_INFERD_ENV),
    provider: provider(env),
    modelsDir: resolve(REPO_ROOT, env.BENCH_MODELS_DIR ?? '../shared/models'),
  };
}

/** The environment variables that shaped this run, to print the exact command. */
export function benchEnvironment(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] => entry[0].startsWith('BENCH_') && entry[1] !== undefined),
  );
}
