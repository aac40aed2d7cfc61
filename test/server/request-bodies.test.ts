/**
 * Request bodies as clients nobody on the project wrote send them: oversized bodies whose 413
 * must reach a client still writing (Node's fetch, a chunked upload, `Expect: 100-continue`,
 * Python's urllib), and gzip/deflate bodies, including a bomb, against the real server.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { deflateSync, gzipSync } from 'node:zlib';
import { MODELS, REPO_ROOT, invoke, startServer, type TestServer } from '../helper.js';
import { freePort, spawnServer, waitUntilReady } from '../child.js';
import { finished, submitAsync } from '../async/toolkit.js';

const MIB = 1024 * 1024;
/** SAGEMAKER_MAX_PAYLOAD_IN_MB is 6 by default. */
const OVERSIZED = Buffer.alloc(7 * MIB, 0x31);
const TOO_LARGE = 'INFERD_ERR_PAYLOAD_TOO_LARGE';

let server: TestServer;
let csv: string;
let outputDir: string;

before(async () => {
  outputDir = await mkdtemp(join(tmpdir(), 'inferd-bodies-'));
  server = await startServer(MODELS.forest, {
    env: { INFERD_ASYNC_OUTPUT_PATH: join(outputDir, 'out'), INFERD_ASYNC_STATE_DIR: join(outputDir, 'state') },
  });
  csv = (await readFile(`${REPO_ROOT}test/fixtures/churn-requests.csv`, 'utf8')).split('\n').slice(0, 50).join('\n') + '\n';
});

after(async () => {
  await server?.http.close();
  await rm(outputDir, { recursive: true, force: true });
});

const errorCode = (text: string) => (JSON.parse(text) as { code: string }).code;

/** Still served after a refusal: nothing the refused request did reached other requests. */
async function assertServes(url: string): Promise<void> {
  const res = await invoke(url, csv, { 'content-type': 'text/csv' });
  assert.equal(res.status, 200, res.text);
}

describe('an oversized body gets its 413, whatever the client', () => {
  for (const attempt of [1, 2, 3]) {
    it(`Node's fetch with a 7 MiB body (${attempt} of 3)`, async () => {
      const res = await invoke(server.url, OVERSIZED, { 'content-type': 'text/csv' });
      assert.equal(res.status, 413);
      assert.equal(errorCode(res.text), TOO_LARGE);
      assert.equal(res.headers.get('content-type'), 'application/json');
    });

    it(`a chunked upload without Content-Length (${attempt} of 3)`, async () => {
      const chunk = Buffer.alloc(64 * 1024, 0x32);
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= OVERSIZED.length) return controller.close();
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      });
      const response = await fetch(`${server.url}/invocations`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'text/csv' },
        duplex: 'half',
      } as RequestInit);
      assert.equal(response.status, 413);
      assert.equal(errorCode(await response.text()), TOO_LARGE);
    });

    it(`Expect: 100-continue is answered 413 without asking for the body (${attempt} of 3)`, async () => {
      const { status, text, continued } = await expectContinue(server.url, OVERSIZED.length);
      assert.equal(status, 413);
      assert.equal(errorCode(text), TOO_LARGE);
      assert.equal(continued, false, 'the server never asked for the body');
    });

    it(`Python's urllib (${attempt} of 3)`, async () => {
      const { stdout } = await promisify(execFile)('python3', ['-c', URLLIB_POST, `${server.url}/invocations`, String(OVERSIZED.length)]);
      const [status, ...body] = stdout.trim().split('\n');
      assert.equal(status, '413', stdout);
      assert.equal(errorCode(body.join('\n')), TOO_LARGE);
    });
  }

  it('a body within the limit and `Expect: 100-continue` is asked for and answered', async () => {
    const { status, continued } = await expectContinue(server.url, Buffer.byteLength(csv), Buffer.from(csv));
    assert.equal(status, 200);
    assert.equal(continued, true);
  });

  it('past the discard cap (4x the limit) the connection is closed under the body, and the server serves the next request', async () => {
    const outcome = await fetch(`${server.url}/invocations`, { method: 'POST', body: Buffer.alloc(30 * MIB), headers: { 'content-type': 'text/csv' } }).then(
      async (response) => String(response.status) + errorCode(await response.text()),
      (error: Error & { cause?: { code?: string } }) => error.cause?.code ?? error.message,
    );
    // Whether the client read the 413 before the close depends on how far it had written.
    assert.ok(['413' + TOO_LARGE, 'EPIPE', 'ECONNRESET', 'UND_ERR_SOCKET'].includes(outcome), outcome);
    await assertServes(server.url);
  });

  it('the server serves the next request', () => assertServes(server.url));
});

const URLLIB_POST = `
import sys, urllib.request, urllib.error
url, size = sys.argv[1], int(sys.argv[2])
request = urllib.request.Request(url, data=b'1' * size, headers={'Content-Type': 'text/csv'}, method='POST')
try:
    response = urllib.request.urlopen(request)
    print(response.status); print(response.read().decode())
except urllib.error.HTTPError as error:
    print(error.code); print(error.read().decode())
`;

/** A POST that sends its headers with `Expect: 100-continue` and its body only if asked. */
function expectContinue(url: string, contentLength: number, body?: Buffer): Promise<{ status: number; text: string; continued: boolean }> {
  return new Promise((resolve, reject) => {
    let continued = false;
    const request = httpRequest(`${url}/invocations`, {
      method: 'POST',
      headers: { 'content-type': 'text/csv', 'content-length': contentLength, expect: '100-continue' },
    });
    request.on('continue', () => {
      continued = true;
      request.end(body ?? Buffer.alloc(contentLength));
    });
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode!, text: Buffer.concat(chunks).toString(), continued }));
    });
    request.on('error', reject);
    request.flushHeaders();
  });
}

describe('compressed request bodies', () => {
  const encoded = {
    gzip: (text: string) => gzipSync(text),
    'x-gzip': (text: string) => gzipSync(text),
    deflate: (text: string) => deflateSync(text),
  };

  for (const accept of ['application/json', 'text/csv']) {
    for (const [encoding, encode] of Object.entries(encoded)) {
      it(`a ${encoding} CSV body is answered byte for byte like the plain one (Accept ${accept})`, async () => {
        const plain = await invoke(server.url, csv, { 'content-type': 'text/csv', accept });
        const compressed = await invoke(server.url, encode(csv), { 'content-type': 'text/csv', 'content-encoding': encoding, accept });
        assert.equal(plain.status, 200, plain.text);
        assert.equal(compressed.status, 200, compressed.text);
        assert.deepEqual(compressed.bytes, plain.bytes);
      });
    }
  }

  it('`identity` is no coding at all', async () => {
    const res = await invoke(server.url, csv, { 'content-type': 'text/csv', 'content-encoding': 'identity' });
    assert.equal(res.status, 200, res.text);
  });

  for (const encoding of ['br', 'zstd', 'compress', 'gzip, gzip', 'gzip, br']) {
    it(`Content-Encoding "${encoding}" gets 415 INFERD_ERR_UNSUPPORTED_CONTENT_ENCODING`, async () => {
      const res = await invoke(server.url, gzipSync(csv), { 'content-type': 'text/csv', 'content-encoding': encoding });
      assert.equal(res.status, 415);
      assert.equal(errorCode(res.text), 'INFERD_ERR_UNSUPPORTED_CONTENT_ENCODING');
    });
  }

  const corrupt = {
    'not gzip at all': (text: string) => Buffer.from(text),
    'a truncated gzip stream': (text: string) => gzipSync(text).subarray(0, 40),
    'deflate sent as gzip': (text: string) => deflateSync(text),
  };
  for (const [name, encode] of Object.entries(corrupt)) {
    it(`${name} gets 400 INFERD_ERR_BODY_MALFORMED`, async () => {
      const res = await invoke(server.url, encode(csv), { 'content-type': 'text/csv', 'content-encoding': 'gzip' });
      assert.equal(res.status, 400);
      assert.equal(errorCode(res.text), 'INFERD_ERR_BODY_MALFORMED');
      assert.doesNotMatch(res.text, /\n\s+at /);
    });
  }

  it('a gzip body over the limit once decoded gets 413', async () => {
    const res = await invoke(server.url, gzipSync(Buffer.alloc(7 * MIB, 0x31)), { 'content-type': 'text/csv', 'content-encoding': 'gzip' });
    assert.equal(res.status, 413);
    assert.equal(errorCode(res.text), TOO_LARGE);
  });

  it('an async submission with a gzip body gets the answer of the plain body', async () => {
    const expected = await invoke(server.url, csv, { 'content-type': 'text/csv', accept: 'text/csv' });
    const headers = { 'content-type': 'text/csv', 'x-amzn-sagemaker-accept': 'text/csv' };
    const accepted = await submitAsync(server.url, { ...headers, 'content-encoding': 'gzip' }, gzipSync(csv));
    assert.equal(accepted.status, 202, JSON.stringify(accepted.json));
    const status = await finished(server.url, accepted.json.InferenceId as string);
    assert.equal(status.status, 'completed', status.failureReason);
    assert.equal(await readFile(status.outputLocation, 'utf8'), expected.text);

    const refused = await submitAsync(server.url, { ...headers, 'content-encoding': 'br' }, gzipSync(csv));
    assert.equal(refused.status, 415);
    assert.equal(refused.json.code, 'INFERD_ERR_UNSUPPORTED_CONTENT_ENCODING');
  });

  it('a body that goes on after its gzip stream ends gets 400 INFERD_ERR_BODY_MALFORMED', async () => {
    const body = Buffer.concat([gzipSync(csv), Buffer.alloc(300 * 1024)]);
    const res = await invoke(server.url, body, { 'content-type': 'text/csv', 'content-encoding': 'gzip' });
    assert.equal(res.status, 400);
    assert.equal(errorCode(res.text), 'INFERD_ERR_BODY_MALFORMED');
  });

  it('the server serves the next request', () => assertServes(server.url));
});

describe('async submissions read their body only once accepted', () => {
  const submitRaw = (headers: Record<string, string>, body: Uint8Array) =>
    fetch(`${server.url}/async-invocations`, { method: 'POST', headers, body }).then(async (response) => ({
      status: response.status,
      connection: response.headers.get('connection'),
      json: (await response.json()) as Record<string, unknown>,
    }));

  it('a refused submission of 3 MB is answered once its body is read, keeping the connection', async () => {
    const refused = await submitRaw({ 'content-type': 'application/x-unknown' }, Buffer.alloc(3 * MIB, 0x31));
    assert.equal(refused.status, 415);
    assert.equal(refused.json.code, 'INFERD_ERR_UNSUPPORTED_MEDIA_TYPE');
    // Read whole, not cut off by the discard cap: nothing is left over, so the connection stays.
    assert.notEqual(refused.connection, 'close');
  });

  it('a corrupt gzip body for an inference id already known is never decoded: 202 with the first one, server unharmed', async () => {
    const headers = { 'content-type': 'text/csv', 'x-amzn-sagemaker-inference-id': 'known-gzip' };
    const first = await submitAsync(server.url, headers, csv);
    assert.equal(first.status, 202, JSON.stringify(first.json));
    const again = await submitRaw({ ...headers, 'content-encoding': 'gzip' }, Buffer.from('not gzip at all'));
    assert.equal(again.status, 202);
    assert.equal(again.json.InferenceId, 'known-gzip');
    await assertServes(server.url);
  });

  it('Expect: 100-continue with a Content-Length over the async limit: 413 without asking for the body', async () => {
    const answer = await new Promise<{ status: number; continued: boolean; text: string }>((resolve, reject) => {
      let continued = false;
      const request = httpRequest(`${server.url}/async-invocations`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-npy', 'content-length': 200 * MIB, expect: '100-continue' },
      });
      request.on('continue', () => {
        continued = true;
        request.destroy();
      });
      request.on('response', (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () => resolve({ status: response.statusCode!, continued, text }));
      });
      request.on('error', reject);
      request.flushHeaders();
    });
    assert.equal(answer.continued, false);
    assert.equal(answer.status, 413);
    assert.equal(errorCode(answer.text), TOO_LARGE);
  });
});

/** Resident and peak resident memory of a process, in bytes (Linux). */
async function memoryOf(pid: number): Promise<{ rssBytes: number; peakBytes: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
  return { rssBytes: kib('VmRSS'), peakBytes: kib('VmHWM') };
}

describe('a gzip bomb', () => {
  it('inflating to 200 MiB gets 413 without being inflated whole: peak RSS grows far less than 200 MiB, and the next request is served', async () => {
    const port = await freePort();
    const child = await spawnServer(['dist/src/main.js', 'serve'], { SAGEMAKER_BIND_TO_PORT: String(port), INFERD_MODEL_DIR: MODELS.forest }, port);
    try {
      await waitUntilReady(child);
      await assertServes(child.url);
      const bomb = gzipSync(Buffer.alloc(200 * MIB));
      assert.ok(bomb.length < 1 * MIB, `the bomb is small on the wire (${bomb.length} bytes)`);
      // Resets the peak (VmHWM) to the current RSS, so the peak read after is the bombs' alone.
      await writeFile(`/proc/${child.process.pid!}/clear_refs`, '5');
      const before = await memoryOf(child.process.pid!);
      for (let i = 0; i < 3; i += 1) {
        const res = await invoke(child.url, bomb, { 'content-type': 'text/csv', 'content-encoding': 'gzip' });
        assert.equal(res.status, 413);
        assert.equal(errorCode(res.text), TOO_LARGE);
      }
      const afterBomb = await memoryOf(child.process.pid!);
      const growthMib = (afterBomb.peakBytes - before.rssBytes) / MIB;
      // Inflated whole, one bomb alone would add 200 MiB; stopped at the 6 MiB limit, a few MiB.
      assert.ok(growthMib < 64, `peak RSS grew by ${growthMib.toFixed(1)} MiB (RSS ${(before.rssBytes / MIB).toFixed(0)} MiB before)`);
      await assertServes(child.url);
    } finally {
      child.process.kill('SIGTERM');
      await child.exited;
    }
  });
});
