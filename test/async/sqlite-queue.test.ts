/** The embedded queue against the shared contract, on a real SQLite file per fixture. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SqliteQueue } from '../../src/modes/async/sqlite-queue.js';
import { queueContract } from './queue-contract.js';

queueContract('SqliteQueue', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'inferd-sqlite-queue-'));
  return {
    open: async (settings) => new SqliteQueue(join(dir, 'queue.sqlite'), settings),
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
});

describe('SqliteQueue', () => {
  it('commits the enqueues of one turn together, each with its own answer', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'inferd-sqlite-queue-'));
    const queue = new SqliteQueue(join(dir, 'queue.sqlite'), { consumerId: 'c1', leaseMs: 1000, retentionMs: 60_000 });
    try {
      const request = (inferenceId: string, receivedAtMs: number) => ({
        inferenceId,
        endpointName: 'e',
        inputLocation: `s3://b/${inferenceId}`,
        inputInline: false,
        contentType: 'text/csv',
        outputLocation: `s3://o/${inferenceId}.out`,
        failureLocation: `s3://o/${inferenceId}-error.out`,
        receivedAtMs,
        requestTtlS: 60,
        invocationTimeoutS: 10,
      });
      const results = await Promise.all([queue.enqueue(request('a', 1)), queue.enqueue(request('b', 2)), queue.enqueue(request('a', 3))]);
      assert.deepEqual(results.map((r) => [r.job.inferenceId, r.created, r.job.receivedAtMs]), [['a', true, 1], ['b', true, 2], ['a', false, 1]]);
      assert.deepEqual((await queue.claim(10, 5)).map((job) => job.inferenceId), ['a', 'b']);
    } finally {
      await queue.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('closes only once the writes it was given are committed and synced', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'inferd-sqlite-queue-'));
    const path = join(dir, 'queue.sqlite');
    const settings = { consumerId: 'c1', leaseMs: 1000, retentionMs: 60_000 };
    try {
      const queue = new SqliteQueue(path, settings);
      const accepted = queue.enqueue({
        inferenceId: 'last',
        endpointName: 'e',
        inputLocation: 'inline:last',
        inputInline: true,
        payloadBase64: Buffer.from('1,2\n').toString('base64'),
        contentType: 'text/csv',
        outputLocation: 's3://o/last.out',
        failureLocation: 's3://o/last-error.out',
        receivedAtMs: 1,
        requestTtlS: 60,
        invocationTimeoutS: 10,
      });
      await queue.close();
      assert.equal((await accepted).created, true);
      const reopened = new SqliteQueue(path, settings);
      try {
        assert.equal((await reopened.get('last'))?.status, 'queued');
      } finally {
        await reopened.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
