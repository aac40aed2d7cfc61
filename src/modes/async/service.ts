/**
 * Async inference: accepts requests into the durable queue, runs up to
 * `maxConcurrentInvocations` of them at once through the in-process inference API, writes each
 * answer (or error) under its inference id, and notifies. The queue decides who runs what; this
 * instance claims work whenever it has a free slot, renews its leases while it runs, and sweeps
 * expired requests.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { InferdError } from '../../errors.js';
import type { DataPlane } from '../../data-plane.js';
import type { Runtime } from '../../runtime/runtime.js';
import { requestDecoder, responseEncoder } from '../../codecs/negotiation.js';
import { StorageError, type ObjectStore } from '../../storage/object-store.js';
import { joinUri } from '../../storage/uri.js';
import { isAllowedInput } from './input-policy.js';
import { MAX_EMBEDDED_RESPONSE_BYTES, notificationFor } from './notification.js';
import type { AsyncJob, AsyncQueue, AsyncRequest, FinishOutcome, QueueStats } from './queue.js';
import { isRecordStream, JobFailure, runJob, type FailureKind } from './run-job.js';
import type { Webhooks } from './webhooks.js';

const MIB = 1024 * 1024;
/** SageMaker's own limit on an async payload; record streams may be this large. */
const MAX_STREAMED_PAYLOAD_BYTES = 1024 * MIB;
/** How often an idle instance asks the queue for work another instance may have added. */
const POLL_INTERVAL_MS = 100;
/** How often queued requests are checked against their TTL. */
const EXPIRY_SWEEP_MS = 1_000;
const FINISH_FIRST_RETRY_MS = 500;
const FINISH_MAX_RETRY_MS = 30_000;
/**
 * Inline bodies up to this size (once decoded) are held in the queue record: one
 * shared synced commit makes them durable, where staging a file cost its own sync, its
 * directory's, and a read and a delete later.
 */
const RECORD_HELD_MAX_BYTES = 64 * 1024;
const RECORD_HELD_SCHEME = 'inline:';
/** Requests run at once per model instance when INFERD_ASYNC_MAX_CONCURRENT_INVOCATIONS is unset. */
const ASYNC_INVOCATIONS_PER_INSTANCE = 32;

export interface AsyncSettings {
  readonly outputPath: string;
  readonly failurePath: string;
  readonly inputPath: string;
  readonly allowedInputPrefixes: readonly string[];
  /** Unset: 32 per model instance. */
  readonly maxConcurrentInvocations: number | undefined;
  readonly maxPayloadBytes: number;
  /** Payloads up to this size are answered exactly as `/invocations` answers them. */
  readonly realTimeMaxPayloadBytes: number;
  readonly includeResponseInSuccess: boolean;
  readonly includeResponseInError: boolean;
  readonly defaultAccept: string;
  readonly defaultEndpointName: string;
  readonly awsRegion: string;
  readonly leaseMs: number;
}

/** What a client sent, from SageMaker's headers (validated by the route). */
export interface Submission {
  readonly endpointName?: string | undefined;
  readonly inferenceId?: string | undefined;
  readonly inputLocation?: string | undefined;
  /**
   * The request body when there is no input location: read only when the request is accepted,
   * and left to the caller (unread) when it is refused or already known.
   */
  readonly body?: Readable | undefined;
  /** The body's size as the client declared it (`Content-Length`), checked before it is read. */
  readonly declaredBytes?: number | undefined;
  readonly contentType?: string | undefined;
  readonly accept?: string | undefined;
  readonly customAttributes?: string | undefined;
  readonly targetModel?: string | undefined;
  readonly requestTtlS: number;
  readonly invocationTimeoutS: number;
}

export interface AsyncObserver {
  accepted(): void;
  /** A request began to run; `backlogMs` only on its first run. */
  started(backlogMs: number | undefined): void;
  completed(processingMs: number): void;
  failed(kind: FailureKind | 'expired'): void;
}

export interface AsyncStats extends QueueStats {
  /** Requests running in this instance. */
  readonly runningHere: number;
  readonly maxConcurrentInvocations: number;
}

export interface AsyncServiceDeps {
  readonly runtime: Runtime;
  /** Finds the model each request names. */
  readonly dataPlane: DataPlane;
  /** The server's models are loaded: requests may be claimed. */
  readonly isReady: () => boolean;
  /** Opened by start(), before the server listens. */
  readonly openQueue: () => Promise<AsyncQueue>;
  readonly settings: AsyncSettings;
  readonly openStore: (uri: string) => ObjectStore;
  readonly webhooks: Webhooks;
  readonly observer: AsyncObserver;
  readonly log: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
  /** Wall-clock milliseconds, for TTLs, leases and timestamps; tests move it. */
  readonly clock?: (() => number) | undefined;
}

/** Counts bytes through, and fails the stream past `limitBytes`. */
async function* limited(body: Readable, limitBytes: number, limitText: string): AsyncGenerator<Buffer> {
  let bytes = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > limitBytes) throw new InferdError('INFERD_ERR_PAYLOAD_TOO_LARGE', `the payload is larger than ${limitText}`);
    yield chunk;
  }
}

export class AsyncInference {
  readonly #deps: AsyncServiceDeps;
  #queue: AsyncQueue | undefined;
  readonly #running = new Map<string, Promise<void>>();
  /** Inferences that ran past their timeout: their results are discarded, but they still end. */
  readonly #abandoned = new Set<Promise<unknown>>();
  readonly #timers: NodeJS.Timeout[] = [];
  #renewal: NodeJS.Timeout | undefined;
  #pumping = false;
  #pumpAgain = false;
  #closing = false;

  constructor(deps: AsyncServiceDeps) {
    this.#deps = deps;
  }

  async start(): Promise<void> {
    const { settings, log } = this.#deps;
    const queue = await this.#deps.openQueue();
    this.#queue = queue;
    log.info({ queue: queue.kind, maxConcurrentInvocations: this.#maxConcurrent() }, 'async inference ready');
    const every = (ms: number, task: () => Promise<unknown>, what: string) => {
      const timer = setInterval(() => {
        task().catch((error: unknown) => log.warn({ err: error }, `async ${what} failed`));
      }, ms);
      timer.unref();
      return timer;
    };
    this.#timers.push(every(EXPIRY_SWEEP_MS, () => this.#expire(), 'expiry sweep'));
    // An accept-only instance (no invocations of its own) takes submissions while the workers
    // scale from zero: it never claims, and never counts itself as a consumer of the backlog.
    if (this.#maxConcurrent() === 0) {
      if (queue.kind === 'sqlite') log.warn({}, 'async: accept-only with the embedded queue: only another process on this state directory runs what is accepted');
      return;
    }
    this.#renewal = every(Math.max(100, Math.floor(settings.leaseMs / 3)), () => queue.renew(this.#now()), 'lease renewal');
    this.#timers.push(every(POLL_INTERVAL_MS, async () => this.#pump(), 'poll'));
    await queue.renew(this.#now());
  }

  get #q(): AsyncQueue {
    if (!this.#queue) throw new InferdError('INFERD_ERR_NOT_READY', 'the async queue is not open yet');
    return this.#queue;
  }

  /** Accepts a request: durable in the queue when this resolves. */
  async submit(submission: Submission): Promise<{ job: AsyncJob; created: boolean }> {
    const { settings } = this.#deps;
    const queue = this.#q;
    const inferenceId = submission.inferenceId ?? randomUUID();
    const known = await queue.get(inferenceId);
    if (known) return { job: known, created: false };
    // A model that is not loaded is not loaded for this: it loads when the request runs (an
    // accept-only instance never does), and a target that names nothing fails the request then.
    const model = this.#deps.dataPlane.peek(submission.targetModel);
    const contentType = submission.contentType ?? 'application/json';
    // Types the model cannot take are refused now rather than failed later.
    const decoder = requestDecoder(contentType);
    const encoder = responseEncoder(submission.accept, settings.defaultAccept);
    if (model) encoder.assertCanEncode?.(model.signature);
    const streamed = isRecordStream(decoder.mediaType);
    const limitBytes = streamed ? MAX_STREAMED_PAYLOAD_BYTES : settings.maxPayloadBytes;
    const limitText = streamed ? '1024 MiB' : `${settings.maxPayloadBytes / MIB} MiB (INFERD_ASYNC_MAX_PAYLOAD_MB)`;

    let inputLocation: string;
    let payloadBase64: string | undefined;
    const inline = submission.inputLocation === undefined;
    if (!inline) {
      inputLocation = await this.#checkInput(submission.inputLocation!, limitBytes, limitText);
    } else {
      if (!submission.body) throw new InferdError('INFERD_ERR_BODY_EMPTY', 'send the payload in the body or name it in X-Amzn-SageMaker-InputLocation');
      if ((submission.declaredBytes ?? 0) > limitBytes) {
        throw new InferdError('INFERD_ERR_PAYLOAD_TOO_LARGE', `the payload is ${submission.declaredBytes} bytes, more than ${limitText}`);
      }
      const chunks = limited(submission.body, limitBytes, limitText);
      const head = await storageCall(() => readUpTo(chunks, RECORD_HELD_MAX_BYTES));
      // A chunked body with no chunks, or one that decodes to nothing, could never run.
      if (head.ended && head.parts.every((part) => part.length === 0)) throw new InferdError('INFERD_ERR_BODY_EMPTY', 'the request body is empty');
      if (head.ended) {
        payloadBase64 = Buffer.concat(head.parts).toString('base64');
        inputLocation = `${RECORD_HELD_SCHEME}${inferenceId}`;
      } else {
        // A fresh name per attempt: two requests racing with one inference id never share a file.
        inputLocation = joinUri(settings.inputPath, `${inferenceId}-${randomUUID()}`);
        await storageCall(() => this.#deps.openStore(inputLocation).put(inputLocation, Readable.from(followedBy(head.parts, chunks))));
      }
    }

    const request: AsyncRequest = {
      inferenceId,
      endpointName: submission.endpointName ?? settings.defaultEndpointName,
      inputLocation,
      inputInline: inline,
      ...(payloadBase64 === undefined ? {} : { payloadBase64 }),
      contentType,
      accept: submission.accept,
      customAttributes: submission.customAttributes,
      targetModel: submission.targetModel,
      outputLocation: joinUri(settings.outputPath, `${inferenceId}.out`),
      failureLocation: joinUri(settings.failurePath, `${inferenceId}-error.out`),
      receivedAtMs: this.#now(),
      requestTtlS: submission.requestTtlS,
      invocationTimeoutS: submission.invocationTimeoutS,
    };
    const result = await storageCall(() => queue.enqueue(request));
    if (result.created) {
      this.#deps.observer.accepted();
      setImmediate(() => this.#pump());
    } else {
      await this.#forgetPayload(request);
    }
    return result;
  }

  async status(inferenceId: string): Promise<AsyncJob> {
    const job = await storageCall(() => this.#q.get(inferenceId));
    if (!job) throw new InferdError('INFERD_ERR_ASYNC_NOT_FOUND', `no async request has the inference id ${inferenceId}`);
    return job;
  }

  async stats(): Promise<AsyncStats> {
    const stats = await this.#q.stats(this.#now());
    return { ...stats, runningHere: this.#running.size, maxConcurrentInvocations: this.#maxConcurrent() };
  }

  #now(): number {
    return this.#deps.clock?.() ?? Date.now();
  }

  #maxConcurrent(): number {
    const { dataPlane, runtime } = this.#deps;
    const model = dataPlane.defaultModel === undefined ? undefined : runtime.get(dataPlane.defaultModel)?.info;
    // 32 per instance: an async request spends most of its time waiting on I/O (its input read,
    // its answer and its record synced), and the requests in flight are what the batcher can
    // merge. bench:async, one-row requests, the log synced off the event loop: 0.43-0.44x real
    // time at 8, 0.54-0.62x at 16, 0.67-0.76x at 32, 0.79-0.80x at 64; 32 leaves most of the
    // model's queue (maxQueueSize, 256 by default) to real-time requests.
    return this.#deps.settings.maxConcurrentInvocations ?? ASYNC_INVOCATIONS_PER_INSTANCE * (model?.maxInstances ?? 1);
  }

  /** Stops claiming, lets the requests running here finish and their notifications go out. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const timer of this.#timers) clearInterval(timer);
    // Leases are renewed until the last request running here has finished: else another
    // instance would take it over and run it a second time.
    await Promise.all(this.#running.values());
    await Promise.all(this.#abandoned);
    clearInterval(this.#renewal);
    await this.#deps.webhooks.close();
    await this.#queue?.close();
  }

  async #checkInput(uri: string, limitBytes: number, limitText: string): Promise<string> {
    let allowed: boolean;
    try {
      allowed = isAllowedInput(uri, this.#deps.settings.allowedInputPrefixes);
    } catch (error) {
      throw new InferdError('INFERD_ERR_BAD_REQUEST', `X-Amzn-SageMaker-InputLocation: ${(error as Error).message}`);
    }
    if (!allowed) {
      throw new InferdError('INFERD_ERR_ASYNC_INPUT_FORBIDDEN', `${uri} is outside the allowed input prefixes (INFERD_ASYNC_ALLOWED_INPUT_PREFIXES)`);
    }
    const info = await storageCall(() => this.#deps.openStore(uri).stat(uri));
    if (info.sizeBytes > limitBytes) {
      throw new InferdError('INFERD_ERR_PAYLOAD_TOO_LARGE', `${uri} is ${info.sizeBytes} bytes, more than ${limitText}`);
    }
    return uri;
  }

  /** Removes the file an inline body was staged in; a client's own input stays, as does a record-held body (it goes with the record). */
  async #forgetPayload(request: AsyncRequest): Promise<void> {
    const uri = request.inputLocation;
    if (!request.inputInline || uri.startsWith(RECORD_HELD_SCHEME)) return;
    await this.#deps
      .openStore(uri)
      .delete(uri)
      .catch((error: unknown) => this.#deps.log.warn({ err: error, uri }, 'cannot remove a staged async payload'));
  }

  #pump(): void {
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    const free = this.#maxConcurrent() - this.#running.size;
    if (this.#closing || free <= 0 || !this.#deps.isReady() || !this.#queue) return;
    this.#pumping = true;
    this.#queue
      .claim(free, this.#now())
      .then(
        (jobs) => {
          for (const job of jobs) this.#start(job);
          if (jobs.length === free) this.#pumpAgain = true;
        },
        (error: unknown) => this.#deps.log.warn({ err: error }, 'async claim failed'),
      )
      .finally(() => {
        this.#pumping = false;
        if (this.#pumpAgain) {
          this.#pumpAgain = false;
          setImmediate(() => this.#pump());
        }
      });
  }

  #start(job: AsyncJob): void {
    const run = this.#run(job)
      .catch((error: unknown) => this.#deps.log.error({ err: error, inferenceId: job.inferenceId }, 'async request could not be finished'))
      .finally(() => {
        this.#running.delete(job.inferenceId);
        this.#pump();
      });
    this.#running.set(job.inferenceId, run);
  }

  async #run(job: AsyncJob): Promise<void> {
    const { observer, settings, log } = this.#deps;
    const startedMs = performance.now();
    observer.started(job.attempts === 1 ? this.#now() - job.receivedAtMs : undefined);
    log.debug({ inferenceId: job.inferenceId, attempt: job.attempts }, 'async request started');

    const deadline = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => {
        deadline.abort();
        resolve('timeout');
      }, job.invocationTimeoutS * 1000);
    });
    const execution = runJob(job, {
      runtime: this.#deps.runtime,
      dataPlane: this.#deps.dataPlane,
      openStore: this.#deps.openStore,
      defaultAccept: settings.defaultAccept,
      maxPayloadBytes: settings.maxPayloadBytes,
      realTimeMaxPayloadBytes: settings.realTimeMaxPayloadBytes,
      keepResponseUpToBytes: settings.includeResponseInSuccess ? MAX_EMBEDDED_RESPONSE_BYTES : 0,
      signal: deadline.signal,
    });
    const outcome = await Promise.race([execution.then((result) => ({ result }), (error: unknown) => ({ error })), timedOut]);
    clearTimeout(timer);

    if (outcome === 'timeout') {
      // The inference cannot be stopped mid-run; whatever it writes is removed once it ends.
      const cleanup = execution.then(
        () => this.#deps.openStore(job.outputLocation).delete(job.outputLocation),
        () => undefined,
      );
      this.#abandoned.add(cleanup);
      void cleanup.catch(() => undefined).finally(() => this.#abandoned.delete(cleanup));
      const reason = `ModelTimeout: the invocation ran past its timeout of ${job.invocationTimeoutS} s (X-Amzn-SageMaker-InvocationTimeoutSeconds); its result was discarded`;
      return this.#fail(job, new JobFailure('timeout', 'INFERD_ERR_TIMEOUT', reason, 504));
    }
    if ('error' in outcome) return this.#fail(job, JobFailure.from(outcome.error, job));

    const finished = await this.#finish(job, { status: 'completed' });
    if (!finished) return this.#lostLease(job);
    observer.completed(performance.now() - startedMs);
    await this.#forgetPayload(job);
    this.#deps.webhooks.send(
      notificationFor(finished, {
        awsRegion: settings.awsRegion,
        nowMs: this.#now(),
        outputContentType: outcome.result.contentType,
        responseBody: outcome.result.responseBody,
      }),
    );
  }

  async #fail(job: AsyncJob, failure: JobFailure): Promise<void> {
    const { observer, settings, log } = this.#deps;
    const errorBody = Buffer.from(JSON.stringify({ code: failure.code, message: failure.reason }));
    await this.#deps
      .openStore(job.failureLocation)
      .put(job.failureLocation, errorBody, { contentType: 'application/json' })
      .catch((error: unknown) => log.error({ err: error, inferenceId: job.inferenceId }, 'cannot write the async failure object'));
    const finished = await this.#finish(job, { status: 'failed', failureReason: failure.reason });
    if (!finished) return this.#lostLease(job);
    observer.failed(failure.kind);
    log.info({ inferenceId: job.inferenceId, kind: failure.kind, reason: failure.reason }, 'async request failed');
    await this.#forgetPayload(job);
    this.#deps.webhooks.send(
      notificationFor(finished, {
        awsRegion: settings.awsRegion,
        nowMs: this.#now(),
        responseBody: settings.includeResponseInError ? errorBody : undefined,
      }),
    );
  }

  /**
   * Records the outcome, retrying while the queue is unreachable: a job left running would keep
   * its lease (renewed with the others) and never finish. Undefined when the lease was lost.
   */
  async #finish(job: AsyncJob, outcome: FinishOutcome): Promise<AsyncJob | undefined> {
    for (let delayMs = FINISH_FIRST_RETRY_MS; ; delayMs = Math.min(delayMs * 2, FINISH_MAX_RETRY_MS)) {
      try {
        return await this.#q.finish(job.inferenceId, outcome, this.#now());
      } catch (error) {
        // Past shutdown the lease runs out instead, and another instance runs the job again.
        if (this.#closing) throw error;
        this.#deps.log.warn({ err: error, inferenceId: job.inferenceId, retryInMs: delayMs }, 'cannot record an async outcome; retrying');
        await sleep(delayMs);
      }
    }
  }

  #lostLease(job: AsyncJob): void {
    this.#deps.log.warn({ inferenceId: job.inferenceId }, 'async request finished after its lease ran out; another instance owns it now');
  }

  async #expire(): Promise<void> {
    const { observer, settings } = this.#deps;
    for (const job of await this.#q.expire(this.#now())) {
      observer.failed('expired');
      const errorBody = Buffer.from(JSON.stringify({ code: 'INFERD_ERR_TIMEOUT', message: job.failureReason }));
      await this.#deps
        .openStore(job.failureLocation)
        .put(job.failureLocation, errorBody, { contentType: 'application/json' })
        .catch((error: unknown) => this.#deps.log.error({ err: error, inferenceId: job.inferenceId }, 'cannot write the async failure object'));
      await this.#forgetPayload(job);
      this.#deps.webhooks.send(
        notificationFor(job, { awsRegion: settings.awsRegion, nowMs: this.#now(), responseBody: settings.includeResponseInError ? errorBody : undefined }),
      );
    }
  }
}

/** Reads until the body ends or passes `maxBytes`; `ended` says which. */
async function readUpTo(chunks: AsyncIterator<Buffer>, maxBytes: number): Promise<{ parts: Buffer[]; ended: boolean }> {
  const parts: Buffer[] = [];
  for (let bytes = 0; bytes <= maxBytes; ) {
    const next = await chunks.next();
    if (next.done) return { parts, ended: true };
    parts.push(next.value);
    bytes += next.value.length;
  }
  return { parts, ended: false };
}

async function* followedBy(head: readonly Buffer[], rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  yield* head;
  for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
}

/** Storage and queue trouble becomes a 503 the client may retry; its own errors pass through. */
async function storageCall<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof InferdError) throw error;
    // A payload over its limit fails the staging write from inside the body stream.
    const inner = (error as Error).cause;
    if (inner instanceof InferdError) throw inner;
    if (error instanceof StorageError && error.code === 'NOT_FOUND') {
      throw new InferdError('INFERD_ERR_ASYNC_INPUT_NOT_FOUND', error.message);
    }
    throw new InferdError('INFERD_ERR_STORAGE_UNAVAILABLE', `storage failed: ${(error as Error).message}`, { cause: error });
  }
}
