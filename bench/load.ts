/**
 * Drives one target with autocannon, closed loop, and condenses its result.
 *
 * autocannon runs in the harness's own thread, not in `workers` mode: on a 2-core machine the
 * client already takes a large share of a core, and extra client threads would take it from the
 * server under test. The client CPU share is reported next to every result instead (cpu.ts).
 */
import autocannon from 'autocannon';
import type { Scenario } from './scenarios.js';

export interface LoadSummary {
  readonly durationS: number;
  /** 2xx responses per second; non-2xx answers are counted apart, never as throughput. */
  readonly requestsPerS: number;
  readonly rowsPerS: number;
  /** autocannon records whole milliseconds, of 2xx responses only. */
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number };
  readonly ok: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
}

/** What a load needs to know of its scenario; bench/run.ts passes a whole Scenario. */
export type LoadShape = Pick<Scenario, 'contentType' | 'connections' | 'rowsPerRequest'> & { readonly accept?: string };

export function loadRequests(scenario: LoadShape, bodies: readonly Buffer[]): autocannon.Request[] {
  const headers = { 'content-type': scenario.contentType, ...(scenario.accept !== undefined && { accept: scenario.accept }) };
  return bodies.map((body) => ({ method: 'POST', path: '/invocations', headers, body }));
}

export async function runLoad(url: string, scenario: LoadShape, requests: autocannon.Request[], durationS: number): Promise<LoadSummary> {
  const result = await autocannon({
    url,
    connections: scenario.connections,
    duration: durationS,
    requests,
    excludeErrorStats: true,
    timeout: 30,
  });
  const ok = result['2xx'];
  return {
    durationS: result.duration,
    requestsPerS: ok / result.duration,
    rowsPerS: (ok * scenario.rowsPerRequest) / result.duration,
    latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
    ok,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
  };
}
