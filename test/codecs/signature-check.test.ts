import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkInputs, tensorFromNested } from '../../src/codecs/signature-check.js';
import type { NamedTensors, Tensor, TensorSpec } from '../../src/codecs/tensor.js';
import { assertFails, assertTensor, CHURN_FOREST, TEXT_CLASSIFIER } from './fixtures.js';

const features = (rows: number, columns = 20): Tensor => ({
  dtype: 'float32',
  dims: [rows, columns],
  data: new Float32Array(rows * columns),
});
const ids = (rows: number, length: number): Tensor => ({
  dtype: 'int64',
  dims: [rows, length],
  data: new BigInt64Array(rows * length),
});

describe('checkInputs', () => {
  it('accepts tensors matching the signature', () => {
    checkInputs({ features: features(3) }, CHURN_FOREST);
    checkInputs({ input_ids: ids(2, 7), attention_mask: ids(2, 7) }, TEXT_CLASSIFIER);
  });

  const cases: { name: string; inputs: NamedTensors; signature: typeof CHURN_FOREST; message: RegExp }[] = [
    { name: 'missing input', inputs: { input_ids: ids(1, 3) }, signature: TEXT_CLASSIFIER, message: /missing input 'attention_mask'/ },
    {
      name: 'unknown input',
      inputs: { features: features(1), extra: features(1) },
      signature: CHURN_FOREST,
      message: /unknown input 'extra'; the model expects 'features'/,
    },
    {
      name: 'dtype mismatch',
      inputs: { features: { dtype: 'float64', dims: [1, 20], data: new Float64Array(20) } },
      signature: CHURN_FOREST,
      message: /input 'features' must be float32, got float64/,
    },
    {
      name: 'rank mismatch',
      inputs: { features: { dtype: 'float32', dims: [20], data: new Float32Array(20) } },
      signature: CHURN_FOREST,
      message: /input 'features' must have rank 2 \[\?,20\], got rank 1 \[20\]/,
    },
    { name: 'fixed dim mismatch', inputs: { features: features(1, 19) }, signature: CHURN_FOREST, message: /^input 'features' dimension 1 must be 20, got 19$/ },
    {
      name: 'element count mismatch',
      inputs: { features: { dtype: 'float32', dims: [2, 20], data: new Float32Array(39) } },
      signature: CHURN_FOREST,
      message: /input 'features' has 39 values, but shape \[2,20\] needs 40/,
    },
    { name: 'empty batch', inputs: { features: features(0) }, signature: CHURN_FOREST, message: /dimension 0 must be a positive integer, got 0/ },
    {
      name: 'row counts differ',
      inputs: { input_ids: ids(2, 5), attention_mask: ids(3, 5) },
      signature: TEXT_CLASSIFIER,
      message: /input 'attention_mask' has 3 rows, but input 'input_ids' has 2/,
    },
  ];
  for (const { name, inputs, signature, message } of cases) {
    it(`rejects ${name} with 422`, () => assertFails(() => checkInputs(inputs, signature), 'INFERD_ERR_INPUT_INVALID', message));
  }
});

const spec = (dtype: TensorSpec['dtype'], shape: TensorSpec['shape'] = [null, null]): TensorSpec => ({ name: 'x', dtype, shape });

describe('tensorFromNested', () => {
  it('infers dims and fills the typed array of each dtype', () => {
    assertTensor(tensorFromNested('x', [[1.5, 2], [3, 4]], spec('float32')), { dtype: 'float32', dims: [2, 2], data: Float32Array.of(1.5, 2, 3, 4) });
    assertTensor(tensorFromNested('x', [[[1], [2]]], spec('float64')), { dtype: 'float64', dims: [1, 2, 1], data: Float64Array.of(1, 2) });
    assertTensor(tensorFromNested('x', [-128, 127], spec('int8')), { dtype: 'int8', dims: [2], data: Int8Array.of(-128, 127) });
    assertTensor(tensorFromNested('x', [0, 255], spec('uint8')), { dtype: 'uint8', dims: [2], data: Uint8Array.of(0, 255) });
    assertTensor(tensorFromNested('x', [65535], spec('uint16')), { dtype: 'uint16', dims: [1], data: Uint16Array.of(65535) });
    assertTensor(tensorFromNested('x', [[-32768]], spec('int16')), { dtype: 'int16', dims: [1, 1], data: Int16Array.of(-32768) });
    assertTensor(tensorFromNested('x', [2147483647], spec('int32')), { dtype: 'int32', dims: [1], data: Int32Array.of(2147483647) });
    assertTensor(tensorFromNested('x', [true, false, 1, 0], spec('bool')), { dtype: 'bool', dims: [4], data: Uint8Array.of(1, 0, 1, 0) });
    assertTensor(tensorFromNested('x', 7, spec('float32', [])), { dtype: 'float32', dims: [], data: Float32Array.of(7) });
  });

  it('reads int64 from safe numbers and from integer strings beyond 2^53', () => {
    const tensor = tensorFromNested('x', [[1, '9007199254740993', '-9223372036854775808']], spec('int64'));
    assertTensor(tensor, { dtype: 'int64', dims: [1, 3], data: BigInt64Array.of(1n, 9007199254740993n, -9223372036854775808n) });
  });

  it('reads the non-finite float strings that the JSON encoder writes', () => {
    const tensor = tensorFromNested('x', ['NaN', 'Infinity', '-Infinity'], spec('float32'));
    assert.deepEqual([...tensor.data], [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]);
  });

  it('reads numbers and strings mixed in one row, each at its place', () => {
    const tensor = tensorFromNested('x', [[1, 'NaN', 3], [-0.5, 5, 'Infinity']], spec('float64'));
    assert.deepEqual([...tensor.data], [1, Number.NaN, 3, -0.5, 5, Number.POSITIVE_INFINITY]);
  });

  const failures: { name: string; value: unknown; spec: TensorSpec; message: RegExp }[] = [
    { name: 'a ragged array', value: [[1, 2], [3]], spec: spec('float32'), message: /input 'x'\[1\] must be an array of 2 elements, got 1 elements/ },
    { name: 'a number where a row belongs', value: [[1, 2], 3], spec: spec('float32'), message: /input 'x'\[1\] must be an array of 2 elements, got 3/ },
    { name: 'an array where a number belongs', value: [[1, [2]]], spec: spec('float32'), message: /input 'x'\[0\]\[1\]: expected a number, got an array/ },
    { name: 'a string float', value: [['1.5']], spec: spec('float32'), message: /input 'x'\[0\]\[0\]: expected a number, got string "1.5"/ },
    { name: 'a string float after numbers', value: [[1, 2], [3, 'x']], spec: spec('float32'), message: /input 'x'\[1\]\[1\]: expected a number, got string "x"/ },
    { name: 'null', value: [null], spec: spec('float32'), message: /expected a number, got null/ },
    { name: 'a float for an int input', value: [[1, 2.5]], spec: spec('int32'), message: /input 'x'\[0\]\[1\]: expected an integer, got 2.5/ },
    { name: 'a float for int64', value: [2.5], spec: spec('int64'), message: /expected an integer, got 2.5/ },
    { name: 'an out-of-range int8', value: [128], spec: spec('int8'), message: /128 is out of range for int8/ },
    { name: 'a negative uint8', value: [-1], spec: spec('uint8'), message: /-1 is out of range for uint8/ },
    { name: 'an unsafe int64 number', value: [2 ** 60], spec: spec('int64'), message: /send it as a string/ },
    { name: 'an int64 string out of range', value: ['9223372036854775808'], spec: spec('int64'), message: /out of range for int64/ },
    { name: 'a non-integer int64 string', value: ['12a'], spec: spec('int64'), message: /expected an integer, got string "12a"/ },
    { name: 'nesting deep enough to exhaust the stack', value: JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`), spec: spec('float32'), message: /nested more than 32 levels deep/ },
    { name: 'a 2 for bool', value: [2], spec: spec('bool'), message: /expected true, false, 0 or 1, got 2/ },
  ];
  for (const { name, value, spec: target, message } of failures) {
    it(`rejects ${name} with 422`, () => assertFails(() => tensorFromNested('x', value, target), 'INFERD_ERR_INPUT_INVALID', message));
  }
});
