import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { constraintsFrom } from '../../src/monitor/constraints.js';
import { parseCsv } from '../../src/monitor/csv-text.js';
import { statisticsOf } from '../../src/monitor/statistics.js';

// a: integers spread so every bucket edge is exact; b: fractional with a gap; c: strings;
// d: integers however they are written; the last row is short, so its c and d are missing.
const TABLE = {
  header: ['a', 'b', 'c', 'd'],
  rows: [
    ['0', '0.5', 'x', '3.0'],
    ['10', '', 'y', '1e1'],
    ['20', '-1.5', 'x', ' 7 '],
    ['30', '2', 'x', '7'],
    ['40', '0.25'],
  ],
};

describe('statistics.json', () => {
  const statistics = statisticsOf(TABLE);
  const [a, b, c, d] = statistics.features;

  it('counts the rows and infers each column type', () => {
    assert.equal(statistics.version, 0);
    assert.deepEqual(statistics.dataset, { item_count: 5 });
    assert.deepEqual(
      statistics.features.map((f) => f.inferred_type),
      ['Integral', 'Fractional', 'String', 'Integral'],
    );
  });

  it('summarises a numeric column with 10 equal-width buckets and its values as the sketch', () => {
    assert.deepEqual(a?.numerical_statistics, {
      common: { num_present: 5, num_missing: 0 },
      mean: 20,
      sum: 100,
      std_dev: Math.sqrt(200),
      min: 0,
      max: 40,
      distribution: {
        kll: {
          buckets: [1, 0, 1, 0, 0, 1, 0, 1, 0, 1].map((count, i) => ({ lower_bound: 4 * i, upper_bound: 4 * (i + 1), count })),
          sketch: { parameters: { c: 0.64, k: 2048 }, data: [[0, 10, 20, 30, 40]] },
        },
      },
    });
  });

  it('counts missing cells, short rows included', () => {
    const numbers = b?.numerical_statistics;
    assert.deepEqual(numbers?.common, { num_present: 4, num_missing: 1 });
    assert.equal(numbers?.sum, 1.25);
    assert.equal(numbers?.min, -1.5);
    assert.equal(numbers?.max, 2);
    assert.equal(numbers?.distribution.kll.buckets.length, 10);
    assert.equal(numbers?.distribution.kll.buckets.reduce((total, bucket) => total + bucket.count, 0), 4);
    assert.deepEqual(d?.numerical_statistics?.common, { num_present: 4, num_missing: 1 });
    assert.equal(d?.numerical_statistics?.sum, 27);
  });

  it('summarises a string column by category, most frequent first', () => {
    assert.deepEqual(c?.string_statistics, {
      common: { num_present: 4, num_missing: 1 },
      distinct_count: 2,
      distribution: { categorical: { buckets: [{ value: 'x', count: 3 }, { value: 'y', count: 1 }] } },
    });
  });

  it('keeps an evenly spaced sample of at most k values in the sketch', () => {
    const rows = Array.from({ length: 5000 }, (_, i) => [String(i)]);
    const sketch = statisticsOf({ header: ['n'], rows }).features[0]?.numerical_statistics?.distribution.kll.sketch.data[0];
    assert.equal(sketch?.length, 2048);
    assert.equal(sketch?.[0], 0);
    assert.equal(sketch?.[2047], 4999);
  });

  it('calls a column with a non-numeric cell, or with no cell present, String', () => {
    const mixed = statisticsOf({ header: ['m', 'e'], rows: [['1', ''], ['NaN', ' ']] });
    assert.deepEqual(
      mixed.features.map((f) => f.inferred_type),
      ['String', 'String'],
    );
    assert.equal(mixed.features[1]?.string_statistics?.distinct_count, 0);
  });
});

describe('constraints.json', () => {
  const constraints = constraintsFrom(statisticsOf(TABLE));

  it('suggests completeness, non-negativity and small domains per feature', () => {
    assert.deepEqual(constraints.features, [
      { name: 'a', inferred_type: 'Integral', completeness: 1, num_constraints: { is_non_negative: true } },
      { name: 'b', inferred_type: 'Fractional', completeness: 0.8, num_constraints: { is_non_negative: false } },
      { name: 'c', inferred_type: 'String', completeness: 0.8, string_constraints: { domains: ['x', 'y'] } },
      { name: 'd', inferred_type: 'Integral', completeness: 0.8, num_constraints: { is_non_negative: true } },
    ]);
  });

  it("carries Model Monitor's default monitoring configuration", () => {
    assert.deepEqual(constraints.version, 0);
    assert.deepEqual(constraints.monitoring_config, {
      evaluate_constraints: 'Enabled',
      emit_metrics: 'Enabled',
      datatype_check_threshold: 0.1,
      domain_content_threshold: 0.1,
      distribution_constraints: { perform_comparison: 'Enabled', comparison_threshold: 0.1, comparison_method: 'Robust' },
    });
  });
});

describe('CSV text', () => {
  it('reads quoted fields, doubled quotes, CRLF, a BOM and blank lines', () => {
    assert.deepEqual(parseCsv('\uFEFFa,"b,1"\r\n\r\n"say ""hi""",\n"multi\nline",x\n'), [
      ['a', 'b,1'],
      ['say "hi"', ''],
      ['multi\nline', 'x'],
    ]);
  });
});
