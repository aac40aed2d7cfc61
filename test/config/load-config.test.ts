import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { z } from 'zod';
import { BUNDLED_MODEL_DIR, ConfigError, loadConfig } from '../../src/config/load-config.js';
import { ConfigSchema, ENV_VARS } from '../../src/config/schema.js';

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));

/** Every TypeScript file under src/, relative to it. */
async function sourceFiles(): Promise<{ file: string; text: string }[]> {
  const files = (await readdir(SRC, { recursive: true })).filter((file) => file.endsWith('.ts')).sort();
  return Promise.all(files.map(async (file) => ({ file, text: await readFile(join(SRC, file), 'utf8') })));
}

/** The keys of an object schema, through the defaults and prefaults around it. */
function objectShape(schema: z.ZodType | undefined): Record<string, unknown> {
  let inner: unknown = schema;
  while (inner && !(inner as { shape?: unknown }).shape) inner = (inner as { def?: { innerType?: unknown } }).def?.innerType;
  return ((inner as { shape?: Record<string, unknown> } | undefined)?.shape) ?? {};
}

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

  it('follows a transform job under SAGEMAKER_BATCH: no 60 s timeout, MaxPayloadInMB=0 streams', () => {
    const table: [Record<string, string>, number, number][] = [
      [{}, 60, 6],
      [{ SAGEMAKER_BATCH: 'true' }, 3600, 6],
      [{ SAGEMAKER_BATCH: 'true', SAGEMAKER_MODEL_SERVER_TIMEOUT: '900', SAGEMAKER_MAX_PAYLOAD_IN_MB: '50' }, 900, 50],
      [{ SAGEMAKER_BATCH: 'true', SAGEMAKER_MAX_PAYLOAD_IN_MB: '0' }, 3600, 1024],
    ];
    for (const [env, timeoutS, payloadMb] of table) {
      const { server } = loadConfig({ env });
      assert.deepEqual([server.invocationTimeoutS, server.maxPayloadMb], [timeoutS, payloadMb], JSON.stringify(env));
    }
    assert.equal(loadConfig({ env: { INFERD_BATCH_RECORD_ERRORS: 'line' } }).batch.recordErrors, 'line');
    assert.ok(problemsOf(() => loadConfig({ env: { INFERD_BATCH_RECORD_ERRORS: 'skip' } })).some((p) => p.includes('INFERD_BATCH_RECORD_ERRORS')));
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
    ['INFERD_BATCH_RECORD_ERRORS', 'line', (c) => c.batch.recordErrors, 'line'],
    ['INFERD_MODEL_DIR', '/models/x', (c) => c.model.dir, '/models/x'],
    ['INFERD_REQUIRE_GPU', 'true', (c) => c.model.requireGpu, true],
    ['INFERD_MAX_QUEUE_SIZE', '12', (c) => c.batching.maxQueueSize, 12],
    ['INFERD_PROCESSES', '3', (c) => c.server.processes, 3],
    ['INFERD_CAPTURE_ENABLED', 'false', (c) => c.capture.enabled, false],
    ['INFERD_CAPTURE_DESTINATION', 's3://b/p', (c) => c.capture.destination, 's3://b/p'],
    ['INFERD_CAPTURE_SAMPLING_PERCENTAGE', '5', (c) => c.capture.samplingPercentage, 5],
    ['INFERD_CAPTURE_KMS_KEY_ID', 'alias/k', (c) => c.capture.kmsKeyId, 'alias/k'],
    ['INFERD_ENDPOINT_NAME', 'churn', (c) => c.capture.endpointName, 'churn'],
    ['INFERD_VARIANT_NAME', 'Blue', (c) => c.capture.variantName, 'Blue'],
    ['INFERD_CAPTURE_FLUSH_INTERVAL_MS', '500', (c) => c.capture.flushIntervalMs, 500],
    ['INFERD_CAPTURE_FLUSH_SIZE_BYTES', '2048', (c) => c.capture.flushSizeBytes, 2048],
    ['INFERD_CAPTURE_BUFFER_MAX_BYTES', '4096', (c) => c.capture.bufferMaxBytes, 4096],
    ['INFERD_CAPTURE_SPOOL_DIR', '/var/spool/x', (c) => c.capture.spoolDir, '/var/spool/x'],
    ['INFERD_CAPTURE_SPOOL_MAX_BYTES', '8192', (c) => c.capture.spoolMaxBytes, 8192],
    ['AWS_ENDPOINT_URL', 'http://127.0.0.1:9000', (c) => c.storage.s3Endpoint, 'http://127.0.0.1:9000'],
    ['AWS_ENDPOINT_URL_S3', 'http://127.0.0.1:9001', (c) => c.storage.s3Endpoint, 'http://127.0.0.1:9001'],
    ['AWS_REGION', 'eu-west-1', (c) => c.storage.region, 'eu-west-1'],
    ['INFERD_MAX_BATCH_SIZE', '1', (c) => c.batching.maxBatchSize, 1],
    ['INFERD_MAX_QUEUE_DELAY_MS', '0.5', (c) => c.batching.maxQueueDelayMs, 0.5],
    ['INFERD_ASYNC_OUTPUT_PATH', 's3://b/out', (c) => c.async.outputPath, 's3://b/out'],
    ['INFERD_ASYNC_FAILURE_PATH', '/srv/failures', (c) => c.async.failurePath, '/srv/failures'],
    ['INFERD_ASYNC_MAX_CONCURRENT_INVOCATIONS', '8', (c) => c.async.maxConcurrentInvocations, 8],
    ['INFERD_ASYNC_MAX_PAYLOAD_MB', '250', (c) => c.async.maxPayloadMb, 250],
    ['INFERD_ASYNC_SUCCESS_WEBHOOK', 'http://hooks:8000/ok', (c) => c.async.successWebhook, 'http://hooks:8000/ok'],
    ['INFERD_ASYNC_ERROR_WEBHOOK', 'http://hooks:8000/err', (c) => c.async.errorWebhook, 'http://hooks:8000/err'],
    ['INFERD_ASYNC_STATE_DIR', '/var/lib/inferd', (c) => c.async.stateDir, '/var/lib/inferd'],
    ['INFERD_ASYNC_INPUT_PATH', 's3://b/staged', (c) => c.async.inputPath, 's3://b/staged'],
    ['INFERD_ASYNC_REDIS_URL', 'redis://redis:6379', (c) => c.async.redisUrl, 'redis://redis:6379'],
    ['INFERD_ASYNC_REDIS_KEY_PREFIX', 'inferd:churn', (c) => c.async.redisKeyPrefix, 'inferd:churn'],
    ['INFERD_ASYNC_LEASE_S', '30', (c) => c.async.leaseS, 30],
    ['INFERD_ASYNC_RETENTION_H', '72', (c) => c.async.retentionH, 72],
    ['INFERD_MAX_INSTANCES', '4', (c) => c.autoscale.maxInstances, 4],
    ['INFERD_AUTOSCALE_TARGET_UTILIZATION', '0.5', (c) => c.autoscale.targetUtilization, 0.5],
    ['INFERD_AUTOSCALE_INTERVAL_MS', '250', (c) => c.autoscale.intervalMs, 250],
    ['INFERD_AUTOSCALE_WINDOW_S', '30', (c) => c.autoscale.windowS, 30],
    ['INFERD_AUTOSCALE_SCALE_IN_AFTER_S', '0', (c) => c.autoscale.scaleInAfterS, 0],
    ['INFERD_AUTOSCALE_SCALE_IN_COOLDOWN_S', '120', (c) => c.autoscale.scaleInCooldownS, 120],
    ['INFERD_AUTOSCALE_TARGET_CONCURRENCY', '8', (c) => c.autoscale.targetConcurrency, 8],
    ['SAGEMAKER_MULTI_MODEL', 'true', (c) => c.model.multiModel, true],
    ['INFERD_MODEL_REPOSITORY', 's3://models/prod', (c) => c.model.repository, 's3://models/prod'],
    ['INFERD_MODEL_CACHE_DIR', '/var/cache/inferd', (c) => c.model.cacheDir, '/var/cache/inferd'],
    ['INFERD_MODEL_MAX_UNPACKED_MB', '512', (c) => c.model.maxUnpackedMb, 512],
    ['INFERD_MODEL_MEMORY_BUDGET_MB', '2048', (c) => c.model.memoryBudgetMb, 2048],
    ['INFERD_MODEL_LOAD_WAIT_S', '5', (c) => c.model.loadWaitS, 5],
  ];
  for (const [name, value, read, expected] of envCases) {
    it(`${name}=${value}`, () => assert.equal(read(loadConfig({ env: { [name]: value } })), expected));
  }

  it('INFERD_PREFERRED_BATCH_SIZES=8,32', () => {
    assert.deepEqual(loadConfig({ env: { INFERD_PREFERRED_BATCH_SIZES: '8,32' } }).batching.preferredBatchSizes, [8, 32]);
  });

  it('takes capture modes and content types as lists, and a SageMaker DataCaptureConfig document', () => {
    const listed = loadConfig({
      env: { INFERD_CAPTURE_MODES: 'Input', INFERD_CAPTURE_CSV_CONTENT_TYPES: 'text/csv, text/plain', INFERD_CAPTURE_JSON_CONTENT_TYPES: 'application/json' },
    }).capture;
    assert.deepEqual([listed.modes, listed.csvContentTypes, listed.jsonContentTypes], [['Input'], ['text/csv', 'text/plain'], ['application/json']]);
    const document = JSON.stringify({
      InitialSamplingPercentage: 30,
      DestinationS3Uri: 's3://bucket/capture',
      KmsKeyId: 'alias/capture',
      CaptureOptions: [{ CaptureMode: 'InputAndOutput' }],
      CaptureContentTypeHeader: { CsvContentTypes: ['text/csv'], JsonContentTypes: ['application/json'] },
    });
    const capture = loadConfig({ env: { INFERD_DATA_CAPTURE_CONFIG: document, INFERD_CAPTURE_SAMPLING_PERCENTAGE: '40' } }).capture;
    assert.equal(capture.enabled, true);
    assert.equal(capture.destination, 's3://bucket/capture');
    assert.equal(capture.samplingPercentage, 40, 'a single variable overrides the document');
    assert.deepEqual(capture.modes, ['Input', 'Output']);
    assert.equal(capture.kmsKeyId, 'alias/capture');
    assert.match(problemsOf(() => loadConfig({ env: { INFERD_DATA_CAPTURE_CONFIG: '{"DestinationS3Uri": "s3://b"}' } })).join(), /INFERD_DATA_CAPTURE_CONFIG\.InitialSamplingPercentage/);
    assert.match(problemsOf(() => loadConfig({ env: { INFERD_CAPTURE_ENABLED: 'true' } })).join(), /capture\.destination: is required/);
  });

  it('serves no model by default with many models; preloads need a repository; a repository is not for SageMaker MME', () => {
    assert.equal(loadConfig({ env: { SAGEMAKER_MULTI_MODEL: 'true' } }).model.dir, undefined);
    assert.equal(loadConfig({ env: { INFERD_MODEL_REPOSITORY: '/srv/models' } }).model.dir, undefined);
    assert.equal(loadConfig({ env: { INFERD_MODEL_REPOSITORY: '/srv/models', INFERD_MODEL_DIR: '/m' } }).model.dir, '/m', 'a named model is served beside the repository');
    assert.deepEqual(loadConfig({ env: { INFERD_MODEL_REPOSITORY: '/srv/models', INFERD_PRELOAD_MODELS: 'a.tar.gz, b' } }).model.preload, ['a.tar.gz', 'b']);
    assert.match(problemsOf(() => loadConfig({ env: { INFERD_PRELOAD_MODELS: 'a' } })).join(), /INFERD_PRELOAD_MODELS: needs a model repository/);
    assert.match(
      problemsOf(() => loadConfig({ env: { SAGEMAKER_MULTI_MODEL: 'true', INFERD_MODEL_REPOSITORY: '/srv/models' } })).join(),
      /INFERD_MODEL_REPOSITORY: is for on-prem serving/,
    );
    assert.match(problemsOf(() => loadConfig({ env: { INFERD_MODEL_REPOSITORY: 'models' } })).join(), /INFERD_MODEL_REPOSITORY/);
    assert.match(problemsOf(() => loadConfig({ env: { SAGEMAKER_MULTI_MODEL: 'true', INFERD_PROCESSES: '2' } })).join(), /INFERD_PROCESSES: must be 1 under SAGEMAKER_MULTI_MODEL/);
  });

  it('takes async input prefixes and notification topics as lists; a Redis queue needs a shared input path', () => {
    const config = loadConfig({
      env: {
        INFERD_ASYNC_ALLOWED_INPUT_PREFIXES: 's3://in/a, /srv/payloads',
        INFERD_ASYNC_INCLUDE_RESPONSE_IN: 'SUCCESS_NOTIFICATION_TOPIC,ERROR_NOTIFICATION_TOPIC',
      },
    }).async;
    assert.deepEqual(config.allowedInputPrefixes, ['s3://in/a', '/srv/payloads']);
    assert.deepEqual(config.includeResponseIn, ['SUCCESS_NOTIFICATION_TOPIC', 'ERROR_NOTIFICATION_TOPIC']);
    assert.match(problemsOf(() => loadConfig({ env: { INFERD_ASYNC_ALLOWED_INPUT_PREFIXES: 'https://x/y' } })).join(), /async\.allowedInputPrefixes/);
    assert.match(
      problemsOf(() => loadConfig({ env: { INFERD_ASYNC_OUTPUT_PATH: 's3://b/out', INFERD_ASYNC_REDIS_URL: 'redis://r:6379' } })).join(),
      /async\.inputPath: is required with a Redis queue/,
    );
  });

  it('reads every environment variable named anywhere in src/, and nothing else reads one', async () => {
    // loadConfig reads ENV_VARS and its own two; a name anywhere else in the source (a read that
    // bypasses the schema, a message telling users to set a variable that was renamed) must be one.
    const read = new Set([...Object.keys(ENV_VARS), 'INFERD_CONFIG_FILE', 'INFERD_DATA_CAPTURE_CONFIG']);
    const sources = await sourceFiles();
    // Constants spelled like variables (SAGEMAKER_MODEL_DIR, a path) and error codes are not variables.
    const constants = new Set(sources.flatMap(({ text }) => [...text.matchAll(/\bconst ([A-Z][A-Z0-9_]*)\s*[=:]/g)].map((m) => m[1]!)));
    const unread = sources.flatMap(({ file, text }) =>
      [...text.matchAll(/\b(?:SAGEMAKER|INFERD|AWS)_[A-Z0-9_]+\b/g)]
        .map(([name]) => name)
        .filter((name) => !name.startsWith('INFERD_ERR_') && !constants.has(name) && !read.has(name))
        .map((name) => `${file}: ${name}`),
    );
    assert.deepEqual(unread, []);
    // Only loadConfig is handed the environment (comments may name it).
    const code = (text: string) => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
    const handedOn = sources.filter(({ text }) => /process\.env\b/.test(code(text))).map(({ file }) => file);
    assert.deepEqual(handedOn, ['main.ts']);
  });

  it('maps every environment variable to a setting of the schema', () => {
    const unmapped = Object.entries(ENV_VARS)
      .filter(([, [group, key]]) => !(key in objectShape(ConfigSchema.def.in.shape[group])))
      .map(([name, target]) => `${name} → ${target.join('.')}`);
    assert.deepEqual(unmapped, []);
  });

  it('takes a minimum of instances never above the maximum', () => {
    assert.equal(loadConfig({ env: { INFERD_MIN_INSTANCES: '2', INFERD_MAX_INSTANCES: '4' } }).autoscale.minInstances, 2);
    // Alone it may meet a maximum in inferd.json: the runtime checks the pair.
    assert.equal(loadConfig({ env: { INFERD_MIN_INSTANCES: '2' } }).autoscale.minInstances, 2);
    assert.match(
      problemsOf(() => loadConfig({ env: { INFERD_MIN_INSTANCES: '3', INFERD_MAX_INSTANCES: '2' } })).join('\n'),
      /autoscale\.minInstances .*must be at most maxInstances \(2\)/,
    );
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

  it('accepts only the response types it can produce as the default Accept', () => {
    assert.equal(loadConfig({ env: { SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT: 'Text/CSV; charset=utf-8' } }).server.defaultAccept, 'text/csv');
    assert.match(problemsOf(() => loadConfig({ env: { SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT: 'text/plain' } })).join(), /SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT/);
  });

  it('reports an unreadable or malformed file', async () => {
    assert.match(problemsOf(() => loadConfig({ configFile: '/nonexistent.json' })).join(), /nonexistent\.json/);
    const dir = await mkdtemp(join(tmpdir(), 'inferd-config-'));
    await writeFile(join(dir, 'bad.json'), '{');
    assert.match(problemsOf(() => loadConfig({ configFile: join(dir, 'bad.json') })).join(), /not valid JSON/);
    await writeFile(join(dir, 'null.json'), 'null');
    assert.match(problemsOf(() => loadConfig({ configFile: join(dir, 'null.json') })).join(), /must hold a JSON object/);
  });
});
