import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DecayingAverage, LoadSignals, SlidingCount } from '../../src/autoscale/load-signals.js';

describe('SlidingCount', () => {
  const cases: Array<{ name: string; events: number[]; atMs: number; expected: number }> = [
    { name: 'nothing yet', events: [], atMs: 5_000, expected: 0 },
    { name: 'events within the minute', events: [0, 10, 30_000, 59_000], atMs: 59_500, expected: 4 },
    { name: 'the oldest second ages out whole', events: [0, 999, 1_000], atMs: 60_000, expected: 1 },
    { name: 'a minute later, all gone', events: [0, 1_000, 2_000], atMs: 125_000, expected: 0 },
    { name: 'a slot reused after a lap counts only its new events', events: [500, 60_500, 60_600], atMs: 61_000, expected: 2 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const count = new SlidingCount(60_000, 1_000);
      for (const at of c.events) count.add(at);
      assert.equal(count.total(c.atMs), c.expected);
    });
  }
});

describe('DecayingAverage', () => {
  it('moves toward a new level by 1 - 1/e per time constant, and stays at a steady one', () => {
    const average = new DecayingAverage(10_000, 0);
    average.set(10, 0);
    assert.equal(average.read(0), 0);
    assert.ok(Math.abs(average.read(10_000) - 10 * (1 - Math.exp(-1))) < 1e-9);
    assert.ok(Math.abs(average.read(200_000) - 10) < 1e-6);
    average.set(0, 200_000);
    assert.ok(Math.abs(average.read(210_000) - 10 * Math.exp(-1)) < 1e-6);
  });
});

describe('LoadSignals', () => {
  it('counts requests in the container until answered, and answers per minute', () => {
    let nowMs = 0;
    const signals = new LoadSignals(() => nowMs);
    signals.arrived();
    signals.arrived();
    assert.equal(signals.concurrent, 2);
    nowMs = 100;
    signals.answered();
    assert.equal(signals.concurrent, 1);
    assert.equal(signals.invocationsPerMinute(), 1);
    nowMs = 30_000;
    signals.answered();
    assert.deepEqual([signals.concurrent, signals.invocationsPerMinute()], [0, 2]);
    nowMs = 61_000;
    assert.equal(signals.invocationsPerMinute(), 1);
  });

  it('averages concurrency over time: a steady 4 reads 4', () => {
    let nowMs = 0;
    const signals = new LoadSignals(() => nowMs);
    for (let i = 0; i < 4; i += 1) signals.arrived();
    nowMs = 120_000;
    assert.ok(Math.abs(signals.meanConcurrency() - 4) < 1e-3);
  });
});
