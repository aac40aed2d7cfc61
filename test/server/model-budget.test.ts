/**
 * The memory budget on-prem, against the real server and real models: a model with requests in
 * flight is never evicted; a load that needs its room waits until it is idle, then evicts it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { counterValue, until } from '../async/toolkit.js';
import { MODELS, copyModel, invoke, startServer } from '../helper.js';
import { writeNpy } from '../npy.js';

const metricsOf = async (url: string) => (await fetch(`${url}/metrics`)).text();

it('waits for a busy model to become idle before evicting it: none of its requests fails, and the new model then answers', async (t) => {
  const repository = await mkdtemp(join(tmpdir(), 'inferd-budget-'));
  t.after(() => rm(repository, { recursive: true, force: true }));
  // The budget holds one of them.
  await copyModel(MODELS.slow, { memoryMb: 30 }, join(repository, 'slow'));
  await copyModel(MODELS.forest, { memoryMb: 30 }, join(repository, 'forest'));
  const server = await startServer(undefined, {
    env: { INFERD_MODEL_REPOSITORY: repository, INFERD_MODEL_CACHE_DIR: join(repository, '.cache'), INFERD_MODEL_MEMORY_BUDGET_MB: '40' },
  });
  t.after(() => server.http.close());

  const order: string[] = [];
  // Loaded first, so that the heavy requests below all reach a ready model at once.
  const warm = await invoke(server.url, JSON.stringify({ instances: [Array(256).fill(0)] }), { 'content-type': 'application/json', 'x-amzn-sagemaker-target-model': 'slow' });
  assert.equal(warm.status, 200, warm.text);
  // 2,000 rows each: most of a second of work, so the ten stay in the server a while.
  const heavy = writeNpy('<f4', [2000, 256], new Float32Array(2000 * 256).fill(0.5));
  const slowRequests = Array.from({ length: 10 }, async () => {
    const res = await invoke(server.url, heavy, { 'content-type': 'application/x-npy', accept: 'application/x-npy', 'x-amzn-sagemaker-target-model': 'slow' });
    order.push(`slow ${res.status}`);
  });
  // Every one of them is in the server (counted from its arrival) before the other model is asked for.
  await until(async () => (counterValue(await metricsOf(server.url), 'inferd_concurrent_requests') >= 10 ? true : undefined), 30_000, 'the slow requests in the server');

  const forest = await invoke(server.url, `${Array(20).fill(0.1).join(',')}\n`, { 'content-type': 'text/csv', 'x-amzn-sagemaker-target-model': 'forest' });
  order.push(`forest ${forest.status}`);
  await Promise.all(slowRequests);

  assert.equal(forest.status, 200, forest.text);
  assert.deepEqual(order.slice(0, 10), Array(10).fill('slow 200'), 'every request of the busy model was answered before its room was taken');
  assert.equal(order[10], 'forest 200');
  const text = await metricsOf(server.url);
  assert.equal(counterValue(text, 'inferd_model_evictions_total{model="slow"}'), 1);
  assert.equal(counterValue(text, 'inferd_loaded_models'), 1);
});
