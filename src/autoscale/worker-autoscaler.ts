/**
 * Resizes one model's worker pool with its load: every `intervalMs` it samples the runtime's own
 * numbers (how busy the workers were, the rows queued, how long requests waited), and target
 * tracking on work per instance decides between `minInstances` and `maxInstances`. Work per
 * instance counts the busy workers plus the queued work in batches, so a backlog the workers
 * cannot see yet still asks for more of them (Ray Serve's autoscaler sees only in-flight work).
 */
import { trackTarget, type PolicyMemory, type ScalingDecision, type TargetTrackingSettings } from './policy.js';

/** The pool as the autoscaler sees it; `WorkerPool` is one. */
export interface ScalablePool {
  /** Instances taking work. */
  readonly size: number;
  /** Instances loading, which take work once warmed up. */
  readonly starting: number;
  /** Worker-milliseconds spent busy so far. */
  busyMs(nowMs?: number): number;
  grow(): Promise<void>;
  shrink(): Promise<boolean>;
}

export interface WorkerAutoscalerSettings {
  readonly minInstances: number;
  readonly maxInstances: number;
  /** Busy workers plus queued batches, per instance, the pool aims at. */
  readonly targetUtilization: number;
  readonly intervalMs: number;
  readonly windowS: number;
  readonly scaleInAfterS: number;
  readonly scaleInCooldownS: number;
}

/** What one decision saw, averaged over the look-back window. */
export interface WorkerSignals {
  readonly busyWorkers: number;
  readonly queuedBatches: number;
  readonly queueWaitP95Ms: number | undefined;
  readonly instances: number;
  readonly starting: number;
}

export interface AutoscaleLogger {
  info(object: object, message: string): void;
  debug(object: object, message: string): void;
  error(object: object, message: string): void;
}

export interface WorkerAutoscalerOptions {
  readonly model: string;
  readonly pool: ScalablePool;
  /** Requests and rows waiting in the batcher now. */
  readonly queue: () => { readonly queued: number; readonly queuedRows: number };
  /** Rows one batch may hold: queued work is counted in batches. */
  readonly maxBatchSize: number;
  readonly settings: WorkerAutoscalerSettings;
  readonly log: AutoscaleLogger;
  /** Told of every decision, with what it saw: metrics count them. */
  readonly onDecision?: ((decision: ScalingDecision, signals: WorkerSignals) => void) | undefined;
}

interface Sample {
  readonly atMs: number;
  readonly busyWorkers: number;
  readonly queuedBatches: number;
  readonly queueWaitsMs: readonly number[];
}

/** Queue waits kept per interval (a uniform sample of them): enough for a p95, bounded however busy the model is. */
const MAX_WAITS_PER_SAMPLE = 512;
/** After a worker fails to start, no new one for this long, doubling with each failure in a row. */
const GROW_BACKOFF_FIRST_MS = 2_000;
const GROW_BACKOFF_MAX_MS = 300_000;

export class WorkerAutoscaler {
  readonly #options: WorkerAutoscalerOptions;
  readonly #policy: TargetTrackingSettings;
  #memory: PolicyMemory = {};
  #samples: Sample[] = [];
  #waits: number[] = [];
  #waitsSeen = 0;
  #growFailures = 0;
  #growBlockedUntilMs = 0;
  #lastBusyMs: number;
  #lastAtMs: number;
  #timer: NodeJS.Timeout | undefined;
  /** Resizes under way; stop() waits for them. */
  #resizing = new Set<Promise<unknown>>();

  constructor(options: WorkerAutoscalerOptions) {
    this.#options = options;
    const { settings } = options;
    this.#policy = {
      targetValue: settings.targetUtilization,
      minCapacity: settings.minInstances,
      maxCapacity: settings.maxInstances,
      // A loading worker already counts as capacity, so adding needs no cooldown of its own; a
      // removal waits as long after an addition as after another removal.
      scaleOutCooldownS: settings.scaleInCooldownS,
      scaleInCooldownS: settings.scaleInCooldownS,
      scaleOutAfterS: 0,
      scaleInAfterS: settings.scaleInAfterS,
      scaleInThreshold: 0.9,
      maxScaleInStep: 1,
      disableScaleIn: false,
    };
    this.#lastAtMs = performance.now();
    this.#lastBusyMs = options.pool.busyMs(this.#lastAtMs);
  }

  start(): void {
    this.#timer ??= setInterval(() => this.tick(), this.#options.settings.intervalMs);
    this.#timer.unref();
  }

  /** Stops deciding and waits for a resize under way (a worker still loading must finish first). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.allSettled([...this.#resizing]);
  }

  /** How long a request waited for its batch; the runtime reports each one. */
  queueWait(ms: number): void {
    // Reservoir sampling: every wait of the interval has the same chance to be kept.
    this.#waitsSeen += 1;
    if (this.#waits.length < MAX_WAITS_PER_SAMPLE) this.#waits.push(ms);
    else {
      const slot = Math.floor(Math.random() * this.#waitsSeen);
      if (slot < MAX_WAITS_PER_SAMPLE) this.#waits[slot] = ms;
    }
  }

  /** Samples, decides, and starts the resize it decided; returns the decision. */
  tick(nowMs = performance.now()): ScalingDecision {
    const { pool, settings } = this.#options;
    const busyMs = pool.busyMs(nowMs);
    const elapsedMs = Math.max(1, nowMs - this.#lastAtMs);
    const { queued, queuedRows } = this.#options.queue();
    this.#samples.push({
      atMs: nowMs,
      busyWorkers: (busyMs - this.#lastBusyMs) / elapsedMs,
      // Small requests merge into full batches; a request larger than a batch runs alone.
      queuedBatches: Math.min(queued, Math.ceil(queuedRows / this.#options.maxBatchSize)),
      queueWaitsMs: this.#waits,
    });
    this.#waits = [];
    this.#waitsSeen = 0;
    this.#lastBusyMs = busyMs;
    this.#lastAtMs = nowMs;
    const windowStart = nowMs - settings.windowS * 1000;
    while (this.#samples.length > 1 && this.#samples[0]!.atMs <= windowStart) this.#samples.shift();

    const signals = this.#signals();
    const capacity = pool.size + pool.starting;
    const total = signals.busyWorkers + signals.queuedBatches;
    const decided = trackTarget(total, capacity, this.#memory, this.#policy, nowMs / 1000);
    const decision = this.#feasible(decided, capacity, nowMs);
    // A decision held back leaves the policy's memory as it was: it did not take effect.
    if (decision === decided) this.#memory = decision.memory;
    this.#act(decision, capacity, signals);
    return decision;
  }

  #signals(): WorkerSignals {
    const mean = (read: (s: Sample) => number) => this.#samples.reduce((sum, s) => sum + read(s), 0) / this.#samples.length;
    const waits = this.#samples.flatMap((s) => s.queueWaitsMs).sort((a, b) => a - b);
    return {
      busyWorkers: mean((s) => s.busyWorkers),
      queuedBatches: mean((s) => s.queuedBatches),
      queueWaitP95Ms: waits.length === 0 ? undefined : waits[Math.min(waits.length - 1, Math.floor(waits.length * 0.95))],
      instances: this.#options.pool.size,
      starting: this.#options.pool.starting,
    };
  }

  /**
   * The policy's decision, or a hold when the pool cannot carry it out now: no new worker while
   * starting them keeps failing (backing off), no removal while one is still loading (only a
   * ready worker could go, which the loading one may not replace).
   */
  #feasible(decision: ScalingDecision, capacity: number, nowMs: number): ScalingDecision {
    const hold = (reason: string): ScalingDecision => ({ ...decision, desired: capacity, action: 'hold', reason: `${decision.reason}; ${reason}` });
    if (decision.action === 'scale_out' && nowMs < this.#growBlockedUntilMs) {
      return hold(`held: ${this.#growFailures} worker start(s) failed in a row, next try in ${Math.ceil((this.#growBlockedUntilMs - nowMs) / 1000)} s`);
    }
    if (decision.action === 'scale_in' && this.#options.pool.starting > 0) return hold('held: a worker is still loading');
    return decision;
  }

  #act(decision: ScalingDecision, capacity: number, signals: WorkerSignals): void {
    const { model, pool, log, onDecision } = this.#options;
    onDecision?.(decision, signals);
    const fields = { model, action: decision.action, rule: decision.rule, from: capacity, to: decision.desired, signals };
    if (decision.action === 'hold') {
      log.debug(fields, `autoscale ${model}: hold (${decision.rule}): ${decision.reason}`);
      return;
    }
    log.info(fields, `autoscale ${model}: ${capacity} → ${decision.desired} instances (${decision.rule}): ${decision.reason}`);
    const track = (resize: Promise<unknown>) => {
      this.#resizing.add(resize);
      void resize
        .catch((error: unknown) => log.error({ model, err: error }, `autoscale ${model}: ${decision.action} failed`))
        .finally(() => this.#resizing.delete(resize));
    };
    const grow = () =>
      pool.grow().then(
        () => {
          this.#growFailures = 0;
        },
        (error: unknown) => {
          this.#growFailures += 1;
          this.#growBlockedUntilMs = performance.now() + Math.min(GROW_BACKOFF_MAX_MS, GROW_BACKOFF_FIRST_MS * 2 ** (this.#growFailures - 1));
          throw error;
        },
      );
    for (let n = capacity; n < decision.desired; n += 1) track(grow());
    for (let n = capacity; n > decision.desired; n -= 1) track(pool.shrink());
  }
}
