/** /metrics: valid Prometheus exposition (promtool), and batching that shows in it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MODELS, invoke, startServer } from '../helper.js';
import { promtoolCheck } from '../promtool.js';
import { writeNpy } from '../npy.js';


/** The value of one sample, e.g. `inferd_batch_size_rows_count{model="churn-mlp"}`. */
function sample(exposition: string, series: string): number {
  const line = exposition.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `${series} is exposed`);
  return Number(line.slice(series.length + 1));
}

const row = (seed: number) => Array.from({ length: 20 }, (_, i) => ((seed + i) % 7) - 3);

describe('GET /metrics', () => {
  it('passes promtool check metrics, and counts every row, request and error once', async (t) => {
    const server = await startServer(MODELS.mlp, { env: { SAGEMAKER_MODEL_SERVER_WORKERS: '1' } });
    t.after(() => server.http.close());
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) => invoke(server.url, JSON.stringify([row(i)]), { 'content-type': 'application/json' })),
    );
    assert.deepEqual(results.map((r) => r.status), Array(64).fill(200));
    const bad = await invoke(server.url, JSON.stringify([[1, 2]]), { 'content-type': 'application/json' });
    assert.equal(bad.status, 422);

    const response = await fetch(`${server.url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
    const exposition = await response.text();
    const check = await promtoolCheck(exposition);
    assert.equal(check.code, 0, check.output);
    assert.equal(check.output.trim(), '', `promtool found no problems:\n${check.output}`);

    const m = '{model="churn-mlp"}';
    const batches = sample(exposition, `inferd_batch_size_rows_count${m}`);
    const rows = sample(exposition, `inferd_batch_size_rows_sum${m}`);
    assert.equal(rows, 64, 'every row inferred once; the warm-up and the refused request are not counted');
    assert.ok(batches >= 1 && batches <= rows, `${rows} rows in ${batches} batches`);
    assert.equal(sample(exposition, `inferd_rows_inferred_total${m}`), 64);
    assert.equal(sample(exposition, 'inferd_requests_total{model="churn-mlp",status_class="2xx"}'), 64);
    assert.equal(sample(exposition, 'inferd_request_errors_total{model="churn-mlp",code="INFERD_ERR_INPUT_INVALID"}'), 1);
    assert.equal(sample(exposition, `inferd_workers${m}`), 1);
    assert.equal(sample(exposition, 'inferd_loaded_models'), 1);
    assert.equal(sample(exposition, `inferd_queued_requests${m}`), 0);
    for (const name of ['inferd_queue_wait_seconds', 'inferd_compute_seconds', 'inferd_batch_assembly_wait_seconds', 'inferd_request_duration_seconds']) {
      assert.match(exposition, new RegExp(`^${name}_bucket`, 'm'));
    }
    assert.match(exposition, /^inferd_codec_seconds_count\{model="churn-mlp",operation="decode"\} 64$/m);
    assert.match(exposition, /^inferd_batch_dispatches_total\{model="churn-mlp",reason="(idle|full|delay|preferred|shape)"\} \d+$/m);
    assert.match(exposition, /^process_cpu_seconds_total /m);
  });

  it('shows batches of more than one row: requests queued behind a running one are merged', async (t) => {
    const server = await startServer(MODELS.slow, { env: { SAGEMAKER_MAX_PAYLOAD_IN_MB: '32' } });
    t.after(() => server.http.close());
    const m = '{model="slow-matmul"}';
    const metrics = async () => (await fetch(`${server.url}/metrics`)).text();
    const npy = (rows: number) => writeNpy('<f4', [rows, 256], new Float32Array(rows * 256).fill(0.25));
    const NPY = { 'content-type': 'application/x-npy', accept: 'application/x-npy' };
    // 24,000 rows hold the one worker for seconds; the next request takes the second batch slot
    // of the instance, and the 62 after it can only wait in the batcher, where they merge.
    const requests = [invoke(server.url, npy(24_000), NPY)];
    const deadline = Date.now() + 20_000;
    while (sample(await metrics(), `inferd_busy_workers${m}`) !== 1) {
      assert.ok(Date.now() < deadline, 'the long request runs');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    for (let i = 0; i < 63; i += 1) requests.push(invoke(server.url, npy(1), NPY));
    const results = await Promise.all(requests);
    assert.deepEqual(results.map((r) => r.status), Array(64).fill(200));
    const exposition = await metrics();
    assert.equal(sample(exposition, `inferd_batch_size_rows_sum${m}`), 24_063);
    const batches = sample(exposition, `inferd_batch_size_rows_count${m}`);
    assert.ok(batches < 64, `64 requests ran in ${batches} batches`);
  });

  it('never batches a model whose batch dimension is fixed at 1', async (t) => {
    const server = await startServer(MODELS.fixedBatch);
    t.after(() => server.http.close());
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) => invoke(server.url, JSON.stringify([[i, -i, i, -1]]), { 'content-type': 'application/json' })),
    );
    results.forEach((res, i) => {
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(JSON.parse(res.text).predictions, [[i, 0, i, 0]]);
    });
    const exposition = await (await fetch(`${server.url}/metrics`)).text();
    const m = '{model="fixed-batch"}';
    assert.equal(sample(exposition, `inferd_batch_size_rows_count${m}`), 24);
    assert.equal(sample(exposition, `inferd_batch_size_rows_sum${m}`), 24);
    const { models } = (await (await fetch(`${server.url}/models`)).json()) as { models: Array<{ batching: { maxBatchSize: number } }> };
    assert.equal(models[0]!.batching.maxBatchSize, 1);
  });
});
