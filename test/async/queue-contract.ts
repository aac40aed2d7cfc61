/**
 * The behaviour every AsyncQueue must have (the doc comments of src/modes/async/queue.ts), run
 * against each implementation. Time moves through the `nowMs` arguments; leases and the
 * retention also get a real wait, for implementations where Redis measures them on its own clock.
 * A real wait only ever shows that something has run out (it lasts at least that long), never
 * that something has not: how long an assertion takes after it depends on the machine.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AsyncJob, AsyncQueue, AsyncRequest, QueueSettings, QueueStats } from '../../src/modes/async/queue.js';

export interface QueueFixture {
  /** A consumer of this fixture's backlog; called again for more consumers, or after close(). */
  open(settings: QueueSettings): Promise<AsyncQueue>;
  dispose(): Promise<void>;
}

/** Any fixed instant: `nowMs` is the caller's, and tests move it by hand. */
const T0 = 1_700_000_000_000;
const HOUR_S = 3600;
const LONG_MS = 3_600_000;

const REQUEST_FIELDS = [
  'inferenceId',
  'endpointName',
  'inputLocation',
  'inputInline',
  'contentType',
  'accept',
  'customAttributes',
  'outputLocation',
  'failureLocation',
  'receivedAtMs',
  'requestTtlS',
  'invocationTimeoutS',
] as const satisfies readonly (keyof AsyncRequest)[];

/** A request received `ageRankMs` after T0: a higher rank is younger. */
export function asyncRequest(ageRankMs: number, overrides: Partial<AsyncRequest> = {}): AsyncRequest {
  return {
    inferenceId: randomUUID(),
    endpointName: 'churn',
    inputLocation: 's3://inputs/churn/rows.csv',
    inputInline: false,
    contentType: 'text/csv',
    accept: 'application/json',
    customAttributes: 'trace=on',
    outputLocation: 's3://outputs/churn/',
    failureLocation: 's3://failures/churn/',
    receivedAtMs: T0 + ageRankMs,
    requestTtlS: HOUR_S,
    invocationTimeoutS: 900,
    ...overrides,
  };
}

const JOB_FIELDS = [...REQUEST_FIELDS, 'status', 'attempts', 'startedAtMs', 'finishedAtMs', 'failureReason'] as const satisfies readonly (keyof AsyncJob)[];

/**
 * Every field, absent ones as undefined: implementations may leave an unset optional field out
 * or set it to undefined, and a strict deepEqual tells those apart.
 */
function pick<T, K extends keyof T>(value: T, fields: readonly K[]): Pick<T, K> {
  return Object.fromEntries(fields.map((field) => [field, value[field]])) as Pick<T, K>;
}
/** Only the request's fields, so that a job compares with the request it came from. */
const requestOf = (job: AsyncJob | AsyncRequest) => pick(job, REQUEST_FIELDS);
const jobView = (job: AsyncJob | undefined) => (job === undefined ? undefined : pick(job, JOB_FIELDS));
const statsView = (stats: QueueStats) => pick(stats, ['queued', 'running', 'oldestReceivedAtMs', 'consumers']);

const ids = (jobs: readonly (AsyncJob | AsyncRequest)[]): string[] => jobs.map((job) => job.inferenceId);

export function queueContract(name: string, setup: () => Promise<QueueFixture>): void {
  describe(`${name}: AsyncQueue contract`, () => {
    let fixture: QueueFixture;
    let others: QueueFixture[];
    let opened: AsyncQueue[];
    let consumerCount: number;

    /** A new consumer of this test's backlog (or of `backlog`); closed after the test. */
    const open = async (settings: Partial<QueueSettings> = {}, backlog = fixture): Promise<AsyncQueue> => {
      consumerCount += 1;
      const queue = await backlog.open({ consumerId: `consumer-${consumerCount}-${randomUUID()}`, leaseMs: LONG_MS, retentionMs: LONG_MS, ...settings });
      opened.push(queue);
      return queue;
    };
    /** A backlog of its own, apart from this test's; disposed after the test. */
    const otherBacklog = async (): Promise<QueueFixture> => {
      const other = await setup();
      others.push(other);
      return other;
    };
    const enqueueAll = async (queue: AsyncQueue, requests: readonly AsyncRequest[]): Promise<void> => {
      for (const request of requests) assert.equal((await queue.enqueue(request)).created, true);
    };

    beforeEach(async () => {
      fixture = await setup();
      others = [];
      opened = [];
      consumerCount = 0;
    });
    afterEach(async () => {
      // Tests close some queues themselves; closing again may fail, and does not matter here.
      await Promise.allSettled(opened.map((queue) => queue.close()));
      await Promise.all([fixture, ...others].map((backlog) => backlog.dispose()));
    });

    it('holds a small payload in the record, byte for byte, until the job finishes or expires', async () => {
      const queue = await open();
      const payloadBase64 = Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('base64');
      const held = (rank: number, overrides: Partial<AsyncRequest> = {}) =>
        asyncRequest(rank, { inputInline: true, inputLocation: `inline:${rank}`, payloadBase64, ...overrides });
      const [finishing, expiring] = [held(0), held(1, { requestTtlS: 1 })];
      await enqueueAll(queue, [finishing, expiring]);
      assert.equal((await queue.get(expiring.inferenceId))!.payloadBase64, payloadBase64);
      const [claimed] = await queue.claim(1, T0 + 10);
      assert.equal(claimed!.inferenceId, finishing.inferenceId);
      assert.equal(claimed!.payloadBase64, payloadBase64);
      assert.deepEqual(requestOf(claimed!), requestOf(finishing));

      const finished = await queue.finish(finishing.inferenceId, { status: 'completed' }, T0 + 20);
      const [expired] = await queue.expire(T0 + 5_000);
      assert.equal(expired!.inferenceId, expiring.inferenceId);
      for (const ended of [finished, expired, await queue.get(finishing.inferenceId), await queue.get(expiring.inferenceId)]) {
        assert.equal(ended!.payloadBase64, undefined, 'an ended job lets go of its payload');
        assert.equal(ended!.inputLocation.startsWith('inline:'), true);
      }
    });

    it('enqueue records every field of the request, queued with no attempts, and get returns it', async () => {
      const queue = await open();
      const requests = [
        asyncRequest(0),
        asyncRequest(1, { accept: undefined, customAttributes: undefined }),
        asyncRequest(2, { inputInline: true, inputLocation: 'file:///staging/body', contentType: 'application/x-npy', requestTtlS: 0.5 }),
        asyncRequest(3, { inferenceId: 'client id: spaces, "quotes" & ünïcödé', customAttributes: 'a=1;b=2' }),
      ];
      for (const request of requests) {
        const { job, created } = await queue.enqueue(request);
        assert.equal(created, true);
        for (const found of [job, await queue.get(request.inferenceId)]) {
          assert.deepEqual(requestOf(found!), requestOf(request));
          assert.equal(found!.status, 'queued');
          assert.equal(found!.attempts, 0);
          assert.equal(found!.startedAtMs, undefined);
          assert.equal(found!.finishedAtMs, undefined);
          assert.equal(found!.failureReason, undefined);
        }
      }
      assert.equal(await queue.get('never-enqueued'), undefined);
    });

    const duplicateCases: { state: string; prepare(queue: AsyncQueue, id: string): Promise<void>; claimable: number }[] = [
      { state: 'queued', prepare: async () => {}, claimable: 1 },
      { state: 'running', prepare: async (queue) => void (await queue.claim(1, T0)), claimable: 0 },
      {
        state: 'completed',
        prepare: async (queue, id) => {
          await queue.claim(1, T0);
          await queue.finish(id, { status: 'completed' }, T0 + 1);
        },
        claimable: 0,
      },
    ];
    for (const { state, prepare, claimable } of duplicateCases) {
      it(`a duplicate inference id of a ${state} job returns that job untouched, created false, and queues nothing`, async () => {
        const queue = await open();
        const first = asyncRequest(0);
        await enqueueAll(queue, [first]);
        await prepare(queue, first.inferenceId);
        const before = jobView(await queue.get(first.inferenceId));
        assert.equal(before?.status, state);

        const again = await queue.enqueue(asyncRequest(5, { inferenceId: first.inferenceId, endpointName: 'other', inputLocation: 's3://other/x' }));
        assert.equal(again.created, false);
        assert.deepEqual(jobView(again.job), before);
        assert.deepEqual(jobView(await queue.get(first.inferenceId)), before);
        assert.equal((await queue.claim(10, T0 + 2)).length, claimable);
        assert.deepEqual(await queue.claim(10, T0 + 3), []);
      });
    }

    it('claim hands out the oldest jobs first, at most max, running and leased with one attempt', async () => {
      const queue = await open();
      const requests = [0, 1, 2, 3, 4].map((rank) => asyncRequest(rank));
      await enqueueAll(queue, requests);

      assert.deepEqual(await queue.claim(0, T0 + 10), []);
      const first = await queue.claim(2, T0 + 10);
      const rest = await queue.claim(10, T0 + 20);
      assert.deepEqual(ids(first), ids(requests.slice(0, 2)));
      assert.deepEqual(ids(rest), ids(requests.slice(2)));
      assert.deepEqual(await queue.claim(10, T0 + 30), []);
      for (const [index, job] of [...first, ...rest].entries()) {
        assert.deepEqual(requestOf(job), requestOf(requests[index]!));
        assert.equal(job.status, 'running');
        assert.equal(job.attempts, 1);
        assert.equal(job.startedAtMs, index < 2 ? T0 + 10 : T0 + 20);
        assert.deepEqual(jobView(await queue.get(job.inferenceId)), jobView(job));
      }
    });

    it('concurrent claims by two consumers never hand out a job twice, and together take all', async () => {
      const [a, b] = [await open(), await open()];
      const requests = Array.from({ length: 40 }, (_, rank) => asyncRequest(rank));
      await enqueueAll(a, requests);

      const rounds = await Promise.all(Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? a : b).claim(3, T0 + 1)));
      const claimed = rounds.flat();
      claimed.push(...(await a.claim(100, T0 + 2)), ...(await b.claim(100, T0 + 2)));
      assert.equal(new Set(ids(claimed)).size, claimed.length, 'a job was handed out twice');
      assert.deepEqual(ids(claimed).sort(), ids(requests).sort());
      for (const job of claimed) assert.equal(job.attempts, 1);
    });

    it('a job whose lease is alive is not handed to another consumer', async () => {
      const [a, b] = [await open(), await open()];
      await enqueueAll(a, [asyncRequest(0)]);
      assert.equal((await a.claim(1, T0)).length, 1);
      assert.deepEqual(await b.claim(10, T0 + 1_000), []);
      assert.deepEqual(await a.claim(10, T0 + 1_000), []);
    });

    it('a consumer that stops renewing loses its jobs to another after the lease, and then cannot finish them', async () => {
      const leaseMs = 300;
      const [a, b] = [await open({ leaseMs }), await open({ leaseMs })];
      const requests = [asyncRequest(0), asyncRequest(1)];
      await enqueueAll(a, requests);
      assert.equal((await a.claim(10, T0)).length, 2);

      await sleep(leaseMs * 2);
      const retaken = await b.claim(10, T0 + leaseMs * 2);
      assert.deepEqual(ids(retaken), ids(requests));
      for (const job of retaken) {
        assert.equal(job.status, 'running');
        assert.equal(job.attempts, 2);
        assert.equal(job.startedAtMs, T0, 'startedAtMs is the first claim');
      }

      assert.equal(await a.finish(requests[0]!.inferenceId, { status: 'completed' }, T0 + leaseMs * 3), undefined);
      const finished = await b.finish(requests[0]!.inferenceId, { status: 'failed', failureReason: 'model error' }, T0 + leaseMs * 3);
      assert.equal(finished?.status, 'failed');
      assert.equal(finished.attempts, 2);
      assert.deepEqual(jobView(await a.get(requests[0]!.inferenceId)), jobView(finished));
    });

    it('a consumer that missed renewing does not get back a job it is running', async () => {
      const leaseMs = 300;
      const queue = await open({ leaseMs });
      const request = asyncRequest(0);
      await enqueueAll(queue, [request]);
      await queue.claim(1, T0);

      await sleep(leaseMs * 2);
      assert.deepEqual(await queue.claim(10, T0 + leaseMs * 2), []);
      const finished = await queue.finish(request.inferenceId, { status: 'completed' }, T0 + leaseMs * 2);
      assert.equal(finished?.attempts, 1);
    });

    it('renew restarts the lease of every job the consumer holds, one run out included', async () => {
      const leaseMs = 300;
      const [a, b] = [await open({ leaseMs }), await open({ leaseMs })];
      const request = asyncRequest(0);
      await enqueueAll(a, [request]);
      await a.claim(1, T0);
      // The lease runs out: without a renew, b would take the job now (as in the test above).
      await sleep(leaseMs * 2);
      const nowMs = T0 + leaseMs * 2;

      // Redis measures leases on its own clock, so no deadline of this test can show the renewed
      // lease alive when b asks: that depends on the machine's speed. Order can. A reference job,
      // in a backlog of its own, is claimed just before the renew, so its lease started first:
      // if b takes the renewed job, the reference's lease has run out as well.
      const elsewhere = await otherBacklog();
      const [c, d] = [await open({ leaseMs }, elsewhere), await open({ leaseMs }, elsewhere)];
      const reference = asyncRequest(0);
      await enqueueAll(c, [reference]);
      await c.claim(1, nowMs);
      await a.renew(nowMs);
      const taken = await b.claim(10, nowMs + 1);
      const referenceTaken = await d.claim(10, nowMs + 1);
      assert.ok(taken.length <= referenceTaken.length, 'the renewed lease ran out before one that started earlier');
      // Normally neither is taken, and a finishes the job it kept.
      const finished = await a.finish(request.inferenceId, { status: 'completed' }, nowMs + 1);
      assert.equal(finished?.attempts, taken.length === 0 ? 1 : undefined);
    });

    it('expire reports a queued job past its TTL once across consumers, as expired with a reason', async () => {
      const [a, b] = [await open(), await open()];
      const short = asyncRequest(0, { requestTtlS: 10 });
      const long = asyncRequest(1, { requestTtlS: 100 });
      await enqueueAll(a, [short, long]);
      const dueMs = short.receivedAtMs + 10_000;

      assert.deepEqual(await a.expire(dueMs - 1), []);
      const reported = (await Promise.all([a.expire(dueMs), b.expire(dueMs), a.expire(dueMs), b.expire(dueMs)])).flat();
      assert.deepEqual(ids(reported), [short.inferenceId]);
      const expired = reported[0]!;
      assert.deepEqual(requestOf(expired), requestOf(short));
      assert.equal(expired.status, 'expired');
      assert.equal(expired.finishedAtMs, dueMs);
      assert.equal(expired.attempts, 0);
      assert.match(expired.failureReason ?? '', /TTL/);
      assert.deepEqual(jobView(await b.get(short.inferenceId)), jobView(expired));

      assert.deepEqual(await a.expire(dueMs + 1), []);
      assert.deepEqual(ids(await b.claim(10, dueMs)), [long.inferenceId]);
    });

    it('claim never hands out a job past its TTL, which expire still reports', async () => {
      const queue = await open();
      const request = asyncRequest(0, { requestTtlS: 10 });
      await enqueueAll(queue, [request]);
      const dueMs = request.receivedAtMs + 10_000;

      assert.deepEqual(await queue.claim(10, dueMs), []);
      assert.deepEqual(await queue.claim(10, dueMs + 1), []);
      assert.deepEqual(ids(await queue.expire(dueMs)), [request.inferenceId]);
      assert.equal((await queue.get(request.inferenceId))?.status, 'expired');
      assert.deepEqual(await queue.claim(10, dueMs + 2), []);
    });

    it('running jobs never expire', async () => {
      const queue = await open();
      const request = asyncRequest(0, { requestTtlS: 10 });
      await enqueueAll(queue, [request]);
      await queue.claim(1, T0);

      assert.deepEqual(await queue.expire(T0 + 1_000_000), []);
      assert.equal((await queue.get(request.inferenceId))?.status, 'running');
      assert.equal((await queue.finish(request.inferenceId, { status: 'completed' }, T0 + 1_000_001))?.status, 'completed');
    });

    const outcomes = [
      { status: 'completed', failureReason: undefined },
      { status: 'failed', failureReason: 'ModelError: the model returned an error' },
    ] as const;
    for (const outcome of outcomes) {
      it(`finish records a ${outcome.status} outcome, and the job is never handed out again`, async () => {
        const leaseMs = 200;
        const [a, b] = [await open({ leaseMs }), await open({ leaseMs })];
        const request = asyncRequest(0);
        await enqueueAll(a, [request]);
        const [claimed] = await a.claim(1, T0);

        const finished = await a.finish(request.inferenceId, outcome, T0 + 5);
        const expected = { ...jobView(claimed)!, status: outcome.status, finishedAtMs: T0 + 5, failureReason: outcome.failureReason };
        assert.deepEqual(jobView(finished), expected);
        assert.deepEqual(jobView(await b.get(request.inferenceId)), expected);
        assert.equal(await a.finish(request.inferenceId, { status: 'completed' }, T0 + 6), undefined, 'finished twice');

        await sleep(leaseMs * 2);
        assert.deepEqual(await b.claim(10, T0 + leaseMs * 2), []);
        assert.deepEqual(await a.claim(10, T0 + leaseMs * 2), []);
        assert.deepEqual(await b.expire(T0 + leaseMs * 2), []);
        assert.deepEqual(jobView(await b.get(request.inferenceId)), expected);
      });
    }

    it('finish is undefined for a job this consumer does not hold', async () => {
      const [a, b] = [await open(), await open()];
      const [held, queued] = [asyncRequest(0), asyncRequest(1)];
      await enqueueAll(a, [held, queued]);
      await b.claim(1, T0);

      assert.equal(await a.finish('never-enqueued', { status: 'completed' }, T0), undefined);
      assert.equal(await a.finish(queued.inferenceId, { status: 'completed' }, T0), undefined);
      assert.equal(await a.finish(held.inferenceId, { status: 'failed', failureReason: 'x' }, T0), undefined);
      assert.equal((await a.get(queued.inferenceId))?.status, 'queued');
      assert.equal((await a.get(held.inferenceId))?.status, 'running');
    });

    it('stats count queued and running jobs, the oldest of them, and this consumer', async () => {
      const queue = await open();
      await queue.renew(T0);
      assert.deepEqual(statsView(await queue.stats(T0)), { queued: 0, running: 0, oldestReceivedAtMs: undefined, consumers: 1 });

      const requests = [0, 1, 2].map((rank) => asyncRequest(rank));
      await enqueueAll(queue, requests);
      assert.deepEqual(statsView(await queue.stats(T0 + 1)), { queued: 3, running: 0, oldestReceivedAtMs: requests[0]!.receivedAtMs, consumers: 1 });

      await queue.claim(1, T0 + 2);
      assert.deepEqual(statsView(await queue.stats(T0 + 2)), { queued: 2, running: 1, oldestReceivedAtMs: requests[0]!.receivedAtMs, consumers: 1 });

      await queue.finish(requests[0]!.inferenceId, { status: 'completed' }, T0 + 3);
      assert.deepEqual(statsView(await queue.stats(T0 + 3)), { queued: 2, running: 0, oldestReceivedAtMs: requests[1]!.receivedAtMs, consumers: 1 });

      await queue.claim(2, T0 + 4);
      await queue.finish(requests[1]!.inferenceId, { status: 'failed', failureReason: 'x' }, T0 + 5);
      await queue.finish(requests[2]!.inferenceId, { status: 'completed' }, T0 + 5);
      assert.deepEqual(statsView(await queue.stats(T0 + 5)), { queued: 0, running: 0, oldestReceivedAtMs: undefined, consumers: 1 });
    });

    it('jobs survive closing the queue: queued ones are claimed after reopening, running ones once their lease ran out', async () => {
      const leaseMs = 300;
      const first = await open({ leaseMs });
      const [running, queued] = [asyncRequest(0), asyncRequest(1)];
      await enqueueAll(first, [running, queued]);
      await first.claim(1, T0);
      await first.close();

      const reopened = await open({ leaseMs });
      assert.equal((await reopened.get(queued.inferenceId))?.status, 'queued');
      assert.equal((await reopened.get(running.inferenceId))?.status, 'running');
      await sleep(leaseMs * 2);
      const claimed = await reopened.claim(10, T0 + leaseMs * 2);
      assert.deepEqual(ids(claimed), [running.inferenceId, queued.inferenceId]);
      assert.deepEqual(
        claimed.map((job) => job.attempts),
        [2, 1],
      );
    });

    it('finished and expired jobs are kept for the retention', async () => {
      const queue = await open({ retentionMs: LONG_MS });
      const [finished, expired] = [asyncRequest(0), asyncRequest(1, { requestTtlS: 1 })];
      await enqueueAll(queue, [finished, expired]);
      await queue.claim(1, T0);
      await queue.finish(finished.inferenceId, { status: 'completed' }, T0 + 10);
      await queue.expire(T0 + 10_000);

      assert.deepEqual(await queue.expire(T0 + 20_000), []);
      assert.equal((await queue.get(finished.inferenceId))?.status, 'completed');
      assert.equal((await queue.get(expired.inferenceId))?.status, 'expired');
      assert.equal((await queue.enqueue(finished)).created, false);
    });

    it('finished and expired jobs are forgotten once older than the retention, and their ids are free again', async () => {
      const retentionMs = 200;
      const queue = await open({ retentionMs });
      const [finished, expired] = [asyncRequest(0), asyncRequest(1, { requestTtlS: 1 })];
      await enqueueAll(queue, [finished, expired]);
      await queue.claim(1, T0);
      await queue.finish(finished.inferenceId, { status: 'completed' }, T0 + 10);
      assert.equal((await queue.expire(T0 + 2_000)).length, 1);

      await sleep(retentionMs * 3);
      await queue.expire(T0 + 2_000 + retentionMs * 3);
      assert.equal(await queue.get(finished.inferenceId), undefined);
      assert.equal(await queue.get(expired.inferenceId), undefined);
      const again = await queue.enqueue(finished);
      assert.equal(again.created, true);
      assert.equal(again.job.status, 'queued');
    });
  });
}
