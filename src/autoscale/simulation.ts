/**
 * Replays a load trace through the scaling policies of `policy.ts`, the same functions the
 * controller runs, against a fleet whose per-instance capacity was measured. Pure: no I/O, no
 * timers; time is the trace's seconds.
 *
 * The model, in fixed steps of `stepS`:
 * - Load: the trace is linear between its points (two points at the same time make a step) and
 *   holds its last value past the end; each step's arrivals are the exact integral of it.
 * - Instances: a new instance serves from the first step that starts `instanceStartupS` after it
 *   was asked for; removing one is immediate, and a scale-in cancels instances still starting
 *   (the latest asked for first) before it stops serving ones.
 * - Queue: the fleet serves up to `instances × capacityRps` per second; what it cannot serve
 *   waits in one FIFO backlog (a fluid: fractions of requests). Real-time requests queue here
 *   too, standing for what a real endpoint would make wait, time out or refuse with a 503.
 * - Latency proxy, per step, for the requests it completes: `serviceTimeMs / (1 − ρ)`, the
 *   M/M/1 mean response time at the step's utilization ρ (capped, see `MAX_UTILIZATION`), plus
 *   the mean time those requests spent in the backlog. No request completes: no value.
 * - Metrics: every step yields each policy's `total` over the fleet; a policy sees their mean
 *   over its `metricPeriodS` (a CloudWatch datapoint) and decides once per datapoint.
 */
import { largestDecision, trackBacklog, trackTarget, type PolicyMemory, type ScalingDecision, type ScalingRule, type TargetTrackingSettings } from './policy.js';

export interface TracePoint {
  readonly atS: number;
  readonly requestsPerS: number;
}

/**
 * - `invocations_per_instance_per_minute`: SageMakerVariantInvocationsPerInstance; the total is
 *   the offered requests per minute (SageMaker counts an invocation when it arrives).
 * - `concurrent_requests_per_instance`: SageMakerVariantConcurrentRequestsPerModelHighResolution,
 *   which counts requests queued inside the container too: in flight (Little's law, completed
 *   requests/s × their latency without the backlog wait) plus the backlog.
 * - `async_backlog_per_instance`: ApproximateBacklogSizePerInstance, queued or in progress: the
 *   same in-flight plus backlog count.
 */
export type ScalingMetric = 'invocations_per_instance_per_minute' | 'concurrent_requests_per_instance' | 'async_backlog_per_instance';

export interface SimulatedPolicy extends TargetTrackingSettings {
  /** `backlog` runs `trackBacklog` (scale to and from zero), `target-tracking` runs `trackTarget`. */
  readonly type: 'target-tracking' | 'backlog';
  readonly metric: ScalingMetric;
  /** Seconds per datapoint, a multiple of `stepS`: 60 for the standard metrics, 10 for high resolution. */
  readonly metricPeriodS: number;
}

export interface SimulationSettings {
  /** Requests/s one instance serves at most (measured). */
  readonly capacityRps: number;
  /** Latency of one request on an otherwise idle instance. */
  readonly serviceTimeMs: number;
  /** A step whose latency proxy is above this counts toward the time over the SLO. */
  readonly sloMs: number;
  readonly instanceStartupS: number;
  readonly stepS: number;
  /** Instances in service when the trace starts. */
  readonly initialCapacity: number;
  readonly policies: readonly SimulatedPolicy[];
}

export interface TimelineStep {
  /** The step's start; it lasts `stepS`. */
  readonly atS: number;
  /** Offered load, the mean over the step. */
  readonly loadRps: number;
  readonly inService: number;
  readonly starting: number;
  /** What the instances in service can serve: `inService × capacityRps`. */
  readonly capacityRps: number;
  readonly servedRps: number;
  /** Null when the step completes no request. */
  readonly latencyProxyMs: number | null;
  /** Requests waiting at the step's end. */
  readonly backlog: number;
  /** Instances asked for after the decisions at the step's end (in service + starting). */
  readonly desired: number;
  readonly overSlo: boolean;
}

export interface ScaleEvent {
  readonly atS: number;
  readonly from: number;
  readonly to: number;
  readonly action: 'scale_out' | 'scale_in';
  /** Index of the deciding policy in `settings.policies`. */
  readonly policy: number;
  readonly metric: ScalingMetric;
  readonly rule: ScalingRule;
  readonly reason: string;
}

/** Requests are whole in the summary, instance-hours to the hundredth. */
export interface SimulationSummary {
  readonly durationS: number;
  readonly requests: number;
  /** Every instance counts from when it is asked for: it is held (and billed) while it starts. */
  readonly instanceHours: number;
  /** The most instances asked for at once (in service + starting). */
  readonly peakInstances: number;
  readonly sloMs: number;
  /**
   * Seconds in steps whose latency proxy exceeded `sloMs`, or at whose end a request still
   * waiting had already waited longer than `sloMs` (the case with no instance to serve it).
   */
  readonly timeOverSloS: number;
  /** Requests not served in the step they arrived in: they waited in the backlog. */
  readonly requestsThatWaited: number;
  readonly peakBacklog: number;
  /** The longest any request waited in the backlog, to the step. */
  readonly longestWaitS: number;
  readonly scaleOuts: number;
  readonly scaleIns: number;
  readonly scaleEvents: readonly ScaleEvent[];
}

export interface Simulation {
  readonly timeline: readonly TimelineStep[];
  readonly summary: SimulationSummary;
}

/**
 * The fluid model puts ρ = 1 in every step that has a backlog, where M/M/1 diverges; the cap
 * (20 × the service time) keeps the proxy finite and leaves the backlog's wait to say the rest.
 */
const MAX_UTILIZATION = 0.95;

/** Fractions of a request below this are rounding, not a backlog. */
const EPSILON_REQUESTS = 1e-6;

/** M/M/1 mean response time at utilization ρ (capped) plus the time spent in the backlog. */
export function latencyProxyMs(serviceTimeMs: number, utilization: number, backlogWaitMs: number): number {
  return serviceTimeMs / (1 - Math.min(utilization, MAX_UTILIZATION)) + backlogWaitMs;
}

/** Requests offered from the trace's first point up to `atS`; the rate holds past either end. */
function cumulativeRequests(trace: readonly TracePoint[]): (atS: number) => number {
  const totals = [0];
  for (let i = 1; i < trace.length; i++) {
    const [a, b] = [trace[i - 1]!, trace[i]!];
    totals.push(totals[i - 1]! + ((a.requestsPerS + b.requestsPerS) / 2) * (b.atS - a.atS));
  }
  const first = trace[0]!;
  const last = trace[trace.length - 1]!;
  return (atS) => {
    if (atS <= first.atS) return (atS - first.atS) * first.requestsPerS;
    if (atS >= last.atS) return totals[trace.length - 1]! + (atS - last.atS) * last.requestsPerS;
    // The last point at or before atS: a step (two points at one time) takes its later value.
    let [low, high] = [0, trace.length - 1];
    while (high - low > 1) {
      const middle = (low + high) >> 1;
      if (trace[middle]!.atS <= atS) low = middle;
      else high = middle;
    }
    const [a, b] = [trace[low]!, trace[high]!];
    const rateAt = a.requestsPerS + ((b.requestsPerS - a.requestsPerS) * (atS - a.atS)) / (b.atS - a.atS);
    return totals[low]! + ((a.requestsPerS + rateAt) / 2) * (atS - a.atS);
  };
}

interface Waiting {
  readonly arrivedAtS: number;
  count: number;
}

/** The backlog, FIFO: one entry per step whose arrivals could not all be served at once. */
class Backlog {
  readonly #entries: Waiting[] = [];
  #head = 0;
  /** Requests waiting. */
  size = 0;

  /** Serves up to `capacity` requests, oldest first, then this step's arrivals; the rest wait. */
  serve(arrivals: number, capacity: number, nowS: number) {
    let left = capacity;
    let waitedS = 0;
    let longestWaitS = 0;
    while (left > 0 && this.#head < this.#entries.length) {
      const oldest = this.#entries[this.#head]!;
      const taken = Math.min(left, oldest.count);
      waitedS += taken * (nowS - oldest.arrivedAtS);
      longestWaitS = Math.max(longestWaitS, nowS - oldest.arrivedAtS);
      oldest.count -= taken;
      left -= taken;
      if (oldest.count <= EPSILON_REQUESTS) this.#head++;
    }
    const servedFromBacklog = capacity - left;
    const servedAtOnce = Math.min(left, arrivals);
    const waiting = arrivals - servedAtOnce;
    if (waiting > EPSILON_REQUESTS) this.#entries.push({ arrivedAtS: nowS, count: waiting });
    this.size = this.#head < this.#entries.length ? Math.max(0, this.size - servedFromBacklog + waiting) : 0;
    const served = servedFromBacklog + servedAtOnce;
    return { served, waited: waiting, meanWaitS: served > 0 ? waitedS / served : 0, longestWaitS };
  }

  oldestAgeS(nowS: number): number {
    const oldest = this.#entries[this.#head];
    return oldest === undefined ? 0 : nowS - oldest.arrivedAtS;
  }
}

/** Instances in service and starting; starting ones are kept in the order they were asked for. */
class Fleet {
  readonly #readyAtS: number[] = [];
  inService: number;

  constructor(inService: number) {
    this.inService = inService;
  }

  get starting(): number {
    return this.#readyAtS.length;
  }

  get desired(): number {
    return this.inService + this.#readyAtS.length;
  }

  admitReady(nowS: number): void {
    while (this.#readyAtS.length > 0 && this.#readyAtS[0]! <= nowS) {
      this.#readyAtS.shift();
      this.inService++;
    }
  }

  resize(desired: number, readyAtS: number): void {
    while (this.desired < desired) this.#readyAtS.push(readyAtS);
    while (this.desired > desired) {
      if (this.#readyAtS.length > 0) this.#readyAtS.pop();
      else this.inService--;
    }
  }
}

/** What a policy sees for one step: its metric summed over the fleet. */
function metricTotal(metric: ScalingMetric, offeredRps: number, inFlight: number): number {
  return metric === 'invocations_per_instance_per_minute' ? offeredRps * 60 : inFlight;
}

/**
 * A policy's cooldowns count from its own decisions that took effect. When another policy's
 * larger decision overrules this one's scale-in, nothing was scaled in: its stamps stay as they were.
 */
function memoryAfter(decision: ScalingDecision, before: PolicyMemory, current: number, applied: number): PolicyMemory {
  const tookEffect = decision.action === 'hold' || Math.sign(decision.desired - current) === Math.sign(applied - current);
  if (tookEffect) return decision.memory;
  return { ...decision.memory, lastScaleOutAtS: before.lastScaleOutAtS, lastScaleInAtS: before.lastScaleInAtS };
}

export function simulate(trace: readonly TracePoint[], settings: SimulationSettings): Simulation {
  if (trace.length < 2) throw new RangeError('a trace needs at least two points');
  const { stepS, policies } = settings;
  const startS = trace[0]!.atS;
  // Whole steps: the last one may run past the trace's last point, at its rate.
  const steps = Math.ceil((trace[trace.length - 1]!.atS - startS) / stepS);
  const offered = cumulativeRequests(trace);
  const periodSteps = policies.map((policy) => Math.round(policy.metricPeriodS / stepS));

  const fleet = new Fleet(settings.initialCapacity);
  const backlog = new Backlog();
  const memories: PolicyMemory[] = policies.map(() => ({}));
  const sums = policies.map(() => 0);
  const timeline: TimelineStep[] = [];
  const scaleEvents: ScaleEvent[] = [];
  let requestsThatWaited = 0;
  let longestWaitS = 0;

  for (let step = 0; step < steps; step++) {
    const atS = startS + step * stepS;
    const endS = atS + stepS;
    fleet.admitReady(atS);
    const { inService, starting } = fleet;
    const arrivals = offered(endS) - offered(atS);
    const capacity = inService * settings.capacityRps * stepS;
    // Arrivals are stamped at mid-step, so a request served one step later waited one step.
    const { served, waited, meanWaitS, longestWaitS: stepLongestS } = backlog.serve(arrivals, capacity, atS + stepS / 2);
    requestsThatWaited += waited;
    longestWaitS = Math.max(longestWaitS, stepLongestS);

    const utilization = capacity > 0 ? served / capacity : 0;
    const latencyMs = served > 0 ? latencyProxyMs(settings.serviceTimeMs, utilization, meanWaitS * 1000) : null;
    const inFlight = (served / stepS) * (latencyProxyMs(settings.serviceTimeMs, utilization, 0) / 1000) + backlog.size;
    policies.forEach((policy, i) => (sums[i]! += metricTotal(policy.metric, arrivals / stepS, inFlight)));

    const current = fleet.desired;
    const due = periodSteps.map((period) => (step + 1) % period === 0);
    if (due.some(Boolean)) {
      const decisions = policies.map((policy, i): ScalingDecision => {
        if (!due[i]) return { desired: current, action: 'hold', rule: 'no_data', reason: 'no datapoint this step', memory: memories[i]! };
        const total = sums[i]! / periodSteps[i]!;
        sums[i] = 0;
        const decide = policy.type === 'backlog' ? trackBacklog : trackTarget;
        return decide(total, current, memories[i]!, policy, endS);
      });
      const applied = largestDecision(decisions);
      decisions.forEach((decision, i) => {
        if (due[i]) memories[i] = memoryAfter(decision, memories[i]!, current, applied.desired);
      });
      if (applied.desired !== current) {
        const policy = decisions.indexOf(applied);
        const action = applied.desired > current ? 'scale_out' : 'scale_in';
        scaleEvents.push({ atS: endS, from: current, to: applied.desired, action, policy, metric: policies[policy]!.metric, rule: applied.rule, reason: applied.reason });
        fleet.resize(applied.desired, endS + settings.instanceStartupS);
      }
    }

    timeline.push({
      atS,
      loadRps: arrivals / stepS,
      inService,
      starting,
      capacityRps: capacity / stepS,
      servedRps: served / stepS,
      latencyProxyMs: latencyMs,
      backlog: backlog.size,
      desired: fleet.desired,
      overSlo: (latencyMs !== null && latencyMs > settings.sloMs) || backlog.oldestAgeS(endS) * 1000 > settings.sloMs,
    });
  }

  const endS = startS + steps * stepS;
  return {
    timeline,
    summary: {
      durationS: steps * stepS,
      requests: Math.round(offered(endS)),
      instanceHours: Math.round((timeline.reduce((sum, row) => sum + row.inService + row.starting, 0) * stepS) / 36) / 100,
      peakInstances: timeline.reduce((peak, row) => Math.max(peak, row.inService + row.starting, row.desired), 0),
      sloMs: settings.sloMs,
      timeOverSloS: timeline.filter((row) => row.overSlo).length * stepS,
      requestsThatWaited: Math.round(requestsThatWaited),
      peakBacklog: Math.round(timeline.reduce((peak, row) => Math.max(peak, row.backlog), 0)),
      longestWaitS: Math.max(longestWaitS, backlog.oldestAgeS(endS)),
      scaleOuts: scaleEvents.filter((event) => event.action === 'scale_out').length,
      scaleIns: scaleEvents.filter((event) => event.action === 'scale_in').length,
      scaleEvents,
    },
  };
}
