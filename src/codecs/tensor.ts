/**
 * Named tensors: the one data shape that crosses every boundary in inferd (codecs, runtime,
 * worker threads). Plain data only, so it can be structured-cloned or transferred.
 */

export const DTYPES = ['float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'int64', 'bool'] as const;
export type DType = (typeof DTYPES)[number];

export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | BigInt64Array;

export interface Tensor {
  readonly dtype: DType;
  readonly dims: readonly number[];
  /** Row-major, little-endian (the platform's) values. `bool` is one byte per value. */
  readonly data: TensorData;
}

export type NamedTensors = Record<string, Tensor>;

/** A tensor as the model declares it: `null` marks a dynamic dimension. */
export interface TensorSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly (number | null)[];
  /** The model's symbolic name of each dynamic dimension (`"batch"`, `"seq"`), where it has one. */
  readonly dimNames?: readonly (string | null)[];
}

export interface ModelSignature {
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

type TypedArrayConstructor = {
  new (length: number): TensorData;
  new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): TensorData;
  readonly BYTES_PER_ELEMENT: number;
};

const ARRAY_TYPES: Record<DType, TypedArrayConstructor> = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  int64: BigInt64Array as unknown as TypedArrayConstructor,
  bool: Uint8Array,
};

export function bytesPerElement(dtype: DType): number {
  return ARRAY_TYPES[dtype].BYTES_PER_ELEMENT;
}

export function allocate(dtype: DType, length: number): TensorData {
  return new ARRAY_TYPES[dtype](length);
}

/** Slabs that small tensors are cut from; never reused, so what is cut is zeros, as allocate's. */
const SLAB_BYTES = 8 * 1024;
const SLAB_MAX_TENSOR_BYTES = 1024;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabUsed = 0;

/**
 * As `allocate`, but a small tensor is a view of a shared slab, as Node pools small Buffers:
 * a fresh ArrayBuffer for each one-row request cost more than its bytes (malloc, and the garbage
 * collector's bookkeeping of memory outside its heap). For what a request decodes, not for what
 * is handed to a worker whole.
 */
export function allocateShared(dtype: DType, length: number): TensorData {
  const bytes = length * ARRAY_TYPES[dtype].BYTES_PER_ELEMENT;
  if (bytes > SLAB_MAX_TENSOR_BYTES) return allocate(dtype, length);
  // Eight-byte aligned, for the widest element type.
  let offset = (slabUsed + 7) & ~7;
  if (offset + bytes > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    offset = 0;
  }
  slabUsed = offset + bytes;
  return new ARRAY_TYPES[dtype](slab, offset, length);
}

/** A view of `byteLength / bytesPerElement` values over a buffer; the caller checks alignment. */
export function view(dtype: DType, buffer: ArrayBufferLike, byteOffset: number, length: number): TensorData {
  return new ARRAY_TYPES[dtype](buffer, byteOffset, length);
}

export function elementCount(dims: readonly number[]): number {
  let count = 1;
  for (const d of dims) count *= d;
  return count;
}

export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64';
}

/**
 * Copies a tensor's bytes into a fresh ArrayBuffer of exactly its size. Worker hand-off needs
 * this: a view into Node's shared 8 KiB Buffer pool is cloned whole when transferred.
 */
export function toOwnedTensor(tensor: Tensor): Tensor {
  const src = tensor.data;
  const owned = allocate(tensor.dtype, src.length);
  (owned as Uint8Array).set(src as unknown as Uint8Array);
  return { dtype: tensor.dtype, dims: [...tensor.dims], data: owned };
}

/**
 * Tensors made ready for the hand-off to a worker, which moves the buffers that tensors fill
 * whole and clones the rest with their whole buffer. A tensor filling the request body's buffer
 * is copied (data capture still reads the body after inference, so it must not move), as is a
 * small view of a large buffer (a clone would carry all of it). Views of small buffers (a slab,
 * Node's 8 KiB Buffer pool) and large views (an image after its .npy header) are left as they
 * are: merged into a batch they are only read, and alone they cost one clone at the hand-off.
 */
export function ownedTensors(inputs: NamedTensors, body: Uint8Array): NamedTensors {
  const owned: NamedTensors = {};
  for (const name in inputs) {
    const tensor = inputs[name]!;
    const { data } = tensor;
    const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
    const keep = whole ? data.buffer !== body.buffer : data.buffer.byteLength <= SLAB_BYTES || data.byteLength * 2 >= data.buffer.byteLength;
    owned[name] = keep ? tensor : toOwnedTensor(tensor);
  }
  return owned;
}
