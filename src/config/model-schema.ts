/** `inferd.json`, the optional per-model file beside the `.onnx`. Unknown keys are typos: rejected. */
import { z } from 'zod';

export const ModelConfigSchema = z
  .object({
    name: z.string().min(1).optional().describe('Model name in logs and `/models`; default: the directory name.'),
    model: z
      .string()
      .regex(/^[^/\\]+\.onnx$/, 'must be the file name of an .onnx file in the model directory')
      .optional()
      .describe('Which `.onnx` file to serve; required when the directory holds several.'),
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
    workers: z.number().int().min(1).max(256).optional().describe('Worker threads; overrides `SAGEMAKER_MODEL_SERVER_WORKERS`.'),
    intraOpNumThreads: z.number().int().min(1).max(256).default(1).describe('ONNX Runtime threads per worker.'),
    graphOptimizationLevel: z
      .enum(['disabled', 'basic', 'extended', 'all'])
      .default('all')
      .describe('ONNX Runtime graph optimisation level.'),
  })
  .strict();

export type ModelConfig = z.output<typeof ModelConfigSchema>;
