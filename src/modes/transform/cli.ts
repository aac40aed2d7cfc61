/**
 * `inferd transform`: a SageMaker batch transform job on its own, in-process through the same
 * runtime and batching as the server, or against a running server with `--endpoint`.
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ConfigError, loadConfig } from '../../config/load-config.js';
import type { Config } from '../../config/schema.js';
import { InferdError } from '../../errors.js';
import { repositorySettings, runtimeSettings } from '../../config/runtime-settings.js';
import { ModelRepository } from '../../repository/repository.js';
import { targetModelPath } from '../../repository/target-model.js';
import { locateModel } from '../../runtime/model-dir.js';
import { Runtime, type ModelInfo } from '../../runtime/runtime.js';
import { StorageError } from '../../storage/object-store.js';
import { openObjectStore } from '../../storage/open-store.js';
import { DataProcessingError, InvalidJsonPathError } from './data-processing.js';
import { InputError } from './inputs.js';
import { endpointInvoker, fetchExecutionParameters, inProcessInvoker, InvokerSetupError, type MiniBatchInvoker } from './invokers.js';
import { runTransform, type TransformSummary } from './job.js';
import { resolveOptions, TransformOptionsSchema, type ResolvedOptions, type TransformOptions } from './options.js';
import { ConsoleProgress, type ProgressOutput } from './progress.js';

export const TRANSFORM_USAGE = `Usage: inferd transform --input URI | --manifest URI --output URI [options]

Runs the model over every object under --input (s3://bucket/prefix, a directory or a file) and
writes <output>/<relative path>.out for each, as SageMaker Batch Transform does. In-process by
default (--model-dir DIR, or the server's default model, or --target-model PATH of the
INFERD_MODEL_REPOSITORY); --endpoint http://host:port sends the mini-batches to a running server
instead (with --target-model, to that model of its repository).

Options (SageMaker's names and meanings):
  --target-model PATH            a model of the repository (X-Amzn-SageMaker-Target-Model)
  --content-type TYPE            text/csv (default), application/json, application/jsonlines, ...
  --accept TYPE                  answer type; default: the content type for CSV/JSON, else JSON
  --split-type None|Line|RecordIO                         default None: each object whole
  --batch-strategy SingleRecord|MultiRecord               default MultiRecord (with a split type)
  --max-payload-mb N             largest mini-batch, 0-100 (0: whole objects); default: 1 for
                                 MultiRecord in-process, else what the endpoint announces, else 6
  --max-concurrent-transforms N  mini-batches in flight; default 2 per model instance
  --assemble-with None|Line      Line: every answer ends with a newline
  --compression None|Gzip        gzip inputs are decompressed as they are read
  --input-filter PATH --join-source None|Input --output-filter PATH   JSONPath subset
  --overwrite                    redo inputs whose .out exists (default: skip them, so a rerun resumes)
  --shard-index I --shard-count N   take only shard I of N of the input objects
  --max-retries N                retries of a failed mini-batch, 0-3 (endpoint only); default 3
  --invocation-timeout-s S       per mini-batch, default 600
  --record-errors fail|line      in-process: line writes an error line for a bad record instead of
                                 failing its file

Exit status: 0 every file done (or skipped), 1 some file failed (listed on stderr), 2 bad usage.`;

const FLAGS = {
  input: 'input',
  manifest: 'manifest',
  output: 'output',
  'model-dir': 'modelDir',
  endpoint: 'endpoint',
  'target-model': 'targetModel',
  'content-type': 'contentType',
  accept: 'accept',
  'split-type': 'splitType',
  'batch-strategy': 'batchStrategy',
  'max-payload-mb': 'maxPayloadMb',
  'max-concurrent-transforms': 'maxConcurrentTransforms',
  'assemble-with': 'assembleWith',
  compression: 'compression',
  'input-filter': 'inputFilter',
  'join-source': 'joinSource',
  'output-filter': 'outputFilter',
  'shard-index': 'shardIndex',
  'shard-count': 'shardCount',
  'max-retries': 'maxRetries',
  'invocation-timeout-s': 'invocationTimeoutS',
  'record-errors': 'recordErrors',
} as const;

export interface TransformIo {
  readonly stdout: (text: string) => void;
  readonly stderr: ProgressOutput;
  readonly env: Readonly<Record<string, string | undefined>>;
}

class UsageError extends Error {}

const EXIT_FAILED = 1;
const PACKED_PAYLOAD_MB = 1;
const SAGEMAKER_PAYLOAD_MB = 6;
const EXIT_USAGE = 2;

function parseOptions(argv: readonly string[]): TransformOptions | undefined {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      ...Object.fromEntries(Object.keys(FLAGS).map((flag) => [flag, { type: 'string' as const }])),
      overwrite: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return undefined;
  const raw: Record<string, unknown> = { overwrite: values.overwrite === true };
  for (const [flag, key] of Object.entries(FLAGS)) {
    const value = (values as Record<string, unknown>)[flag];
    // zod would coerce '' to 0, and 0 means something (no payload limit, shard 0).
    if (value === '') throw new UsageError(`--${flag} needs a value`);
    if (value !== undefined) raw[key] = value;
  }
  const parsed = TransformOptionsSchema.safeParse(raw);
  if (!parsed.success) {
    const flagOf = (key: PropertyKey | undefined) => Object.entries(FLAGS).find(([, k]) => k === key)?.[0] ?? String(key);
    throw new UsageError(parsed.error.issues.map((issue) => `--${flagOf(issue.path[0])}: ${issue.message}`).join('\n'));
  }
  return parsed.data;
}

interface Target {
  readonly invoker: MiniBatchInvoker;
  readonly options: ResolvedOptions;
  close(): Promise<void>;
}

/** The job's model, loaded: the repository's `--target-model`, or the model directory. */
async function loadJobModel(runtime: Runtime, options: TransformOptions, config: Config): Promise<ModelInfo> {
  if (options.targetModel !== undefined) {
    const settings = repositorySettings(config);
    if (settings === undefined) throw new UsageError('--target-model names a model of INFERD_MODEL_REPOSITORY, which is not set');
    const repository = new ModelRepository(settings, (uri) => openObjectStore(uri, config.storage));
    const name = targetModelPath(options.targetModel);
    return runtime.load(name, await repository.fetch(name));
  }
  if (config.model.dir === undefined) throw new UsageError('name the model: --model-dir DIR, or --target-model PATH of INFERD_MODEL_REPOSITORY');
  const location = await locateModel(config.model.dir);
  return runtime.load(location.name, { dir: location.dir, url: location.dir });
}

async function inProcessTarget(options: TransformOptions, config: Config, io: TransformIo): Promise<Target> {
  // The job's own timeout governs a mini-batch, as InvocationsTimeoutInSeconds does in SageMaker.
  const log = pino({ level: config.server.logLevel }, pino.destination(2));
  const runtime = new Runtime(runtimeSettings(config, { invocationTimeoutS: options.invocationTimeoutS }), log);
  try {
    const model = await loadJobModel(runtime, options, config);
    // What the model would announce on /execution-parameters if it were served: two mini-batches
    // per instance keep every instance busy, and packed mini-batches of 1 MB (about 7,000 churn
    // rows) are past the point where larger batches run faster, while holding less memory
    // (measured: 1 MB 266 MB peak RSS, 6 MB 352 MB, on 3,000,000 rows; 1 MB was also the faster).
    // Whole objects and single records keep SageMaker's 6 MB limit.
    const packed = options.splitType !== 'None' && options.batchStrategy !== 'SingleRecord';
    let resolved = resolveOptions(options, {
      MaxConcurrentTransforms: model.maxInstances * 2,
      MaxPayloadInMB: packed ? PACKED_PAYLOAD_MB : SAGEMAKER_PAYLOAD_MB,
      BatchStrategy: 'MULTI_RECORD',
    });
    if (resolved.splitType === 'RecordIO' && resolved.batchStrategy === 'MultiRecord') {
      // inferd's decoders read one payload per request; RecordIO framing is the job's to strip.
      if (options.batchStrategy === 'MultiRecord') io.stderr.write('RecordIO records are sent one per mini-batch in-process (SingleRecord)\n');
      resolved = { ...resolved, batchStrategy: 'SingleRecord' };
    }
    const invoker = inProcessInvoker(runtime, model, { contentType: resolved.contentType, accept: resolved.accept, recordErrors: resolved.recordErrors });
    return { invoker, options: resolved, close: () => runtime.close() };
  } catch (error) {
    await runtime.close();
    throw error;
  }
}

async function endpointTarget(options: TransformOptions, endpoint: string): Promise<Target> {
  const resolved = resolveOptions(options, await fetchExecutionParameters(endpoint));
  return { invoker: endpointInvoker(endpoint, resolved), options: resolved, close: async () => {} };
}

/** `argv` is what follows `inferd transform`. Returns the exit code. */
export async function runTransformCommand(argv: readonly string[], io: TransformIo): Promise<number> {
  let target: Target | undefined;
  try {
    const options = parseOptions(argv);
    if (!options) {
      io.stdout(`${TRANSFORM_USAGE}\n`);
      return 0;
    }
    const config = loadConfig({ env: io.env, flags: options.modelDir ? { 'model-dir': options.modelDir } : {} });
    target = options.endpoint ? await endpointTarget(options, options.endpoint) : await inProcessTarget(options, config, io);
    const progress = new ConsoleProgress(io.stderr);
    let summary: TransformSummary;
    try {
      summary = await runTransform({
        options: target.options,
        invoker: target.invoker,
        openStore: (uri) => openObjectStore(uri, config.storage),
        progress,
      });
    } finally {
      progress.stop();
    }
    io.stdout(`${JSON.stringify(summary, null, 2)}\n`);
    if (summary.failures.length === 0) return 0;
    io.stderr.write(`${summary.failures.length} file(s) failed:\n${summary.failures.map((f) => `  ${f.input}: ${f.reason}`).join('\n')}\n`);
    return EXIT_FAILED;
  } catch (error) {
    const usage =
      error instanceof UsageError ||
      error instanceof ConfigError ||
      error instanceof DataProcessingError ||
      error instanceof InvalidJsonPathError ||
      error instanceof InvokerSetupError ||
      (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    const known = usage || error instanceof InputError || error instanceof StorageError || error instanceof InferdError;
    io.stderr.write(`inferd transform: ${known ? (error as Error).message : (error as Error).stack}\n${usage ? `\n${TRANSFORM_USAGE}\n` : ''}`);
    return usage ? EXIT_USAGE : EXIT_FAILED;
  } finally {
    await target?.close();
  }
}
