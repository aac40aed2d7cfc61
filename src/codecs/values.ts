/** Converting client values into a model dtype, with the range checks that dtype demands. */
import { invalidInput } from '../errors.js';
import { allocate, bytesPerElement, isFloat, view, type DType, type TensorData, type TensorSpec } from './tensor.js';

export type DTypeKind = 'float' | 'int' | 'bool';

export function kindOf(dtype: DType): DTypeKind {
  if (isFloat(dtype)) return 'float';
  return dtype === 'bool' ? 'bool' : 'int';
}

/** Clients may send any dtype of the model's kind; `given` names theirs ("datatype INT32"). */
export function checkSameKind(given: string, givenDtype: DType, spec: TensorSpec): void {
  if (kindOf(givenDtype) !== kindOf(spec.dtype)) {
    throw invalidInput(`input '${spec.name}' has ${given}, but the model expects ${spec.dtype}`);
  }
}

/** Stores `value` at `data[index]`; returns why it cannot, or undefined on success. */
export type LeafWriter = (data: TensorData, index: number, value: unknown) => string | undefined;

// The JSON encoders write non-finite floats as these strings, so the decoders take them back.
const NON_FINITE = new Map([
  ['NaN', Number.NaN],
  ['Infinity', Number.POSITIVE_INFINITY],
  ['-Infinity', Number.NEGATIVE_INFINITY],
]);
const INTEGER_STRING = /^[+-]?\d+$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

export function describeValue(value: unknown): string {
  if (typeof value === 'string') return `string ${JSON.stringify(value.length > 24 ? `${value.slice(0, 24)}…` : value)}`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : typeof value;
}

const writeFloat: LeafWriter = (data, index, value) => {
  const number = typeof value === 'string' ? NON_FINITE.get(value) : value;
  if (typeof number !== 'number') return `expected a number, got ${describeValue(value)}`;
  (data as Float64Array)[index] = number;
  return undefined;
};

function intWriter(dtype: DType, min: number, max: number): LeafWriter {
  return (data, index, value) => {
    const number = typeof value === 'bigint' ? Number(value) : value;
    if (typeof number !== 'number' || !Number.isInteger(number)) return `expected an integer, got ${describeValue(value)}`;
    if (number < min || number > max) return `${String(value)} is out of range for ${dtype}`;
    (data as Int32Array)[index] = number;
    return undefined;
  };
}

const writeInt64: LeafWriter = (data, index, value) => {
  let integer: bigint;
  if (typeof value === 'bigint') {
    integer = value;
  } else if (typeof value === 'number' && Number.isInteger(value)) {
    // A JSON parser has already rounded such a number; only the string form is exact.
    if (!Number.isSafeInteger(value)) return `${value} is beyond ±(2^53 - 1) and may have lost precision; send it as a string`;
    integer = BigInt(value);
  } else if (typeof value === 'string' && INTEGER_STRING.test(value)) {
    integer = BigInt(value);
    if (integer < INT64_MIN || integer > INT64_MAX) return `${value} is out of range for int64`;
  } else {
    return `expected an integer, got ${describeValue(value)}`;
  }
  (data as BigInt64Array)[index] = integer;
  return undefined;
};

const writeBool: LeafWriter = (data, index, value) => {
  if (value === true || value === 1) (data as Uint8Array)[index] = 1;
  else if (value === false || value === 0) (data as Uint8Array)[index] = 0;
  else return `expected true, false, 0 or 1, got ${describeValue(value)}`;
  return undefined;
};

const LEAF_WRITERS: Record<DType, LeafWriter> = {
  float32: writeFloat,
  float64: writeFloat,
  int8: intWriter('int8', -128, 127),
  uint8: intWriter('uint8', 0, 255),
  int16: intWriter('int16', -32768, 32767),
  uint16: intWriter('uint16', 0, 65535),
  int32: intWriter('int32', -2147483648, 2147483647),
  int64: writeInt64,
  bool: writeBool,
};

export function leafWriter(dtype: DType): LeafWriter {
  return LEAF_WRITERS[dtype];
}

/** Casts data between two dtypes of the same kind; integers must fit the target. */
export function castData(name: string, data: TensorData, from: DType, to: DType): TensorData {
  if (from === to) return data;
  const out = allocate(to, data.length);
  if (isFloat(to)) {
    (out as Float64Array).set(data as Float64Array);
    return out;
  }
  const write = leafWriter(to);
  for (let i = 0; i < data.length; i++) {
    const problem = write(out, i, data[i]);
    if (problem !== undefined) throw invalidInput(`input '${name}' element ${i}: ${problem}`);
  }
  return out;
}

/** Little-endian bytes as a typed array, copied when their offset is not aligned for a view. */
export function dataFromBytes(dtype: DType, bytes: Buffer): TensorData {
  const size = bytesPerElement(dtype);
  const aligned = bytes.byteOffset % size === 0 ? bytes : new Uint8Array(bytes);
  return view(dtype, aligned.buffer, aligned.byteOffset, aligned.byteLength / size);
}
