/**
 * Data capture to a local destination through the real server: every sampled request appears
 * once, in SageMaker's key layout and record format, and decodes back to the exact bytes.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { MODELS, invoke, startServer } from '../helper.js';
import { writeNpy } from '../npy.js';
import { KEY_LAYOUT, decode, filesUnder, parseRecords } from './records.js';

const ROW = Array.from({ length: 20 }, (_, i) => i / 10);
describe('data capture to a file destination', () => {
  it('writes every sampled request once, in SageMaker format, decodable to the exact bytes', async (t) => {
    const destination = await mkdtemp(join(tmpdir(), 'inferd-capture-'));
    const spool = await mkdtemp(join(tmpdir(), 'inferd-spool-'));
    const server = await startServer(MODELS.mlp, {
      env: {
        INFERD_CAPTURE_ENABLED: 'true',
        INFERD_CAPTURE_DESTINATION: `file://${destination}`,
        INFERD_CAPTURE_SAMPLING_PERCENTAGE: '100',
        INFERD_CAPTURE_SPOOL_DIR: spool,
        INFERD_ENDPOINT_NAME: 'ep',
      },
    });
    t.after(() => server.http.close());
    const requests: Array<{ body: string | Uint8Array; headers: Record<string, string> }> = [
      { body: `${ROW.join(',')}\n`, headers: { 'content-type': 'text/csv' } },
      { body: JSON.stringify({ instances: [ROW, ROW] }), headers: { 'content-type': 'application/json', accept: 'text/csv' } },
      { body: writeNpy('<f4', [1, 20], Float32Array.from(ROW)), headers: { 'content-type': 'application/x-npy', accept: 'application/x-npy' } },
      { body: new Uint8Array(Float32Array.from(ROW).buffer), headers: { 'content-type': 'application/octet-stream', 'x-inferd-shape': '1,20' } },
      { body: JSON.stringify({ instances: [[1, 2]] }), headers: { 'content-type': 'application/json' } },
    ];
    const sent = new Map<string, { request: Buffer; response: Buffer; responseType: string; status: number }>();
    for (const [i, { body, headers }] of requests.entries()) {
      const id = `req-${i}`;
      const res = await invoke(server.url, body, { ...headers, 'x-amzn-sagemaker-inference-id': id, 'x-amzn-sagemaker-custom-attributes': `n=${i}` });
      sent.set(id, { request: Buffer.from(body), response: Buffer.from(res.bytes), responseType: res.headers.get('content-type')!, status: res.status });
    }
    assert.equal(sent.get('req-4')!.status, 422, 'errors are captured too');
    await server.http.close();

    const files = await filesUnder(destination);
    assert.ok(files.length >= 1);
    for (const file of files) assert.match(relative(destination, file), KEY_LAYOUT);
    const records = (await Promise.all(files.map((f) => readFile(f, 'utf8')))).flatMap(parseRecords);
    assert.deepEqual(records.map((r) => r.eventMetadata.inferenceId).sort(), [...sent.keys()].sort());
    for (const record of records) {
      const exchange = sent.get(record.eventMetadata.inferenceId!)!;
      const input = record.captureData.endpointInput!;
      const output = record.captureData.endpointOutput!;
      assert.deepEqual(decode(input), exchange.request);
      assert.deepEqual(decode(output), exchange.response);
      assert.equal(output.observedContentType, exchange.responseType);
      assert.equal(input.mode, 'INPUT');
      assert.equal(output.mode, 'OUTPUT');
      assert.deepEqual(record.eventMetadata.customAttributes, [`n=${record.eventMetadata.inferenceId!.slice(4)}`]);
    }
    const byId = new Map(records.map((r) => [r.eventMetadata.inferenceId, r]));
    assert.equal(byId.get('req-0')!.captureData.endpointInput!.encoding, 'CSV');
    assert.equal(byId.get('req-1')!.captureData.endpointInput!.encoding, 'JSON');
    assert.equal(byId.get('req-1')!.captureData.endpointOutput!.encoding, 'CSV');
    assert.equal(byId.get('req-2')!.captureData.endpointInput!.encoding, 'BASE64');
    assert.equal(byId.get('req-3')!.captureData.endpointInput!.encoding, 'BASE64');
    // JSON answers and JSON errors are captured under one content type.
    assert.equal(byId.get('req-3')!.captureData.endpointOutput!.observedContentType, 'application/json');
    assert.equal(byId.get('req-4')!.captureData.endpointOutput!.observedContentType, 'application/json');
  });

  it('captures a streamed answer whole, as the client received it', async (t) => {
    const destination = await mkdtemp(join(tmpdir(), 'inferd-capture-'));
    const server = await startServer(MODELS.mlp, {
      env: {
        INFERD_CAPTURE_ENABLED: 'true',
        INFERD_CAPTURE_DESTINATION: `file://${destination}`,
        INFERD_CAPTURE_SAMPLING_PERCENTAGE: '100',
        INFERD_CAPTURE_SPOOL_DIR: await mkdtemp(join(tmpdir(), 'inferd-spool-')),
      },
    });
    t.after(() => server.http.close());
    // 200 records: four parts, sent chunked.
    const rows = Array.from({ length: 200 }, () => ROW.join(',')).join('\n') + '\n';
    const res = await invoke(server.url, rows, { 'content-type': 'text/csv', accept: 'application/jsonlines' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('transfer-encoding'), 'chunked');
    await server.http.close();
    const [file] = await filesUnder(destination);
    const [record] = parseRecords(await readFile(file!, 'utf8'));
    assert.deepEqual(decode(record!.captureData.endpointOutput!), Buffer.from(res.bytes));
  });

  it('captures only the input when asked, and nothing when not sampled', async (t) => {
    const destination = await mkdtemp(join(tmpdir(), 'inferd-capture-'));
    const server = await startServer(MODELS.mlp, {
      env: {
        INFERD_DATA_CAPTURE_CONFIG: JSON.stringify({
          InitialSamplingPercentage: 100,
          DestinationS3Uri: destination,
          CaptureOptions: [{ CaptureMode: 'Input' }],
        }),
        INFERD_CAPTURE_SPOOL_DIR: await mkdtemp(join(tmpdir(), 'inferd-spool-')),
        INFERD_ENDPOINT_NAME: 'ep',
      },
    });
    t.after(() => server.http.close());
    await invoke(server.url, `${ROW.join(',')}\n`, { 'content-type': 'text/csv' });
    await server.http.close();
    const [file] = await filesUnder(destination);
    const [record] = parseRecords(await readFile(file!, 'utf8'));
    assert.ok(record!.captureData.endpointInput);
    assert.equal(record!.captureData.endpointOutput, undefined);
  });
});

describe('data capture when nothing can be written', () => {
  it('counts the records as dropped and never harms the requests', async (t) => {
    const { rm, writeFile } = await import('node:fs/promises');
    const root = await mkdtemp(join(tmpdir(), 'inferd-blocked-'));
    const blocker = join(root, 'a-file');
    await writeFile(blocker, 'not a directory');
    const spool = join(root, 'spool');
    const server = await startServer(MODELS.mlp, {
      env: {
        INFERD_CAPTURE_ENABLED: 'true',
        // Under a regular file: every upload fails with ENOTDIR.
        INFERD_CAPTURE_DESTINATION: `${blocker}/capture`,
        INFERD_CAPTURE_SPOOL_DIR: spool,
        INFERD_CAPTURE_SAMPLING_PERCENTAGE: '100',
        INFERD_CAPTURE_FLUSH_INTERVAL_MS: '50',
      },
    });
    t.after(() => server.http.close());
    // The spool disappears under the running server (a tmp cleaner, a full disk): writes fail too.
    await rm(spool, { recursive: true });
    await writeFile(spool, 'not a directory either');
    for (let i = 0; i < 5; i += 1) {
      assert.equal((await invoke(server.url, `${ROW.join(',')}\n`, { 'content-type': 'text/csv' })).status, 200);
    }
    const deadline = Date.now() + 10_000;
    let dropped = 0;
    while (dropped < 5 && Date.now() < deadline) {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      dropped = Number(/^inferd_capture_records_total\{outcome="dropped"\} (\d+)/m.exec(text)?.[1] ?? 0);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(dropped, 5, 'every record that could not be written is counted');
    assert.equal((await fetch(`${server.url}/ping`)).status, 200);
  });
});
