/** `--processes 2`: two server processes on one port, one /ping, one /metrics, one drain. */
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MODELS, invoke } from '../helper.js';
import { freePort, spawnServer, waitUntilReady } from '../child.js';

const ROW = Array.from({ length: 20 }, (_, i) => i / 10);

function sample(exposition: string, series: string): number {
  const line = exposition.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `${series} is exposed`);
  return Number(line.slice(series.length + 1));
}

describe('several server processes', () => {
  it('serve one port, report one readiness and one set of metrics, and drain together', async () => {
    const port = await freePort();
    const child = await spawnServer(['dist/src/main.js', 'serve', '--processes', '2'], {
      SAGEMAKER_BIND_TO_PORT: String(port),
      INFERD_MODEL_DIR: MODELS.forest,
    }, port);
    try {
      await waitUntilReady(child);
      assert.match(child.output(), /all 2 server processes ready/);
      const results = await Promise.all(
        Array.from({ length: 40 }, () => invoke(child.url, `${ROW.join(',')}\n`, { 'content-type': 'text/csv' })),
      );
      assert.deepEqual(results.map((r) => r.status), Array(40).fill(200));

      const exposition = await (await fetch(`${child.url}/metrics`)).text();
      const m = '{model="churn-forest"}';
      assert.equal(sample(exposition, 'inferd_requests_total{model="churn-forest",status_class="2xx"}'), 40);
      assert.equal(sample(exposition, `inferd_rows_inferred_total${m}`), 40);
      assert.equal(sample(exposition, `inferd_workers${m}`), 2, 'one instance in each of the two processes');
      assert.equal(sample(exposition, 'inferd_loaded_models'), 1);
    } finally {
      child.process.kill('SIGTERM');
    }
    assert.deepEqual(await child.exited, { code: 0, signal: null });
    assert.match(child.output(), /stopping every server process/);
  });

  it('exits 1 when the processes cannot load the model', async () => {
    const broken = await mkdtemp(join(tmpdir(), 'inferd-broken-'));
    await writeFile(join(broken, 'model.onnx'), 'not an onnx file');
    const child = await spawnServer(['dist/src/main.js', 'serve', '--processes', '2', '--port', String(await freePort()), '--model-dir', broken], {});
    assert.equal((await child.exited).code, 1);
    assert.match(child.output(), /INFERD_ERR_MODEL_LOAD_FAILED/);
  });
});
