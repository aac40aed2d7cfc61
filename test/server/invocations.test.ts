/**
 * The real server, the real fixture models: every request format gives the reference outputs
 * from ../shared/models/churn-reference.json (scikit-learn's and PyTorch's own predictions).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SageMakerRuntimeClient, InvokeEndpointCommand } from '@aws-sdk/client-sagemaker-runtime';
import { MODELS, assertClose, invoke, loadReference, startServer, type Reference, type TestServer } from '../helper.js';
import { readNpy, writeNpy } from '../npy.js';

let ref: Reference;
const toCsv = (rows: number[][]) => rows.map((r) => r.join(',')).join('\n') + '\n';
const float32Rows = (rows: number[][]) => Float32Array.from(rows.flat());

function assertForestJson(predictions: Array<{ label: number; probabilities: number[] }>) {
  assert.deepEqual(predictions.map((p) => p.label), ref.forest_labels);
  predictions.forEach((p, i) => assertClose(p.probabilities, ref.forest_probabilities[i]!, 1e-5, `row ${i}`));
}

describe('churn-forest (int64 label + float probabilities)', () => {
  let server: TestServer;
  before(async () => {
    ref = await loadReference();
    server = await startServer(MODELS.forest);
  });
  after(() => server.http.close());

  it('answers JSON instances with per-record objects', async () => {
    const res = await invoke(server.url, JSON.stringify({ instances: ref.rows }), { 'content-type': 'application/json' });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^application\/json/);
    assertForestJson(JSON.parse(res.text).predictions);
  });

  it('accepts columnar inputs, a bare array and Open Inference Protocol v2', async () => {
    for (const body of [{ inputs: { features: ref.rows } }, ref.rows]) {
      const res = await invoke(server.url, JSON.stringify(body), { 'content-type': 'application/json' });
      assert.equal(res.status, 200, res.text);
      assertForestJson(JSON.parse(res.text).predictions);
    }
    const v2 = { inputs: [{ name: 'features', shape: [5, 20], datatype: 'FP32', data: ref.rows.flat() }] };
    const res = await invoke(server.url, JSON.stringify(v2), { 'content-type': 'application/json' });
    assert.equal(res.status, 200, res.text);
    const outputs = JSON.parse(res.text).outputs as Array<{ name: string; datatype: string; shape: number[]; data: number[] }>;
    const label = outputs.find((o) => o.name === 'label')!;
    assert.equal(label.datatype, 'INT64');
    assert.deepEqual(label.shape, [5]);
    assert.deepEqual(label.data, ref.forest_labels);
    assertClose(outputs.find((o) => o.name === 'probabilities')!.data, ref.forest_probabilities.flat());
  });

  it('answers CSV with one line per record, outputs in signature order', async () => {
    const res = await invoke(server.url, toCsv(ref.rows), { 'content-type': 'text/csv', accept: 'text/csv' });
    assert.equal(res.status, 200, res.text);
    assert.match(res.headers.get('content-type')!, /^text\/csv/);
    const lines = res.text.trim().split('\n');
    assert.equal(lines.length, 5);
    lines.forEach((line, i) => {
      const [label, ...probabilities] = line.split(',').map(Number);
      assert.equal(label, ref.forest_labels[i]);
      assertClose(probabilities, ref.forest_probabilities[i]!);
    });
  });

  it('answers JSON Lines records', async () => {
    const body = ref.rows.map((r) => JSON.stringify(r)).join('\n');
    const res = await invoke(server.url, body, { 'content-type': 'application/jsonlines', accept: 'application/jsonlines' });
    assert.equal(res.status, 200, res.text);
    assertForestJson(res.text.trim().split('\n').map((line) => JSON.parse(line)));
  });

  it('takes NPY and refuses NPY for two outputs with 406', async () => {
    const npy = writeNpy('<f4', [5, 20], float32Rows(ref.rows));
    const res = await invoke(server.url, npy, { 'content-type': 'application/x-npy' });
    assert.equal(res.status, 200, res.text);
    assertForestJson(JSON.parse(res.text).predictions);
    const refused = await invoke(server.url, npy, { 'content-type': 'application/x-npy', accept: 'application/x-npy' });
    assert.equal(refused.status, 406);
    assert.equal(JSON.parse(refused.text).code, 'INFERD_ERR_NOT_ACCEPTABLE');
  });

  it('takes raw little-endian bytes with X-Inferd-Shape', async () => {
    const data = float32Rows(ref.rows);
    const res = await invoke(server.url, new Uint8Array(data.buffer), {
      'content-type': 'application/octet-stream',
      'x-inferd-shape': '5,20',
    });
    assert.equal(res.status, 200, res.text);
    assertForestJson(JSON.parse(res.text).predictions);
  });

  it('passes custom attributes through and serves the SageMaker runtime path', async () => {
    const res = await invoke(
      server.url,
      toCsv(ref.rows.slice(0, 1)),
      { 'content-type': 'text/csv', 'x-amzn-sagemaker-custom-attributes': 'trace=abc-123', 'x-amzn-sagemaker-inference-id': 'id-1' },
      '/endpoints/churn/invocations',
    );
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers.get('x-amzn-sagemaker-custom-attributes'), 'trace=abc-123');
  });

  it('works with an unchanged AWS SDK v3 SageMaker runtime client', async () => {
    const client = new SageMakerRuntimeClient({
      endpoint: server.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    });
    const output = await client.send(
      new InvokeEndpointCommand({
        EndpointName: 'churn-endpoint',
        ContentType: 'text/csv',
        Accept: 'application/json',
        CustomAttributes: 'c=1',
        Body: new TextEncoder().encode(toCsv(ref.rows)),
      }),
    );
    assert.match(output.ContentType!, /^application\/json/);
    assert.equal(output.CustomAttributes, 'c=1');
    assertForestJson(JSON.parse(new TextDecoder().decode(output.Body)).predictions);
    client.destroy();
  });
});

describe('int64-step (int64 in, plus one, int64 out)', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(MODELS.int64Step);
  });
  after(() => server.http.close());

  // Past ±(2^53 - 1) a JSON number (a float64) rounds: such values travel as strings, both ways.
  const sent = [
    ['9007199254740993', 41, '-9007199254740995'],
    [9007199254740990, 0, '9223372036854775806'],
  ];
  const answered = [
    ['9007199254740994', 42, '-9007199254740994'],
    [9007199254740991, 1, '9223372036854775807'],
  ];

  it('round-trips int64 values past 2^53 exactly in JSON, as strings only when needed', async () => {
    const res = await invoke(server.url, JSON.stringify({ instances: sent }), { 'content-type': 'application/json' });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(JSON.parse(res.text).predictions, answered);
  });

  it('round-trips int64 values past 2^53 exactly in CSV', async () => {
    const res = await invoke(server.url, sent.map((row) => row.join(',')).join('\n'), { 'content-type': 'text/csv', accept: 'text/csv' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.text, answered.map((row) => `${row.join(',')}\n`).join(''));
  });
});

describe('churn-mlp (one float output)', () => {
  let server: TestServer;
  before(async () => {
    ref = await loadReference();
    server = await startServer(MODELS.mlp);
  });
  after(() => server.http.close());

  it('matches PyTorch through JSON, CSV, JSON Lines and NPY', async () => {
    const json = await invoke(server.url, JSON.stringify({ instances: ref.rows }), { 'content-type': 'application/json' });
    (JSON.parse(json.text).predictions as number[][]).forEach((p, i) => assertClose(p, ref.mlp_probabilities[i]!));

    const csv = await invoke(server.url, toCsv(ref.rows), { 'content-type': 'text/csv', accept: 'text/csv' });
    csv.text.trim().split('\n').forEach((line, i) => assertClose(line.split(',').map(Number), ref.mlp_probabilities[i]!));

    const lines = await invoke(server.url, ref.rows.map((r) => JSON.stringify(r)).join('\n'), {
      'content-type': 'application/jsonlines',
      accept: 'application/jsonlines',
    });
    lines.text.trim().split('\n').forEach((line, i) => assertClose(JSON.parse(line), ref.mlp_probabilities[i]!));

    const npy = await invoke(server.url, writeNpy('<f8', [5, 20], Float64Array.from(ref.rows.flat())), {
      'content-type': 'application/x-npy',
      accept: 'application/x-npy',
    });
    assert.equal(npy.status, 200, npy.text);
    assert.equal(npy.headers.get('content-type'), 'application/x-npy');
    const parsed = readNpy(npy.bytes);
    assert.equal(parsed.descr, '<f4');
    assert.deepEqual(parsed.shape, [5, 2]);
    assertClose([...new Float32Array(parsed.body.buffer, parsed.body.byteOffset, 10)], ref.mlp_probabilities.flat());
  });
});
