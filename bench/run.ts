/**
 * `npm run bench`: every selected scenario against every target, one target at a time, each in
 * its own child process on this machine; results in bench/results/.
 *
 * Environment:
 *   BENCH_DURATION_S    measured seconds per target (8); the in-process ceiling splits it over its batch sizes
 *   BENCH_WARMUP_S      unmeasured load before each measurement (2)
 *   BENCH_SCENARIOS     comma-separated subset of churn-csv,mlp-json,text-json,mobilenet-npy
 *   BENCH_INFERD_ENV    JSON object of extra environment for both inferd targets
 *   BENCH_PROVIDER      cpu (default) or cuda; BENCH_DEVICE is accepted as a synonym
 *   BENCH_MODELS_DIR    where the models and churn-requests.csv are (../shared/models)
 */
import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import { StartFailure, type ChildServer } from './child-server.js';
import { cpuUse, sampleCpu } from './cpu.js';
import { loadRequests, runLoad } from './load.js';
import { InferdModelDir } from './model-dirs.js';
import { REPO_ROOT, benchEnvironment, readOptions, type BenchOptions } from './options.js';
import { startPingProber } from './ping-prober.js';
import {
  describeMachine,
  reproducingCommand,
  writeResults,
  type CeilingTargetResult,
  type Failure,
  type HttpTargetResult,
  type InferdModelInfo,
  type ScenarioResult,
} from './report.js';
import { defineScenarios, type Scenario } from './scenarios.js';
import {
  IN_PROCESS_CEILING_LABEL,
  defaultServerThreads,
  httpTargets,
  runInProcessCeiling,
  type HttpTarget,
  type ServerThreads,
  type TargetContext,
} from './targets.js';

/** Busy cores outside the harness and the server above which a measurement is flagged. */
const NOISY_OTHER_CORES = 0.25;

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

async function measureHttpTarget(target: HttpTarget, context: TargetContext, bodies: readonly Buffer[]): Promise<HttpTargetResult> {
  const { scenario, options } = context;
  let server: ChildServer;
  try {
    server = await target.start(context);
  } catch (error) {
    return { id: target.id, label: target.label, ...failure(error) };
  }
  try {
    const inferd = target.id.startsWith('inferd') ? await inferdModelInfo(server.url) : undefined;
    const requests = loadRequests(scenario, bodies);
    await runLoad(server.url, scenario, requests, options.warmupS);
    const prober = startPingProber(server.url);
    const cpuBefore = sampleCpu(server.pid);
    const load = await runLoad(server.url, scenario, requests, options.durationS);
    const cpu = cpuUse(cpuBefore, sampleCpu(server.pid));
    const ping = await prober.stop();
    return { id: target.id, label: target.label, ok: true, load, ping, cpu, ...(inferd && { inferd }) };
  } catch (error) {
    return { id: target.id, label: target.label, ...failure(error) };
  } finally {
    await server.stop();
  }
}

async function measureInProcessCeiling(scenario: Scenario, options: BenchOptions, threads: ServerThreads): Promise<CeilingTargetResult> {
  try {
    const result = await runInProcessCeiling(scenario, options, threads);
    log(`${scenario.id} / ${IN_PROCESS_CEILING_LABEL}: ${Math.round(result.best?.rowsPerS ?? 0)} rows/s at batch ${result.best?.batchSize ?? '-'}`);
    return { label: IN_PROCESS_CEILING_LABEL, ok: true, result };
  } catch (error) {
    log(`${scenario.id} / ${IN_PROCESS_CEILING_LABEL}: FAILED ${(error as Error).message}`);
    return { label: IN_PROCESS_CEILING_LABEL, ...failure(error) };
  }
}

function summaryLine(scenario: Scenario, result: HttpTargetResult): string {
  if (!result.ok) return `${scenario.id} / ${result.label}: FAILED ${result.error}`;
  const { load, ping } = result;
  return (
    `${scenario.id} / ${result.label}: ${Math.round(load.requestsPerS)} req/s, p99 ${load.latencyMs.p99} ms, ` +
    `non-2xx ${load.non2xx}, errors ${load.errors}, /ping p99 ${ping.p99Ms?.toFixed(1) ?? '-'} ms`
  );
}

async function runScenario(scenario: Scenario, options: BenchOptions): Promise<ScenarioResult> {
  const notes: string[] = [];
  const base = {
    id: scenario.id,
    title: scenario.title,
    model: relative(REPO_ROOT, scenario.modelPath),
    contentType: scenario.contentType,
    connections: scenario.connections,
    rowsPerRequest: scenario.rowsPerRequest,
  };
  let bodies: Buffer[];
  try {
    if (!existsSync(scenario.modelPath)) throw new Error(`model not found: ${scenario.modelPath}`);
    bodies = scenario.buildBodies();
  } catch (error) {
    log(`${scenario.id}: skipped, ${(error as Error).message}`);
    return { ...base, distinctBodies: 0, notes: [`Skipped: ${(error as Error).message}`], targets: [] };
  }

  const modelDir = await InferdModelDir.create(scenario.modelPath, {
    ...(options.provider === 'cuda' && { executionProvider: 'cuda' }),
    ...scenario.batchingConfig,
  });
  try {
    let threads: ServerThreads = defaultServerThreads(options);
    const targets: HttpTargetResult[] = [];
    for (const target of httpTargets(options).filter((t) => t.appliesTo?.(scenario) ?? true)) {
      const result = await measureHttpTarget(target, { scenario, options, modelDir, threads, notes }, bodies);
      log(summaryLine(scenario, result));
      targets.push(result);
      if (result.ok && result.inferd) {
        // What inferd really ran with beats the documented default, for the baseline and ceiling.
        threads = { workers: result.inferd.instances, intraOpNumThreads: result.inferd.intraOpNumThreads };
        const fallback = `inferd asked for ${result.inferd.requestedProvider} but ran on ${result.inferd.provider}.`;
        if (result.inferd.provider !== result.inferd.requestedProvider && !notes.includes(fallback)) notes.push(fallback);
      }
    }
    const disturbed = targets.filter((t) => t.ok && (t.cpu.otherCores ?? 0) > NOISY_OTHER_CORES).map((t) => t.label);
    if (disturbed.length > 0) notes.push(`Other processes were busy during ${disturbed.join('; ')} (see "other cores"): those figures are noisy.`);
    const inProcessCeiling = scenario.ceiling ? await measureInProcessCeiling(scenario, options, threads) : undefined;
    return { ...base, distinctBodies: bodies.length, notes, targets, ...(inProcessCeiling && { inProcessCeiling }) };
  } finally {
    await modelDir.remove();
  }
}

async function main(): Promise<void> {
  const options = readOptions();
  const startedAt = new Date();
  const machine = describeMachine();
  log(`${machine.cpuModel}, ${machine.cores} cores; scenarios ${options.scenarioIds.join(', ')}; ${options.durationS} s per target`);
  const scenarios = defineScenarios(options.modelsDir);
  const results: ScenarioResult[] = [];
  for (const id of options.scenarioIds) results.push(await runScenario(scenarios[id], options));
  const files = writeResults({
    startedAt: startedAt.toISOString(),
    elapsedS: (Date.now() - startedAt.getTime()) / 1000,
    command: reproducingCommand(benchEnvironment()),
    machine,
    settings: { durationS: options.durationS, warmupS: options.warmupS, provider: options.provider, inferdEnv: options.inferdEnv },
    scenarios: results,
  });
  log(`wrote ${relative(REPO_ROOT, files.json)}, ${relative(REPO_ROOT, files.markdown)} and bench/results/latest.md`);
}

main().catch((error: unknown) => {
  log(`failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
