/**
 * The async backlog: requests accepted by `POST /async-invocations`, held durably until one
 * instance runs them. Two implementations: an embedded SQLite database on local disk (the
 * default, one host) and Redis Streams with a consumer group (several instances, one backlog).
 *
 * Delivery is by lease: `claim` hands a job to this consumer for `leaseMs`, `renew` extends every
 * lease it holds, and a job whose consumer died (its lease ran out) is claimed again by another,
 * or by the same one after a restart. Outputs are written under the inference id, so a job run
 * again after a crash overwrites its own output rather than adding a second one.
 */

export type AsyncStatus = 'queued' | 'running' | 'completed' | 'failed' | 'expired';

/** What the HTTP route accepted: everything needed to run it later, in any instance. */
export interface AsyncRequest {
  /** The client's `X-Amzn-SageMaker-Inference-Id`, or one we generated; unique in the queue. */
  readonly inferenceId: string;
  readonly endpointName: string;
  /**
   * Where the payload is: the client's `X-Amzn-SageMaker-InputLocation`, where we staged an
   * inline body, or `inline:<inference id>` for a body the record holds itself.
   */
  readonly inputLocation: string;
  /** The payload came in the request body (staged by inferd and removed once finished, or held in the record). */
  readonly inputInline: boolean;
  /**
   * A small inline payload, base64, held in the queue record itself: one synced commit makes
   * payload and record durable together. A queue keeps it until the job finishes or expires.
   */
  readonly payloadBase64?: string | undefined;
  readonly contentType: string;
  readonly accept?: string | undefined;
  readonly customAttributes?: string | undefined;
  /** The repository model it names (`X-Amzn-SageMaker-Target-Model`); absent: the default model. */
  readonly targetModel?: string | undefined;
  readonly outputLocation: string;
  readonly failureLocation: string;
  readonly receivedAtMs: number;
  readonly requestTtlS: number;
  readonly invocationTimeoutS: number;
}

export interface AsyncJob extends AsyncRequest {
  readonly status: AsyncStatus;
  /** Times it was claimed: 1 for a job that ran once, more after a consumer died holding it. */
  readonly attempts: number;
  /** When it was first claimed. */
  readonly startedAtMs?: number | undefined;
  /** When it completed, failed or expired. */
  readonly finishedAtMs?: number | undefined;
  readonly failureReason?: string | undefined;
}

export interface QueueStats {
  /** Waiting to be claimed. */
  readonly queued: number;
  /** Claimed and not yet finished. */
  readonly running: number;
  /** The oldest `receivedAtMs` among queued and running jobs; undefined when there are none. */
  readonly oldestReceivedAtMs?: number | undefined;
  /** Instances consuming this queue now (this one included): 1 for the embedded queue. */
  readonly consumers: number;
}

export interface FinishOutcome {
  readonly status: 'completed' | 'failed';
  readonly failureReason?: string | undefined;
}

export interface AsyncQueue {
  /** `sqlite` or `redis`, for logs and metrics. */
  readonly kind: string;
  /**
   * Records a new request durably (on disk, synced) before resolving. When its inference id is
   * already known the existing job is returned, untouched, with `created: false`.
   */
  enqueue(request: AsyncRequest): Promise<{ readonly job: AsyncJob; readonly created: boolean }>;
  get(inferenceId: string): Promise<AsyncJob | undefined>;
  /**
   * Up to `max` jobs for this consumer, oldest first: queued ones whose TTL has not run out, and
   * running ones whose lease ran out (their consumer died), never this consumer's own. Each comes back `running`, leased to
   * this consumer, `attempts` one higher, `startedAtMs` set when it was unset. No job is handed
   * to two consumers whose leases are both alive.
   */
  claim(max: number, nowMs: number): Promise<AsyncJob[]>;
  /** Extends the lease of every job this consumer holds, and marks this consumer alive. */
  renew(nowMs: number): Promise<void>;
  /**
   * Finishes a job this consumer holds. Undefined when it no longer holds it (its lease ran out
   * and another consumer claimed it): the caller then must not report an outcome.
   */
  finish(inferenceId: string, outcome: FinishOutcome, nowMs: number): Promise<AsyncJob | undefined>;
  /**
   * Marks queued jobs whose TTL ran out (`receivedAtMs + requestTtlS * 1000 <= nowMs`) as
   * expired and returns them; each is returned once, across all consumers. Also forgets finished
   * jobs older than the retention.
   */
  expire(nowMs: number): Promise<AsyncJob[]>;
  stats(nowMs: number): Promise<QueueStats>;
  /** Stops using the queue; leases held are left to run out. */
  close(): Promise<void>;
}

export interface QueueSettings {
  /** Names this instance as a consumer; stable across its lifetime, new after a restart. */
  readonly consumerId: string;
  /** How long a claim lasts without `renew`; a dead consumer's jobs go to another after it. */
  readonly leaseMs: number;
  /** How long finished jobs are kept for status queries and duplicate-id answers. */
  readonly retentionMs: number;
}
