/**
 * Captured rows against a baseline: Model Monitor's constraint_violations.json. Captured rows have
 * no header; column i is the baseline's feature i.
 */
import type { Constraints, FeatureConstraints, MonitoringConfig } from './constraints.js';
import { compareCategorical, compareNumeric, judgeDrift, type Comparison, type Drift } from './drift.js';
import { cellType, isMissing, parseNumber, statisticsOf, type FeatureStatistics, type Statistics } from './statistics.js';

export type CheckType =
  | 'data_type_check'
  | 'completeness_check'
  | 'baseline_drift_check'
  | 'missing_column_check'
  | 'extra_column_check'
  | 'categorical_values_check';

export interface Violation {
  feature_name: string;
  constraint_check_type: CheckType;
  description: string;
}

export interface Baseline {
  readonly statistics: Statistics;
  readonly constraints: Constraints;
}

export interface CheckResult {
  readonly violations: Violation[];
  /** Per feature whose distribution was compared. */
  readonly drift: Map<string, Drift>;
  /** The captured rows' own statistics.json, named after the baseline's features. */
  readonly statistics: Statistics;
}

const percent = (fraction: number) => `${(fraction * 100).toFixed(1)}%`;

export function checkCapture(baseline: Baseline, rows: readonly (readonly string[])[]): CheckResult {
  const features = baseline.statistics.features;
  const width = rows.reduce((widest, row) => Math.max(widest, row.length), 0);
  const header = Array.from({ length: Math.max(width, features.length) }, (_, i) => features[i]?.name ?? `_c${i}`);
  const result: CheckResult = { violations: [], drift: new Map(), statistics: statisticsOf({ header, rows }) };
  if (rows.length === 0) return result;

  const config = baseline.constraints.monitoring_config;
  features.forEach((feature, column) => {
    if (column >= width) {
      result.violations.push({
        feature_name: feature.name,
        constraint_check_type: 'missing_column_check',
        description: `Column ${column} (${feature.name}) is missing: captured rows have ${width} columns, the baseline has ${features.length} features`,
      });
      return;
    }
    const cells = rows.map((row) => row[column] ?? '');
    const constraints = baseline.constraints.features.find((c) => c.name === feature.name);
    if (constraints && config.evaluate_constraints === 'Enabled') result.violations.push(...constraintViolations(constraints, cells, config));
    if (config.distribution_constraints.perform_comparison !== 'Enabled') return;
    const comparison = compareDistributions(feature, cells);
    if (!comparison) return;
    const drift = judgeDrift(comparison, config, features.length);
    result.drift.set(feature.name, drift);
    if (drift.drifted) {
      const { comparison_threshold: threshold, comparison_method: method } = config.distribution_constraints;
      result.violations.push({
        feature_name: feature.name,
        constraint_check_type: 'baseline_drift_check',
        description: `Baseline drift distance ${drift.distance.toFixed(4)} exceeds the limit ${drift.limit.toFixed(4)} (comparison_threshold ${threshold}, ${method})`,
      });
    }
  });
  for (let column = features.length; column < width; column++) {
    result.violations.push({
      feature_name: `_c${column}`,
      constraint_check_type: 'extra_column_check',
      description: `Column ${column} is extra: captured rows have ${width} columns, the baseline has ${features.length} features`,
    });
  }
  return result;
}

function constraintViolations(constraints: FeatureConstraints, cells: readonly string[], config: MonitoringConfig): Violation[] {
  const violations: Violation[] = [];
  const { name, inferred_type: type } = constraints;
  const present = cells.filter((cell) => !isMissing(cell));
  const completeness = present.length / cells.length;
  if (completeness < constraints.completeness) {
    violations.push({
      feature_name: name,
      constraint_check_type: 'completeness_check',
      description: `Completeness ${percent(completeness)} is below the baseline's ${percent(constraints.completeness)}`,
    });
  }
  if (present.length === 0) return violations;

  // An Integral value is also a valid Fractional one.
  const conforms = (cell: string) => type === 'String' || cellType(cell) === type || (type === 'Fractional' && cellType(cell) === 'Integral');
  const mistyped = present.filter((cell) => !conforms(cell)).length / present.length;
  if (mistyped > config.datatype_check_threshold) {
    violations.push({
      feature_name: name,
      constraint_check_type: 'data_type_check',
      description: `${percent(mistyped)} of present values are not ${type}, above datatype_check_threshold ${config.datatype_check_threshold}`,
    });
  }

  const domain = constraints.string_constraints?.domains;
  if (domain) {
    const known = new Set(domain);
    const unknown = present.filter((cell) => !known.has(cell)).length / present.length;
    if (unknown > config.domain_content_threshold) {
      violations.push({
        feature_name: name,
        constraint_check_type: 'categorical_values_check',
        description: `${percent(unknown)} of values are outside the baseline's domain, above domain_content_threshold ${config.domain_content_threshold}`,
      });
    }
  }
  return violations;
}

/** Numeric features compare their numeric cells (the type check covers the rest); strings compare all present cells. */
function compareDistributions(feature: FeatureStatistics, cells: readonly string[]): Comparison | undefined {
  if (feature.numerical_statistics) {
    const values = cells.map(parseNumber).filter((value) => value !== undefined);
    return values.length > 0 ? compareNumeric(feature.numerical_statistics, values) : undefined;
  }
  const present = cells.filter((cell) => !isMissing(cell));
  return feature.string_statistics && present.length > 0 ? compareCategorical(feature.string_statistics, present) : undefined;
}
