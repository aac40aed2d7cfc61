/**
 * SageMaker's `DataCaptureConfig` document (as in CreateEndpointConfig), accepted whole through
 * `INFERD_DATA_CAPTURE_CONFIG` and translated into inferd's own capture settings.
 */
import { z } from 'zod';

const DataCaptureConfigSchema = z
  .object({
    EnableCapture: z.boolean().default(true),
    InitialSamplingPercentage: z.number().min(0).max(100),
    DestinationS3Uri: z.string().min(1),
    KmsKeyId: z.string().min(1).optional(),
    CaptureOptions: z
      .array(z.object({ CaptureMode: z.enum(['Input', 'Output', 'InputAndOutput']) }).strict())
      .min(1)
      .max(32),
    CaptureContentTypeHeader: z
      .object({
        CsvContentTypes: z.array(z.string().min(1)).max(10).optional(),
        JsonContentTypes: z.array(z.string().min(1)).max(10).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

/** Returns the capture layer, or the problems found, each prefixed with the variable's name. */
export function captureLayerFrom(json: string): { layer: Record<string, unknown> } | { problems: string[] } {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (error) {
    return { problems: [`INFERD_DATA_CAPTURE_CONFIG: not valid JSON (${(error as Error).message})`] };
  }
  const result = DataCaptureConfigSchema.safeParse(raw);
  if (!result.success) {
    return { problems: result.error.issues.map((i) => `INFERD_DATA_CAPTURE_CONFIG.${i.path.join('.')}: ${i.message}`) };
  }
  const doc = result.data;
  const modes = new Set(doc.CaptureOptions.flatMap(({ CaptureMode }) => (CaptureMode === 'InputAndOutput' ? ['Input', 'Output'] : [CaptureMode])));
  return {
    layer: {
      enabled: doc.EnableCapture,
      samplingPercentage: doc.InitialSamplingPercentage,
      destination: doc.DestinationS3Uri,
      modes: [...modes],
      ...(doc.KmsKeyId !== undefined && { kmsKeyId: doc.KmsKeyId }),
      ...(doc.CaptureContentTypeHeader?.CsvContentTypes && { csvContentTypes: doc.CaptureContentTypeHeader.CsvContentTypes }),
      ...(doc.CaptureContentTypeHeader?.JsonContentTypes && { jsonContentTypes: doc.CaptureContentTypeHeader.JsonContentTypes }),
    },
  };
}
