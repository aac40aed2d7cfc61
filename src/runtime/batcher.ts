/**
 * Dynamic batching on the main thread, before the hop into the worker pool. Queued requests
 * that can be stacked (the same dtypes and shapes, padding aside) are merged along dimension 0
 * up to `maxBatchSize` rows (here, or in the worker when they are large) and handed to the
 * instances, at most `maxBatchesInFlight` at once. Everything still queued can be dropped
 * safely (deadline passed, client gone); a dispatched batch is never interrupted, only its late
 * result discarded.
 */
import type { NamedTensors } from '../codecs/tensor.js';
import { InferdError, errorFromCode , shuttingDown } from '../errors.js';
import { batchMembers, inputBytes, mergeInputs, rowsOf, splitOutputs, stackable, type BatchLayout, type BatchMembers } from './batch-merge.js';
import type { InferenceOutcome, InferenceTask } from './worker-protocol.js';

/** Failures a single request's data can cause; a merged batch failing so is retried member by member. */
const RETRY_ALONE = new Set(['INFERD_ERR_INFERENCE_FAILED', 'INFERD_ERR_INPUT_INVALID']);

/**
 * From this size on, a batch's members go to the worker to be merged there. Merging on the HTTP
 * thread allocates the batch's size again on every dispatch; with images (600 KB each) the
 * garbage collections that this drives took half of that thread's time.
 */
export const MERGE_IN_WORKER_MIN_BYTES = 256 * 1024;

export type DispatchReason = 'full' | 'preferred' | 'idle' | 'delay' | 'shape';

export interface InferenceResult {
  readonly outputs: NamedTensors;
  readonly computeMs: number;
  readonly queueMs: number;
  readonly batchRows: number;
}

export interface SubmitOptions {
  /**
   * Asked before the request is dispatched: true drops it (the client disconnected). A running
   * inference is never aborted. A plain function, not an AbortSignal: it costs nothing per request.
   */
  readonly isCancelled?: (() => boolean) | undefined;
  /**
   * Admitted already, by the queue or by a limit of its own: never refused for a full queue.
   * A later part of a request the queue has taken (a streamed answer), so that a stream does not
   * break half-way under load; an async request (bounded by its concurrency), so that it waits
   * its turn rather than fails.
   */
  readonly admitted?: boolean | undefined;
}

export interface BatcherStats {
  readonly queued: number;
  readonly queuedRows: number;
  readonly inFlight: number;
}

/** What a batcher reports as it works; metrics implement it, the batcher knows nothing of them. */
export interface BatchObserver {
  dispatched(event: { reason: DispatchReason; rows: number; requests: number; assemblyMs: number }): void;
  completed(event: { rows: number; computeMs: number; ok: boolean }): void;
}

export interface BatchingOptions {
  /** Rows per batch; 1 turns merging off. */
  readonly maxBatchSize: number;
  readonly maxQueueDelayMs: number;
  readonly preferredBatchSizes: readonly number[];
  /** Requests that may wait; beyond it, 503. */
  readonly maxQueueSize: number;
}

export interface BatcherOptions extends BatchingOptions {
  readonly run: (task: InferenceTask) => Promise<InferenceOutcome>;
  /** Batches handed to the instances at once, until `resize()` says otherwise. */
  readonly maxBatchesInFlight: number;
  readonly timeoutMs: number;
  readonly layout: BatchLayout;
  readonly observer?: BatchObserver | undefined;
}

interface Pending {
  readonly inputs: NamedTensors;
  readonly rows: number;
  readonly enqueuedAt: number;
  readonly isCancelled: (() => boolean) | undefined;
  readonly resolve: (result: InferenceResult) => void;
  readonly reject: (error: InferdError) => void;
  settled: boolean;
  dispatched: boolean;
}

export class Batcher {
  #options: BatcherOptions;
  /**
   * Waiting to be dispatched, in arrival order, from #queueHead on; entries dispatched or settled
   * since stay until the head passes them, so that taking a batch moves no array. Slots behind a
   * head are emptied as it passes (here and in #unsettled): a request kept there would keep its
   * tensors and its client's request and reply alive through garbage collections, which then
   * copy them, long after it was answered.
   */
  #queue: Array<Pending | undefined> = [];
  #queueHead = 0;
  /** The batch being assembled: reused from pump to pump while a batch is held. */
  #members: Pending[] = [];
  /**
   * Every unsettled request, queued or running, in arrival order. All share one timeout, so
   * deadlines come in this order too and one timer, armed for the oldest, serves them all.
   */
  #unsettled: Array<Pending | undefined> = [];
  #unsettledHead = 0;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #queued = 0;
  #queuedRows = 0;
  #inFlight = 0;
  /** When a dispatch slot last became free: a batch held after it was waiting on purpose. */
  #freeSince = performance.now();
  #delayTimer: NodeJS.Timeout | undefined;
  #pumpScheduled = false;
  #maxBatchesInFlight: number;
  #closed = false;
  #drained: Promise<void> | undefined;
  #idle: (() => void) | undefined;

  constructor(options: BatcherOptions) {
    this.#options = options;
    this.#maxBatchesInFlight = options.maxBatchesInFlight;
  }

  /** The instances changed: hand out this many batches at once. Batches already out run on. */
  resize(maxBatchesInFlight: number): void {
    this.#maxBatchesInFlight = maxBatchesInFlight;
    this.#pump();
  }

  stats(): BatcherStats {
    return { queued: this.#queued, queuedRows: this.#queuedRows, inFlight: this.#inFlight };
  }

  submit(inputs: NamedTensors, { isCancelled, admitted }: SubmitOptions = {}): Promise<InferenceResult> {
    if (this.#closed) return Promise.reject(shuttingDown());
    if (this.#queued >= this.#options.maxQueueSize && !admitted) {
      return Promise.reject(
        new InferdError('INFERD_ERR_QUEUE_FULL', `the inference queue is full (${this.#options.maxQueueSize} requests waiting)`),
      );
    }
    return new Promise<InferenceResult>((resolve, reject) => {
      const entry: Pending = {
        inputs,
        rows: rowsOf(inputs),
        enqueuedAt: performance.now(),
        isCancelled,
        resolve,
        reject,
        settled: false,
        dispatched: false,
      };
      this.#queue.push(entry);
      this.#unsettled.push(entry);
      this.#queued += 1;
      this.#queuedRows += entry.rows;
      this.#armDeadline();
      this.#pumpThisTurn();
    });
  }

  /**
   * Dispatches once the event loop has handled everything that arrived with this request:
   * requests read from many sockets in one turn go out as one batch instead of the first alone,
   * which costs no latency (the turn is under way) and fewer hand-offs per request.
   */
  #pumpThisTurn(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  #armDeadline(): void {
    if (this.#deadlineTimer) return;
    const oldest = this.#oldestUnsettled();
    if (!oldest) return;
    this.#deadlineTimer = setTimeout(() => {
      this.#deadlineTimer = undefined;
      this.#expire();
    }, Math.max(0, Math.ceil(oldest.enqueuedAt + this.#options.timeoutMs - performance.now())));
  }

  #oldestUnsettled(): Pending | undefined {
    const unsettled = this.#unsettled;
    while (this.#unsettledHead < unsettled.length && unsettled[this.#unsettledHead]!.settled) {
      unsettled[this.#unsettledHead] = undefined;
      this.#unsettledHead += 1;
    }
    if (this.#unsettledHead > 256 && this.#unsettledHead * 2 > this.#unsettled.length) {
      this.#unsettled = this.#unsettled.slice(this.#unsettledHead);
      this.#unsettledHead = 0;
    }
    return this.#unsettled[this.#unsettledHead];
  }

  /** Answers 504 to every request past its deadline, queued or running, then re-arms. */
  #expire(): void {
    const expiredBefore = performance.now() - this.#options.timeoutMs;
    for (let oldest = this.#oldestUnsettled(); oldest && oldest.enqueuedAt <= expiredBefore; oldest = this.#oldestUnsettled()) {
      this.#settle(oldest, new InferdError('INFERD_ERR_TIMEOUT', `no answer within ${this.#options.timeoutMs / 1000} s`));
    }
    this.#armDeadline();
  }

  /** Rejects new work and resolves once nothing is queued or running. */
  drain(): Promise<void> {
    this.#closed = true;
    this.#drained ??=
      this.#queued === 0 && this.#inFlight === 0
        ? Promise.resolve()
        : new Promise((resolve) => {
            this.#idle = resolve;
          });
    return this.#drained;
  }

  #settle(entry: Pending, outcome: InferdError | InferenceResult): void {
    if (entry.settled) return;
    entry.settled = true;
    // Let go of settled requests (and the tensors they hold) as soon as they are the oldest.
    this.#oldestUnsettled();
    if (!entry.dispatched) this.#leaveQueue(entry);
    if (outcome instanceof InferdError) entry.reject(outcome);
    else entry.resolve(outcome);
    this.#checkIdle();
  }

  #leaveQueue(entry: Pending): void {
    this.#queued -= 1;
    this.#queuedRows -= entry.rows;
  }

  /**
   * Assembles the next batch in #members: the oldest waiting request and every later one that
   * stacks with it and fits. Says why it should go now, 'hold' when it should wait for more, or
   * nothing when no request waits. Drops every waiting request whose client has left, beyond a
   * full batch too: it would otherwise hold a place in the queue (and count against its limit).
   */
  #nextBatch(): DispatchReason | 'hold' | undefined {
    const { maxBatchSize, preferredBatchSizes, maxQueueDelayMs, layout } = this.#options;
    const queue = this.#queue;
    const members = this.#members;
    members.length = 0;
    let rows = 0;
    let full = false;
    let otherShapeWaiting = false;
    for (let i = this.#queueHead; i < queue.length; i += 1) {
      const entry = queue[i]!;
      if (!entry.settled && !entry.dispatched && entry.isCancelled?.()) this.#settle(entry, cancelled());
      if (entry.settled || entry.dispatched) {
        if (members.length === 0) {
          queue[i] = undefined;
          this.#queueHead = i + 1;
        }
        continue;
      }
      if (full) continue;
      const head = members[0];
      if (head === undefined) {
        members.push(entry);
        rows = entry.rows;
        full = rows >= maxBatchSize;
      } else if (!stackable(head.inputs, entry.inputs, layout)) otherShapeWaiting = true;
      else if (rows + entry.rows > maxBatchSize) full = true;
      else {
        members.push(entry);
        rows += entry.rows;
        full = rows >= maxBatchSize;
      }
    }
    this.#compactQueue();
    const head = members[0];
    if (!head) return undefined;
    if (full) return 'full';
    if (preferredBatchSizes.includes(rows)) return 'preferred';
    if (otherShapeWaiting) return 'shape';
    if (this.#inFlight === 0) return 'idle';
    if (performance.now() - head.enqueuedAt >= maxQueueDelayMs) return 'delay';
    return 'hold';
  }

  /** Forgets the entries the head has passed: all of them at once when the queue is empty. */
  #compactQueue(): void {
    if (this.#queueHead === this.#queue.length) {
      this.#queue.length = 0;
      this.#queueHead = 0;
    } else if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
  }

  #pump(): void {
    while (this.#inFlight < this.#maxBatchesInFlight) {
      const reason = this.#nextBatch();
      if (reason === undefined) return;
      if (reason === 'hold') {
        // A slot is free but others are busy: hold the batch so more requests can join, up to
        // maxQueueDelayMs after its oldest request arrived.
        this.#armDelay(this.#members[0]!.enqueuedAt);
        return;
      }
      const members = this.#members;
      this.#members = [];
      void this.#dispatch(members, reason);
    }
  }

  #armDelay(oldestEnqueuedAt: number): void {
    if (this.#delayTimer) return;
    const waitMs = Math.max(0, oldestEnqueuedAt + this.#options.maxQueueDelayMs - performance.now());
    this.#delayTimer = setTimeout(() => {
      this.#delayTimer = undefined;
      this.#pump();
    }, Math.ceil(waitMs));
  }

  async #dispatch(members: Pending[], reason: DispatchReason): Promise<void> {
    const now = performance.now();
    for (const entry of members) {
      entry.dispatched = true;
      this.#leaveQueue(entry);
    }
    this.#inFlight += 1;
    let rows = 0;
    for (const entry of members) rows += entry.rows;
    this.#options.observer?.dispatched({
      reason,
      rows,
      requests: members.length,
      assemblyMs: Math.max(0, now - Math.max(members[0]!.enqueuedAt, this.#freeSince)),
    });

    let batch: BatchMembers | undefined;
    let outcome: InferenceOutcome;
    try {
      let task: InferenceTask;
      if (members.length === 1) task = { inputs: members[0]!.inputs };
      else {
        const inputs = members.map((entry) => entry.inputs);
        const { layout } = this.#options;
        if (inputs.reduce((bytes, member) => bytes + inputBytes(member), 0) >= MERGE_IN_WORKER_MIN_BYTES) {
          batch = batchMembers(inputs, layout);
          task = { members: inputs, pad: layout.pad };
        } else {
          const merged = mergeInputs(inputs, layout);
          batch = merged;
          task = { inputs: merged.inputs };
        }
      }
      outcome = await this.#options.run(task);
    } catch (error) {
      // Nothing may escape: a rejected dispatch would leave its slot taken and its members waiting.
      outcome = { ok: false, code: 'INFERD_ERR_INTERNAL', message: `cannot run the batch: ${(error as Error).message}` };
    }
    this.#inFlight -= 1;
    this.#freeSince = performance.now();
    this.#options.observer?.completed({ rows, computeMs: outcome.ok ? outcome.computeMs : 0, ok: outcome.ok });

    if (!outcome.ok && members.length > 1 && RETRY_ALONE.has(outcome.code)) {
      // One request's bad data must not fail the others merged with it: run each alone.
      this.#inFlight += 1;
      for (const entry of members) await this.#runAlone(entry, now);
      this.#inFlight -= 1;
    } else {
      const computeMs = outcome.ok ? outcome.computeMs : 0;
      const results = this.#results(members, outcome, batch);
      members.forEach((entry, i) => {
        const result = results[i]!;
        this.#settle(
          entry,
          result instanceof InferdError ? result : { outputs: result, computeMs, queueMs: now - entry.enqueuedAt, batchRows: rows },
        );
      });
    }
    this.#pumpThisTurn();
    this.#checkIdle();
  }

  async #runAlone(entry: Pending, dispatchedAt: number): Promise<void> {
    if (entry.settled) return;
    const outcome = await this.#options.run({ inputs: entry.inputs }).catch(
      (error: Error): InferenceOutcome => ({ ok: false, code: 'INFERD_ERR_INTERNAL', message: error.message }),
    );
    this.#options.observer?.completed({ rows: entry.rows, computeMs: outcome.ok ? outcome.computeMs : 0, ok: outcome.ok });
    this.#settle(
      entry,
      outcome.ok
        ? { outputs: outcome.outputs, computeMs: outcome.computeMs, queueMs: dispatchedAt - entry.enqueuedAt, batchRows: entry.rows }
        : errorFromCode(outcome.code, outcome.message),
    );
  }

  /** One result per member; a batch failure fails every member with the same error. */
  #results(members: Pending[], outcome: InferenceOutcome, batch: BatchMembers | undefined): Array<NamedTensors | InferdError> {
    if (!outcome.ok) {
      const error = errorFromCode(outcome.code, outcome.message);
      return members.map(() => error);
    }
    if (!batch) return [outcome.outputs];
    try {
      return splitOutputs(outcome.outputs, batch, this.#options.layout);
    } catch (error) {
      const failure = new InferdError('INFERD_ERR_INFERENCE_FAILED', `cannot split the batch: ${(error as Error).message}`);
      return members.map(() => failure);
    }
  }

  #checkIdle(): void {
    if (this.#queued === 0 && this.#inFlight === 0) {
      clearTimeout(this.#deadlineTimer);
      this.#deadlineTimer = undefined;
      this.#unsettled = [];
      this.#unsettledHead = 0;
    }
    if (this.#idle && this.#queued === 0 && this.#inFlight === 0) {
      const idle = this.#idle;
      this.#idle = undefined;
      idle();
    }
  }
}

function cancelled(): InferdError {
  return new InferdError('INFERD_ERR_CANCELLED', 'the client closed the connection before inference started');
}
