/**
 * The server inside a SageMaker transform job (`SAGEMAKER_BATCH=true`): `/execution-parameters`
 * from configuration, the payload limit from `SAGEMAKER_MAX_PAYLOAD_IN_MB`, N records in give N
 * lines out in order, and with `INFERD_BATCH_RECORD_ERRORS=line` a bad record gives an error line.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { MODELS, REPO_ROOT, invoke, loadReference, startServer, type TestServer } from '../helper.js';

const BATCH_ENV = {
  SAGEMAKER_BATCH: 'true',
  SAGEMAKER_BATCH_STRATEGY: 'MULTI_RECORD',
  SAGEMAKER_MAX_PAYLOAD_IN_MB: '1',
  SAGEMAKER_MAX_CONCURRENT_TRANSFORMS: '3',
};

let rows: string[];
before(async () => {
  rows = (await readFile(`${REPO_ROOT}test/fixtures/churn-requests.csv`, 'utf8')).trim().split('\n');
});

describe('SAGEMAKER_BATCH=true', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(MODELS.forest, { env: BATCH_ENV });
  });
  after(() => server.http.close());

  it('announces its execution parameters from configuration, and waits as long as a job needs', async () => {
    const response = await fetch(`${server.url}/execution-parameters`);
    assert.deepEqual(await response.json(), { MaxConcurrentTransforms: 3, BatchStrategy: 'MULTI_RECORD', MaxPayloadInMB: 1 });
    assert.equal(server.config.server.invocationTimeoutS, 3600);
  });

  it('answers a MULTI_RECORD CSV request of N records with exactly N lines, in order', async () => {
    const reference = await loadReference();
    const body = [...rows, ...reference.rows.map((row) => row.join(','))].join('\n');
    const response = await invoke(server.url, `${body}\n`, { 'content-type': 'text/csv', accept: 'text/csv' });
    assert.equal(response.status, 200);
    const lines = response.text.split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, rows.length + reference.rows.length);
    const tail = lines.slice(rows.length).map((line) => Number(line.split(',')[0]));
    assert.deepEqual(tail, reference.forest_labels);
  });

  it('reads application/json as one record a line and answers one JSON record a line', async () => {
    const reference = await loadReference();
    const body = reference.rows.map((row) => JSON.stringify(row)).join('\n');
    const response = await invoke(server.url, body, { 'content-type': 'application/json', accept: 'application/json' });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/json');
    const records = response.text.trim().split('\n').map((line) => JSON.parse(line) as { label: number });
    assert.deepEqual(records.map((record) => record.label), reference.forest_labels);

    // A single record, and a real-time request, still work.
    const one = await invoke(server.url, JSON.stringify(reference.rows[0]), { 'content-type': 'application/json' });
    assert.equal((JSON.parse(one.text) as { label: number }).label, reference.forest_labels[0]);
    const instances = await invoke(server.url, JSON.stringify({ instances: reference.rows.slice(0, 2) }), { 'content-type': 'application/json' });
    assert.equal(instances.text.trim().split('\n').length, 2);
  });

  it('fails the whole request on a bad record by default (4xx, stable code)', async () => {
    const body = [rows[0], 'x,y', rows[1]].join('\n');
    const response = await invoke(server.url, body, { 'content-type': 'text/csv' });
    assert.equal(response.status, 422);
    assert.equal((JSON.parse(response.text) as { code: string }).code, 'INFERD_ERR_INPUT_INVALID');
  });

  it('takes bodies up to SAGEMAKER_MAX_PAYLOAD_IN_MB and refuses larger ones with 413', async () => {
    const many = Array.from({ length: Math.ceil((1.2 * 1024 * 1024) / rows.join('\n').length) }, () => rows.join('\n')).join('\n');
    const response = await invoke(server.url, many, { 'content-type': 'text/csv' });
    assert.equal(response.status, 413);
    assert.match(response.text, /SAGEMAKER_MAX_PAYLOAD_IN_MB/);
  });
});

describe('INFERD_BATCH_RECORD_ERRORS=line', () => {
  it('writes an error line for a record that cannot be decoded, and answers the others', async () => {
    const server = await startServer(MODELS.forest, { env: { ...BATCH_ENV, INFERD_BATCH_RECORD_ERRORS: 'line' } });
    after(() => server.http.close());
    const clean = await invoke(server.url, [rows[0], rows[1], rows[2]].join('\n'), { 'content-type': 'text/csv', accept: 'text/csv' });
    const expected = clean.text.trim().split('\n');

    const csv = await invoke(server.url, [rows[0], 'x,y', rows[1], '', rows[2]].join('\n'), { 'content-type': 'text/csv', accept: 'text/csv' });
    assert.equal(csv.status, 200);
    const lines = csv.text.trim().split('\n');
    assert.equal(lines.length, 4);
    assert.deepEqual([lines[0], lines[2], lines[3]], expected);
    assert.match(lines[1]!, /^ERROR,INFERD_ERR_INPUT_INVALID,"/);

    const json = await invoke(server.url, ['[1,2]', rows[0]!.split(',').join(', ').replace(/^/, '[').concat(']'), '{oops'].join('\n'), {
      'content-type': 'application/json',
    });
    assert.equal(json.status, 200);
    const answers = json.text.trim().split('\n').map((line) => JSON.parse(line) as { error?: { code: string }; label?: number });
    assert.deepEqual(answers.map((answer) => answer.error?.code), ['INFERD_ERR_INPUT_INVALID', undefined, 'INFERD_ERR_BODY_MALFORMED']);
    assert.equal(answers[1]!.label, Number(expected[0]!.split(',')[0]));
  });

  it('reruns record by record when the model itself fails on one record', async () => {
    const server = await startServer(MODELS.failing, { env: { ...BATCH_ENV, INFERD_BATCH_RECORD_ERRORS: 'line' } });
    after(() => server.http.close());
    const response = await invoke(server.url, '0\n1\n99\n0\n', { 'content-type': 'application/json' });
    assert.equal(response.status, 200);
    const answers = response.text.trim().split('\n').map((line) => JSON.parse(line) as { error?: { code: string } });
    assert.equal(answers.length, 4);
    assert.deepEqual(answers.map((answer) => answer.error?.code), [undefined, undefined, 'INFERD_ERR_INFERENCE_FAILED', undefined]);
  });
});
