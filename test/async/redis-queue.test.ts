/**
 * RedisQueue against a real redis-server (append-only file, fsync on every write): the
 * AsyncQueue contract, then what only Redis shows: surviving a SIGKILL of the server, consumers
 * on separate connections sharing one backlog, and counting live consumers.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { AsyncJob, QueueSettings } from '../../src/modes/async/queue.js';
import { RedisQueue } from '../../src/modes/async/redis-queue.js';
import { startRedisServer, type RedisServer } from '../redis-server.js';
import { asyncRequest, queueContract } from './queue-contract.js';

const T0 = 1_700_000_000_000;
const LONG_MS = 3_600_000;

let server: RedisServer;
before(async () => {
  server = await startRedisServer();
});
after(() => server.close());

const settings = (overrides: Partial<QueueSettings> = {}): QueueSettings => ({
  consumerId: randomUUID(),
  leaseMs: LONG_MS,
  retentionMs: LONG_MS,
  ...overrides,
});

queueContract('RedisQueue', async () => {
  const keyPrefix = `contract-${randomUUID()}`;
  return {
    open: (queueSettings) => RedisQueue.open(server.url, { ...queueSettings, keyPrefix }),
    dispose: async () => {},
  };
});

describe('RedisQueue', () => {
  it('keeps an accepted job through a SIGKILL and restart of redis-server', async () => {
    const own = await startRedisServer();
    try {
      const keyPrefix = randomUUID();
      const first = await RedisQueue.open(own.url, { ...settings(), keyPrefix });
      const [running, queued] = [asyncRequest(0), asyncRequest(1)];
      await first.enqueue(running);
      await first.enqueue(queued);
      await first.claim(1, T0);
      await first.close();

      await own.kill();
      await own.restart();

      const second = await RedisQueue.open(own.url, { ...settings(), keyPrefix });
      try {
        assert.equal((await second.get(queued.inferenceId))?.status, 'queued');
        assert.equal((await second.get(running.inferenceId))?.status, 'running');
        assert.deepEqual(
          (await second.claim(10, T0 + 1)).map((job) => job.inferenceId),
          [queued.inferenceId],
        );
      } finally {
        await second.close();
      }
    } finally {
      await own.close();
    }
  });

  it('two consumers on separate connections drain 200 jobs concurrently, running each exactly once', async () => {
    const keyPrefix = randomUUID();
    const consumers = await Promise.all([0, 1].map(() => RedisQueue.open(server.url, { ...settings(), keyPrefix })));
    try {
      const requests = Array.from({ length: 200 }, (_, rank) => asyncRequest(rank));
      await Promise.all(requests.map((request) => consumers[0]!.enqueue(request)));

      const drain = async (queue: RedisQueue): Promise<AsyncJob[]> => {
        const ran: AsyncJob[] = [];
        for (let batch = await queue.claim(7, T0); batch.length > 0; batch = await queue.claim(7, T0)) {
          const finished = await Promise.all(batch.map((job) => queue.finish(job.inferenceId, { status: 'completed' }, T0 + 1)));
          assert.ok(finished.every((job) => job?.status === 'completed'), 'a claimed job could not be finished');
          ran.push(...batch);
        }
        return ran;
      };
      const [a, b] = await Promise.all(consumers.map(drain));
      const ran = [...a!, ...b!].map((job) => job.inferenceId);

      assert.equal(ran.length, 200);
      assert.equal(new Set(ran).size, 200, 'a job ran twice');
      assert.ok([...a!, ...b!].every((job) => job.attempts === 1));
      assert.deepEqual(await consumers[1]!.stats(T0 + 2), { queued: 0, running: 0, oldestReceivedAtMs: undefined, consumers: 1 });
    } finally {
      await Promise.all(consumers.map((queue) => queue.close()));
    }
  });

  it('counts the consumers that renewed within the lease, and forgets one once it closes', async () => {
    const keyPrefix = randomUUID();
    const leaseMs = 10_000;
    const [a, b, c] = await Promise.all([0, 1, 2].map(() => RedisQueue.open(server.url, { ...settings({ leaseMs }), keyPrefix })));
    try {
      await Promise.all([a!.renew(T0), b!.renew(T0), c!.renew(T0 + leaseMs / 2)]);
      assert.equal((await a!.stats(T0 + 1)).consumers, 3);
      assert.equal((await a!.stats(T0 + leaseMs)).consumers, 1, 'a and b stopped renewing a lease ago');

      await a!.renew(T0 + leaseMs);
      await c!.close();
      assert.equal((await b!.stats(T0 + leaseMs)).consumers, 1);
    } finally {
      await Promise.allSettled([a!.close(), b!.close(), c!.close()]);
    }
  });
});
