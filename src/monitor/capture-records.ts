/**
 * SageMaker data capture records (one JSON object per line) to feature rows: the request side
 * (`captureData.endpointInput`) of each record inside a time window, whatever its encoding.
 */
import { parseCsv } from './csv-text.js';

/** [from, to): from inclusive, to exclusive. */
export interface TimeWindow {
  readonly from: Date;
  readonly to: Date;
}

export interface CaptureInput {
  readonly observedContentType: string;
  readonly data: string;
  readonly encoding: string;
}

export type LineOutcome =
  | { readonly kind: 'rows'; readonly rows: string[][] }
  | { readonly kind: 'outside-window' }
  | { readonly kind: 'skipped'; readonly reason: string };

type Rows = string[][];
type JsonObject = Record<string, unknown>;

const JSON_LINES_TYPES = new Set(['application/jsonlines', 'application/jsonl', 'application/x-jsonlines']);

function inWindow(time: Date, window: TimeWindow): boolean {
  return time >= window.from && time < window.to;
}

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function rowsFromCaptureLine(line: string, window: TimeWindow): LineOutcome {
  const record = parseJson(line);
  if (!isJsonObject(record)) return { kind: 'skipped', reason: 'line is not a JSON object' };
  const time = isJsonObject(record.eventMetadata) ? record.eventMetadata.inferenceTime : undefined;
  const inferenceTime = typeof time === 'string' ? new Date(time) : undefined;
  if (!inferenceTime || Number.isNaN(inferenceTime.getTime())) return { kind: 'skipped', reason: 'no valid eventMetadata.inferenceTime' };
  if (!inWindow(inferenceTime, window)) return { kind: 'outside-window' };

  const input = isJsonObject(record.captureData) ? record.captureData.endpointInput : undefined;
  if (!isJsonObject(input)) return { kind: 'skipped', reason: 'no captureData.endpointInput' };
  const { observedContentType, data, encoding } = input;
  if (typeof data !== 'string' || typeof encoding !== 'string') return { kind: 'skipped', reason: 'endpointInput has no string data and encoding' };
  return rowsFromInput({ observedContentType: typeof observedContentType === 'string' ? observedContentType : '', data, encoding });
}

/** The rows a captured request carries, read by its encoding and, for base64, its content type. */
export function rowsFromInput(input: CaptureInput): LineOutcome {
  const mediaType = (input.observedContentType.split(';')[0] ?? '').trim().toLowerCase();
  switch (input.encoding.toUpperCase()) {
    case 'CSV':
      return rowsOutcome(parseCsv(input.data), 'CSV');
    case 'JSON':
      return JSON_LINES_TYPES.has(mediaType) ? jsonLinesRows(input.data) : jsonRows(input.data);
    case 'BASE64': {
      const text = Buffer.from(input.data, 'base64').toString('utf8');
      if (mediaType === 'text/csv') return rowsOutcome(parseCsv(text), 'CSV');
      if (JSON_LINES_TYPES.has(mediaType)) return jsonLinesRows(text);
      if (mediaType === 'application/json' || mediaType.endsWith('+json')) return jsonRows(text);
      return { kind: 'skipped', reason: `base64 ${mediaType || 'untyped'} body is not tabular text` };
    }
    default:
      return { kind: 'skipped', reason: `unknown encoding ${input.encoding}` };
  }
}

function rowsOutcome(rows: Rows | undefined, format: string): LineOutcome {
  if (!rows || rows.length === 0) return { kind: 'skipped', reason: `${format} body is not one table of rows` };
  return { kind: 'rows', rows };
}

function jsonRows(text: string): LineOutcome {
  const body = parseJson(text);
  if (body === undefined) return { kind: 'skipped', reason: 'JSON body does not parse' };
  return rowsOutcome(rowsFromJsonBody(body), 'JSON');
}

function jsonLinesRows(text: string): LineOutcome {
  const rows: Rows = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const row = rowFromRecord(parseJson(line));
    if (!row) return { kind: 'skipped', reason: 'JSON Lines body has a line that is not one row' };
    rows.push(row);
  }
  return rowsOutcome(rows, 'JSON Lines');
}

/** `{"instances"}`, `{"inputs"}` (named or Open Inference Protocol v2) or a bare array; one input only. */
function rowsFromJsonBody(body: unknown): Rows | undefined {
  if (Array.isArray(body)) return rowsFromTensor(body);
  if (!isJsonObject(body)) return undefined;
  const { instances, inputs } = body;
  if (Array.isArray(instances)) return allRows(instances.map(rowFromRecord));
  if (Array.isArray(inputs)) {
    const [only] = inputs;
    if (inputs.length === 1 && isJsonObject(only) && typeof only.name === 'string') return rowsFromV2Tensor(only);
    return rowsFromTensor(inputs);
  }
  if (isJsonObject(inputs)) {
    const tensors = Object.values(inputs);
    return tensors.length === 1 && Array.isArray(tensors[0]) ? rowsFromTensor(tensors[0]) : undefined;
  }
  return undefined;
}

function allRows(rows: (string[] | undefined)[]): Rows | undefined {
  return rows.every((row) => row !== undefined) ? (rows as Rows) : undefined;
}

/** An `instances` element or a JSON Lines line: a row, or an object holding a single input's row. */
function rowFromRecord(record: unknown): string[] | undefined {
  if (Array.isArray(record)) return rowFromScalars(record);
  if (!isJsonObject(record)) return undefined;
  const values = Object.values(record);
  return values.length === 1 ? rowFromRecord(values[0]) : undefined;
}

/** A 1-D array is one row; a 2-D array is a row per element. */
function rowsFromTensor(tensor: unknown[]): Rows | undefined {
  if (tensor.length === 0) return undefined;
  if (tensor.every(Array.isArray)) return allRows(tensor.map(rowFromScalars));
  const row = rowFromScalars(tensor);
  return row && [row];
}

function rowsFromV2Tensor(tensor: JsonObject): Rows | undefined {
  const { shape, data } = tensor;
  if (!Array.isArray(shape) || !Array.isArray(data) || shape.length < 1 || shape.length > 2) return undefined;
  const values = rowFromScalars(data.flat(shape.length));
  const [batch, width] = shape.length === 2 ? shape : [1, shape[0]];
  if (!values || !Number.isSafeInteger(batch) || !Number.isSafeInteger(width) || values.length !== batch * width) return undefined;
  return Array.from({ length: batch as number }, (_, i) => values.slice(i * (width as number), (i + 1) * (width as number)));
}

/** JSON scalars as CSV-like cells: null is a missing cell; nested values make it not a row. */
function rowFromScalars(values: unknown[]): string[] | undefined {
  const row: string[] = [];
  for (const value of values) {
    if (value === null) row.push('');
    else if (typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') row.push(String(value));
    else return undefined;
  }
  return row;
}
