/**
 * Distance between a baseline distribution and a captured one, and when it counts as drift.
 *
 * Numeric features: the Kolmogorov-Smirnov statistic over the baseline's 10 histogram buckets,
 * i.e. the largest gap between the two cumulative distributions at the bucket edges, with captured
 * values below the baseline's min or above its max in two overflow bins. String features: the
 * L-infinity distance between category frequencies.
 *
 * "Simple" drifts when the distance exceeds comparison_threshold. "Robust" also asks it to exceed
 * the two-sample KS critical value c(a) * sqrt((n + m) / (n m)) at a = 0.01 divided by the number
 * of features checked (Bonferroni), so that a whole check raises a false alarm in at most 1% of
 * windows. Sample size matters: the 200 rows of churn-requests.csv (the first 200 of
 * churn-train.csv) are 0.120 away from their baseline on f19 by chance, above both 0.1 and the
 * single-feature critical value for 200 against 5,000 rows (0.117); the limit for 20 features is
 * 0.147. KS at fewer points can only be smaller, so binning keeps the test within a. For one category's frequency the same bound is at least 3.2 standard
 * errors, so it serves string features too.
 */
import type { MonitoringConfig } from './constraints.js';
import { BUCKET_COUNT, bucketIndex, type NumericalStatistics, type StringStatistics } from './statistics.js';

export interface DriftBin {
  readonly label: string;
  /** Fractions of each side's values that fall in this bin. */
  readonly baseline: number;
  readonly captured: number;
}

export interface Comparison {
  readonly distance: number;
  readonly bins: readonly DriftBin[];
  readonly baselineCount: number;
  readonly capturedCount: number;
}

export interface Drift extends Comparison {
  /** The distance above which the feature has drifted. */
  readonly limit: number;
  readonly drifted: boolean;
}

/** Family-wise: the chance that a check of all features raises a false alarm. */
const SIGNIFICANCE = 0.01;

export function ksCriticalValue(alpha: number, baselineCount: number, capturedCount: number): number {
  const c = Math.sqrt(-Math.log(alpha / 2) / 2);
  return c * Math.sqrt((baselineCount + capturedCount) / (baselineCount * capturedCount));
}

/** `featureCount`: how many features the check compares, each at SIGNIFICANCE / featureCount. */
export function judgeDrift(comparison: Comparison, config: MonitoringConfig, featureCount: number): Drift {
  const { comparison_threshold: threshold, comparison_method: method } = config.distribution_constraints;
  const critical = ksCriticalValue(SIGNIFICANCE / featureCount, comparison.baselineCount, comparison.capturedCount);
  const limit = method === 'Simple' ? threshold : Math.max(threshold, critical);
  return { ...comparison, limit, drifted: comparison.distance > limit };
}

export function compareNumeric(baseline: NumericalStatistics, values: readonly number[]): Comparison {
  const buckets = baseline.distribution.kll.buckets;
  const baselineCount = buckets.reduce((total, bucket) => total + bucket.count, 0);
  const { min, max } = baseline;
  // Bins: below min, the baseline's buckets, above max.
  const capturedCounts = new Array<number>(BUCKET_COUNT + 2).fill(0);
  for (const value of values) {
    const bin = value < min ? 0 : value > max ? BUCKET_COUNT + 1 : bucketIndex(value, min, max) + 1;
    capturedCounts[bin] = (capturedCounts[bin] ?? 0) + 1;
  }
  const bins: DriftBin[] = capturedCounts.map((count, bin) => ({
    label: bin === 0 ? `< ${short(min)}` : bin > BUCKET_COUNT ? `> ${short(max)}` : bucketLabel(buckets[bin - 1], bin === BUCKET_COUNT),
    baseline: bin === 0 || bin > BUCKET_COUNT ? 0 : (buckets[bin - 1]?.count ?? 0) / baselineCount,
    captured: count / values.length,
  }));

  let baselineCdf = 0;
  let capturedCdf = 0;
  let distance = 0;
  for (const bin of bins) {
    baselineCdf += bin.baseline;
    capturedCdf += bin.captured;
    distance = Math.max(distance, Math.abs(baselineCdf - capturedCdf));
  }
  const shown = bins.filter((bin, i) => (i !== 0 && i <= BUCKET_COUNT) || bin.captured > 0);
  return { distance, bins: shown, baselineCount, capturedCount: values.length };
}

export function compareCategorical(baseline: StringStatistics, values: readonly string[]): Comparison {
  const baselineCount = baseline.common.num_present;
  const capturedCounts = new Map<string, number>();
  for (const value of values) capturedCounts.set(value, (capturedCounts.get(value) ?? 0) + 1);
  const baselineCounts = new Map(baseline.distribution.categorical.buckets.map((bucket) => [bucket.value, bucket.count]));
  const categories = [...new Set([...baselineCounts.keys(), ...capturedCounts.keys()])];
  const bins = categories.map((value) => ({
    label: value,
    baseline: (baselineCounts.get(value) ?? 0) / baselineCount,
    captured: (capturedCounts.get(value) ?? 0) / values.length,
  }));
  const distance = bins.reduce((largest, bin) => Math.max(largest, Math.abs(bin.baseline - bin.captured)), 0);
  return { distance, bins, baselineCount, capturedCount: values.length };
}

function bucketLabel(bucket: { lower_bound: number; upper_bound: number } | undefined, last: boolean): string {
  if (!bucket) return '';
  return `[${short(bucket.lower_bound)}, ${short(bucket.upper_bound)}${last ? ']' : ')'}`;
}

/** Four significant digits: enough to tell buckets apart on an axis. */
function short(value: number): string {
  return String(Number(value.toPrecision(4)));
}
