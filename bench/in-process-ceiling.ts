/**
 * The in-process ceiling, run as its own process so that onnxruntime-node loads once, there:
 * `session.run` in a tight loop at each batch size, with inferd's session options, no HTTP, no
 * codecs, no queue. Prints a CeilingResult as JSON on stdout. For inferd's layout of several
 * instances, the bench runs one such process per instance at once (`startAtEpochMs`).
 * Usage: node in-process-ceiling.js '<CeilingRequest as JSON>'
 */
import { closeSync, openSync, readSync } from 'node:fs';
import ort from 'onnxruntime-node';
import type { Provider } from './options.js';
import { seededRandom } from './payloads.js';
import type { CeilingSpec, FeedSpec } from './scenarios.js';

export interface CeilingRequest {
  readonly modelPath: string;
  readonly provider: Provider;
  readonly threads: number;
  readonly secondsPerBatchSize: number;
  readonly spec: CeilingSpec;
  /**
   * A headerless CSV whose rows feed the first input instead of random values, cycled to the
   * batch size: a model whose cost depends on its data (a tree ensemble walks deeper on real
   * rows than on uniform noise, here 2.2x slower) must be measured on the rows it will serve.
   */
  readonly rowsCsvPath?: string;
  /**
   * When the sweep starts, by the wall clock, so that processes started together measure each
   * batch size in the same window (each batch size gets its slot of `secondsPerBatchSize`);
   * unset: at once.
   */
  readonly startAtEpochMs?: number;
}

/** Enough of the file for the largest batch: rows are a few hundred bytes at most. */
const ROWS_READ_BYTES = 16 * 1024 * 1024;

function csvRows(path: string): number[][] {
  const buffer = Buffer.alloc(ROWS_READ_BYTES);
  const descriptor = openSync(path, 'r');
  const bytes = readSync(descriptor, buffer, 0, buffer.length, 0);
  closeSync(descriptor);
  const lines = buffer.toString('utf8', 0, bytes).split('\n');
  // The last line read may be cut short.
  if (bytes === buffer.length) lines.pop();
  return lines.filter((line) => line.trim() !== '').map((line) => line.split(',').map(Number));
}

/** `batchSize` rows of the file from `offset` on, cycled. */
function tensorOfRows(rows: readonly number[][], batchSize: number, offset: number): ort.Tensor {
  const width = rows[0]!.length;
  const data = new Float32Array(batchSize * width);
  for (let i = 0; i < batchSize; i++) data.set(rows[(offset + i) % rows.length]!, i * width);
  return new ort.Tensor('float32', data, [batchSize, width]);
}

export interface BatchSizeResult {
  readonly batchSize: number;
  readonly runs: number;
  readonly rowsPerS: number | null;
  readonly error?: string;
}

export interface CeilingResult {
  readonly threads: number;
  /** Processes that ran the sweep at once, rows/s summed over them: 1 when run directly. */
  readonly processes: number;
  /** How long after `startAtEpochMs` the sweep began (its inputs built and warmed up first); 0 without it. */
  readonly startedLateMs: number;
  readonly provider: Provider;
  readonly sweep: readonly BatchSizeResult[];
  readonly best: BatchSizeResult | null;
}

const MIN_RUNS = 3;
/** Distinct inputs a run cycles through when the rows come from a file. */
const ROW_VARIANTS = 16;

type Feeds = Record<string, ort.Tensor>;

function tensorFor(feed: FeedSpec, batchSize: number, random: () => number): ort.Tensor {
  const dims = [batchSize, ...feed.rowShape];
  const size = dims.reduce((a, b) => a * b, 1);
  if (feed.dtype === 'int64') {
    return new ort.Tensor('int64', BigInt64Array.from({ length: size }, () => BigInt(feed.min + Math.floor(random() * (feed.max - feed.min + 1)))), dims);
  }
  return new ort.Tensor('float32', Float32Array.from({ length: size }, () => feed.min + random() * (feed.max - feed.min)), dims);
}

function inputsFor(request: CeilingRequest, batchSize: number, rows: readonly number[][] | undefined): Feeds[] {
  if (rows) {
    // Successive rows of the file, so that a model whose cost depends on its data sees many.
    const name = request.spec.feedVariants[0]![0]!.name;
    return Array.from({ length: ROW_VARIANTS }, (_, k) => ({ [name]: tensorOfRows(rows, batchSize, k * batchSize) }));
  }
  const random = seededRandom(batchSize);
  return request.spec.feedVariants.map((feeds) => Object.fromEntries(feeds.map((feed) => [feed.name, tensorFor(feed, batchSize, random)])));
}

async function measure(session: ort.InferenceSession, batchSize: number, variants: readonly Feeds[], endAtEpochMs: number): Promise<BatchSizeResult> {
  try {
    let runs = 0;
    const started = performance.now();
    while (runs < MIN_RUNS || Date.now() < endAtEpochMs) {
      await session.run(variants[runs % variants.length]!);
      runs += 1;
    }
    return { batchSize, runs, rowsPerS: (runs * batchSize) / ((performance.now() - started) / 1000) };
  } catch (error) {
    return { batchSize, runs: 0, rowsPerS: null, error: (error as Error).message };
  }
}

const request = JSON.parse(process.argv[2] ?? '') as CeilingRequest;
const session = await ort.InferenceSession.create(request.modelPath, {
  executionProviders: [request.provider],
  intraOpNumThreads: request.threads,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  // As inferd's workers do, so the ceiling differs from the server only by what is around run().
  extra: { session: { intra_op: { allow_spinning: '0' } } },
});
const rows = request.rowsCsvPath === undefined ? undefined : csvRows(request.rowsCsvPath);
// Inputs built and each batch size warmed up before the sweep, so that every slot measures runs only.
const prepared = new Map<number, { variants: Feeds[]; warmupError?: string }>();
for (const batchSize of request.spec.batchSizes) {
  const variants = inputsFor(request, batchSize, rows);
  try {
    await session.run(variants[0]!);
    prepared.set(batchSize, { variants });
  } catch (error) {
    prepared.set(batchSize, { variants, warmupError: (error as Error).message });
  }
}
const slotMs = request.secondsPerBatchSize * 1000;
const startAtMs = request.startAtEpochMs ?? Date.now();
const startedLateMs = Math.max(0, Date.now() - startAtMs);
const sweep: BatchSizeResult[] = [];
for (const [slot, batchSize] of request.spec.batchSizes.entries()) {
  const waitMs = startAtMs + slot * slotMs - Date.now();
  if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
  const { variants, warmupError } = prepared.get(batchSize)!;
  sweep.push(warmupError === undefined ? await measure(session, batchSize, variants, startAtMs + (slot + 1) * slotMs) : { batchSize, runs: 0, rowsPerS: null, error: warmupError });
}
const best = sweep.reduce<BatchSizeResult | null>((top, r) => (r.rowsPerS !== null && r.rowsPerS > (top?.rowsPerS ?? 0) ? r : top), null);
const result: CeilingResult = { threads: request.threads, processes: 1, startedLateMs, provider: request.provider, sweep, best };
process.stdout.write(`${JSON.stringify(result)}
`);
