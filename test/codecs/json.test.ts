import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { jsonDecoder, jsonEncoder } from '../../src/codecs/json.js';
import { DTYPES, type ModelSignature, type NamedTensors, type Tensor } from '../../src/codecs/tensor.js';
import type { ErrorCode } from '../../src/errors.js';
import {
  assertFails,
  assertTensor,
  CHURN_FOREST,
  CHURN_MLP,
  FOREST_OUTPUTS,
  MLP_OUTPUTS,
  REFERENCE,
  REFERENCE_FEATURES,
  TEXT_CLASSIFIER,
  tensorArbitrary,
} from './fixtures.js';

const decode = (body: unknown, signature: ModelSignature = CHURN_MLP) =>
  jsonDecoder.decode(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), signature, {});
const encode = (outputs: NamedTensors, signature: ModelSignature, style: 'predictions' | 'v2' = 'predictions') =>
  JSON.parse(jsonEncoder.encode(outputs, signature, { style, modelName: 'churn' }).toString('utf8')) as unknown;

const referenceTensor: Tensor = { dtype: 'float32', dims: [5, 20], data: REFERENCE_FEATURES };

describe('JSON decoder', () => {
  const envelopes: { name: string; body: unknown; style: 'predictions' | 'v2' }[] = [
    { name: 'instances', body: { instances: REFERENCE.rows }, style: 'predictions' },
    { name: 'instances keyed by input name', body: { instances: REFERENCE.rows.map((features) => ({ features })) }, style: 'predictions' },
    { name: 'columnar inputs', body: { inputs: { features: REFERENCE.rows } }, style: 'predictions' },
    { name: 'inputs as a bare tensor', body: { inputs: REFERENCE.rows }, style: 'predictions' },
    { name: 'a bare nested array', body: REFERENCE.rows, style: 'predictions' },
    {
      name: 'v2 with flat data',
      body: { inputs: [{ name: 'features', shape: [5, 20], datatype: 'FP32', data: REFERENCE.rows.flat() }] },
      style: 'v2',
    },
    {
      name: 'v2 with nested FP64 data',
      body: { id: 'r1', inputs: [{ name: 'features', shape: [5, 20], datatype: 'FP64', data: REFERENCE.rows }] },
      style: 'v2',
    },
  ];
  for (const { name, body, style } of envelopes) {
    it(`decodes the reference rows from ${name}`, () => {
      const decoded = decode(body);
      assert.equal(decoded.style, style);
      assertTensor(decoded.inputs.features, referenceTensor);
    });
  }

  it('reads the non-finite floats the encoder writes as strings', () => {
    const decoded = decode({ instances: [['NaN', 'Infinity', '-Infinity', ...Array(17).fill(0.5)]] });
    assert.deepEqual(Array.from(decoded.inputs.features!.data as Float32Array).slice(0, 4), [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0.5]);
  });

  it('treats a flat array as one row of a 2-D input', () => {
    const row = REFERENCE.rows[0] as number[];
    assertTensor(decode(row).inputs.features, { dtype: 'float32', dims: [1, 20], data: Float32Array.from(row) });
  });

  it('stacks multi-input instances per input name', () => {
    const decoded = decode(
      {
        instances: [
          { input_ids: [101, 2023, 102], attention_mask: [1, 1, 1] },
          { input_ids: [101, '9007199254740993', 102], attention_mask: [1, 1, 0] },
        ],
      },
      TEXT_CLASSIFIER,
    );
    assertTensor(decoded.inputs.input_ids, { dtype: 'int64', dims: [2, 3], data: BigInt64Array.of(101n, 2023n, 102n, 101n, 9007199254740993n, 102n) });
    assertTensor(decoded.inputs.attention_mask, { dtype: 'int64', dims: [2, 3], data: BigInt64Array.of(1n, 1n, 1n, 1n, 1n, 0n) });
  });

  it('casts v2 INT32 data to the model int64', () => {
    const decoded = decode(
      {
        inputs: [
          { name: 'input_ids', shape: [1, 2], datatype: 'INT32', data: [7, 8] },
          { name: 'attention_mask', shape: [1, 2], datatype: 'INT64', data: [[1, 1]] },
        ],
      },
      TEXT_CLASSIFIER,
    );
    assert.equal(decoded.style, 'v2');
    assertTensor(decoded.inputs.input_ids, { dtype: 'int64', dims: [1, 2], data: BigInt64Array.of(7n, 8n) });
  });

  const row = Array.from({ length: 20 }, () => 0);
  const failures: { name: string; body: unknown; signature?: ModelSignature; code: ErrorCode; message: RegExp }[] = [
    { name: 'an empty body', body: '', code: 'INFERD_ERR_BODY_MALFORMED', message: /empty/ },
    { name: 'invalid JSON', body: '{"instances": [1,', code: 'INFERD_ERR_BODY_MALFORMED', message: /^the body is not valid JSON/ },
    { name: 'a JSON scalar', body: 3, code: 'INFERD_ERR_BODY_MALFORMED', message: /expected \{"instances"/ },
    { name: 'an object with neither key', body: { data: [row] }, code: 'INFERD_ERR_BODY_MALFORMED', message: /expected \{"instances"/ },
    { name: 'both instances and inputs', body: { instances: [row], inputs: [row] }, code: 'INFERD_ERR_BODY_MALFORMED', message: /expected/ },
    { name: 'instances not an array', body: { instances: { features: row } }, code: 'INFERD_ERR_BODY_MALFORMED', message: /must be an array/ },
    { name: 'inputs a string', body: { inputs: 'x' }, code: 'INFERD_ERR_BODY_MALFORMED', message: /"inputs" must be/ },
    { name: 'empty instances', body: { instances: [] }, code: 'INFERD_ERR_INPUT_INVALID', message: /empty/ },
    { name: 'ragged instances', body: { instances: [row, [1, 2]] }, code: 'INFERD_ERR_INPUT_INVALID', message: /input 'features'\[1\] must be an array of 20/ },
    {
      name: 'a string among the numbers',
      body: { instances: [row, [...row.slice(0, 2), 'a', ...row.slice(3)]] },
      code: 'INFERD_ERR_INPUT_INVALID',
      message: /^input 'features'\[1\]\[2\]: expected a number, got string "a"$/,
    },
    { name: 'a null among the numbers', body: { instances: [[null, ...row.slice(1)]] }, code: 'INFERD_ERR_INPUT_INVALID', message: /^input 'features'\[0\]\[0\]: expected a number, got null$/ },
    { name: 'a short row', body: { instances: [row.slice(1)] }, code: 'INFERD_ERR_INPUT_INVALID', message: /dimension 1 must be 20, got 19/ },
    { name: 'an unknown columnar name', body: { inputs: { feature: [row] } }, code: 'INFERD_ERR_INPUT_INVALID', message: /unknown input 'feature'/ },
    { name: 'a rank-3 tensor', body: { inputs: { features: [[row]] } }, code: 'INFERD_ERR_INPUT_INVALID', message: /rank 2/ },
    {
      name: 'a multi-input instance missing a name',
      body: { instances: [{ input_ids: [1] }] },
      signature: TEXT_CLASSIFIER,
      code: 'INFERD_ERR_INPUT_INVALID',
      message: /instance 0 is missing input 'attention_mask'/,
    },
    {
      name: 'a multi-input instance with an unknown name',
      body: { instances: [{ input_ids: [1], attention_mask: [1], token_type_ids: [0] }] },
      signature: TEXT_CLASSIFIER,
      code: 'INFERD_ERR_INPUT_INVALID',
      message: /instance 0 has unknown input 'token_type_ids'/,
    },
    {
      name: 'a multi-input instance that is a bare row',
      body: { instances: [[1, 2]] },
      signature: TEXT_CLASSIFIER,
      code: 'INFERD_ERR_INPUT_INVALID',
      message: /instance 0 must be an object keyed by input name/,
    },
    { name: 'a bare array for a multi-input model', body: [[1]], signature: TEXT_CLASSIFIER, code: 'INFERD_ERR_INPUT_INVALID', message: /name them/ },
    {
      name: 'rows differing between inputs',
      body: { inputs: { input_ids: [[1, 2]], attention_mask: [[1, 1], [1, 1]] } },
      signature: TEXT_CLASSIFIER,
      code: 'INFERD_ERR_INPUT_INVALID',
      message: /has 2 rows, but input 'input_ids' has 1/,
    },
    {
      name: 'a v2 datatype of the wrong kind',
      body: { inputs: [{ name: 'features', shape: [1, 20], datatype: 'INT64', data: row }] },
      code: 'INFERD_ERR_INPUT_INVALID',
      message: /input 'features' has datatype INT64, but the model expects float32/,
    },
    {
      name: 'an unknown v2 datatype',
      body: { inputs: [{ name: 'features', shape: [1, 20], datatype: 'BYTES', data: row }] },
      code: 'INFERD_ERR_INPUT_INVALID',
      message: /unsupported datatype 'BYTES'/,
    },
    {
      name: 'v2 shape and data length disagreeing',
      body: { inputs: [{ name: 'features', shape: [2, 20], datatype: 'FP32', data: row }] },
      code: 'INFERD_ERR_INPUT_INVALID',
      message: /shape \[2,20\] \(40 values\), but 20 data values/,
    },
    {
      name: 'a v2 shape that is not integers',
      body: { inputs: [{ name: 'features', shape: [1.5, 20], datatype: 'FP32', data: row }] },
      code: 'INFERD_ERR_BODY_MALFORMED',
      message: /shape must be an array of non-negative integers/,
    },
    {
      name: 'v2 data that is not an array',
      body: { inputs: [{ name: 'features', shape: [1, 20], datatype: 'FP32', data: 'x' }] },
      code: 'INFERD_ERR_BODY_MALFORMED',
      message: /data must be an array/,
    },
    {
      name: 'a v2 INT64 value out of range for int8',
      body: { inputs: [{ name: 'x', shape: [1], datatype: 'INT64', data: [300] }] },
      signature: { inputs: [{ name: 'x', dtype: 'int8', shape: [null] }], outputs: [] },
      code: 'INFERD_ERR_INPUT_INVALID',
      message: /300 is out of range for int8/,
    },
  ];
  for (const { name, body, signature, code, message } of failures) {
    it(`rejects ${name} with ${code}`, () => assertFails(() => decode(body, signature), code, message));
  }

  it('keeps JSON.parse stack traces out of the message', () => {
    assertFails(() => decode('{"instances": [1,}'), 'INFERD_ERR_BODY_MALFORMED', /^the body is not valid JSON: [^\n]*$/);
  });
});

describe('JSON encoder', () => {
  it('writes one value per record for a single-output model', () => {
    const expected = REFERENCE.mlp_probabilities.map((p) => p.map((v) => Math.fround(v)));
    assert.deepEqual(encode(MLP_OUTPUTS, CHURN_MLP), { predictions: expected });
  });

  it('writes one object per record, keys in signature order, for a multi-output model', () => {
    const text = jsonEncoder.encode(FOREST_OUTPUTS, CHURN_FOREST, { style: 'predictions', modelName: 'forest' }).toString('utf8');
    assert.match(text, /^\{"predictions":\[\{"label":0,"probabilities":\[0\.72692/);
    const { predictions } = JSON.parse(text) as { predictions: { label: number; probabilities: number[] }[] };
    assert.deepEqual(
      predictions.map((p) => p.label),
      REFERENCE.forest_labels,
    );
    assert.deepEqual(predictions[4]?.probabilities, REFERENCE.forest_probabilities[4]?.map((v) => Math.fround(v)));
  });

  it('writes int64 beyond 2^53 as strings and smaller ones as numbers', () => {
    const signature: ModelSignature = { inputs: [], outputs: [{ name: 'id', dtype: 'int64', shape: [null] }] };
    const data = BigInt64Array.of(9007199254740991n, 9007199254740992n, -9007199254740993n, 42n);
    const text = jsonEncoder.encode({ id: { dtype: 'int64', dims: [4], data } }, signature, { style: 'predictions', modelName: 'm' });
    assert.equal(text.toString('utf8'), '{"predictions":[9007199254740991,"9007199254740992","-9007199254740993",42]}');
  });

  it('writes non-finite floats as strings and bools as true/false', () => {
    const signature: ModelSignature = {
      inputs: [],
      outputs: [
        { name: 'score', dtype: 'float64', shape: [null] },
        { name: 'flag', dtype: 'bool', shape: [null, 1] },
      ],
    };
    const outputs: NamedTensors = {
      score: { dtype: 'float64', dims: [3], data: Float64Array.of(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY) },
      flag: { dtype: 'bool', dims: [3, 1], data: Uint8Array.of(1, 0, 1) },
    };
    assert.deepEqual(encode(outputs, signature), {
      predictions: [
        { score: 'NaN', flag: [true] },
        { score: 'Infinity', flag: [false] },
        { score: '-Infinity', flag: [true] },
      ],
    });
  });

  it('writes nested arrays for outputs of rank above 2', () => {
    const signature: ModelSignature = { inputs: [], outputs: [{ name: 'y', dtype: 'int32', shape: [null, 2, 2] }] };
    const outputs: NamedTensors = { y: { dtype: 'int32', dims: [2, 2, 2], data: Int32Array.of(1, 2, 3, 4, 5, 6, 7, 8) } };
    assert.deepEqual(encode(outputs, signature), { predictions: [[[1, 2], [3, 4]], [[5, 6], [7, 8]]] });
  });

  it('writes the v2 response for a v2 request', () => {
    assert.deepEqual(encode(FOREST_OUTPUTS, CHURN_FOREST, 'v2'), {
      model_name: 'churn',
      outputs: [
        { name: 'label', datatype: 'INT64', shape: [5], data: REFERENCE.forest_labels },
        { name: 'probabilities', datatype: 'FP32', shape: [5, 3], data: REFERENCE.forest_probabilities.flat().map((v) => Math.fround(v)) },
      ],
    });
  });

  it('fails with an internal error when an output is missing', () => {
    assertFails(() => encode({ label: FOREST_OUTPUTS.label as Tensor }, CHURN_FOREST), 'INFERD_ERR_INTERNAL', /no output 'probabilities'/);
  });
});

describe('JSON v2 round trip', () => {
  for (const dtype of DTYPES) {
    it(`decodes what it encodes for ${dtype}`, () => {
      fc.assert(
        fc.property(tensorArbitrary(dtype), (tensor) => {
          const shape = tensor.dims.map(() => null);
          const signature: ModelSignature = { inputs: [{ name: 'x', dtype, shape }], outputs: [{ name: 'x', dtype, shape }] };
          const body = jsonEncoder.encode({ x: tensor }, signature, { style: 'v2', modelName: 'm' });
          const { outputs } = JSON.parse(body.toString('utf8')) as { outputs: unknown[] };
          const decoded = decode({ inputs: outputs }, signature);
          assert.equal(decoded.style, 'v2');
          assertTensor(decoded.inputs.x, tensor);
        }),
      );
    });
  }
});
