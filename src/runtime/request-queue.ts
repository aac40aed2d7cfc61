/**
 * The bounded FIFO in front of the worker pool. It hands a worker at most one task at a time, so
 * Piscina's own queue stays empty and a task that leaves this queue starts at once: everything
 * still waiting here can be dropped safely (deadline passed, client gone), while a running
 * inference is never interrupted, only its late result discarded.
 */
import type { NamedTensors } from '../codecs/tensor.js';
import { InferdError, errorFromCode } from '../errors.js';
import type { InferenceOutcome } from './worker-protocol.js';

export interface InferenceResult {
  readonly outputs: NamedTensors;
  readonly computeMs: number;
  readonly queueMs: number;
}

export interface SubmitOptions {
  /** Aborts the request while it waits (client disconnect). A running inference is never aborted. */
  readonly signal?: AbortSignal | undefined;
}

export interface QueueStats {
  readonly queued: number;
  readonly inFlight: number;
}

interface Pending {
  readonly inputs: NamedTensors;
  readonly enqueuedAt: number;
  readonly resolve: (result: InferenceResult) => void;
  readonly reject: (error: InferdError) => void;
  settled: boolean;
  dispatched: boolean;
  cleanup: () => void;
}

export interface RequestQueueOptions {
  readonly run: (inputs: NamedTensors) => Promise<InferenceOutcome>;
  /** Tasks handed to `run` at once: the worker count. */
  readonly concurrency: number;
  readonly maxQueueSize: number;
  readonly timeoutMs: number;
}

export class RequestQueue {
  #options: RequestQueueOptions;
  #waiting: Pending[] = [];
  #head = 0;
  #queued = 0;
  #inFlight = 0;
  #closed = false;
  #idle: (() => void) | undefined;

  constructor(options: RequestQueueOptions) {
    this.#options = options;
  }

  stats(): QueueStats {
    return { queued: this.#queued, inFlight: this.#inFlight };
  }

  submit(inputs: NamedTensors, { signal }: SubmitOptions = {}): Promise<InferenceResult> {
    if (this.#closed) return Promise.reject(new InferdError('INFERD_ERR_SHUTTING_DOWN', 'the server is shutting down'));
    if (signal?.aborted) return Promise.reject(aborted());
    if (this.#queued >= this.#options.maxQueueSize) {
      return Promise.reject(
        new InferdError('INFERD_ERR_QUEUE_FULL', `the inference queue is full (${this.#options.maxQueueSize} requests waiting)`),
      );
    }
    return new Promise<InferenceResult>((resolve, reject) => {
      const entry: Pending = {
        inputs,
        enqueuedAt: performance.now(),
        resolve,
        reject,
        settled: false,
        dispatched: false,
        cleanup: () => {},
      };
      const timer = setTimeout(() => {
        this.#settle(entry, new InferdError('INFERD_ERR_TIMEOUT', `no answer within ${this.#options.timeoutMs / 1000} s`));
      }, this.#options.timeoutMs);
      const onAbort = () => this.#settle(entry, aborted());
      signal?.addEventListener('abort', onAbort, { once: true });
      entry.cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      this.#waiting.push(entry);
      this.#queued += 1;
      this.#pump();
    });
  }

  /** Rejects new work and resolves once nothing is queued or running. */
  drain(): Promise<void> {
    this.#closed = true;
    if (this.#queued === 0 && this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#idle = resolve;
    });
  }

  #settle(entry: Pending, outcome: InferdError | InferenceResult): void {
    if (entry.settled) return;
    entry.settled = true;
    entry.cleanup();
    if (!entry.dispatched) this.#queued -= 1;
    if (outcome instanceof InferdError) entry.reject(outcome);
    else entry.resolve(outcome);
    this.#checkIdle();
  }

  #next(): Pending | undefined {
    while (this.#head < this.#waiting.length) {
      const entry = this.#waiting[this.#head]!;
      this.#head += 1;
      if (!entry.settled) return entry;
    }
    this.#waiting = [];
    this.#head = 0;
    return undefined;
  }

  #pump(): void {
    while (this.#inFlight < this.#options.concurrency) {
      const entry = this.#next();
      if (!entry) return;
      this.#queued -= 1;
      entry.dispatched = true;
      void this.#dispatch(entry);
    }
  }

  async #dispatch(entry: Pending): Promise<void> {
    this.#inFlight += 1;
    const queueMs = performance.now() - entry.enqueuedAt;
    const outcome = await this.#options.run(entry.inputs);
    this.#inFlight -= 1;
    this.#settle(
      entry,
      outcome.ok ? { outputs: outcome.outputs, computeMs: outcome.computeMs, queueMs } : errorFromCode(outcome.code, outcome.message),
    );
    this.#pump();
    this.#checkIdle();
  }

  #checkIdle(): void {
    if (this.#idle && this.#queued === 0 && this.#inFlight === 0) {
      const idle = this.#idle;
      this.#idle = undefined;
      idle();
    }
  }
}

function aborted(): InferdError {
  return new InferdError('INFERD_ERR_CANCELLED', 'the client closed the connection before inference started');
}
