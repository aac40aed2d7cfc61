import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkCapture, type Baseline } from '../../src/monitor/check.js';
import { constraintsFrom } from '../../src/monitor/constraints.js';
import { compareNumeric, judgeDrift, ksCriticalValue } from '../../src/monitor/drift.js';
import { statisticsOf, type NumericalStatistics } from '../../src/monitor/statistics.js';

/** count: 0..99 evenly; price: fractional; colour: three categories. */
function baseline(): Baseline {
  const colours = ['red', 'green', 'blue'];
  const rows = Array.from({ length: 300 }, (_, i) => [String(i % 100), (i / 7).toFixed(2), colours[i % 3] as string]);
  const statistics = statisticsOf({ header: ['count', 'price', 'colour'], rows });
  return { statistics, constraints: constraintsFrom(statistics) };
}

const kinds = (rows: string[][], base = baseline()) =>
  checkCapture(base, rows).violations.map((v) => `${v.feature_name}:${v.constraint_check_type}`);

/** Rows like the baseline's, `n` of them. */
const likeBaseline = (n: number) => Array.from({ length: n }, (_, i) => [String(i % 100), ((i * 3) / 7).toFixed(2), ['red', 'green', 'blue'][i % 3] as string]);

describe('checking captured rows', () => {
  it('finds nothing in rows like the baseline, and nothing at all in no rows', () => {
    assert.deepEqual(kinds(likeBaseline(100)), []);
    assert.deepEqual(checkCapture(baseline(), []).violations, []);
  });

  it('reports missing and extra columns by position', () => {
    assert.deepEqual(kinds(likeBaseline(100).map((row) => row.slice(0, 2))), ['colour:missing_column_check']);
    assert.deepEqual(kinds(likeBaseline(100).map((row) => [...row, '1'])), ['_c3:extra_column_check']);
  });

  it('reports completeness below the baseline', () => {
    const rows = likeBaseline(100).map((row, i) => (i === 0 ? ['', row[1] as string, row[2] as string] : row));
    assert.deepEqual(kinds(rows), ['count:completeness_check']);
  });

  it('accepts integers for a Fractional feature but not fractions for an Integral one, past the threshold', () => {
    const asIntegers = likeBaseline(100).map(([count, price, colour]) => [count as string, String(Math.round(Number(price))), colour as string]);
    assert.deepEqual(kinds(asIntegers), []);
    const someFractions = likeBaseline(100).map(([count, price, colour], i) => [i < 10 ? `${count}.5` : (count as string), price as string, colour as string]);
    assert.deepEqual(kinds(someFractions), []);
    const manyFractions = likeBaseline(100).map(([count, price, colour], i) => [i < 11 ? `${count}.5` : (count as string), price as string, colour as string]);
    assert.deepEqual(kinds(manyFractions), ['count:data_type_check']);
  });

  it("reports values outside a string feature's domain, and its drift", () => {
    const rows = likeBaseline(100).map(([count, price], i) => [count as string, price as string, i % 2 ? 'red' : 'purple']);
    assert.deepEqual(kinds(rows), ['colour:categorical_values_check', 'colour:baseline_drift_check']);
  });

  it('lets "Simple" compare with the bare threshold', () => {
    const base = baseline();
    // Shifted by 15 of its 0..99 range: 0.15 away, above 0.1 but within chance for 100 rows.
    const rows = likeBaseline(100).map(([count, price, colour]) => [String(Number(count) + 15), price as string, colour as string]);
    assert.deepEqual(kinds(rows, base), []);
    base.constraints.monitoring_config.distribution_constraints.comparison_method = 'Simple';
    assert.deepEqual(kinds(rows, base), ['count:baseline_drift_check']);
  });
});

describe('drift distance', () => {
  const numbers = baseline().statistics.features[0]?.numerical_statistics as NumericalStatistics;
  const config = baseline().constraints.monitoring_config;

  it('is the largest gap between the cumulative distributions over the buckets and two overflow bins', () => {
    assert.equal(compareNumeric(numbers, Array.from({ length: 100 }, (_, i) => i)).distance, 0);
    const above = compareNumeric(numbers, [50, 150, 150, 150]);
    assert.ok(Math.abs(above.distance - 0.75) < 1e-12);
    assert.deepEqual(above.bins.at(-1), { label: '> 99', baseline: 0, captured: 0.75 });
    assert.equal(above.bins.length, 11);
  });

  it("uses the KS critical value at 1% split over the features when it exceeds the threshold", () => {
    assert.equal(ksCriticalValue(0.01, 5000, 200).toFixed(4), '0.1174');
    assert.equal(ksCriticalValue(0.01 / 20, 5000, 200).toFixed(4), '0.1468');
    const comparison = { distance: 0.12, bins: [], baselineCount: 5000, capturedCount: 200 };
    assert.deepEqual(judgeDrift(comparison, config, 20).drifted, false);
    const large = { ...comparison, baselineCount: 1e6, capturedCount: 1e6 };
    assert.deepEqual(judgeDrift(large, config, 20).limit, 0.1);
  });
});
