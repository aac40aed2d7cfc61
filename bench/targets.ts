/**
 * What each scenario is run against: inferd with batching, without (and with data capture on the
 * churn scenario), two independent baselines that run the model inline on the HTTP thread, the
 * HTTP ceiling, and for compute-bound models the in-process ceiling.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ChildServer, freePort, type ChildServerOptions } from './child-server.js';
import type { CeilingRequest, CeilingResult } from './in-process-ceiling.js';
import type { InferdModelDir } from './model-dirs.js';
import { REPO_ROOT, type BenchOptions } from './options.js';
import type { Scenario } from './scenarios.js';

export type HttpTargetId = 'inferd-batching' | 'inferd-capture' | 'inferd-no-batching' | 'inline-baseline' | 'node-http-baseline' | 'http-ceiling';

/** The two baselines: the same server written twice, to check each other. */
export const BASELINE_IDS: readonly HttpTargetId[] = ['inline-baseline', 'node-http-baseline'];

/** How inferd spreads inference over threads: the ceiling runs in the same layout, the baselines choose from it. */
export interface ServerThreads {
  readonly workers: number;
  readonly intraOpNumThreads: number;
}

export interface TargetContext {
  readonly scenario: Scenario;
  readonly options: BenchOptions;
  readonly modelDir: InferdModelDir;
  readonly threads: ServerThreads;
  /** ONNX Runtime threads of the baselines' one session (chooseInlineThreads). */
  readonly inlineThreads: number;
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

/** inferd's documented default: an instance per core, one thread each. */
export function defaultServerThreads(options: BenchOptions): ServerThreads {
  const configured = Number(options.inferdEnv.SAGEMAKER_MODEL_SERVER_WORKERS);
  const workers = Number.isInteger(configured) && configured > 0 ? configured : availableParallelism();
  return { workers, intraOpNumThreads: 1 };
}

async function startInferd(context: TargetContext, env: Record<string, string>, options?: ChildServerOptions): Promise<ChildServer> {
  const port = await freePort();
  return ChildServer.start([INFERD_MAIN, 'serve', '--model-dir', context.modelDir.path, '--port', String(port)], env, port, undefined, options);
}

async function startBaseline(entry: string, { scenario, inlineThreads }: TargetContext, options: BenchOptions): Promise<ChildServer> {
  const port = await freePort();
  const args = ['--model', scenario.modelPath, '--port', String(port), '--threads', String(inlineThreads), '--provider', options.provider];
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
        // A round's capture is over 100 MB: gone with its server.
        const afterExit = () => rm(root, { recursive: true, force: true });
        return startInferd(
          context,
          {
            ...batchingEnv,
            INFERD_CAPTURE_ENABLED: 'true',
            INFERD_CAPTURE_SAMPLING_PERCENTAGE: '100',
            INFERD_CAPTURE_DESTINATION: join(root, 'capture'),
            INFERD_CAPTURE_SPOOL_DIR: join(root, 'spool'),
          },
          { afterExit },
        );
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

/** Long enough for every process of a ceiling to load its session, build its inputs and warm up. */
const CEILING_START_DELAY_MS = 5000;

function runCeilingProcess(request: CeilingRequest, signal?: AbortSignal): Promise<CeilingResult> {
  return promisify(execFile)(process.execPath, [IN_PROCESS_CEILING, JSON.stringify(request)], { cwd: REPO_ROOT, maxBuffer: 1024 * 1024, ...(signal && { signal }) }).then(
    ({ stdout }) => JSON.parse(stdout) as CeilingResult,
  );
}

/**
 * The model alone in inferd's layout: one process per instance, each with the instance's
 * threads, all measuring each batch size in the same wall-clock slot; rows/s summed over them.
 * (One server process; on CUDA, separate processes time-slice the device where inferd's
 * sessions share one context.)
 */
export async function runInProcessCeiling(scenario: Scenario, options: BenchOptions, threads: ServerThreads): Promise<CeilingResult> {
  const batchSizes = scenario.ceilingBatchSizes;
  if (!batchSizes) throw new Error(`${scenario.id} has no in-process ceiling`);
  const request: CeilingRequest = {
    modelPath: scenario.modelPath,
    provider: options.provider,
    threads: threads.intraOpNumThreads,
    secondsPerBatchSize: options.durationS / batchSizes.length,
    spec: { batchSizes, feedVariants: scenario.inputs.feedVariants },
    ...(scenario.inputs.rowsCsvPath !== undefined && { rowsCsvPath: scenario.inputs.rowsCsvPath }),
    startAtEpochMs: Date.now() + CEILING_START_DELAY_MS,
  };
  // One that fails stops the others: they would otherwise run on into the next target's window.
  const abort = new AbortController();
  const settled = await Promise.allSettled(
    Array.from({ length: threads.workers }, () => runCeilingProcess(request, abort.signal).catch((error: unknown) => (abort.abort(), Promise.reject(error)))),
  );
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  const results = settled.map((s) => (s as PromiseFulfilledResult<CeilingResult>).value);
  const startedLateMs = Math.max(...results.map((r) => r.startedLateMs));
  if (startedLateMs > (request.secondsPerBatchSize * 1000) / 10) {
    throw new Error(`a ceiling process started its sweep ${Math.round(startedLateMs)} ms late: the processes did not measure together`);
  }
  const sweep = batchSizes.map((batchSize, i) => {
    const each = results.map((r) => r.sweep[i]!);
    const failedSize = each.find((r) => r.rowsPerS === null);
    if (failedSize) return failedSize;
    return { batchSize, runs: each.reduce((sum, r) => sum + r.runs, 0), rowsPerS: each.reduce((sum, r) => sum + r.rowsPerS!, 0) };
  });
  const best = sweep.reduce<CeilingResult['best']>((top, r) => (r.rowsPerS !== null && r.rowsPerS > (top?.rowsPerS ?? 0) ? r : top), null);
  return { threads: threads.intraOpNumThreads, processes: threads.workers, startedLateMs, provider: options.provider, sweep, best };
}

export interface InlineThreadsChoice {
  readonly threads: number;
  /** Alternated runs per candidate. */
  readonly rounds: number;
  /** Rows/s of one session at the scenario's rows per request, the mean of the alternated runs, per candidate. */
  readonly measured: readonly { readonly threads: number; readonly rowsPerS: number }[];
}

const INLINE_PROBE_ROUNDS = 2;
const INLINE_PROBE_S = 2;
/** More threads only when this much faster: within the noise the fewer keep runs comparable. */
const INLINE_MORE_THREADS_MIN_GAIN = 1.05;

/**
 * The baselines' thread count, as an expert would pick it: of inferd's threads per instance and
 * its threads in all, the one whose single session runs the scenario's requests faster,
 * measured in-process, alternated. More threads are not always faster: the text classifier at
 * batch 1 runs slower on two than on one here.
 */
export async function chooseInlineThreads(scenario: Scenario, options: BenchOptions, threads: ServerThreads): Promise<InlineThreadsChoice> {
  const [fewer, more] = [threads.intraOpNumThreads, threads.workers * threads.intraOpNumThreads];
  if (fewer === more) return { threads: fewer, rounds: 0, measured: [] };
  const totals = new Map([[fewer, 0], [more, 0]]);
  for (let round = 0; round < INLINE_PROBE_ROUNDS; round++) {
    for (const candidate of [fewer, more]) {
      const result = await runCeilingProcess({
        modelPath: scenario.modelPath,
        provider: options.provider,
        threads: candidate,
        secondsPerBatchSize: INLINE_PROBE_S,
        spec: { batchSizes: [scenario.rowsPerRequest], feedVariants: scenario.inputs.feedVariants },
        ...(scenario.inputs.rowsCsvPath !== undefined && { rowsCsvPath: scenario.inputs.rowsCsvPath }),
      });
      const rowsPerS = result.best?.rowsPerS;
      if (rowsPerS === undefined || rowsPerS === null) throw new Error(`${candidate} thread(s): ${result.sweep[0]?.error ?? 'no result'}`);
      totals.set(candidate, totals.get(candidate)! + rowsPerS);
    }
  }
  const measured = [fewer, more].map((t) => ({ threads: t, rowsPerS: totals.get(t)! / INLINE_PROBE_ROUNDS }));
  const chosen = measured[1]!.rowsPerS >= measured[0]!.rowsPerS * INLINE_MORE_THREADS_MIN_GAIN ? more : fewer;
  return { threads: chosen, rounds: INLINE_PROBE_ROUNDS, measured };
}
