/** Checks decoded tensors against the model signature, and builds tensors from nested JSON arrays. */
import { invalidInput, unsupportedMediaType } from '../errors.js';
import { allocate, elementCount, isFloat, type ModelSignature, type NamedTensors, type Tensor, type TensorSpec } from './tensor.js';
import { describeValue, leafWriter } from './values.js';

function expectedInputs(signature: ModelSignature): string {
  return signature.inputs.map((spec) => `'${spec.name}'`).join(', ');
}

function formatShape(shape: readonly (number | null)[]): string {
  return `[${shape.map((d) => d ?? '?').join(',')}]`;
}

export function inputSpec(signature: ModelSignature, name: string): TensorSpec {
  const spec = signature.inputs.find((s) => s.name === name);
  if (!spec) throw invalidInput(`unknown input '${name}'; the model expects ${expectedInputs(signature)}`);
  return spec;
}

/** The one input of a model, for formats that carry a single tensor (415 otherwise). */
export function singleInput(signature: ModelSignature, mediaType: string): TensorSpec {
  const [spec] = signature.inputs;
  if (signature.inputs.length !== 1 || !spec) {
    throw unsupportedMediaType(
      `${mediaType} carries a single tensor, but this model has ${signature.inputs.length} inputs (${expectedInputs(signature)}); use application/json`,
    );
  }
  return spec;
}

function checkTensor(tensor: Tensor, spec: TensorSpec): void {
  const { name } = spec;
  if (tensor.dtype !== spec.dtype) throw invalidInput(`input '${name}' must be ${spec.dtype}, got ${tensor.dtype}`);
  if (tensor.dims.length !== spec.shape.length) {
    throw invalidInput(
      `input '${name}' must have rank ${spec.shape.length} ${formatShape(spec.shape)}, got rank ${tensor.dims.length} ${formatShape(tensor.dims)}`,
    );
  }
  tensor.dims.forEach((dim, axis) => {
    const expected = spec.shape[axis];
    if (expected !== null && expected !== undefined && dim !== expected) {
      throw invalidInput(`input '${name}' dimension ${axis} must be ${expected}, got ${dim}`);
    }
    if (!Number.isSafeInteger(dim) || dim <= 0) throw invalidInput(`input '${name}' dimension ${axis} must be a positive integer, got ${dim}`);
  });
  const count = elementCount(tensor.dims);
  if (tensor.data.length !== count) {
    throw invalidInput(`input '${name}' has ${tensor.data.length} values, but shape ${formatShape(tensor.dims)} needs ${count}`);
  }
}

/** Throws INFERD_ERR_INPUT_INVALID unless `inputs` matches the signature exactly. */
export function checkInputs(inputs: NamedTensors, signature: ModelSignature): void {
  for (const spec of signature.inputs) {
    if (!Object.hasOwn(inputs, spec.name)) throw invalidInput(`missing input '${spec.name}'; the model expects ${expectedInputs(signature)}`);
  }
  for (const name of Object.keys(inputs)) inputSpec(signature, name);

  let firstRows: { name: string; rows: number } | undefined;
  for (const spec of signature.inputs) {
    const tensor = inputs[spec.name] as Tensor;
    checkTensor(tensor, spec);
    const rows = tensor.dims[0];
    if (rows === undefined) continue;
    if (!firstRows) firstRows = { name: spec.name, rows };
    else if (rows !== firstRows.rows) {
      throw invalidInput(`input '${spec.name}' has ${rows} rows, but input '${firstRows.name}' has ${firstRows.rows}`);
    }
  }
}

/** Deeper nesting than any model takes is refused before it can exhaust the stack. */
const MAX_RANK = 32;

/** Dimensions of a nested array, read along its first elements; rectangularity is checked on filling. */
function nestedDims(name: string, value: unknown): number[] {
  const dims: number[] = [];
  let node = value;
  while (Array.isArray(node)) {
    if (dims.length === MAX_RANK) throw invalidInput(`input '${name}' is nested more than ${MAX_RANK} levels deep`);
    dims.push(node.length);
    if (node.length === 0) break;
    node = node[0];
  }
  return dims;
}

/**
 * A tensor of `spec.dtype` from a (rectangular) nested array, its dims inferred from the nesting.
 * Values are written straight into the typed array; shape is left to `checkInputs`.
 */
export function tensorFromNested(name: string, value: unknown, spec: TensorSpec): Tensor {
  const dims = nestedDims(name, value);
  const rank = dims.length;
  const data = allocate(spec.dtype, elementCount(dims));
  const write = leafWriter(spec.dtype);
  const floats = isFloat(spec.dtype);
  // Only read to name the offending element in an error message.
  const position = new Array<number>(rank).fill(0);
  const where = (depth: number) => `input '${name}'${position.slice(0, depth).map((i) => `[${i}]`).join('')}`;
  let next = 0;

  const writeLeaf = (leaf: unknown, depth: number): void => {
    const problem = write(data, next, leaf);
    if (problem !== undefined) throw invalidInput(`${where(depth)}: ${problem}`);
    next++;
  };
  const fill = (node: unknown, depth: number): void => {
    const size = dims[depth] as number;
    if (!Array.isArray(node) || node.length !== size) {
      const got = Array.isArray(node) ? `${node.length} elements` : describeValue(node);
      throw invalidInput(`${where(depth)} must be an array of ${size} elements, got ${got} (arrays must be rectangular)`);
    }
    if (depth < rank - 1) {
      for (let i = 0; i < size; i++) {
        position[depth] = i;
        fill(node[i], depth + 1);
      }
    } else if (floats) {
      // The common case, numbers into a float tensor, stored as they come: the writer would
      // take any number as it is.
      for (let i = 0; i < size; i++) {
        const leaf: unknown = node[i];
        if (typeof leaf === 'number') {
          data[next++] = leaf;
        } else {
          position[depth] = i;
          writeLeaf(leaf, depth + 1);
        }
      }
    } else {
      for (let i = 0; i < size; i++) {
        position[depth] = i;
        writeLeaf(node[i], depth + 1);
      }
    }
  };

  if (rank === 0) writeLeaf(value, 0);
  else fill(value, 0);
  return { dtype: spec.dtype, dims, data };
}
