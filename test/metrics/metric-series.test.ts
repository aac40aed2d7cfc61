import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { FastCounter, FastHistogram } from '../../src/metric-series.js';

/** `name{labels} value` lines of one metric in the registry's exposition, sorted. */
async function samples(registry: Registry, name: string): Promise<string[]> {
  return (await registry.metrics())
    .split('\n')
    .filter((line) => line.startsWith(name) && !line.startsWith('#'))
    .sort();
}

describe('FastCounter and FastHistogram', () => {
  const cases: Array<{ name: string; act: (counter: FastCounter<'model' | 'code'>) => void; expected: string[] }> = [
    {
      name: 'one series per pair of label values, counted apart',
      act: (c) => {
        c.inc(1, 'a', 'E1');
        c.inc(2, 'a', 'E1');
        c.inc(1, 'a', 'E2');
        c.inc(5, 'b', 'E1');
      },
      expected: ['errors_total{model="a",code="E1"} 3', 'errors_total{model="a",code="E2"} 1', 'errors_total{model="b",code="E1"} 5'],
    },
    {
      name: 'removing by the first label drops all its series',
      act: (c) => {
        c.inc(1, 'a', 'E1');
        c.inc(1, 'a', 'E2');
        c.inc(1, 'b', 'E1');
        c.removeWhere('model', 'a');
      },
      expected: ['errors_total{model="b",code="E1"} 1'],
    },
    {
      name: 'removing by the second label drops it under every first',
      act: (c) => {
        c.inc(1, 'a', 'E1');
        c.inc(1, 'a', 'E2');
        c.inc(1, 'b', 'E1');
        c.removeWhere('code', 'E1');
      },
      expected: ['errors_total{model="a",code="E2"} 1'],
    },
    {
      name: 'a series removed and observed again starts from zero',
      act: (c) => {
        c.inc(4, 'a', 'E1');
        c.removeWhere('model', 'a');
        c.inc(1, 'a', 'E1');
      },
      expected: ['errors_total{model="a",code="E1"} 1'],
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const registry = new Registry();
      const counter = new FastCounter({ name: 'errors_total', help: 'errors', labelNames: ['model', 'code'] as const, registry });
      c.act(counter);
      assert.deepEqual(await samples(registry, 'errors_total'), c.expected);
    });
  }

  it('a one-label histogram counts into cumulative buckets, sum and count per label value', async () => {
    const registry = new Registry();
    const histogram = new FastHistogram({ name: 'wait_seconds', help: 'wait', labelNames: ['model'] as const, buckets: [0.1, 1], registry });
    for (const value of [0.05, 0.5, 2]) histogram.observe(value, 'a');
    histogram.observe(0.5, 'b');
    assert.deepEqual(await samples(registry, 'wait_seconds'), [
      'wait_seconds_bucket{le="+Inf",model="a"} 3',
      'wait_seconds_bucket{le="+Inf",model="b"} 1',
      'wait_seconds_bucket{le="0.1",model="a"} 1',
      'wait_seconds_bucket{le="0.1",model="b"} 0',
      'wait_seconds_bucket{le="1",model="a"} 2',
      'wait_seconds_bucket{le="1",model="b"} 1',
      'wait_seconds_count{model="a"} 3',
      'wait_seconds_count{model="b"} 1',
      'wait_seconds_sum{model="a"} 2.55',
      'wait_seconds_sum{model="b"} 0.5',
    ]);
  });
});
