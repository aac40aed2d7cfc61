/**
 * The embedded async backlog: one SQLite database on local disk, in WAL mode. Several processes
 * on one host (`--processes`) may share the file: every claim runs in an immediate transaction,
 * so SQLite's lock hands a job to one of them.
 *
 * Durability without blocking the event loop: SQLite commits with `synchronous=NORMAL` (it
 * writes the log and returns), and the queue then fsyncs the log file itself on libuv's thread
 * pool (fdatasync is per file, so it covers every frame written to the log so far, whoever wrote
 * it). `enqueue`, `finish` and `expire` resolve only after that sync, so an acknowledged request
 * survives power loss as with `synchronous=FULL`; the HTTP thread no longer waits on the disk
 * (that wait was a fifth of its time under async load). Writes of one event-loop turn share one
 * transaction, and commits that land while a sync runs share the next one. Claims and lease
 * renewals are not synced: one lost to a power failure only lets a job run again (outputs are
 * written under its id), and the next sync makes them durable with everything before them.
 */
import Database from 'better-sqlite3';
import { closeSync, fdatasync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { SharedSync } from '../../storage/shared-sync.js';
import type { AsyncJob, AsyncQueue, AsyncRequest, AsyncStatus, FinishOutcome, QueueSettings, QueueStats } from './queue.js';

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    inference_id TEXT NOT NULL UNIQUE,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    lease_until_ms INTEGER,
    started_at_ms INTEGER,
    finished_at_ms INTEGER,
    failure_reason TEXT
  );
  CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
  CREATE INDEX IF NOT EXISTS jobs_by_finish ON jobs (finished_at_ms) WHERE finished_at_ms IS NOT NULL;
  CREATE TABLE IF NOT EXISTS consumers (id TEXT PRIMARY KEY, seen_at_ms INTEGER NOT NULL);
`;

interface JobRow {
  request: string;
  status: AsyncStatus;
  attempts: number;
  started_at_ms: number | null;
  finished_at_ms: number | null;
  failure_reason: string | null;
}

function toJob(row: JobRow): AsyncJob {
  return {
    ...(JSON.parse(row.request) as AsyncRequest),
    status: row.status,
    attempts: row.attempts,
    startedAtMs: row.started_at_ms ?? undefined,
    finishedAtMs: row.finished_at_ms ?? undefined,
    failureReason: row.failure_reason ?? undefined,
  };
}

/** A write waiting for the transaction that commits this turn's writes. */
interface PendingWrite {
  readonly write: () => void;
  readonly committed: () => void;
  readonly failed: (error: unknown) => void;
}

export class SqliteQueue implements AsyncQueue {
  readonly kind = 'sqlite';
  readonly #db: Database.Database;
  readonly #settings: QueueSettings;
  readonly #statements;
  readonly #claimTransaction;
  #pending: PendingWrite[] = [];
  /** The write-ahead log, opened to sync it; SQLite keeps it while a connection is open. */
  readonly #logFd: number;
  readonly #logSync: SharedSync;

  constructor(path: string, settings: QueueSettings) {
    mkdirSync(dirname(path), { recursive: true });
    this.#settings = settings;
    this.#db = new Database(path, { timeout: 10_000 });
    // Switching to WAL creates the log file (`<path>-wal`); it is removed only when the last
    // connection closes, so the descriptor stays valid while this one is open.
    this.#db.pragma('journal_mode = WAL');
    // NORMAL: commits do not sync; #logSync does, off the event loop, before anything is
    // acknowledged.
    this.#db.pragma('synchronous = NORMAL');
    this.#db.exec(SCHEMA);
    this.#logFd = openSync(`${path}-wal`, 'r+');
    const datasync = promisify(fdatasync);
    this.#logSync = new SharedSync(() => datasync(this.#logFd));
    const db = this.#db;
    this.#statements = {
      insert: db.prepare(
        `INSERT INTO jobs (inference_id, request, status, received_at_ms, expires_at_ms)
         VALUES (@inferenceId, @request, 'queued', @receivedAtMs, @expiresAtMs) ON CONFLICT (inference_id) DO NOTHING`,
      ),
      get: db.prepare<[string], JobRow>('SELECT * FROM jobs WHERE inference_id = ?'),
      // A consumer never takes back its own running job: it is still running it, late renewal or not.
      // Two index searches that each stop after @max rows: one query with OR read every queued
      // row and sorted them, which made each claim cost in proportion to the backlog.
      claimable: db.prepare<{ now: number; max: number; owner: string }, { seq: number }>(
        `SELECT seq FROM (SELECT seq FROM jobs WHERE status = 'queued' AND expires_at_ms > @now ORDER BY seq LIMIT @max)
         UNION ALL
         SELECT seq FROM (SELECT seq FROM jobs WHERE status = 'running' AND lease_until_ms <= @now AND owner != @owner ORDER BY seq LIMIT @max)
         ORDER BY seq LIMIT @max`,
      ),
      take: db.prepare<{ seq: number; owner: string; now: number; leaseUntil: number }, JobRow>(
        `UPDATE jobs SET status = 'running', owner = @owner, lease_until_ms = @leaseUntil, attempts = attempts + 1,
           started_at_ms = COALESCE(started_at_ms, @now)
         WHERE seq = @seq RETURNING *`,
      ),
      renew: db.prepare(`UPDATE jobs SET lease_until_ms = @leaseUntil WHERE owner = @owner AND status = 'running'`),
      seen: db.prepare(`INSERT INTO consumers (id, seen_at_ms) VALUES (@owner, @now) ON CONFLICT (id) DO UPDATE SET seen_at_ms = @now`),
      finish: db.prepare<{ id: string; owner: string; status: string; now: number; reason: string | null }, JobRow>(
        `UPDATE jobs SET status = @status, finished_at_ms = @now, failure_reason = @reason, owner = NULL, lease_until_ms = NULL,
           request = json_remove(request, '$.payloadBase64')
         WHERE inference_id = @id AND owner = @owner AND status = 'running' RETURNING *`,
      ),
      expire: db.prepare<{ now: number }, JobRow>(
        `UPDATE jobs SET status = 'expired', finished_at_ms = @now,
           failure_reason = 'the request waited in the queue past its TTL of ' || json_extract(request, '$.requestTtlS') || ' s',
           request = json_remove(request, '$.payloadBase64')
         WHERE status = 'queued' AND expires_at_ms <= @now RETURNING *`,
      ),
      forget: db.prepare(`DELETE FROM jobs WHERE finished_at_ms <= @before`),
      forgetConsumers: db.prepare(`DELETE FROM consumers WHERE seen_at_ms <= @before`),
      counts: db.prepare<[], { queued: number | null; running: number | null; oldest: number | null }>(
        `SELECT SUM(status = 'queued') AS queued, SUM(status = 'running') AS running, MIN(received_at_ms) AS oldest
         FROM jobs WHERE status IN ('queued', 'running')`,
      ),
      consumers: db.prepare<{ after: number }, { live: number }>(`SELECT COUNT(*) AS live FROM consumers WHERE seen_at_ms > @after`),
    };
    this.#claimTransaction = db.transaction((max: number, now: number) => {
      const leaseUntil = now + this.#settings.leaseMs;
      return this.#statements.claimable
        .all({ now, max, owner: this.#settings.consumerId })
        .map(({ seq }) => toJob(this.#statements.take.get({ seq, owner: this.#settings.consumerId, now, leaseUntil })!));
    });
  }

  /** Runs `write` in the synced transaction that commits every write of this turn. */
  #inThisTurn<T>(write: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let result: T;
      const entry: PendingWrite = { write: () => void (result = write()), committed: () => resolve(result), failed: reject };
      if (this.#pending.push(entry) === 1) setImmediate(() => this.#commitPending());
    });
  }

  #commitPending(): void {
    const pending = this.#pending;
    this.#pending = [];
    try {
      this.#db.transaction(() => {
        for (const entry of pending) entry.write();
      })();
    } catch (error) {
      for (const entry of pending) entry.failed(error);
      return;
    }
    this.#logSync.request().then(
      () => {
        for (const entry of pending) entry.committed();
      },
      (error: unknown) => {
        for (const entry of pending) entry.failed(error);
      },
    );
  }

  enqueue(request: AsyncRequest): Promise<{ job: AsyncJob; created: boolean }> {
    return this.#inThisTurn(() => {
      const { changes } = this.#statements.insert.run({
        inferenceId: request.inferenceId,
        request: JSON.stringify(request),
        receivedAtMs: request.receivedAtMs,
        expiresAtMs: request.receivedAtMs + request.requestTtlS * 1000,
      });
      return { job: toJob(this.#statements.get.get(request.inferenceId)!), created: changes === 1 };
    });
  }

  async get(inferenceId: string): Promise<AsyncJob | undefined> {
    const row = this.#statements.get.get(inferenceId);
    return row ? toJob(row) : undefined;
  }

  async claim(max: number, nowMs: number): Promise<AsyncJob[]> {
    if (max <= 0) return [];
    return this.#claimTransaction.immediate(max, nowMs);
  }

  async renew(nowMs: number): Promise<void> {
    const owner = this.#settings.consumerId;
    this.#db.transaction(() => {
      this.#statements.renew.run({ owner, leaseUntil: nowMs + this.#settings.leaseMs });
      this.#statements.seen.run({ owner, now: nowMs });
    })();
  }

  finish(inferenceId: string, outcome: FinishOutcome, nowMs: number): Promise<AsyncJob | undefined> {
    return this.#inThisTurn(() => {
      const row = this.#statements.finish.get({
        id: inferenceId,
        owner: this.#settings.consumerId,
        status: outcome.status,
        now: nowMs,
        reason: outcome.failureReason ?? null,
      });
      return row ? toJob(row) : undefined;
    });
  }

  async expire(nowMs: number): Promise<AsyncJob[]> {
    const expired = this.#db.transaction(() => {
      const jobs = this.#statements.expire.all({ now: nowMs }).map(toJob);
      this.#statements.forget.run({ before: nowMs - this.#settings.retentionMs });
      this.#statements.forgetConsumers.run({ before: nowMs - this.#settings.leaseMs });
      return jobs;
    })();
    // Expiry is notified: durable first, so a crash cannot notify it twice.
    if (expired.length > 0) await this.#logSync.request();
    return expired;
  }

  async stats(nowMs: number): Promise<QueueStats> {
    const counts = this.#statements.counts.get()!;
    const { live } = this.#statements.consumers.get({ after: nowMs - this.#settings.leaseMs })!;
    return {
      queued: counts.queued ?? 0,
      running: counts.running ?? 0,
      oldestReceivedAtMs: counts.oldest ?? undefined,
      consumers: Math.max(1, live),
    };
  }

  async close(): Promise<void> {
    if (this.#pending.length > 0) this.#commitPending();
    await this.#logSync.idle();
    closeSync(this.#logFd);
    this.#db.close();
  }
}
