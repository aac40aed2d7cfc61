/**
 * Worker-thread side of the ping prober: GET /ping every `intervalMs`, timed with
 * performance.now(), until the parent posts a message; then posts the summary back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PingSummary, ProberOptions } from './ping-prober.js';

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? null;
}

const { url, intervalMs, timeoutMs } = workerData as ProberOptions;
const port = parentPort!;
let probing = true;
port.once('message', () => (probing = false));

const latencies: number[] = [];
let failures = 0;
while (probing) {
  const started = performance.now();
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await response.arrayBuffer();
    if (!response.ok) failures += 1;
  } catch {
    failures += 1;
  }
  // A timed-out ping counts at its timeout, so a stalled server cannot look fast.
  const elapsed = Math.min(performance.now() - started, timeoutMs);
  latencies.push(elapsed);
  await sleep(Math.max(0, intervalMs - elapsed));
}

const sorted = [...latencies].sort((a, b) => a - b);
const summary: PingSummary = {
  count: sorted.length,
  failures,
  p50Ms: percentile(sorted, 50),
  p99Ms: percentile(sorted, 99),
  maxMs: sorted.at(-1) ?? null,
};
port.postMessage(summary);
