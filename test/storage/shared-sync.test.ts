/** SharedSync: every caller is covered by a sync that began after it asked, and syncs never overlap. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SharedSync } from '../../src/storage/shared-sync.js';

/** A sync the test ends by hand: `syncs` lists each one begun, in order. */
function manualSyncs() {
  const syncs: Array<{ readonly startedAt: number; end: (error?: Error) => void }> = [];
  let clock = 0;
  const sync = () =>
    new Promise<void>((resolve, reject) => {
      syncs.push({ startedAt: clock, end: (error) => (error ? reject(error) : resolve()) });
    });
  return { syncs, sync, tick: () => ++clock, now: () => clock };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('SharedSync', () => {
  it('covers each caller with a sync begun after its call, one sync at a time, and fails only the callers of a failed sync', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom('request', 'succeed', 'fail'), { maxLength: 40 }), async (events) => {
        const { syncs, sync, tick, now } = manualSyncs();
        let idleCalls = 0;
        const shared = new SharedSync(sync, () => idleCalls++);
        const callers: Array<{ calledAt: number; outcome?: 'ok' | 'failed'; coveredBy?: number }> = [];
        let ended = 0;
        const endNext = async (error?: Error) => {
          if (ended === syncs.length) return;
          const index = ended++;
          syncs[index]!.end(error);
          await settle();
          for (const caller of callers) if (caller.outcome !== undefined) caller.coveredBy ??= index;
        };
        for (const event of events) {
          tick();
          if (event === 'request') {
            const caller: (typeof callers)[number] = { calledAt: now() };
            callers.push(caller);
            shared.request().then(
              () => (caller.outcome = 'ok'),
              () => (caller.outcome = 'failed'),
            );
            await settle();
          } else {
            await endNext(event === 'fail' ? new Error('EIO') : undefined);
          }
          assert.ok(syncs.length - ended <= 1, 'one sync runs at a time');
        }
        while (ended < syncs.length) await endNext();
        assert.ok(syncs.length <= callers.length, 'no sync nobody asked for');
        for (const caller of callers) {
          assert.notEqual(caller.outcome, undefined, 'every caller is answered');
          assert.ok(syncs[caller.coveredBy!]!.startedAt >= caller.calledAt, 'the sync that answered began after the call');
        }
        assert.equal(idleCalls > 0, callers.length > 0, 'idle once the last sync ends');
        await shared.idle();
      }),
      { numRuns: 200 },
    );
  });

  it('shares one sync among the callers that arrive while another runs', async () => {
    const { syncs, sync } = manualSyncs();
    const shared = new SharedSync(sync);
    const first = shared.request();
    const waiting = [shared.request(), shared.request(), shared.request()];
    assert.equal(syncs.length, 1);
    syncs[0]!.end();
    await first;
    await settle();
    assert.equal(syncs.length, 2, 'the three waiting callers share the second sync');
    syncs[1]!.end(new Error('EIO'));
    for (const caller of waiting) await assert.rejects(caller, /EIO/);
    const idle = shared.idle();
    await idle;
    const later = shared.request();
    assert.equal(syncs.length, 3, 'after a failure the next caller starts afresh');
    syncs[2]!.end();
    await later;
  });
});
