import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsonEncoder } from '../../src/codecs/json.js';
import { jsonLinesDecoder, jsonLinesEncoder } from '../../src/codecs/jsonlines.js';
import type { ModelSignature, NamedTensors } from '../../src/codecs/tensor.js';
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
} from './fixtures.js';

const decode = (text: string, signature: ModelSignature = CHURN_MLP) => jsonLinesDecoder.decode(Buffer.from(text, 'utf8'), signature, {});
const lines = (records: unknown[]) => records.map((record) => JSON.stringify(record)).join('\n');

describe('JSON Lines decoder', () => {
  const layouts: { name: string; text: string }[] = [
    { name: 'one row per line', text: lines(REFERENCE.rows) },
    { name: 'objects keyed by input name', text: lines(REFERENCE.rows.map((features) => ({ features }))) },
    { name: 'CRLF, blank lines and a trailing newline', text: `\r\n${lines(REFERENCE.rows).replaceAll('\n', '\r\n\r\n')}\r\n` },
  ];
  for (const { name, text } of layouts) {
    it(`decodes the reference rows from ${name}`, () => {
      const decoded = decode(text);
      assert.equal(decoded.style, 'predictions');
      assertTensor(decoded.inputs.features, { dtype: 'float32', dims: [5, 20], data: REFERENCE_FEATURES });
    });
  }

  it('stacks multi-input records', () => {
    const text = lines([
      { input_ids: [101, 102], attention_mask: [1, 1] },
      { input_ids: [101, 0], attention_mask: [1, 0] },
    ]);
    const decoded = decode(text, TEXT_CLASSIFIER);
    assertTensor(decoded.inputs.input_ids, { dtype: 'int64', dims: [2, 2], data: BigInt64Array.of(101n, 102n, 101n, 0n) });
    assertTensor(decoded.inputs.attention_mask, { dtype: 'int64', dims: [2, 2], data: BigInt64Array.of(1n, 1n, 1n, 0n) });
  });

  const row = JSON.stringify(REFERENCE.rows[0]);
  const failures: { name: string; text: string; signature?: ModelSignature; code: ErrorCode; message: RegExp }[] = [
    { name: 'an empty body', text: '', code: 'INFERD_ERR_BODY_MALFORMED', message: /empty/ },
    { name: 'only blank lines', text: '\n \n', code: 'INFERD_ERR_BODY_MALFORMED', message: /no records/ },
    { name: 'a malformed line', text: `${row}\n\n[1, 2,\n`, code: 'INFERD_ERR_BODY_MALFORMED', message: /^line 3 is not valid JSON/ },
    { name: 'a short row', text: `${row}\n[1, 2]`, code: 'INFERD_ERR_INPUT_INVALID', message: /input 'features'\[1\] must be an array of 20 elements, got 2/ },
    {
      name: 'a record missing an input',
      text: '\n{"input_ids": [1], "attention_mask": [1]}\n{"input_ids": [1]}',
      signature: TEXT_CLASSIFIER,
      code: 'INFERD_ERR_INPUT_INVALID',
      message: /^line 3 is missing input 'attention_mask'$/,
    },
    { name: 'a record keyed by an unknown name', text: `{"feature": ${row}}`, code: 'INFERD_ERR_INPUT_INVALID', message: /line 1 has unknown input 'feature'/ },
  ];
  for (const { name, text, signature, code, message } of failures) {
    it(`rejects ${name} with ${code}`, () => assertFails(() => decode(text, signature), code, message));
  }
});

describe('JSON Lines encoder', () => {
  const cases: { name: string; outputs: NamedTensors; signature: ModelSignature }[] = [
    { name: 'a single-output model', outputs: MLP_OUTPUTS, signature: CHURN_MLP },
    { name: 'a multi-output model', outputs: FOREST_OUTPUTS, signature: CHURN_FOREST },
  ];
  for (const { name, outputs, signature } of cases) {
    it(`writes one JSON predictions element per line for ${name}`, () => {
      const options = { style: 'predictions' as const, modelName: 'm' };
      const text = jsonLinesEncoder.encode(outputs, signature, options).toString('utf8');
      assert.ok(text.endsWith('\n'));
      const records = text.trimEnd().split('\n').map((line) => JSON.parse(line) as unknown);
      const { predictions } = JSON.parse(jsonEncoder.encode(outputs, signature, options).toString('utf8')) as { predictions: unknown[] };
      assert.deepEqual(records, predictions);
    });
  }

  it('writes the forest label and probabilities per line', () => {
    const [first] = jsonLinesEncoder.encode(FOREST_OUTPUTS, CHURN_FOREST, { style: 'predictions', modelName: 'm' }).toString('utf8').split('\n');
    assert.match(first ?? '', /^\{"label":0,"probabilities":\[0\.7269221544265747,0\.20824843645095825,0\.06482937932014465\]\}$/);
  });
});
