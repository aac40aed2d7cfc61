/**
 * The composition root: builds the runtime and the HTTP app from a validated Config, without
 * listening. `main.ts` listens and handles signals; tests call this directly.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { Server as NetServer } from 'node:net';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { LoadSignals } from './autoscale/load-signals.js';
import { neededCapacity } from './autoscale/policy.js';
import { WorkerAutoscaler } from './autoscale/worker-autoscaler.js';
import { DataCapture } from './capture/data-capture.js';
import type { ClusterLink } from './cluster.js';
import { repositorySettings, runtimeSettings } from './config/runtime-settings.js';
import type { Config } from './config/schema.js';
import { DataPlane } from './data-plane.js';
import { shuttingDown } from './errors.js';
import { Metrics } from './metrics.js';
import { registerAsyncMetrics } from './modes/async/async-metrics.js';
import type { AsyncQueue, QueueSettings } from './modes/async/queue.js';
import { RedisQueue } from './modes/async/redis-queue.js';
import { AsyncInference } from './modes/async/service.js';
import { SqliteQueue } from './modes/async/sqlite-queue.js';
import { DEFAULT_WEBHOOK_SETTINGS, Webhooks } from './modes/async/webhooks.js';
import { ModelRepository } from './repository/repository.js';
import { locateModel } from './runtime/model-dir.js';
import { Runtime } from './runtime/runtime.js';
import type { ServedModel } from './runtime/served-model.js';
import { installAuth } from './server/auth/install-auth.js';
import { installBodyParser } from './server/content-types.js';
import { answerError, installErrorHandler, toInferdError } from './server/error-handler.js';
import { RequestBodies } from './server/request-body.js';
import { deferredChildLogger, RequestLog } from './server/request-logger.js';
import { runtimeApiRouteOf, stampRuntimeApiHeaders } from './server/runtime-api.js';
import { logRefusedHandshakes, readTlsOptions } from './server/tls.js';
import { asyncInvocationRoutes } from './server/routes/async-invocations.js';
import { healthRoutes } from './server/routes/health.js';
import { invocationRoutes } from './server/routes/invocations.js';
import { metricsRoutes } from './server/routes/metrics.js';
import { modelRoutes } from './server/routes/models.js';
import { oipRoutes } from './server/routes/oip.js';
import { openObjectStore } from './storage/open-store.js';
import { joinUri } from './storage/uri.js';

export interface App {
  readonly http: FastifyInstance;
  readonly runtime: Runtime;
  readonly dataPlane: DataPlane;
  readonly metrics: Metrics;
  /**
   * Loads the model of `--model-dir` and the repository's preloads; `/ping` is ready once it
   * resolves. Rejects with the model's own error.
   */
  start(): Promise<void>;
  /** Present when this process is one of several serving the port (`--processes`). */
  readonly cluster: ClusterLink | undefined;
  /**
   * SIGTERM: answers every request that reaches the server (those in flight with their result,
   * later ones with 503 and `Connection: close`), accepts no new connection, then closes.
   */
  drain(): Promise<void>;
}

export interface AppOptions {
  /** Joins the other server processes of a cluster, given this process's metrics registry. */
  readonly joinCluster?: ((registry: Registry) => ClusterLink) | undefined;
  /** Wall-clock milliseconds for async TTLs and leases; tests move it. Default `Date.now`. */
  readonly clock?: (() => number) | undefined;
}

const MIB = 1024 * 1024;
/**
 * Before an error answer, the rest of the body is read and thrown away: up to 4x the limit more,
 * for at most 10 s (docs/http-api.md, Request bodies).
 */
const DISCARD_LIMIT_FACTOR = 4;
const DISCARD_MAX_MS = 10_000;

function buildCapture(config: Config, metrics: Metrics, log: FastifyBaseLogger): DataCapture {
  const store = openObjectStore(config.capture.destination!, config.storage);
  return new DataCapture(config.capture, store, metrics.captureObserver(), log);
}

/**
 * Follows a model's load with its own worker autoscaler, when its instance range allows one;
 * returns what stops it when the model unloads.
 */
function autoscaleModel(model: ServedModel, config: Config, metrics: Metrics, log: FastifyBaseLogger): (() => Promise<void>) | undefined {
  const { info } = model;
  if (info.maxInstances <= info.minInstances) return undefined;
  const autoscaler = new WorkerAutoscaler({
    model: info.name,
    pool: model.pool,
    queue: () => model.queue(),
    maxBatchSize: info.batching.maxBatchSize,
    settings: { ...config.autoscale, minInstances: info.minInstances, maxInstances: info.maxInstances },
    log,
    onDecision: metrics.autoscaleObserver(info.name),
  });
  const stopWatching = model.observe({ queueWait: (waitMs) => autoscaler.queueWait(waitMs) });
  autoscaler.start();
  return async () => {
    stopWatching();
    // A worker the autoscaler is still loading joins the pool before the pool closes.
    await autoscaler.stop();
  };
}

/** Async inference, when an output path is configured. */
function buildAsync(
  config: Config,
  models: { dataPlane: DataPlane; runtime: Runtime; isReady: () => boolean },
  metrics: Metrics,
  log: FastifyBaseLogger,
  clock: (() => number) | undefined,
): AsyncInference {
  const settings = config.async;
  const outputPath = settings.outputPath!;
  const queueSettings: QueueSettings = {
    // New at every start: a restarted instance must not take its dead predecessor's leases for its own.
    consumerId: `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
    leaseMs: settings.leaseS * 1000,
    retentionMs: settings.retentionH * 3_600_000,
  };
  const openQueue = async (): Promise<AsyncQueue> =>
    settings.redisUrl !== undefined
      ? RedisQueue.open(settings.redisUrl, { ...queueSettings, keyPrefix: settings.redisKeyPrefix })
      : new SqliteQueue(join(settings.stateDir, 'queue.sqlite'), queueSettings);
  // The gauges read the service's stats at scrape time; the service reports to the counters.
  const asyncMetrics = registerAsyncMetrics(metrics.registry, () => service.stats());
  const service: AsyncInference = new AsyncInference({
    ...models,
    openQueue,
    settings: {
      outputPath,
      // A folder of its own: `<id>-error.out` beside outputs would be the output of id `<id>-error`.
      failurePath: settings.failurePath ?? joinUri(outputPath, 'failures'),
      inputPath: settings.inputPath ?? joinUri(settings.stateDir, 'payloads'),
      allowedInputPrefixes: settings.allowedInputPrefixes,
      maxConcurrentInvocations: settings.maxConcurrentInvocations,
      maxPayloadBytes: settings.maxPayloadMb * MIB,
      realTimeMaxPayloadBytes: Math.floor(config.server.maxPayloadMb * MIB),
      includeResponseInSuccess: settings.includeResponseIn.includes('SUCCESS_NOTIFICATION_TOPIC'),
      includeResponseInError: settings.includeResponseIn.includes('ERROR_NOTIFICATION_TOPIC'),
      defaultAccept: config.server.defaultAccept,
      defaultEndpointName: config.capture.endpointName,
      awsRegion: config.storage.region ?? 'local',
      leaseMs: queueSettings.leaseMs,
    },
    openStore: (uri) => openObjectStore(uri, config.storage),
    webhooks: new Webhooks(
      { successUrl: settings.successWebhook, errorUrl: settings.errorWebhook, ...DEFAULT_WEBHOOK_SETTINGS },
      asyncMetrics.webhookOutcome,
      log,
    ),
    observer: asyncMetrics.observer,
    log,
    clock,
  });
  return service;
}

export function buildApp(config: Config, options: AppOptions = {}): App {
  const bodyLimitBytes = Math.floor(config.server.maxPayloadMb * MIB);
  const bodies = new RequestBodies({
    maxBytes: bodyLimitBytes,
    limitText: `${config.server.maxPayloadMb} MB (the limit set by SAGEMAKER_MAX_PAYLOAD_IN_MB)`,
    discardMaxBytes: DISCARD_LIMIT_FACTOR * bodyLimitBytes,
    discardMaxMs: DISCARD_MAX_MS,
  });
  const http = Fastify({
    logger: { level: config.server.logLevel },
    // SageMaker's inference id, when a client sends one, names the request in every log line.
    requestIdHeader: 'x-amzn-sagemaker-inference-id',
    logController: new RequestLog(),
    childLoggerFactory: deferredChildLogger,
    // A slow-body client must not hold a connection past the invocation timeout.
    requestTimeout: (config.server.invocationTimeoutS + 5) * 1000,
    // SageMaker's balancer keeps connections open; outlive its idle timeout.
    keepAliveTimeout: 65_000,
    // Our own onRequest hook answers during shutdown, in inferd's error shape.
    return503OnClosing: false,
    // Errors raised before routing (a malformed URL) get inferd's error shape too.
    frameworkErrors: (error, request, reply) => {
      void answerError(bodies, request, reply, toInferdError(error));
    },
    // HTTPS when a certificate is configured (throws INFERD_ERR_CONFIG_INVALID on a bad file);
    // the server is then an https.Server, whose connections and close() are net.Server's still.
    https: readTlsOptions(config.server) ?? null,
    // Requests Node cannot even parse (bad framing): a plain 400 in the same shape, then close.
    clientErrorHandler: (_error, socket) => {
      const body = JSON.stringify({ code: 'INFERD_ERR_BAD_REQUEST', message: 'the HTTP request cannot be parsed' });
      if (socket.writable) {
        socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      }
    },
  });
  const runtime = new Runtime(runtimeSettings(config), http.log);
  const load = new LoadSignals();
  const { processes } = config.server;
  const { targetConcurrency } = config.autoscale;
  let spoolBytes = () => 0;
  const metrics = new Metrics(
    {
      models: () => runtime.stats(),
      concurrentRequests: () => load.concurrent,
      invocationsPerMinute: () => load.invocationsPerMinute(),
      // Each process sees its share of the instance's load; the processes share it about evenly.
      desiredReplicas: () => neededCapacity(load.meanConcurrency() * processes, { targetValue: targetConcurrency, minCapacity: 1, maxCapacity: Number.MAX_SAFE_INTEGER }),
      captureSpoolBytes: config.capture.enabled ? () => spoolBytes() : undefined,
    },
    { targetConcurrency },
  );
  runtime.addHooks({
    loaded: (model, { loadMs }) => {
      metrics.modelLoaded(model.info.name, loadMs);
      model.observe(metrics.batchObserver(model.info.name));
      return autoscaleModel(model, config, metrics, http.log);
    },
    unloaded: (name, reason) => {
      metrics.modelUnloaded(name, reason);
      if (reason !== 'shutdown') void metrics.forgetModel(name);
    },
  });
  const repositoryAt = repositorySettings(config);
  const repository = repositoryAt && new ModelRepository(repositoryAt, (uri) => openObjectStore(uri, config.storage));
  const dataPlane = new DataPlane(
    runtime,
    repository,
    { loadWaitMs: config.model.loadWaitS * 1000, multiModel: config.model.multiModel },
    http.log,
    metrics.cacheObserver(),
  );
  const capture = config.capture.enabled ? buildCapture(config, metrics, http.log) : undefined;
  if (capture) spoolBytes = () => capture.spoolBytes;
  const cluster = options.joinCluster?.(metrics.registry);
  const readiness = { state: 'loading' as 'loading' | 'ready' };
  const asyncInference =
    config.async.outputPath !== undefined
      ? buildAsync(config, { dataPlane, runtime, isReady: () => readiness.state === 'ready' }, metrics, http.log, options.clock)
      : undefined;
  const start = async () => {
    const dir = config.model.dir;
    if (dir !== undefined) {
      const location = await locateModel(dir);
      await runtime.load(location.name, { dir: location.dir, url: location.dir });
      dataPlane.defaultModel = location.name;
    }
    await dataPlane.preload(config.model.preload);
    readiness.state = 'ready';
  };

  installBodyParser(http, bodies);
  installErrorHandler(http, bodies);
  bodies.handleExpectContinue(http.server);
  logRefusedHandshakes(http.server, http.log);

  // Shutdown: from the first moment /ping answers 503 and new requests are refused, while the
  // requests already accepted run to the end; only once HTTP has drained do the workers stop.
  // Answers close their connections only from `closeConnections` on (see drain()).
  const lifecycle = { closing: false, closeConnections: false };
  http.addHook('preClose', async () => {
    lifecycle.closing = true;
    lifecycle.closeConnections = true;
  });
  // Callback-style hooks: they run on every request, and an async hook costs a promise each.
  // One hook, first: every answer of a runtime-API route, a refusal included, names the variant
  // and the request; while draining, requests are refused here.
  const { variantName } = config.capture;
  http.addHook('onRequest', (request, reply, done) => {
    if (runtimeApiRouteOf(request) !== undefined) stampRuntimeApiHeaders(request, reply, variantName);
    if (!lifecycle.closing || request.url === '/ping') return done();
    void answerError(bodies, request, reply, shuttingDown());
  });
  // Then who may call each route (src/server/auth/); it reads the credential files.
  installAuth(http, config, { defaultModel: () => dataPlane.defaultModel });
  // Node keeps a keep-alive connection open after close() unless the response says otherwise.
  http.addHook('onSend', (_request, reply, payload, done) => {
    if (lifecycle.closeConnections) reply.header('connection', 'close');
    done(null, payload);
  });
  http.addHook('onClose', async () => {
    // Async requests running here finish (or their leases run out) before the workers stop.
    await asyncInference?.close();
    await runtime.close();
    // Every response has been sent, so every sampled record has been offered.
    await capture?.close();
  });
  if (capture) http.addHook('onReady', () => capture.start());
  if (asyncInference) http.addHook('onReady', () => asyncInference.start());

  void http.register(healthRoutes({ readiness, lifecycle, cluster, executionParameters: () => executionParameters(config, dataPlane, runtime) }));
  void http.register(modelRoutes(runtime, { multiModel: config.model.multiModel }));
  void http.register(invocationRoutes({ dataPlane, runtime, config, metrics, load, capture }));
  void http.register(oipRoutes({ dataPlane, runtime, readiness, lifecycle, metrics }));
  void http.register(metricsRoutes(metrics, cluster));
  if (asyncInference) void http.register(asyncInvocationRoutes(asyncInference, bodies));

  const openConnections = () =>
    new Promise<number>((resolve) => http.server.getConnections((error, count) => resolve(error ? 1 : count)));
  /** Waits up to the grace, or until every connection has closed. */
  const graceOrAllClosed = async () => {
    const grace = new AbortController();
    await Promise.race([
      once(http.server, 'close', { signal: grace.signal }),
      sleep(config.server.drainIdleGraceMs, undefined, { signal: grace.signal }),
    ]);
    grace.abort();
  };
  const drain = async () => {
    // Requests are answered 503 from now on, but on connections kept open: nothing prompts
    // clients to open new connections while the listener still takes them.
    lifecycle.closing = true;
    // A server with no connection open has no client to hold back: it closes its listener at once.
    if ((await openConnections()) > 0) await sleep(config.server.drainIdleGraceMs);
    // Stop accepting connections but keep the open ones: Node's HTTP close() would also close
    // idle keep-alive connections at once, resetting a request a client has just sent on one.
    // (net.Server's close is what http.Server's calls after closing the idle connections.)
    if (http.server.listening) NetServer.prototype.close.call(http.server);
    // Under --processes the primary holds the listener until every process has closed its side;
    // a connection it took meanwhile would be handed to a process that no longer listens.
    await cluster?.stoppedListening();
    // Now a client that reconnects is refused: every answer closes its connection.
    lifecycle.closeConnections = true;
    await graceOrAllClosed();
    // Closes the connections still idle, waits for those with requests in flight, then the workers.
    await http.close();
  };
  return { http, runtime, dataPlane, metrics, cluster, start, drain };
}

/** What SageMaker's batch transform asks before its first mini-batch. */
function executionParameters(config: Config, dataPlane: DataPlane, runtime: Runtime) {
  const model = dataPlane.defaultModel === undefined ? undefined : runtime.get(dataPlane.defaultModel)?.info;
  return {
    MaxConcurrentTransforms: config.batch.maxConcurrentTransforms ?? model?.maxInstances ?? 1,
    BatchStrategy: config.batch.strategy,
    MaxPayloadInMB: config.server.maxPayloadMb,
  };
}
