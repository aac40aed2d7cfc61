/**
 * What each scenario is run against: inferd with batching, without (and with data capture on the
 * churn scenario), two independent baselines that run the model inline on the HTTP thread, the
 * HTTP ceiling, and for compute-bound models the in-process ceiling.
 */
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ChildServer, freePort } from './child-server.js';
import type { CeilingRequest, CeilingResult } from './in-process-ceiling.js';
import type { InferdModelDir } from './model-dirs.js';
import { REPO_ROOT, type BenchOptions } from './options.js';
import type { Scenario } from './scenarios.js';

export type HttpTargetId = 'inferd-batching' | 'inferd-capture' | 'inferd-no-batching' | 'inline-baseline' | 'node-http-baseline' | 'http-ceiling';

/** The two baselines: the same server written twice, to check each other. */
export const BASELINE_IDS: readonly HttpTargetId[] = ['inline-baseline', 'node-http-baseline'];

/** How inferd spreads inference over threads; the baseline and the ceiling get the same. */
export interface ServerThreads {
  readonly workers: number;
  readonly intraOpNumThreads: number;
}

export interface TargetContext {
  readonly scenario: Scenario;
  readonly options: BenchOptions;
  readonly modelDir: InferdModelDir;
  readonly threads: ServerThreads;
  /** Scenario-level remarks for the report. */
  readonly notes: string[];
}

export interface HttpTarget {
  readonly id: HttpTargetId;
  readonly label: string;
  /** Scenarios this target runs in; all when absent. */
  readonly appliesTo?: (scenario: Scenario) => boolean;
  start(context: TargetContext): Promise<ChildServer>;
}

const INFERD_MAIN = join(REPO_ROOT, 'dist/src/main.js');
const INLINE_SERVER = join(REPO_ROOT, 'dist/bench/baselines/inline-server.js');
const NODE_HTTP_SERVER = join(REPO_ROOT, 'dist/bench/baselines/node-http-inline.js');
const HTTP_CEILING = join(REPO_ROOT, 'dist/bench/baselines/http-ceiling.js');
const IN_PROCESS_CEILING = join(REPO_ROOT, 'dist/bench/in-process-ceiling.js');

/** inferd's documented default: one core for the HTTP thread, one thread per worker. */
export function defaultServerThreads(options: BenchOptions): ServerThreads {
  const configured = Number(options.inferdEnv.SAGEMAKER_MODEL_SERVER_WORKERS);
  const workers = Number.isInteger(configured) && configured > 0 ? configured : Math.max(1, availableParallelism() - 1);
  return { workers, intraOpNumThreads: 1 };
}

async function startInferd(context: TargetContext, env: Record<string, string>): Promise<ChildServer> {
  const port = await freePort();
  return ChildServer.start([INFERD_MAIN, 'serve', '--model-dir', context.modelDir.path, '--port', String(port)], env, port);
}

async function startBaseline(entry: string, { scenario, threads }: TargetContext, options: BenchOptions): Promise<ChildServer> {
  const port = await freePort();
  const args = ['--model', scenario.modelPath, '--port', String(port), '--threads', String(threads.intraOpNumThreads), '--provider', options.provider];
  return ChildServer.start([entry, ...args], {}, port);
}

export function httpTargets(options: BenchOptions): HttpTarget[] {
  // inferd as a user gets it: its own batching defaults, unless BENCH_INFERD_ENV says otherwise.
  const batchingEnv = options.inferdEnv;
  const overrides = Object.entries(batchingEnv).filter(([name]) => name === 'INFERD_MAX_BATCH_SIZE' || name === 'INFERD_MAX_QUEUE_DELAY_MS');
  return [
    {
      id: 'inferd-batching',
      label: `inferd, batching (${overrides.length === 0 ? 'its defaults' : overrides.map(([name, value]) => `${name}=${value}`).join(', ')})`,
      start: (context) => startInferd(context, batchingEnv),
    },
    {
      id: 'inferd-capture',
      label: 'inferd, batching + data capture at 100% (local destination)',
      appliesTo: (scenario) => scenario.measuresCapture === true,
      start: async (context) => {
        const root = await mkdtemp(join(tmpdir(), 'inferd-bench-capture-'));
        return startInferd(context, {
          ...batchingEnv,
          INFERD_CAPTURE_ENABLED: 'true',
          INFERD_CAPTURE_SAMPLING_PERCENTAGE: '100',
          INFERD_CAPTURE_DESTINATION: join(root, 'capture'),
          INFERD_CAPTURE_SPOOL_DIR: join(root, 'spool'),
        });
      },
    },
    {
      id: 'inferd-no-batching',
      label: 'inferd, batching off',
      start: (context) => startInferd(context, { ...options.inferdEnv, INFERD_MAX_BATCH_SIZE: '1' }),
    },
    {
      id: 'inline-baseline',
      label: 'baseline: Fastify, run() inline on the HTTP thread',
      start: (context) => startBaseline(INLINE_SERVER, context, options),
    },
    {
      id: 'node-http-baseline',
      label: 'baseline, second implementation: node:http, run() inline',
      start: (context) => startBaseline(NODE_HTTP_SERVER, context, options),
    },
    {
      id: 'http-ceiling',
      label: 'HTTP ceiling: Fastify, the same parse, constant answer',
      start: async ({ scenario }) => {
        const port = await freePort();
        return ChildServer.start([HTTP_CEILING, '--model', scenario.modelPath, '--port', String(port)], {}, port);
      },
    },
  ];
}

export const IN_PROCESS_CEILING_LABEL = 'in-process ceiling: session.run loop';

export async function runInProcessCeiling(scenario: Scenario, options: BenchOptions, threads: ServerThreads): Promise<CeilingResult> {
  if (!scenario.ceiling) throw new Error(`${scenario.id} has no in-process ceiling`);
  const request: CeilingRequest = {
    modelPath: scenario.modelPath,
    provider: options.provider,
    threads: threads.workers * threads.intraOpNumThreads,
    secondsPerBatchSize: options.durationS / scenario.ceiling.batchSizes.length,
    spec: scenario.ceiling,
  };
  const { stdout } = await promisify(execFile)(process.execPath, [IN_PROCESS_CEILING, JSON.stringify(request)], {
    cwd: REPO_ROOT,
    maxBuffer: 1024 * 1024,
  });
  return JSON.parse(stdout) as CeilingResult;
}
