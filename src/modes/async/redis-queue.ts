/**
 * The async backlog in Redis, shared by every instance that points at the same Redis and key
 * prefix. Keys (all under `<prefix>:`):
 *
 * - `job:<id>`: a hash, the job: `request` (the AsyncRequest as JSON, without its payload),
 *   `payload` (a small inline payload, base64, until the job ends), `status`, `attempts`,
 *   `owner` (consumer holding it), `entryId` (its stream entry), `startedAtMs`, `finishedAtMs`,
 *   `failureReason`. Finished and expired jobs get a PEXPIRE of the retention: Redis forgets them.
 * - `queue`: a stream with the consumer group `inferd`; one entry per queued or running job,
 *   deleted when the job finishes or expires. A delivered entry sits in the group's pending list
 *   under its consumer, and its idle time there is the lease: `renew` resets it, and `claim`
 *   takes over (XAUTOCLAIM) entries idle longer than `leaseMs`.
 * - `expiries`: a sorted set of queued jobs by the time their TTL runs out, for `expire`.
 * - `consumers`: a sorted set of consumers by their last `renew`, for `stats`.
 *
 * Every change of a job's status is one Lua script, so it is atomic against other instances:
 * that is what makes a job run by one consumer at a time, and an expiry reported once.
 *
 * Durability is Redis's own: `enqueue` resolves once Redis has the job, which is on disk only
 * with the append-only file. Run Redis with `appendonly yes` and `appendfsync always` (or
 * `everysec`, accepting the loss of up to a second of accepted requests when Redis crashes).
 *
 * Redis measures the lease (pending-entry idle time) on its own clock, in real time; the `nowMs`
 * the caller gives are used for everything else (TTLs, job times, consumer liveness).
 */
import { Redis } from 'ioredis';
import type { AsyncJob, AsyncQueue, AsyncRequest, AsyncStatus, FinishOutcome, QueueSettings, QueueStats } from './queue.js';

export interface RedisQueueSettings extends QueueSettings {
  /** Namespaces the keys, so that several backlogs can share one Redis. */
  readonly keyPrefix: string;
}

const GROUP = 'inferd';
/** Pending entries listed per XPENDING call when renewing, and stream entries read per XREADGROUP. */
const PAGE_SIZE = 1000;

/**
 * Shared by the scripts below, which return the job's HGETALL, or false (nil) where their
 * transition does not apply.
 */
const DROP_ENTRY = `
local function drop_entry(queue, group, entry_id)
  redis.call('XACK', queue, group, entry_id)
  redis.call('XDEL', queue, entry_id)
end
`;

/** KEYS: job, queue, expiries. ARGV: inference id, request JSON, expiresAtMs[, payload]. Returns {created, job}. */
const ENQUEUE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, redis.call('HGETALL', KEYS[1])} end
local entry_id = redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
redis.call('HSET', KEYS[1], 'request', ARGV[2], 'status', 'queued', 'attempts', 0, 'entryId', entry_id)
if ARGV[4] then redis.call('HSET', KEYS[1], 'payload', ARGV[4]) end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return {1, redis.call('HGETALL', KEYS[1])}
`;

/**
 * KEYS: job, queue, expiries. ARGV: group, entry id, inference id, consumer, nowMs.
 * The entry was just delivered to (or taken over by) this consumer. A queued job within its TTL
 * or a running one (its consumer's lease ran out) becomes this consumer's; any other entry is
 * dropped: its job finished, or its TTL ran out (the job stays queued for `expire` to report).
 * A job this consumer runs already stays its own, not handed out twice: it missed renewing (a
 * stalled event loop), it did not die, and the XAUTOCLAIM has renewed the lease.
 */
const CLAIM_ENTRY = `${DROP_ENTRY}
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'running' and redis.call('HGET', KEYS[1], 'owner') == ARGV[4] then return false end
local expires_at_ms = redis.call('ZSCORE', KEYS[3], ARGV[3])
local expired = status == 'queued' and expires_at_ms and tonumber(expires_at_ms) <= tonumber(ARGV[5])
local current = redis.call('HGET', KEYS[1], 'entryId') == ARGV[2]
if not current or expired or (status ~= 'queued' and status ~= 'running') then
  drop_entry(KEYS[2], ARGV[1], ARGV[2])
  return false
end
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('HSET', KEYS[1], 'status', 'running', 'owner', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSETNX', KEYS[1], 'startedAtMs', ARGV[5])
return redis.call('HGETALL', KEYS[1])
`;

/** KEYS: job, queue. ARGV: group, consumer, status, finishedAtMs, retentionMs[, failureReason]. */
const FINISH = `${DROP_ENTRY}
if redis.call('HGET', KEYS[1], 'status') ~= 'running' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then
  return false
end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'finishedAtMs', ARGV[4])
redis.call('HDEL', KEYS[1], 'payload')
if ARGV[6] then redis.call('HSET', KEYS[1], 'failureReason', ARGV[6]) end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
drop_entry(KEYS[2], ARGV[1], redis.call('HGET', KEYS[1], 'entryId'))
return redis.call('HGETALL', KEYS[1])
`;

/**
 * KEYS: job, queue, expiries. ARGV: group, inference id, nowMs, retentionMs. The entry may be
 * undelivered or pending (a claim found the TTL out and left the job): XACK is harmless for both.
 */
const EXPIRE_JOB = `${DROP_ENTRY}
local expires_at_ms = redis.call('ZSCORE', KEYS[3], ARGV[2])
if not expires_at_ms or tonumber(expires_at_ms) > tonumber(ARGV[3]) then return false end
redis.call('ZREM', KEYS[3], ARGV[2])
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return false end
local ttl_s = cjson.decode(redis.call('HGET', KEYS[1], 'request')).requestTtlS
local reason = 'the request waited in the queue past its TTL of ' .. ttl_s .. ' s'
redis.call('HSET', KEYS[1], 'status', 'expired', 'finishedAtMs', ARGV[3], 'failureReason', reason)
redis.call('HDEL', KEYS[1], 'payload')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
drop_entry(KEYS[2], ARGV[1], redis.call('HGET', KEYS[1], 'entryId'))
return redis.call('HGETALL', KEYS[1])
`;

/**
 * KEYS: queue, consumers. ARGV: group, consumer, nowMs, leaseMs, page size.
 * Listing this consumer's pending entries and claiming them again (which resets their idle time)
 * in one script means no entry another consumer took over in between is taken back. Consumers
 * with nothing pending and idle past the lease are deleted from the group (a restart names a new
 * one); that loses nothing, and a live one is recreated by its next read.
 */
const RENEW = `
local start = '-'
local page_size = tonumber(ARGV[5])
while true do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], start, '+', page_size, ARGV[2])
  if #pending == 0 then break end
  local ids = {}
  for i, entry in ipairs(pending) do ids[i] = entry[1] end
  start = '(' .. ids[#ids]
  table.insert(ids, 'JUSTID')
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(ids))
  if #pending < page_size then break end
end
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local fields = {}
  for i = 1, #consumer, 2 do fields[consumer[i]] = consumer[i + 1] end
  if fields['pending'] == 0 and fields['idle'] > tonumber(ARGV[4]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], fields['name'])
  end
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[4]))
return true
`;

const SCRIPTS = {
  inferdEnqueue: { numberOfKeys: 3, lua: ENQUEUE },
  inferdClaimEntry: { numberOfKeys: 3, lua: CLAIM_ENTRY },
  inferdFinish: { numberOfKeys: 2, lua: FINISH },
  inferdExpireJob: { numberOfKeys: 3, lua: EXPIRE_JOB },
  inferdRenew: { numberOfKeys: 2, lua: RENEW },
} as const;

/** ioredis adds a method per defined script, sent as EVALSHA (EVAL when Redis lacks it). */
type ScriptMethods = Record<keyof typeof SCRIPTS, (...keysThenArgs: (string | number)[]) => Promise<unknown>>;

/** A stream entry as XREADGROUP and XAUTOCLAIM return it: its id, then its fields flat. */
type StreamEntry = [entryId: string, fields: string[] | null];

export class RedisQueue implements AsyncQueue {
  readonly kind = 'redis';
  private readonly keys: { readonly queue: string; readonly expiries: string; readonly consumers: string };

  private constructor(
    private readonly redis: Redis,
    private readonly settings: RedisQueueSettings,
  ) {
    const prefix = settings.keyPrefix;
    this.keys = { queue: `${prefix}:queue`, expiries: `${prefix}:expiries`, consumers: `${prefix}:consumers` };
  }

  /** Connects and creates the stream and its consumer group where they are missing. */
  static async open(url: string, settings: RedisQueueSettings): Promise<RedisQueue> {
    const redis = new Redis(url, { lazyConnect: true });
    try {
      await redis.connect();
      for (const [name, definition] of Object.entries(SCRIPTS)) redis.defineCommand(name, definition);
      const queue = new RedisQueue(redis, settings);
      await redis.xgroup('CREATE', queue.keys.queue, GROUP, '0', 'MKSTREAM').catch((error: Error) => {
        if (!error.message.startsWith('BUSYGROUP')) throw error;
      });
      return queue;
    } catch (error) {
      redis.disconnect();
      throw error;
    }
  }

  async enqueue(request: AsyncRequest): Promise<{ readonly job: AsyncJob; readonly created: boolean }> {
    const expiresAtMs = request.receivedAtMs + request.requestTtlS * 1000;
    // The payload gets a field of its own, which the job's end deletes.
    const { payloadBase64, ...rest } = request;
    const [created, fields] = (await this.scripts.inferdEnqueue(
      this.jobKey(request.inferenceId),
      this.keys.queue,
      this.keys.expiries,
      request.inferenceId,
      JSON.stringify(rest),
      expiresAtMs,
      ...(payloadBase64 === undefined ? [] : [payloadBase64]),
    )) as [number, string[]];
    return { job: toJob(fields), created: created === 1 };
  }

  async get(inferenceId: string): Promise<AsyncJob | undefined> {
    const fields = await this.redis.hgetall(this.jobKey(inferenceId));
    return Object.keys(fields).length === 0 ? undefined : toJob(Object.entries(fields).flat());
  }

  /**
   * Jobs of dead consumers first, then new ones: that is oldest first, as entries are delivered
   * in stream order, so every delivered entry is older than every undelivered one. (The stream
   * order is the order of enqueue, which is that of receivedAtMs up to clock skew between
   * instances.) Never blocks: the caller polls.
   */
  async claim(max: number, nowMs: number): Promise<AsyncJob[]> {
    const jobs: AsyncJob[] = [];
    if (max <= 0) return jobs;
    let cursor = '0-0';
    do {
      const [next, entries] = (await this.redis.xautoclaim(
        this.keys.queue,
        GROUP,
        this.settings.consumerId,
        this.settings.leaseMs,
        cursor,
        'COUNT',
        max - jobs.length,
      )) as [string, StreamEntry[]];
      jobs.push(...(await this.claimEntries(entries, nowMs)));
      cursor = next;
    } while (cursor !== '0-0' && jobs.length < max);

    while (jobs.length < max) {
      const wanted = Math.min(max - jobs.length, PAGE_SIZE);
      const reply = (await this.redis.xreadgroup(
        'GROUP',
        GROUP,
        this.settings.consumerId,
        'COUNT',
        wanted,
        'STREAMS',
        this.keys.queue,
        '>',
      )) as [stream: string, entries: StreamEntry[]][] | null;
      const entries = reply?.[0]?.[1] ?? [];
      jobs.push(...(await this.claimEntries(entries, nowMs)));
      if (entries.length < wanted) break;
    }
    return jobs;
  }

  async renew(nowMs: number): Promise<void> {
    const { consumerId, leaseMs } = this.settings;
    await this.scripts.inferdRenew(this.keys.queue, this.keys.consumers, GROUP, consumerId, nowMs, leaseMs, PAGE_SIZE);
  }

  async finish(inferenceId: string, outcome: FinishOutcome, nowMs: number): Promise<AsyncJob | undefined> {
    const { consumerId, retentionMs } = this.settings;
    const reason = outcome.failureReason === undefined ? [] : [outcome.failureReason];
    const fields = (await this.scripts.inferdFinish(
      this.jobKey(inferenceId),
      this.keys.queue,
      GROUP,
      consumerId,
      outcome.status,
      nowMs,
      retentionMs,
      ...reason,
    )) as string[] | null;
    return fields === null ? undefined : toJob(fields);
  }

  /** Finished jobs need nothing here: their keys carry a PEXPIRE of the retention. */
  async expire(nowMs: number): Promise<AsyncJob[]> {
    const due = await this.redis.zrangebyscore(this.keys.expiries, '-inf', nowMs);
    const replies = await Promise.all(
      due.map(
        (inferenceId) =>
          this.scripts.inferdExpireJob(
            this.jobKey(inferenceId),
            this.keys.queue,
            this.keys.expiries,
            GROUP,
            inferenceId,
            nowMs,
            this.settings.retentionMs,
          ) as Promise<string[] | null>,
      ),
    );
    return replies.flatMap((fields) => (fields === null ? [] : [toJob(fields)]));
  }

  /** Entries are deleted when their job finishes, so the stream holds the queued and running ones. */
  async stats(nowMs: number): Promise<QueueStats> {
    const replies = await this.redis
      .multi()
      .xlen(this.keys.queue)
      .xpending(this.keys.queue, GROUP)
      .xrange(this.keys.queue, '-', '+', 'COUNT', 1)
      .zcount(this.keys.consumers, `(${nowMs - this.settings.leaseMs}`, '+inf')
      .exec();
    const [entries, pending, first, consumers] = (replies ?? []).map(([error, value]) => {
      if (error) throw error;
      return value;
    }) as [number, [count: number, ...unknown[]], StreamEntry[], number];
    const running = pending[0];
    return {
      queued: entries - running,
      running,
      oldestReceivedAtMs: await this.oldestReceivedAtMs(first[0]),
      consumers: Math.max(1, consumers),
    };
  }

  /** Leases held run out on their own; the consumer stops counting as alive at once. */
  async close(): Promise<void> {
    await this.redis.zrem(this.keys.consumers, this.settings.consumerId);
    await this.redis.quit();
  }

  private get scripts(): ScriptMethods {
    return this.redis as unknown as ScriptMethods;
  }

  private jobKey(inferenceId: string): string {
    return `${this.settings.keyPrefix}:job:${inferenceId}`;
  }

  private async claimEntries(entries: readonly StreamEntry[], nowMs: number): Promise<AsyncJob[]> {
    const replies = await Promise.all(
      entries.map(([entryId, fields]) => {
        // Only Redis 6.2 lists entries deleted from the stream (with nil fields); 7 drops them itself.
        const inferenceId = fields?.[1] ?? '';
        return this.scripts.inferdClaimEntry(
          this.jobKey(inferenceId),
          this.keys.queue,
          this.keys.expiries,
          GROUP,
          entryId,
          inferenceId,
          this.settings.consumerId,
          nowMs,
        ) as Promise<string[] | null>;
      }),
    );
    return replies.flatMap((fields) => (fields === null ? [] : [toJob(fields)]));
  }

  /** The first entry's job; the entry id's own time should the job be gone already (a race). */
  private async oldestReceivedAtMs(first: StreamEntry | undefined): Promise<number | undefined> {
    if (first === undefined) return undefined;
    const [entryId, fields] = first;
    const request = fields?.[1] === undefined ? null : await this.redis.hget(this.jobKey(fields[1]), 'request');
    return request === null ? Number(entryId.split('-')[0]) : (JSON.parse(request) as AsyncRequest).receivedAtMs;
  }
}

/** A job from its hash, as HGETALL returns it (field, value, field, value…). */
function toJob(flat: readonly string[]): AsyncJob {
  const fields = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) fields.set(flat[i]!, flat[i + 1]!);
  const optionalNumber = (name: string): number | undefined => {
    const value = fields.get(name);
    return value === undefined ? undefined : Number(value);
  };
  const request = JSON.parse(fields.get('request')!) as AsyncRequest;
  return {
    ...request,
    status: fields.get('status') as AsyncStatus,
    attempts: Number(fields.get('attempts')),
    startedAtMs: optionalNumber('startedAtMs'),
    finishedAtMs: optionalNumber('finishedAtMs'),
    failureReason: fields.get('failureReason'),
    ...(fields.has('payload') ? { payloadBase64: fields.get('payload') } : {}),
  };
}
