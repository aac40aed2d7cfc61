/**
 * One captured invocation, exactly as SageMaker Data Capture writes it: a JSON object per line
 * with `captureData.endpointInput` / `endpointOutput`, `eventMetadata` and `eventVersion` "0".
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';

export type CaptureEncoding = 'CSV' | 'JSON' | 'BASE64';
export type CaptureMode = 'Input' | 'Output';

const CapturedData = z
  .object({
    observedContentType: z.string(),
    mode: z.enum(['INPUT', 'OUTPUT']),
    data: z.string(),
    encoding: z.enum(['CSV', 'JSON', 'BASE64']),
  })
  .strict();

/** SageMaker's record format; tests and the monitor validate captured lines against it. */
export const CaptureRecordSchema = z
  .object({
    captureData: z
      .object({ endpointInput: CapturedData.optional(), endpointOutput: CapturedData.optional() })
      .strict()
      .refine((data) => data.endpointInput || data.endpointOutput, 'captures the input, the output or both'),
    eventMetadata: z
      .object({
        eventId: z.uuid(),
        inferenceId: z.string().min(1).max(64).optional(),
        inferenceTime: z.iso.datetime(),
        customAttributes: z.array(z.string()).optional(),
        // SageMaker's MME records name no field for it; inferd's own, set only when a request names a model.
        targetModel: z.string().min(1).max(1024).optional(),
      })
      .strict(),
    eventVersion: z.literal('0'),
  })
  .strict();

export type CaptureRecord = z.output<typeof CaptureRecordSchema>;

export interface CapturedExchange {
  readonly requestBody: Buffer;
  readonly requestContentType: string | undefined;
  readonly responseBody: Buffer | string;
  readonly responseContentType: string | undefined;
  readonly inferenceId: string | undefined;
  readonly customAttributes: string | undefined;
  /** The model a request named (`X-Amzn-SageMaker-Target-Model`, or `/models/{name}/invoke`). */
  readonly targetModel?: string | undefined;
  readonly time: Date;
}

export interface RecordFormat {
  readonly modes: readonly CaptureMode[];
  readonly csvContentTypes: readonly string[];
  readonly jsonContentTypes: readonly string[];
}

const mediaType = (contentType: string | undefined) => contentType?.split(';', 1)[0]?.trim().toLowerCase() ?? '';

function encodingOf(contentType: string | undefined, format: RecordFormat): CaptureEncoding {
  const type = mediaType(contentType);
  if (format.csvContentTypes.some((t) => t.toLowerCase() === type)) return 'CSV';
  if (format.jsonContentTypes.some((t) => t.toLowerCase() === type)) return 'JSON';
  return 'BASE64';
}

function captured(body: Buffer | string, contentType: string | undefined, mode: 'INPUT' | 'OUTPUT', format: RecordFormat) {
  const encoding = encodingOf(contentType, format);
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  return {
    observedContentType: contentType ?? '',
    mode,
    data: encoding === 'BASE64' ? bytes.toString('base64') : bytes.toString('utf8'),
    encoding,
  };
}

/** Second precision, as SageMaker writes it. */
const isoSeconds = (time: Date) => `${time.toISOString().slice(0, 19)}Z`;

export function buildCaptureRecord(exchange: CapturedExchange, format: RecordFormat): CaptureRecord {
  return {
    captureData: {
      ...(format.modes.includes('Input') && {
        endpointInput: captured(exchange.requestBody, exchange.requestContentType, 'INPUT', format),
      }),
      ...(format.modes.includes('Output') && {
        endpointOutput: captured(exchange.responseBody, exchange.responseContentType, 'OUTPUT', format),
      }),
    },
    eventMetadata: {
      eventId: randomUUID(),
      ...(exchange.inferenceId !== undefined && { inferenceId: exchange.inferenceId }),
      inferenceTime: isoSeconds(exchange.time),
      ...(exchange.customAttributes !== undefined && { customAttributes: [exchange.customAttributes] }),
      ...(exchange.targetModel !== undefined && { targetModel: exchange.targetModel }),
    },
    eventVersion: '0',
  };
}

/** `<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/`: the hour folder of a time, in UTC. */
export function hourFolder(time: Date): string {
  const iso = time.toISOString();
  return `${iso.slice(0, 4)}/${iso.slice(5, 7)}/${iso.slice(8, 10)}/${iso.slice(11, 13)}`;
}

/** `<MM>-<SS>-<mmm>-<uuid>.jsonl`: minute, second and millisecond within the hour folder. */
export function objectName(time: Date): string {
  const iso = time.toISOString();
  return `${iso.slice(14, 16)}-${iso.slice(17, 19)}-${iso.slice(20, 23)}-${randomUUID()}.jsonl`;
}
