/**
 * Measures `/ping` latency while a target is under load. It runs in its own worker thread so
 * that autocannon, busy on the harness's main thread, does not delay the probes' timers and
 * callbacks; on a small machine the prober still shares the cores with everything else.
 */
import { Worker } from 'node:worker_threads';

export interface ProberOptions {
  readonly url: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
}

export interface PingSummary {
  readonly count: number;
  /** Non-200 answers, network errors and timeouts. */
  readonly failures: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number | null;
}

export interface PingProber {
  stop(): Promise<PingSummary>;
}

export function startPingProber(baseUrl: string, intervalMs = 20, timeoutMs = 5_000): PingProber {
  const options: ProberOptions = { url: `${baseUrl}/ping`, intervalMs, timeoutMs };
  const worker = new Worker(new URL('./ping-prober-worker.js', import.meta.url), { workerData: options });
  const summary = new Promise<PingSummary>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  // Awaited in stop(); this keeps a worker error before then from being an unhandled rejection.
  summary.catch(() => undefined);
  return {
    async stop() {
      worker.postMessage('stop');
      try {
        return await summary;
      } finally {
        await worker.terminate();
      }
    },
  };
}
