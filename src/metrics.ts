/**
 * Prometheus metrics on one registry, served at `GET /metrics` on the serving port. Durations are
 * histograms in seconds; gauges read a stats source at scrape time, so the request path only
 * ever observes a value. Metrics knows no component: the composition root hands it sources and
 * forwards the components' events to its methods.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { FastCounter, FastHistogram } from './metric-series.js';

const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const ROW_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];
const LOAD_BUCKETS_S = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 360];

export type CodecOperation = 'decode' | 'encode';

/** One loaded model's numbers now. */
export interface ModelStatsSample {
  readonly name: string;
  readonly stats: {
    readonly queued: number;
    readonly inFlight: number;
    readonly busyWorkers: number;
    readonly workers: number;
    readonly startingWorkers: number;
  };
  readonly footprintBytes: number;
}

/** What the gauges read at scrape time. */
export interface StatsSource {
  /** The models loaded and ready. */
  models(): Iterable<ModelStatsSample>;
  /** Invocations in this instance now, queued or running. */
  concurrentRequests(): number;
  invocationsPerMinute(): number;
  /** Instances this instance's load calls for. */
  desiredReplicas(): number;
  /** Bytes of capture objects waiting on local disk; absent without capture. */
  captureSpoolBytes?(): number;
}

export interface MetricsOptions {
  /** Concurrent requests one instance should carry (the help text of `inferd_desired_replicas`). */
  readonly targetConcurrency: number;
}

/** `status_class` label values of the standard codes, by their hundreds: no string built per request. */
const STATUS_CLASSES = [undefined, '1xx', '2xx', '3xx', '4xx', '5xx'];

export type UnloadReason = 'request' | 'evicted' | 'shutdown';

export class Metrics {
  readonly registry = new Registry();

  // The request path's series: observed on every request, so kept in FastHistogram/FastCounter.
  readonly #requestDuration = new FastHistogram({
    name: 'inferd_request_duration_seconds',
    help: 'Invocation time from the request arriving to the response sent, by status class.',
    labelNames: ['model', 'status_class'] as const,
    buckets: LATENCY_BUCKETS_S,
    registry: this.registry,
  });
  readonly #queueWait = new FastHistogram({
    name: 'inferd_queue_wait_seconds',
    help: 'Time a request waited in the batcher before its batch was dispatched.',
    labelNames: ['model'] as const,
    buckets: LATENCY_BUCKETS_S,
    registry: this.registry,
  });
  readonly #assemblyWait = new Histogram({
    name: 'inferd_batch_assembly_wait_seconds',
    help: 'Time a batch was held for more requests after an instance was free to run it.',
    labelNames: ['model'] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });
  readonly #compute = new Histogram({
    name: 'inferd_compute_seconds',
    help: 'ONNX Runtime run() time of one batch, measured in the worker.',
    labelNames: ['model'] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });
  readonly #codec = new FastHistogram({
    name: 'inferd_codec_seconds',
    help: 'Time to decode a request body into tensors, or encode outputs into a response body.',
    labelNames: ['model', 'operation'] as const,
    buckets: LATENCY_BUCKETS_S,
    registry: this.registry,
  });
  readonly #batchRows = new Histogram({
    name: 'inferd_batch_size_rows',
    help: 'Rows in each dispatched batch.',
    labelNames: ['model'] as const,
    buckets: ROW_BUCKETS,
    registers: [this.registry],
  });
  readonly #requests = new FastCounter({
    name: 'inferd_requests_total',
    help: 'Invocations answered, by status class.',
    labelNames: ['model', 'status_class'] as const,
    registry: this.registry,
  });
  readonly #errors = new FastCounter({
    name: 'inferd_request_errors_total',
    help: 'Invocations answered with an error, by inferd error code.',
    labelNames: ['model', 'code'] as const,
    registry: this.registry,
  });
  readonly #dispatches = new Counter({
    name: 'inferd_batch_dispatches_total',
    help: 'Batches dispatched, by reason: full, preferred (size reached), idle (no instance busy), delay (maxQueueDelayMs expired), shape (other shapes waiting).',
    labelNames: ['model', 'reason'] as const,
    registers: [this.registry],
  });
  readonly #rows = new Counter({
    name: 'inferd_rows_inferred_total',
    help: 'Rows run through the model.',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });

  readonly #autoscaleDecisions = new Counter({
    name: 'inferd_autoscale_decisions_total',
    help: 'Worker autoscaling decisions, by action (scale_out, scale_in, hold) and the rule behind it.',
    labelNames: ['model', 'action', 'rule'] as const,
    registers: [this.registry],
  });

  readonly #captureRecords = new Counter({
    name: 'inferd_capture_records_total',
    help: 'Data capture records by outcome: captured (buffered), sampled_out, spooled (after a failed upload), dropped (buffer and spool full).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly #captureUploadFailures = new Counter({
    name: 'inferd_capture_upload_failures_total',
    help: 'Capture object uploads that failed (the object was spooled or dropped).',
    registers: [this.registry],
  });
  readonly #captureUpload = new Histogram({
    name: 'inferd_capture_upload_seconds',
    help: 'Time to upload one capture object.',
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });

  readonly #modelLoads = new Counter({
    name: 'inferd_model_loads_total',
    help: 'Models loaded.',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly #modelLoadTime = new Histogram({
    name: 'inferd_model_load_seconds',
    help: 'Time to load a model, its download and unpacking included, until it takes requests.',
    labelNames: ['model'] as const,
    buckets: LOAD_BUCKETS_S,
    registers: [this.registry],
  });
  readonly #modelUnloads = new Counter({
    name: 'inferd_model_unloads_total',
    help: 'Models unloaded, by request (SageMaker MME) or evicted under the memory budget.',
    labelNames: ['model', 'reason'] as const,
    registers: [this.registry],
  });
  readonly #modelEvictions = new Counter({
    name: 'inferd_model_evictions_total',
    help: 'Models evicted to make room under INFERD_MODEL_MEMORY_BUDGET_MB.',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly #cacheHits = new Counter({
    name: 'inferd_model_cache_hits_total',
    help: 'Requests naming a repository model that was loaded (SageMaker ModelCacheHit).',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly #cacheMisses = new Counter({
    name: 'inferd_model_cache_misses_total',
    help: 'Requests naming a repository model that had to be loaded first.',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });

  constructor(source: StatsSource, { targetConcurrency }: MetricsOptions) {
    collectDefaultMetrics({ register: this.registry });
    // Gauges named like counters fail `promtool check metrics`; the labelled gauges without the
    // suffix (nodejs_active_handles{type}, …) carry the same numbers.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(name);
    }
    const registers = [this.registry];
    // Reset first: a model unloaded since the last scrape leaves no series behind.
    const perModel = (read: (model: ModelStatsSample) => number) =>
      function (this: Gauge<'model'>) {
        this.reset();
        for (const model of source.models()) this.set({ model: model.name }, read(model));
      };
    new Gauge({ name: 'inferd_queued_requests', help: 'Requests waiting in the batcher.', labelNames: ['model'], registers, collect: perModel((m) => m.stats.queued) });
    new Gauge({ name: 'inferd_inflight_batches', help: 'Batches running in workers.', labelNames: ['model'], registers, collect: perModel((m) => m.stats.inFlight) });
    new Gauge({ name: 'inferd_busy_workers', help: 'Worker threads running a batch.', labelNames: ['model'], registers, collect: perModel((m) => m.stats.busyWorkers) });
    new Gauge({ name: 'inferd_workers', help: 'Worker threads (model instances) taking work, per model.', labelNames: ['model'], registers, collect: perModel((m) => m.stats.workers) });
    new Gauge({
      name: 'inferd_workers_starting',
      help: 'Worker threads the autoscaler is loading, per model.',
      labelNames: ['model'],
      registers,
      collect: perModel((m) => m.stats.startingWorkers),
    });
    new Gauge({
      name: 'inferd_model_memory_bytes',
      help: 'Each loaded model\'s footprint, counted against INFERD_MODEL_MEMORY_BUDGET_MB: declared, or resident memory growth over its load (at least its files\' size).',
      labelNames: ['model'],
      registers,
      collect: perModel((m) => m.footprintBytes),
    });
    const instanceGauge = (read: () => number) =>
      function (this: Gauge) {
        this.set(read());
      };
    // The instance's load, whichever models it went to: what instance autoscalers scale on.
    new Gauge({
      name: 'inferd_concurrent_requests',
      help: 'Invocations in this instance now, queued or running (SageMaker ConcurrentRequestsPerModel).',
      registers,
      collect: instanceGauge(() => source.concurrentRequests()),
    });
    new Gauge({
      name: 'inferd_invocations_per_minute',
      help: 'Invocations this instance answered in the last 60 s (SageMaker InvocationsPerInstance).',
      registers,
      collect: instanceGauge(() => source.invocationsPerMinute()),
    });
    new Gauge({
      name: 'inferd_desired_replicas',
      help: `Instances this instance's load calls for: concurrent requests averaged over about 10 s, over the target of ${targetConcurrency} per instance, rounded up.`,
      registers,
      // Each process sees its share of the instance's load; the processes share it about evenly.
      aggregator: 'max',
      collect: instanceGauge(() => source.desiredReplicas()),
    });
    new Gauge({
      name: 'inferd_loaded_models',
      help: 'Models loaded and ready.',
      registers,
      // Across server processes a model counts as loaded when every process has it.
      aggregator: 'min',
      collect: instanceGauge(() => [...source.models()].length),
    });
    const { captureSpoolBytes } = source;
    if (captureSpoolBytes) {
      new Gauge({
        name: 'inferd_capture_spool_bytes',
        help: 'Bytes of capture objects waiting on local disk for S3.',
        registers,
        collect: instanceGauge(() => captureSpoolBytes.call(source)),
      });
    }
  }

  /** Counts data capture outcomes. */
  captureObserver() {
    return {
      captured: (records: number) => this.#captureRecords.inc({ outcome: 'captured' }, records),
      sampledOut: () => this.#captureRecords.inc({ outcome: 'sampled_out' }),
      spooled: (records: number) => this.#captureRecords.inc({ outcome: 'spooled' }, records),
      dropped: (records: number) => this.#captureRecords.inc({ outcome: 'dropped' }, records),
      uploadFailed: () => this.#captureUploadFailures.inc(),
      uploaded: (latencyMs: number) => this.#captureUpload.observe(latencyMs / 1000),
    };
  }

  /** Counts one model's batches. */
  batchObserver(model: string) {
    return {
      dispatched: ({ reason, rows, assemblyMs }: { reason: string; rows: number; assemblyMs: number }) => {
        this.#dispatches.inc({ model, reason });
        this.#batchRows.observe({ model }, rows);
        this.#assemblyWait.observe({ model }, assemblyMs / 1000);
      },
      completed: ({ rows, computeMs, ok }: { rows: number; computeMs: number; ok: boolean }) => {
        if (!ok) return;
        this.#rows.inc({ model }, rows);
        this.#compute.observe({ model }, computeMs / 1000);
      },
    };
  }

  /** Counts one model's worker autoscaling decisions. */
  autoscaleObserver(model: string): (decision: { readonly action: string; readonly rule: string }) => void {
    return ({ action, rule }) => this.#autoscaleDecisions.inc({ model, action, rule });
  }

  modelLoaded(model: string, loadMs: number): void {
    this.#modelLoads.inc({ model });
    this.#modelLoadTime.observe({ model }, loadMs / 1000);
  }

  modelUnloaded(model: string, reason: UnloadReason): void {
    if (reason === 'shutdown') return;
    this.#modelUnloads.inc({ model, reason });
    if (reason === 'evicted') this.#modelEvictions.inc({ model });
  }

  /**
   * Drops an unloaded model's request and batch series, so that a server cycling through many
   * models (SageMaker MME) does not keep every one it ever served. Its load, unload, eviction
   * and cache counters stay: they are its history, a few series a model.
   */
  async forgetModel(model: string): Promise<void> {
    for (const series of [this.#requestDuration, this.#queueWait, this.#codec, this.#requests, this.#errors]) series.removeWhere('model', model);
    const served = [this.#assemblyWait, this.#compute, this.#batchRows];
    const counted = [this.#dispatches, this.#rows, this.#autoscaleDecisions];
    for (const metric of [...served, ...counted] as Array<Counter<string> | Histogram<string>>) {
      const seen = new Set<string>();
      for (const { labels } of (await metric.get()).values) {
        if (labels.model !== model) continue;
        // A histogram's buckets add `le`: the series is named by its own labels.
        const { le: _bucket, ...own } = labels;
        const key = JSON.stringify(own);
        if (seen.has(key)) continue;
        seen.add(key);
        metric.remove(own as Record<string, string>);
      }
    }
  }

  /** Counts whether requests naming repository models found them loaded. */
  cacheObserver() {
    return {
      hit: (model: string) => this.#cacheHits.inc({ model }),
      miss: (model: string) => this.#cacheMisses.inc({ model }),
    };
  }

  request(model: string, statusCode: number, durationMs: number, errorCode: string | undefined): void {
    const hundreds = Math.floor(statusCode / 100);
    const statusClass = STATUS_CLASSES[hundreds] ?? `${hundreds}xx`;
    this.#requests.inc(1, model, statusClass);
    this.#requestDuration.observe(durationMs / 1000, model, statusClass);
    if (errorCode) this.#errors.inc(1, model, errorCode);
  }

  queueWait(model: string, waitMs: number): void {
    this.#queueWait.observe(waitMs / 1000, model);
  }

  codec(model: string, operation: CodecOperation, durationMs: number): void {
    this.#codec.observe(durationMs / 1000, model, operation);
  }
}
