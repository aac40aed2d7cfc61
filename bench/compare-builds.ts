/**
 * Compares two builds of inferd (two checkouts, each built with `npm run build`) on one bench
 * scenario's load, alternated over rounds: requests/s, and the HTTP thread's CPU per request read
 * from /proc. `npm run build && node dist/bench/compare-builds.js DIR_A DIR_B` (COMPARE_SCENARIO,
 * default churn-csv; ROUNDS, default 5; COMPARE_ENV_A / COMPARE_ENV_B, extra server environment
 * as JSON, to compare settings on one build; BENCH_MODELS_DIR). Issue 16's levers are measured
 * with it.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { ChildServer, freePort } from './child-server.js';
import { InferdModelDir } from './model-dirs.js';
import { SCENARIO_IDS, type ScenarioId } from './options.js';
import { defineScenarios } from './scenarios.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const modelsDir = process.env.BENCH_MODELS_DIR ?? join(root, '..', 'shared', 'models');
const scenarioId = (process.env.COMPARE_SCENARIO ?? 'churn-csv') as ScenarioId;
if (!SCENARIO_IDS.includes(scenarioId)) throw new Error(`COMPARE_SCENARIO: one of ${SCENARIO_IDS.join(', ')}`);
const scenario = defineScenarios(modelsDir)[scenarioId];
const [dirA, dirB] = process.argv.slice(2);
if (!dirA || !dirB) throw new Error('usage: node dist/bench/compare-builds.js DIR_A DIR_B');
const rounds = Number(process.env.ROUNDS ?? 5);
const extraEnv = { A: JSON.parse(process.env.COMPARE_ENV_A ?? '{}') as Record<string, string>, B: JSON.parse(process.env.COMPARE_ENV_B ?? '{}') as Record<string, string> };
const modelDir = await InferdModelDir.create(scenario.modelPath, scenario.batchingConfig ?? {});
const headers = { 'content-type': scenario.contentType, accept: scenario.accept };
const requests = scenario.buildBodies().map((body) => ({ method: 'POST' as const, headers, body }));

/** utime + stime of the process's main thread, in clock ticks (10 ms). */
function mainThreadTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

interface Measured {
  readonly rps: number;
  readonly usPerRequest: number;
  readonly non2xx: number;
}

async function measure(dir: string, env: Record<string, string>): Promise<Measured> {
  const port = await freePort();
  const server = await ChildServer.start(
    [resolve(dir, 'dist/src/main.js'), 'serve', '--model-dir', modelDir.path, '--port', String(port)],
    // One instance unless COMPARE_ENV_A/B say otherwise: builds from before and after a change of
    // the default layout then compare the same layout.
    { SAGEMAKER_CONTAINER_LOG_LEVEL: 'warn', INFERD_HOST: '127.0.0.1', SAGEMAKER_MODEL_SERVER_WORKERS: '1', ...env },
    port,
  );
  const run = (duration: number) =>
    new Promise<autocannon.Result>((resolve, reject) => autocannon({ url: `${server.url}/invocations`, connections: scenario.connections, duration, requests }, (e, r) => (e ? reject(e) : resolve(r))));
  await run(2);
  const before = mainThreadTicks(server.pid);
  const result = await run(6);
  const after = mainThreadTicks(server.pid);
  await server.stop();
  return { rps: result.requests.average, usPerRequest: ((after - before) * 10_000) / result.requests.total, non2xx: result.non2xx };
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const spread = (values: number[]) => `${median(values).toFixed(3)} (${Math.min(...values).toFixed(2)}-${Math.max(...values).toFixed(2)})`;

const results: Record<'A' | 'B', Measured[]> = { A: [], B: [] };
for (let round = 0; round < rounds; round += 1) {
  for (const [name, dir] of [['A', dirA], ['B', dirB]] as const) {
    const measured = await measure(dir, extraEnv[name]);
    results[name].push(measured);
    process.stdout.write(`${round} ${name} ${JSON.stringify(measured)}\n`);
  }
}
const rpsRatios = results.B.map((b, i) => b.rps / results.A[i]!.rps);
const cpuRatios = results.B.map((b, i) => b.usPerRequest / results.A[i]!.usPerRequest);
process.stdout.write(`B/A requests/s ${spread(rpsRatios)}; HTTP-thread us/request B/A ${spread(cpuRatios)}\n`);
await modelDir.remove();
