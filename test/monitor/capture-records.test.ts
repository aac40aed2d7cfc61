import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readCapture, type CaptureFiles } from '../../src/monitor/capture-reader.js';
import { rowsFromCaptureLine, rowsFromInput, type CaptureInput, type LineOutcome } from '../../src/monitor/capture-records.js';

const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
const TWO_ROWS = [
  ['1', '2.5', '3'],
  ['4', '5', '-6'],
];

describe('captured request bodies to rows', () => {
  const cases: { name: string; input: CaptureInput; rows?: string[][]; skipped?: RegExp }[] = [
    { name: 'CSV, one record', input: { observedContentType: 'text/csv', encoding: 'CSV', data: '1,2.5,3\n' }, rows: [['1', '2.5', '3']] },
    { name: 'CSV, several records with CRLF', input: { observedContentType: 'text/csv', encoding: 'CSV', data: '1,2.5,3\r\n4,5,-6' }, rows: TWO_ROWS },
    { name: 'CSV, quoted and empty fields', input: { observedContentType: 'text/csv', encoding: 'CSV', data: '"1",,"a,b"' }, rows: [['1', '', 'a,b']] },
    { name: 'JSON instances of rows', input: { observedContentType: 'application/json', encoding: 'JSON', data: '{"instances":[[1,2.5,3],[4,5,-6]]}' }, rows: TWO_ROWS },
    {
      name: 'JSON instances keyed by the input name',
      input: { observedContentType: 'application/json', encoding: 'JSON', data: '{"instances":[{"features":[1,2.5,3]},{"features":[4,5,-6]}]}' },
      rows: TWO_ROWS,
    },
    { name: 'JSON named inputs', input: { observedContentType: 'application/json', encoding: 'JSON', data: '{"inputs":{"features":[[1,2.5,3],[4,5,-6]]}}' }, rows: TWO_ROWS },
    {
      name: 'Open Inference Protocol v2, flat data',
      input: { observedContentType: 'application/json', encoding: 'JSON', data: '{"inputs":[{"name":"features","shape":[2,3],"datatype":"FP32","data":[1,2.5,3,4,5,-6]}]}' },
      rows: TWO_ROWS,
    },
    {
      name: 'Open Inference Protocol v2, nested data',
      input: { observedContentType: 'application/json', encoding: 'JSON', data: '{"inputs":[{"name":"features","shape":[2,3],"datatype":"FP32","data":[[1,2.5,3],[4,5,-6]]}]}' },
      rows: TWO_ROWS,
    },
    {
      name: 'Open Inference Protocol v2, one row',
      input: { observedContentType: 'application/json', encoding: 'JSON', data: '{"inputs":[{"name":"features","shape":[3],"datatype":"FP32","data":[1,2.5,3]}]}' },
      rows: [['1', '2.5', '3']],
    },
    { name: 'a bare 2-D array', input: { observedContentType: 'application/json', encoding: 'JSON', data: '[[1,2.5,3],[4,5,-6]]' }, rows: TWO_ROWS },
    { name: 'a bare 1-D array, with a null', input: { observedContentType: 'application/json', encoding: 'JSON', data: '[1,null,"x"]' }, rows: [['1', '', 'x']] },
    { name: 'JSON Lines', input: { observedContentType: 'application/jsonlines', encoding: 'JSON', data: '[1,2.5,3]\n\n{"features":[4,5,-6]}\n' }, rows: TWO_ROWS },
    { name: 'base64 CSV', input: { observedContentType: 'text/csv; charset=utf-8', encoding: 'BASE64', data: base64('1,2.5,3\n4,5,-6\n') }, rows: TWO_ROWS },
    { name: 'base64 JSON', input: { observedContentType: 'application/json', encoding: 'BASE64', data: base64('{"instances":[[1,2.5,3],[4,5,-6]]}') }, rows: TWO_ROWS },
    { name: 'base64 JSON Lines', input: { observedContentType: 'application/jsonlines', encoding: 'BASE64', data: base64('[1,2.5,3]\n[4,5,-6]') }, rows: TWO_ROWS },
    { name: 'base64 binary', input: { observedContentType: 'application/x-npy', encoding: 'BASE64', data: base64('\x93NUMPY') }, skipped: /base64 application\/x-npy body is not tabular text/ },
    { name: 'several named inputs', input: { observedContentType: 'application/json', encoding: 'JSON', data: '{"inputs":{"a":[[1]],"b":[[2]]}}' }, skipped: /not one table/ },
    { name: 'a 3-D array', input: { observedContentType: 'application/json', encoding: 'JSON', data: '[[[1]]]' }, skipped: /not one table/ },
    { name: 'invalid JSON', input: { observedContentType: 'application/json', encoding: 'JSON', data: '{"instances":' }, skipped: /does not parse/ },
    { name: 'a JSON Lines line that is not a row', input: { observedContentType: 'application/jsonlines', encoding: 'JSON', data: '[1]\n{"a":1,"b":2}' }, skipped: /not one row/ },
    { name: 'an unknown encoding', input: { observedContentType: 'text/csv', encoding: 'GZIP', data: 'x' }, skipped: /unknown encoding GZIP/ },
  ];
  for (const { name, input, rows, skipped } of cases) {
    it(name, () => {
      const outcome = rowsFromInput(input);
      if (rows) assert.deepEqual(outcome, { kind: 'rows', rows });
      else assert.match(outcome.kind === 'skipped' ? outcome.reason : `not skipped: ${JSON.stringify(outcome)}`, skipped as RegExp);
    });
  }
});

function captureLine(inferenceTime: string | undefined, input?: Partial<CaptureInput>): string {
  return JSON.stringify({
    captureData: {
      ...(input && { endpointInput: { observedContentType: 'text/csv', mode: 'INPUT', data: '1,2\n', encoding: 'CSV', ...input } }),
      endpointOutput: { observedContentType: 'text/csv; charset=utf-8', mode: 'OUTPUT', data: '0.5', encoding: 'CSV' },
    },
    eventMetadata: { eventId: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee', ...(inferenceTime && { inferenceTime }) },
    eventVersion: '0',
  });
}

describe('capture records in a time window', () => {
  const window = { from: new Date('2024-05-01T10:00:00Z'), to: new Date('2024-05-01T11:00:00Z') };
  const cases: { name: string; line: string; outcome: LineOutcome['kind']; reason?: RegExp }[] = [
    { name: 'at the start of the window (inclusive)', line: captureLine('2024-05-01T10:00:00Z', {}), outcome: 'rows' },
    { name: 'inside, with milliseconds', line: captureLine('2024-05-01T10:59:59.999Z', {}), outcome: 'rows' },
    { name: 'at the end of the window (exclusive)', line: captureLine('2024-05-01T11:00:00Z', {}), outcome: 'outside-window' },
    { name: 'before the window', line: captureLine('2024-05-01T09:59:59Z', {}), outcome: 'outside-window' },
    { name: 'without an inference time', line: captureLine(undefined, {}), outcome: 'skipped', reason: /inferenceTime/ },
    { name: 'with an invalid inference time', line: captureLine('yesterday', {}), outcome: 'skipped', reason: /inferenceTime/ },
    { name: 'output only', line: captureLine('2024-05-01T10:30:00Z'), outcome: 'skipped', reason: /no captureData.endpointInput/ },
    { name: 'not JSON', line: '{"captureData":', outcome: 'skipped', reason: /not a JSON object/ },
  ];
  for (const { name, line, outcome, reason } of cases) {
    it(`reads a record ${name}`, () => {
      const result = rowsFromCaptureLine(line, window);
      assert.equal(result.kind, outcome);
      if (reason) assert.match(result.kind === 'skipped' ? result.reason : '', reason);
    });
  }
});

/** An in-memory store that records which files were read. */
function memoryFiles(files: Record<string, string>): CaptureFiles & { read: string[] } {
  const read: string[] = [];
  return {
    read,
    async *list(prefix) {
      for (const uri of Object.keys(files).sort()) if (uri.startsWith(prefix)) yield uri;
    },
    async readText(uri) {
      read.push(uri);
      return files[uri] ?? '';
    },
  };
}

describe('reading a capture tree', () => {
  const root = 'mem://capture';
  const hourFile = (endpoint: string, hour: string) => `${root}/${endpoint}/AllTraffic/2024/05/01/${hour}/00-00-000-id.jsonl`;
  const tree = {
    [hourFile('churn', '09')]: captureLine('2024-05-01T09:10:00Z', {}),
    [hourFile('churn', '10')]: `${captureLine('2024-05-01T10:10:00Z', { data: 'early\n' })}\n${captureLine('2024-05-01T10:40:00Z', { data: '1,2\n3,4\n' })}\n`,
    [hourFile('churn', '11')]: `${captureLine('2024-05-01T11:05:00Z', {})}\n\n${captureLine('2024-05-01T11:06:00Z')}\n`,
    [hourFile('churn', '12')]: captureLine('2024-05-01T12:00:00Z', {}),
    [hourFile('other', '11')]: captureLine('2024-05-01T11:05:00Z', { data: 'other\n' }),
    [`${root}/churn/AllTraffic/2024/05/01/11/notes.txt`]: 'not capture',
  };
  const window = { from: new Date('2024-05-01T10:30:00Z'), to: new Date('2024-05-01T12:00:00Z') };

  it('opens only the hour folders of the window, for the endpoint and variant asked', async () => {
    const files = memoryFiles(tree);
    const captured = await readCapture(files, `${root}/`, { ...window, endpoint: 'churn', variant: 'AllTraffic' });
    assert.deepEqual(files.read, [hourFile('churn', '10'), hourFile('churn', '11')]);
    assert.deepEqual(captured.rows, [['1', '2'], ['3', '4'], ['1', '2']]);
    assert.equal(captured.records, 2);
    assert.equal(captured.outsideWindow, 1);
    assert.deepEqual([...captured.skipped], [['no captureData.endpointInput', 1]]);
  });

  it('reads every endpoint and variant when none is named, still by hour', async () => {
    const files = memoryFiles(tree);
    const captured = await readCapture(files, root, window);
    assert.deepEqual(files.read, [hourFile('churn', '10'), hourFile('churn', '11'), hourFile('other', '11')]);
    assert.deepEqual(captured.rows.at(-1), ['other']);
  });
});
