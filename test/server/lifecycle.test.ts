/**
 * The process as SageMaker runs it: the Dockerfile's ENTRYPOINT plus `serve`, configuration
 * errors, model load failures, /ping while the server is full, and a SIGTERM drain that loses no
 * request.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, copyFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MODELS, REPO_ROOT, invoke } from '../helper.js';
import { freePort, spawnServer, waitUntilReady } from '../child.js';
import { counterValue } from '../async/toolkit.js';
import { writeNpy } from '../npy.js';

const ROW = Array.from({ length: 20 }, (_, i) => i / 10);

/** The ENTRYPOINT's exec-form argv, with the image's WORKDIR mapped to the repository root. */
async function dockerEntrypoint(): Promise<string[]> {
  const dockerfile = await readFile(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const match = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile);
  assert.ok(match, 'the Dockerfile has an exec-form ENTRYPOINT');
  assert.match(dockerfile, /^WORKDIR \/opt\/inferd$/m);
  assert.match(dockerfile, /^LABEL com\.amazonaws\.sagemaker\.capabilities\.accept-bind-to-port=true$/m);
  assert.match(dockerfile, /^LABEL com\.amazonaws\.sagemaker\.capabilities\.multi-models=true$/m);
  const argv = JSON.parse(match[1]!) as string[];
  assert.equal(argv[0], 'node');
  return argv.slice(1);
}

describe('the container entrypoint', () => {
  it('`serve` starts on SAGEMAKER_BIND_TO_PORT, answers, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const child = await spawnServer([...(await dockerEntrypoint()), 'serve'], {
      SAGEMAKER_BIND_TO_PORT: String(port),
      INFERD_MODEL_DIR: MODELS.forest,
    }, port);
    try {
      await waitUntilReady(child);
      const res = await invoke(child.url, `${ROW.join(',')}\n`, { 'content-type': 'text/csv' });
      assert.equal(res.status, 200, res.text);
      const params = (await (await fetch(`${child.url}/execution-parameters`)).json()) as Record<string, unknown>;
      assert.deepEqual(Object.keys(params).sort(), ['BatchStrategy', 'MaxConcurrentTransforms', 'MaxPayloadInMB']);
      assert.equal(params.MaxPayloadInMB, 6);
    } finally {
      child.process.kill('SIGTERM');
    }
    assert.deepEqual(await child.exited, { code: 0, signal: null });
  });

  it('`serve` as a multi-model endpoint: healthy with no model, loads, invokes and unloads as SageMaker drives it, exits 0', async () => {
    const port = await freePort();
    const child = await spawnServer([...(await dockerEntrypoint()), 'serve'], { SAGEMAKER_BIND_TO_PORT: String(port), SAGEMAKER_MULTI_MODEL: 'true' }, port);
    try {
      await waitUntilReady(child);
      const load = await fetch(`${child.url}/models`, { method: 'POST', body: JSON.stringify({ model_name: 'h1', url: MODELS.forest }) });
      assert.equal(load.status, 200, await load.text());
      const res = await invoke(child.url, `${ROW.join(',')}\n`, { 'content-type': 'text/csv', 'x-amzn-sagemaker-target-model': 'churn.tar.gz' }, '/models/h1/invoke');
      assert.equal(res.status, 200, res.text);
      assert.equal((await fetch(`${child.url}/models/h1`, { method: 'DELETE' })).status, 200);
      assert.equal((await fetch(`${child.url}/ping`)).status, 200, 'healthy again with no model');
    } finally {
      child.process.kill('SIGTERM');
    }
    assert.deepEqual(await child.exited, { code: 0, signal: null });
  });

  it('exits 1 before listening on invalid configuration, naming every bad key', async () => {
    const child = await spawnServer(['dist/src/main.js', 'serve'], {
      SAGEMAKER_BIND_TO_PORT: 'eighty',
      SAGEMAKER_MODEL_SERVER_TIMEOUT: '-5',
      SAGEMAKER_BATCH_STRATEGY: 'SOMETIMES',
    });
    assert.equal((await child.exited).code, 1);
    assert.match(child.output(), /INFERD_ERR_CONFIG_INVALID/);
    for (const key of ['SAGEMAKER_BIND_TO_PORT', 'SAGEMAKER_MODEL_SERVER_TIMEOUT', 'SAGEMAKER_BATCH_STRATEGY']) {
      assert.match(child.output(), new RegExp(key));
    }
    assert.doesNotMatch(child.output(), /listening/i);
  });

  it('exits 1 with the model error when the model cannot load, never hangs', async () => {
    const broken = await mkdtemp(join(tmpdir(), 'inferd-broken-'));
    await writeFile(join(broken, 'model.onnx'), 'not an onnx file');
    const child = await spawnServer(['dist/src/main.js', 'serve', '--port', '0', '--model-dir', broken], {});
    assert.equal((await child.exited).code, 1);
    assert.match(child.output(), /INFERD_ERR_MODEL_LOAD_FAILED/);
    assert.match(child.output(), /model\.onnx/);
  });

  it('exits 1 with a clear message when the port is taken', async () => {
    const { createServer } = await import('node:net');
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as { port: number };
    try {
      const child = await spawnServer(['dist/src/main.js', 'serve', '--port', String(port)], { INFERD_HOST: '127.0.0.1', INFERD_MODEL_DIR: MODELS.forest });
      assert.equal((await child.exited).code, 1);
      assert.match(child.output(), /cannot start serving: listen EADDRINUSE/);
      assert.doesNotMatch(child.output(), /\n\s+at /, 'no stack trace');
    } finally {
      blocker.close();
    }
  });

  it('refuses a directory with several models and no inferd.json to choose', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'inferd-two-'));
    await copyFile(join(MODELS.forest, 'model.onnx'), join(dir, 'a.onnx'));
    await copyFile(join(MODELS.mlp, 'model.onnx'), join(dir, 'b.onnx'));
    const child = await spawnServer(['dist/src/main.js', 'serve', '--port', '0', '--model-dir', dir], {});
    assert.equal((await child.exited).code, 1);
    assert.match(child.output(), /several \.onnx files \(a\.onnx, b\.onnx\)/);
  });
});

describe('under load', () => {
  it('/ping answers 200 while the server provably holds 64 requests running inference', async () => {
    const port = await freePort();
    const child = await spawnServer(['dist/src/main.js', 'serve'], {
      SAGEMAKER_BIND_TO_PORT: String(port),
      INFERD_MODEL_DIR: MODELS.slow,
      // One worker, which the long request holds while the others queue behind it.
      SAGEMAKER_MODEL_SERVER_WORKERS: '1',
      // Room for one request of 24,000 rows (24 MiB as .npy): seconds of the one worker's time.
      SAGEMAKER_MAX_PAYLOAD_IN_MB: '32',
      SAGEMAKER_CONTAINER_LOG_LEVEL: 'warn',
    }, port);
    try {
      await waitUntilReady(child);
      const npy = (rows: number) => writeNpy('<f4', [rows, 256], new Float32Array(rows * 256).fill(0.25));
      const NPY = { 'content-type': 'application/x-npy', accept: 'application/x-npy' };
      const gauges = async () => {
        const text = await (await fetch(`${child.url}/metrics`)).text();
        return {
          held: counterValue(text, 'inferd_concurrent_requests'),
          busy: counterValue(text, 'inferd_busy_workers{model="slow-matmul"}'),
          answered: counterValue(text, 'inferd_requests_total{model="slow-matmul",status_class="2xx"}'),
        };
      };
      const until = async (what: string, done: (g: Awaited<ReturnType<typeof gauges>>) => boolean) => {
        const deadline = Date.now() + 20_000;
        for (let g = await gauges(); !done(g); g = await gauges()) {
          assert.ok(Date.now() < deadline, `${what}: ${JSON.stringify(g)}`);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      };
      // The long request takes the one worker first; the 63 short ones queue behind it, so none
      // of the 64 can be answered before it is.
      const requests = [invoke(child.url, npy(24_000), NPY)];
      await until('the long request runs', (g) => g.busy === 1);
      for (let i = 0; i < 63; i += 1) requests.push(invoke(child.url, npy(100), NPY));
      await until('the server holds all 64 requests', (g) => g.held === 64);

      const pings: number[] = [];
      for (let i = 0; i < 10; i += 1) {
        const res = await fetch(`${child.url}/ping`);
        await res.arrayBuffer();
        pings.push(res.status);
      }
      // Nothing else arrives, so the gauge only falls: 64 now means 64 throughout the pings.
      const after = await gauges();
      assert.deepEqual(pings, Array(10).fill(200));
      assert.deepEqual(after, { held: 64, busy: 1, answered: 0 }, 'the pings were answered while all 64 requests were held, inference running');

      const results = await Promise.all(requests);
      assert.deepEqual(results.map((r) => r.status), Array(64).fill(200));
      // Counted once each response is sent, which may be just after the client has it.
      await until('every request is counted as answered', (g) => g.held === 0 && g.answered === 64);
    } finally {
      child.process.kill('SIGTERM');
      await child.exited;
    }
  });

  it('SIGTERM during load: every request in flight completes, then the process exits 0', async () => {
    const port = await freePort();
    const child = await spawnServer(['dist/src/main.js', 'serve'], {
      SAGEMAKER_BIND_TO_PORT: String(port),
      INFERD_MODEL_DIR: MODELS.slow,
      SAGEMAKER_MODEL_SERVER_WORKERS: '1',
    }, port);
    await waitUntilReady(child);
    try {
      // A long request holds the one worker while 63 short ones queue behind it.
      const rows = (n: number) => JSON.stringify({ instances: Array(n).fill(Array(256).fill(0.25)) });
      const stats = async () => {
        const body = (await (await fetch(`${child.url}/models`)).json()) as { models: Array<{ stats: { queued: number; inFlight: number } }> };
        return body.models[0]!.stats;
      };
      const until = async (what: string, done: (s: { queued: number; inFlight: number }) => boolean) => {
        const deadline = Date.now() + 20_000;
        for (let s = await stats(); !done(s); s = await stats()) {
          assert.ok(Date.now() < deadline, `${what}: ${JSON.stringify(s)}`);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      };
      // 6,000 rows as .npy (under the 6 MiB limit): most of a second of work, sent in milliseconds.
      const long = writeNpy('<f4', [6000, 256], new Float32Array(6000 * 256).fill(0.25));
      const inFlight = [invoke(child.url, long, { 'content-type': 'application/x-npy', accept: 'application/x-npy' })];
      await until('the long request runs', (s) => s.inFlight === 1);
      for (let i = 0; i < 63; i += 1) inFlight.push(invoke(child.url, rows(20), { 'content-type': 'application/json' }));
      // Signal only once the server holds all 64 (queued, merged into batches or running): those
      // are in flight. Batches are not requests, so the count comes from the concurrency gauge.
      const deadline = Date.now() + 20_000;
      const concurrent = async () => {
        const text = await (await fetch(`${child.url}/metrics`)).text();
        return counterValue(text, 'inferd_concurrent_requests');
      };
      for (let held = await concurrent(); held !== 64; held = await concurrent()) {
        assert.ok(Date.now() < deadline, `the server holds ${held} of 64 requests`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      child.process.kill('SIGTERM');
      const results = await Promise.all(inFlight);
      assert.deepEqual(results.map((r) => r.status), Array(64).fill(200));
      assert.deepEqual(await child.exited, { code: 0, signal: null });
      assert.match(child.output(), /draining/);
      const after = await fetch(`${child.url}/ping`).then((r) => r.status, () => 'refused');
      assert.equal(after, 'refused');
    } finally {
      child.process.kill('SIGKILL');
    }
  });
});
