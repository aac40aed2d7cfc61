/**
 * inferd against the batched reference (baselines/batched-server.ts: its architecture with none of
 * its features) and the node:http baseline, on the churn scenario's load, alternated over rounds:
 * requests/s, and per thread the CPU time per request read from /proc. It answers whether what
 * inferd lacks against a goal is the stack's or its own: the reference runs on the same Fastify,
 * Piscina and ONNX Runtime, parses as the baselines do and holds batches as inferd does.
 * Unlike `npm run bench`, it does not compare the targets' answers before measuring: the reference
 * answers the churn rows byte for byte as inferd does (checked when it was written).
 * `npm run build && node dist/bench/batched-reference.js [DIR ...]` (ROUNDS, default 5;
 * BENCH_MODELS_DIR); each DIR, another checkout built with `npm run build`, runs alongside as one
 * more target, to measure a change against this build and the reference in the same rounds.
 */
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { ChildServer, freePort } from './child-server.js';
import { sampleThreads, threadCpu, type ThreadCpu } from './cpu.js';
import { InferdModelDir } from './model-dirs.js';
import { defineScenarios } from './scenarios.js';
import { spread, type Spread } from './stats.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const modelsDir = process.env.BENCH_MODELS_DIR ?? join(root, '..', 'shared', 'models');
const scenario = defineScenarios(modelsDir)['churn-csv'];
const rounds = Number(process.env.ROUNDS ?? 5);
const WARM_UP_S = 2;
const MEASURED_S = 6;
/** Node's own threads (V8's GC and compiler helpers, libuv's pool) start within about 60 ms of the process here, worker threads after a model loads (the reference 210 ms, inferd 700 ms). */
const OWN_THREADS_WITHIN_MS = 120;

const modelDir = await InferdModelDir.create(scenario.modelPath, scenario.batchingConfig ?? {});
const headers = { 'content-type': scenario.contentType, accept: scenario.accept };
const requests = scenario.buildBodies().map((body) => ({ method: 'POST' as const, headers, body }));

// As a user gets it, and as `npm run bench` runs it: its defaults, an instance per core.
const inferdIn = (checkout: string) => (port: number) =>
  ChildServer.start([join(checkout, 'dist/src/main.js'), 'serve', '--model-dir', modelDir.path, '--port', String(port)], { INFERD_HOST: '127.0.0.1' }, port);
const otherBuilds = process.argv.slice(2).map((dir) => resolve(dir));

const starts: Record<string, (port: number) => Promise<ChildServer>> = {
  inferd: inferdIn(root),
  'batched reference': (port) => ChildServer.start([join(root, 'dist/bench/baselines/batched-server.js'), '--model', scenario.modelPath, '--port', String(port)], {}, port),
  // One ONNX Runtime thread: what `npm run bench` picks for churn's one-row requests (latest.md's notes).
  'node:http baseline': (port) =>
    ChildServer.start([join(root, 'dist/bench/baselines/node-http-inline.js'), '--model', scenario.modelPath, '--port', String(port), '--threads', '1'], {}, port),
  ...Object.fromEntries(otherBuilds.map((dir) => [dir, inferdIn(dir)])),
};
const targets = Object.keys(starts);

interface Round {
  readonly rps: number;
  readonly non2xx: number;
  readonly cpu: ThreadCpu;
}

function load(url: string, durationS: number): Promise<autocannon.Result> {
  return new Promise((resolve, reject) =>
    autocannon({ url: `${url}/invocations`, connections: scenario.connections, duration: durationS, requests }, (error, result) => (error ? reject(error) : resolve(result))),
  );
}

async function measure(target: string): Promise<Round> {
  const server = await starts[target]!(await freePort());
  try {
    await load(server.url, WARM_UP_S);
    const before = sampleThreads(server.pid);
    const result = await load(server.url, MEASURED_S);
    const cpu = threadCpu(before, sampleThreads(server.pid), result.requests.total);
    if (cpu === null) throw new Error(`cannot read the threads of ${target} from /proc`);
    return { rps: result.requests.average, non2xx: result.non2xx, cpu };
  } finally {
    await server.stop();
  }
}

const us = (value: number) => value.toFixed(1);
const shown = (s: Spread | null, digits = 2) => (s === null ? '-' : `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}-${s.max.toFixed(digits)})`);
const ownThreads = (cpu: ThreadCpu) => cpu.otherThreads.filter((t) => t.startedAfterMainMs < OWN_THREADS_WITHIN_MS).reduce((sum, t) => sum + t.usPerRequest, 0);
const workerThreads = (cpu: ThreadCpu) => cpu.otherThreads.filter((t) => t.startedAfterMainMs >= OWN_THREADS_WITHIN_MS).reduce((sum, t) => sum + t.usPerRequest, 0);

const results = new Map<string, Round[]>(targets.map((target) => [target, []]));
for (let round = 0; round < rounds; round += 1) {
  for (const target of targets) {
    const measured = await measure(target);
    results.get(target)!.push(measured);
    const { cpu } = measured;
    process.stdout.write(
      `${round} ${target}: ${Math.round(measured.rps)} req/s, non-2xx ${measured.non2xx}; us/request: HTTP thread ${us(cpu.mainUsPerRequest)}, workers ${us(workerThreads(cpu))}, Node's own threads ${us(ownThreads(cpu))}\n`,
    );
  }
}

const ratio = (a: string, b: string) => spread(results.get(a)!.map((r, i) => r.rps / results.get(b)![i]!.rps));
process.stdout.write(`\nrequests/s, median (min-max) of ${rounds} alternated rounds:\n`);
process.stdout.write(`  inferd / node:http baseline            ${shown(ratio('inferd', 'node:http baseline'))}\n`);
process.stdout.write(`  batched reference / node:http baseline ${shown(ratio('batched reference', 'node:http baseline'))}\n`);
process.stdout.write(`  inferd / batched reference             ${shown(ratio('inferd', 'batched reference'))}\n`);
for (const dir of otherBuilds) process.stdout.write(`  ${dir} / inferd: ${shown(ratio(dir, 'inferd'))}\n`);
process.stdout.write('us/request, median (min-max):\n');
for (const target of targets) {
  const rows = results.get(target)!;
  process.stdout.write(
    `  ${target}: HTTP thread ${shown(spread(rows.map((r) => r.cpu.mainUsPerRequest)), 1)}, workers ${shown(spread(rows.map((r) => workerThreads(r.cpu))), 1)}, Node's own threads ${shown(spread(rows.map((r) => ownThreads(r.cpu))), 1)}\n`,
  );
}
await modelDir.remove();
