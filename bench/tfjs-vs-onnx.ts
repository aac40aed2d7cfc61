/**
 * TF.js or ONNX Runtime for the same model: one small MLP (Dense 20→64 relu → 64→64 relu → 64→3
 * softmax), written at bench time into a temporary directory both ways from the same seeded
 * weights (mlp-fixture.ts): a TF.js layers model (model.json + weights.bin, saved by
 * @tensorflow/tfjs) and an ONNX model (MatMul + Add + Relu… + Softmax, opset 13). inferd serves
 * each through the HTTP path, one-row CSV requests under closed-loop autocannon load.
 *
 * Targets, alternated in every round (onnx, tfjs-wasm t=1, tfjs-wasm t=2, onnx, …), each round
 * in a fresh server child process: ONNX Runtime (intraOpNumThreads 1), and the TF.js wasm engine
 * with inferd.json `intraOpNumThreads` 1 and 2 (the wasm thread count). The report gives, per
 * round, requests/s and latency, and the median ratio tfjs/onnx with its spread (min–max).
 *
 * Before any load, every server answers the same rows (the load's own CSV bodies) and must agree
 * with the plain float64 arithmetic of the same weights, and with the ONNX server, within 1e-4;
 * the run fails otherwise.
 *
 *   npm run bench:tfjs
 *   BENCH_ROUNDS=2 BENCH_DURATION_S=5 npm run bench:tfjs
 *
 * Environment:
 *   BENCH_ROUNDS          rounds, each every target (3)
 *   BENCH_DURATION_S      measured seconds per target and round (10)
 *   BENCH_WARMUP_S        unmeasured load before each measurement, same server (2)
 *   BENCH_CONNECTIONS     concurrent connections (32)
 *   BENCH_TFJS_THREADS    wasm thread counts to run, comma-separated (1,2); `none`: the ONNX target only
 *   BENCH_SEED            seed of the weights and the request rows (1)
 *   BENCH_INFERD_ENV      JSON object of extra environment for every server
 *
 * Results: bench/results/<timestamp>-tfjs-vs-onnx.{json,md}.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ChildServer, freePort, StartFailure } from './child-server.js';
import { cpuUse, sampleCpu, type CpuUse } from './cpu.js';
import { loadRequests, runLoad, type LoadShape, type LoadSummary } from './load.js';
import { INPUT_NAME, MLP_CLASSES, MLP_INPUTS, OUTPUT_NAME, seededLayers, writeOnnxModel, writeTfjsModel } from './mlp-fixture.js';
import { mlpReference, type DenseLayer } from './onnx-mlp.js';
import { benchEnvironment, positiveNumber, readOptions, REPO_ROOT } from './options.js';
import { seededRandom } from './payloads.js';
import { describeMachine, reproducingCommand, saveResults } from './report.js';

const log = (message: string) => process.stderr.write(`[tfjs-vs-onnx] ${message}\n`);

const BODY_COUNT = 64;
const CHECK_ROWS = 8;
const TOLERANCE = 1e-4;
/** inferd's defaults, set explicitly so that the report states them. */
const BATCHING_ENV = { INFERD_MAX_BATCH_SIZE: '64', INFERD_MAX_QUEUE_DELAY_MS: '2' };

interface Settings {
  readonly rounds: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly connections: number;
  readonly tfjsThreads: readonly number[];
  readonly seed: number;
  readonly inferdEnv: Readonly<Record<string, string>>;
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = positiveNumber(env, name, fallback);
  if (!Number.isInteger(value)) throw new Error(`${name} must be a whole number, got "${env[name]}"`);
  return value;
}

function threadList(raw: string | undefined): number[] {
  if (raw === undefined || raw.trim() === '') return [1, 2];
  if (raw.trim() === 'none') return [];
  const list = raw.split(',').map((part) => Number(part.trim()));
  if (list.some((n) => !Number.isInteger(n) || n < 1 || n > 256)) throw new Error(`BENCH_TFJS_THREADS must be whole numbers 1-256, got "${raw}"`);
  return [...new Set(list)];
}

function readSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const options = readOptions(env);
  return {
    rounds: integer(env, 'BENCH_ROUNDS', 3),
    durationS: positiveNumber(env, 'BENCH_DURATION_S', 10),
    warmupS: options.warmupS,
    connections: integer(env, 'BENCH_CONNECTIONS', 32),
    tfjsThreads: threadList(env.BENCH_TFJS_THREADS),
    seed: integer(env, 'BENCH_SEED', 1),
    inferdEnv: options.inferdEnv,
  };
}

// ---------------------------------------------------------------------------------------------
// Targets

interface Target {
  readonly id: string;
  readonly label: string;
  readonly backend: 'onnx' | 'tfjs';
  readonly threads: number;
  readonly dir: string;
}

async function prepareTargets(root: string, settings: Settings, layers: readonly DenseLayer[], rows: readonly number[][]): Promise<{ targets: Target[]; tfjsInProcess: number[][] }> {
  const onnxDir = join(root, 'onnx');
  await writeOnnxModel(onnxDir, layers);
  await writeFile(join(onnxDir, 'inferd.json'), `${JSON.stringify({ backend: 'onnx', intraOpNumThreads: 1 })}\n`);
  const targets: Target[] = [{ id: 'onnx', label: 'ONNX Runtime (CPU EP, intraOpNumThreads 1)', backend: 'onnx', threads: 1, dir: onnxDir }];
  const tfjsSource = join(root, 'tfjs-source');
  const tfjsInProcess = await writeTfjsModel(tfjsSource, layers, rows);
  for (const threads of settings.tfjsThreads) {
    const dir = join(root, `tfjs-wasm-t${threads}`);
    await mkdir(dir);
    for (const file of ['model.json', 'weights.bin']) await writeFile(join(dir, file), readFileSync(join(tfjsSource, file)));
    await writeFile(join(dir, 'inferd.json'), `${JSON.stringify({ backend: 'tfjs', intraOpNumThreads: threads })}\n`);
    targets.push({ id: `tfjs-wasm-t${threads}`, label: `TF.js wasm (intraOpNumThreads ${threads})`, backend: 'tfjs', threads, dir });
  }
  return { targets, tfjsInProcess };
}

// ---------------------------------------------------------------------------------------------
// What the wasm engine says about SIMD and threads

interface WasmProbe {
  readonly requestedThreads: number;
  readonly backend?: string;
  readonly simdSupported?: boolean;
  readonly multithreadSupported?: boolean;
  readonly threadsCount?: number;
  readonly isNode?: boolean;
  readonly tfjsVersion?: string;
  readonly error?: string;
}

async function probeWasm(threads: number): Promise<WasmProbe> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [join(REPO_ROOT, 'dist/bench/tfjs-wasm-probe.js'), String(threads)], {
      cwd: REPO_ROOT,
      timeout: 60_000,
    });
    const line = stdout.split('\n').find((l) => l.startsWith('{'));
    if (!line) return { requestedThreads: threads, error: `no JSON line in: ${stdout.slice(-300)}` };
    return JSON.parse(line) as WasmProbe;
  } catch (error) {
    return { requestedThreads: threads, error: (error as Error).message.slice(0, 300) };
  }
}

// ---------------------------------------------------------------------------------------------
// One server, one round

interface ModelInfo {
  readonly backend?: string;
  readonly engine?: string;
  readonly provider?: string;
  readonly intraOpNumThreads?: number;
  readonly instances?: number;
}

interface Check {
  /** Largest |server - float64 reference| over the rows checked. */
  readonly maxAbsVsReference: number;
  /** Largest |server - ONNX server| over the same rows (0 for the ONNX server itself). */
  readonly maxAbsVsOnnx: number | null;
}

/** inferd's own histograms over the measured window: what the engine itself took. */
interface Engine {
  readonly batches: number;
  readonly rows: number;
  /** Worker run() time per batch, mean. */
  readonly computeMsPerBatch: number | null;
  readonly computeUsPerRow: number | null;
  readonly rowsPerBatch: number | null;
  /** Worker run() time per wall second: how busy the one instance was computing. */
  readonly computeShare: number;
}

interface Histograms {
  readonly computeSum: number;
  readonly computeCount: number;
  readonly rowsSum: number;
  readonly rowsCount: number;
  readonly atMs: number;
}

const HISTOGRAMS: Record<Exclude<keyof Histograms, 'atMs'>, string> = {
  computeSum: 'inferd_compute_seconds_sum',
  computeCount: 'inferd_compute_seconds_count',
  rowsSum: 'inferd_batch_size_rows_sum',
  rowsCount: 'inferd_batch_size_rows_count',
};

async function scrapeHistograms(url: string): Promise<Histograms> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const sums = { computeSum: 0, computeCount: 0, rowsSum: 0, rowsCount: 0 };
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const name = line.slice(0, line.search(/[{ ]/));
    const key = (Object.keys(HISTOGRAMS) as (keyof typeof HISTOGRAMS)[]).find((k) => HISTOGRAMS[k] === name);
    if (key) sums[key] += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return { ...sums, atMs: performance.now() };
}

function engineUse(before: Histograms, after: Histograms): Engine {
  const computeS = after.computeSum - before.computeSum;
  const batches = after.computeCount - before.computeCount;
  const rows = after.rowsSum - before.rowsSum;
  return {
    batches,
    rows,
    computeMsPerBatch: batches === 0 ? null : (1000 * computeS) / batches,
    computeUsPerRow: rows === 0 ? null : (1e6 * computeS) / rows,
    rowsPerBatch: after.rowsCount - before.rowsCount === 0 ? null : rows / (after.rowsCount - before.rowsCount),
    computeShare: computeS / ((after.atMs - before.atMs) / 1000),
  };
}

interface TargetRound {
  readonly round: number;
  readonly target: string;
  readonly load: LoadSummary;
  readonly cpu: CpuUse;
  readonly engine: Engine;
  readonly model: ModelInfo;
  readonly check: Check;
  /** Threads of the server process after the warm-up (/proc/PID/status), workers and wasm threads included. */
  readonly serverThreads: number | null;
  /** Log lines at warn level or above. */
  readonly warnings: readonly string[];
}

function processThreads(pid: number): number | null {
  try {
    return readdirSync(`/proc/${pid}/task`).length;
  } catch {
    return null;
  }
}

async function modelInfo(url: string): Promise<ModelInfo> {
  const body = (await (await fetch(`${url}/models`)).json()) as { models?: ModelInfo[] };
  return body.models?.[0] ?? {};
}

/** The server's answers to the first CHECK_ROWS bodies, sent as the load sends them. */
async function answers(url: string, bodies: readonly Buffer[]): Promise<number[][]> {
  const result: number[][] = [];
  for (const body of bodies.slice(0, CHECK_ROWS)) {
    const response = await fetch(`${url}/invocations`, { method: 'POST', headers: { 'content-type': 'text/csv', accept: 'application/json' }, body });
    const text = await response.text();
    if (response.status !== 200) throw new Error(`check request answered ${response.status}: ${text.slice(0, 300)}`);
    const prediction = (JSON.parse(text) as { predictions?: unknown[] }).predictions?.[0];
    const row = Array.isArray(prediction) ? prediction : Object.values((prediction ?? {}) as Record<string, unknown>)[0];
    if (!Array.isArray(row) || row.length !== MLP_CLASSES || !row.every((v) => typeof v === 'number')) {
      throw new Error(`unexpected answer shape: ${text.slice(0, 300)}`);
    }
    result.push(row as number[]);
  }
  return result;
}

function maxAbsDiff(a: readonly (readonly number[])[], b: readonly (readonly number[])[]): number {
  let max = 0;
  a.forEach((row, i) => row.forEach((v, j) => (max = Math.max(max, Math.abs(v - b[i]![j]!)))));
  return max;
}

function logCollector(warnings: string[]): (chunk: Buffer) => void {
  let pending = '';
  return (chunk) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        const entry = JSON.parse(line) as { level?: unknown; msg?: unknown };
        if (typeof entry.level === 'number' && entry.level >= 40 && warnings.length < 10) warnings.push(String(entry.msg).slice(0, 300));
      } catch {
        // not a log line
      }
    }
  };
}

async function runTarget(
  target: Target,
  round: number,
  settings: Settings,
  bodies: readonly Buffer[],
  reference: readonly number[][],
  onnxAnswers: { value: number[][] | null },
): Promise<TargetRound> {
  const port = await freePort();
  const env = {
    ...BATCHING_ENV,
    ...settings.inferdEnv,
    INFERD_HOST: '127.0.0.1',
    SAGEMAKER_MODEL_SERVER_WORKERS: '1',
  };
  const warnings: string[] = [];
  const server = await ChildServer.start(['dist/src/main.js', 'serve', '--model-dir', target.dir, '--port', String(port)], env, port, 120_000, {
    onStdout: logCollector(warnings),
  });
  const shape: LoadShape = { contentType: 'text/csv', connections: settings.connections, rowsPerRequest: 1 };
  try {
    const model = await modelInfo(server.url);
    if (model.backend !== target.backend) throw new Error(`${target.id}: served by backend ${String(model.backend)}, expected ${target.backend}`);
    if (model.intraOpNumThreads !== target.threads) {
      throw new Error(`${target.id}: /models says intraOpNumThreads ${String(model.intraOpNumThreads)}, expected ${target.threads}`);
    }
    const got = await answers(server.url, bodies);
    const vsReference = maxAbsDiff(got, reference);
    if (target.backend === 'onnx') onnxAnswers.value = got;
    const vsOnnx = onnxAnswers.value === null ? null : maxAbsDiff(got, onnxAnswers.value);
    if (!(vsReference <= TOLERANCE) || (vsOnnx !== null && !(vsOnnx <= TOLERANCE))) {
      throw new Error(
        `${target.id} disagrees: max |server - reference| ${vsReference.toExponential(2)}, max |server - onnx| ${vsOnnx?.toExponential(2) ?? 'n/a'} ` +
          `(tolerance ${TOLERANCE}); first row ${JSON.stringify(got[0])}, reference ${JSON.stringify(reference[0])}`,
      );
    }
    const requests = loadRequests(shape, bodies);
    await runLoad(server.url, shape, requests, settings.warmupS);
    const serverThreads = processThreads(server.pid);
    const histogramsBefore = await scrapeHistograms(server.url);
    const before = sampleCpu(server.pid);
    const load = await runLoad(server.url, shape, requests, settings.durationS);
    const cpu = cpuUse(before, sampleCpu(server.pid));
    const engine = engineUse(histogramsBefore, await scrapeHistograms(server.url));
    if (load.ok === 0) throw new Error(`${target.id}: no 2xx answer under load (${load.non2xx} non-2xx, ${load.errors} errors)`);
    return { round, target: target.id, load, cpu, engine, model, check: { maxAbsVsReference: vsReference, maxAbsVsOnnx: vsOnnx }, serverThreads, warnings };
  } catch (error) {
    throw Object.assign(error instanceof Error ? error : new Error(String(error)), { output: server.output() });
  } finally {
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// The report

interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function spread(values: readonly number[]): Spread | null {
  return values.length === 0 ? null : { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

const DASH = '–';
const row = (cells: readonly (string | number)[]) => `| ${cells.join(' | ')} |`;
const rps = (v: number) => (v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1));
const ms = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
const x = (v: number) => `${v.toFixed(2)}×`;
const spreadCell = (s: Spread | null, format: (v: number) => string) => (s === null ? DASH : `${format(s.median)} (${format(s.min)}–${format(s.max)})`);

function packageVersion(name: string): string {
  return (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

function describeProbe(probe: WasmProbe): string {
  if (probe.error) return `probe with ${probe.requestedThreads} thread(s) failed: ${probe.error}`;
  return (
    `asked for ${probe.requestedThreads} thread(s): backend ${probe.backend}, SIMD ${probe.simdSupported ? 'supported' : 'not supported'}, ` +
    `multithreading ${probe.multithreadSupported ? 'supported' : 'not supported'}, the wasm module runs ${probe.threadsCount} thread(s)`
  );
}

async function main(): Promise<void> {
  const settings = readSettings();
  const startedAt = new Date();
  const machine = describeMachine();
  const random = seededRandom(settings.seed + 1);
  // Four decimals: the CSV text is exactly the numbers the reference computes with.
  const rows = Array.from({ length: BODY_COUNT }, () => Array.from({ length: MLP_INPUTS }, () => Number((random() * 4 - 2).toFixed(4))));
  const bodies = rows.map((r) => Buffer.from(`${r.join(',')}\n`));
  const layers = seededLayers(settings.seed);
  const reference = rows.slice(0, CHECK_ROWS).map((r) => mlpReference(layers, r));

  const root = await mkdtemp(join(tmpdir(), 'inferd-bench-tfjs-'));
  const results: TargetRound[] = [];
  let targets: Target[];
  let tfjsInProcessDiff: number;
  const probes: WasmProbe[] = [];
  try {
    const prepared = await prepareTargets(root, settings, layers, rows.slice(0, CHECK_ROWS));
    targets = prepared.targets;
    tfjsInProcessDiff = maxAbsDiff(prepared.tfjsInProcess, reference);
    if (!(tfjsInProcessDiff <= TOLERANCE)) throw new Error(`the saved TF.js model disagrees with the reference in-process: ${tfjsInProcessDiff}`);
    for (const threads of settings.tfjsThreads) probes.push(await probeWasm(threads));
    for (const probe of probes) log(`wasm probe: ${describeProbe(probe)}`);
    log(
      `${targets.map((t) => t.id).join(', ')}; ${settings.rounds} round(s) of ${settings.warmupS} + ${settings.durationS} s per target, ${settings.connections} connections, one-row CSV`,
    );
    const onnxAnswers = { value: null as number[][] | null };
    for (let round = 1; round <= settings.rounds; round++) {
      for (const target of targets) {
        const result = await runTarget(target, round, settings, bodies, reference, onnxAnswers);
        log(
          `round ${round} ${target.id}: ${Math.round(result.load.requestsPerS)} req/s, p50 ${result.load.latencyMs.p50} ms, p99 ${result.load.latencyMs.p99} ms, ` +
            `engine ${result.model.engine}, server ${result.cpu.serverCores?.toFixed(2) ?? '?'} cores, ${result.serverThreads ?? '?'} threads, ` +
            `max diff vs reference ${result.check.maxAbsVsReference.toExponential(1)}`,
        );
        results.push(result);
      }
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }

  const of = (id: string) => results.filter((r) => r.target === id);
  const onnx = of('onnx');
  const perTarget = targets.map((target) => {
    const rounds = of(target.id);
    return {
      target: target.id,
      label: target.label,
      requestsPerS: spread(rounds.map((r) => r.load.requestsPerS)),
      p50Ms: spread(rounds.map((r) => r.load.latencyMs.p50)),
      p99Ms: spread(rounds.map((r) => r.load.latencyMs.p99)),
      serverCores: spread(rounds.flatMap((r) => (r.cpu.serverCores === null ? [] : [r.cpu.serverCores]))),
      computeUsPerRow: spread(rounds.flatMap((r) => (r.engine.computeUsPerRow === null ? [] : [r.engine.computeUsPerRow]))),
      rowsPerBatch: spread(rounds.flatMap((r) => (r.engine.rowsPerBatch === null ? [] : [r.engine.rowsPerBatch]))),
      computeShare: spread(rounds.map((r) => r.engine.computeShare)),
      /** Per round, this target's worker compute time per row over the ONNX target's. */
      computeRatioToOnnx:
        target.backend === 'onnx'
          ? null
          : spread(
              rounds.flatMap((r) => {
                const mine = r.engine.computeUsPerRow;
                const theirs = onnx.find((o) => o.round === r.round)!.engine.computeUsPerRow;
                return mine === null || theirs === null ? [] : [mine / theirs];
              }),
            ),
      /** Per round, this target's requests/s over the ONNX target's of the same round. */
      ratioToOnnx: target.backend === 'onnx' ? null : spread(rounds.map((r) => r.load.requestsPerS / onnx.find((o) => o.round === r.round)!.load.requestsPerS)),
      p99RatioToOnnx:
        target.backend === 'onnx' ? null : spread(rounds.map((r) => r.load.latencyMs.p99 / Math.max(1, onnx.find((o) => o.round === r.round)!.load.latencyMs.p99))),
      engine: [...new Set(rounds.map((r) => r.model.engine ?? '?'))].join(', '),
      serverThreads: [...new Set(rounds.map((r) => r.serverThreads ?? '?'))].join(', '),
      warnings: [...new Set(rounds.flatMap((r) => r.warnings))],
    };
  });
  const command = reproducingCommand(benchEnvironment(), 'npm run bench:tfjs');
  const result = {
    date: startedAt.toISOString(),
    elapsedS: (Date.now() - startedAt.getTime()) / 1000,
    command,
    machine: { ...machine, tfjs: packageVersion('@tensorflow/tfjs'), tfjsBackendWasm: packageVersion('@tensorflow/tfjs-backend-wasm') },
    settings: { ...settings, batchingEnv: BATCHING_ENV, bodies: BODY_COUNT, checkRows: CHECK_ROWS, tolerance: TOLERANCE },
    model: { layers: layers.map((l) => `${l.inputs}→${l.units} ${l.activation}`), input: INPUT_NAME, output: OUTPUT_NAME, tfjsInProcessMaxAbsVsReference: tfjsInProcessDiff },
    wasmProbes: probes,
    summary: perTarget,
    rounds: results,
  };

  const sameThreads = probes.length > 1 && probes.every((p) => p.error === undefined && p.threadsCount === probes[0]!.threadsCount);
  const maxVsOnnx = Math.max(0, ...results.map((r) => r.check.maxAbsVsOnnx ?? 0));
  const maxVsReference = Math.max(0, ...results.map((r) => r.check.maxAbsVsReference));
  const warningLines = perTarget.flatMap((t) => t.warnings.map((w) => `- ${t.target}: ${w}`));
  const markdown = [
    `# TF.js vs ONNX Runtime, the same MLP, ${result.date}`,
    '',
    `Command: \`${command}\` (${Math.round(result.elapsedS)} s)`,
    '',
    `Machine: ${machine.host}, ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}; ` +
      `Node ${machine.node}, onnxruntime-node ${machine.onnxruntimeNode}, @tensorflow/tfjs ${result.machine.tfjs}, @tensorflow/tfjs-backend-wasm ${result.machine.tfjsBackendWasm}, autocannon ${machine.autocannon}; revision ${machine.revision ?? 'unknown'}.`,
    '',
    `Model: Dense ${result.model.layers.join(' → ')}, built at bench time from seeded weights (seed ${settings.seed}) both ways: a TF.js layers model saved by @tensorflow/tfjs ` +
      `(model.json + weights.bin) and an ONNX model of the same weights (MatMul + Add + Relu…, Softmax; opset 13; \`bench/onnx-mlp.ts\`). ` +
      `Before each measurement the server answered the load's first ${CHECK_ROWS} bodies; every answer was within ${TOLERANCE} of float64 arithmetic on the same weights ` +
      `(largest difference ${maxVsReference.toExponential(1)}) and of the ONNX server's (largest ${maxVsOnnx.toExponential(1)}).`,
    '',
    `Method: one inferd child process per target and round (\`serve --model-dir\`, \`SAGEMAKER_MODEL_SERVER_WORKERS=1\`, batching max ${BATCHING_ENV.INFERD_MAX_BATCH_SIZE} rows, ${BATCHING_ENV.INFERD_MAX_QUEUE_DELAY_MS} ms` +
      `${Object.keys(settings.inferdEnv).length > 0 ? `, extra env ${JSON.stringify(settings.inferdEnv)}` : ''}); ` +
      `targets alternate in every round (${targets.map((t) => t.id).join(', ')}, then again); per target ${settings.warmupS} s warm-up on the same server, then ${settings.durationS} s of ` +
      `closed-loop autocannon load, ${settings.connections} connections, one-row CSV bodies (${BODY_COUNT} distinct, cycled), load generator on the same cores. ` +
      `req/s counts 2xx answers; autocannon latency has 1 ms resolution. Ratios are per round (this target / onnx of the same round); the table gives their median and min–max. ` +
      `**Compute µs/row**, **rows/batch** and **worker computing** are the server's own histograms over the measured window (\`inferd_compute_seconds\`: the model run in the worker, per batch; ` +
      `\`inferd_batch_size_rows\`): the engine's share of the work, apart from HTTP, parsing and batching on the main thread. ` +
      `Other cores is the rest of the machine's busy time (other processes): a round where it is far from 0 was measured on a busy machine.`,
    '',
    '**Wasm engine, SIMD and threads.** The thread setting is the model\'s `inferd.json` `intraOpNumThreads`, which /models reported back as set for every server. ' +
      `What TF.js ${result.machine.tfjs} says in this Node (\`bench/tfjs-wasm-probe.ts\`, the backend started the way a worker starts it): ${probes.length === 0 ? 'not probed (no TF.js target)' : probes.map(describeProbe).join('; ')}. ` +
      `Server process threads after warm-up, by target: ${perTarget.map((t) => `${t.target} ${t.serverThreads}`).join(', ')}; engine reported by /models: ${perTarget.map((t) => `${t.target} ${t.engine}`).join(', ')}.`,
    '',
    `## Summary over ${settings.rounds} round(s): median (min–max)`,
    '',
    row(['target', 'req/s', '**req/s vs onnx**', 'p50 ms', 'p99 ms', 'p99 vs onnx', 'compute µs/row', 'compute vs onnx', 'rows/batch', 'worker computing', 'server cores']),
    row(['---', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:']),
    ...perTarget.map((t) =>
      row([
        t.label,
        spreadCell(t.requestsPerS, rps),
        t.ratioToOnnx === null ? '1 (reference)' : `**${spreadCell(t.ratioToOnnx, x)}**`,
        spreadCell(t.p50Ms, ms),
        spreadCell(t.p99Ms, ms),
        t.p99RatioToOnnx === null ? DASH : spreadCell(t.p99RatioToOnnx, x),
        spreadCell(t.computeUsPerRow, (v) => v.toFixed(1)),
        t.computeRatioToOnnx === null ? '1 (reference)' : spreadCell(t.computeRatioToOnnx, x),
        spreadCell(t.rowsPerBatch, (v) => v.toFixed(1)),
        spreadCell(t.computeShare, (v) => `${Math.round(v * 100)}%`),
        spreadCell(t.serverCores, (v) => v.toFixed(2)),
      ]),
    ),
    '',
    ...(sameThreads
      ? [
          `The wasm module ran ${probes[0]!.threadsCount} thread(s) whatever \`intraOpNumThreads\` asked for, so the ${probes.length} TF.js targets are one configuration measured ${probes.length} times: ` +
            'the difference between their rows is this run\'s noise, and no larger difference between TF.js and ONNX should be read as a result.',
          '',
        ]
      : []),
    '## Rounds',
    '',
    row(['round', 'target', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'non-2xx', 'errors', 'compute µs/row', 'rows/batch', 'worker computing', 'server cores', 'other cores', 'client CPU', 'threads', 'max diff vs reference']),
    row(['--:', '---', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:']),
    ...results.map((r) =>
      row([
        r.round,
        r.target,
        rps(r.load.requestsPerS),
        r.load.latencyMs.p50,
        r.load.latencyMs.p90,
        r.load.latencyMs.p99,
        r.load.latencyMs.max,
        r.load.non2xx,
        r.load.errors,
        r.engine.computeUsPerRow?.toFixed(1) ?? DASH,
        r.engine.rowsPerBatch?.toFixed(1) ?? DASH,
        `${Math.round(r.engine.computeShare * 100)}%`,
        r.cpu.serverCores?.toFixed(2) ?? DASH,
        r.cpu.otherCores?.toFixed(2) ?? DASH,
        `${Math.round(r.cpu.clientShare * 100)}%`,
        r.serverThreads ?? DASH,
        r.check.maxAbsVsReference.toExponential(1),
      ]),
    ),
    '',
    ...(warningLines.length > 0 ? ['Server warnings (log level warn and above):', '', ...warningLines, ''] : []),
    `Reproduce: \`${command}\`.`,
    '',
  ].join('\n');
  await saveResults('tfjs-vs-onnx', result.date, result, markdown);
  if (results.some((r) => r.load.non2xx > 0 || r.load.errors > 0)) {
    log('non-2xx answers or errors under load: failing');
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  log(`failed: ${error instanceof Error ? error.message : String(error)}`);
  const output = error instanceof StartFailure ? error.output : (error as { output?: unknown }).output;
  if (typeof output === 'string') process.stderr.write(`${output}\n`);
  process.exitCode = 1;
});
