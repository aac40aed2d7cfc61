/** Medians and spreads over rounds. */

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** How many rounds gave a figure. */
  readonly n: number;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Median, min and max of the figures that exist; null when none does. */
export function spread(values: readonly (number | null | undefined)[]): Spread | null {
  const present = values.filter((v): v is number => v !== null && v !== undefined && Number.isFinite(v));
  if (present.length === 0) return null;
  return { median: median(present), min: Math.min(...present), max: Math.max(...present), n: present.length };
}

/** The median of `values` with their quartiles, as the in-turn comparisons print them. */
export function medianWithQuartiles(values: readonly number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.round(q * (sorted.length - 1))]!;
  return `${median(values).toFixed(3)} (quartiles ${at(0.25).toFixed(3)}-${at(0.75).toFixed(3)})`;
}
