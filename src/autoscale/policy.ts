/**
 * Scaling policies as pure functions: (signal, capacity, memory, settings, now) → decision. No
 * timers and no I/O, so the in-process worker controller, the simulator and the tests run the
 * same code. Time is seconds on any monotonic clock the caller keeps.
 *
 * Target tracking follows Application Auto Scaling: capacity goes out in proportion to the
 * overshoot, at once; it comes in one step at a time, only after the metric has stayed under the
 * target for a while, and never during a cooldown (ours also holds scale-in for the scale-out
 * cooldown after a scale-out). The band between "needs more" and "could do with less", sized by
 * `scaleInThreshold`, is the hysteresis that keeps a steady load from flapping, also for metrics
 * that rise when capacity is removed (concurrency grows as latency does).
 */

export interface TargetTrackingSettings {
  /** The metric value one instance should carry (SageMaker's `TargetValue`). */
  readonly targetValue: number;
  readonly minCapacity: number;
  readonly maxCapacity: number;
  /** Seconds after a scale-out before capacity may come in (AAS: `ScaleOutCooldown`). */
  readonly scaleOutCooldownS: number;
  /** Seconds after a scale-in before the next scale-in (AAS: `ScaleInCooldown`). */
  readonly scaleInCooldownS: number;
  /** Seconds the metric must stay above the target before capacity goes out, from the first datapoint above (AAS's alarm, 3 one-minute datapoints: 120). */
  readonly scaleOutAfterS: number;
  /** Seconds the metric must stay under the scale-in threshold before capacity comes in (AAS's alarm, 15 one-minute datapoints: 840). */
  readonly scaleInAfterS: number;
  /** Capacity comes in only to what the load needs at this fraction of the target (AAS's scale-in alarm: 0.9). */
  readonly scaleInThreshold: number;
  /** The most capacity one scale-in removes: capacity comes in gradually. */
  readonly maxScaleInStep: number;
  /** Like AAS's `DisableScaleIn`: this policy only ever adds capacity. */
  readonly disableScaleIn: boolean;
}

/** What a policy remembers between decisions; start with `{}`. */
export interface PolicyMemory {
  readonly aboveSinceS?: number | undefined;
  readonly belowSinceS?: number | undefined;
  readonly lastScaleOutAtS?: number | undefined;
  readonly lastScaleInAtS?: number | undefined;
}

export type ScalingAction = 'scale_out' | 'scale_in' | 'hold';

/** Stable, low-cardinality names for why a policy decided as it did; `reason` carries the numbers. */
export type ScalingRule =
  | 'above_target'
  | 'above_target_waiting'
  | 'at_max'
  | 'below_target'
  | 'below_target_waiting'
  | 'scale_in_cooldown'
  | 'scale_out_cooldown'
  | 'scale_in_disabled'
  | 'within_target'
  | 'out_of_bounds'
  | 'no_data'
  | 'backlog_without_capacity'
  | 'idle_at_zero';

export interface ScalingDecision {
  readonly desired: number;
  readonly action: ScalingAction;
  readonly rule: ScalingRule;
  /** One line a person can read in a log: the rule with the numbers behind it. */
  readonly reason: string;
  readonly memory: PolicyMemory;
}

export const DEFAULT_TARGET_TRACKING: Omit<TargetTrackingSettings, 'targetValue' | 'minCapacity' | 'maxCapacity'> = {
  scaleOutCooldownS: 300,
  scaleInCooldownS: 300,
  scaleOutAfterS: 0,
  scaleInAfterS: 0,
  scaleInThreshold: 0.9,
  maxScaleInStep: 1,
  disableScaleIn: false,
};

/** Floating-point noise (2.0000000001 targets) must not ask for one instance more. */
const EPSILON = 1e-9;

/** Instances a total load needs at the target, within the bounds: proportional to the load. */
export function neededCapacity(total: number, settings: Pick<TargetTrackingSettings, 'targetValue' | 'minCapacity' | 'maxCapacity'>): number {
  const need = Math.ceil(total / settings.targetValue - EPSILON);
  return Math.min(settings.maxCapacity, Math.max(settings.minCapacity, need));
}

const format = (value: number) => (Number.isInteger(value) ? String(value) : value.toFixed(2));

/**
 * Target tracking on a metric that adds up across instances (invocations per minute, concurrent
 * requests, busy workers, backlog): `total` is its sum over the instances in service, so the
 * capacity it needs does not depend on how much of the current capacity is still starting, and
 * capacity just added counts toward the next scale-out as AAS prescribes. `total` undefined: no
 * data this period (AAS holds on missing data).
 */
export function trackTarget(
  total: number | undefined,
  capacity: number,
  memory: PolicyMemory,
  settings: TargetTrackingSettings,
  nowS: number,
): ScalingDecision {
  const decide = (desired: number, action: ScalingAction, rule: ScalingRule, reason: string, next: PolicyMemory = memory) =>
    ({ desired, action, rule, reason, memory: next }) satisfies ScalingDecision;
  const { minCapacity, maxCapacity, targetValue } = settings;

  if (capacity < minCapacity || capacity > maxCapacity) {
    const desired = Math.min(maxCapacity, Math.max(minCapacity, capacity));
    const action = desired > capacity ? 'scale_out' : 'scale_in';
    const stamp = action === 'scale_out' ? { lastScaleOutAtS: nowS } : { lastScaleInAtS: nowS };
    return decide(desired, action, 'out_of_bounds', `capacity ${capacity} outside [${minCapacity}, ${maxCapacity}]`, { ...memory, ...stamp });
  }
  if (total === undefined) return decide(capacity, 'hold', 'no_data', 'no datapoint this period');

  const need = neededCapacity(total, settings);
  const perInstance = capacity === 0 ? total : total / capacity;
  const numbers = `${format(perInstance)} per instance at ${capacity} (target ${format(targetValue)}) needs ${need}`;

  if (need > capacity) {
    const aboveSinceS = memory.aboveSinceS ?? nowS;
    const above = { ...memory, aboveSinceS, belowSinceS: undefined };
    if (nowS - aboveSinceS < settings.scaleOutAfterS) {
      return decide(capacity, 'hold', 'above_target_waiting', `${numbers}; above target for ${format(nowS - aboveSinceS)} of ${format(settings.scaleOutAfterS)} s`, above);
    }
    return decide(need, 'scale_out', 'above_target', numbers, { ...above, aboveSinceS: undefined, lastScaleOutAtS: nowS });
  }
  if (capacity === maxCapacity && total > targetValue * capacity) {
    return decide(capacity, 'hold', 'at_max', `${numbers}; at the maximum`, { ...memory, belowSinceS: undefined });
  }

  // The capacity that would keep every instance under the threshold, not merely under the target.
  const inward = neededCapacity(total, { ...settings, targetValue: targetValue * settings.scaleInThreshold });
  if (inward >= capacity) {
    return decide(capacity, 'hold', 'within_target', numbers, { ...memory, aboveSinceS: undefined, belowSinceS: undefined });
  }

  const belowSinceS = memory.belowSinceS ?? nowS;
  const below = { ...memory, aboveSinceS: undefined, belowSinceS };
  if (settings.disableScaleIn) return decide(capacity, 'hold', 'scale_in_disabled', `${numbers}; scale-in disabled`, below);
  if (nowS - belowSinceS < settings.scaleInAfterS) {
    return decide(capacity, 'hold', 'below_target_waiting', `${numbers}; under target for ${format(nowS - belowSinceS)} of ${format(settings.scaleInAfterS)} s`, below);
  }
  const sinceOut = memory.lastScaleOutAtS === undefined ? Infinity : nowS - memory.lastScaleOutAtS;
  if (sinceOut < settings.scaleOutCooldownS) {
    return decide(capacity, 'hold', 'scale_out_cooldown', `${numbers}; scaled out ${format(sinceOut)} s ago (cooldown ${format(settings.scaleOutCooldownS)} s)`, below);
  }
  const sinceIn = memory.lastScaleInAtS === undefined ? Infinity : nowS - memory.lastScaleInAtS;
  if (sinceIn < settings.scaleInCooldownS) {
    return decide(capacity, 'hold', 'scale_in_cooldown', `${numbers}; scaled in ${format(sinceIn)} s ago (cooldown ${format(settings.scaleInCooldownS)} s)`, below);
  }
  const desired = Math.max(inward, capacity - settings.maxScaleInStep);
  return decide(desired, 'scale_in', 'below_target', numbers, { ...below, lastScaleInAtS: nowS });
}

/**
 * Async inference as SageMaker scales it: target tracking on backlog per instance (queued plus
 * running requests), which may bring capacity to zero once nothing is left, plus the step rule
 * for `HasBacklogWithoutCapacity`: at zero instances target tracking sees no datapoint, so a
 * backlog adds one instance once it has waited `scaleOutAfterS` (the step alarm's datapoints).
 */
export function trackBacklog(
  backlog: number,
  capacity: number,
  memory: PolicyMemory,
  settings: TargetTrackingSettings,
  nowS: number,
): ScalingDecision {
  if (capacity === 0 && backlog > 0) {
    const aboveSinceS = memory.aboveSinceS ?? nowS;
    const reason = `${format(backlog)} requests waiting and no instance`;
    if (nowS - aboveSinceS < settings.scaleOutAfterS) {
      return {
        desired: 0,
        action: 'hold',
        rule: 'above_target_waiting',
        reason: `${reason} for ${format(nowS - aboveSinceS)} of ${format(settings.scaleOutAfterS)} s`,
        memory: { ...memory, aboveSinceS, belowSinceS: undefined },
      };
    }
    const desired = Math.min(settings.maxCapacity, Math.max(1, settings.minCapacity));
    return {
      desired,
      action: 'scale_out',
      rule: 'backlog_without_capacity',
      reason,
      memory: { ...memory, aboveSinceS: undefined, belowSinceS: undefined, lastScaleOutAtS: nowS },
    };
  }
  if (capacity === 0 && settings.minCapacity === 0) {
    return { desired: 0, action: 'hold', rule: 'idle_at_zero', reason: 'no backlog and no instance', memory };
  }
  return trackTarget(backlog, capacity, memory, settings, nowS);
}

/** With several policies on one target the largest capacity wins, as in Application Auto Scaling. */
export function largestDecision(decisions: readonly ScalingDecision[]): ScalingDecision {
  if (decisions.length === 0) throw new RangeError('largestDecision needs at least one decision');
  return decisions.reduce((best, next) => (next.desired > best.desired ? next : best));
}
