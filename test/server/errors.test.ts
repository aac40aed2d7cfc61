/** Every error status of the contract, provoked against the real server. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { defaultModel, MODELS, invoke, startServer, type TestServer } from '../helper.js';
import { writeNpy } from '../npy.js';

const ROW = Array.from({ length: 20 }, (_, i) => i / 10);

function assertError(res: { status: number; text: string }, status: number, code: string) {
  assert.equal(res.status, status, res.text);
  const body = JSON.parse(res.text);
  assert.deepEqual(Object.keys(body).sort(), ['code', 'message']);
  assert.equal(body.code, code);
  assert.doesNotMatch(body.message, /\n\s+at /, 'no stack trace');
}

describe('client errors on churn-forest', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(MODELS.forest, { env: { SAGEMAKER_MAX_PAYLOAD_IN_MB: '0.01' } });
  });
  after(() => server.http.close());

  const cases: Array<[string, string | Uint8Array, Record<string, string>, number, string]> = [
    ['malformed JSON', '{"instances": [', { 'content-type': 'application/json' }, 400, 'INFERD_ERR_BODY_MALFORMED'],
    ['unknown JSON envelope', '{"rows": []}', { 'content-type': 'application/json' }, 400, 'INFERD_ERR_BODY_MALFORMED'],
    ['empty body', '', { 'content-type': 'application/json' }, 400, 'INFERD_ERR_BODY_EMPTY'],
    ['unsupported Accept', JSON.stringify([ROW]), { 'content-type': 'application/json', accept: 'image/png' }, 406, 'INFERD_ERR_NOT_ACCEPTABLE'],
    ['unsupported Content-Type', 'x', { 'content-type': 'image/png' }, 415, 'INFERD_ERR_UNSUPPORTED_MEDIA_TYPE'],
    ['wrong input name', JSON.stringify({ inputs: { feats: [ROW] } }), { 'content-type': 'application/json' }, 422, 'INFERD_ERR_INPUT_INVALID'],
    ['wrong row width', JSON.stringify({ instances: [ROW.slice(1)] }), { 'content-type': 'application/json' }, 422, 'INFERD_ERR_INPUT_INVALID'],
    ['ragged rows', JSON.stringify({ instances: [ROW, ROW.slice(2)] }), { 'content-type': 'application/json' }, 422, 'INFERD_ERR_INPUT_INVALID'],
    [
      'wrong v2 datatype',
      JSON.stringify({ inputs: [{ name: 'features', shape: [1, 20], datatype: 'BOOL', data: ROW.map(() => true) }] }),
      { 'content-type': 'application/json' },
      422,
      'INFERD_ERR_INPUT_INVALID',
    ],
    ['non-numeric CSV field', `${ROW.slice(1).join(',')},abc\n`, { 'content-type': 'text/csv' }, 422, 'INFERD_ERR_INPUT_INVALID'],
    [
      'raw bytes of the wrong element count',
      new Uint8Array(4 * 19),
      { 'content-type': 'application/octet-stream', 'x-inferd-shape': '1,20' },
      422,
      'INFERD_ERR_INPUT_INVALID',
    ],
  ];
  for (const [name, body, headers, status, code] of cases) {
    it(`${name}: ${status} ${code}`, async () => assertError(await invoke(server.url, body, headers), status, code));
  }

  // The body parser is found by type: each type is asked twice, once after Fastify remembers it.
  const contentTypes: Array<[string, number]> = [
    ['text/csv', 200],
    ['TEXT/CSV; charset=utf-8', 200],
    ['text/csv;charset=UTF-8', 200],
    ['image/png', 415],
    ['no-slash', 415],
    ['text/csv; charset', 200],
  ];
  for (const [contentType, status] of contentTypes) {
    it(`a CSV row sent as "${contentType}" gets ${status}, the first time and the next`, async () => {
      for (let time = 0; time < 2; time++) {
        const res = await invoke(server.url, `${ROW.join(',')}\n`, { 'content-type': contentType });
        assert.equal(res.status, status, res.text);
        if (status !== 200) assert.equal(JSON.parse(res.text).code, 'INFERD_ERR_UNSUPPORTED_MEDIA_TYPE');
      }
    });
  }

  it('413 names the limit and the variable', async () => {
    const res = await invoke(server.url, JSON.stringify({ instances: Array(400).fill(ROW) }), { 'content-type': 'application/json' });
    assertError(res, 413, 'INFERD_ERR_PAYLOAD_TOO_LARGE');
    assert.match(JSON.parse(res.text).message, /0\.01 MB.*SAGEMAKER_MAX_PAYLOAD_IN_MB/);
  });

  it('400 for a malformed URL, a repeated shape header and unparsable framing, in the same shape', async () => {
    assertError(await invoke(server.url, '{}', {}, '/invocations/%zz'), 400, 'INFERD_ERR_BAD_REQUEST');
    const { request } = await import('node:http');
    const shape = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(`${server.url}/invocations`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'x-inferd-shape': ['1,20', '1,20'] } }, (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      });
      req.on('error', reject);
      req.end(Buffer.alloc(80));
    });
    assertError(shape, 400, 'INFERD_ERR_BAD_REQUEST');
    const { connect } = await import('node:net');
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(new URL(server.url).port), '127.0.0.1', () => socket.write('POST /invocations HTTP/1.1\r\nContent-Length: -5\r\n\r\n'));
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    assert.match(raw, /^HTTP\/1\.1 400/);
    assert.match(raw, /"code":"INFERD_ERR_BAD_REQUEST"/);
  });

  it('404 for unknown routes, in the same shape', async () => {
    assertError(await invoke(server.url, '{}', {}, '/nope'), 404, 'INFERD_ERR_NOT_FOUND');
  });

  it('405 with `Allow` for a route that exists under other methods, in the same shape', async () => {
    const cases: Array<[string, string, string]> = [
      ['GET', '/invocations', 'POST'],
      ['PUT', '/invocations?x=1', 'POST'],
      ['POST', '/ping', 'GET, HEAD'],
      ['DELETE', '/metrics', 'GET, HEAD'],
    ];
    for (const [method, path, allow] of cases) {
      const response = await fetch(`${server.url}${path}`, { method });
      const text = await response.text();
      assertError({ status: response.status, text }, 405, 'INFERD_ERR_METHOD_NOT_ALLOWED');
      assert.equal(response.headers.get('allow'), allow, `${method} ${path}`);
    }
  });

  it('a bad request never harms the good ones beside it', async () => {
    const good = () => invoke(server.url, JSON.stringify([ROW]), { 'content-type': 'application/json' });
    const bad = () => invoke(server.url, '{"instances": [[1,2', { 'content-type': 'application/json' });
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? bad() : good())));
    results.forEach((res, i) => assert.equal(res.status, i % 2 ? 400 : 200));
  });
});

describe('server-side errors', () => {
  it('500 when ONNX Runtime fails inside run(), and the worker keeps serving', async (t) => {
    const server = await startServer(MODELS.failing);
    t.after(() => server.http.close());
    const failed = await invoke(server.url, JSON.stringify([7]), { 'content-type': 'application/json' });
    assertError(failed, 500, 'INFERD_ERR_INFERENCE_FAILED');
    const ok = await invoke(server.url, JSON.stringify([3]), { 'content-type': 'application/json' });
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(JSON.parse(ok.text).predictions, [[6, 7]]);
  });

  it('a request that makes ONNX Runtime fail never fails the requests batched with it', async (t) => {
    const server = await startServer(MODELS.failing);
    t.after(() => server.http.close());
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => invoke(server.url, JSON.stringify([i % 3 === 0 ? 9 : i % 4]), { 'content-type': 'application/json' })),
    );
    results.forEach((res, i) => assert.equal(res.status, i % 3 === 0 ? 500 : 200, `request ${i}: ${res.text}`));
  });

  it('503 with Retry-After while the model loads', async (t) => {
    const server = await startServer(MODELS.forest, { load: false });
    t.after(() => server.http.close());
    const ping = await fetch(`${server.url}/ping`);
    assert.equal(ping.status, 503);
    assert.equal(ping.headers.get('retry-after'), '1');
    assertError(await invoke(server.url, JSON.stringify([ROW]), { 'content-type': 'application/json' }), 503, 'INFERD_ERR_NOT_READY');
    await server.start();
    assert.equal((await fetch(`${server.url}/ping`)).status, 200);
  });

  it('503 with Retry-After when the queue is full', async (t) => {
    const server = await startServer(MODELS.slow, { env: { INFERD_MAX_QUEUE_SIZE: '1' } });
    t.after(() => server.http.close());
    // Binary bodies arrive in microseconds; each takes the worker most of a second.
    const body = writeNpy('<f4', [2000, 256], new Float32Array(2000 * 256).fill(0.5));
    const results = await Promise.all(
      Array.from({ length: 16 }, () => invoke(server.url, body, { 'content-type': 'application/x-npy', accept: 'application/x-npy' })),
    );
    // The worker holds two batches and one request waits; whatever arrives beyond is refused at once.
    const refused = results.filter((r) => r.status === 503);
    assert.ok(refused.length >= 1, 'some requests were refused');
    assert.equal(refused.length + results.filter((r) => r.status === 200).length, results.length);
    for (const res of refused) {
      assertError(res, 503, 'INFERD_ERR_QUEUE_FULL');
      assert.equal(res.headers.get('retry-after'), '1');
    }
  });

  it('504 past the invocation timeout, queued requests dropped, the server still healthy', async (t) => {
    const server = await startServer(MODELS.slow, { env: { SAGEMAKER_MODEL_SERVER_TIMEOUT: '0.05' } });
    t.after(() => server.http.close());
    // Binary bodies arrive in milliseconds; each is most of a second of work (6,000 rows), far past 50 ms.
    const body = writeNpy('<f4', [6000, 256], new Float32Array(6000 * 256).fill(0.5));
    const results = await Promise.all(
      Array.from({ length: 3 }, () => invoke(server.url, body, { 'content-type': 'application/x-npy', accept: 'application/x-npy' })),
    );
    for (const res of results) assertError(res, 504, 'INFERD_ERR_TIMEOUT');
    assert.equal(defaultModel(server).stats.queued, 0, 'expired requests left the queue');
    // The batches already handed to the worker run to the end; then small requests pass again.
    const small = () => invoke(server.url, JSON.stringify({ instances: [Array(256).fill(0)] }), { 'content-type': 'application/json' });
    let status = 0;
    for (let attempt = 0; attempt < 100 && status !== 200; attempt += 1) status = (await small()).status;
    assert.equal(status, 200);
  });
});
