/**
 * Async inference metrics with SageMaker's meanings (`ApproximateBacklogSize`,
 * `ApproximateBacklogSizePerInstance`, `ApproximateAgeOfOldestRequest`, `TimeInBacklog`,
 * `TotalProcessingTime`, failures by kind). Backlog gauges describe the whole queue, which
 * instances may share: every process reports the same value, so the cluster takes the largest.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AsyncObserver, AsyncStats } from './service.js';
import type { WebhookOutcome } from './webhooks.js';

/** Up to SageMaker's longest TTL (6 h) and invocation timeout (1 h). */
const BACKLOG_BUCKETS_S = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 10_800, 21_600];
const PROCESSING_BUCKETS_S = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600];

/** One queue query serves all the gauges of one scrape. */
const STATS_MAX_AGE_MS = 500;

export interface AsyncMetrics {
  readonly observer: AsyncObserver;
  readonly webhookOutcome: (outcome: WebhookOutcome) => void;
}

export function registerAsyncMetrics(registry: Registry, readStats: () => Promise<AsyncStats>): AsyncMetrics {
  const registers = [registry];
  let cached: { atMs: number; stats: Promise<AsyncStats> } | undefined;
  const stats = () => {
    const now = Date.now();
    if (!cached || now - cached.atMs > STATS_MAX_AGE_MS) cached = { atMs: now, stats: readStats() };
    return cached.stats;
  };
  const queueGauge = (name: string, help: string, read: (stats: AsyncStats) => number) =>
    new Gauge({
      name,
      help,
      registers,
      aggregator: 'max',
      async collect(this: Gauge) {
        this.set(read(await stats()));
      },
    });
  const backlog = (s: AsyncStats) => s.queued + s.running;
  queueGauge('inferd_async_backlog_size', 'Async requests queued or running (SageMaker ApproximateBacklogSize).', backlog);
  queueGauge(
    'inferd_async_backlog_size_per_instance',
    'Backlog divided by the instances consuming the queue (SageMaker ApproximateBacklogSizePerInstance).',
    (s) => backlog(s) / Math.max(1, s.consumers),
  );
  queueGauge('inferd_async_queued_requests', 'Async requests waiting for an instance.', (s) => s.queued);
  queueGauge('inferd_async_consumers', 'Instances consuming the async queue.', (s) => s.consumers);
  queueGauge('inferd_async_oldest_request_age_seconds', 'Age of the oldest request queued or running (SageMaker ApproximateAgeOfOldestRequest).', (s) =>
    s.oldestReceivedAtMs === undefined ? 0 : Math.max(0, (Date.now() - s.oldestReceivedAtMs) / 1000),
  );
  queueGauge(
    'inferd_async_has_backlog_without_capacity',
    '1 when requests wait and this instance has no free slot (like SageMaker HasBacklogWithoutCapacity): add an instance.',
    (s) => (s.queued > 0 && s.runningHere >= s.maxConcurrentInvocations ? 1 : 0),
  );
  new Gauge({
    name: 'inferd_async_running_requests',
    help: 'Async requests running in this instance.',
    registers,
    async collect(this: Gauge) {
      this.set((await stats()).runningHere);
    },
  });

  const accepted = new Counter({ name: 'inferd_async_accepted_total', help: 'Async requests accepted (202).', registers });
  const completed = new Counter({ name: 'inferd_async_completed_total', help: 'Async requests answered (SageMaker InvocationsProcesssed).', registers });
  const failures = new Counter({
    name: 'inferd_async_failures_total',
    help: 'Async requests failed, by kind: request_download, payload_too_large, invocation, timeout, response_upload, expired.',
    labelNames: ['kind'] as const,
    registers,
  });
  const notifications = new Counter({
    name: 'inferd_async_notifications_total',
    help: 'Webhook notification attempts by outcome: delivered, retried, failed (gave up), dropped (retry list full).',
    labelNames: ['outcome'] as const,
    registers,
  });
  const timeInBacklog = new Histogram({
    name: 'inferd_async_time_in_backlog_seconds',
    help: 'Time from acceptance to the first run (SageMaker TimeInBacklog).',
    buckets: BACKLOG_BUCKETS_S,
    registers,
  });
  const processing = new Histogram({
    name: 'inferd_async_processing_seconds',
    help: 'Time from the start of a run to its answer written (SageMaker TotalProcessingTime).',
    buckets: PROCESSING_BUCKETS_S,
    registers,
  });

  return {
    observer: {
      accepted: () => accepted.inc(),
      started: (backlogMs) => {
        if (backlogMs !== undefined) timeInBacklog.observe(backlogMs / 1000);
      },
      completed: (processingMs) => {
        completed.inc();
        processing.observe(processingMs / 1000);
      },
      failed: (kind) => failures.inc({ kind }),
    },
    webhookOutcome: (outcome) => notifications.inc({ outcome }),
  };
}
