import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BUNDLED_MODEL_DIR, ConfigError, loadConfig } from '../../src/config/load-config.js';
import { ENV_VARS } from '../../src/config/schema.js';

async function configFile(content: unknown): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), 'inferd-config-')), 'config.json');
  await writeFile(path, JSON.stringify(content));
  return path;
}

function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('loadConfig', () => {
  it('has SageMaker defaults', () => {
    const config = loadConfig({});
    assert.equal(config.server.port, 8080);
    assert.equal(config.server.host, '0.0.0.0');
    assert.equal(config.server.maxPayloadMb, 6);
    assert.equal(config.server.invocationTimeoutS, 60);
    assert.equal(config.server.defaultAccept, 'application/json');
    assert.equal(config.batch.strategy, 'MULTI_RECORD');
    assert.equal(config.model.dir, BUNDLED_MODEL_DIR);
    assert.ok(Object.isFrozen(config.server));
  });

  it('layers defaults < file < environment < CLI', async () => {
    const file = await configFile({ server: { port: 1000, maxPayloadMb: 2 }, batching: { maxQueueSize: 9 } });
    const config = loadConfig({
      configFile: file,
      env: { SAGEMAKER_BIND_TO_PORT: '2000', SAGEMAKER_MAX_PAYLOAD_IN_MB: '3' },
      flags: { port: '3000' },
    });
    assert.equal(config.server.port, 3000);
    assert.equal(config.server.maxPayloadMb, 3);
    assert.equal(config.batching.maxQueueSize, 9);
    assert.equal(loadConfig({ configFile: file }).server.port, 1000);
    assert.equal(loadConfig({ env: { INFERD_CONFIG_FILE: file } }).server.port, 1000);
  });

  const envCases: Array<[string, string, (c: ReturnType<typeof loadConfig>) => unknown, unknown]> = [
    ['SAGEMAKER_BIND_TO_PORT', '9090', (c) => c.server.port, 9090],
    ['SAGEMAKER_SAFE_PORT_RANGE', '20000-20999', (c) => c.server.safePortRange, '20000-20999'],
    ['SAGEMAKER_MAX_PAYLOAD_IN_MB', '100', (c) => c.server.maxPayloadMb, 100],
    ['SAGEMAKER_MODEL_SERVER_TIMEOUT', '120', (c) => c.server.invocationTimeoutS, 120],
    ['SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT', 'text/csv', (c) => c.server.defaultAccept, 'text/csv'],
    ['SAGEMAKER_CONTAINER_LOG_LEVEL', '20', (c) => c.server.logLevel, 'info'],
    ['SAGEMAKER_CONTAINER_LOG_LEVEL', 'WARNING', (c) => c.server.logLevel, 'warn'],
    ['SAGEMAKER_MODEL_SERVER_WORKERS', '3', (c) => c.model.instances, 3],
    ['SAGEMAKER_BATCH', 'true', (c) => c.batch.enabled, true],
    ['SAGEMAKER_BATCH_STRATEGY', 'SINGLE_RECORD', (c) => c.batch.strategy, 'SINGLE_RECORD'],
    ['SAGEMAKER_MAX_CONCURRENT_TRANSFORMS', '4', (c) => c.batch.maxConcurrentTransforms, 4],
    ['INFERD_MODEL_DIR', '/models/x', (c) => c.model.dir, '/models/x'],
    ['INFERD_REQUIRE_GPU', 'true', (c) => c.model.requireGpu, true],
    ['INFERD_MAX_QUEUE_SIZE', '12', (c) => c.batching.maxQueueSize, 12],
    ['INFERD_PROCESSES', '3', (c) => c.server.processes, 3],
    ['INFERD_MAX_BATCH_SIZE', '1', (c) => c.batching.maxBatchSize, 1],
    ['INFERD_MAX_QUEUE_DELAY_MS', '0.5', (c) => c.batching.maxQueueDelayMs, 0.5],
  ];
  for (const [name, value, read, expected] of envCases) {
    it(`${name}=${value}`, () => assert.equal(read(loadConfig({ env: { [name]: value } })), expected));
  }

  it('INFERD_PREFERRED_BATCH_SIZES=8,32', () => {
    assert.deepEqual(loadConfig({ env: { INFERD_PREFERRED_BATCH_SIZES: '8,32' } }).batching.preferredBatchSizes, [8, 32]);
  });

  it('maps every documented environment variable', () => {
    const tested = new Set([...envCases.map(([name]) => name), 'INFERD_PREFERRED_BATCH_SIZES']);
    for (const name of Object.keys(ENV_VARS).filter((n) => !['INFERD_HOST', 'INFERD_SHUTDOWN_TIMEOUT_S'].includes(n))) {
      assert.ok(tested.has(name), `${name} has a case above`);
    }
  });

  it('lists every problem with the key that caused it', () => {
    const problems = problemsOf(() =>
      loadConfig({
        env: { SAGEMAKER_BIND_TO_PORT: '99999', SAGEMAKER_MODEL_SERVER_WORKERS: 'many', SAGEMAKER_SAFE_PORT_RANGE: '9000' },
        flags: { 'model-dir': '' },
      }),
    );
    assert.equal(problems.length, 4, problems.join('\n'));
    assert.match(problems.join('\n'), /server\.port \/ SAGEMAKER_BIND_TO_PORT/);
    assert.match(problems.join('\n'), /model\.instances \/ SAGEMAKER_MODEL_SERVER_WORKERS/);
    assert.match(problems.join('\n'), /server\.safePortRange/);
    assert.match(problems.join('\n'), /model\.dir \/ --model-dir/);
    assert.match(problemsOf(() => loadConfig({ env: { SAGEMAKER_SAFE_PORT_RANGE: '9000-8000' } })).join(), /ascending/);
  });

  it('rejects unknown keys in the file (typos) but ignores unknown environment variables', async () => {
    const file = await configFile({ server: { prot: 80 } });
    assert.match(problemsOf(() => loadConfig({ configFile: file })).join(), /prot/);
    assert.equal(loadConfig({ env: { INFERD_UNKNOWN: 'x', HOME: '/root' } }).server.port, 8080);
  });

  it('reports an unreadable or malformed file', async () => {
    assert.match(problemsOf(() => loadConfig({ configFile: '/nonexistent.json' })).join(), /nonexistent\.json/);
    const dir = await mkdtemp(join(tmpdir(), 'inferd-config-'));
    await writeFile(join(dir, 'bad.json'), '{');
    assert.match(problemsOf(() => loadConfig({ configFile: join(dir, 'bad.json') })).join(), /not valid JSON/);
  });
});
