import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_TARGET_TRACKING,
  largestDecision,
  neededCapacity,
  trackBacklog,
  trackTarget,
  type PolicyMemory,
  type ScalingAction,
  type ScalingRule,
  type TargetTrackingSettings,
} from '../../src/autoscale/policy.js';

const settings: TargetTrackingSettings = {
  ...DEFAULT_TARGET_TRACKING,
  targetValue: 10,
  minCapacity: 1,
  maxCapacity: 8,
  scaleOutCooldownS: 60,
  scaleInCooldownS: 120,
  scaleInAfterS: 30,
};

interface Case {
  readonly name: string;
  readonly total: number | undefined;
  readonly capacity: number;
  readonly memory?: PolicyMemory;
  readonly settings?: Partial<TargetTrackingSettings>;
  readonly nowS?: number;
  readonly expect: { desired: number; action: ScalingAction; rule: ScalingRule };
}

describe('trackTarget', () => {
  const cases: Case[] = [
    { name: 'on target: hold', total: 20, capacity: 2, expect: { desired: 2, action: 'hold', rule: 'within_target' } },
    { name: 'out in proportion to the overshoot, at once', total: 55, capacity: 2, expect: { desired: 6, action: 'scale_out', rule: 'above_target' } },
    { name: 'a little over: one more', total: 21, capacity: 2, expect: { desired: 3, action: 'scale_out', rule: 'above_target' } },
    { name: 'never past the maximum', total: 500, capacity: 2, expect: { desired: 8, action: 'scale_out', rule: 'above_target' } },
    { name: 'at the maximum and over: hold, said so', total: 500, capacity: 8, expect: { desired: 8, action: 'hold', rule: 'at_max' } },
    {
      name: 'capacity still starting counts toward the next scale-out',
      total: 55,
      capacity: 6,
      memory: { lastScaleOutAtS: 990 },
      expect: { desired: 6, action: 'hold', rule: 'within_target' },
    },
    {
      name: 'during the scale-out cooldown, more load still scales out (AAS)',
      total: 75,
      capacity: 6,
      memory: { lastScaleOutAtS: 990 },
      expect: { desired: 8, action: 'scale_out', rule: 'above_target' },
    },
    {
      name: 'under the band but one instance fewer would be over target: hold (hysteresis)',
      total: 25,
      capacity: 3,
      memory: { belowSinceS: 0 },
      expect: { desired: 3, action: 'hold', rule: 'within_target' },
    },
    {
      name: 'one fewer would run at 95 % of target: hold, so a metric that rises as capacity leaves does not flap',
      total: 19,
      capacity: 3,
      memory: { belowSinceS: 0 },
      expect: { desired: 3, action: 'hold', rule: 'within_target' },
    },
    {
      name: 'under target, first datapoint: wait',
      total: 5,
      capacity: 4,
      expect: { desired: 4, action: 'hold', rule: 'below_target_waiting' },
    },
    {
      name: 'under target long enough: one step in, not straight to the need',
      total: 5,
      capacity: 4,
      memory: { belowSinceS: 900 },
      expect: { desired: 3, action: 'scale_in', rule: 'below_target' },
    },
    {
      name: 'a larger scale-in step, bounded by the need',
      total: 5,
      capacity: 4,
      memory: { belowSinceS: 900 },
      settings: { maxScaleInStep: 10 },
      expect: { desired: 1, action: 'scale_in', rule: 'below_target' },
    },
    {
      name: 'never below the minimum',
      total: 0,
      capacity: 2,
      memory: { belowSinceS: 0 },
      settings: { minCapacity: 2 },
      expect: { desired: 2, action: 'hold', rule: 'within_target' },
    },
    {
      name: 'no scale-in during the scale-in cooldown',
      total: 5,
      capacity: 4,
      memory: { belowSinceS: 0, lastScaleInAtS: 950 },
      expect: { desired: 4, action: 'hold', rule: 'scale_in_cooldown' },
    },
    {
      name: 'no scale-in during the scale-out cooldown',
      total: 5,
      capacity: 4,
      memory: { belowSinceS: 0, lastScaleOutAtS: 990 },
      expect: { desired: 4, action: 'hold', rule: 'scale_out_cooldown' },
    },
    {
      name: 'the scale-in cooldown does not hold back a scale-out (AAS)',
      total: 95,
      capacity: 4,
      memory: { lastScaleInAtS: 999 },
      expect: { desired: 8, action: 'scale_out', rule: 'above_target' },
    },
    {
      name: 'scale-in disabled',
      total: 0,
      capacity: 4,
      memory: { belowSinceS: 0 },
      settings: { disableScaleIn: true },
      expect: { desired: 4, action: 'hold', rule: 'scale_in_disabled' },
    },
    { name: 'no datapoint: hold', total: undefined, capacity: 3, expect: { desired: 3, action: 'hold', rule: 'no_data' } },
    { name: 'below the minimum: brought up', total: 0, capacity: 0, expect: { desired: 1, action: 'scale_out', rule: 'out_of_bounds' } },
    {
      name: 'above the maximum (lowered at run time): brought down',
      total: 0,
      capacity: 12,
      expect: { desired: 8, action: 'scale_in', rule: 'out_of_bounds' },
    },
    {
      name: 'over target but waiting for the alarm',
      total: 55,
      capacity: 2,
      settings: { scaleOutAfterS: 180 },
      memory: { aboveSinceS: 900 },
      expect: { desired: 2, action: 'hold', rule: 'above_target_waiting' },
    },
    {
      name: 'over target as long as the alarm needs',
      total: 55,
      capacity: 2,
      settings: { scaleOutAfterS: 180 },
      memory: { aboveSinceS: 820 },
      expect: { desired: 6, action: 'scale_out', rule: 'above_target' },
    },
    {
      name: 'floating-point noise does not ask for one more',
      total: 0.1 + 0.2,
      capacity: 3,
      settings: { targetValue: 0.1 },
      expect: { desired: 3, action: 'hold', rule: 'within_target' },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const decision = trackTarget(c.total, c.capacity, c.memory ?? {}, { ...settings, ...c.settings }, c.nowS ?? 1000);
      assert.deepEqual({ desired: decision.desired, action: decision.action, rule: decision.rule }, c.expect, decision.reason);
      assert.ok(decision.reason.length > 0);
    });
  }

  it('remembers what it needs: when the metric went under, when it last scaled', () => {
    const first = trackTarget(5, 4, {}, settings, 100);
    assert.equal(first.memory.belowSinceS, 100);
    const waiting = trackTarget(5, 4, first.memory, settings, 120);
    assert.equal(waiting.rule, 'below_target_waiting');
    const scaled = trackTarget(5, 4, waiting.memory, settings, 130);
    assert.deepEqual([scaled.action, scaled.memory.lastScaleInAtS], ['scale_in', 130]);
    // Back on target: the "under since" clock starts again next time.
    assert.equal(trackTarget(30, 3, scaled.memory, settings, 140).memory.belowSinceS, undefined);
  });

  it('a steady load never flaps: the same metric decided 1,000 times changes capacity at most once', () => {
    for (const total of [0, 3, 9.5, 10, 14, 19, 20, 21, 37, 64, 79.9]) {
      let capacity = 4;
      let memory: PolicyMemory = {};
      let changes = 0;
      for (let nowS = 0; nowS < 10_000; nowS += 10) {
        const decision = trackTarget(total, capacity, memory, settings, nowS);
        memory = decision.memory;
        if (decision.desired !== capacity) changes += 1;
        capacity = decision.desired;
      }
      // Scale-in goes one step at a time, so count direction reversals instead of steps.
      assert.ok(capacity === neededCapacity(total, settings) || capacity > neededCapacity(total, settings), `total ${total}`);
      assert.ok(changes <= Math.max(1, 4 - neededCapacity(total, settings)), `total ${total}: ${changes} changes`);
    }
  });
});

describe('trackBacklog', () => {
  const backlog: TargetTrackingSettings = { ...settings, targetValue: 5, minCapacity: 0, maxCapacity: 4 };
  const cases: Array<Omit<Case, 'settings'>> = [
    { name: 'work and no instance: one (HasBacklogWithoutCapacity)', total: 1, capacity: 0, expect: { desired: 1, action: 'scale_out', rule: 'backlog_without_capacity' } },
    { name: 'a big backlog at zero still starts with one', total: 400, capacity: 0, expect: { desired: 1, action: 'scale_out', rule: 'backlog_without_capacity' } },
    { name: 'nothing and nobody: stay at zero', total: 0, capacity: 0, expect: { desired: 0, action: 'hold', rule: 'idle_at_zero' } },
    { name: 'backlog per instance over target: out in proportion', total: 17, capacity: 1, expect: { desired: 4, action: 'scale_out', rule: 'above_target' } },
    { name: 'backlog drained long enough: down to zero', total: 0, capacity: 1, memory: { belowSinceS: 0 }, expect: { desired: 0, action: 'scale_in', rule: 'below_target' } },
    { name: 'a running request keeps its instance', total: 1, capacity: 1, memory: { belowSinceS: 0 }, expect: { desired: 1, action: 'hold', rule: 'within_target' } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const decision = trackBacklog(c.total!, c.capacity, c.memory ?? {}, backlog, 1000);
      assert.deepEqual({ desired: decision.desired, action: decision.action, rule: decision.rule }, c.expect, decision.reason);
    });
  }

  it("leaves zero only once the backlog has waited as long as the step alarm's datapoints", () => {
    const alarm = { ...backlog, scaleOutAfterS: 60 };
    const first = trackBacklog(3, 0, {}, alarm, 1000);
    assert.deepEqual([first.desired, first.rule], [0, 'above_target_waiting']);
    const second = trackBacklog(3, 0, first.memory, alarm, 1060);
    assert.deepEqual([second.desired, second.rule], [1, 'backlog_without_capacity']);
  });

  it('with a minimum of one, an idle endpoint keeps one instance', () => {
    const decision = trackBacklog(0, 0, {}, { ...backlog, minCapacity: 1 }, 0);
    assert.deepEqual([decision.desired, decision.rule], [1, 'out_of_bounds']);
  });
});

describe('largestDecision', () => {
  it('the policy asking for the most capacity wins; scale-in only when all agree', () => {
    const out = trackTarget(55, 2, {}, settings, 0);
    const hold = trackTarget(20, 2, {}, settings, 0);
    const inward = trackTarget(1, 2, { belowSinceS: -1000 }, settings, 0);
    assert.equal(largestDecision([hold, out, inward]), out);
    assert.equal(largestDecision([inward, hold]), hold);
    assert.throws(() => largestDecision([]), RangeError);
  });
});
