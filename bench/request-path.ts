/**
 * Compares the HTTP thread's CPU per request of two or more builds of inferd on one scenario,
 * with no sockets and all builds in one process: each build's app (buildApp, its own workers)
 * takes the scenario's bodies through Fastify's `inject` from 64 concurrent callers, and the
 * builds take turns in short slices (A, B, A, B, ...; the order rotates each pair).
 *
 * Why: on this machine a build's requests/s moves by 20% between rounds of a few seconds and by
 * 2x between minutes, so the socket benchmarks (compare-builds.ts, batched-reference.ts) need
 * many minutes to tell apart changes of a few percent. Slices of a second or two, alternated
 * within one process, see the same machine; the median of many pairs' ratios resolves a change
 * of about 2-3% in a minute. What it measures is what a build controls: routing, hooks, the body
 * parser, negotiation, codecs, the batcher and the hand-off to the pool. It leaves out the HTTP
 * parser and the socket writes, the same in every build, and adds light-my-request's own cost to
 * each; so it gives the saving of a change in µs a request, not the server's requests/s.
 *
 * `npm run build && node dist/bench/request-path.js TARGET TARGET [TARGET ...]`, each TARGET a
 * checkout built with `npm run build`, or `reference` for the batched reference
 * (baselines/batched-app.ts; churn-csv only). PAIRS, default 60; REQUESTS_PER_SLICE, default
 * 2000; COMPARE_SCENARIO, default churn-csv; BENCH_MODELS_DIR.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { App } from '../src/app.js';
import type { loadConfig as LoadConfig } from '../src/config/load-config.js';
import { buildBatchedReference } from './baselines/batched-app.js';
import { InferdModelDir } from './model-dirs.js';
import { SCENARIO_IDS, type ScenarioId } from './options.js';
import { defineScenarios } from './scenarios.js';
import { median, medianWithQuartiles } from './stats.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const modelsDir = process.env.BENCH_MODELS_DIR ?? join(root, '..', 'shared', 'models');
const scenarioId = (process.env.COMPARE_SCENARIO ?? 'churn-csv') as ScenarioId;
if (!SCENARIO_IDS.includes(scenarioId)) throw new Error(`COMPARE_SCENARIO: one of ${SCENARIO_IDS.join(', ')}`);
const scenario = defineScenarios(modelsDir)[scenarioId];
const REFERENCE = 'reference';
const targets = process.argv.slice(2).map((target) => (target === REFERENCE ? target : resolve(target)));
if (targets.length < 2) throw new Error('usage: node dist/bench/request-path.js TARGET TARGET [TARGET ...] (a built checkout, or reference)');
const pairs = Number(process.env.PAIRS ?? 60);
const requestsPerSlice = Number(process.env.REQUESTS_PER_SLICE ?? 2000);
const WARM_UP_REQUESTS = 3000;

const headers = { 'content-type': scenario.contentType, accept: scenario.accept };
const bodies = scenario.buildBodies();
const modelDir = await InferdModelDir.create(scenario.modelPath, scenario.batchingConfig ?? {});

async function start(target: string): Promise<FastifyInstance> {
  if (target === REFERENCE) return buildBatchedReference(scenario.modelPath);
  const app = await startBuild(target);
  return app.http;
}

async function startBuild(dir: string): Promise<App> {
  const { buildApp } = (await import(pathToFileURL(join(dir, 'dist/src/app.js')).href)) as typeof import('../src/app.js');
  const { loadConfig } = (await import(pathToFileURL(join(dir, 'dist/src/config/load-config.js')).href)) as { loadConfig: typeof LoadConfig };
  // As served: the defaults, an instance per core; only warnings are logged.
  const app = buildApp(loadConfig({ env: { ...process.env, INFERD_MODEL_DIR: modelDir.path, SAGEMAKER_CONTAINER_LOG_LEVEL: 'warn' } }));
  await app.http.ready();
  await app.start();
  return app;
}

/** Nanoseconds this process's main thread has run, from the scheduler's own account. */
const mainThreadRunNs = () => Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]);

interface Slice {
  /** The HTTP thread's CPU, µs a request. */
  readonly mainUs: number;
  /** Every thread of the process (the workers, V8's helpers), µs a request. */
  readonly allUs: number;
}

async function slice(app: FastifyInstance, requests: number): Promise<Slice> {
  let sent = 0;
  let failed = 0;
  const caller = async () => {
    while (sent < requests) {
      const payload = bodies[sent % bodies.length]!;
      sent += 1;
      const response = await app.inject({ method: 'POST', url: '/invocations', headers, payload });
      if (response.statusCode !== 200) failed += 1;
    }
  };
  const cpuBefore = process.cpuUsage();
  const mainBefore = mainThreadRunNs();
  await Promise.all(Array.from({ length: scenario.connections }, caller));
  const cpu = process.cpuUsage(cpuBefore);
  const mainNs = mainThreadRunNs() - mainBefore;
  if (failed > 0) throw new Error(`${failed} of ${requests} requests failed`);
  return { mainUs: mainNs / 1000 / requests, allUs: (cpu.user + cpu.system) / requests };
}

const apps: FastifyInstance[] = [];
try {
  for (const target of targets) apps.push(await start(target));
  for (const app of apps) await slice(app, WARM_UP_REQUESTS);
  const slices: Slice[][] = apps.map(() => []);
  for (let pair = 0; pair < pairs; pair += 1) {
    for (let turn = 0; turn < apps.length; turn += 1) {
      const build = (turn + pair) % apps.length;
      slices[build]!.push(await slice(apps[build]!, requestsPerSlice));
    }
  }
  process.stdout.write(`${scenarioId}, ${pairs} pairs of ${requestsPerSlice}-request slices, ${scenario.connections} concurrent callers\n`);
  const first = slices[0]!;
  targets.forEach((target, build) => {
    const own = slices[build]!;
    const main = own.map((s) => s.mainUs);
    const all = own.map((s) => s.allUs);
    process.stdout.write(
      `${target}\n  HTTP thread ${median(main).toFixed(1)} µs/request, against the first: ${medianWithQuartiles(own.map((s, i) => s.mainUs / first[i]!.mainUs))}, ` +
        `difference ${medianWithQuartiles(own.map((s, i) => s.mainUs - first[i]!.mainUs))} µs\n` +
        `  all threads ${median(all).toFixed(1)} µs/request, against the first: ${medianWithQuartiles(own.map((s, i) => s.allUs / first[i]!.allUs))}\n`,
    );
  });
} finally {
  for (const app of apps) await app.close();
  await modelDir.remove();
}
