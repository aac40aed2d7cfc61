/**
 * Every line the server writes is JSON, Node's own warnings included: the AWS SDK warns about
 * Node versions it will stop supporting as soon as an S3 client is made (capture to S3 here).
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { MODELS } from '../helper.js';
import { freePort, spawnServer, waitUntilReady } from '../child.js';

it('logs only JSON lines, Node warnings included, with S3 configured', async () => {
  const port = await freePort();
  const child = await spawnServer(
    ['dist/src/main.js', 'serve'],
    {
      SAGEMAKER_BIND_TO_PORT: String(port),
      INFERD_MODEL_DIR: MODELS.forest,
      INFERD_CAPTURE_ENABLED: 'true',
      // Nothing listens there: the client is made, and capture only spools.
      INFERD_CAPTURE_DESTINATION: 's3://bucket/capture',
      AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      INFERD_CAPTURE_SPOOL_DIR: await mkdtemp(join(tmpdir(), 'inferd-spool-')),
    },
    port,
  );
  try {
    await waitUntilReady(child);
  } finally {
    child.process.kill('SIGTERM');
  }
  assert.deepEqual(await child.exited, { code: 0, signal: null });
  const lines = child.output().split('\n').filter((line) => line.trim() !== '');
  for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `not a JSON line: ${line}`);
  const warnings = lines.map((line) => JSON.parse(line) as { level: number; msg: string; warning?: { name: string } }).filter((entry) => entry.warning);
  // The SDK warns on Node < 22 only.
  if (Number(process.versions.node.split('.')[0]) < 22) {
    assert.ok(warnings.some((entry) => entry.msg.includes('NodeVersionSupportWarning') && entry.level === 40), child.output());
  }
});
