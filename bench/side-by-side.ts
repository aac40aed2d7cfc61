/**
 * Builds and settings of inferd (and the batched reference) on one bench scenario's load, all
 * served at once and measured in turns of short windows: requests/s, and per thread the CPU time
 * per request read from /proc, with each target's ratio to the first as the median of the turns'
 * ratios and its quartiles.
 *
 * Why: compare-builds.ts starts a fresh server for every round, so a round is a dozen seconds
 * and two builds' rounds are far enough apart for this machine to change speed between them.
 * Here the servers stay up and a turn is a few seconds, so adjacent windows see the same
 * machine. The same build against itself gave 1.033 (quartiles 1.01-1.06) in 12 turns: read a
 * change under about 5% as none. An idle server costs the measured one nearly nothing: inferd's
 * workers wait on a futex, its HTTP thread in epoll.
 *
 * `npm run build && node dist/bench/side-by-side.js TARGET TARGET [TARGET ...]`, each TARGET
 * `LABEL=DIR` (a checkout built with `npm run build`; `LABEL=DIR?NAME=VALUE&NAME=VALUE` adds
 * server environment, to compare settings on one build) or `reference` (churn-csv only). TURNS,
 * default 12; WINDOW_S, default 3; COMPARE_SCENARIO, default churn-csv; BENCH_MODELS_DIR.
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { ChildServer, freePort } from './child-server.js';
import { sampleThreads, threadCpu } from './cpu.js';
import { InferdModelDir } from './model-dirs.js';
import { SCENARIO_IDS, type ScenarioId } from './options.js';
import { defineScenarios } from './scenarios.js';
import { median, medianWithQuartiles } from './stats.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const modelsDir = process.env.BENCH_MODELS_DIR ?? join(root, '..', 'shared', 'models');
const scenarioId = (process.env.COMPARE_SCENARIO ?? 'churn-csv') as ScenarioId;
if (!SCENARIO_IDS.includes(scenarioId)) throw new Error(`COMPARE_SCENARIO: one of ${SCENARIO_IDS.join(', ')}`);
const scenario = defineScenarios(modelsDir)[scenarioId];
const turns = Number(process.env.TURNS ?? 12);
const windowS = Number(process.env.WINDOW_S ?? 3);
const WARM_UP_S = 2;
const REFERENCE = 'reference';

interface Target {
  readonly label: string;
  readonly start: (port: number) => Promise<ChildServer>;
}

const modelDir = await InferdModelDir.create(scenario.modelPath, scenario.batchingConfig ?? {});

function targetOf(arg: string): Target {
  if (arg === REFERENCE) {
    return { label: REFERENCE, start: (port) => ChildServer.start([join(root, 'dist/bench/baselines/batched-server.js'), '--model', scenario.modelPath, '--port', String(port)], {}, port) };
  }
  const match = /^([^=]+)=([^?]+)(?:\?(.*))?$/.exec(arg);
  if (!match) throw new Error(`a target is LABEL=DIR[?NAME=VALUE&...] or ${REFERENCE}, got "${arg}"`);
  const [, label, dir, query] = match;
  // As a user gets it, and as `npm run bench` runs it: its defaults, an instance per core.
  const env = { INFERD_HOST: '127.0.0.1', SAGEMAKER_CONTAINER_LOG_LEVEL: 'warn', ...Object.fromEntries(new URLSearchParams(query ?? '')) };
  return { label: label!, start: (port) => ChildServer.start([resolve(dir!, 'dist/src/main.js'), 'serve', '--model-dir', modelDir.path, '--port', String(port)], env, port) };
}

const targets = process.argv.slice(2).map(targetOf);
if (targets.length < 2) throw new Error('usage: node dist/bench/side-by-side.js TARGET TARGET [TARGET ...]');

const headers = { 'content-type': scenario.contentType, accept: scenario.accept };
const requests = scenario.buildBodies().map((body) => ({ method: 'POST' as const, headers, body }));
const load = (url: string, durationS: number) =>
  new Promise<autocannon.Result>((resolve, reject) =>
    autocannon({ url: `${url}/invocations`, connections: scenario.connections, duration: durationS, requests }, (error, result) => (error ? reject(error) : resolve(result))),
  );

interface Window {
  readonly rps: number;
  readonly mainUs: number;
  readonly otherUs: number;
}

async function measure(server: ChildServer): Promise<Window> {
  const before = sampleThreads(server.pid);
  const result = await load(server.url, windowS);
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${result.non2xx} non-2xx answers and ${result.errors} errors`);
  const cpu = threadCpu(before, sampleThreads(server.pid), result.requests.total);
  if (cpu === null) throw new Error('cannot read the server\'s threads from /proc');
  return { rps: result.requests.average, mainUs: cpu.mainUsPerRequest, otherUs: cpu.otherThreads.reduce((sum, thread) => sum + thread.usPerRequest, 0) };
}

const servers: ChildServer[] = [];
try {
  for (const target of targets) {
    const server = await target.start(await freePort());
    servers.push(server);
    await load(server.url, WARM_UP_S);
  }
  const windows: Window[][] = targets.map(() => []);
  for (let turn = 0; turn < turns; turn += 1) {
    // The order rotates each turn, so that no target always follows the same one.
    for (let k = 0; k < targets.length; k += 1) {
      const index = (k + turn) % targets.length;
      windows[index]!.push(await measure(servers[index]!));
    }
  }
  process.stdout.write(`${scenarioId}, ${turns} turns of ${windowS} s, ${scenario.connections} connections; median (quartiles) of the turns' ratios to ${targets[0]!.label}\n`);
  targets.forEach((target, index) => {
    const own = windows[index]!;
    const first = windows[0]!;
    process.stdout.write(
      `${target.label}: ${Math.round(median(own.map((w) => w.rps)))} requests/s, ${medianWithQuartiles(own.map((w, turn) => w.rps / first[turn]!.rps))}; ` +
        `µs a request: HTTP thread ${median(own.map((w) => w.mainUs)).toFixed(1)}, other threads ${median(own.map((w) => w.otherUs)).toFixed(1)}\n`,
    );
  });
} finally {
  for (const server of servers) await server.stop();
  await modelDir.remove();
}
