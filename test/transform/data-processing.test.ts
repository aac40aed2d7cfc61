import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  createRecordProcessor,
  DataProcessingError,
  type DataProcessingOptions,
  type RecordFormat,
} from '../../src/modes/transform/data-processing.js';
import { InvalidJsonPathError } from '../../src/modes/transform/jsonpath.js';
import type { ErrorCode } from '../../src/errors.js';
import { assertFails } from '../codecs/fixtures.js';

/** A record that a processor must refuse at `step`, with this error. */
interface FailureCase {
  readonly name: string;
  readonly overrides: Partial<DataProcessingOptions>;
  readonly step: 'filterInput' | 'assemble';
  readonly input: string;
  readonly output?: string;
  readonly code: ErrorCode;
  readonly message: RegExp;
}

const DEFAULTS: DataProcessingOptions = { inputFilter: '$', joinSource: 'None', outputFilter: '$' };
const options = (overrides: Partial<DataProcessingOptions>): DataProcessingOptions => ({ ...DEFAULTS, ...overrides });

describe('createRecordProcessor', () => {
  it('is the identity for the defaults, passing any text through unparsed', () => {
    for (const format of ['csv', 'json'] as const) {
      const processor = createRecordProcessor(format, format, DEFAULTS);
      assert.equal(processor.identity, true);
      assert.equal(processor.filterInput('not json, "unclosed'), 'not json, "unclosed');
      assert.equal(processor.assemble('ignored', '{bad json'), '{bad json');
    }
  });

  const notIdentity: { name: string; overrides: Partial<DataProcessingOptions> }[] = [
    { name: 'an input filter', overrides: { inputFilter: '$[1:]' } },
    { name: 'a join', overrides: { joinSource: 'Input' } },
    { name: 'an output filter', overrides: { outputFilter: '$[0]' } },
  ];
  for (const { name, overrides } of notIdentity) {
    it(`is not the identity with ${name}`, () => assert.equal(createRecordProcessor('csv', 'csv', options(overrides)).identity, false));
  }

  const rejected: {
    name: string;
    formats: [RecordFormat, RecordFormat];
    overrides: Partial<DataProcessingOptions>;
    type: typeof InvalidJsonPathError | typeof DataProcessingError;
    message: RegExp;
  }[] = [
    { name: 'a join from CSV to JSON', formats: ['csv', 'json'], overrides: { joinSource: 'Input' }, type: DataProcessingError, message: /same format, got csv input and json output/ },
    { name: 'a join from JSON to CSV', formats: ['json', 'csv'], overrides: { joinSource: 'Input' }, type: DataProcessingError, message: /same format/ },
    { name: 'an unknown JoinSource', formats: ['csv', 'csv'], overrides: { joinSource: 'Output' as 'None' }, type: DataProcessingError, message: /JoinSource must be "None" or "Input", got "Output"/ },
    { name: 'an unknown format', formats: ['xml' as 'csv', 'csv'], overrides: {}, type: DataProcessingError, message: /unsupported input record format "xml"/ },
    { name: 'a name InputFilter on CSV', formats: ['csv', 'csv'], overrides: { inputFilter: '$.features' }, type: InvalidJsonPathError, message: /^InputFilter "\$\.features": CSV records are arrays of fields/ },
    { name: 'a multi-name OutputFilter on CSV', formats: ['csv', 'csv'], overrides: { joinSource: 'Input', outputFilter: "$['id','SageMakerOutput']" }, type: InvalidJsonPathError, message: /^OutputFilter .*CSV records are arrays/ },
    { name: 'a chained index InputFilter on CSV', formats: ['csv', 'json'], overrides: { inputFilter: '$[0][1]' }, type: InvalidJsonPathError, message: /only one index step/ },
    { name: 'a name OutputFilter on CSV output of JSON input', formats: ['json', 'csv'], overrides: { outputFilter: '$.label' }, type: InvalidJsonPathError, message: /^OutputFilter/ },
    { name: 'a bad InputFilter', formats: ['json', 'json'], overrides: { inputFilter: '$..id' }, type: InvalidJsonPathError, message: /^InputFilter: invalid JSONPath "\$\.\.id".*recursive descent/ },
    { name: 'a bad OutputFilter', formats: ['json', 'json'], overrides: { outputFilter: '$[0:1:2]' }, type: InvalidJsonPathError, message: /^OutputFilter: .*slice steps/ },
    { name: 'an OutputFilter over 63 characters', formats: ['json', 'json'], overrides: { outputFilter: `$.${'x'.repeat(70)}` }, type: InvalidJsonPathError, message: /^OutputFilter: .*at most 63/ },
  ];
  for (const { name, formats, overrides, type, message } of rejected) {
    it(`rejects ${name} with ${type.name}`, () => {
      assert.throws(() => createRecordProcessor(formats[0], formats[1], options(overrides)), (error: unknown) => {
        assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
        assert.match((error as Error).message, message);
        return true;
      });
    });
  }

  it('accepts index, list, slice and wildcard filters on CSV', () => {
    for (const filter of ['$[0]', '$[-1]', '$[0,2]', '$[1:]', '$[*]', '$.*']) {
      assert.doesNotThrow(() => createRecordProcessor('csv', 'csv', options({ inputFilter: filter, outputFilter: filter })));
    }
  });
});

describe('CSV records', () => {
  it("runs the guide's example: InputFilter $[1:], JoinSource Input, OutputFilter $[0,-1] writes id,prediction", () => {
    const processor = createRecordProcessor('csv', 'csv', { inputFilter: '$[1:]', joinSource: 'Input', outputFilter: '$[0,-1]' });
    const records = ['id-1,5.1,3.5,1.4,0.2', 'id-2,4.9,3.0,1.4,0.2'];
    const predictions = ['0.93', '0.12'];
    assert.deepEqual(records.map((record) => processor.filterInput(record)), ['5.1,3.5,1.4,0.2', '4.9,3.0,1.4,0.2']);
    assert.deepEqual(records.map((record, i) => processor.assemble(record, predictions[i] as string)), ['id-1,0.93', 'id-2,0.12']);
  });

  const cases: {
    name: string;
    overrides: Partial<DataProcessingOptions>;
    outputFormat?: RecordFormat;
    input: string;
    output: string;
    model: string;
    written: string;
  }[] = [
    { name: 'a join appends the output fields to the unfiltered input', overrides: { inputFilter: '$[1:]', joinSource: 'Input' }, input: '1,2,3', model: '2,3', output: '1', written: '1,2,3,1' },
    { name: 'a single selected field is sent alone', overrides: { inputFilter: '$[-1]' }, input: 'a,b,c', model: 'c', output: '0.5', written: '0.5' },
    { name: 'selected fields keep the listed order', overrides: { inputFilter: '$[2,0]' }, input: 'a,b,c', model: 'c,a', output: 'x', written: 'x' },
    { name: 'an inclusive slice', overrides: { inputFilter: '$[1:2]' }, input: 'a,b,c,d', model: 'b,c', output: 'x', written: 'x' },
    { name: 'an output filter without a join applies to the output record', overrides: { outputFilter: '$[1]' }, input: 'a', model: 'a', output: '0.1,0.9', written: '0.9' },
    { name: 'a slice in the output filter of a join', overrides: { joinSource: 'Input', outputFilter: '$[0,3:]' }, input: 'id,f1,f2', model: 'id,f1,f2', output: 'p0,p1', written: 'id,p0,p1' },
    {
      name: 'quoted fields with commas and doubled quotes survive byte for byte',
      overrides: { inputFilter: '$[1:]', joinSource: 'Input', outputFilter: '$[0,2,-1]' },
      input: '"id,1","say ""hi""",  spaced ,"x"',
      model: '"say ""hi""",  spaced ,"x"',
      output: '"label,a"',
      written: '"id,1",  spaced ,"label,a"',
    },
    { name: 'a quoted empty field and an empty field', overrides: { inputFilter: '$[0,1]' }, input: '"",,z', model: '"",', output: 'x', written: 'x' },
    { name: 'CR endings are dropped from joined lines', overrides: { joinSource: 'Input' }, input: 'a,b\r', model: 'a,b\r', output: '1\r', written: 'a,b,1' },
    { name: 'CR endings are dropped before filtering', overrides: { inputFilter: '$[-1]', joinSource: 'Input', outputFilter: '$[1]' }, input: 'a,"b"\r', model: '"b"', output: '1', written: '"b"' },
    { name: 'JSON output of CSV input without a join', overrides: { inputFilter: '$[1:]', outputFilter: '$.label' }, outputFormat: 'json', input: 'id,1,2', model: '1,2', output: '{"label":"cat"}', written: '"cat"' },
  ];
  for (const { name, overrides, outputFormat = 'csv', input, output, model, written } of cases) {
    it(name, () => {
      const processor = createRecordProcessor('csv', outputFormat, options(overrides));
      assert.equal(processor.filterInput(input), model);
      assert.equal(processor.assemble(input, output), written);
    });
  }

  const failures: FailureCase[] = [
    { name: 'an index past the last field', overrides: { inputFilter: '$[3]' }, step: 'filterInput', input: 'a,b,c', code: 'INFERD_ERR_INPUT_INVALID', message: /^InputFilter \$\[3\]: index 3 is out of range for an array of 3 elements$/ },
    { name: 'a slice start past the last field', overrides: { inputFilter: '$[1:]' }, step: 'filterInput', input: 'id', code: 'INFERD_ERR_INPUT_INVALID', message: /index 1 is out of range for an array of 1 elements/ },
    { name: 'an output filter past the joined fields', overrides: { joinSource: 'Input', outputFilter: '$[0,4]' }, step: 'assemble', input: 'a,b', output: '1,2', code: 'INFERD_ERR_INPUT_INVALID', message: /^OutputFilter \$\[0,4\]: index 4 is out of range/ },
    { name: 'an unclosed quote in the input', overrides: { inputFilter: '$[0]' }, step: 'filterInput', input: 'a,"b', code: 'INFERD_ERR_BODY_MALFORMED', message: /^input record: the quoted field 2 is not closed$/ },
    { name: 'text after a closing quote in the output', overrides: { outputFilter: '$[0]' }, step: 'assemble', input: 'a', output: '"1"x', code: 'INFERD_ERR_BODY_MALFORMED', message: /^model output record: unexpected character after the closing quote of field 1$/ },
  ];
  for (const { name, overrides, step, input, output = '', code, message } of failures) {
    it(`fails the record on ${name} with ${code}`, () => {
      const processor = createRecordProcessor('csv', 'csv', options(overrides));
      assertFails(() => (step === 'filterInput' ? processor.filterInput(input) : processor.assemble(input, output)), code, message);
    });
  }

  it('passes every line of simple fields through $[:] and a join filtered by $[:] unchanged', () => {
    const field = fc.stringMatching(/^[^,"\r\n]*$/);
    const line = fc.array(field, { minLength: 1, maxLength: 10 }).map((fields) => fields.join(','));
    const sliced = createRecordProcessor('csv', 'csv', options({ inputFilter: '$[:]', outputFilter: '$[:]' }));
    const joined = createRecordProcessor('csv', 'csv', options({ joinSource: 'Input', outputFilter: '$[:]' }));
    fc.assert(
      fc.property(line, line, (input, output) => {
        assert.equal(sliced.filterInput(input), input);
        assert.equal(sliced.assemble(input, output), output);
        assert.equal(joined.assemble(input, output), `${input},${output}`);
      }),
    );
  });
});

describe('JSON records', () => {
  const GUIDE = { inputFilter: '$.features', joinSource: 'Input', outputFilter: "$['id','SageMakerOutput']" } as const;

  it("runs the guide's example: $.features to the model, the result joined under SageMakerOutput, $['id','SageMakerOutput'] written", () => {
    const processor = createRecordProcessor('json', 'json', GUIDE);
    const record = '{"id":"r1","features":[1,2,3],"note":"dropped"}';
    assert.equal(processor.filterInput(record), '[1,2,3]');
    assert.equal(processor.assemble(record, '{"label":1}'), '{"id":"r1","SageMakerOutput":{"label":1}}');
  });

  const cases: {
    name: string;
    overrides: Partial<DataProcessingOptions>;
    outputFormat?: RecordFormat;
    input: string;
    model: string;
    output: string;
    written: string;
  }[] = [
    { name: 'an object record gains SageMakerOutput', overrides: { joinSource: 'Input' }, input: '{"key":1}', model: '{"key":1}', output: '{"label":1}', written: '{"key":1,"SageMakerOutput":{"label":1}}' },
    { name: 'an array record is wrapped in SageMakerInput', overrides: { joinSource: 'Input' }, input: '[1,2,3]', model: '[1,2,3]', output: '[0.9]', written: '{"SageMakerInput":[1,2,3],"SageMakerOutput":[0.9]}' },
    { name: 'a scalar record is wrapped in SageMakerInput', overrides: { joinSource: 'Input' }, input: '42', model: '42', output: '0.5', written: '{"SageMakerInput":42,"SageMakerOutput":0.5}' },
    { name: 'a null record is wrapped in SageMakerInput', overrides: { joinSource: 'Input' }, input: 'null', model: 'null', output: 'true', written: '{"SageMakerInput":null,"SageMakerOutput":true}' },
    { name: 'output that is not JSON joins as a string', overrides: { joinSource: 'Input' }, input: '{"id":1}', model: '{"id":1}', output: 'cat', written: '{"id":1,"SageMakerOutput":"cat"}' },
    { name: 'an input SageMakerOutput member is overwritten in place', overrides: { joinSource: 'Input' }, input: '{"SageMakerOutput":0,"id":1}', model: '{"SageMakerOutput":0,"id":1}', output: '2', written: '{"SageMakerOutput":2,"id":1}' },
    { name: 'the output filter applies to a wrapped record', overrides: { joinSource: 'Input', outputFilter: "$['SageMakerInput','SageMakerOutput']" }, input: '[1]', model: '[1]', output: '2', written: '{"SageMakerInput":[1],"SageMakerOutput":2}' },
    { name: 'the output filter can reach into the result', overrides: { joinSource: 'Input', outputFilter: '$.SageMakerOutput.label' }, input: '{"id":1}', model: '{"id":1}', output: '{"label":"dog"}', written: '"dog"' },
    { name: 'keys the record lacks are omitted by a multi-name filter', overrides: { joinSource: 'Input', outputFilter: "$['id','missing','SageMakerOutput']" }, input: '{"id":1}', model: '{"id":1}', output: '3', written: '{"id":1,"SageMakerOutput":3}' },
    { name: 'an index input filter on array records', overrides: { inputFilter: '$[1:]' }, input: '["id",1,2]', model: '[1,2]', output: '[0.3]', written: '[0.3]' },
    { name: 'a wildcard input filter on an object', overrides: { inputFilter: '$.*' }, input: '{"a":1,"b":[2]}', model: '[1,[2]]', output: '0', written: '0' },
    { name: 'an output filter without a join', overrides: { outputFilter: '$.scores[-1]' }, input: '{}', model: '{}', output: '{"scores":[0.1,0.9]}', written: '0.9' },
    { name: 'JSON lines with spaces are re-serialized compactly once filtered', overrides: { inputFilter: '$.x' }, input: '{ "x" : [ 1, 2 ] }', model: '[1,2]', output: ' [3] ', written: ' [3] ' },
    { name: 'CSV output of JSON input filtered by index', overrides: { outputFilter: '$[0]' }, outputFormat: 'csv', input: '{"x":1}', model: '{"x":1}', output: '"a,b",c', written: '"a,b"' },
  ];
  for (const { name, overrides, outputFormat = 'json', input, model, output, written } of cases) {
    it(name, () => {
      const processor = createRecordProcessor('json', outputFormat, options(overrides));
      assert.equal(processor.filterInput(input), model);
      assert.equal(processor.assemble(input, output), written);
    });
  }

  const failures: FailureCase[] = [
    { name: 'an input line that is not JSON', overrides: { inputFilter: '$.x' }, step: 'filterInput', input: '{"x":', code: 'INFERD_ERR_BODY_MALFORMED', message: /^input record is not valid JSON/ },
    { name: 'an input line that is not JSON, at the join', overrides: { joinSource: 'Input' }, step: 'assemble', input: 'id,1', output: '1', code: 'INFERD_ERR_BODY_MALFORMED', message: /^input record is not valid JSON/ },
    { name: 'model output that is not JSON, under an output filter', overrides: { outputFilter: '$.label' }, step: 'assemble', input: '{}', output: 'cat', code: 'INFERD_ERR_BODY_MALFORMED', message: /^model output record is not valid JSON/ },
    { name: 'a missing member', overrides: { inputFilter: '$.features' }, step: 'filterInput', input: '{"id":1}', code: 'INFERD_ERR_INPUT_INVALID', message: /^InputFilter \$\.features: the record has no member "features"$/ },
    { name: 'a name on an array record', overrides: { inputFilter: '$.features' }, step: 'filterInput', input: '[1,2]', code: 'INFERD_ERR_INPUT_INVALID', message: /a name needs an object, got an array of 2 elements/ },
    { name: 'an index on an object record', overrides: { inputFilter: '$[0]' }, step: 'filterInput', input: '{"a":1}', code: 'INFERD_ERR_INPUT_INVALID', message: /an index needs an array, got an object/ },
    { name: 'an output filter naming what the join lacks', overrides: { joinSource: 'Input', outputFilter: '$.id' }, step: 'assemble', input: '[1]', output: '2', code: 'INFERD_ERR_INPUT_INVALID', message: /^OutputFilter \$\.id: the record has no member "id"$/ },
  ];
  for (const { name, overrides, step, input, output = '', code, message } of failures) {
    it(`fails the record on ${name} with ${code}`, () => {
      const processor = createRecordProcessor('json', 'json', options(overrides));
      assertFails(() => (step === 'filterInput' ? processor.filterInput(input) : processor.assemble(input, output)), code, message);
    });
  }
});
