/**
 * The worker side of one batch, alone: inferd's ONNX worker entry against the batched reference's
 * worker (baselines/batched-worker.ts), each in a Piscina pool of one thread, fed the same churn
 * batch one at a time, taking turns in slices of 200 batches. It reports the CPU every thread but
 * the main one spent per batch (the worker, and V8's helpers), the main thread's, and the median
 * of the slices' ratios. No HTTP and no batcher: what inferd's worker entry costs around
 * `session.run`, against a worker that does nothing else.
 * `npm run build && node dist/bench/worker-batch.js` (ROWS, default 28: the churn load's batch
 * at 64 connections; PAIRS, default 40; BENCH_MODELS_DIR).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { WorkerOptions } from '../src/runtime/worker-protocol.js';
import { defineScenarios } from './scenarios.js';
import { median } from './stats.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const modelsDir = process.env.BENCH_MODELS_DIR ?? join(root, '..', 'shared', 'models');
const { modelPath } = defineScenarios(modelsDir)['churn-csv'];
const rows = Number(process.env.ROWS ?? 28);
const pairs = Number(process.env.PAIRS ?? 40);
const BATCHES_PER_SLICE = 200;
const WIDTH = 20;

const lines = readFileSync(join(modelsDir, 'churn-requests.csv'), 'utf8').trim().split('\n');
const batch = new Float32Array(rows * WIDTH);
for (let row = 0; row < rows; row += 1) batch.set(lines[row % lines.length]!.split(',').map(Number), row * WIDTH);

const workerOptions: WorkerOptions = {
  modelPath,
  executionProvider: 'cpu',
  deviceId: 0,
  requireGpu: false,
  intraOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  outputs: undefined,
};
// As inferd's pool starts an instance (worker-pool.ts), and as the reference starts its workers.
const inferd = new Piscina({ filename: join(root, 'dist/src/runtime/onnx-worker.js'), workerData: workerOptions, minThreads: 1, maxThreads: 1, idleTimeout: Number.POSITIVE_INFINITY, concurrentTasksPerWorker: 2 });
const reference = new Piscina({ filename: join(root, 'dist/bench/baselines/batched-worker.js'), workerData: { model: modelPath }, minThreads: 1, maxThreads: 1 });
const targets = {
  inferd: () => inferd.run({ inputs: { features: { dtype: 'float32', dims: [rows, WIDTH], data: batch.slice() } } }),
  reference: () => reference.run({ data: batch.slice(), rows, width: WIDTH }),
};

const runNs = (tid: string) => Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
const otherThreadsNs = () => readdirSync('/proc/self/task').reduce((sum, tid) => (tid === String(process.pid) ? sum : sum + runNs(tid)), 0);

interface Slice {
  readonly workersUs: number;
  readonly mainUs: number;
}

async function slice(run: () => Promise<unknown>): Promise<Slice> {
  const workersBefore = otherThreadsNs();
  const mainBefore = runNs(String(process.pid));
  for (let i = 0; i < BATCHES_PER_SLICE; i += 1) await run();
  return { workersUs: (otherThreadsNs() - workersBefore) / 1000 / BATCHES_PER_SLICE, mainUs: (runNs(String(process.pid)) - mainBefore) / 1000 / BATCHES_PER_SLICE };
}

try {
  for (let i = 0; i < 300; i += 1) await Promise.all([targets.inferd(), targets.reference()]);
  const slices: Record<keyof typeof targets, Slice[]> = { inferd: [], reference: [] };
  for (let pair = 0; pair < pairs; pair += 1) {
    const order = pair % 2 === 0 ? (['inferd', 'reference'] as const) : (['reference', 'inferd'] as const);
    for (const target of order) slices[target].push(await slice(targets[target]));
  }
  const shown = (values: readonly number[]) => median(values).toFixed(1);
  process.stdout.write(`${rows}-row churn batches, ${pairs} pairs of ${BATCHES_PER_SLICE}-batch slices, µs a batch (median):\n`);
  for (const target of ['inferd', 'reference'] as const) {
    process.stdout.write(`  ${target}: other threads ${shown(slices[target].map((s) => s.workersUs))}, main thread ${shown(slices[target].map((s) => s.mainUs))}\n`);
  }
  const ratios = slices.inferd.map((s, i) => s.workersUs / slices.reference[i]!.workersUs);
  process.stdout.write(`  inferd / reference, other threads: ${median(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})\n`);
} finally {
  await inferd.destroy();
  await reference.destroy();
}
