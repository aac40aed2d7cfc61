/**
 * The worker autoscaler on the real slow model: a burst of concurrent requests grows the pool,
 * and the new worker takes part of the burst; a trickle afterwards brings it back to one worker;
 * no request fails on the way. Only states and counts are checked, never speeds.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { counterValue, until } from '../async/toolkit.js';
import { defaultModel, invoke, MODELS, startServer, type TestServer } from '../helper.js';
import { writeNpy } from '../npy.js';

const MODEL = 'slow-matmul';
const series = (name: string) => `${name}{model="${MODEL}"}`;
const npy = (rows: number) => writeNpy('<f4', [rows, 256], new Float32Array(rows * 256).fill(0.5));
/** 1,000 rows: far more than a batch, so every request is a batch of its own. */
const heavy = npy(1000);
/** 10 rows: a sliver of a worker's time. */
const light = npy(10);
const NPY = { 'content-type': 'application/x-npy', accept: 'application/x-npy' };

const AUTOSCALED = {
  INFERD_MIN_INSTANCES: '1',
  INFERD_MAX_INSTANCES: '2',
  INFERD_AUTOSCALE_INTERVAL_MS: '200',
  INFERD_AUTOSCALE_WINDOW_S: '1',
  INFERD_AUTOSCALE_SCALE_IN_AFTER_S: '1',
  INFERD_AUTOSCALE_SCALE_IN_COOLDOWN_S: '1',
};

async function metricsText(server: TestServer): Promise<string> {
  return (await fetch(`${server.url}/metrics`)).text();
}

/**
 * Sends `body` from `clients` loops, each request after the previous one's answer (and `pauseMs`),
 * until `done` resolves; every status, in order of answer.
 */
async function loadUntil<T>(
  server: TestServer,
  body: Uint8Array,
  clients: number,
  pauseMs: number,
  done: (statuses: readonly number[]) => Promise<T>,
): Promise<{ statuses: number[]; value: T }> {
  const statuses: number[] = [];
  let running = true;
  const loops = Array.from({ length: clients }, async () => {
    while (running) {
      statuses.push((await invoke(server.url, body, NPY)).status);
      if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  });
  try {
    return { statuses, value: await done(statuses) };
  } finally {
    running = false;
    await Promise.all(loops);
  }
}

describe('worker autoscaling on a real model', () => {
  it('grows the pool under a burst, runs the burst on both workers, and shrinks it under a trickle, failing no request', async (t) => {
    const scaled = await startServer(MODELS.slow, { env: AUTOSCALED });
    t.after(() => scaled.http.close());
    assert.equal(defaultModel(scaled).stats.workers, 1);
    assert.deepEqual([defaultModel(scaled).info.minInstances, defaultModel(scaled).info.maxInstances], [1, 2]);

    // Six clients keep the one worker busy with a backlog behind it, until the pool has grown and
    // both workers are seen running batches at once: the new one takes part of the burst.
    const burst = await loadUntil(scaled, heavy, 6, 0, () =>
      until(
        async () => {
          const text = await metricsText(scaled);
          const both = counterValue(text, series('inferd_workers')) === 2 && counterValue(text, series('inferd_busy_workers')) === 2;
          return both ? text : undefined;
        },
        30_000,
        'two workers, both busy',
      ),
    );
    assert.ok(burst.statuses.length > 0);
    assert.deepEqual(burst.statuses, Array(burst.statuses.length).fill(200));
    assert.ok(counterValue(burst.value, `inferd_autoscale_decisions_total{model="${MODEL}",action="scale_out",rule="above_target"}`) >= 1);

    // A trickle: one small request at a time, with pauses. The pool comes back to one worker
    // while it runs, and that worker goes on answering.
    const trickle = await loadUntil(scaled, light, 1, 300, async (statuses) => {
      await until(() => (defaultModel(scaled).stats.workers === 1 ? true : undefined), 30_000, 'the pool to shrink to one worker');
      // The second answer from now was sent after the shrink.
      const atShrink = statuses.length;
      await until(() => (statuses.length >= atShrink + 2 ? true : undefined), 30_000, 'answers after the shrink');
    });
    assert.deepEqual(trickle.statuses, Array(trickle.statuses.length).fill(200));
    const final = await metricsText(scaled);
    assert.ok(counterValue(final, `inferd_autoscale_decisions_total{model="${MODEL}",action="scale_in",rule="below_target"}`) >= 1);
    assert.equal(counterValue(final, series('inferd_workers')), 1);
  });

  it('starts at the minimum, and refuses a minimum above the maximum when inferd.json and the environment disagree', async (t) => {
    const atMinimum = await startServer(MODELS.slow, { env: { INFERD_MIN_INSTANCES: '2', INFERD_MAX_INSTANCES: '3' } });
    t.after(() => atMinimum.http.close());
    assert.deepEqual([defaultModel(atMinimum).stats.workers, defaultModel(atMinimum).info.instances], [2, 2]);

    const dir = await mkdtemp(join(tmpdir(), 'inferd-autoscale-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await copyFile(join(MODELS.slow, 'model.onnx'), join(dir, 'model.onnx'));
    await writeFile(join(dir, 'inferd.json'), JSON.stringify({ maxInstances: 2 }));
    const refused = await startServer(dir, { env: { INFERD_MIN_INSTANCES: '3', INFERD_MAX_INSTANCES: '4' }, load: false });
    t.after(() => refused.http.close());
    await assert.rejects(refused.start(), { code: 'INFERD_ERR_MODEL_LOAD_FAILED', message: /minInstances \(3\) exceeds maxInstances \(2\)/ });
  });
});
