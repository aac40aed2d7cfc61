/**
 * Batch transform at scale: a generated CSV of churn rows (1,000,000 by default) through the
 * forest with `inferd transform`, in-process, against the in-process ceiling (`session.run` in a
 * loop at large batch sizes on the job's own rows, same thread count), alternated over
 * BENCH_ROUNDS rounds on this machine. Reports records/s, the ratio to the ceiling within each
 * round (median, min–max), and the job's peak RSS.
 *
 *   npm run bench:transform                 # 1,000,000 rows
 *   BENCH_TRANSFORM_ROWS=200000 npm run bench:transform
 *
 * Results: bench/results/<timestamp>-transform.{json,md}.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import type { CeilingRequest, CeilingResult } from './in-process-ceiling.js';
import { readOptions, REPO_ROOT } from './options.js';
import { readCsvRows, seededRandom } from './payloads.js';
import { saveResults } from './report.js';
import { spread } from './stats.js';
import type { TransformSummary } from '../src/modes/transform/job.js';
import { defaultInstances } from '../src/runtime/served-model.js';

const rowsWanted = Number(process.env.BENCH_TRANSFORM_ROWS ?? 1_000_000);
const options = readOptions(process.env);
const log = (message: string) => process.stderr.write(`${message}\n`);

function run(args: readonly string[], env: Record<string, string> = {}): Promise<string> {
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  return new Promise((resolve, reject) =>
    child.once('exit', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${args.join(' ')} exited ${code}`)))),
  );
}

/** The 200 request rows, each value jittered by up to ±5%, cycled to `rows` lines. */
async function writeRows(path: string, rows: number): Promise<number> {
  const { rows: base } = readCsvRows(join(options.modelsDir, 'churn-requests.csv'));
  const random = seededRandom(42);
  const out = createWriteStream(path);
  let chunk = '';
  for (let i = 0; i < rows; i++) {
    chunk += `${base[i % base.length]!.map((value) => (value * (0.95 + random() * 0.1)).toFixed(4)).join(',')}\n`;
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await once(out, 'drain');
      chunk = '';
    }
  }
  out.end(chunk);
  await once(out, 'finish');
  return (await stat(path)).size;
}

// inferd transform's own default on CPU, stated so that the ceiling gets the same threads.
const workers = defaultInstances({ executionProvider: 'cpu', cores: availableParallelism(), processes: 1, mainThreadCores: 1, intraOpNumThreads: 1 });
const root = await mkdtemp(join(tmpdir(), 'inferd-bench-transform-'));
try {
  const input = join(root, 'in');
  await mkdir(input);
  log(`generating ${rowsWanted.toLocaleString('en-US')} rows…`);
  const inputBytes = await writeRows(join(input, 'churn.csv'), rowsWanted);

  const ceilingRequest: CeilingRequest = {
    modelPath: join(options.modelsDir, 'churn-forest.onnx'),
    provider: 'cpu',
    threads: workers,
    secondsPerBatchSize: 2,
    spec: { batchSizes: [1024, 8192, 32768], feedVariants: [[{ name: 'features', dtype: 'float32', rowShape: [20], min: 0, max: 100 }]] },
    // The job's own rows: the forest walks deeper on them than on uniform noise.
    rowsCsvPath: join(input, 'churn.csv'),
  };
  const args = ['--input', input, '--output', join(root, 'out'), '--split-type', 'Line', '--batch-strategy', 'MultiRecord', '--assemble-with', 'Line'];
  const modelDir = await mkdtemp(join(tmpdir(), 'inferd-bench-forest-'));
  await writeFile(join(modelDir, 'inferd.json'), '{}\n');
  await symlink(ceilingRequest.modelPath, join(modelDir, 'model.onnx'));

  // Alternated, ceiling then job, round after round: a slowdown of the machine hits both.
  const rounds: Array<{ ceiling: CeilingResult; job: TransformSummary }> = [];
  for (let round = 1; round <= options.rounds; round++) {
    log(`round ${round}: in-process ceiling (session.run at large batch sizes, the job's rows)…`);
    const ceiling = JSON.parse(await run([join(REPO_ROOT, 'dist/bench/in-process-ceiling.js'), JSON.stringify(ceilingRequest)])) as CeilingResult;
    log(`round ${round}: inferd transform…`);
    await rm(join(root, 'out'), { recursive: true, force: true });
    const job = JSON.parse(
      await run([join(REPO_ROOT, 'dist/src/main.js'), 'transform', '--model-dir', modelDir, ...args], {
        SAGEMAKER_MODEL_SERVER_WORKERS: String(workers),
        SAGEMAKER_CONTAINER_LOG_LEVEL: 'warn',
      }),
    ) as TransformSummary;
    log(`round ${round}: ceiling ${Math.round(ceiling.best?.rowsPerS ?? 0)} rows/s, inferd transform ${Math.round(job.recordsPerS)} records/s, peak RSS ${job.peakRssMb.toFixed(0)} MB`);
    rounds.push({ ceiling, job });
  }
  await rm(modelDir, { recursive: true, force: true });

  const ratios = spread(rounds.map(({ ceiling, job }) => job.recordsPerS / (ceiling.best?.rowsPerS ?? Number.NaN)))!;
  const recordsPerS = spread(rounds.map(({ job }) => job.recordsPerS))!;
  const ceilingRowsPerS = spread(rounds.map(({ ceiling }) => ceiling.best?.rowsPerS))!;
  const peakRssMb = Math.max(...rounds.map(({ job }) => job.peakRssMb));
  const range = (s: { median: number; min: number; max: number }, format: (v: number) => string) => `${format(s.median)} (${format(s.min)}–${format(s.max)})`;
  const count = (v: number) => Math.round(v).toLocaleString('en-US');
  const times = (v: number) => `${v.toFixed(2)}×`;
  const result = {
    date: new Date().toISOString(),
    machine: { cores: availableParallelism(), cpu: cpus()[0]?.model ?? 'unknown' },
    rows: rowsWanted,
    inputMb: inputBytes / 2 ** 20,
    workers,
    command: `inferd transform ${args.join(' ')}`,
    ratioToCeiling: ratios,
    recordsPerS,
    ceilingRowsPerS,
    peakRssMb,
    rounds,
  };
  const markdown = [
    `# Batch transform benchmark, ${result.date}`,
    '',
    `${result.machine.cores} cores (${result.machine.cpu}); ${rowsWanted.toLocaleString('en-US')} generated churn rows, ${result.inputMb.toFixed(1)} MB of CSV; ${workers} worker(s) × 1 thread; ${options.rounds} rounds, each the in-process ceiling then the job. The ceiling runs \`session.run\` on the job's own rows at batch sizes 1,024, 8,192 and 32,768 (its best counts); the job splits into SageMaker's default 6 MB mini-batches. Median (min–max) over the rounds; the ratio is taken within each round.`,
    '',
    '| | records/s | vs ceiling | peak RSS (highest) |',
    '|---|--:|--:|--:|',
    `| \`inferd transform\` (MultiRecord, 6 MB mini-batches, in-process) | ${range(recordsPerS, count)} | ${range(ratios, times)} | ${peakRssMb.toFixed(0)} MB |`,
    `| in-process ceiling (\`session.run\`, the job's rows) | ${range(ceilingRowsPerS, count)} | 1.00× | |`,
    '',
    `Reproduce: \`BENCH_ROUNDS=${options.rounds} BENCH_TRANSFORM_ROWS=${rowsWanted} npm run bench:transform\`.`,
    '',
  ].join('\n');
  await saveResults('transform', result.date, result, markdown);
} finally {
  await rm(root, { recursive: true, force: true });
}
