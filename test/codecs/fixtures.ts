/** Signatures of the fixture models, the churn reference rows, and helpers shared by the codec tests. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { allocate, type DType, type ModelSignature, type NamedTensors, type Tensor } from '../../src/codecs/tensor.js';
import type { ErrorCode } from '../../src/errors.js';

export const CHURN_FOREST: ModelSignature = {
  inputs: [{ name: 'features', dtype: 'float32', shape: [null, 20] }],
  outputs: [
    { name: 'label', dtype: 'int64', shape: [null] },
    { name: 'probabilities', dtype: 'float32', shape: [null, 3] },
  ],
};

export const CHURN_MLP: ModelSignature = {
  inputs: [{ name: 'features', dtype: 'float32', shape: [null, 20] }],
  outputs: [{ name: 'probabilities', dtype: 'float32', shape: [null, 2] }],
};

export const TEXT_CLASSIFIER: ModelSignature = {
  inputs: [
    { name: 'input_ids', dtype: 'int64', shape: [null, null] },
    { name: 'attention_mask', dtype: 'int64', shape: [null, null] },
  ],
  outputs: [{ name: 'logits', dtype: 'float32', shape: [null, 2] }],
};

export const MOBILENET: ModelSignature = {
  inputs: [{ name: 'image', dtype: 'float32', shape: [null, 3, 224, 224] }],
  outputs: [{ name: 'logits', dtype: 'float32', shape: [null, 1000] }],
};

interface ChurnReference {
  rows: number[][];
  forest_labels: number[];
  forest_probabilities: number[][];
  mlp_probabilities: number[][];
}

// Compiled to dist/test/codecs/, three levels below the repository root.
export const REFERENCE = JSON.parse(
  readFileSync(new URL('../../../test/fixtures/churn-reference.json', import.meta.url), 'utf8'),
) as ChurnReference;

/** The reference rows as the float32 tensor every decoder must produce. */
export const REFERENCE_FEATURES = Float32Array.from(REFERENCE.rows.flat());

/** The churn-forest outputs for the reference rows. */
export const FOREST_OUTPUTS: NamedTensors = {
  label: { dtype: 'int64', dims: [5], data: BigInt64Array.from(REFERENCE.forest_labels.map(BigInt)) },
  probabilities: { dtype: 'float32', dims: [5, 3], data: Float32Array.from(REFERENCE.forest_probabilities.flat()) },
};

export const MLP_OUTPUTS: NamedTensors = {
  probabilities: { dtype: 'float32', dims: [5, 2], data: Float32Array.from(REFERENCE.mlp_probabilities.flat()) },
};

export function assertTensor(actual: Tensor | undefined, expected: Tensor): void {
  assert.ok(actual, 'tensor is missing');
  assert.equal(actual.dtype, expected.dtype);
  assert.deepEqual([...actual.dims], [...expected.dims]);
  assert.equal(actual.data.constructor, expected.data.constructor);
  assert.deepEqual([...actual.data], [...expected.data]);
}

/** Asserts that `run` throws an InferdError with `code`, and a message matching `message` when given. */
export function assertFails(run: () => unknown, code: ErrorCode, message?: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.equal((error as { code?: unknown }).code, code, `wrong code; message: ${(error as Error).message}`);
    if (message) assert.match((error as Error).message, message);
    return true;
  });
}

/** A random tensor of `dtype`, rank 1..4, with values JSON carries exactly. */
export function tensorArbitrary(dtype: DType): fc.Arbitrary<Tensor> {
  const values: Record<DType, fc.Arbitrary<number | bigint | boolean>> = {
    float32: fc.float({ noNaN: true, noDefaultInfinity: true }).map((v) => (v === 0 ? 0 : v)),
    float64: fc.double({ noNaN: true, noDefaultInfinity: true }).map((v) => (v === 0 ? 0 : v)),
    int8: fc.integer({ min: -128, max: 127 }),
    uint8: fc.integer({ min: 0, max: 255 }),
    int16: fc.integer({ min: -32768, max: 32767 }),
    uint16: fc.integer({ min: 0, max: 65535 }),
    int32: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    int64: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    bool: fc.boolean(),
  };
  return fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }).chain((dims) => {
    const count = dims.reduce((a, b) => a * b, 1);
    return fc.array(values[dtype], { minLength: count, maxLength: count }).map((list): Tensor => {
      const data = allocate(dtype, count);
      list.forEach((value, i) => {
        (data as unknown as (number | bigint)[])[i] = typeof value === 'boolean' ? Number(value) : value;
      });
      return { dtype, dims, data };
    });
  });
}

/** The bytes at an odd offset, where no typed array wider than a byte can view them. */
export function unaligned(bytes: ArrayLike<number>): Buffer {
  const padded = Buffer.alloc(bytes.length + 1);
  padded.set(bytes, 1);
  return padded.subarray(1);
}
