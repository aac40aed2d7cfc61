/**
 * Prometheus metrics on one registry, served at `GET /metrics` on the serving port. Durations are
 * histograms in seconds; gauges are read from the runtime's stats() at scrape time, so the request
 * path only ever observes a value.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LoadSignals } from './autoscale/load-signals.js';
import { neededCapacity, type ScalingDecision } from './autoscale/policy.js';
import type { DataCaptureObserver } from './capture/data-capture.js';
import type { BatchObserver } from './runtime/batcher.js';
import type { Runtime } from './runtime/runtime.js';

const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const ROW_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];

export type CodecOperation = 'decode' | 'encode';

export interface MetricsOptions {
  /** Concurrent requests one instance should carry: `inferd_desired_replicas` divides by it. */
  readonly targetConcurrency: number;
  /** Server processes sharing the port: each sees its share of the instance's load. */
  readonly processes: number;
}

export class Metrics {
  readonly registry = new Registry();
  /** Requests in the container and invocations per minute, for external autoscalers. */
  readonly load = new LoadSignals();

  readonly #requestDuration = new Histogram({
    name: 'inferd_request_duration_seconds',
    help: 'Invocation time from the request arriving to the response sent, by status class.',
    labelNames: ['model', 'status_class'] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });
  readonly #queueWait = new Histogram({
    name: 'inferd_queue_wait_seconds',
    help: 'Time a request waited in the batcher before its batch was dispatched.',
    labelNames: ['model'] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
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
  readonly #codec = new Histogram({
    name: 'inferd_codec_seconds',
    help: 'Time to decode a request body into tensors, or encode outputs into a response body.',
    labelNames: ['model', 'operation'] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });
  readonly #batchRows = new Histogram({
    name: 'inferd_batch_size_rows',
    help: 'Rows in each dispatched batch.',
    labelNames: ['model'] as const,
    buckets: ROW_BUCKETS,
    registers: [this.registry],
  });
  readonly #requests = new Counter({
    name: 'inferd_requests_total',
    help: 'Invocations answered, by status class.',
    labelNames: ['model', 'status_class'] as const,
    registers: [this.registry],
  });
  readonly #errors = new Counter({
    name: 'inferd_request_errors_total',
    help: 'Invocations answered with an error, by inferd error code.',
    labelNames: ['model', 'code'] as const,
    registers: [this.registry],
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

  constructor(runtime: Runtime, { targetConcurrency, processes }: MetricsOptions) {
    collectDefaultMetrics({ register: this.registry });
    // Gauges named like counters fail `promtool check metrics`; the labelled gauges without the
    // suffix (nodejs_active_handles{type}, …) carry the same numbers.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(name);
    }
    const registers = [this.registry];
    const perModel = (read: (stats: ReturnType<Runtime['stats']>) => number) =>
      function (this: Gauge<'model'>) {
        const model = runtime.model;
        if (model) this.set({ model: model.name }, read(runtime.stats()));
      };
    new Gauge({ name: 'inferd_queued_requests', help: 'Requests waiting in the batcher.', labelNames: ['model'], registers, collect: perModel((s) => s.queued) });
    new Gauge({ name: 'inferd_inflight_batches', help: 'Batches running in workers.', labelNames: ['model'], registers, collect: perModel((s) => s.inFlight) });
    new Gauge({ name: 'inferd_busy_workers', help: 'Worker threads running a batch.', labelNames: ['model'], registers, collect: perModel((s) => s.busyWorkers) });
    new Gauge({ name: 'inferd_workers', help: 'Worker threads (model instances) taking work, per model.', labelNames: ['model'], registers, collect: perModel((s) => s.workers) });
    new Gauge({
      name: 'inferd_workers_starting',
      help: 'Worker threads the autoscaler is loading, per model.',
      labelNames: ['model'],
      registers,
      collect: perModel((s) => s.startingWorkers),
    });
    const load = this.load;
    const perModelLoad = (read: () => number) =>
      function (this: Gauge<'model'>) {
        const model = runtime.model;
        if (model) this.set({ model: model.name }, read());
      };
    new Gauge({
      name: 'inferd_concurrent_requests',
      help: 'Invocations in this instance now, queued or running (SageMaker ConcurrentRequestsPerModel).',
      labelNames: ['model'],
      registers,
      collect: perModelLoad(() => load.concurrent),
    });
    new Gauge({
      name: 'inferd_invocations_per_minute',
      help: 'Invocations this instance answered in the last 60 s (SageMaker InvocationsPerInstance).',
      labelNames: ['model'],
      registers,
      collect: perModelLoad(() => load.invocationsPerMinute()),
    });
    new Gauge({
      name: 'inferd_desired_replicas',
      help: `Instances this instance's load calls for: concurrent requests averaged over about 10 s, over the target of ${targetConcurrency} per instance, rounded up.`,
      labelNames: ['model'],
      registers,
      // Each process sees its share of the instance's load; the processes share it about evenly.
      aggregator: 'max',
      collect: perModelLoad(() =>
        neededCapacity(load.meanConcurrency() * processes, { targetValue: targetConcurrency, minCapacity: 1, maxCapacity: Number.MAX_SAFE_INTEGER }),
      ),
    });
    new Gauge({
      name: 'inferd_loaded_models',
      help: 'Models loaded and ready.',
      registers,
      // Across server processes a model counts as loaded when every process has it.
      aggregator: 'min',
      collect: function (this: Gauge) {
        this.set(runtime.state === 'ready' && runtime.model ? 1 : 0);
      },
    });
  }

  /** Counts data capture outcomes, and reads the spool size at scrape time. */
  captureObserver(spoolBytes: () => number): DataCaptureObserver {
    new Gauge({
      name: 'inferd_capture_spool_bytes',
      help: 'Bytes of capture objects waiting on local disk for S3.',
      registers: [this.registry],
      collect: function (this: Gauge) {
        this.set(spoolBytes());
      },
    });
    return {
      captured: (records) => this.#captureRecords.inc({ outcome: 'captured' }, records),
      sampledOut: () => this.#captureRecords.inc({ outcome: 'sampled_out' }),
      spooled: (records) => this.#captureRecords.inc({ outcome: 'spooled' }, records),
      dropped: (records) => this.#captureRecords.inc({ outcome: 'dropped' }, records),
      uploadFailed: () => this.#captureUploadFailures.inc(),
      uploaded: (latencyMs) => this.#captureUpload.observe(latencyMs / 1000),
    };
  }

  observer(model: string): BatchObserver {
    return {
      dispatched: ({ reason, rows, assemblyMs }) => {
        this.#dispatches.inc({ model, reason });
        this.#batchRows.observe({ model }, rows);
        this.#assemblyWait.observe({ model }, assemblyMs / 1000);
      },
      completed: ({ rows, computeMs, ok }) => {
        if (!ok) return;
        this.#rows.inc({ model }, rows);
        this.#compute.observe({ model }, computeMs / 1000);
      },
    };
  }

  /** Counts a worker autoscaling decision; the runtime calls it for every one. */
  autoscaleObserver(model: string): (decision: ScalingDecision) => void {
    return ({ action, rule }) => this.#autoscaleDecisions.inc({ model, action, rule });
  }

  request(model: string, statusCode: number, durationMs: number, errorCode: string | undefined): void {
    const statusClass = `${Math.floor(statusCode / 100)}xx`;
    this.#requests.inc({ model, status_class: statusClass });
    this.#requestDuration.observe({ model, status_class: statusClass }, durationMs / 1000);
    if (errorCode) this.#errors.inc({ model, code: errorCode });
  }

  queueWait(model: string, waitMs: number): void {
    this.#queueWait.observe({ model }, waitMs / 1000);
  }

  codec(model: string, operation: CodecOperation, durationMs: number): void {
    this.#codec.observe({ model, operation }, durationMs / 1000);
  }
}
