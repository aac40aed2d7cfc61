/**
 * Model Monitor's statistics.json for a table of string cells: per column, numeric summaries with
 * a 10-bucket histogram and a quantile sketch, or category counts for string columns.
 */
export type InferredType = 'Integral' | 'Fractional' | 'String';

export interface Table {
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

export interface CommonStatistics {
  num_present: number;
  num_missing: number;
}

export interface HistogramBucket {
  lower_bound: number;
  upper_bound: number;
  count: number;
}

export interface NumericalStatistics {
  common: CommonStatistics;
  mean: number;
  sum: number;
  std_dev: number;
  min: number;
  max: number;
  distribution: {
    kll: {
      buckets: HistogramBucket[];
      sketch: { parameters: { c: number; k: number }; data: number[][] };
    };
  };
}

export interface StringStatistics {
  common: CommonStatistics;
  distinct_count: number;
  distribution: { categorical: { buckets: { value: string; count: number }[] } };
}

export interface FeatureStatistics {
  name: string;
  inferred_type: InferredType;
  numerical_statistics?: NumericalStatistics;
  string_statistics?: StringStatistics;
}

export interface Statistics {
  version: 0;
  dataset: { item_count: number };
  features: FeatureStatistics[];
}

export const BUCKET_COUNT = 10;
const SKETCH_PARAMETERS = { c: 0.64, k: 2048 };
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export function isMissing(cell: string): boolean {
  return cell.trim() === '';
}

/** The cell's value when it is a finite decimal number; "NaN", "0x10" and the like are strings. */
export function parseNumber(cell: string): number | undefined {
  const text = cell.trim();
  if (!DECIMAL.test(text)) return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

/** Integral by value, so "3.0000" is Integral: a CSV writer's formatting does not change the type. */
export function cellType(cell: string): InferredType {
  const value = parseNumber(cell);
  if (value === undefined) return 'String';
  return Number.isInteger(value) ? 'Integral' : 'Fractional';
}

/** Every column of the table, in header order; a short row's absent cells count as missing. */
export function statisticsOf(table: Table): Statistics {
  return {
    version: 0,
    dataset: { item_count: table.rows.length },
    features: table.header.map((name, column) => featureStatistics(name, table.rows.map((row) => row[column] ?? ''))),
  };
}

function featureStatistics(name: string, cells: readonly string[]): FeatureStatistics {
  const present = cells.filter((cell) => !isMissing(cell));
  const common = { num_present: present.length, num_missing: cells.length - present.length };
  const inferred_type = inferType(present);
  if (inferred_type === 'String') return { name, inferred_type, string_statistics: stringStatistics(common, present) };
  const values = present.map((cell) => parseNumber(cell) as number);
  return { name, inferred_type, numerical_statistics: numericalStatistics(common, values) };
}

/** All integers: Integral; all numbers: Fractional; anything else, or nothing present: String. */
function inferType(present: readonly string[]): InferredType {
  if (present.length === 0) return 'String';
  let integral = true;
  for (const cell of present) {
    const type = cellType(cell);
    if (type === 'String') return 'String';
    if (type === 'Fractional') integral = false;
  }
  return integral ? 'Integral' : 'Fractional';
}

/** Which of the equal-width buckets spanning [min, max] holds value (min <= value <= max). */
export function bucketIndex(value: number, min: number, max: number): number {
  const width = (max - min) / BUCKET_COUNT;
  if (width === 0) return 0;
  return Math.min(BUCKET_COUNT - 1, Math.floor((value - min) / width));
}

function numericalStatistics(common: CommonStatistics, values: readonly number[]): NumericalStatistics {
  const sorted = [...values].sort((a, b) => a - b);
  const min = sorted[0] as number;
  const max = sorted[sorted.length - 1] as number;
  const sum = values.reduce((total, value) => total + value, 0);
  const mean = sum / values.length;
  // Population standard deviation, as Deequ (behind SageMaker's analyzer) computes it.
  const variance = values.reduce((total, value) => total + (value - mean) ** 2, 0) / values.length;

  const width = (max - min) / BUCKET_COUNT;
  const buckets = Array.from({ length: BUCKET_COUNT }, (_, i) => ({
    lower_bound: min + i * width,
    upper_bound: i === BUCKET_COUNT - 1 ? max : min + (i + 1) * width,
    count: 0,
  }));
  for (const value of values) (buckets[bucketIndex(value, min, max)] as HistogramBucket).count++;

  return {
    common,
    mean,
    sum,
    std_dev: Math.sqrt(variance),
    min,
    max,
    distribution: { kll: { buckets, sketch: { parameters: SKETCH_PARAMETERS, data: [quantileSample(sorted, SKETCH_PARAMETERS.k)] } } },
  };
}

/** Every value when there are at most `size`, else `size` evenly spaced order statistics. */
function quantileSample(sorted: readonly number[], size: number): number[] {
  if (sorted.length <= size) return [...sorted];
  return Array.from({ length: size }, (_, i) => sorted[Math.round((i * (sorted.length - 1)) / (size - 1))] as number);
}

function stringStatistics(common: CommonStatistics, present: readonly string[]): StringStatistics {
  const counts = new Map<string, number>();
  for (const cell of present) counts.set(cell, (counts.get(cell) ?? 0) + 1);
  const buckets = [...counts]
    .map(([value, count]) => ({ value, count }))
    .sort((a, b) => b.count - a.count || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
  return { common, distinct_count: counts.size, distribution: { categorical: { buckets } } };
}
