/**
 * Which models make room for another under a memory budget: the least recently used idle ones
 * first (a model with requests queued or running is never evicted), and no more than needed.
 */

export interface Resident {
  readonly name: string;
  readonly footprintBytes: number;
  /** When a request last used it; larger is more recent. */
  readonly lastUsedMs: number;
  /** Nothing queued or running, and not loading or unloading. */
  readonly evictable: boolean;
}

/**
 * Names to evict, least recently used first, so that `neededBytes` more fits in `budgetBytes`
 * beside what `residents` hold; undefined when evicting every evictable model is not enough.
 */
export function evictionsToFit(residents: readonly Resident[], neededBytes: number, budgetBytes: number): string[] | undefined {
  let usedBytes = residents.reduce((sum, resident) => sum + resident.footprintBytes, 0);
  const evictions: string[] = [];
  const candidates = residents.filter((resident) => resident.evictable).sort((a, b) => a.lastUsedMs - b.lastUsedMs);
  for (const candidate of candidates) {
    if (usedBytes + neededBytes <= budgetBytes) break;
    evictions.push(candidate.name);
    usedBytes -= candidate.footprintBytes;
  }
  return usedBytes + neededBytes <= budgetBytes ? evictions : undefined;
}
