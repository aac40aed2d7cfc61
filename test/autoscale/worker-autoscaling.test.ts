/**
 * The worker autoscaler on the real slow model: a burst of concurrent requests grows the pool
 * and cuts queue waits (measured against a fixed one-worker server in the same run); a light
 * load afterwards brings it back to one worker; no request fails on the way.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { counterValue, until } from '../async/toolkit.js';
import { invoke, MODELS, startServer, type TestServer } from '../helper.js';
import { writeNpy } from '../npy.js';

const MODEL = 'slow-matmul';
/** 1,000 rows: about a tenth of a second of one core's work, sent in a millisecond. */
const body = writeNpy('<f4', [1000, 256], new Float32Array(1000 * 256).fill(0.5));
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

/** Mean queue wait, in seconds, of the requests answered between two scrapes. */
function meanQueueWaitS(before: string, after: string): number {
  const sum = (text: string) => counterValue(text, `inferd_queue_wait_seconds_sum{model="${MODEL}"}`);
  const count = (text: string) => counterValue(text, `inferd_queue_wait_seconds_count{model="${MODEL}"}`);
  return (sum(after) - sum(before)) / (count(after) - count(before));
}

/** `clients` loops, each sending `requests` requests one after another; every status, in order. */
async function burst(server: TestServer, clients: number, requests: number): Promise<number[]> {
  const loops = Array.from({ length: clients }, async () => {
    const statuses: number[] = [];
    for (let i = 0; i < requests; i += 1) statuses.push((await invoke(server.url, body, NPY)).status);
    return statuses;
  });
  return (await Promise.all(loops)).flat();
}

describe('worker autoscaling on a real model', () => {
  it('grows the pool under a burst (more workers, shorter queue waits) and shrinks it after, failing no request', async (t) => {
    const fixed = await startServer(MODELS.slow);
    t.after(() => fixed.http.close());
    const scaled = await startServer(MODELS.slow, { env: AUTOSCALED });
    t.after(() => scaled.http.close());
    assert.equal(scaled.runtime.stats().workers, 1);
    assert.deepEqual([scaled.runtime.model!.minInstances, scaled.runtime.model!.maxInstances], [1, 2]);

    // The same burst against one fixed worker, then against the autoscaled pool.
    const fixedBefore = await metricsText(fixed);
    const fixedStatuses = await burst(fixed, 6, 6);
    const fixedWaitS = meanQueueWaitS(fixedBefore, await metricsText(fixed));

    let peakWorkers = 0;
    const watch = setInterval(() => (peakWorkers = Math.max(peakWorkers, scaled.runtime.stats().workers)), 20);
    const scaledBefore = await metricsText(scaled);
    const scaledStatuses = await burst(scaled, 6, 6);
    const scaledAfter = await metricsText(scaled);
    clearInterval(watch);
    const scaledWaitS = meanQueueWaitS(scaledBefore, scaledAfter);

    assert.deepEqual([...fixedStatuses, ...scaledStatuses], Array(72).fill(200));
    assert.equal(peakWorkers, 2, 'the pool grew to its maximum');
    assert.ok(counterValue(scaledAfter, `inferd_autoscale_decisions_total{model="${MODEL}",action="scale_out",rule="above_target"}`) >= 1);
    assert.ok(
      scaledWaitS < fixedWaitS,
      `mean queue wait with autoscaling ${(scaledWaitS * 1000).toFixed(0)} ms, one fixed worker ${(fixedWaitS * 1000).toFixed(0)} ms`,
    );

    // A light load: one request at a time with pauses. The pool comes back to one worker while it runs.
    let light = true;
    const lightStatuses: number[] = [];
    const lightLoad = (async () => {
      while (light) {
        lightStatuses.push((await invoke(scaled.url, body, NPY)).status);
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    })();
    try {
      await until(() => (scaled.runtime.stats().workers === 1 ? true : undefined), 30_000, 'the pool to shrink to one worker');
      // Still serving on the one worker left.
      const count = lightStatuses.length;
      await until(() => (lightStatuses.length > count + 1 ? true : undefined), 10_000, 'requests after the shrink');
    } finally {
      light = false;
      await lightLoad;
    }
    assert.ok(lightStatuses.length >= 2);
    assert.deepEqual(lightStatuses, Array(lightStatuses.length).fill(200));
    const final = await metricsText(scaled);
    assert.ok(counterValue(final, `inferd_autoscale_decisions_total{model="${MODEL}",action="scale_in",rule="below_target"}`) >= 1);
    assert.equal(counterValue(final, `inferd_workers{model="${MODEL}"}`), 1);
  });

  it('starts at the minimum, and refuses a minimum above the maximum when inferd.json and the environment disagree', async (t) => {
    const atMinimum = await startServer(MODELS.slow, { env: { INFERD_MIN_INSTANCES: '2', INFERD_MAX_INSTANCES: '3' } });
    t.after(() => atMinimum.http.close());
    assert.deepEqual([atMinimum.runtime.stats().workers, atMinimum.runtime.model!.instances], [2, 2]);

    const dir = await mkdtemp(join(tmpdir(), 'inferd-autoscale-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await copyFile(join(MODELS.slow, 'model.onnx'), join(dir, 'model.onnx'));
    await writeFile(join(dir, 'inferd.json'), JSON.stringify({ maxInstances: 2 }));
    const refused = await startServer(dir, { env: { INFERD_MIN_INSTANCES: '3', INFERD_MAX_INSTANCES: '4' }, load: false });
    t.after(() => refused.http.close());
    await assert.rejects(refused.runtime.start(), { code: 'INFERD_ERR_MODEL_LOAD_FAILED', message: /minInstances \(3\) exceeds maxInstances \(2\)/ });
  });
});
