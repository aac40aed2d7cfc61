/** inferd.json's batching.pad rules: what parses, and what is refused with the key that caused it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ModelConfigSchema } from '../../src/config/model-schema.js';

const pad = (rule: unknown) => ModelConfigSchema.safeParse({ batching: { pad: { seq: rule } } });

describe('inferd.json batching.pad', () => {
  for (const [rule, expected] of [
    [{}, { value: 0 }],
    [{ value: 1, buckets: [16, 32] }, { value: 1, buckets: [16, 32] }],
    [{ multipleOf: 8 }, { value: 0, multipleOf: 8 }],
  ] as const) {
    it(`takes ${JSON.stringify(rule)}`, () => {
      const parsed = pad(rule);
      assert.ok(parsed.success, parsed.error?.message);
      assert.deepEqual(parsed.data.batching.pad.seq, expected);
    });
  }

  for (const [rule, message] of [
    [{ buckets: [16], multipleOf: 8 }, /give buckets or multipleOf, not both/],
    [{ multipleOf: 0 }, /too small|>=1/i],
    [{ multipleOf: 2.5 }, /expected int/i],
    [{ step: 8 }, /unrecognized key/i],
  ] as const) {
    it(`refuses ${JSON.stringify(rule)}, naming batching.pad.seq`, () => {
      const parsed = pad(rule);
      assert.equal(parsed.success, false);
      const issue = parsed.error!.issues[0]!;
      assert.deepEqual(issue.path.slice(0, 3), ['batching', 'pad', 'seq']);
      assert.match(issue.message, message);
    });
  }
});
