/**
 * Async inference end to end: 10,000 requests (one churn row each, inline CSV, 32 clients) into
 * a server child process, until every answer is written to local disk, on the embedded queue
 * (SQLite) and, when `.tools/bin/redis-server` is there (`npm test` installs it), on Redis
 * Streams. The same requests sent to `POST /invocations` first, by the same clients, are the
 * real-time baseline. Alternated over BENCH_ROUNDS rounds; reports acceptance and completion
 * rates, the ratio to real time within each run (median, min–max), and the time in backlog from
 * each request's own timestamps.
 *
 *   npm run bench:async
 *   BENCH_ASYNC_REQUESTS=2000 npm run bench:async
 *   BENCH_ASYNC_CPU_PROF=/tmp/prof npm run bench:async   (each server under `node --cpu-prof`,
 *     its profiles in that folder, for Chrome DevTools; the profiler slows it: read shares)
 *   BENCH_ASYNC_QUEUES=sqlite npm run bench:async   (only the queues named, comma-separated)
 *
 * Every request writes a new file, so the file system's cost of making one is part of what is
 * measured. On an ext4 without a journal (this project's machines) a file deleted in the last
 * 60 s to 6 min makes each new one cost more (the kernel steps over recently freed inodes): a
 * run just after `npm test`, another run, or a Redis run (which deletes its staged inputs)
 * measures that. docs/async.md#measured says how much.
 *
 * Results: bench/results/<timestamp>-async.{json,md}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChildServer, freePort } from './child-server.js';
import { readOptions, REPO_ROOT } from './options.js';
import { readCsvRows } from './payloads.js';
import { saveResults } from './report.js';
import { spread } from './stats.js';

const requests = Number(process.env.BENCH_ASYNC_REQUESTS ?? 10_000);
const cpuProfileDir = process.env.BENCH_ASYNC_CPU_PROF;
const CLIENTS = 32;
const options = readOptions(process.env);
const log = (message: string) => process.stderr.write(`${message}\n`);
const REDIS = join(REPO_ROOT, '.tools/bin/redis-server');

interface StatusBody {
  status: string;
  receivedTime: string;
  startedTime?: string;
  finishedTime?: string;
}

/** `count` calls of `task`, `clients` at a time; the wall time they took. */
async function drive(count: number, clients: number, task: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < count) await task(next++);
    }),
  );
  return (performance.now() - started) / 1000;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function completedCount(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('inferd_async_completed_total '));
  return line ? Number(line.split(' ')[1]) : 0;
}

async function startRedis(dir: string): Promise<{ url: string; process: ChildProcess }> {
  const port = await freePort();
  const child = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''], {
    stdio: 'ignore',
  });
  await sleep(500);
  return { url: `redis://127.0.0.1:${port}`, process: child };
}

interface QueueRun {
  readonly queue: string;
  readonly realtimeRps: number;
  readonly acceptedRps: number;
  readonly completedRps: number;
  readonly backlogMs: { p50: number; p95: number; max: number };
  readonly endToEndMs: { p50: number; p95: number; max: number };
  readonly failed: number;
}

async function measure(queue: 'sqlite' | 'redis', root: string, body: string): Promise<QueueRun> {
  const dir = await mkdtemp(join(root, `${queue}-`));
  const redis = queue === 'redis' ? await startRedis(dir) : undefined;
  const port = await freePort();
  const server = await ChildServer.start(
    [...(cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfileDir}`] : []), 'dist/src/main.js', 'serve'],
    {
      SAGEMAKER_BIND_TO_PORT: String(port),
      INFERD_HOST: '127.0.0.1',
      INFERD_MODEL_DIR: join(REPO_ROOT, 'models/churn-forest'),
      SAGEMAKER_CONTAINER_LOG_LEVEL: 'warn',
      INFERD_ASYNC_OUTPUT_PATH: join(dir, 'out'),
      INFERD_ASYNC_STATE_DIR: join(dir, 'state'),
      ...(redis ? { INFERD_ASYNC_REDIS_URL: redis.url, INFERD_ASYNC_INPUT_PATH: join(dir, 'staged') } : {}),
    },
    port,
  );
  try {
    const headers = { 'content-type': 'text/csv', accept: 'text/csv' };
    const realtimeS = await drive(requests, CLIENTS, async () => {
      const response = await fetch(`${server.url}/invocations`, { method: 'POST', headers, body });
      await response.arrayBuffer();
    });
    log(`${queue}: real time ${(requests / realtimeS).toFixed(0)} req/s`);

    const ids: string[] = [];
    const started = performance.now();
    const acceptS = await drive(requests, CLIENTS, async (i) => {
      const response = await fetch(`${server.url}/async-invocations`, { method: 'POST', headers: { ...headers, 'x-amzn-sagemaker-inference-id': `bench-${i}` }, body });
      if (response.status !== 202) throw new Error(`async request ${i}: ${response.status} ${await response.text()}`);
      ids[i] = ((await response.json()) as { InferenceId: string }).InferenceId;
    });
    log(`${queue}: accepted ${(requests / acceptS).toFixed(0)} req/s`);
    while ((await completedCount(server.url)) < requests) await sleep(50);
    const totalS = (performance.now() - started) / 1000;
    log(`${queue}: completed ${(requests / totalS).toFixed(0)} req/s end to end`);

    const backlog: number[] = [];
    const endToEnd: number[] = [];
    let failed = 0;
    await drive(requests, CLIENTS, async (i) => {
      const status = (await (await fetch(`${server.url}/async-invocations/${ids[i]}`)).json()) as StatusBody;
      if (status.status !== 'completed') failed++;
      const received = Date.parse(status.receivedTime);
      backlog.push(Date.parse(status.startedTime!) - received);
      endToEnd.push(Date.parse(status.finishedTime!) - received);
    });
    const spread = (values: number[]) => {
      values.sort((a, b) => a - b);
      return { p50: percentile(values, 50), p95: percentile(values, 95), max: values.at(-1)! };
    };
    return {
      queue,
      realtimeRps: requests / realtimeS,
      acceptedRps: requests / acceptS,
      completedRps: requests / totalS,
      backlogMs: spread(backlog),
      endToEndMs: spread(endToEnd),
      failed,
    };
  } finally {
    await server.stop();
    redis?.process.kill('SIGTERM');
  }
}

const { lines } = readCsvRows(join(options.modelsDir, 'churn-requests.csv'));
const body = `${lines[0]}\n`;
const root = await mkdtemp(join(tmpdir(), 'inferd-bench-async-'));
try {
  const named = (process.env.BENCH_ASYNC_QUEUES ?? 'sqlite,redis').split(',').map((queue) => queue.trim());
  const unknown = named.filter((queue) => queue !== 'sqlite' && queue !== 'redis');
  if (unknown.length > 0) throw new Error(`BENCH_ASYNC_QUEUES: unknown queue ${unknown.join(', ')}; name sqlite, redis or both`);
  const queues = (['sqlite', 'redis'] as const).filter((queue) => named.includes(queue) && (queue === 'sqlite' || existsSync(REDIS)));
  if (named.includes('redis') && !existsSync(REDIS)) log('no .tools/bin/redis-server (run `bash scripts/install-test-tools.sh`): Redis skipped');
  // Alternated, SQLite then Redis, round after round, each run real time then async on one fresh
  // server: the ratio is taken within a run, so a slowdown of the machine hits both sides of it.
  const runs: Array<QueueRun & { round: number }> = [];
  for (let round = 1; round <= options.rounds; round++) {
    for (const queue of queues) {
      const run = await measure(queue, root, body);
      log(`round ${round} / ${queue}: ${(run.completedRps / run.realtimeRps).toFixed(2)}x real time`);
      runs.push({ ...run, round });
    }
  }

  const result = {
    date: new Date().toISOString(),
    machine: { cores: availableParallelism(), cpu: cpus()[0]?.model ?? 'unknown' },
    requests,
    clients: CLIENTS,
    rounds: options.rounds,
    runs,
  };
  const ms = (value: number) => `${value.toFixed(0)} ms`;
  const range = (values: number[], format: (v: number) => string) => {
    const s = spread(values)!;
    return `${format(s.median)} (${format(s.min)}–${format(s.max)})`;
  };
  const count = (v: number) => Math.round(v).toLocaleString('en-US');
  const markdown = [
    `# Async inference benchmark, ${result.date}`,
    '',
    `${result.machine.cores} cores (${result.machine.cpu}); ${requests.toLocaleString('en-US')} requests of one churn row (inline CSV), ${CLIENTS} clients, churn forest, default workers and concurrency; answers written to local disk. ${options.rounds} rounds, each a fresh server per queue, real time then async; median (min–max) over the rounds, the ratio taken within each run.`,
    '',
    '| queue | real time req/s | async accepted req/s | async completed req/s (end to end) | vs real time | time in backlog p50 / p95 (median run) | failed |',
    '|---|--:|--:|--:|--:|--:|--:|',
    ...queues.map((queue) => {
      const mine = runs.filter((run) => run.queue === queue);
      const middle = [...mine].sort((a, b) => a.completedRps - b.completedRps)[mine.length >> 1]!;
      return `| ${queue} | ${range(mine.map((r) => r.realtimeRps), count)} | ${range(mine.map((r) => r.acceptedRps), count)} | ${range(mine.map((r) => r.completedRps), count)} | ${range(mine.map((r) => r.completedRps / r.realtimeRps), (v) => `${v.toFixed(2)}×`)} | ${ms(middle.backlogMs.p50)} / ${ms(middle.backlogMs.p95)} | ${mine.reduce((sum, r) => sum + r.failed, 0)} |`;
    }),
    '',
    `Reproduce: \`BENCH_ROUNDS=${options.rounds} BENCH_ASYNC_REQUESTS=${requests}${process.env.BENCH_ASYNC_QUEUES ? ` BENCH_ASYNC_QUEUES=${process.env.BENCH_ASYNC_QUEUES}` : ''} npm run bench:async\`.`,
    '',
  ].join('\n');
  await saveResults('async', result.date, result, markdown);
} finally {
  await rm(root, { recursive: true, force: true });
}
