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
  /** For each output, the axes named like a padded input axis: their padding is stripped per member. */
  readonly paddedOutputAxes: ReadonlyMap<string, readonly OutputAxis[]>;
}

interface OutputAxis {
  readonly axis: number;
  readonly dimName: string;
}

interface PaddedAxis extends OutputAxis {
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
  const paddedNames = new Set([...paddedAxes.values()].flatMap((axes) => axes.map(({ dimName }) => dimName)));
  const paddedOutputAxes = new Map<string, OutputAxis[]>();
  for (const spec of signature.outputs) {
    const axes: OutputAxis[] = [];
    spec.dimNames?.forEach((dimName, axis) => {
      if (axis > 0 && dimName !== null && paddedNames.has(dimName)) axes.push({ axis, dimName });
    });
    if (axes.length > 0) paddedOutputAxes.set(spec.name, axes);
  }
  return { pad, inputs: signature.inputs, outputs: signature.outputs, paddedAxes, paddedOutputAxes };
}

const hasBuckets = (rule: PadRule) => rule.buckets !== undefined || rule.multipleOf !== undefined;

function bucketOf(length: number, rule: PadRule): number | undefined {
  if (rule.multipleOf !== undefined) return Math.ceil(length / rule.multipleOf) * rule.multipleOf;
  return rule.buckets?.find((bucket) => bucket >= length);
}

/**
 * Whether two requests can be stacked in one batch: every input of the same dtype and rank, its
 * unpadded dimensions equal, a padded one within the same bucket, or any length when its rule
 * has no buckets (it pads to the batch's longest). A length beyond the last bucket stacks only
 * with the same length. Asked for every queued request on every dispatch, so it allocates nothing.
 */
export function stackable(a: NamedTensors, b: NamedTensors, layout: BatchLayout): boolean {
  for (const spec of layout.inputs) {
    const x = a[spec.name]!;
    const y = b[spec.name]!;
    if (x.dtype !== y.dtype || x.dims.length !== y.dims.length) return false;
    const padded = layout.paddedAxes.get(spec.name);
    for (let axis = 1; axis < x.dims.length; axis += 1) {
      if (!sameBucket(x.dims[axis]!, y.dims[axis]!, padded && ruleAt(padded, axis))) return false;
    }
  }
  return true;
}

function ruleAt(padded: readonly PaddedAxis[], axis: number): PadRule | undefined {
  for (const entry of padded) if (entry.axis === axis) return entry.rule;
  return undefined;
}

function sameBucket(a: number, b: number, rule: PadRule | undefined): boolean {
  if (a === b) return true;
  if (!rule) return false;
  if (!hasBuckets(rule)) return true;
  const bucket = bucketOf(a, rule);
  return bucket !== undefined && bucket === bucketOf(b, rule);
}

export function rowsOf(inputs: NamedTensors): number {
  for (const name in inputs) return inputs[name]!.dims[0] ?? 0;
  return 0;
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
  // Read only for padded outputs, which exist only where inputs are padded.
  if (layout.paddedAxes.size === 0) return { rows, lengths: [] };
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

/** Stacks members along dimension 0; members must be `stackable` with one another. */
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
  let totalRows = 0;
  for (const rows of batch.rows) totalRows += rows;
  const results: NamedTensors[] = batch.rows.map(() => ({}));
  for (const spec of layout.outputs) {
    const tensor = outputs[spec.name];
    if (!tensor || tensor.dims[0] !== totalRows) {
      throw new Error(`output '${spec.name}' has ${tensor?.dims[0] ?? 'no'} rows for a batch of ${totalRows}`);
    }
    const rowElements = totalRows === 0 ? 0 : elementCount(tensor.dims) / totalRows;
    const padded = layout.paddedOutputAxes.get(spec.name);
    // Members of one row count share their dims (readonly): one array per batch, not per request.
    let dims: readonly number[] = tensor.dims;
    let row = 0;
    for (let member = 0; member < batch.rows.length; member += 1) {
      const rows = batch.rows[member]!;
      const start = row * rowElements;
      const data = tensor.data.subarray(start, start + rows * rowElements) as TensorData;
      if (padded) results[member]![spec.name] = unpad(tensor, data, rows, padded, batch.lengths[member]!);
      else {
        if (dims[0] !== rows) dims = [rows, ...tensor.dims.slice(1)];
        results[member]![spec.name] = { dtype: tensor.dtype, dims, data };
      }
      row += rows;
    }
  }
  return results;
}

/** One member's rows of a padded output, cut to the member's own lengths. */
function unpad(
  tensor: Tensor,
  block: TensorData,
  rows: number,
  padded: readonly OutputAxis[],
  lengths: Readonly<Record<string, number>>,
): Tensor {
  const own = [rows, ...tensor.dims.slice(1)];
  for (const { axis, dimName } of padded) own[axis] = lengths[dimName]!;
  if (own.every((d, axis) => d === tensor.dims[axis] || axis === 0)) return { dtype: tensor.dtype, dims: own, data: block };
  const data = allocate(tensor.dtype, elementCount(own));
  copyRegion(block, [rows, ...tensor.dims.slice(1)], data, own, own, 0);
  return { dtype: tensor.dtype, dims: own, data };
}
