/**
 * `npm run bench`: every selected scenario against every target, in alternated rounds (A, B, C,
 * A, B, C…; each target in a fresh child process on this machine every round), so that a slowdown
 * of the shared machine hits every target alike; ratios are taken within each round and reported
 * as their median with min–max. Before the run the machine's idle load is sampled, during it each
 * measured window's other load, and a warning is printed where other processes used more than a
 * tenth of a core. During each measured window the server's threads are read from
 * /proc/PID/task/TID/stat, for its main thread's and its other threads' CPU time per request.
 * Results: bench/results/<time>-<host>.{json,md} with every round's raw figures, latest.json and
 * latest.md; then the table in docs/performance.md is regenerated from latest.json (bench/table.ts).
 *
 * Environment:
 *   BENCH_ROUNDS        rounds, each every target once (3)
 *   BENCH_DURATION_S    measured seconds per target and round (8); the in-process ceiling splits it over its batch sizes
 *   BENCH_WARMUP_S      unmeasured load before each measurement, same server (2)
 *   BENCH_SCENARIOS     comma-separated subset of churn-csv,mlp-json,text-json,mobilenet-npy
 *   BENCH_INFERD_ENV    JSON object of extra environment for the inferd targets
 *   BENCH_PROVIDER      cpu (default) or cuda; BENCH_DEVICE is accepted as a synonym
 *   BENCH_MODELS_DIR    where the models and churn-requests.csv are (../shared/models)
 */
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { relative } from 'node:path';
import { goals, ratios, summarizeTargets } from './analysis.js';
import { StartFailure, type ChildServer } from './child-server.js';
import { cpuUse, sampleCpu, sampleCpuOfChildren, sampleQuiet, sampleThreads, threadCpu } from './cpu.js';
import { loadRequests, runLoad } from './load.js';
import { InferdModelDir } from './model-dirs.js';
import { REPO_ROOT, benchEnvironment, readOptions, type BenchOptions } from './options.js';
import { startPingProber } from './ping-prober.js';
import {
  describeMachine,
  reproducingCommand,
  writeResults,
  type AnswerCheck,
  type Failure,
  type InferdModelInfo,
  type RoundResult,
  type ScenarioResult,
  type TargetId,
} from './report.js';
import { defineScenarios, type Scenario } from './scenarios.js';
import { spread } from './stats.js';
import { updatePerformanceTable } from './table.js';
import {
  BASELINE_IDS,
  IN_PROCESS_CEILING_LABEL,
  chooseInlineThreads,
  defaultServerThreads,
  httpTargets,
  runInProcessCeiling,
  type HttpTarget,
  type InlineThreadsChoice,
  type ServerThreads,
  type TargetContext,
} from './targets.js';

/** Cores of other work in a measured window above which the window is flagged as noisy. */
const NOISY_OTHER_CORES = 0.1;
const QUIET_SAMPLE_S = 3;
/** Bodies whose answers are compared with inferd's before each measurement. */
const CHECK_BODIES = 4;
/** Largest difference between two servers' answers, relative to the values' magnitude (at least 1). */
const ANSWER_TOLERANCE = 1e-4;

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

function failure(error: unknown): Failure {
  const message = error instanceof Error ? error.message : String(error);
  return error instanceof StartFailure ? { ok: false, error: message, output: error.output } : { ok: false, error: message };
}

async function inferdModelInfo(url: string): Promise<InferdModelInfo | undefined> {
  const body = (await fetch(`${url}/models`).then((r) => r.json(), () => ({}))) as { models?: Record<string, unknown>[] };
  const model = body.models?.[0];
  const instances = model?.instances;
  if (typeof instances !== 'number' || typeof model?.intraOpNumThreads !== 'number') return undefined;
  return {
    provider: String(model.provider),
    requestedProvider: String(model.requestedProvider),
    instances,
    intraOpNumThreads: model.intraOpNumThreads,
    ...(model.batching !== undefined && { batching: model.batching }),
  };
}

// ---------------------------------------------------------------------------------------------
// Answers: every target must answer what inferd answers, in the same format

interface Answer {
  readonly contentType: string;
  /** Every number of the answer, in order: CSV fields, or JSON numbers depth first. */
  readonly numbers: number[];
  /** The answer with its numbers taken out: the format and shape that must match. */
  readonly skeleton: string;
}

function parseAnswer(contentType: string, text: string): Answer {
  const numbers: number[] = [];
  if (contentType === 'text/csv') {
    const skeleton = text.replace(/[^,\n]+/g, (field) => (numbers.push(Number(field)), '#'));
    return { contentType, numbers, skeleton };
  }
  const strip = (value: unknown): unknown => {
    if (typeof value === 'number') return numbers.push(value), '#';
    if (Array.isArray(value)) return value.map(strip);
    if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, strip(v)]));
    return value;
  };
  return { contentType, numbers, skeleton: JSON.stringify(strip(JSON.parse(text))) };
}

async function answers(url: string, scenario: Scenario, bodies: readonly Buffer[]): Promise<Answer[]> {
  const result: Answer[] = [];
  for (const body of bodies.slice(0, CHECK_BODIES)) {
    const response = await fetch(`${url}/invocations`, { method: 'POST', headers: { 'content-type': scenario.contentType, accept: scenario.accept }, body });
    const text = await response.text();
    if (response.status !== 200) throw new Error(`check request answered ${response.status}: ${text.slice(0, 300)}`);
    result.push(parseAnswer(response.headers.get('content-type')?.split(';')[0]?.trim() ?? '', text));
  }
  return result;
}

/** Compares with inferd's answers, or makes inferd's the reference when there are none yet. */
function checkAnswers(got: readonly Answer[], reference: { value: Answer[] | null }, isInferd: boolean): AnswerCheck | undefined {
  const contentType = got[0]?.contentType ?? '';
  if (reference.value === null) {
    if (!isInferd) return undefined;
    reference.value = [...got];
    return { contentType, bodies: got.length, maxDiffVsInferd: null };
  }
  let max = 0;
  got.forEach((answer, i) => {
    const expected = reference.value![i]!;
    if (answer.contentType !== expected.contentType) throw new Error(`answers ${answer.contentType}, inferd ${expected.contentType}`);
    if (answer.skeleton !== expected.skeleton) throw new Error(`answer's shape differs from inferd's: ${answer.skeleton.slice(0, 200)} vs ${expected.skeleton.slice(0, 200)}`);
    answer.numbers.forEach((value, k) => {
      const other = expected.numbers[k]!;
      const diff = Math.abs(value - other);
      max = Math.max(max, diff);
      if (!(diff <= ANSWER_TOLERANCE * Math.max(1, Math.abs(other)))) throw new Error(`answer differs from inferd's: ${value} vs ${other}`);
    });
  });
  return { contentType, bodies: got.length, maxDiffVsInferd: max };
}

// ---------------------------------------------------------------------------------------------
// One target, one round

interface ScenarioRun {
  readonly scenario: Scenario;
  readonly bodies: readonly Buffer[];
  readonly reference: { value: Answer[] | null };
}

async function measureHttpTarget(target: HttpTarget, context: TargetContext, run: ScenarioRun, round: number): Promise<RoundResult> {
  const { scenario, options } = context;
  const base = { round, target: target.id, label: target.label };
  let server: ChildServer;
  try {
    server = await target.start(context);
  } catch (error) {
    return { ...base, ...failure(error) };
  }
  try {
    const inferd = target.id.startsWith('inferd') ? await inferdModelInfo(server.url) : undefined;
    const check = target.id === 'http-ceiling' ? undefined : checkAnswers(await answers(server.url, scenario, run.bodies), run.reference, inferd !== undefined);
    const requests = loadRequests(scenario, run.bodies);
    await runLoad(server.url, scenario, requests, options.warmupS);
    const prober = startPingProber(server.url);
    const threadsBefore = sampleThreads(server.pid);
    const cpuBefore = sampleCpu(server.pid);
    const load = await runLoad(server.url, scenario, requests, options.durationS);
    const cpu = cpuUse(cpuBefore, sampleCpu(server.pid));
    const threadsAfter = sampleThreads(server.pid);
    const ping = await prober.stop();
    return {
      ...base,
      ok: true,
      kind: 'http',
      load,
      ping,
      cpu,
      threads: threadCpu(threadsBefore, threadsAfter, load.ok),
      serverThreadCount: threadsAfter?.threads.size ?? null,
      ...(inferd && { inferd }),
      ...(check && { check }),
    };
  } catch (error) {
    return { ...base, ...failure(error) };
  } finally {
    await server.stop();
  }
}

function inlineThreadsNote(scenario: Scenario, choice: InlineThreadsChoice): string {
  const rows = `${scenario.rowsPerRequest} row${scenario.rowsPerRequest === 1 ? '' : 's'}`;
  if (choice.measured.length === 0) return `The baselines run ONNX Runtime with ${choice.threads} thread(s), as inferd's instances do.`;
  const figures = choice.measured.map((m) => `${m.threads} thread(s) ${Math.round(m.rowsPerS).toLocaleString('en-US')} rows/s`).join(', ');
  return `The baselines run ONNX Runtime with ${choice.threads} thread(s): one session at ${rows} per run made ${figures} in-process (mean of ${choice.rounds} alternated runs each): the faster, more threads only when at least 5% faster.`;
}

async function measureInProcessCeiling(scenario: Scenario, options: BenchOptions, threads: ServerThreads, round: number): Promise<RoundResult> {
  const base = { round, target: 'in-process-ceiling' as const, label: IN_PROCESS_CEILING_LABEL };
  try {
    const before = sampleCpuOfChildren();
    const ceiling = await runInProcessCeiling(scenario, options, threads);
    return { ...base, ok: true, kind: 'ceiling', ceiling, cpu: cpuUse(before, sampleCpuOfChildren()) };
  } catch (error) {
    return { ...base, ...failure(error) };
  }
}

function roundLine(scenario: Scenario, result: RoundResult): string {
  const prefix = `${scenario.id} round ${result.round} / ${result.target}`;
  if (!result.ok) return `${prefix}: FAILED ${result.error}`;
  const other = result.cpu.otherCores === null ? '?' : result.cpu.otherCores.toFixed(2);
  if (result.kind === 'ceiling') {
    return `${prefix}: ${Math.round(result.ceiling.best?.rowsPerS ?? 0)} rows/s at batch ${result.ceiling.best?.batchSize ?? '-'}, other cores ${other}`;
  }
  const { load, ping, threads } = result;
  return (
    `${prefix}: ${Math.round(load.requestsPerS)} req/s, p99 ${load.latencyMs.p99} ms, non-2xx ${load.non2xx}, errors ${load.errors}, ` +
    `/ping p99 ${ping.p99Ms?.toFixed(1) ?? '-'} ms, main ${threads?.mainUsPerRequest.toFixed(1) ?? '?'} µs/req, ` +
    `other threads ${threads?.otherThreadsUsPerRequest.toFixed(1) ?? '?'} µs/req, other cores ${other}`
  );
}

// ---------------------------------------------------------------------------------------------
// One scenario, all rounds

async function runScenario(scenario: Scenario, options: BenchOptions): Promise<ScenarioResult> {
  const notes: string[] = [];
  const base = {
    id: scenario.id,
    title: scenario.title,
    model: relative(REPO_ROOT, scenario.modelPath),
    contentType: scenario.contentType,
    accept: scenario.accept,
    connections: scenario.connections,
    rowsPerRequest: scenario.rowsPerRequest,
  };
  const empty = { targets: [], summary: [], ratios: [], goals: [], rounds: [] };
  let bodies: Buffer[];
  try {
    if (!existsSync(scenario.modelPath)) throw new Error(`model not found: ${scenario.modelPath}`);
    bodies = scenario.buildBodies();
  } catch (error) {
    log(`${scenario.id}: skipped, ${(error as Error).message}`);
    return { ...base, distinctBodies: 0, notes: [`Skipped: ${(error as Error).message}`], ...empty };
  }

  const modelDir = await InferdModelDir.create(scenario.modelPath, {
    ...(options.provider === 'cuda' && { executionProvider: 'cuda' }),
    ...scenario.batchingConfig,
  });
  const http = httpTargets(options).filter((t) => t.appliesTo?.(scenario) ?? true);
  const targets: { id: TargetId; label: string }[] = [
    ...http.map((t) => ({ id: t.id, label: t.label })),
    ...(scenario.ceilingBatchSizes ? [{ id: 'in-process-ceiling' as const, label: IN_PROCESS_CEILING_LABEL }] : []),
  ];
  const results: RoundResult[] = [];
  const run: ScenarioRun = { scenario, bodies, reference: { value: null } };
  try {
    let threads: ServerThreads = defaultServerThreads(options);
    let inlineThreads: number | undefined;
    for (let round = 1; round <= options.rounds; round++) {
      for (const target of http) {
        if (inlineThreads === undefined && BASELINE_IDS.includes(target.id)) {
          try {
            const choice = await chooseInlineThreads(scenario, options, threads);
            inlineThreads = choice.threads;
            notes.push(inlineThreadsNote(scenario, choice));
          } catch (error) {
            inlineThreads = threads.intraOpNumThreads;
            notes.push(`The baselines run ONNX Runtime with ${inlineThreads} thread(s), inferd's per instance: choosing failed (${(error as Error).message}).`);
          }
        }
        const context = { scenario, options, modelDir, threads, inlineThreads: inlineThreads ?? threads.intraOpNumThreads, notes };
        const result = await measureHttpTarget(target, context, run, round);
        log(roundLine(scenario, result));
        results.push(result);
        if (result.ok && result.kind === 'http' && result.inferd) {
          // What inferd really ran with beats the documented default, for the baselines and the ceiling.
          threads = { workers: result.inferd.instances, intraOpNumThreads: result.inferd.intraOpNumThreads };
          const fallback = `inferd asked for ${result.inferd.requestedProvider} but ran on ${result.inferd.provider}.`;
          if (result.inferd.provider !== result.inferd.requestedProvider && !notes.includes(fallback)) notes.push(fallback);
        }
      }
      if (scenario.ceilingBatchSizes) {
        const result = await measureInProcessCeiling(scenario, options, threads, round);
        log(roundLine(scenario, result));
        results.push(result);
      }
    }
  } finally {
    await modelDir.remove();
  }
  const summary = summarizeTargets(results, targets);
  const ratioSummaries = ratios(results, options.rounds, targets.map((t) => t.id));
  const baselines = ratioSummaries.find((r) => r.id === 'inline-baseline/node-http-baseline')?.spread;
  if (baselines && (baselines.max < 0.9 || baselines.min > 1.1)) {
    notes.push(
      `The two baselines differ by more than 10% in every round (Fastify / node:http ${baselines.median.toFixed(2)}×, ${baselines.min.toFixed(2)}–${baselines.max.toFixed(2)}×): ` +
        'the goals compare inferd with the faster one by its median over the rounds.',
    );
  }
  return {
    ...base,
    distinctBodies: bodies.length,
    notes,
    targets,
    summary,
    ratios: ratioSummaries,
    goals: goals(scenario.id, ratioSummaries, summary),
    rounds: results,
  };
}

// ---------------------------------------------------------------------------------------------

function noisyWindows(scenarios: readonly ScenarioResult[]): { during: number[]; warnings: string[] } {
  const during: number[] = [];
  const warnings: string[] = [];
  for (const scenario of scenarios) {
    for (const result of scenario.rounds) {
      if (!result.ok || result.cpu.otherCores === null) continue;
      during.push(result.cpu.otherCores);
      if (result.cpu.otherCores > NOISY_OTHER_CORES) {
        warnings.push(`${scenario.id} round ${result.round} / ${result.target}: other processes used ${result.cpu.otherCores.toFixed(2)} cores while it was measured.`);
      }
    }
  }
  return { during, warnings };
}

async function main(): Promise<void> {
  const options = readOptions();
  const startedAt = new Date();
  const machine = describeMachine();
  log(
    `${machine.cpuModel}, ${machine.cores} cores; scenarios ${options.scenarioIds.join(', ')}; ` +
      `${options.rounds} rounds of ${options.warmupS} + ${options.durationS} s per target`,
  );
  const before = await sampleQuiet(QUIET_SAMPLE_S);
  const warnings: string[] = [];
  if (before.otherCores !== null && before.otherCores > NOISY_OTHER_CORES) {
    warnings.push(`Before the run, with nothing of the benchmark running, the machine was busy: ${before.otherCores.toFixed(2)} cores for ${QUIET_SAMPLE_S} s (load average ${before.loadAverage.join(' / ')}).`);
  }
  log(`machine before the run: ${before.otherCores?.toFixed(2) ?? '?'} cores busy, load average ${before.loadAverage.join(' / ')}`);
  for (const warning of warnings) log(`WARNING: ${warning}`);
  const scenarios = defineScenarios(options.modelsDir);
  const results: ScenarioResult[] = [];
  for (const id of options.scenarioIds) results.push(await runScenario(scenarios[id], options));
  const noisy = noisyWindows(results);
  for (const warning of noisy.warnings) log(`WARNING: ${warning}`);
  warnings.push(...noisy.warnings);
  const files = writeResults({
    startedAt: startedAt.toISOString(),
    elapsedS: (Date.now() - startedAt.getTime()) / 1000,
    command: reproducingCommand(benchEnvironment()),
    machine,
    settings: { rounds: options.rounds, durationS: options.durationS, warmupS: options.warmupS, provider: options.provider, inferdEnv: options.inferdEnv },
    machineLoad: {
      before,
      during: spread(noisy.during),
      noisyWindows: noisy.warnings.length,
      windows: noisy.during.length,
      noisyAboveCores: NOISY_OTHER_CORES,
      loadAverageAfter: loadavg().map((v) => Math.round(v * 100) / 100),
    },
    warnings,
    scenarios: results,
  });
  for (const scenario of results) {
    for (const goal of scenario.goals) {
      const measured = goal.measured === null ? 'not measured' : `${goal.measured.median.toFixed(2)} (${goal.measured.min.toFixed(2)}–${goal.measured.max.toFixed(2)})`;
      log(`goal ${scenario.id}: ${goal.goal}: ${measured}: ${goal.verdict}${goal.verdict === 'met' && !goal.everyRound ? ' (not in every round)' : ''}`);
    }
  }
  log(`wrote ${relative(REPO_ROOT, files.json)}, ${relative(REPO_ROOT, files.markdown)}, bench/results/latest.json and latest.md`);
  const doc = updatePerformanceTable();
  if (doc) log(`updated the table in ${relative(REPO_ROOT, doc)}`);
}

main().catch((error: unknown) => {
  log(`failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
