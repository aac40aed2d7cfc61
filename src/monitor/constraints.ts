/** Model Monitor's constraints.json, suggested from a baseline's statistics. */
import type { InferredType, Statistics } from './statistics.js';

export interface FeatureConstraints {
  name: string;
  inferred_type: InferredType;
  /** Fraction of rows where the feature is present. */
  completeness: number;
  num_constraints?: { is_non_negative: boolean };
  string_constraints?: { domains: string[] };
}

export interface MonitoringConfig {
  evaluate_constraints: 'Enabled' | 'Disabled';
  emit_metrics: 'Enabled' | 'Disabled';
  datatype_check_threshold: number;
  domain_content_threshold: number;
  distribution_constraints: {
    perform_comparison: 'Enabled' | 'Disabled';
    comparison_threshold: number;
    comparison_method: 'Simple' | 'Robust';
  };
}

export interface Constraints {
  version: 0;
  features: FeatureConstraints[];
  monitoring_config: MonitoringConfig;
}

/** String features with at most this many distinct values get a domain (the set of known values). */
const MAX_DOMAIN_SIZE = 20;

const DEFAULT_MONITORING_CONFIG: MonitoringConfig = {
  evaluate_constraints: 'Enabled',
  emit_metrics: 'Enabled',
  datatype_check_threshold: 0.1,
  domain_content_threshold: 0.1,
  distribution_constraints: { perform_comparison: 'Enabled', comparison_threshold: 0.1, comparison_method: 'Robust' },
};

export function constraintsFrom(statistics: Statistics): Constraints {
  const rows = statistics.dataset.item_count;
  const features = statistics.features.map((feature): FeatureConstraints => {
    const { name, inferred_type, numerical_statistics: numbers, string_statistics: strings } = feature;
    const present = (numbers ?? strings)?.common.num_present ?? 0;
    const constraints: FeatureConstraints = { name, inferred_type, completeness: rows === 0 ? 1 : present / rows };
    if (numbers) constraints.num_constraints = { is_non_negative: numbers.min >= 0 };
    if (strings && strings.distinct_count > 0 && strings.distinct_count <= MAX_DOMAIN_SIZE) {
      constraints.string_constraints = { domains: strings.distribution.categorical.buckets.map((bucket) => bucket.value).sort() };
    }
    return constraints;
  });
  return { version: 0, features, monitoring_config: structuredClone(DEFAULT_MONITORING_CONFIG) };
}
