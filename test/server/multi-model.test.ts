/**
 * SageMaker multi-model endpoints (`SAGEMAKER_MULTI_MODEL=true`), case by case against the real
 * server and real models: the container API SageMaker drives (load, list, describe, invoke,
 * unload) with every status it expects, two models of different signatures in one process,
 * unload under load, memory released, and the budget's 507.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { counterValue, until } from '../async/toolkit.js';
import { MODELS, assertClose, copyModel, invoke, loadReference, startServer, type Reference, type TestServer } from '../helper.js';
import { readNpy, writeNpy } from '../npy.js';
import { writeMatmulModel } from '../onnx-model.js';

const MME = { SAGEMAKER_MULTI_MODEL: 'true' };
const toCsv = (rows: number[][]) => rows.map((r) => r.join(',')).join('\n') + '\n';

async function call(server: TestServer, method: string, path: string, body?: unknown) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, json: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>) };
}

const load = (server: TestServer, name: string, url: string) => call(server, 'POST', '/models', { model_name: name, url });
const metricsOf = async (server: TestServer) => (await fetch(`${server.url}/metrics`)).text();

describe('SageMaker multi-model endpoint: the container API', () => {
  let server: TestServer;
  let ref: Reference;
  let scratch: string;
  let forestUrl: string;
  let mlpUrl: string;

  before(async () => {
    ref = await loadReference();
    scratch = await mkdtemp(join(tmpdir(), 'inferd-mme-'));
    // Where SageMaker unpacks each model: /opt/ml/models/<hash>/model.
    forestUrl = await copyModel(MODELS.forest, undefined, join(scratch, 'a1b2', 'model'));
    mlpUrl = await copyModel(MODELS.mlp, undefined, join(scratch, 'c3d4', 'model'));
    server = await startServer(undefined, { env: MME });
  });
  after(async () => {
    await server.http.close();
    await rm(scratch, { recursive: true, force: true });
  });

  it('is healthy with zero models, and lists none', async () => {
    assert.equal((await fetch(`${server.url}/ping`)).status, 200);
    assert.deepEqual((await call(server, 'GET', '/models')).json, { models: [] });
  });

  it('loads a model (200 once ready), refuses it twice (409), and describes it', async () => {
    const loaded = await load(server, 'a1b2', forestUrl);
    assert.equal(loaded.status, 200, JSON.stringify(loaded.json));
    assert.deepEqual(loaded.json, { status: 'Model "a1b2" loaded' });
    const again = await load(server, 'a1b2', forestUrl);
    assert.equal(again.status, 409);
    assert.equal(again.json!.code, 'INFERD_ERR_MODEL_ALREADY_LOADED');
    const described = await call(server, 'GET', '/models/a1b2');
    assert.equal(described.status, 200);
    assert.equal(described.json!.modelName, 'a1b2');
    assert.equal(described.json!.modelUrl, forestUrl);
    assert.equal(described.json!.state, 'ready');
    assert.ok((described.json!.footprintBytes as number) >= 609_121, 'at least the .onnx file');
    assert.equal((await call(server, 'GET', '/models/nope')).status, 404);
  });

  it('refuses a bad or missing url with 400 or 404, and paths under /proc, /sys and /dev', async () => {
    const cases: Array<[unknown, number, string]> = [
      [{ model_name: 'x', url: join(scratch, 'missing') }, 404, 'INFERD_ERR_MODEL_NOT_FOUND'],
      [{ model_name: 'x', url: 'relative/model' }, 400, 'INFERD_ERR_MODEL_SOURCE_INVALID'],
      [{ model_name: 'x', url: '/proc/self/cwd' }, 400, 'INFERD_ERR_MODEL_SOURCE_INVALID'],
      [{ model_name: 'x', url: '/sys/kernel' }, 400, 'INFERD_ERR_MODEL_SOURCE_INVALID'],
      [{ model_name: 'x', url: '/dev/shm' }, 400, 'INFERD_ERR_MODEL_SOURCE_INVALID'],
      [{ model_name: 'x', url: '/tmp/../proc/1' }, 400, 'INFERD_ERR_MODEL_SOURCE_INVALID'],
      [{ model_name: 'x', url: join(forestUrl, 'model.onnx') }, 400, 'INFERD_ERR_MODEL_SOURCE_INVALID'],
      // A directory that holds a model directory, but no model.
      [{ model_name: 'x', url: join(scratch, 'a1b2') }, 400, 'INFERD_ERR_MODEL_LOAD_FAILED'],
      [{ url: forestUrl }, 400, 'INFERD_ERR_BAD_REQUEST'],
      [{ model_name: 'x' }, 400, 'INFERD_ERR_BAD_REQUEST'],
      ['{"model_name": ', 400, 'INFERD_ERR_BODY_MALFORMED'],
    ];
    // A link that leads into /proc is refused by where it leads.
    const link = join(scratch, 'to-proc');
    await symlink('/proc/self', link);
    cases.push([{ model_name: 'x', url: link }, 400, 'INFERD_ERR_MODEL_SOURCE_INVALID']);
    // A model directory whose model.onnx leads to a device, or to a model outside it.
    const zeros = join(scratch, 'zeros', 'model');
    await mkdir(zeros, { recursive: true });
    await symlink('/dev/zero', join(zeros, 'model.onnx'));
    cases.push([{ model_name: 'x', url: zeros }, 400, 'INFERD_ERR_MODEL_SOURCE_INVALID']);
    const borrowed = join(scratch, 'borrowed', 'model');
    await mkdir(borrowed, { recursive: true });
    await symlink(join(forestUrl, 'model.onnx'), join(borrowed, 'model.onnx'));
    cases.push([{ model_name: 'x', url: borrowed }, 400, 'INFERD_ERR_MODEL_SOURCE_INVALID']);
    for (const [body, status, code] of cases) {
      const answer = await call(server, 'POST', '/models', body);
      assert.equal(answer.status, status, `${JSON.stringify(body)}: ${JSON.stringify(answer.json)}`);
      assert.equal(answer.json!.code, code, JSON.stringify(body));
    }
    assert.equal((await call(server, 'GET', '/models/x')).status, 404, 'nothing was left loading');
  });

  it('serves two models of different signatures in one process, each with its reference outputs, in every codec', async () => {
    assert.equal((await load(server, 'c3d4', mlpUrl)).status, 200);
    const headers = { 'x-amzn-sagemaker-target-model': 'customers/42/forest.tar.gz' };
    const csv = await invoke(server.url, toCsv(ref.rows), { ...headers, 'content-type': 'text/csv', accept: 'text/csv' }, '/models/a1b2/invoke');
    assert.equal(csv.status, 200, csv.text);
    csv.text.trim().split('\n').forEach((line, i) => {
      const [label, ...probabilities] = line.split(',').map(Number);
      assert.equal(label, ref.forest_labels[i]);
      assertClose(probabilities, ref.forest_probabilities[i]!);
    });
    const json = await invoke(server.url, JSON.stringify({ instances: ref.rows }), { 'content-type': 'application/json' }, '/models/a1b2/invoke');
    assert.deepEqual((JSON.parse(json.text).predictions as Array<{ label: number }>).map((p) => p.label), ref.forest_labels);
    const lines = await invoke(server.url, ref.rows.map((r) => JSON.stringify(r)).join('\n'), { 'content-type': 'application/jsonlines', accept: 'application/jsonlines' }, '/models/c3d4/invoke');
    lines.text.trim().split('\n').forEach((line, i) => assertClose(JSON.parse(line), ref.mlp_probabilities[i]!));
    const npy = await invoke(
      server.url,
      writeNpy('<f4', [5, 20], Float32Array.from(ref.rows.flat())),
      { 'content-type': 'application/x-npy', accept: 'application/x-npy' },
      '/models/c3d4/invoke',
    );
    assert.equal(npy.status, 200, npy.text);
    const { body: data } = readNpy(npy.bytes);
    assertClose(Array.from(new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4)), ref.mlp_probabilities.flat());
    // The invoke route has the /invocations semantics, errors included.
    const bad = await invoke(server.url, '1,2,3\n', { 'content-type': 'text/csv' }, '/models/c3d4/invoke');
    assert.equal(bad.status, 422);
    const missing = await invoke(server.url, toCsv(ref.rows), { 'content-type': 'text/csv' }, '/models/nope/invoke');
    assert.equal(missing.status, 404);
    assert.equal(JSON.parse(missing.text).code, 'INFERD_ERR_MODEL_NOT_LOADED');
    // Without a model named, /invocations says where to go.
    const unnamed = await invoke(server.url, toCsv(ref.rows), { 'content-type': 'text/csv' });
    assert.equal(unnamed.status, 400);
    // Every series carries its model.
    const text = await metricsOf(server);
    assert.ok(counterValue(text, 'inferd_requests_total{model="a1b2",status_class="2xx"}') >= 2);
    assert.ok(counterValue(text, 'inferd_requests_total{model="c3d4",status_class="2xx"}') >= 2);
    assert.equal(counterValue(text, 'inferd_loaded_models'), 2);
    assert.ok(counterValue(text, 'inferd_model_memory_bytes{model="c3d4"}') > 0);
    assert.equal(counterValue(text, 'inferd_model_loads_total{model="a1b2"}'), 1);
  });

  it('pages the list with next_page_token, and refuses a bad limit', async () => {
    const first = await call(server, 'GET', '/models?limit=1');
    assert.deepEqual((first.json!.models as Array<{ modelName: string }>).map((m) => m.modelName), ['a1b2']);
    assert.equal(typeof first.json!.nextPageToken, 'string');
    const second = await call(server, 'GET', `/models?limit=1&next_page_token=${first.json!.nextPageToken as string}`);
    assert.deepEqual((second.json!.models as Array<{ modelName: string; modelUrl: string }>).map((m) => [m.modelName, m.modelUrl]), [['c3d4', mlpUrl]]);
    assert.equal(second.json!.nextPageToken, undefined, 'the last page has no token');
    assert.equal((await call(server, 'GET', '/models?limit=0')).status, 400);
  });

  it('unloads (200 once its workers are gone), then 404 for it everywhere', async () => {
    const unloaded = await call(server, 'DELETE', '/models/c3d4');
    assert.equal(unloaded.status, 200);
    assert.deepEqual(unloaded.json, { status: 'Model "c3d4" unloaded' });
    assert.equal((await call(server, 'DELETE', '/models/c3d4')).status, 404);
    assert.equal((await call(server, 'GET', '/models/c3d4')).status, 404);
    const invoked = await invoke(server.url, toCsv(ref.rows), { 'content-type': 'text/csv' }, '/models/c3d4/invoke');
    assert.equal(invoked.status, 404);
    const text = await metricsOf(server);
    assert.equal(counterValue(text, 'inferd_model_unloads_total{model="c3d4",reason="request"}'), 1);
    assert.equal(counterValue(text, 'inferd_loaded_models'), 1);
    assert.doesNotMatch(text, /inferd_workers\{model="c3d4"\}/, 'an unloaded model leaves no gauge behind');
    // Nor its request and batch series (a server cycling through models would keep them all), only its history.
    await until(async () => (/inferd_requests_total\{model="c3d4"/.test(await metricsOf(server)) ? undefined : true), 10_000, 'its series to go');
    assert.equal(counterValue(await metricsOf(server), 'inferd_model_loads_total{model="c3d4"}'), 1);
    // Loaded again under the same name, it serves again.
    assert.equal((await load(server, 'c3d4', mlpUrl)).status, 200);
    assert.equal((await call(server, 'DELETE', '/models/c3d4')).status, 200);
  });
});

describe('SageMaker multi-model endpoint: unload under load, memory and the budget', () => {
  it('unloads while 60 requests are in flight: each is answered 200 or 404, none 5xx, and the unload answers once the accepted ones have run', async (t) => {
    const server = await startServer(undefined, { env: MME });
    t.after(() => server.http.close());
    // The rows the model's workers ran, as the registry sees them when the unload has stopped them.
    let rowsRun = 0;
    let rowsRunWhenUnloaded: number | undefined;
    server.runtime.addHooks({
      loaded: (model) => void model.observe({ completed: ({ rows, ok }) => (rowsRun += ok ? rows : 0) }),
      unloaded: () => (rowsRunWhenUnloaded = rowsRun),
    });
    const url = await copyModel(MODELS.slow);
    t.after(() => rm(url, { recursive: true, force: true }));
    assert.equal((await load(server, 'slow', url)).status, 200);
    // 500 rows each: a sixth of a second of work or so, so the worker falls behind at once.
    const rows = 500;
    const body = writeNpy('<f4', [rows, 256], new Float32Array(rows * 256).fill(0.5));
    const requests = Array.from({ length: 60 }, () =>
      invoke(server.url, body, { 'content-type': 'application/x-npy', accept: 'application/x-npy' }, '/models/slow/invoke').then((res) => res.status),
    );
    // Some are queued behind the one worker when the unload begins.
    await until(async () => (counterValue(await metricsOf(server), 'inferd_queued_requests{model="slow"}') > 5 ? true : undefined), 30_000, 'a backlog');
    const unloading = call(server, 'DELETE', '/models/slow');
    // Requests that arrive once the unload has begun are refused, while the backlog still runs.
    await until(() => (server.runtime.get('slow')?.state === 'unloading' ? true : undefined), 30_000, 'the unload to begin');
    const late = await Promise.all(
      Array.from({ length: 10 }, () => invoke(server.url, body, { 'content-type': 'application/x-npy' }, '/models/slow/invoke').then((res) => res.status)),
    );
    const unloaded = await unloading;
    const statuses = await Promise.all(requests);
    assert.equal(unloaded.status, 200);
    assert.deepEqual(late, Array(10).fill(404));
    assert.deepEqual(statuses.filter((status) => status !== 200 && status !== 404), [], 'only 200 and 404');
    const answered = statuses.filter((status) => status === 200).length;
    assert.ok(answered > 0, 'those accepted were answered');
    assert.equal(rowsRunWhenUnloaded, answered * rows, 'the workers stopped only after every accepted request had run');
    assert.equal(rowsRun, answered * rows, 'and nothing ran after');
  });

  it('releases memory: the same model loaded and unloaded 50 times keeps resident memory bounded', async (t) => {
    const server = await startServer(undefined, { env: MME });
    t.after(() => server.http.close());
    // 16 MiB of weights: 45 leaked sessions would hold over 700 MiB.
    const url = await writeMatmulModel(await mkdtemp(join(tmpdir(), 'inferd-matmul-')), 2048);
    t.after(() => rm(url, { recursive: true, force: true }));
    const cycle = async () => {
      assert.equal((await load(server, 'm', url)).status, 200);
      assert.equal((await call(server, 'DELETE', '/models/m')).status, 200);
    };
    // The first cycles reach the allocator's steady state (arenas, the addon's own pages).
    for (let i = 0; i < 5; i += 1) await cycle();
    const settled = process.memoryUsage.rss();
    for (let i = 0; i < 45; i += 1) await cycle();
    const growthMib = (process.memoryUsage.rss() - settled) / 2 ** 20;
    assert.ok(growthMib < 200, `resident memory grew ${growthMib.toFixed(0)} MiB over 45 loads and unloads`);
  });

  it('answers 507 for a load that does not fit the budget, and loads it once room is made', async (t) => {
    const server = await startServer(undefined, { env: { ...MME, INFERD_MODEL_MEMORY_BUDGET_MB: '50' } });
    t.after(() => server.http.close());
    const first = await copyModel(MODELS.mlp, { memoryMb: 30 });
    const second = await copyModel(MODELS.forest, { memoryMb: 30 });
    t.after(() => Promise.all([first, second].map((dir) => rm(dir, { recursive: true, force: true }))));
    assert.equal((await load(server, 'first', first)).status, 200);
    const refused = await load(server, 'second', second);
    assert.equal(refused.status, 507);
    assert.equal(refused.json!.code, 'INFERD_ERR_INSUFFICIENT_MEMORY');
    // Under MME the platform evicts: the first model is still there, untouched.
    assert.equal((await call(server, 'GET', '/models/first')).status, 200);
    assert.equal((await call(server, 'DELETE', '/models/first')).status, 200);
    assert.equal((await load(server, 'second', second)).status, 200);
    assert.equal((await call(server, 'GET', '/models/second')).json!.footprintSource, 'declared');
  });
});
