/**
 * Pure tensor arithmetic of dynamic batching: which requests may share a batch, how their inputs
 * are stacked along dimension 0 (padding declared variable dimensions to a common length), and
 * how the outputs are cut back into one result per request with the padding stripped.
 */
import { allocate, elementCount, type ModelSignature, type NamedTensors, type Tensor, type TensorData, type TensorSpec } from '../codecs/tensor.js';

/**
 * Padding of one symbolic dimension (`"seq"`): the fill value, and the lengths to round up to:
 * listed `buckets`, or every multiple of `multipleOf`.
 */
export interface PadRule {
  readonly value: number;
  readonly buckets?: readonly number[] | undefined;
  readonly multipleOf?: number | undefined;
}

export type PadRules = Readonly<Record<string, PadRule>>;

/** Per-model batching facts derived once from the signature and the pad rules. */
export interface BatchLayout {
  readonly pad: PadRules;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  /** For each input, the axes padded and the rule and name of each. */
  readonly paddedAxes: ReadonlyMap<string, readonly PaddedAxis[]>;
}

interface PaddedAxis {
  readonly axis: number;
  readonly dimName: string;
  readonly rule: PadRule;
}

export function batchLayout(signature: ModelSignature, pad: PadRules): BatchLayout {
  const paddedAxes = new Map<string, PaddedAxis[]>();
  for (const spec of signature.inputs) {
    const axes: PaddedAxis[] = [];
    spec.dimNames?.forEach((dimName, axis) => {
      const rule = dimName === null ? undefined : pad[dimName];
      if (axis > 0 && rule && dimName !== null) axes.push({ axis, dimName, rule });
    });
    if (axes.length > 0) paddedAxes.set(spec.name, axes);
  }
  return { pad, inputs: signature.inputs, outputs: signature.outputs, paddedAxes };
}

const hasBuckets = (rule: PadRule) => rule.buckets !== undefined || rule.multipleOf !== undefined;

function bucketOf(length: number, rule: PadRule): number | undefined {
  if (rule.multipleOf !== undefined) return Math.ceil(length / rule.multipleOf) * rule.multipleOf;
  return rule.buckets?.find((bucket) => bucket >= length);
}

/**
 * Requests with equal keys can be stacked. Unpadded dimensions must match exactly; a padded one
 * matches within its bucket, or always when its rule has no buckets (it pads to the batch's longest).
 */
export function batchKey(inputs: NamedTensors, layout: BatchLayout): string {
  let key = '';
  for (const spec of layout.inputs) {
    const tensor = inputs[spec.name]!;
    const padded = layout.paddedAxes.get(spec.name);
    const dims = tensor.dims.slice(1).map((length, i) => {
      const rule = padded?.find((p) => p.axis === i + 1)?.rule;
      if (!rule) return String(length);
      const bucket = hasBuckets(rule) ? bucketOf(length, rule) : -1;
      return bucket === undefined ? `=${length}` : `≤${bucket}`;
    });
    key += `${spec.name}:${tensor.dtype}[${dims.join(',')}];`;
  }
  return key;
}

export function rowsOf(inputs: NamedTensors): number {
  const first = Object.values(inputs)[0];
  return first ? (first.dims[0] ?? 0) : 0;
}

function stridesOf(dims: readonly number[]): number[] {
  const strides = new Array<number>(dims.length).fill(1);
  for (let axis = dims.length - 2; axis >= 0; axis -= 1) strides[axis] = strides[axis + 1]! * dims[axis + 1]!;
  return strides;
}

/**
 * Copies the region of `src` (shape `srcDims`) of shape `region` into `dst` (shape `dstDims`,
 * same rank) at element offset `dstOffset`, one innermost run at a time.
 */
function copyRegion(
  src: TensorData,
  srcDims: readonly number[],
  dst: TensorData,
  dstDims: readonly number[],
  region: readonly number[],
  dstOffset: number,
): void {
  const rank = region.length;
  const srcStrides = stridesOf(srcDims);
  const dstStrides = stridesOf(dstDims);
  const run = rank === 0 ? 1 : region[rank - 1]!;
  const copy = (axis: number, srcAt: number, dstAt: number): void => {
    if (axis >= rank - 1) {
      (dst as Uint8Array).set((src as Uint8Array).subarray(srcAt, srcAt + run), dstAt);
      return;
    }
    for (let i = 0; i < region[axis]!; i += 1) copy(axis + 1, srcAt + i * srcStrides[axis]!, dstAt + i * dstStrides[axis]!);
  };
  if (region.some((d) => d === 0)) return;
  copy(0, 0, dstOffset);
}

function fillValue(tensor: TensorData, value: number): void {
  if (tensor instanceof BigInt64Array) tensor.fill(BigInt(value));
  else tensor.fill(value);
}

/** Where each member's rows sit in a batch, and how long its padded dimensions really are. */
export interface BatchMembers {
  readonly rows: readonly number[];
  /** Each member's own length of every padded dimension name, to strip the padding from outputs. */
  readonly lengths: readonly Readonly<Record<string, number>>[];
}

export interface MergedBatch extends BatchMembers {
  readonly inputs: NamedTensors;
}

export function batchMembers(members: readonly NamedTensors[], layout: BatchLayout): BatchMembers {
  const rows = members.map(rowsOf);
  const lengths = members.map((member) => {
    const own: Record<string, number> = {};
    for (const [name, axes] of layout.paddedAxes) for (const { axis, dimName } of axes) own[dimName] = member[name]!.dims[axis]!;
    return own;
  });
  return { rows, lengths };
}

/** The bytes of a request's inputs. */
export function inputBytes(inputs: NamedTensors): number {
  let bytes = 0;
  for (const name in inputs) bytes += inputs[name]!.data.byteLength;
  return bytes;
}

/** Stacks members along dimension 0; members must share a batchKey. */
export function mergeInputs(members: readonly NamedTensors[], layout: BatchLayout): MergedBatch {
  const { rows, lengths } = batchMembers(members, layout);
  const totalRows = rows.reduce((a, b) => a + b, 0);
  const inputs: NamedTensors = {};
  for (const spec of layout.inputs) {
    const parts = members.map((member) => member[spec.name]!);
    const padded = layout.paddedAxes.get(spec.name) ?? [];
    const dims = [totalRows, ...parts[0]!.dims.slice(1)];
    for (const { axis, rule } of padded) {
      const longest = Math.max(...parts.map((part) => part.dims[axis]!));
      dims[axis] = (hasBuckets(rule) ? bucketOf(longest, rule) : undefined) ?? longest;
    }
    const data = allocate(spec.dtype, elementCount(dims));
    const rowElements = totalRows === 0 ? 0 : data.length / totalRows;
    const needsPadding = padded.some(({ axis }) => parts.some((part) => part.dims[axis] !== dims[axis]));
    // One fill value per input: the rule of its first padded dimension.
    if (needsPadding) fillValue(data, padded[0]!.rule.value);
    let row = 0;
    for (const part of parts) {
      const offset = row * rowElements;
      if (needsPadding) copyRegion(part.data, part.dims, data, dims, part.dims, offset);
      else (data as Uint8Array).set(part.data as unknown as Uint8Array, offset);
      row += part.dims[0]!;
    }
    inputs[spec.name] = { dtype: spec.dtype, dims, data };
  }
  return { inputs, rows, lengths };
}

/**
 * Cuts batch outputs into one NamedTensors per member, in order. Throws when an output's
 * dimension 0 is not the batch's row count: splitting it would hand rows to the wrong requests.
 */
export function splitOutputs(outputs: NamedTensors, batch: BatchMembers, layout: BatchLayout): NamedTensors[] {
  const totalRows = batch.rows.reduce((a, b) => a + b, 0);
  const results: NamedTensors[] = batch.rows.map(() => ({}));
  for (const spec of layout.outputs) {
    const tensor = outputs[spec.name];
    if (!tensor || tensor.dims[0] !== totalRows) {
      throw new Error(`output '${spec.name}' has ${tensor?.dims[0] ?? 'no'} rows for a batch of ${totalRows}`);
    }
    const rowElements = totalRows === 0 ? 0 : elementCount(tensor.dims) / totalRows;
    let row = 0;
    batch.rows.forEach((rows, member) => {
      const own = [rows, ...tensor.dims.slice(1)];
      spec.dimNames?.forEach((dimName, axis) => {
        const length = dimName === null ? undefined : batch.lengths[member]![dimName];
        if (axis > 0 && length !== undefined) own[axis] = length;
      });
      results[member]![spec.name] = cutRows(tensor, row, rowElements, own);
      row += rows;
    });
  }
  return results;
}

function cutRows(tensor: Tensor, firstRow: number, rowElements: number, own: readonly number[]): Tensor {
  const start = firstRow * rowElements;
  const padded = own.some((d, axis) => axis > 0 && d !== tensor.dims[axis]);
  if (!padded) return { dtype: tensor.dtype, dims: own, data: tensor.data.subarray(start, start + own[0]! * rowElements) as TensorData };
  const data = allocate(tensor.dtype, elementCount(own));
  const block = tensor.data.subarray(start, start + own[0]! * rowElements) as TensorData;
  copyRegion(block, [own[0]!, ...tensor.dims.slice(1)], data, own, own, 0);
  return { dtype: tensor.dtype, dims: own, data };
}
