/**
 * A client that leaves while its request waits in the queue: the request is dropped before it
 * reaches a worker, and nothing else is harmed. Against the real server and the slow model, whose
 * one long request holds the worker while the others queue behind it.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, it } from 'node:test';
import { MODELS, invoke, startServer, type TestServer } from '../helper.js';
import { writeNpy } from '../npy.js';
import { counterValue, until } from '../async/toolkit.js';

const NPY = { 'content-type': 'application/x-npy', accept: 'application/x-npy' };
const slowNpy = (rows: number) => writeNpy('<f4', [rows, 256], new Float32Array(rows * 256).fill(0.25));
const ROWS = 'inferd_rows_inferred_total{model="slow-matmul"}';

let slow: TestServer;
before(async () => {
  slow = await startServer(MODELS.slow, { env: { SAGEMAKER_MAX_PAYLOAD_IN_MB: '32' } });
});
after(() => slow?.http.close());

const metrics = async () => (await fetch(`${slow.url}/metrics`)).text();
const held = (concurrent: number, queued: number) => async () => {
  const exposition = await metrics();
  const now = [counterValue(exposition, 'inferd_concurrent_requests'), counterValue(exposition, 'inferd_queued_requests{model="slow-matmul"}')];
  return now[0] === concurrent && now[1] === queued ? true : undefined;
};

it('drops a queued request whose client leaves: it never runs, and the requests around it are answered', async () => {
  const rowsBefore = counterValue(await metrics(), ROWS);
  const blocker = invoke(slow.url, slowNpy(24_000), NPY);
  await until(async () => (counterValue(await metrics(), 'inferd_busy_workers{model="slow-matmul"}') === 1 ? true : undefined), 20_000, 'the long request to run');
  // One at a time: sent together they would be merged into one batch in the second slot.
  const second = invoke(slow.url, slowNpy(1), NPY);
  await until(held(2, 0), 20_000, 'the second request to take the other batch slot');

  const leaving = request(`${slow.url}/invocations`, { method: 'POST', headers: NPY });
  leaving.on('error', () => {});
  leaving.end(Buffer.from(slowNpy(3)));
  await until(held(3, 1), 20_000, 'the third request to queue');
  leaving.destroy();
  await until(held(2, 1), 20_000, 'the server to see the client leave');

  assert.deepEqual((await Promise.all([blocker, second])).map((answer) => answer.status), [200, 200]);
  await until(held(0, 0), 20_000, 'the queue to empty');
  assert.equal(counterValue(await metrics(), ROWS) - rowsBefore, 24_001, 'the 3 rows of the request whose client left never ran');
  assert.equal((await invoke(slow.url, slowNpy(1), NPY)).status, 200);
});
