/**
 * Model outputs as text, record by record: record r of an output is its slice at dims[0] = r.
 * Shared by the row-oriented encoders (JSON predictions, JSON Lines, CSV) and JSON v2.
 */
import { InferdError } from '../errors.js';
import type { DType, ModelSignature, NamedTensors, Tensor, TensorData, TensorSpec } from './tensor.js';

type Format = (data: TensorData, index: number) => string;

const formatNumber: Format = (data, index) => String(data[index]);

// JSON has no NaN or Infinity literals: they travel as the strings "NaN", "Infinity" and
// "-Infinity", which Python's float() and inferd's own decoders read back.
const formatJsonFloat: Format = (data, index) => {
  const value = data[index] as number;
  return Number.isFinite(value) ? String(value) : `"${value}"`;
};

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
// Most JSON parsers read numbers as float64, which rounds integers beyond 2^53: send those as strings.
const formatJsonInt64: Format = (data, index) => {
  const value = data[index] as bigint;
  return value > MAX_SAFE || value < -MAX_SAFE ? `"${value}"` : String(value);
};

const JSON_FORMATS: Record<DType, Format> = {
  float32: formatJsonFloat,
  float64: formatJsonFloat,
  int8: formatNumber,
  uint8: formatNumber,
  int16: formatNumber,
  uint16: formatNumber,
  int32: formatNumber,
  int64: formatJsonInt64,
  bool: (data, index) => (data[index] ? 'true' : 'false'),
};

/** CSV stays all-numeric, so booleans are 1 and 0 (what the CSV decoder accepts). */
const CSV_FORMATS: Record<DType, Format> = {
  ...JSON_FORMATS,
  float32: formatNumber,
  float64: formatNumber,
  int64: formatNumber,
  bool: (data, index) => (data[index] ? '1' : '0'),
};

export interface OutputTensor {
  readonly spec: TensorSpec;
  readonly tensor: Tensor;
}

function internal(message: string): InferdError {
  return new InferdError('INFERD_ERR_INTERNAL', message);
}

/** The outputs in signature order; a missing one is a server fault, not the client's. */
export function signatureOutputs(outputs: NamedTensors, signature: ModelSignature): OutputTensor[] {
  return signature.outputs.map((spec) => {
    const tensor = outputs[spec.name];
    if (!tensor) throw internal(`the model returned no output '${spec.name}'`);
    return { spec, tensor };
  });
}

export interface OutputColumn extends OutputTensor {
  /** Values per record. */
  readonly stride: number;
}

/** Output names as JSON strings, for record objects: made once per signature, not per answer. */
const jsonKeys = new WeakMap<TensorSpec, string>();

function jsonKey(spec: TensorSpec): string {
  let key = jsonKeys.get(spec);
  if (key === undefined) {
    key = JSON.stringify(spec.name);
    jsonKeys.set(spec, key);
  }
  return key;
}

/** The outputs sliced by record; every output must have the same dims[0]. One pass: it runs for every answer. */
export function outputColumns(outputs: NamedTensors, signature: ModelSignature): { columns: OutputColumn[]; rows: number } {
  const columns: OutputColumn[] = [];
  let rows = 0;
  for (const spec of signature.outputs) {
    const tensor = outputs[spec.name];
    if (!tensor) throw internal(`the model returned no output '${spec.name}'`);
    if (tensor.dims.length === 0) throw internal(`output '${spec.name}' is a scalar, not a batch of records`);
    let stride = 1;
    for (let axis = 1; axis < tensor.dims.length; axis++) stride *= tensor.dims[axis] as number;
    if (columns.length === 0) rows = tensor.dims[0] as number;
    else if (tensor.dims[0] !== rows) throw internal(`output '${spec.name}' has ${tensor.dims[0]} records, expected ${rows}`);
    columns.push({ spec, tensor, stride });
  }
  return { columns, rows };
}

function jsonValues(data: TensorData, start: number, count: number, format: Format): string {
  let text = '[';
  for (let i = 0; i < count; i++) {
    if (i > 0) text += ',';
    text += format(data, start + i);
  }
  return `${text}]`;
}

/** dims[depth..] of the tensor as nested JSON arrays, starting at flat index `start`. */
function jsonNested(tensor: Tensor, depth: number, start: number, format: Format): string {
  const size = tensor.dims[depth] as number;
  if (depth === tensor.dims.length - 1) return jsonValues(tensor.data, start, size, format);
  let stride = 1;
  for (let axis = depth + 1; axis < tensor.dims.length; axis++) stride *= tensor.dims[axis] as number;
  let text = '[';
  for (let i = 0; i < size; i++) {
    if (i > 0) text += ',';
    text += jsonNested(tensor, depth + 1, start + i * stride, format);
  }
  return `${text}]`;
}

/** All values of a tensor as one flat JSON array (the v2 `data` field). */
export function jsonFlat(tensor: Tensor): string {
  return jsonValues(tensor.data, 0, tensor.data.length, JSON_FORMATS[tensor.dtype]);
}

function jsonSlice({ tensor, stride }: OutputColumn, row: number): string {
  const format = JSON_FORMATS[tensor.dtype];
  return tensor.dims.length === 1 ? format(tensor.data, row) : jsonNested(tensor, 1, row * stride, format);
}

/** One record as JSON: the output's slice, or an object of slices keyed by output name. */
export function jsonRecord(columns: readonly OutputColumn[], row: number): string {
  const [only] = columns;
  if (columns.length === 1 && only) return jsonSlice(only, row);
  let text = '{';
  columns.forEach((column, i) => {
    text += `${i > 0 ? ',' : ''}${jsonKey(column.spec)}:${jsonSlice(column, row)}`;
  });
  return `${text}}`;
}

/** One record as a CSV line (without its newline): every output's slice flattened, in order. */
export function csvRecord(columns: readonly OutputColumn[], row: number): string {
  let text = '';
  for (const { tensor, stride } of columns) {
    const format = CSV_FORMATS[tensor.dtype];
    const start = row * stride;
    for (let i = 0; i < stride; i++) {
      if (text !== '') text += ',';
      text += format(tensor.data, start + i);
    }
  }
  return text;
}
