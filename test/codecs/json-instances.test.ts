import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeJsonValue, jsonDecoder, parseJson } from '../../src/codecs/json.js';
import { floatInstances } from '../../src/codecs/json-instances.js';
import { tensorFromNested } from '../../src/codecs/signature-check.js';
import type { DecodedRequest } from '../../src/codecs/codec.js';
import type { ModelSignature, Tensor } from '../../src/codecs/tensor.js';
import { CHURN_MLP } from './fixtures.js';

type FloatDType = 'float32' | 'float64';

/** What the general decoder makes of `{"instances": ...}`: JSON.parse, then the nested copy. */
function parsedInstances(text: string, dtype: FloatDType): Tensor {
  const parsed = JSON.parse(text) as { instances: unknown };
  assert.deepEqual(Object.keys(parsed), ['instances']);
  return tensorFromNested('x', parsed.instances, { name: 'x', dtype, shape: [] });
}

function assertSameTensor(actual: Tensor, expected: Tensor): void {
  assert.equal(actual.dtype, expected.dtype);
  assert.deepEqual(actual.dims, expected.dims);
  assert.equal(actual.data.length, expected.data.length);
  expected.data.forEach((value, i) => assert.ok(Object.is(actual.data[i], value), `value ${i}: ${String(actual.data[i])}, expected ${String(value)}`));
}

/** The decoder's answer, or its error's code and message: to compare with the general route's. */
function outcome(decode: () => DecodedRequest): unknown {
  try {
    const { inputs, style } = decode();
    return { style, inputs: Object.fromEntries(Object.entries(inputs).map(([name, t]) => [name, { dtype: t.dtype, dims: t.dims, data: Array.from(t.data as Float32Array) }])) };
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    return { code, message };
  }
}

function assertDecodedAsGeneral(text: string, signature: ModelSignature = CHURN_MLP): void {
  const body = Buffer.from(text, 'utf8');
  const general = outcome(() => decodeJsonValue(parseJson(body.toString('utf8'), 'the body'), signature));
  assert.deepEqual(outcome(() => jsonDecoder.decode(body, signature, {})), general, text.slice(0, 80));
}

const space = fc.constantFrom('', '', '', ' ', '\n', '\r\n', '\t', '  ');

/** The text of any JSON number: as JSON.stringify writes doubles, plain decimals, and odd forms. */
const numberText = fc.oneof(
  { weight: 3, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }).map((value) => JSON.stringify(value)) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.boolean(), fc.integer({ min: 0, max: 99999 }), fc.option(fc.stringMatching(/^[0-9]{1,12}$/)))
      .map(([negative, whole, fraction]) => `${negative ? '-' : ''}${whole}${fraction === null ? '' : `.${fraction}`}`),
  },
  { weight: 1, arbitrary: fc.stringMatching(/^-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?$/) },
  { weight: 1, arbitrary: fc.constantFrom('-0', '0.0', '-0.0', '1E5', '1e+5', '1.5E-3', '123456789012345', '1234567890123456', '0.1234567890123456789') },
);

/** A rectangular nested array of number texts, written with random space between tokens. */
const instancesBody = fc
  .array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 })
  .chain((dims) => {
    const count = dims.reduce((a, b) => a * b, 1);
    return fc.tuple(fc.constant(dims), fc.array(numberText, { minLength: count, maxLength: count }), fc.array(space, { minLength: 1, maxLength: 64 }));
  })
  .map(([dims, numbers, spaces]) => {
    let next = 0;
    let gap = 0;
    const s = () => spaces[gap++ % spaces.length]!;
    const write = (depth: number): string => {
      if (depth === dims.length) return numbers[next++]!;
      return `[${s()}${Array.from({ length: dims[depth]! }, () => write(depth + 1)).join(`${s()},${s()}`)}${s()}]`;
    };
    return `${s()}{${s()}"instances"${s()}:${s()}${write(0)}${s()}}${s()}`;
  });

describe('JSON instances read straight into a float tensor', () => {
  for (const dtype of ['float32', 'float64'] as const) {
    it(`reads any {"instances": nested numbers} as JSON.parse and the nested copy do (${dtype})`, () => {
      fc.assert(
        fc.property(instancesBody, (text) => {
          const tensor = floatInstances(Buffer.from(text), dtype);
          assert.ok(tensor, `refused a valid body: ${text}`);
          assertSameTensor(tensor, parsedInstances(text, dtype));
        }),
        { numRuns: 1500 },
      );
    });
  }

  it('accepts nothing that JSON.parse and the nested copy would read otherwise, whatever a byte changes', () => {
    const edit = fc.tuple(fc.nat(), fc.constantFrom('insert', 'delete', 'replace'), fc.constantFrom(...'[]{},:"-+.eE0159 \nax'));
    fc.assert(
      fc.property(instancesBody, fc.array(edit, { minLength: 1, maxLength: 3 }), (text, edits) => {
        let mutated = text;
        for (const [at, kind, char] of edits) {
          const i = at % (mutated.length + 1);
          mutated = kind === 'insert' ? mutated.slice(0, i) + char + mutated.slice(i) : mutated.slice(0, i) + (kind === 'replace' ? char : '') + mutated.slice(i + 1);
        }
        const tensor = floatInstances(Buffer.from(mutated), 'float32');
        if (tensor) assertSameTensor(tensor, parsedInstances(mutated, 'float32'));
      }),
      { numRuns: 3000 },
    );
  });

  it('leaves every other body to the general decoder, which answers it as before', () => {
    const row = Array.from({ length: 20 }, (_, i) => i / 4);
    const bodies = [
      JSON.stringify({ instances: [row, row] }),
      JSON.stringify({ instances: [row.map(String)] }),
      JSON.stringify({ instances: [['NaN', ...row.slice(1)]] }),
      JSON.stringify({ instances: [[null, ...row.slice(1)]] }),
      JSON.stringify({ instances: [[true, ...row.slice(1)]] }),
      JSON.stringify({ instances: [] }),
      JSON.stringify({ instances: [[]] }),
      JSON.stringify({ instances: [row, row.slice(1)] }),
      JSON.stringify({ instances: [row, [row]] }),
      JSON.stringify({ instances: row }),
      JSON.stringify({ instances: [[row]] }),
      JSON.stringify({ instances: 1 }),
      JSON.stringify({ instances: [{ features: row }] }),
      JSON.stringify({ inputs: { features: [row] } }),
      JSON.stringify([row]),
      `{"instances": [${JSON.stringify(row)}], "instances": [${JSON.stringify(row)}]}`,
      `{"instances": [${JSON.stringify(row)}], "extra": 1}`,
      `{"instances": [${JSON.stringify(row)}]} x`,
      `{"instances": [${JSON.stringify(row)}]`,
      `\uFEFF{"instances": [${JSON.stringify(row)}]}`,
      `{"instance\\u0073": [${JSON.stringify(row)}]}`,
      ...['01', '1.', '.5', '+1', '1e', '1e+', '-', '--1', '0x10', 'Infinity', '1_0'].map((bad) => `{"instances": [[${bad}${',0'.repeat(19)}]]}`),
      `{"instances": ${'['.repeat(40)}1${']'.repeat(40)}}`,
      ' ',
      '{}',
    ];
    for (const text of bodies) assertDecodedAsGeneral(text);
  });

  it('checks the tensor it reads against the signature as the general decoder does', () => {
    const row = Array.from({ length: 20 }, (_, i) => i - 10);
    for (const instances of [[row], row, [row.slice(1)], [[row]], [row, row, row]]) assertDecodedAsGeneral(JSON.stringify({ instances }));
  });

  it('reads a request larger than the values it keeps between requests, and a small one after it', () => {
    const big = Array.from({ length: 10_000 }, (_, r) => Array.from({ length: 20 }, (_, c) => (r * 20 + c) / 8 - 100));
    const small = [Array.from({ length: 20 }, (_, c) => -c / 3)];
    for (const instances of [big, small, big]) {
      const text = JSON.stringify({ instances });
      assertSameTensor(floatInstances(Buffer.from(text), 'float32')!, parsedInstances(text, 'float32'));
    }
  });
});
