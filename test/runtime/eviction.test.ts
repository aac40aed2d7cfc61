/** The memory budget's policy, as a table: least recently used idle models first, no more than needed. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { evictionsToFit, type Resident } from '../../src/runtime/eviction.js';

const model = (name: string, footprintBytes: number, lastUsedMs: number, evictable = true): Resident => ({ name, footprintBytes, lastUsedMs, evictable });

const CASES: Array<[string, Resident[], number, number, string[] | undefined]> = [
  ['fits as is: nothing evicted', [model('a', 30, 1), model('b', 30, 2)], 30, 100, []],
  ['exactly full fits', [model('a', 50, 1)], 50, 100, []],
  ['the least recently used goes first', [model('a', 30, 5), model('b', 30, 1), model('c', 30, 3)], 30, 100, ['b']],
  ['no more than needed', [model('a', 10, 1), model('b', 60, 2), model('c', 20, 3)], 40, 100, ['a', 'b']],
  ['a busy model is passed over for a more recent idle one', [model('a', 40, 1, false), model('b', 40, 2)], 40, 100, ['b']],
  ['evicting every idle model is not enough: refused', [model('a', 60, 1, false), model('b', 30, 2)], 50, 100, undefined],
  ['larger than the whole budget: refused', [], 120, 100, undefined],
  ['nothing loaded, fits', [], 100, 100, []],
  ['loading models (not evictable) count what they reserved', [model('loading', 70, 9, false), model('a', 20, 1)], 20, 100, ['a']],
];

for (const [what, residents, neededBytes, budgetBytes, expected] of CASES) {
  it(what, () => assert.deepEqual(evictionsToFit(residents, neededBytes, budgetBytes), expected));
}

it('whatever it evicts, what is left plus the newcomer fits the budget, and only evictable models go', () => {
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let round = 0; round < 500; round += 1) {
    const residents = Array.from({ length: Math.floor(random() * 8) }, (_, i) =>
      model(`m${i}`, Math.floor(random() * 50), Math.floor(random() * 1000), random() < 0.7),
    );
    const needed = Math.floor(random() * 60);
    const budget = Math.floor(random() * 200);
    const evictions = evictionsToFit(residents, needed, budget);
    const evictable = residents.filter((r) => r.evictable);
    if (evictions === undefined) {
      const floor = residents.filter((r) => !r.evictable).reduce((sum, r) => sum + r.footprintBytes, 0);
      assert.ok(floor + needed > budget, 'refused only when even evicting every idle model would not do');
      continue;
    }
    const left = residents.filter((r) => !evictions.includes(r.name)).reduce((sum, r) => sum + r.footprintBytes, 0);
    assert.ok(left + needed <= budget);
    assert.ok(evictions.every((name) => evictable.some((r) => r.name === name)));
    // Least recently used first: every evicted model was used no later than every idle one kept.
    const kept = evictable.filter((r) => !evictions.includes(r.name));
    for (const name of evictions) {
      const evicted = residents.find((r) => r.name === name)!;
      assert.ok(kept.every((r) => r.lastUsedMs >= evicted.lastUsedMs));
    }
  }
});
