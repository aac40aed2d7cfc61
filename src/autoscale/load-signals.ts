/**
 * The per-instance load signals external autoscalers scale on: requests in the container now
 * (queued or running, as SageMaker's ConcurrentRequestsPerModel counts them), their average over
 * the last seconds, and invocations in the last minute (SageMaker's InvocationsPerInstance). Each
 * request costs a few arithmetic operations; nothing here allocates per request or runs a timer.
 */

/** Events in the last `windowMs`, counted in `bucketMs` buckets (the oldest bucket ages out whole). */
export class SlidingCount {
  readonly #bucketMs: number;
  readonly #counts: number[];
  readonly #epochs: number[];

  constructor(windowMs: number, bucketMs: number) {
    this.#bucketMs = bucketMs;
    const buckets = Math.ceil(windowMs / bucketMs);
    this.#counts = new Array<number>(buckets).fill(0);
    this.#epochs = new Array<number>(buckets).fill(-Infinity);
  }

  add(nowMs: number, count = 1): void {
    const epoch = Math.floor(nowMs / this.#bucketMs);
    const slot = epoch % this.#counts.length;
    if (this.#epochs[slot] !== epoch) {
      this.#epochs[slot] = epoch;
      this.#counts[slot] = 0;
    }
    this.#counts[slot]! += count;
  }

  total(nowMs: number): number {
    const oldest = Math.floor(nowMs / this.#bucketMs) - this.#counts.length;
    let total = 0;
    for (let slot = 0; slot < this.#counts.length; slot += 1) if (this.#epochs[slot]! > oldest) total += this.#counts[slot]!;
    return total;
  }
}

/**
 * A time-weighted average of a level that changes in steps (like the load average): the weight
 * of the past decays by e every `timeConstantMs`.
 */
export class DecayingAverage {
  readonly #timeConstantMs: number;
  #average = 0;
  #level = 0;
  #atMs: number;

  constructor(timeConstantMs: number, nowMs: number) {
    this.#timeConstantMs = timeConstantMs;
    this.#atMs = nowMs;
  }

  /** The level changed at `nowMs`. */
  set(level: number, nowMs: number): void {
    this.#average = this.read(nowMs);
    this.#atMs = nowMs;
    this.#level = level;
  }

  read(nowMs: number): number {
    const decay = Math.exp(-Math.max(0, nowMs - this.#atMs) / this.#timeConstantMs);
    return this.#level + (this.#average - this.#level) * decay;
  }
}

/** Averages concurrency over about this long: SageMaker's high-resolution metrics come every 10 s. */
const CONCURRENCY_TIME_CONSTANT_MS = 10_000;

export class LoadSignals {
  readonly #now: () => number;
  #concurrent = 0;
  readonly #concurrency: DecayingAverage;
  readonly #invocations = new SlidingCount(60_000, 1_000);

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
    this.#concurrency = new DecayingAverage(CONCURRENCY_TIME_CONSTANT_MS, now());
  }

  /** An invocation arrived; `answered()` once it is answered or abandoned. */
  arrived(): void {
    this.#concurrent += 1;
    this.#concurrency.set(this.#concurrent, this.#now());
  }

  /** An invocation that arrived has been answered, or its client left: once for each. */
  answered(): void {
    const nowMs = this.#now();
    this.#concurrent -= 1;
    this.#concurrency.set(this.#concurrent, nowMs);
    this.#invocations.add(nowMs);
  }

  /** Invocations in the container now. */
  get concurrent(): number {
    return this.#concurrent;
  }

  /** Invocations in the container, averaged over the last ten seconds or so. */
  meanConcurrency(): number {
    return this.#concurrency.read(this.#now());
  }

  /** Invocations answered in the last minute. */
  invocationsPerMinute(): number {
    return this.#invocations.total(this.#now());
  }
}
