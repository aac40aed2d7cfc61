/** `inferd.json`, the optional per-model file beside the `.onnx`. Unknown keys are typos: rejected. */
import { z } from 'zod';

/** `workers` was this key's first name; it still works. */
const renameWorkers = (raw: unknown) => {
  if (typeof raw !== 'object' || raw === null || !('workers' in raw) || 'instances' in raw) return raw;
  const { workers, ...rest } = raw as Record<string, unknown>;
  return { ...rest, instances: workers };
};

export const ModelConfigSchema = z.preprocess(renameWorkers, z
  .object({
    name: z.string().min(1).optional().describe('Model name in logs and `/models`; default: the directory name.'),
    backend: z
      .enum(['onnx', 'tfjs'])
      .optional()
      .describe('`onnx` (ONNX Runtime) or `tfjs` (TensorFlow.js); unset: `onnx` when the directory holds an `.onnx` file, else `tfjs` when it holds a `model.json`.'),
    model: z
      .string()
      .regex(/^[^/\\]+\.(onnx|json)$/, 'must be the file name of an .onnx file (or a TF.js .json) in the model directory')
      .optional()
      .describe('Which model file to serve: the `.onnx` file, required when the directory holds several; for TF.js, its `model.json` under another name.'),
    inputs: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe('Input names the model must have; startup fails when they differ.'),
    outputs: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe('Outputs to compute and return, in this order; default: all, in the model\'s order.'),
    executionProvider: z.enum(['cpu', 'cuda']).default('cpu').describe('Execution provider.'),
    deviceId: z.number().int().min(0).default(0).describe('CUDA device ordinal.'),
    instances: z
      .number()
      .int()
      .min(1)
      .max(256)
      .optional()
      .describe('Model instances (worker threads, one session each); overrides `SAGEMAKER_MODEL_SERVER_WORKERS`. `workers` is accepted as an alias.'),
    minInstances: z.number().int().min(1).max(256).optional().describe('Fewest instances while the pool follows load; overrides `INFERD_MIN_INSTANCES`.'),
    maxInstances: z
      .number()
      .int()
      .min(1)
      .max(256)
      .optional()
      .describe('Most instances; turns worker autoscaling on for this model; overrides `INFERD_MAX_INSTANCES`.'),
    memoryMb: z
      .number()
      .positive()
      .optional()
      .describe(
        'The model\'s memory footprint in MiB, counted against `INFERD_MODEL_MEMORY_BUDGET_MB`; unset: measured as resident memory growth over the load (which cannot see GPU memory), at least the files\' size.',
      ),
    intraOpNumThreads: z.number().int().min(1).max(256).default(1).describe('ONNX Runtime threads per worker.'),
    batching: z
      .object({
        maxBatchSize: z.number().int().min(1).optional(),
        maxQueueDelayMs: z.number().min(0).optional(),
        preferredBatchSizes: z.array(z.number().int().min(1)).optional(),
        maxQueueSize: z.number().int().min(1).optional(),
        pad: z
          .record(
            z.string().min(1),
            z
              .object({
                value: z.number().default(0),
                buckets: z.array(z.number().int().min(1)).min(1).optional(),
                multipleOf: z.number().int().min(1).optional(),
              })
              .strict()
              .refine((rule) => rule.buckets === undefined || rule.multipleOf === undefined, { message: 'give buckets or multipleOf, not both' }),
          )
          .default({}),
      })
      .strict()
      .prefault({})
      .describe(
        'Per-model batching: `maxBatchSize`, `maxQueueDelayMs`, `preferredBatchSizes`, `maxQueueSize` (defaults from the server configuration) and `pad`, keyed by the model\'s symbolic dimension name: `{"seq": {"value": 0, "multipleOf": 8}}` pads each batch to the next multiple of 8, `{"seq": {"value": 0, "buckets": [16, 32, 64, 128]}}` to the next listed length; requests merge only within one such length.',
      ),
    graphOptimizationLevel: z
      .enum(['disabled', 'basic', 'extended', 'all'])
      .default('all')
      .describe('ONNX Runtime graph optimisation level.'),
  })
  .strict());

export type ModelConfig = z.output<typeof ModelConfigSchema>;
