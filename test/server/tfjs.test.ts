/**
 * TF.js models through the real server: the layers and graph fixtures answer JSON, CSV (2-D
 * inputs), NPY and the Open Inference Protocol v2 with the outputs tfjs computed in-process
 * (test/fixtures/tfjs-reference.json), named multi-input and multi-output models included, and
 * requests merged into one batch answer as they do alone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Tensor } from '../../src/codecs/tensor.js';
import { assertClose, invoke, startServer, type TestServer } from '../helper.js';
import { readNpy, writeNpy } from '../npy.js';
import { TFJS_MODELS, loadTfjsReference, referenceTensors, sliceRows, type TfjsReference } from '../tfjs-fixtures.js';

let reference: TfjsReference;
before(async () => {
  reference = await loadTfjsReference();
});

const rowsOf = (tensor: Tensor): number[][] => {
  const width = tensor.dims.slice(1).reduce((a, b) => a * b, 1);
  return Array.from({ length: tensor.dims[0]! }, (_, i) => Array.from(tensor.data as Float32Array).slice(i * width, (i + 1) * width));
};
const flat = (tensor: Tensor) => Array.from(tensor.data as Float32Array);
const npyFloats = (bytes: Uint8Array) => {
  const { body } = readNpy(bytes);
  return Array.from(new Float32Array(body.buffer, body.byteOffset, body.byteLength / 4));
};
const JSON_TYPE = { 'content-type': 'application/json' };

describe('a TF.js layers model: features [n, 20] → probabilities [n, 3]', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(TFJS_MODELS['tfjs-layers-mlp']);
  });
  after(() => server.http.close());

  it('answers JSON, CSV, NPY and v2 with the reference outputs', async () => {
    const { inputs, outputs } = reference.models['tfjs-layers-mlp'];
    const features = referenceTensors(inputs).features!;
    const expected = flat(referenceTensors(outputs).probabilities!);

    const json = await invoke(server.url, JSON.stringify({ instances: rowsOf(features) }), JSON_TYPE);
    assert.equal(json.status, 200, json.text);
    assertClose((JSON.parse(json.text).predictions as number[][]).flat(), expected);

    const csv = await invoke(server.url, rowsOf(features).map((row) => row.join(',')).join('\n'), { 'content-type': 'text/csv', accept: 'text/csv' });
    assert.equal(csv.status, 200, csv.text);
    assertClose(csv.text.trim().split('\n').flatMap((line) => line.split(',').map(Number)), expected);

    const npy = await invoke(server.url, writeNpy('<f4', features.dims, features.data as Float32Array), { 'content-type': 'application/x-npy', accept: 'application/x-npy' });
    assert.equal(npy.status, 200, npy.text);
    assertClose(npyFloats(npy.bytes), expected);

    const v2 = await invoke(
      server.url,
      JSON.stringify({ inputs: [{ name: 'features', shape: features.dims, datatype: 'FP32', data: flat(features) }] }),
      JSON_TYPE,
      '/v2/models/tfjs-layers-mlp/infer',
    );
    assert.equal(v2.status, 200, v2.text);
    const [output] = JSON.parse(v2.text).outputs as Array<{ name: string; datatype: string; shape: number[]; data: number[] }>;
    assert.deepEqual([output!.name, output!.datatype, output!.shape], ['probabilities', 'FP32', [features.dims[0], 3]]);
    assertClose(output!.data, expected);
  });

  it('says its backend and engine, and refuses a wrong width with 422', async () => {
    const { models } = (await (await fetch(`${server.url}/models`)).json()) as { models: Array<Record<string, unknown>> };
    assert.deepEqual([models[0]!.backend, models[0]!.engine], ['tfjs', 'wasm']);
    const refused = await invoke(server.url, '1,2,3\n', { 'content-type': 'text/csv' });
    assert.equal(refused.status, 422, refused.text);
  });
});

describe('a TF.js functional model with named inputs and outputs', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(TFJS_MODELS['tfjs-layers-multi']);
  });
  after(() => server.http.close());

  it('takes its inputs by name and answers each output by name, in JSON and v2', async () => {
    const { inputs, outputs } = reference.models['tfjs-layers-multi'];
    const given = referenceTensors(inputs);
    const expected = referenceTensors(outputs);
    const json = await invoke(server.url, JSON.stringify({ inputs: { numbers: rowsOf(given.numbers!), flags: rowsOf(given.flags!) } }), JSON_TYPE);
    assert.equal(json.status, 200, json.text);
    const records = JSON.parse(json.text).predictions as Array<{ score: number[]; classes: number[] }>;
    assertClose(records.flatMap((r) => r.score), flat(expected.score!));
    assertClose(records.flatMap((r) => r.classes), flat(expected.classes!));

    const v2 = await invoke(
      server.url,
      JSON.stringify({
        inputs: Object.entries(given).map(([name, tensor]) => ({ name, shape: tensor.dims, datatype: 'FP32', data: flat(tensor) })),
        outputs: [{ name: 'classes' }],
      }),
      JSON_TYPE,
      '/v2/models/tfjs-layers-multi/infer',
    );
    assert.equal(v2.status, 200, v2.text);
    const answered = JSON.parse(v2.text).outputs as Array<{ name: string; data: number[] }>;
    assert.deepEqual(answered.map((o) => o.name), ['classes']);
    assertClose(answered[0]!.data, flat(expected.classes!));
  });
});

describe('a converted TF.js graph model (tensorflowjs_converter): input_1:0 [n, 64, 64, 1]', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(TFJS_MODELS['tfjs-graph-gender'], { env: { SAGEMAKER_MAX_PAYLOAD_IN_MB: '64', INFERD_MAX_BATCH_SIZE: '64' } });
  });
  after(() => server.http.close());

  it('answers NPY and v2 with the reference outputs', async () => {
    const { inputs, outputs } = reference.models['tfjs-graph-gender'];
    const images = referenceTensors(inputs)['input_1:0']!;
    const expected = flat(referenceTensors(outputs)['Identity:0']!);
    const npy = await invoke(server.url, writeNpy('<f4', images.dims, images.data as Float32Array), { 'content-type': 'application/x-npy', accept: 'application/x-npy' });
    assert.equal(npy.status, 200, npy.text);
    assertClose(npyFloats(npy.bytes), expected);
    const v2 = await invoke(
      server.url,
      JSON.stringify({ inputs: [{ name: 'input_1:0', shape: images.dims, datatype: 'FP32', data: flat(images) }] }),
      JSON_TYPE,
      '/v2/models/tfjs-graph-gender/infer',
    );
    assert.equal(v2.status, 200, v2.text);
    assertClose((JSON.parse(v2.text).outputs as Array<{ data: number[] }>)[0]!.data, expected);
  });

  it('merges requests queued behind a running one into one batch, and each answer is what it is alone', async () => {
    const { inputs, outputs } = reference.models['tfjs-graph-gender'];
    const images = referenceTensors(inputs)['input_1:0']!;
    const expected = referenceTensors(outputs)['Identity:0']!;
    const metrics = async () => (await fetch(`${server.url}/metrics`)).text();
    const sample = (text: string, series: string) => Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    const m = '{model="tfjs-graph-gender"}';
    const NPY = { 'content-type': 'application/x-npy', accept: 'application/x-npy' };
    const batchesBefore = sample(await metrics(), `inferd_batch_size_rows_count${m}`);
    // 1,500 images hold the one worker a while; the next request takes the instance's second
    // batch slot, and those after it can only wait in the batcher, where they merge.
    const heavy = writeNpy('<f4', [1500, 64, 64, 1], new Float32Array(1500 * 64 * 64).fill(0.5));
    const requests = [invoke(server.url, heavy, NPY)];
    const deadline = Date.now() + 30_000;
    while (sample(await metrics(), `inferd_busy_workers${m}`) !== 1) {
      assert.ok(Date.now() < deadline, 'the long request runs');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const singles = Array.from({ length: 12 }, (_, i) => {
      const image = sliceRows({ x: images }, i % 3, (i % 3) + 1).x!;
      return invoke(server.url, writeNpy('<f4', image.dims, image.data as Float32Array), NPY);
    });
    const [first, ...answers] = await Promise.all([...requests, ...singles]);
    assert.equal(first!.status, 200);
    answers.forEach((answer, i) => {
      assert.equal(answer.status, 200, answer.text);
      assertClose(npyFloats(answer.bytes), flat(expected).slice((i % 3) * 2, (i % 3) * 2 + 2), 1e-5, `request ${i}`);
    });
    const batches = sample(await metrics(), `inferd_batch_size_rows_count${m}`) - batchesBefore;
    assert.ok(batches < 13, `13 requests ran in ${batches} batches: some were merged`);
  });
});
