/**
 * Many models on one server: a repository of 20 copies of one churn model, a memory budget that
 * holds 5 of them, and Zipf-distributed traffic over the 20 (rank k drawn with probability
 * proportional to 1 / k^s). The same request stream (same seed, same bodies) sent to one
 * preloaded model of the same repository is the baseline. The two targets alternate in one run,
 * many, one, many, one…, each round in fresh server child processes, so that every round starts
 * from the same cold cache; the report gives the median ratio of requests/s with its spread.
 *
 *   npm run bench:many-models
 *   BENCH_DURATION_S=5 BENCH_ROUNDS=2 npm run bench:many-models
 *
 * Environment:
 *   BENCH_ROUNDS              rounds, each both targets (3)
 *   BENCH_DURATION_S          measured seconds per target and round (10)
 *   BENCH_WARMUP_S            unmeasured load before each measurement, same server (2)
 *   BENCH_MODEL_COUNT         models in the repository (20)
 *   BENCH_BUDGET_MODELS       how many of them the memory budget holds (5)
 *   BENCH_ZIPF_S              the Zipf exponent s (1.0; 0 is uniform)
 *   BENCH_SEED                seed of the request stream (1)
 *   BENCH_CONNECTIONS         concurrent connections, each sending back to back (8)
 *   BENCH_MANY_MODELS_MODEL   churn-forest (default) or churn-mlp, from the repository's models/
 *   BENCH_INFERD_ENV          JSON object of extra environment for both targets
 *   BENCH_MODELS_DIR          where churn-requests.csv is (../shared/models)
 *
 * Which requests triggered a load. The server counts, per request, whether the model it named
 * was loaded when the request reached the data plane (inferd_model_cache_hits_total and
 * _misses_total), but it does not say which request was which, and src/ is not changed for a
 * benchmark. So the harness reads the server's own log (info level, the same clock: one host):
 * "model M ready" says when M began to take requests, "evicting model M" when it stopped. A
 * request is *warm* when its model was ready, by that log, from before it was sent until after
 * its answer came back (both ends widened by the log's 1 ms resolution); the server cannot have
 * loaded anything for it. Every other request is *cold*: its model was loading, unloading or
 * absent at some moment while it was in flight. The rule errs only towards cold, and only for a
 * request sent in the instant between a model becoming ready and the request reaching the server
 * (or within the same millisecond as a transition); the report prints the client's cold count
 * next to the server's miss count for the same window, and the server's hit ratio beside the
 * client's. Polling GET /models before each request would be racy and would load the server.
 *
 * Results: bench/results/<timestamp>-many-models.{json,md}.
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request, type OutgoingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChildServer, freePort } from './child-server.js';
import { cpuUse, sampleCpu, type CpuUse } from './cpu.js';
import { benchEnvironment, positiveNumber, readOptions, REPO_ROOT } from './options.js';
import { readCsvRows, seededRandom } from './payloads.js';
import { describeMachine, reproducingCommand, saveResults } from './report.js';

const log = (message: string) => process.stderr.write(`[many-models] ${message}\n`);

const MODEL_MEMORY_MB = 10;
/** Room for `budgetModels` declared footprints, not for one more. */
const BUDGET_SLACK_MB = MODEL_MEMORY_MB / 2;
/** Requests planned per stream; connections wrap around it if they ever get that far. */
const STREAM_LENGTH = 1 << 18;
const MODEL_SOURCES = ['churn-forest', 'churn-mlp'] as const;

type TargetId = 'many-models' | 'one-model';
const TARGETS: readonly TargetId[] = ['many-models', 'one-model'];

interface Settings {
  readonly rounds: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly modelCount: number;
  readonly budgetModels: number;
  readonly zipfS: number;
  readonly seed: number;
  readonly connections: number;
  readonly model: (typeof MODEL_SOURCES)[number];
  readonly modelMemoryMb: number;
  readonly budgetMb: number;
  readonly inferdEnv: Readonly<Record<string, string>>;
  readonly requestsCsv: string;
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = positiveNumber(env, name, fallback);
  if (!Number.isInteger(value)) throw new Error(`${name} must be a whole number, got "${env[name]}"`);
  return value;
}

function readSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const options = readOptions(env);
  const modelCount = integer(env, 'BENCH_MODEL_COUNT', 20);
  const budgetModels = integer(env, 'BENCH_BUDGET_MODELS', 5);
  if (budgetModels >= modelCount) throw new Error('BENCH_BUDGET_MODELS must be smaller than BENCH_MODEL_COUNT');
  const zipfS = env.BENCH_ZIPF_S === undefined || env.BENCH_ZIPF_S === '' ? 1 : Number(env.BENCH_ZIPF_S);
  if (!Number.isFinite(zipfS) || zipfS < 0) throw new Error(`BENCH_ZIPF_S must be a number >= 0, got "${env.BENCH_ZIPF_S}"`);
  const model = (env.BENCH_MANY_MODELS_MODEL ?? 'churn-forest') as Settings['model'];
  if (!MODEL_SOURCES.includes(model)) throw new Error(`BENCH_MANY_MODELS_MODEL must be one of ${MODEL_SOURCES.join(', ')}`);
  return {
    rounds: integer(env, 'BENCH_ROUNDS', 3),
    durationS: positiveNumber(env, 'BENCH_DURATION_S', 10),
    warmupS: options.warmupS,
    modelCount,
    budgetModels,
    zipfS,
    seed: Number.parseInt(env.BENCH_SEED ?? '1', 10) || 1,
    connections: integer(env, 'BENCH_CONNECTIONS', 8),
    model,
    modelMemoryMb: MODEL_MEMORY_MB,
    budgetMb: budgetModels * MODEL_MEMORY_MB + BUDGET_SLACK_MB,
    inferdEnv: options.inferdEnv,
    requestsCsv: join(options.modelsDir, 'churn-requests.csv'),
  };
}

// ---------------------------------------------------------------------------------------------
// The request stream

/** Draws ranks 0..n-1 with probability proportional to 1 / (rank + 1)^s. */
function zipf(n: number, s: number, random: () => number): () => number {
  const weights = Array.from({ length: n }, (_, k) => 1 / (k + 1) ** s);
  const total = weights.reduce((a, b) => a + b, 0);
  const cdf: number[] = [];
  let sum = 0;
  for (const weight of weights) cdf.push((sum += weight / total));
  return () => {
    const u = random();
    let low = 0;
    let high = n - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (cdf[mid]! < u) low = mid + 1;
      else high = mid;
    }
    return low;
  };
}

/** The model rank of each request; request i carries body i mod the number of bodies. */
function planStream(settings: Settings): Uint16Array {
  const draw = zipf(settings.modelCount, settings.zipfS, seededRandom(settings.seed));
  return Uint16Array.from({ length: STREAM_LENGTH }, draw);
}

/** Rank 0 is the most requested model. */
const modelName = (rank: number) => `m${String(rank + 1).padStart(2, '0')}`;

/** The share of requests the first `k` ranks get, by the distribution itself. */
function topShare(settings: Settings, k: number): number {
  const weights = Array.from({ length: settings.modelCount }, (_, rank) => 1 / (rank + 1) ** settings.zipfS);
  return weights.slice(0, k).reduce((a, b) => a + b, 0) / weights.reduce((a, b) => a + b, 0);
}

/**
 * The hit ratio of a least-recently-used cache of `capacity` models on the first `requests` of
 * the stream, one request at a time: what the budget would give without concurrency, where no
 * load is in flight while others are answered.
 */
function sequentialLruHitRatio(stream: Uint16Array, capacity: number, requests: number): number {
  const cache: number[] = [];
  let hits = 0;
  for (let i = 0; i < requests; i++) {
    const rank = stream[i % stream.length]!;
    const at = cache.indexOf(rank);
    if (at >= 0) {
      hits++;
      cache.splice(at, 1);
    } else if (cache.length === capacity) {
      cache.shift();
    }
    cache.push(rank);
  }
  return hits / requests;
}

// ---------------------------------------------------------------------------------------------
// The server's own account: its log and its counters

interface LoadEvent {
  readonly model: string;
  readonly atMs: number;
  readonly loadMs: number;
}

/** When each model was ready to take requests, from the server's info log lines. */
class ReadyTimeline {
  readonly #decoder = new TextDecoder();
  #pending = '';
  /** Per model, [from, to) in epoch milliseconds; `to` is Infinity while it stays ready. */
  readonly #intervals = new Map<string, { from: number; to: number }[]>();
  readonly loads: LoadEvent[] = [];
  readonly evictions: { readonly model: string; readonly atMs: number }[] = [];
  loadFailures = 0;

  write(chunk: Buffer): void {
    this.#pending += this.#decoder.decode(chunk, { stream: true });
    const lines = this.#pending.split('\n');
    this.#pending = lines.pop()!;
    for (const line of lines) this.#line(line);
  }

  #line(line: string): void {
    if (!line.startsWith('{')) return;
    let entry: { time?: unknown; model?: unknown; msg?: unknown; loadMs?: unknown; for?: unknown; reason?: unknown };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      return;
    }
    const { time, model, msg } = entry;
    if (typeof time !== 'number' || typeof model !== 'string' || typeof msg !== 'string') return;
    if (msg.startsWith(`model ${model} ready`) && typeof entry.loadMs === 'number') {
      this.#close(model, time);
      const intervals = this.#intervals.get(model) ?? [];
      intervals.push({ from: time, to: Number.POSITIVE_INFINITY });
      this.#intervals.set(model, intervals);
      this.loads.push({ model, atMs: time, loadMs: entry.loadMs });
    } else if (msg.startsWith('evicting model') && typeof entry.for === 'string') {
      // Logged as the eviction is decided; the model takes no new request from then on.
      this.#close(model, time);
      this.evictions.push({ model, atMs: time });
    } else if (msg.startsWith(`model ${model} unloaded`)) {
      this.#close(model, time);
    } else if (msg.startsWith(`model ${model} failed to load`)) {
      this.loadFailures++;
    }
  }

  #close(model: string, atMs: number): void {
    const last = this.#intervals.get(model)?.at(-1);
    if (last && last.to === Number.POSITIVE_INFINITY) last.to = atMs;
  }

  /**
   * Whether `model` was ready from before `sentMs` until after `doneMs`. Log times are whole
   * milliseconds, floored: a transition logged at t happened in [t, t + 1).
   */
  readyThroughout(model: string, sentMs: number, doneMs: number): boolean {
    return (this.#intervals.get(model) ?? []).some((interval) => interval.from + 1 <= sentMs && interval.to > doneMs + 1);
  }
}

interface Counters {
  readonly hits: number;
  readonly misses: number;
  readonly loads: number;
  readonly evictions: number;
  readonly loadSecondsSum: number;
  readonly loadSecondsCount: number;
}

const COUNTER_NAMES: Record<keyof Counters, string> = {
  hits: 'inferd_model_cache_hits_total',
  misses: 'inferd_model_cache_misses_total',
  loads: 'inferd_model_loads_total',
  evictions: 'inferd_model_evictions_total',
  loadSecondsSum: 'inferd_model_load_seconds_sum',
  loadSecondsCount: 'inferd_model_load_seconds_count',
};

/** Each counter summed over its `model` labels. */
async function scrapeCounters(url: string): Promise<Counters> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const sums = Object.fromEntries(Object.keys(COUNTER_NAMES).map((key) => [key, 0])) as Record<keyof Counters, number>;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const name = line.slice(0, line.search(/[{ ]/));
    const key = (Object.keys(COUNTER_NAMES) as (keyof Counters)[]).find((k) => COUNTER_NAMES[k] === name);
    if (key) sums[key] += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sums;
}

function counterDelta(before: Counters, after: Counters): Counters {
  return Object.fromEntries((Object.keys(before) as (keyof Counters)[]).map((key) => [key, after[key] - before[key]])) as unknown as Counters;
}

// ---------------------------------------------------------------------------------------------
// The client

interface Sample {
  readonly rank: number;
  /** Wall clock, the server log's clock: for telling warm from cold. */
  readonly sentMs: number;
  readonly doneMs: number;
  /** Monotonic clock, sub-millisecond. */
  readonly latencyMs: number;
  /** 0: no HTTP answer (connection error or timeout). */
  readonly status: number;
}

const REQUEST_TIMEOUT_MS = 120_000;

function post(agent: Agent, port: number, headers: OutgoingHttpHeaders, body: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/invocations', agent, headers }, (res) => {
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
      res.resume();
    });
    req.on('error', () => resolve(0));
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy());
    req.end(body);
  });
}

interface Phase {
  readonly samples: Sample[];
  /** From the first request sent to the last answer received. */
  readonly wallS: number;
}

/**
 * `connections` loops, each sending its next request of the stream as soon as the last one is
 * answered, until `seconds` have passed; then waits for the requests in flight.
 */
async function drive(
  port: number,
  settings: Settings,
  stream: Uint16Array,
  bodies: readonly Buffer[],
  targetOf: (rank: number) => string,
  seconds: number,
  firstIndex: number,
): Promise<Phase> {
  const agent = new Agent({ keepAlive: true, maxSockets: settings.connections });
  const samples: Sample[] = [];
  let next = firstIndex;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  try {
    await Promise.all(
      Array.from({ length: settings.connections }, async () => {
        while (performance.now() < deadline) {
          const index = next++;
          const rank = stream[index % stream.length]!;
          const body = bodies[index % bodies.length]!;
          const headers = { 'content-type': 'text/csv', 'content-length': body.length, 'x-amzn-sagemaker-target-model': targetOf(rank) };
          const sentMs = Date.now();
          const sentAt = performance.now();
          const status = await post(agent, port, headers, body);
          samples.push({ rank, sentMs, doneMs: Date.now(), latencyMs: performance.now() - sentAt, status });
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return { samples, wallS: (performance.now() - started) / 1000 };
}

// ---------------------------------------------------------------------------------------------
// One target, one round

interface Percentiles {
  readonly count: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
}

interface TargetRound {
  readonly round: number;
  readonly target: TargetId;
  readonly requestsPerS: number;
  readonly requests: number;
  readonly ok: number;
  readonly statuses: Readonly<Record<string, number>>;
  readonly tooManyRequests: number;
  readonly serverErrors: number;
  readonly connectionErrors: number;
  readonly latency: Percentiles;
  /** By the server's log (see the top of this file); 2xx answers only in the percentiles. */
  readonly warm: Percentiles & { readonly requests: number };
  readonly cold: Percentiles & { readonly requests: number };
  readonly clientHitRatio: number | null;
  /** inferd's own counters over the measured window. */
  readonly server: Counters & { readonly hitRatio: number | null };
  readonly loadFailures: number;
  readonly cpu: CpuUse;
}

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function percentiles(samples: readonly Sample[]): Percentiles {
  const sorted = samples
    .filter((s) => s.status >= 200 && s.status < 300)
    .map((s) => s.latencyMs)
    .sort((a, b) => a - b);
  return { count: sorted.length, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) };
}

async function runTarget(
  target: TargetId,
  round: number,
  settings: Settings,
  repository: string,
  cacheRoot: string,
  stream: Uint16Array,
  bodies: readonly Buffer[],
): Promise<TargetRound> {
  const timeline = new ReadyTimeline();
  const port = await freePort();
  const env = {
    ...settings.inferdEnv,
    SAGEMAKER_BIND_TO_PORT: String(port),
    INFERD_HOST: '127.0.0.1',
    // The info lines "model M ready" and "evicting model M" are what tells warm from cold.
    SAGEMAKER_CONTAINER_LOG_LEVEL: 'info',
    SAGEMAKER_MODEL_SERVER_WORKERS: '1',
    INFERD_MODEL_REPOSITORY: repository,
    INFERD_MODEL_MEMORY_BUDGET_MB: String(settings.budgetMb),
    INFERD_MODEL_CACHE_DIR: await mkdtemp(join(cacheRoot, `${target}-${round}-`)),
    ...(target === 'one-model' && { INFERD_PRELOAD_MODELS: modelName(0) }),
  };
  const targetOf = target === 'many-models' ? modelName : () => modelName(0);
  const server = await ChildServer.start(['dist/src/main.js', 'serve'], env, port, 120_000, { onStdout: (chunk) => timeline.write(chunk) });
  let phase: Phase;
  let counters: Counters;
  let cpu: CpuUse;
  try {
    // The warm-up reads the stream from its middle, the measurement from its start: every
    // measurement of either target sends the same bodies in the same order.
    await drive(port, settings, stream, bodies, targetOf, settings.warmupS, STREAM_LENGTH / 2);
    const before = await scrapeCounters(server.url);
    const cpuBefore = sampleCpu(server.pid);
    phase = await drive(port, settings, stream, bodies, targetOf, settings.durationS, 0);
    cpu = cpuUse(cpuBefore, sampleCpu(server.pid));
    counters = counterDelta(before, await scrapeCounters(server.url));
  } catch (error) {
    // What the server said last is the first thing to read when a round fails.
    throw Object.assign(error instanceof Error ? error : new Error(String(error)), { output: server.output() });
  } finally {
    // Stopped before classifying: every log line the server wrote has been read by then.
    await server.stop();
  }

  const { samples } = phase;
  const statuses: Record<string, number> = {};
  for (const sample of samples) statuses[sample.status] = (statuses[sample.status] ?? 0) + 1;
  const answered = samples.filter((s) => s.status !== 0);
  const warm = answered.filter((s) => timeline.readyThroughout(targetOf(s.rank), s.sentMs, s.doneMs));
  const cold = answered.filter((s) => !timeline.readyThroughout(targetOf(s.rank), s.sentMs, s.doneMs));
  const ok = samples.filter((s) => s.status >= 200 && s.status < 300).length;
  const lookups = counters.hits + counters.misses;
  return {
    round,
    target,
    requestsPerS: ok / phase.wallS,
    requests: samples.length,
    ok,
    statuses,
    tooManyRequests: statuses['429'] ?? 0,
    serverErrors: samples.filter((s) => s.status >= 500).length,
    connectionErrors: statuses['0'] ?? 0,
    latency: percentiles(samples),
    warm: { requests: warm.length, ...percentiles(warm) },
    cold: { requests: cold.length, ...percentiles(cold) },
    clientHitRatio: answered.length === 0 ? null : warm.length / answered.length,
    server: { ...counters, hitRatio: lookups === 0 ? null : counters.hits / lookups },
    loadFailures: timeline.loadFailures,
    cpu,
  };
}

// ---------------------------------------------------------------------------------------------
// The report

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

function spread(values: readonly (number | null)[]): Spread | null {
  const present = values.filter((v): v is number => v !== null);
  return present.length === 0 ? null : { median: median(present), min: Math.min(...present), max: Math.max(...present) };
}

const DASH = '–';
const msCell = (value: number | null) => (value === null ? DASH : value.toFixed(value >= 100 ? 0 : 1));
const pctCell = (value: number | null) => (value === null ? DASH : `${(value * 100).toFixed(1)}%`);
const rpsCell = (value: number) => (value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1));
const pair = (p: Percentiles) => `${msCell(p.p50Ms)} / ${msCell(p.p99Ms)}`;
const row = (cells: readonly (string | number)[]) => `| ${cells.join(' | ')} |`;

function spreadCell(s: Spread | null, format: (v: number) => string): string {
  return s === null ? DASH : `${format(s.median)} (${format(s.min)}–${format(s.max)})`;
}

function roundRow(r: TargetRound): string {
  const otherStatuses = Object.entries(r.statuses)
    .filter(([status]) => !status.startsWith('2') && status !== '429' && !status.startsWith('5') && status !== '0')
    .map(([status, n]) => `${n}×${status}`);
  return row([
    r.round,
    r.target,
    rpsCell(r.requestsPerS),
    r.ok.toLocaleString('en-US'),
    r.tooManyRequests,
    r.serverErrors,
    r.connectionErrors + (otherStatuses.length > 0 ? ` (${otherStatuses.join(', ')})` : ''),
    pair(r.latency),
    pctCell(r.server.hitRatio),
    pctCell(r.clientHitRatio),
    `${r.cold.requests} / ${r.server.misses}`,
    `${pair(r.warm)}`,
    `${pair(r.cold)}`,
    r.server.loads,
    r.server.evictions,
    r.server.loadSecondsCount === 0 ? DASH : msCell((1000 * r.server.loadSecondsSum) / r.server.loadSecondsCount),
    r.cpu.serverCores === null ? DASH : r.cpu.serverCores.toFixed(2),
    r.cpu.otherCores === null ? DASH : r.cpu.otherCores.toFixed(2),
  ]);
}

const ROUND_COLUMNS = [
  'round',
  'target',
  'req/s',
  '2xx',
  '429',
  '5xx',
  'conn. errors',
  'all 2xx p50 / p99 ms',
  'hit ratio (server)',
  'hit ratio (client)',
  'cold requests (client) / misses (server)',
  'warm p50 / p99 ms',
  'cold p50 / p99 ms',
  'loads',
  'evictions',
  'mean load ms',
  'server cores',
  'other cores',
];

async function main(): Promise<void> {
  const settings = readSettings();
  const startedAt = new Date();
  const machine = describeMachine();
  const stream = planStream(settings);
  const bodies = readCsvRows(settings.requestsCsv).lines.map((line) => Buffer.from(`${line}\n`));
  const root = await mkdtemp(join(tmpdir(), 'inferd-bench-many-models-'));
  const repository = join(root, 'repository');
  const source = join(REPO_ROOT, 'models', settings.model, 'model.onnx');
  // Copies, not links: 20 distinct model directories that cost the same to load and to run.
  for (let rank = 0; rank < settings.modelCount; rank++) {
    const dir = join(repository, modelName(rank));
    await mkdir(dir, { recursive: true });
    await copyFile(source, join(dir, 'model.onnx'));
    await writeFile(join(dir, 'inferd.json'), `${JSON.stringify({ memoryMb: settings.modelMemoryMb, instances: 1 })}\n`);
  }
  log(
    `${settings.modelCount} × ${settings.model}, budget ${settings.budgetMb} MB (${settings.budgetModels} models), Zipf s=${settings.zipfS}, ` +
      `${settings.connections} connections, ${settings.rounds} round(s) of ${settings.warmupS} + ${settings.durationS} s per target`,
  );

  const rounds: TargetRound[] = [];
  try {
    for (let round = 1; round <= settings.rounds; round++) {
      for (const target of TARGETS) {
        const result = await runTarget(target, round, settings, repository, root, stream, bodies);
        log(
          `round ${round} ${target}: ${Math.round(result.requestsPerS)} req/s, server hit ratio ${pctCell(result.server.hitRatio)}, ` +
            `cold ${result.cold.requests} / misses ${result.server.misses}, loads ${result.server.loads}, 429 ${result.tooManyRequests}, 5xx ${result.serverErrors}`,
        );
        rounds.push(result);
      }
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }

  const of = (target: TargetId) => rounds.filter((r) => r.target === target);
  const many = of('many-models');
  const one = of('one-model');
  const ratios = many.map((m, i) => m.requestsPerS / one[i]!.requestsPerS);
  const summary = {
    requestsPerSRatio: spread(ratios),
    manyRequestsPerS: spread(many.map((r) => r.requestsPerS)),
    oneRequestsPerS: spread(one.map((r) => r.requestsPerS)),
    serverHitRatio: spread(many.map((r) => r.server.hitRatio)),
    clientHitRatio: spread(many.map((r) => r.clientHitRatio)),
    manyWarmP50Ms: spread(many.map((r) => r.warm.p50Ms)),
    manyWarmP99Ms: spread(many.map((r) => r.warm.p99Ms)),
    manyColdP50Ms: spread(many.map((r) => r.cold.p50Ms)),
    manyColdP99Ms: spread(many.map((r) => r.cold.p99Ms)),
    oneP50Ms: spread(one.map((r) => r.latency.p50Ms)),
    oneP99Ms: spread(one.map((r) => r.latency.p99Ms)),
    loads: many.reduce((sum, r) => sum + r.server.loads, 0),
    evictions: many.reduce((sum, r) => sum + r.server.evictions, 0),
    tooManyRequests: rounds.reduce((sum, r) => sum + r.tooManyRequests, 0),
    serverErrors: rounds.reduce((sum, r) => sum + r.serverErrors, 0),
    connectionErrors: rounds.reduce((sum, r) => sum + r.connectionErrors, 0),
  };
  const lruHitRatio = sequentialLruHitRatio(stream, settings.budgetModels, STREAM_LENGTH);
  const insufficientMemory = rounds.reduce((sum, r) => sum + (r.statuses['507'] ?? 0), 0);
  const command = reproducingCommand(benchEnvironment(), 'npm run bench:many-models');
  const result = {
    date: startedAt.toISOString(),
    elapsedS: (Date.now() - startedAt.getTime()) / 1000,
    command,
    machine,
    settings: { ...settings, topBudgetShare: topShare(settings, settings.budgetModels), sequentialLruHitRatio: lruHitRatio },
    summary,
    rounds,
  };

  const ms = (v: number) => msCell(v);
  const x = (v: number) => `${v.toFixed(v < 0.1 ? 3 : 2)}×`;
  const pct = (v: number) => pctCell(v);
  const markdown = [
    `# Many-models benchmark, ${result.date}`,
    '',
    `Command: \`${command}\` (${Math.round(result.elapsedS)} s)`,
    '',
    `Machine: ${machine.host}, ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}; ` +
      `Node ${machine.node}, onnxruntime-node ${machine.onnxruntimeNode}; revision ${machine.revision ?? 'unknown'}.`,
    '',
    `Method: a repository of ${settings.modelCount} copies of \`models/${settings.model}\` (each \`inferd.json\` \`{"memoryMb": ${settings.modelMemoryMb}, "instances": 1}\`), ` +
      `\`INFERD_MODEL_MEMORY_BUDGET_MB=${settings.budgetMb}\` (holds ${settings.budgetModels}), \`SAGEMAKER_MODEL_SERVER_WORKERS=1\`. ` +
      `${settings.connections} connections send one-row CSV requests back to back; request i names model rank k drawn from a Zipf distribution (s = ${settings.zipfS}, seed ${settings.seed}; ` +
      `the ${settings.budgetModels} most requested models get ${pct(topShare(settings, settings.budgetModels))} of requests) in \`X-Amzn-SageMaker-Target-Model\`. ` +
      `**one-model** is the same stream, same bodies in the same order, to the same repository with the most requested model preloaded (\`INFERD_PRELOAD_MODELS\`) and every request naming it. ` +
      `Targets alternate (many, one, many, one…), each round in fresh server child processes on this machine (a cold cache every round), with the load generator on the same cores; ` +
      `per target ${settings.warmupS} s warm-up on the same server, then ${settings.durationS} s measured. ` +
      `req/s counts 2xx answers over the time from the first request sent to the last answer. ` +
      `**Hit ratio (server)** is hits / (hits + misses) of \`inferd_model_cache_{hits,misses}_total\` over the measured window. ` +
      `**Warm / cold** is the client's split: a request is warm when the server's log shows its model ready from before it was sent until after it was answered, cold otherwise ` +
      `(its model was loading, being evicted or absent while it was in flight; see the top of \`bench/many-models.ts\`); percentiles are of 2xx answers. ` +
      `Other cores is the rest of the machine's busy time: noise when not near 0.`,
    '',
    `## Summary over ${settings.rounds} round(s): median (min–max)`,
    '',
    '| | many-models | one-model |',
    '|---|--:|--:|',
    row(['req/s', spreadCell(summary.manyRequestsPerS, rpsCell), spreadCell(summary.oneRequestsPerS, rpsCell)]),
    row(['**req/s, many / one (per round)**', `**${spreadCell(summary.requestsPerSRatio, x)}**`, '']),
    row(['cache hit ratio, server counters', spreadCell(summary.serverHitRatio, pct), '']),
    row(['cache hit ratio, client split', spreadCell(summary.clientHitRatio, pct), '']),
    row(['cache hit ratio of an LRU of the budget\'s size, this stream sent one request at a time', pct(lruHitRatio), '']),
    row(['p50 ms: warm requests (many) / all (one)', spreadCell(summary.manyWarmP50Ms, ms), spreadCell(summary.oneP50Ms, ms)]),
    row(['p99 ms: warm requests (many) / all (one)', spreadCell(summary.manyWarmP99Ms, ms), spreadCell(summary.oneP99Ms, ms)]),
    row(['p50 ms: cold requests (triggered or waited for a load)', spreadCell(summary.manyColdP50Ms, ms), '']),
    row(['p99 ms: cold requests (triggered or waited for a load)', spreadCell(summary.manyColdP99Ms, ms), '']),
    row(['loads / evictions, all rounds', `${summary.loads} / ${summary.evictions}`, '']),
    row(['429 / 5xx / connection errors, all rounds', `${many.reduce((s, r) => s + r.tooManyRequests, 0)} / ${many.reduce((s, r) => s + r.serverErrors, 0)} / ${many.reduce((s, r) => s + r.connectionErrors, 0)}`, `${one.reduce((s, r) => s + r.tooManyRequests, 0)} / ${one.reduce((s, r) => s + r.serverErrors, 0)} / ${one.reduce((s, r) => s + r.connectionErrors, 0)}`]),
    '',
    '## Rounds',
    '',
    row(ROUND_COLUMNS),
    row(['--:', '---', ...new Array<string>(ROUND_COLUMNS.length - 2).fill('--:')]),
    ...rounds.map(roundRow),
    '',
    ...(summary.serverErrors > 0 ? [`**${summary.serverErrors} 5xx answers**: the run fails (there must be none).`, ''] : []),
    ...(insufficientMemory > 0
      ? [
          `${insufficientMemory} answers were 507 (\`INFERD_ERR_INSUFFICIENT_MEMORY\`): a load found the budget held by models that could not be evicted, ` +
            'those with requests queued or running and those still loading (a loading model counts its declared footprint from the start of its load), and was refused rather than made to wait.',
          '',
        ]
      : []),
    `Reproduce: \`${command}\`.`,
    '',
  ].join('\n');
  await saveResults('many-models', result.date, result, markdown);
  if (summary.serverErrors > 0) {
    log(`${summary.serverErrors} 5xx answers: failing`);
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  log(`failed: ${error instanceof Error ? error.message : String(error)}`);
  const output = (error as { output?: unknown }).output;
  if (typeof output === 'string') process.stderr.write(`${output}\n`);
  process.exitCode = 1;
});
