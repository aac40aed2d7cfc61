import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { csvDecoder, csvEncoder } from '../../src/codecs/csv.js';
import type { ModelSignature, NamedTensors } from '../../src/codecs/tensor.js';
import type { ErrorCode } from '../../src/errors.js';
import {
  assertFails,
  assertTensor,
  CHURN_FOREST,
  CHURN_MLP,
  FOREST_OUTPUTS,
  MOBILENET,
  REFERENCE,
  REFERENCE_FEATURES,
  TEXT_CLASSIFIER,
} from './fixtures.js';

const decode = (text: string, signature: ModelSignature = CHURN_MLP) => csvDecoder.decode(Buffer.from(text, 'utf8'), signature, {});
const referenceCsv = REFERENCE.rows.map((row) => row.join(',')).join('\n');
const THREE_COLUMNS: ModelSignature = { inputs: [{ name: 'x', dtype: 'float32', shape: [null, 3] }], outputs: [] };

describe('CSV decoder', () => {
  const layouts: { name: string; text: string }[] = [
    { name: 'LF lines', text: referenceCsv },
    { name: 'a trailing newline', text: `${referenceCsv}\n` },
    { name: 'CRLF lines', text: `${referenceCsv.replaceAll('\n', '\r\n')}\r\n` },
    { name: 'blank lines', text: `\n${referenceCsv.replaceAll('\n', '\n\n')}\r\n\n` },
    { name: 'a byte order mark', text: `\uFEFF${referenceCsv}` },
    { name: 'every field quoted', text: REFERENCE.rows.map((row) => row.map((v) => `"${v}"`).join(',')).join('\r\n') },
  ];
  for (const { name, text } of layouts) {
    it(`decodes the reference rows with ${name}`, () => {
      const decoded = decode(text);
      assert.equal(decoded.style, 'predictions');
      assertTensor(decoded.inputs.features, { dtype: 'float32', dims: [5, 20], data: REFERENCE_FEATURES });
    });
  }

  it('reads quoted fields, spaces and non-finite values', () => {
    const decoded = decode('"1.5", 2 ,"-3e2"\nNaN,Infinity,"-Infinity"\r\n', THREE_COLUMNS);
    assertTensor(decoded.inputs.x, {
      dtype: 'float32',
      dims: [2, 3],
      data: Float32Array.of(1.5, 2, -300, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY),
    });
  });

  it('reads int64 beyond 2^53 exactly and takes the row length from the first record when dim 1 is dynamic', () => {
    const signature: ModelSignature = { inputs: [{ name: 'ids', dtype: 'int64', shape: [null, null] }], outputs: [] };
    assertTensor(decode('1,9007199254740993\n-2,"3"\n', signature).inputs.ids, {
      dtype: 'int64',
      dims: [2, 2],
      data: BigInt64Array.of(1n, 9007199254740993n, -2n, 3n),
    });
  });

  const failures: { name: string; text: string; signature?: ModelSignature; code: ErrorCode; message: RegExp }[] = [
    { name: 'an empty body', text: '', code: 'INFERD_ERR_BODY_MALFORMED', message: /empty/ },
    { name: 'only blank lines', text: '\n\r\n\n', code: 'INFERD_ERR_BODY_MALFORMED', message: /no records/ },
    { name: 'a non-numeric field', text: '1,2,3\n4,abc,6\n', signature: THREE_COLUMNS, code: 'INFERD_ERR_INPUT_INVALID', message: /^line 2, column 2: expected a number, got string "abc"$/ },
    { name: 'a non-numeric last field of a CRLF line', text: '1,2,x\r\n', signature: THREE_COLUMNS, code: 'INFERD_ERR_INPUT_INVALID', message: /^line 1, column 3: expected a number, got string "x"$/ },
    { name: 'an empty last field of a CRLF line', text: '1,2,\r\n', signature: THREE_COLUMNS, code: 'INFERD_ERR_INPUT_INVALID', message: /^line 1, column 3: expected a number, got string ""$/ },
    { name: 'an empty field', text: '1,,3', signature: THREE_COLUMNS, code: 'INFERD_ERR_INPUT_INVALID', message: /^line 1, column 2: expected a number/ },
    { name: 'a trailing comma', text: '1,2,3,\n', signature: THREE_COLUMNS, code: 'INFERD_ERR_INPUT_INVALID', message: /^line 1, column 4: expected a number, got string ""/ },
    { name: 'a trailing comma that ends the body', text: '1,2,3\n4,5,6,', signature: THREE_COLUMNS, code: 'INFERD_ERR_INPUT_INVALID', message: /^line 2, column 4: expected a number, got string ""$/ },
    { name: 'a quoted comma', text: '1,"2,5",3', signature: THREE_COLUMNS, code: 'INFERD_ERR_INPUT_INVALID', message: /^line 1, column 2: expected a number, got string "2,5"$/ },
    { name: 'an escaped quote', text: '1,2,"3""4"', signature: THREE_COLUMNS, code: 'INFERD_ERR_INPUT_INVALID', message: /^line 1, column 3: expected a number, got string "3\\"4"$/ },
    { name: 'an unclosed quote', text: '1,2,"3\n', signature: THREE_COLUMNS, code: 'INFERD_ERR_BODY_MALFORMED', message: /line 1: a quoted field is not closed/ },
    { name: 'text after a closing quote', text: '1,2,"3"x\n', signature: THREE_COLUMNS, code: 'INFERD_ERR_BODY_MALFORMED', message: /line 1: unexpected character after a closing quote/ },
    { name: 'a short row', text: `${referenceCsv}\n1,2,3\n`, code: 'INFERD_ERR_INPUT_INVALID', message: /^line 6 has 3 fields, expected 20$/ },
    { name: 'rows of differing length', text: '1,2\n3\n', signature: { inputs: [{ name: 'x', dtype: 'float32', shape: [null, null] }], outputs: [] }, code: 'INFERD_ERR_INPUT_INVALID', message: /line 2 has 1 fields, expected 2/ },
    { name: 'a float for an int input', text: '1.5', signature: { inputs: [{ name: 'x', dtype: 'int32', shape: [null, 1] }], outputs: [] }, code: 'INFERD_ERR_INPUT_INVALID', message: /line 1, column 1: expected an integer, got 1.5/ },
    { name: 'a multi-input model', text: '1,2', signature: TEXT_CLASSIFIER, code: 'INFERD_ERR_UNSUPPORTED_MEDIA_TYPE', message: /text\/csv needs a model with a single 2-D numeric input/ },
    { name: 'a 4-D input', text: '1,2', signature: MOBILENET, code: 'INFERD_ERR_UNSUPPORTED_MEDIA_TYPE', message: /single 2-D/ },
    { name: 'a bool input', text: '1', signature: { inputs: [{ name: 'x', dtype: 'bool', shape: [null, 1] }], outputs: [] }, code: 'INFERD_ERR_UNSUPPORTED_MEDIA_TYPE', message: /numeric/ },
  ];
  for (const { name, text, signature, code, message } of failures) {
    it(`rejects ${name} with ${code}`, () => assertFails(() => decode(text, signature), code, message));
  }

  it('counts lines inside quoted fields when naming a line', () => {
    assertFails(() => decode('1,"\n2",3\n4,x,6', THREE_COLUMNS), 'INFERD_ERR_INPUT_INVALID', /^line 3, column 2:/);
  });
});

describe('CSV encoder', () => {
  it('writes every output of a record on its line, in signature order', () => {
    const lines = csvEncoder.encode(FOREST_OUTPUTS, CHURN_FOREST, { style: 'predictions', modelName: 'forest' }).toString('utf8').split('\n');
    assert.equal(lines.length, 6);
    assert.equal(lines[5], '');
    REFERENCE.forest_labels.forEach((label, i) => {
      const probabilities = (REFERENCE.forest_probabilities[i] as number[]).map((p) => String(Math.fround(p)));
      assert.equal(lines[i], [String(label), ...probabilities].join(','));
    });
  });

  it('flattens outputs of rank above 2 and writes bools as 1 and 0', () => {
    const signature: ModelSignature = {
      inputs: [],
      outputs: [
        { name: 'flag', dtype: 'bool', shape: [null] },
        { name: 'y', dtype: 'int64', shape: [null, 2, 2] },
      ],
    };
    const outputs: NamedTensors = {
      flag: { dtype: 'bool', dims: [2], data: Uint8Array.of(1, 0) },
      y: { dtype: 'int64', dims: [2, 2, 2], data: BigInt64Array.of(1n, 2n, 3n, 4n, 5n, 6n, 7n, 9007199254740993n) },
    };
    const text = csvEncoder.encode(outputs, signature, { style: 'predictions', modelName: 'm' }).toString('utf8');
    assert.equal(text, '1,1,2,3,4\n0,5,6,7,9007199254740993\n');
  });

  it('reads every decimal field as the very double Number() reads', () => {
    const decimal = fc
      .tuple(fc.boolean(), fc.stringMatching(/^[0-9]{1,18}$/), fc.option(fc.stringMatching(/^[0-9]{0,18}$/)), fc.option(fc.integer({ min: -30, max: 30 })))
      .map(([negative, whole, fraction, exponent]) => `${negative ? '-' : ''}${whole}${fraction === null ? '' : `.${fraction}`}${exponent === null ? '' : `e${exponent}`}`);
    const signature: ModelSignature = { inputs: [{ name: 'x', dtype: 'float64', shape: [null, null] }], outputs: [] };
    fc.assert(
      fc.property(fc.array(decimal, { minLength: 1, maxLength: 8 }), (fields) => {
        const decoded = csvDecoder.decode(Buffer.from(fields.join(',')), signature, {}).inputs.x!;
        assert.deepEqual(Array.from(decoded.data as Float64Array), fields.map(Number));
      }),
      { numRuns: 2000 },
    );
  });

  it('reads any body of unquoted fields as a plain reading of its lines and fields does, or refuses it', () => {
    // Plain decimals take the one-pass reader; anything else in a body sends all of it to the
    // general one. Both must agree with this reading of the body, errors included.
    const field = fc.oneof(
      { weight: 6, arbitrary: fc.tuple(fc.boolean(), fc.stringMatching(/^[0-9]{1,17}$/), fc.option(fc.stringMatching(/^[0-9]{0,9}$/))).map(([minus, whole, fraction]) => `${minus ? '-' : ''}${whole}${fraction === null ? '' : `.${fraction}`}`) },
      { weight: 1, arbitrary: fc.constantFrom('', ' 1.5', '2 ', '1e3', '+2', '.5', '-', 'NaN', 'abc', '0x10', '1.2.3') },
    );
    const body = fc.tuple(
      fc.integer({ min: 1, max: 4 }).chain((width) => fc.array(fc.array(field, { minLength: width, maxLength: width + (width > 3 ? 0 : 1) }), { minLength: 1, maxLength: 5 })),
      fc.constantFrom('\n', '\r\n'),
      fc.boolean(),
      fc.boolean(),
    ).map(([rows, newline, trailing, blank]) => rows.map((row) => row.join(',')).join(blank ? `${newline}${newline}` : newline) + (trailing ? newline : ''));
    const plainReading = (text: string, fixedWidth: number | null): number[][] | 'refused' => {
      const rows = text.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line)).filter((line) => line !== '');
      const values = rows.map((line) => line.split(',').map((f) => (f.trim() === '' || (Number.isNaN(Number(f)) && f.trim() !== 'NaN') ? undefined : Number(f))));
      const width = values[0]?.length;
      const refused = values.length === 0 || (fixedWidth !== null && width !== fixedWidth) || values.some((row) => row.length !== width || row.includes(undefined));
      return refused ? 'refused' : (values as number[][]);
    };
    fc.assert(
      fc.property(body, fc.constantFrom(null, 2), (text, fixedWidth) => {
        const signature: ModelSignature = { inputs: [{ name: 'x', dtype: 'float64', shape: [null, fixedWidth] }], outputs: [] };
        const expected = plainReading(text, fixedWidth);
        if (expected === 'refused') {
          assert.throws(() => csvDecoder.decode(Buffer.from(text), signature, {}), (error: { code?: string }) => /^INFERD_ERR_(INPUT_INVALID|BODY_MALFORMED)$/.test(error.code ?? ''));
          return;
        }
        const decoded = csvDecoder.decode(Buffer.from(text), signature, {}).inputs.x!;
        assert.deepEqual(decoded.dims, [expected.length, expected[0]!.length]);
        assert.deepEqual(Array.from(decoded.data as Float64Array), expected.flat());
      }),
      { numRuns: 3000 },
    );
  });

  it('round-trips any 2-D float32 tensor exactly', () => {
    const matrix = fc.integer({ min: 1, max: 6 }).chain((columns) =>
      fc.array(fc.array(fc.float({ noNaN: true }), { minLength: columns, maxLength: columns }), { minLength: 1, maxLength: 8 }),
    );
    fc.assert(
      fc.property(matrix, (rows) => {
        const dims = [rows.length, (rows[0] as number[]).length];
        const tensor = { dtype: 'float32' as const, dims, data: Float32Array.from(rows.flat()) };
        const signature: ModelSignature = {
          inputs: [{ name: 'x', dtype: 'float32', shape: [null, dims[1] as number] }],
          outputs: [{ name: 'x', dtype: 'float32', shape: [null, dims[1] as number] }],
        };
        const body = csvEncoder.encode({ x: tensor }, signature, { style: 'predictions', modelName: 'm' });
        const decoded = csvDecoder.decode(body, signature, {}).inputs.x;
        // String(-0) is "0": CSV, like JSON, does not keep the sign of zero.
        assertTensor(decoded, { ...tensor, data: tensor.data.map((v) => (v === 0 ? 0 : v)) });
      }),
    );
  });
});
