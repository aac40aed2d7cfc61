/**
 * The one configuration schema. Every setting has a default and a description; the table in
 * docs/configuration.md is generated from this file (`npm run docs`) and a test fails when the
 * committed table is stale. Sources, later winning: defaults < JSON file < environment < CLI.
 */
import { availableParallelism } from 'node:os';
import { z } from 'zod';

/** Node's timers overflow past 2^31 - 1 ms (and then fire at once). */
const MAX_TIMER_S = 2_147_483;

const seconds = (description: string, fallback: number) =>
  z.coerce.number().positive().max(MAX_TIMER_S).default(fallback).describe(description);

/** `SAGEMAKER_CONTAINER_LOG_LEVEL` is numeric in SageMaker (Python logging levels); names work too. */
const PYTHON_LOG_LEVELS: Record<string, string> = { '10': 'debug', '20': 'info', '30': 'warn', '40': 'error', '50': 'fatal' };
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const logLevel = z.preprocess(
  (value) => {
    if (typeof value !== 'string' && typeof value !== 'number') return value;
    const text = String(value).trim().toLowerCase();
    return PYTHON_LOG_LEVELS[text] ?? (text === 'warning' ? 'warn' : text === 'critical' ? 'fatal' : text);
  },
  z.enum(LOG_LEVELS),
);

const booleanFlag = z.preprocess((value) => {
  if (typeof value !== 'string') return value;
  const text = value.trim().toLowerCase();
  if (['true', '1', 'yes'].includes(text)) return true;
  if (['false', '0', 'no', ''].includes(text)) return false;
  return value;
}, z.boolean());

/** A list from a comma-separated string (environment) or an array (file). */
const listOf = <T extends z.ZodType>(item: T) =>
  z.preprocess(
    (value) => (typeof value === 'string' ? value.split(',').map((part) => part.trim()).filter(Boolean) : value),
    z.array(item),
  );

/** `s3://bucket/prefix`, `file:///path` or an absolute path. */
const location = z.string().regex(/^(s3:\/\/[^/]+|file:\/\/\/|\/)/, 'must be s3://bucket/prefix, file:///path or an absolute path');

export const ConfigSchema = z
  .object({
    server: z
      .object({
        port: z.coerce.number().int().min(0).max(65535).default(8080).describe('TCP port to serve on (bound on `host`); 0 picks a free one.'),
        host: z.string().min(1).default('0.0.0.0').describe('Interface to bind.'),
        safePortRange: z
          .string()
          .regex(/^\d{1,5}-\d{1,5}$/, 'must look like "XXXX-YYYY"')
          .optional()
          .describe('Ports SageMaker reserves for the container\'s internal listeners ("XXXX-YYYY"); inferd needs none, it is only validated.'),
        maxPayloadMb: z.coerce
          .number()
          .min(0)
          .max(1024)
          // SageMaker's MaxPayloadInMB=0 asks for whole objects streamed: no limit of our own but the cap.
          .transform((mb) => (mb === 0 ? 1024 : mb))
          .default(6)
          .describe('Largest request body, in MiB; larger bodies get 413. 0 (SageMaker batch streaming): 1024.'),
        invocationTimeoutS: z.coerce
          .number()
          .positive()
          .max(MAX_TIMER_S)
          .optional()
          .describe('Longest time an invocation may take, queueing included; then 504. Unset: 60, or 3600 under `SAGEMAKER_BATCH` or with async on (the job\'s `InvocationsTimeoutInSeconds`, or the request\'s `InvocationTimeoutSeconds`, governs).'),
        defaultAccept: z
          .preprocess(
            (value) => (typeof value === 'string' ? value.split(';', 1)[0]!.trim().toLowerCase() : value),
            z.enum(['application/json', 'application/jsonlines', 'application/x-npy', 'text/csv']),
          )
          .default('application/json')
          .describe('Response type when `Accept` is absent or `*/*`.'),
        logLevel: logLevel.default('info').describe('Log level: trace, debug, info, warn, error, fatal, silent, or SageMaker\'s numeric 10-50.'),
        processes: z
          .preprocess(
            (value) => (String(value).trim().toLowerCase() === 'auto' ? Math.max(1, Math.floor(availableParallelism() / 2)) : value),
            z.coerce.number().int().min(1).max(256),
          )
          .default(1)
          .describe('Server processes sharing the port (node:cluster), each with its own batchers and instances; `auto`: cores / 2.'),
        shutdownTimeoutS: seconds('Longest drain on SIGTERM before the process exits anyway (SageMaker kills at 30 s).', 25),
        drainIdleGraceMs: z.coerce
          .number()
          .int()
          .min(0)
          .max(60_000)
          .default(1000)
          .describe(
            'On SIGTERM, how long requests are answered 503 on connections kept open before the listener closes, and at most how long idle connections then stay before they close (docs/runtime.md, Shutdown).',
          ),
        tlsCertFile: z
          .string()
          .min(1)
          .optional()
          .describe('PEM certificate (with its chain) to serve HTTPS with, TLS 1.2 at least; needs `tlsKeyFile`. Read at start and again on SIGHUP (docs/http-api.md, HTTPS).'),
        tlsKeyFile: z.string().min(1).optional().describe('PEM private key of `tlsCertFile`; needs `tlsCertFile`.'),
        tlsClientCaFile: z
          .string()
          .min(1)
          .optional()
          .describe('PEM CA certificates for mutual TLS: every client must present a certificate one of them signed. Needs `tlsCertFile`.'),
      })
      .strict()
      .prefault({}),
    model: z
      .object({
        dir: z
          .string()
          .min(1)
          .optional()
          .describe('Model directory; unset: `/opt/ml/model` when it exists, else the bundled example `models/churn-forest` (none with `SAGEMAKER_MULTI_MODEL` or a repository).'),
        instances: z.coerce
          .number()
          .int()
          .min(1)
          .max(256)
          .optional()
          .describe(
            'Model instances: worker threads with one ONNX Runtime session each. Unset: cores / (processes × intraOpNumThreads) on CPU (at least 1; a batch job, in-process transform or `SAGEMAKER_BATCH`, keeps a core for its parser), 2 on CUDA. `inferd.json` overrides.',
          ),
        requireGpu: booleanFlag.default(false).describe('Fail startup instead of falling back to CPU when the CUDA provider cannot load.'),
        multiModel: booleanFlag
          .default(false)
          .describe('SageMaker multi-model endpoint: no model at start; SageMaker loads and unloads them through `/models` (docs/many-models.md).'),
        repository: location
          .optional()
          .describe('Model repository (`s3://bucket/prefix` or a directory): `X-Amzn-SageMaker-Target-Model` names a model directory or `model.tar.gz` under it, loaded on first use.'),
        preload: listOf(z.string().min(1))
          .default([])
          .describe('Repository models loaded before `/ping` is ready, comma-separated `TargetModel` paths.'),
        cacheDir: z.string().min(1).default('/tmp/inferd/models').describe('Local directory where repository archives are unpacked and S3 models downloaded.'),
        maxUnpackedMb: z.coerce.number().positive().default(10_240).describe('Largest model a repository download or archive may unpack to, in MiB.'),
        memoryBudgetMb: z.coerce
          .number()
          .positive()
          .optional()
          .describe('Bound on the loaded models\' footprints, in MiB: on-prem the least recently used idle models are evicted to make room; under `SAGEMAKER_MULTI_MODEL` a load that does not fit answers 507. Unset: no bound.'),
        loadWaitS: seconds('How long a request waits for its model to load before it is answered 429 (`ModelNotReadyException`) while loading goes on; SageMaker waits 60 s.', 60),
      })
      .strict()
      .prefault({}),
    batching: z
      .object({
        maxBatchSize: z.coerce
          .number()
          .int()
          .min(1)
          // Not 64: a request of 64 rows was then a batch of its own, and each batch costs two
          // wake-ups between threads (1.7x the requests/s of 64-row JSON at 256, bench of 2026-12-05).
          .default(256)
          .describe('Most rows merged into one batch (rows, not requests); 1 turns batching off. `inferd.json` overrides.'),
        maxQueueDelayMs: z.coerce
          .number()
          .min(0)
          .default(2)
          .describe('Longest a batch is held for more requests, from its oldest request, while other instances are busy.'),
        preferredBatchSizes: z
          .preprocess(
            (value) => (typeof value === 'string' ? value.split(',').filter((s) => s.trim() !== '').map(Number) : value),
            z.array(z.number().int().min(1)),
          )
          .default([])
          .describe('Batch sizes (rows) dispatched as soon as they are reached, comma-separated.'),
        maxQueueSize: z.coerce
          .number()
          .int()
          .min(1)
          .default(256)
          .describe('Requests that may wait per model; beyond it, 503 with `Retry-After`.'),
      })
      .strict()
      .prefault({}),
    capture: z
      .object({
        enabled: booleanFlag.default(false).describe('Write sampled request/response pairs in SageMaker Data Capture\'s format.'),
        destination: location
          .optional()
          .describe('Capture root: `s3://bucket/prefix`, `file:///path` or an absolute path.'),
        samplingPercentage: z.coerce.number().min(0).max(100).default(20).describe('Share of invocations captured, 0-100.'),
        modes: listOf(z.enum(['Input', 'Output']))
          .refine((modes) => modes.length > 0, 'name Input, Output or both')
          .default(['Input', 'Output'])
          .describe('What to capture: `Input`, `Output` or both, comma-separated.'),
        csvContentTypes: listOf(z.string().min(1))
          .default(['text/csv'])
          .describe('Content types stored as CSV text; types in neither list are stored base64.'),
        jsonContentTypes: listOf(z.string().min(1))
          .default(['application/json', 'application/jsonlines'])
          .describe('Content types stored as JSON text.'),
        kmsKeyId: z.string().min(1).optional().describe('SSE-KMS key for captured objects.'),
        endpointName: z.string().min(1).default('inferd').describe('Endpoint name in the capture key layout.'),
        variantName: z.string().min(1).default('AllTraffic').describe('Variant name in the capture key layout.'),
        flushIntervalMs: z.coerce.number().int().min(10).default(10_000).describe('Longest a record waits in memory before its object is written.'),
        flushSizeBytes: z.coerce.number().int().min(1024).default(8 * 1024 * 1024).describe('Buffered bytes that trigger a write.'),
        bufferMaxBytes: z.coerce
          .number()
          .int()
          .min(1024)
          .default(64 * 1024 * 1024)
          .describe('In-memory buffer bound; past it (and a full spool) records are dropped and counted.'),
        spoolDir: z.string().min(1).default('/tmp/inferd/capture-spool').describe('Local directory holding objects that could not be uploaded yet.'),
        spoolMaxBytes: z.coerce.number().int().min(1024).default(1024 * 1024 * 1024).describe('Spool bound.'),
      })
      .strict()
      .prefault({}),
    storage: z
      .object({
        s3Endpoint: z.url().optional().describe('S3-compatible endpoint; when set, path-style addressing is used.'),
        region: z.string().min(1).optional().describe('AWS region; unset, the AWS SDK\'s own chain decides.'),
      })
      .strict()
      .prefault({}),
    batch: z
      .object({
        enabled: booleanFlag.default(false).describe('Set by SageMaker inside a batch transform job.'),
        strategy: z
          .enum(['SINGLE_RECORD', 'MULTI_RECORD'])
          .default('MULTI_RECORD')
          .describe('`BatchStrategy` announced on `/execution-parameters`.'),
        maxConcurrentTransforms: z.coerce
          .number()
          .int()
          .min(1)
          .optional()
          .describe('`MaxConcurrentTransforms` announced on `/execution-parameters`; unset: the worker count.'),
        recordErrors: z
          .enum(['fail', 'line'])
          .default('fail')
          .describe('Under `SAGEMAKER_BATCH`: `fail` answers a bad record with a 4xx for its whole request; `line` writes an error line in its place and answers the others.'),
      })
      .strict()
      .prefault({}),
    async: z
      .object({
        outputPath: location.optional().describe('Where async answers go (`S3OutputPath`): `s3://bucket/prefix` or a local directory. Setting it turns async inference on.'),
        failurePath: location.optional().describe('Where failed requests\' error bodies go (`S3FailurePath`); unset: `<outputPath>/failures`.'),
        allowedInputPrefixes: listOf(location)
          .default([])
          .describe('`X-Amzn-SageMaker-InputLocation` must start with one of these (`s3://bucket/prefix`, local directories), comma-separated; empty: inline bodies only.'),
        maxConcurrentInvocations: z.coerce
          .number()
          .int()
          .min(0)
          .max(1000)
          .optional()
          .describe('Requests run at once by this instance (`MaxConcurrentInvocationsPerInstance`); unset: 32 per model instance (at `maxInstances` with autoscaling), each holding its payload while it runs. 0: accept submissions only, for a front instance while the workers scale to zero.'),
        maxPayloadMb: z.coerce
          .number()
          .positive()
          .max(1024)
          .default(100)
          .describe('Largest payload read whole (JSON, NPY...); CSV and JSON Lines stream record by record up to 1024 MiB. Larger: 413.'),
        successWebhook: z.url().optional().describe('URL that gets SageMaker\'s success notification JSON by POST (`SuccessTopic`).'),
        errorWebhook: z.url().optional().describe('URL that gets SageMaker\'s failure notification JSON by POST (`ErrorTopic`).'),
        includeResponseIn: listOf(z.enum(['SUCCESS_NOTIFICATION_TOPIC', 'ERROR_NOTIFICATION_TOPIC']))
          .default([])
          .describe('Notifications that carry the response body when it is at most 128 KB (`IncludeInferenceResponseIn`), comma-separated.'),
        stateDir: z.string().min(1).default('/tmp/inferd/async').describe('Local directory of the embedded queue (SQLite) and of staged inline payloads; mount a volume here.'),
        inputPath: location
          .optional()
          .describe('Where inline payloads over 64 KiB are staged until they have run (smaller ones are held in the queue record); unset: `<stateDir>/payloads`. Required with a Redis queue (all instances must read it).'),
        redisUrl: z
          .string()
          .regex(/^rediss?:\/\//, 'must be redis://host:port or rediss://...')
          .optional()
          .describe('Shares one backlog between instances through Redis Streams instead of the embedded queue.'),
        redisKeyPrefix: z.string().min(1).default('inferd:async').describe('Prefix of every Redis key; one per endpoint sharing a Redis.'),
        leaseS: seconds('How long a running request stays with its instance without a heartbeat; after it, another instance (or this one, restarted) runs it.', 10),
        retentionH: z.coerce.number().positive().default(24).describe('Hours a finished request is kept for status queries and duplicate inference ids.'),
      })
      .strict()
      .prefault({}),
    autoscale: z
      .object({
        minInstances: z.coerce
          .number()
          .int()
          .min(1)
          .max(256)
          .optional()
          .describe('Fewest model instances while the pool follows load; unset: 1. Needs a `maxInstances` (here or in `inferd.json`). `inferd.json` overrides.'),
        maxInstances: z.coerce
          .number()
          .int()
          .min(1)
          .max(256)
          .optional()
          .describe('Most model instances, per server process; setting it turns worker autoscaling on (the pool starts at `instances`, or `minInstances`). `inferd.json` overrides.'),
        targetUtilization: z.coerce
          .number()
          .positive()
          .max(4)
          .default(0.7)
          .describe('Work per instance the pool aims at: busy workers plus queued batches, per instance (1: every worker always busy).'),
        intervalMs: z.coerce.number().int().min(50).max(60_000).default(1000).describe('How often the worker autoscaler samples the runtime and decides.'),
        windowS: seconds('The look-back: decisions use the mean load over this many seconds.', 10),
        scaleInAfterS: z.coerce
          .number()
          .min(0)
          .max(MAX_TIMER_S)
          .default(30)
          .describe('Seconds the load must stay under the target before an instance is removed.'),
        scaleInCooldownS: z.coerce.number().min(0).max(MAX_TIMER_S).default(30).describe('Seconds between two removals, and after an addition before a removal.'),
        targetConcurrency: z.coerce
          .number()
          .positive()
          .default(32)
          .describe('Concurrent requests one instance should carry; `inferd_desired_replicas` is the instance count this load calls for at it (see `deploy/`).'),
      })
      .strict()
      .prefault({}),
    auth: z
      .object({
        sigv4Credentials: z
          .string()
          .min(1)
          .optional()
          .describe('JSON file of SigV4 access keys (`{"keys": [{"accessKeyId", "secretAccessKey", "models", "routes"?}]}`) verified on the runtime API routes (`/endpoints/...`); read at start (docs/http-api.md, Authentication).'),
        tokens: z
          .string()
          .min(1)
          .optional()
          .describe('JSON file of bearer tokens, as SHA-256 hex digests with their scopes (`{"tokens": [{"sha256", "scopes": ["invoke", "manage", "metrics"]}]}`), for every other route but `/ping`; read at start.'),
        sagemaker: booleanFlag
          .optional()
          .describe('Whether SageMaker is the caller of the container contract (`/ping`, `/invocations`, `/models`, `/metrics`, `/execution-parameters`), which it calls without credentials. Unset: true under `SAGEMAKER_MULTI_MODEL`, `SAGEMAKER_BATCH` or `SAGEMAKER_SAFE_PORT_RANGE`.'),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((config, ctx) => {
    const range = config.server.safePortRange?.split('-').map(Number);
    if (range && (range[0]! > range[1]! || range[1]! > 65535)) {
      ctx.addIssue({ code: 'custom', path: ['server', 'safePortRange'], message: 'must be an ascending range of ports' });
    }
    if (config.async.redisUrl !== undefined && config.async.outputPath !== undefined && config.async.inputPath === undefined) {
      ctx.addIssue({ code: 'custom', path: ['async', 'inputPath'], message: 'is required with a Redis queue: every instance must read staged inline payloads' });
    }
    // A minimum alone may meet a maximum from inferd.json: the runtime checks the pair it resolves.
    const { minInstances, maxInstances } = config.autoscale;
    if (minInstances !== undefined && maxInstances !== undefined && minInstances > maxInstances) {
      ctx.addIssue({ code: 'custom', path: ['autoscale', 'minInstances'], message: `must be at most maxInstances (${maxInstances})` });
    }
    if (config.model.multiModel && config.model.repository !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['model', 'repository'], message: 'is for on-prem serving; under SAGEMAKER_MULTI_MODEL, SageMaker loads the models' });
    }
    if (config.model.multiModel && config.server.processes > 1) {
      // SageMaker loads a model with one request, which reaches one process: the others would answer 404.
      ctx.addIssue({ code: 'custom', path: ['server', 'processes'], message: 'must be 1 under SAGEMAKER_MULTI_MODEL: each load reaches one process' });
    }
    if (config.model.preload.length > 0 && config.model.repository === undefined) {
      ctx.addIssue({ code: 'custom', path: ['model', 'preload'], message: 'needs a model repository (INFERD_MODEL_REPOSITORY)' });
    }
    const { tlsCertFile, tlsKeyFile, tlsClientCaFile } = config.server;
    if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined)) {
      const missing = tlsCertFile === undefined ? 'tlsCertFile' : 'tlsKeyFile';
      ctx.addIssue({ code: 'custom', path: ['server', missing], message: 'is required: HTTPS needs both a certificate and its key (INFERD_TLS_CERT_FILE, INFERD_TLS_KEY_FILE)' });
    }
    if (tlsClientCaFile !== undefined && tlsCertFile === undefined) {
      ctx.addIssue({ code: 'custom', path: ['server', 'tlsClientCaFile'], message: 'needs HTTPS: set INFERD_TLS_CERT_FILE and INFERD_TLS_KEY_FILE too' });
    }
    if (config.capture.enabled && !config.capture.destination) {
      ctx.addIssue({ code: 'custom', path: ['capture', 'destination'], message: 'is required when capture is enabled' });
    }
  })
  .transform((config) => ({
    ...config,
    // A transform job's mini-batches take as long as they take: SageMaker times them out itself.
    // So may an async request (InvocationTimeoutSeconds up to 3600 s): the runtime must not cut it at 60 s.
    server: {
      ...config.server,
      invocationTimeoutS: config.server.invocationTimeoutS ?? (config.batch.enabled || config.async.outputPath !== undefined ? 3600 : 60),
    },
  }));

export type Config = z.output<typeof ConfigSchema>;

/** Where each environment variable lands in the schema. SageMaker's own names first. */
export const ENV_VARS: Record<string, readonly [keyof Config, string]> = {
  SAGEMAKER_BIND_TO_PORT: ['server', 'port'],
  SAGEMAKER_SAFE_PORT_RANGE: ['server', 'safePortRange'],
  SAGEMAKER_MAX_PAYLOAD_IN_MB: ['server', 'maxPayloadMb'],
  SAGEMAKER_MODEL_SERVER_TIMEOUT: ['server', 'invocationTimeoutS'],
  SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT: ['server', 'defaultAccept'],
  SAGEMAKER_CONTAINER_LOG_LEVEL: ['server', 'logLevel'],
  SAGEMAKER_MODEL_SERVER_WORKERS: ['model', 'instances'],
  SAGEMAKER_BATCH: ['batch', 'enabled'],
  SAGEMAKER_BATCH_STRATEGY: ['batch', 'strategy'],
  SAGEMAKER_MAX_CONCURRENT_TRANSFORMS: ['batch', 'maxConcurrentTransforms'],
  INFERD_BATCH_RECORD_ERRORS: ['batch', 'recordErrors'],
  INFERD_CAPTURE_ENABLED: ['capture', 'enabled'],
  INFERD_CAPTURE_DESTINATION: ['capture', 'destination'],
  INFERD_CAPTURE_SAMPLING_PERCENTAGE: ['capture', 'samplingPercentage'],
  INFERD_CAPTURE_MODES: ['capture', 'modes'],
  INFERD_CAPTURE_CSV_CONTENT_TYPES: ['capture', 'csvContentTypes'],
  INFERD_CAPTURE_JSON_CONTENT_TYPES: ['capture', 'jsonContentTypes'],
  INFERD_CAPTURE_KMS_KEY_ID: ['capture', 'kmsKeyId'],
  INFERD_ENDPOINT_NAME: ['capture', 'endpointName'],
  INFERD_VARIANT_NAME: ['capture', 'variantName'],
  INFERD_CAPTURE_FLUSH_INTERVAL_MS: ['capture', 'flushIntervalMs'],
  INFERD_CAPTURE_FLUSH_SIZE_BYTES: ['capture', 'flushSizeBytes'],
  INFERD_CAPTURE_BUFFER_MAX_BYTES: ['capture', 'bufferMaxBytes'],
  INFERD_CAPTURE_SPOOL_DIR: ['capture', 'spoolDir'],
  INFERD_CAPTURE_SPOOL_MAX_BYTES: ['capture', 'spoolMaxBytes'],
  AWS_ENDPOINT_URL: ['storage', 's3Endpoint'],
  // Listed after AWS_ENDPOINT_URL so that the S3-specific variable wins.
  AWS_ENDPOINT_URL_S3: ['storage', 's3Endpoint'],
  AWS_REGION: ['storage', 'region'],
  INFERD_ASYNC_OUTPUT_PATH: ['async', 'outputPath'],
  INFERD_ASYNC_FAILURE_PATH: ['async', 'failurePath'],
  INFERD_ASYNC_ALLOWED_INPUT_PREFIXES: ['async', 'allowedInputPrefixes'],
  INFERD_ASYNC_MAX_CONCURRENT_INVOCATIONS: ['async', 'maxConcurrentInvocations'],
  INFERD_ASYNC_MAX_PAYLOAD_MB: ['async', 'maxPayloadMb'],
  INFERD_ASYNC_SUCCESS_WEBHOOK: ['async', 'successWebhook'],
  INFERD_ASYNC_ERROR_WEBHOOK: ['async', 'errorWebhook'],
  INFERD_ASYNC_INCLUDE_RESPONSE_IN: ['async', 'includeResponseIn'],
  INFERD_ASYNC_STATE_DIR: ['async', 'stateDir'],
  INFERD_ASYNC_INPUT_PATH: ['async', 'inputPath'],
  INFERD_ASYNC_REDIS_URL: ['async', 'redisUrl'],
  INFERD_ASYNC_REDIS_KEY_PREFIX: ['async', 'redisKeyPrefix'],
  INFERD_ASYNC_LEASE_S: ['async', 'leaseS'],
  INFERD_ASYNC_RETENTION_H: ['async', 'retentionH'],
  INFERD_HOST: ['server', 'host'],
  INFERD_PROCESSES: ['server', 'processes'],
  INFERD_SHUTDOWN_TIMEOUT_S: ['server', 'shutdownTimeoutS'],
  INFERD_DRAIN_IDLE_GRACE_MS: ['server', 'drainIdleGraceMs'],
  INFERD_TLS_CERT_FILE: ['server', 'tlsCertFile'],
  INFERD_TLS_KEY_FILE: ['server', 'tlsKeyFile'],
  INFERD_TLS_CLIENT_CA_FILE: ['server', 'tlsClientCaFile'],
  INFERD_MODEL_DIR: ['model', 'dir'],
  SAGEMAKER_MULTI_MODEL: ['model', 'multiModel'],
  INFERD_MODEL_REPOSITORY: ['model', 'repository'],
  INFERD_PRELOAD_MODELS: ['model', 'preload'],
  INFERD_MODEL_CACHE_DIR: ['model', 'cacheDir'],
  INFERD_MODEL_MAX_UNPACKED_MB: ['model', 'maxUnpackedMb'],
  INFERD_MODEL_MEMORY_BUDGET_MB: ['model', 'memoryBudgetMb'],
  INFERD_MODEL_LOAD_WAIT_S: ['model', 'loadWaitS'],
  INFERD_MAX_BATCH_SIZE: ['batching', 'maxBatchSize'],
  INFERD_MAX_QUEUE_DELAY_MS: ['batching', 'maxQueueDelayMs'],
  INFERD_PREFERRED_BATCH_SIZES: ['batching', 'preferredBatchSizes'],
  INFERD_MAX_QUEUE_SIZE: ['batching', 'maxQueueSize'],
  INFERD_REQUIRE_GPU: ['model', 'requireGpu'],
  INFERD_MIN_INSTANCES: ['autoscale', 'minInstances'],
  INFERD_MAX_INSTANCES: ['autoscale', 'maxInstances'],
  INFERD_AUTOSCALE_TARGET_UTILIZATION: ['autoscale', 'targetUtilization'],
  INFERD_AUTOSCALE_INTERVAL_MS: ['autoscale', 'intervalMs'],
  INFERD_AUTOSCALE_WINDOW_S: ['autoscale', 'windowS'],
  INFERD_AUTOSCALE_SCALE_IN_AFTER_S: ['autoscale', 'scaleInAfterS'],
  INFERD_AUTOSCALE_SCALE_IN_COOLDOWN_S: ['autoscale', 'scaleInCooldownS'],
  INFERD_AUTOSCALE_TARGET_CONCURRENCY: ['autoscale', 'targetConcurrency'],
  INFERD_AUTH_SIGV4_CREDENTIALS: ['auth', 'sigv4Credentials'],
  INFERD_AUTH_TOKENS: ['auth', 'tokens'],
  INFERD_AUTH_SAGEMAKER: ['auth', 'sagemaker'],
};

/** CLI flags of `inferd serve`, and where they land. */
export const CLI_FLAGS: Record<string, readonly [keyof Config, string]> = {
  port: ['server', 'port'],
  processes: ['server', 'processes'],
  'model-dir': ['model', 'dir'],
  instances: ['model', 'instances'],
};
