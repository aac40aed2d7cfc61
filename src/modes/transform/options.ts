/**
 * `inferd transform` options: SageMaker's `CreateTransformJob` parameters under their own names
 * and meanings, validated once here. Values left unset are filled in `resolveOptions`: from the
 * running endpoint's `/execution-parameters` when there is one, as SageMaker does, else defaults.
 */
import { z } from 'zod';

const SPLIT_TYPES = ['None', 'Line', 'RecordIO'] as const;
const BATCH_STRATEGIES = ['SingleRecord', 'MultiRecord'] as const;

/** SageMaker's own limit on `MaxPayloadInMB`. */
const MAX_PAYLOAD_MB = 100;
const MAX_CONCURRENT_TRANSFORMS = 256;

const mediaType = z
  .string()
  .trim()
  .min(1)
  .transform((value) => value.split(';', 1)[0]!.trim().toLowerCase());

const count = z.coerce.number().int();

export const TransformOptionsSchema = z
  .object({
    input: z.string().min(1).optional().describe('Input prefix: `s3://bucket/prefix`, a directory, or one file.'),
    manifest: z.string().min(1).optional().describe('A SageMaker manifest file (`[{"prefix": ...}, "key", ...]`) instead of `--input`.'),
    output: z.string().min(1).describe('Output prefix: `s3://bucket/prefix` or a directory.'),
    modelDir: z.string().min(1).optional().describe('Model directory, run in-process (default as for `inferd serve`).'),
    endpoint: z.url().optional().describe('Send mini-batches to a running server (`http://host:port`) instead.'),
    targetModel: z
      .string()
      .min(1)
      .optional()
      .describe('A model of the repository (`X-Amzn-SageMaker-Target-Model`): in-process from `INFERD_MODEL_REPOSITORY`, or sent to `--endpoint`.'),
    contentType: mediaType.default('text/csv').describe('`TransformInput.ContentType`, sent as `Content-Type`.'),
    accept: mediaType.optional().describe('`TransformOutput.Accept`; unset: the content type when it is CSV or JSON, else JSON.'),
    splitType: z.enum(SPLIT_TYPES).default('None').describe('How an input object is cut into records.'),
    batchStrategy: z.enum(BATCH_STRATEGIES).optional().describe('`SingleRecord` or `MultiRecord` (records packed up to the payload limit).'),
    maxPayloadMb: z.coerce.number().min(0).max(MAX_PAYLOAD_MB).optional().describe('Largest mini-batch in MB; 0: whole objects, no limit.'),
    maxConcurrentTransforms: count.min(1).max(MAX_CONCURRENT_TRANSFORMS).optional().describe('Mini-batches in flight at once.'),
    assembleWith: z.enum(['None', 'Line']).default('None').describe('`Line` ends every answer with a newline.'),
    compression: z.enum(['None', 'Gzip']).default('None').describe('`Gzip` inputs are decompressed as they are read.'),
    inputFilter: z.string().default('$'),
    joinSource: z.enum(['None', 'Input']).default('None'),
    outputFilter: z.string().default('$'),
    overwrite: z.boolean().default(false).describe('Redo inputs whose `.out` already exists.'),
    shardIndex: count.min(0).default(0),
    shardCount: count.min(1).default(1),
    maxRetries: count.min(0).max(3).default(3).describe('`InvocationsMaxRetries`: retries of a failed mini-batch (endpoint only).'),
    invocationTimeoutS: z.coerce.number().positive().max(3600).default(600).describe('`InvocationsTimeoutInSeconds` of one mini-batch.'),
    recordErrors: z.enum(['fail', 'line']).default('fail').describe('In-process: `line` writes an error line for a bad record instead of failing its file.'),
  })
  .strict()
  .superRefine((options, ctx) => {
    const problem = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if ((options.input === undefined) === (options.manifest === undefined)) problem('input', 'give exactly one of --input and --manifest');
    if (options.endpoint !== undefined && options.modelDir !== undefined) problem('endpoint', 'give --endpoint or --model-dir, not both');
    if (options.targetModel !== undefined && options.modelDir !== undefined) problem('targetModel', 'give --target-model or --model-dir, not both');
    if (options.shardIndex >= options.shardCount) problem('shardIndex', `must be below --shard-count (${options.shardCount})`);
    if (options.batchStrategy === 'MultiRecord' && options.splitType === 'None') {
      problem('batchStrategy', 'MultiRecord needs --split-type Line or RecordIO, as in SageMaker');
    }
    const processing = options.inputFilter !== '$' || options.outputFilter !== '$' || options.joinSource === 'Input';
    if (processing && (options.splitType !== 'Line' || options.assembleWith !== 'Line')) {
      problem('joinSource', 'filters and joins work record by record: they need --split-type Line and --assemble-with Line');
    }
  });

export type TransformOptionsInput = z.input<typeof TransformOptionsSchema>;
export type TransformOptions = z.output<typeof TransformOptionsSchema>;

/** What a running server announces on `/execution-parameters`, SageMaker's second source of values. */
export interface ExecutionParameters {
  readonly MaxConcurrentTransforms?: number;
  readonly BatchStrategy?: string;
  readonly MaxPayloadInMB?: number;
}

export interface ResolvedOptions extends TransformOptions {
  readonly accept: string;
  readonly batchStrategy: (typeof BATCH_STRATEGIES)[number];
  readonly maxPayloadMb: number;
  readonly maxConcurrentTransforms: number;
}

const LINE_ACCEPT: Record<string, string> = {
  'text/csv': 'text/csv',
  'application/json': 'application/json',
  'application/jsonlines': 'application/jsonlines',
};

/** Job values first, then the container's, then SageMaker's defaults (1 transform, 6 MB). */
export function resolveOptions(options: TransformOptions, container: ExecutionParameters): ResolvedOptions {
  const announced = container.BatchStrategy?.toUpperCase().replace('_', '');
  const containerStrategy = announced === 'MULTIRECORD' ? 'MultiRecord' : announced === 'SINGLERECORD' ? 'SingleRecord' : undefined;
  return {
    ...options,
    accept: options.accept ?? LINE_ACCEPT[options.contentType] ?? 'application/json',
    batchStrategy: options.splitType === 'None' ? 'SingleRecord' : (options.batchStrategy ?? containerStrategy ?? 'MultiRecord'),
    maxPayloadMb: options.maxPayloadMb ?? Math.min(validPositive(container.MaxPayloadInMB) ?? 6, MAX_PAYLOAD_MB),
    maxConcurrentTransforms:
      options.maxConcurrentTransforms ?? Math.min(Math.max(1, Math.floor(validPositive(container.MaxConcurrentTransforms) ?? 1)), MAX_CONCURRENT_TRANSFORMS),
  };
}

function validPositive(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : undefined;
}
