import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  InvalidJsonPathError,
  MAX_JSON_PATH_LENGTH_CHARS,
  parseJsonPath,
  selectJson,
  type JsonPathSegment,
} from '../../src/modes/transform/jsonpath.js';
import { assertFails } from '../codecs/fixtures.js';

const ROW = ['id7', 'a', 'b', 'c', 'd', 'e', 'f'];
const RECORD = {
  id: 7,
  features: [0.5, 1.5, 2.5],
  meta: { source: 's3', tags: ['x', 'y'] },
  'odd key': 1,
  SageMakerOutput: { label: 1 },
};

describe('parseJsonPath', () => {
  const shapes: { expression: string; segments: JsonPathSegment[] }[] = [
    { expression: '$', segments: [] },
    { expression: '$.id', segments: [{ kind: 'name', name: 'id' }] },
    { expression: "$['id']", segments: [{ kind: 'name', name: 'id' }] },
    { expression: '$["id"]', segments: [{ kind: 'name', name: 'id' }] },
    { expression: "$.meta.['source','tags']", segments: [{ kind: 'name', name: 'meta' }, { kind: 'names', names: ['source', 'tags'] }] },
    { expression: "$['id', 'SageMakerOutput']", segments: [{ kind: 'names', names: ['id', 'SageMakerOutput'] }] },
    { expression: '$.*', segments: [{ kind: 'wildcard' }] },
    { expression: '$[*]', segments: [{ kind: 'wildcard' }] },
    { expression: '$[-1]', segments: [{ kind: 'index', index: -1 }] },
    { expression: '$[1,3,5]', segments: [{ kind: 'indexes', items: [1, 3, 5].map((index) => ({ kind: 'index', index }) as const) }] },
    { expression: '$[2:5]', segments: [{ kind: 'indexes', items: [{ kind: 'slice', start: 2, end: 5 }] }] },
    { expression: '$[:5]', segments: [{ kind: 'indexes', items: [{ kind: 'slice', start: undefined, end: 5 }] }] },
    { expression: '$[1:]', segments: [{ kind: 'indexes', items: [{ kind: 'slice', start: 1, end: undefined }] }] },
    {
      expression: '$[0, 5:]',
      segments: [{ kind: 'indexes', items: [{ kind: 'index', index: 0 }, { kind: 'slice', start: 5, end: undefined }] }],
    },
    { expression: '$.features[1:]', segments: [{ kind: 'name', name: 'features' }, { kind: 'indexes', items: [{ kind: 'slice', start: 1, end: undefined }] }] },
    { expression: "$['it\\'s']", segments: [{ kind: 'name', name: "it's" }] },
  ];
  for (const { expression, segments } of shapes) {
    it(`parses ${expression}`, () => assert.deepEqual(parseJsonPath(expression), { expression, segments }));
  }

  const invalid: { name: string; expression: string; message: RegExp }[] = [
    { name: 'an empty expression', expression: '', message: /must start with '\$'/ },
    { name: 'a missing root', expression: 'id', message: /must start with '\$'/ },
    { name: 'a trailing dot', expression: '$.', message: /a name must follow '\.'/ },
    { name: 'recursive descent', expression: '$..id', message: /recursive descent/ },
    { name: 'a filter', expression: '$[?(@.id > 1)]', message: /unexpected "\?"/ },
    { name: 'a script', expression: '$[(@.length-1)]', message: /unexpected "\("/ },
    { name: 'a slice step', expression: '$[0:6:2]', message: /slice steps/ },
    { name: 'nested brackets', expression: '$[[0]]', message: /nested brackets/ },
    { name: 'a bracket inside a bracket', expression: '$[0[1]]', message: /nested brackets/ },
    { name: 'nesting inside a multi-name bracket', expression: "$.field1.['child1','child2.grandchild']", message: /nesting inside brackets/ },
    { name: 'names mixed with indexes', expression: "$['id',0]", message: /mixing names and indexes/ },
    { name: 'indexes mixed with names', expression: "$[0,'id']", message: /mixing names and indexes/ },
    { name: 'empty brackets', expression: '$[]', message: /empty brackets/ },
    { name: 'an unclosed bracket', expression: '$[0', message: /missing '\]'/ },
    { name: 'an unclosed quote', expression: "$['id", message: /not closed/ },
    { name: 'a non-integer index', expression: '$[1.5]', message: /unexpected "\." in brackets/ },
    { name: 'a lone minus', expression: '$[-]', message: /"-" is not an index/ },
    { name: 'an unsafe integer', expression: '$[99999999999999999999]', message: /is not an index/ },
    { name: 'a wildcard in a list', expression: '$[*,1]', message: /unexpected "," in brackets/ },
    { name: 'a segment after a slice', expression: '$[1:].id', message: /only the last segment may select several/ },
    { name: 'a segment after a wildcard', expression: '$.*.id', message: /only the last segment may select several/ },
    { name: "a segment after ['a','b']", expression: "$['a','b'].c", message: /only the last segment may select several/ },
    { name: 'text after the root', expression: '$id', message: /expected '\.' or '\['/ },
    { name: 'a space after the root', expression: '$ ', message: /expected '\.' or '\['/ },
    { name: `more than ${MAX_JSON_PATH_LENGTH_CHARS} characters`, expression: `$.${'a'.repeat(62)}`, message: /64 characters, SageMaker allows at most 63/ },
  ];
  for (const { name, expression, message } of invalid) {
    it(`rejects ${name}`, () => {
      assert.throws(() => parseJsonPath(expression), (error: unknown) => {
        assert.ok(error instanceof InvalidJsonPathError, `not an InvalidJsonPathError: ${String(error)}`);
        assert.match(error.message, message);
        return true;
      });
    });
  }

  it(`accepts exactly ${MAX_JSON_PATH_LENGTH_CHARS} characters`, () => {
    const expression = `$.${'a'.repeat(61)}`;
    assert.equal(expression.length, MAX_JSON_PATH_LENGTH_CHARS);
    assert.deepEqual(parseJsonPath(expression).segments, [{ kind: 'name', name: 'a'.repeat(61) }]);
  });
});

describe('selectJson', () => {
  const selections: { expression: string; value: unknown; expected: unknown }[] = [
    { expression: '$', value: RECORD, expected: RECORD },
    { expression: '$.id', value: RECORD, expected: 7 },
    { expression: "$['odd key']", value: RECORD, expected: 1 },
    { expression: '$.meta.source', value: RECORD, expected: 's3' },
    { expression: '$.meta.tags[-1]', value: RECORD, expected: 'y' },
    { expression: "$['id','SageMakerOutput']", value: RECORD, expected: { id: 7, SageMakerOutput: { label: 1 } } },
    { expression: "$['SageMakerOutput','id']", value: RECORD, expected: { SageMakerOutput: { label: 1 }, id: 7 } },
    { expression: "$['id','absent']", value: RECORD, expected: { id: 7 } },
    { expression: "$.meta['source','tags']", value: RECORD, expected: { source: 's3', tags: ['x', 'y'] } },
    { expression: '$.meta.*', value: RECORD, expected: ['s3', ['x', 'y']] },
    { expression: '$.features[*]', value: RECORD, expected: [0.5, 1.5, 2.5] },
    { expression: '$.features[1:]', value: RECORD, expected: [1.5, 2.5] },
    { expression: '$[0]', value: ROW, expected: 'id7' },
    { expression: '$[-1]', value: ROW, expected: 'f' },
    { expression: '$[-7]', value: ROW, expected: 'id7' },
    { expression: '$[1,3,5]', value: ROW, expected: ['a', 'c', 'e'] },
    { expression: '$[0,-1]', value: ROW, expected: ['id7', 'f'] },
    { expression: '$[-1,0,0]', value: ROW, expected: ['f', 'id7', 'id7'] },
    // Inclusive ends, as the SageMaker guide states: $[1:4] is the second through fifth columns.
    { expression: '$[1:4]', value: ROW, expected: ['a', 'b', 'c', 'd'] },
    { expression: '$[0:2]', value: ROW, expected: ['id7', 'a', 'b'] },
    { expression: '$[:5]', value: ROW, expected: ['id7', 'a', 'b', 'c', 'd', 'e'] },
    { expression: '$[2:]', value: ROW, expected: ['b', 'c', 'd', 'e', 'f'] },
    { expression: '$[5:]', value: ROW, expected: ['e', 'f'] },
    { expression: '$[:]', value: ROW, expected: ROW },
    { expression: '$[-2:]', value: ROW, expected: ['e', 'f'] },
    { expression: '$[1:-2]', value: ROW, expected: ['a', 'b', 'c', 'd', 'e'] },
    { expression: '$[3:3]', value: ROW, expected: ['c'] },
    { expression: '$[4:2]', value: ROW, expected: [] },
    { expression: '$[0,5:]', value: ROW, expected: ['id7', 'e', 'f'] },
    { expression: '$[1:2,-1]', value: ROW, expected: ['a', 'b', 'f'] },
    { expression: '$[:]', value: [], expected: [] },
    { expression: '$[*]', value: [], expected: [] },
  ];
  for (const { expression, value, expected } of selections) {
    it(`selects ${expression} from ${JSON.stringify(value).slice(0, 40)}`, () => {
      assert.deepEqual(selectJson(value, parseJsonPath(expression)), expected);
    });
  }

  it('returns new arrays and leaves the record untouched', () => {
    const row = [1, 2, 3];
    const all = selectJson(row, parseJsonPath('$[*]'));
    assert.notEqual(all, row);
    assert.deepEqual(row, [1, 2, 3]);
  });

  it('keeps a parsed "__proto__" member as data, not as a prototype', () => {
    const record = JSON.parse('{"__proto__": {"polluted": true}, "id": 1}') as unknown;
    const picked = selectJson(record, parseJsonPath("$['__proto__','id']")) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(picked), Object.prototype);
    assert.equal(JSON.stringify(picked), '{"__proto__":{"polluted":true},"id":1}');
    assert.deepEqual(selectJson(record, parseJsonPath("$['__proto__']")), { polluted: true });
    assertFails(() => selectJson({}, parseJsonPath('$.constructor')), 'INFERD_ERR_INPUT_INVALID', /no member "constructor"/);
  });

  const failures: { expression: string; value: unknown; message: RegExp }[] = [
    { expression: '$.absent', value: RECORD, message: /^\$\.absent: the record has no member "absent"$/ },
    { expression: '$.id.x', value: RECORD, message: /a name needs an object, got a number/ },
    { expression: "$['a','b']", value: [1], message: /a name needs an object, got an array of 1 elements/ },
    { expression: '$.id', value: null, message: /a name needs an object, got null/ },
    { expression: '$[0]', value: RECORD, message: /an index needs an array, got an object/ },
    { expression: '$[0,1]', value: 'text', message: /an index needs an array, got a string/ },
    { expression: '$[7]', value: ROW, message: /^\$\[7\]: index 7 is out of range for an array of 7 elements$/ },
    { expression: '$[-8]', value: ROW, message: /index -8 is out of range/ },
    { expression: '$[0,9]', value: ROW, message: /index 9 is out of range/ },
    { expression: '$[1:7]', value: ROW, message: /index 7 is out of range/ },
    { expression: '$[7:]', value: ROW, message: /index 7 is out of range/ },
    { expression: '$[0:]', value: [], message: /index 0 is out of range for an array of 0 elements/ },
    { expression: '$.*', value: 3, message: /'\*' needs an array or an object, got a number/ },
  ];
  for (const { expression, value, message } of failures) {
    it(`fails ${expression} on ${JSON.stringify(value).slice(0, 30)} with INFERD_ERR_INPUT_INVALID`, () => {
      assertFails(() => selectJson(value, parseJsonPath(expression)), 'INFERD_ERR_INPUT_INVALID', message);
    });
  }

  it('selects [start:end] as Array.prototype.slice(start, end + 1) after resolving negative bounds', () => {
    const case_ = fc
      .array(fc.integer(), { minLength: 1, maxLength: 12 })
      .chain((array) =>
        fc.record({
          array: fc.constant(array),
          start: fc.option(fc.integer({ min: -array.length, max: array.length - 1 }), { nil: undefined }),
          end: fc.option(fc.integer({ min: -array.length, max: array.length - 1 }), { nil: undefined }),
        }),
      );
    fc.assert(
      fc.property(case_, ({ array, start, end }) => {
        const resolve = (bound: number) => (bound < 0 ? bound + array.length : bound);
        const from = start === undefined ? 0 : resolve(start);
        const to = end === undefined ? array.length - 1 : resolve(end);
        const selected = selectJson(array, parseJsonPath(`$[${start ?? ''}:${end ?? ''}]`));
        assert.deepEqual(selected, array.slice(from, to + 1));
      }),
    );
  });
});
