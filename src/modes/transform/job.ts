/**
 * A transform job: every input object is read as a stream, split into records, packed into
 * mini-batches, answered through an invoker with a bounded number in flight, and assembled in
 * input order into `<output>/<relative path>.out`. An answer is uploaded as it is produced but
 * only ever appears whole: S3 completes a multipart upload atomically (and aborts it on failure),
 * local files are renamed into place. So an existing `.out` is a complete one, and a rerun skips
 * it. A failed file leaves nothing behind and the other files go on.
 */
import { once } from 'node:events';
import { PassThrough, Readable } from 'node:stream';
import { recordLines } from '../../codecs/batch-records.js';
import { decodeContent } from '../../codecs/content-encoding.js';
import type { ObjectStore } from '../../storage/object-store.js';
import { joinUri } from '../../storage/uri.js';
import { createRecordProcessor, type RecordFormat, type RecordProcessor } from './data-processing.js';
import { checkDistinctOutputs, inShard, listInputs, outputUriFor, readManifest, type InputObject } from './inputs.js';
import type { MiniBatchInvoker } from './invokers.js';
import type { ResolvedOptions } from './options.js';
import { miniBatches, splitRecords, type MiniBatch } from './split.js';

const MB = 1024 * 1024;

/**
 * Files transformed at once: two, so that one file's last mini-batches overlap the next one's
 * first. More would only hold more upload buffers (an S3 upload keeps up to 4 parts of 5 MiB).
 */
const FILES_AT_ONCE = 2;

export interface TransformProgress {
  start(files: number, bytes: number): void;
  bytesRead(bytes: number): void;
  recordsDone(records: number): void;
  fileDone(input: InputObject, outcome: 'done' | 'skipped' | 'failed', detail?: string): void;
}

export interface TransformJob {
  readonly options: ResolvedOptions;
  readonly invoker: MiniBatchInvoker;
  readonly openStore: (uri: string) => ObjectStore;
  readonly progress: TransformProgress;
}

export interface FileFailure {
  readonly input: string;
  readonly reason: string;
}

export interface TransformSummary {
  readonly input: string;
  readonly output: string;
  readonly shard: { readonly index: number; readonly count: number };
  readonly files: { readonly total: number; readonly done: number; readonly skipped: number; readonly failed: number };
  readonly records: number;
  readonly inputBytes: number;
  readonly durationS: number;
  readonly recordsPerS: number;
  readonly peakRssMb: number;
  readonly failures: readonly FileFailure[];
  readonly summaryUri: string;
}

/** Slots for mini-batches in flight, shared by the files being transformed. */
class Slots {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(count: number) {
    this.#free = count;
  }

  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

function recordFormat(mediaType: string): RecordFormat {
  return mediaType === 'text/csv' ? 'csv' : 'json';
}

async function jobInputs(job: TransformJob): Promise<InputObject[]> {
  const { options } = job;
  const inputs =
    options.manifest !== undefined
      ? await readManifest(job.openStore(options.manifest), options.manifest)
      : await listInputs(job.openStore(options.input!), options.input!, options.output);
  checkDistinctOutputs(inputs, options.output);
  return inputs;
}

export function summaryName({ shardIndex, shardCount }: ResolvedOptions): string {
  return shardCount === 1 ? 'transform-summary.json' : `transform-summary-shard-${shardIndex}-of-${shardCount}.json`;
}

export async function runTransform(job: TransformJob): Promise<TransformSummary> {
  const { options, progress } = job;
  const started = performance.now();
  const inputs = (await jobInputs(job))
    .filter((input) => inShard(input, options.shardIndex, options.shardCount))
    .sort((a, b) => (a.relativePath < b.relativePath ? -1 : a.relativePath > b.relativePath ? 1 : 0));
  const processor = createRecordProcessor(recordFormat(options.contentType), recordFormat(options.accept), options);
  const slots = new Slots(options.maxConcurrentTransforms);
  const outputStore = job.openStore(options.output);
  const failures: FileFailure[] = [];
  let done = 0;
  let skipped = 0;
  let records = 0;
  let inputBytes = 0;
  progress.start(inputs.length, inputs.reduce((sum, input) => sum + input.sizeBytes, 0));

  const next = inputs.values();
  const transformFiles = async () => {
    for (const input of next) {
      const outputUri = outputUriFor(options.output, input);
      try {
        if (!options.overwrite && (await outputStore.exists(outputUri))) {
          skipped++;
          progress.fileDone(input, 'skipped');
          continue;
        }
        const result = await transformFile(job, input, outputUri, outputStore, processor, slots);
        done++;
        records += result.records;
        inputBytes += result.bytes;
        progress.fileDone(input, 'done');
      } catch (error) {
        const reason = (error as Error).message;
        failures.push({ input: input.uri, reason });
        progress.fileDone(input, 'failed', reason);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(FILES_AT_ONCE, inputs.length) }, transformFiles));

  const durationS = (performance.now() - started) / 1000;
  const summaryUri = joinUri(options.output, summaryName(options));
  const summary: TransformSummary = {
    input: options.input ?? options.manifest!,
    output: options.output,
    shard: { index: options.shardIndex, count: options.shardCount },
    files: { total: inputs.length, done, skipped, failed: failures.length },
    records,
    inputBytes,
    durationS,
    recordsPerS: durationS > 0 ? records / durationS : 0,
    // maxRSS is in KiB and covers the whole process, inference worker threads included.
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    failures: failures.sort((a, b) => (a.input < b.input ? -1 : 1)),
    summaryUri,
  };
  await outputStore.put(summaryUri, `${JSON.stringify(summary, null, 2)}\n`, { contentType: 'application/json' });
  return summary;
}

/**
 * One object answered into `outputUri` record by record, never held whole: what an async
 * request does when its payload is a record stream (CSV, JSON Lines).
 */
export async function transformObject(job: TransformJob, input: InputObject, outputUri: string): Promise<{ records: number; bytes: number }> {
  const { options } = job;
  const processor = createRecordProcessor(recordFormat(options.contentType), recordFormat(options.accept), options);
  return transformFile(job, input, outputUri, job.openStore(outputUri), processor, new Slots(options.maxConcurrentTransforms));
}

/** The source as it arrives, counted for progress, and decompressed when it is gzip. */
function sourceBytes(source: Readable, gzip: boolean, progress: TransformProgress, counter: { bytes: number }): AsyncIterable<Buffer> {
  async function* counted() {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      counter.bytes += chunk.length;
      progress.bytesRead(chunk.length);
      yield chunk;
    }
  }
  if (!gzip) return counted();
  return gunzipped(Readable.from(counted()));
}

/** The decoder leaves its source to its owner; here that is this function. */
async function* gunzipped(source: Readable): AsyncGenerator<Buffer> {
  try {
    yield* decodeContent(source, 'gzip');
  } finally {
    source.destroy();
  }
}

/** Filtered records for the model, keeping each original for the join, in order. */
async function* filtered(records: AsyncIterable<Buffer>, processor: RecordProcessor, originals: Buffer[]): AsyncGenerator<Buffer> {
  for await (const record of records) {
    originals.push(record);
    yield Buffer.from(processor.filterInput(record.toString('utf8')), 'utf8');
  }
}

const NEWLINE = Buffer.from('\n');

function assemble(answer: Buffer, batch: MiniBatch, originals: readonly Buffer[] | undefined, processor: RecordProcessor, lineEnds: boolean): Buffer {
  if (!originals) return lineEnds && answer.at(-1) !== 0x0a ? Buffer.concat([answer, NEWLINE]) : answer;
  const lines = recordLines(answer);
  if (lines.length !== batch.records.length) {
    throw new Error(`the model answered ${lines.length} records for ${batch.records.length}: a join needs one answer per record`);
  }
  let text = '';
  lines.forEach((line, i) => (text += `${processor.assemble(originals[i]!.toString('utf8'), line.toString('utf8'))}\n`));
  return Buffer.from(text, 'utf8');
}

async function transformFile(
  job: TransformJob,
  input: InputObject,
  outputUri: string,
  outputStore: ObjectStore,
  processor: RecordProcessor,
  slots: Slots,
): Promise<{ records: number; bytes: number }> {
  const { options, progress } = job;
  const maxPayloadBytes = options.maxPayloadMb === 0 ? Number.POSITIVE_INFINITY : Math.max(1, Math.floor(options.maxPayloadMb * MB));
  const counter = { bytes: 0 };
  const source = await job.openStore(input.uri).get(input.uri);
  const out = new PassThrough();
  const upload = outputStore.put(outputUri, out, { contentType: options.accept });
  upload.catch(() => {});

  const write = async (chunk: Buffer) => {
    if (!out.write(chunk)) await Promise.race([once(out, 'drain'), upload]);
  };
  const originals: Buffer[] | undefined = processor.identity ? undefined : [];
  const records = splitRecords(sourceBytes(source, options.compression === 'Gzip', progress, counter), options.splitType, maxPayloadBytes);
  const batches = miniBatches(originals ? filtered(records, processor, originals) : records, {
    splitType: options.splitType,
    strategy: options.batchStrategy,
    maxPayloadBytes,
  });

  let failure: unknown;
  let answered = 0;
  let recordsSent = 0;
  // Answers are written by this chain, in input order, while the loop below sends more.
  let writes: Promise<void> = Promise.resolve();
  try {
    for await (const batch of batches) {
      await slots.acquire();
      if (failure !== undefined) {
        slots.release();
        break;
      }
      const sent = originals?.splice(0, batch.records.length);
      const first = recordsSent + 1;
      recordsSent += batch.records.length;
      const last = recordsSent;
      const answer = job.invoker.invoke(batch.body).then(
        (body) => assemble(body, batch, sent, processor, options.assembleWith === 'Line'),
        (error: unknown) => {
          // The invoker's message counts lines within the mini-batch; say where it is in the file.
          throw new Error(`records ${first}-${last} of the file: ${(error as Error).message}`, { cause: error });
        },
      );
      answer.catch(() => {});
      writes = writes.then(async () => {
        try {
          if (failure !== undefined) {
            // Its slot is free only once its invocation is, so a failure never lets more run at once.
            await answer.catch(() => {});
            return;
          }
          await write(await answer);
          answered += batch.records.length;
          progress.recordsDone(batch.records.length);
        } catch (error) {
          failure ??= error;
        } finally {
          slots.release();
        }
      });
    }
  } catch (error) {
    failure ??= error;
  }
  await writes;
  if (failure !== undefined) {
    source.destroy();
    out.destroy(failure as Error);
    await upload.catch(() => {});
    throw failure;
  }
  out.end();
  await upload;
  return { records: answered, bytes: counter.bytes };
}
