/**
 * The inference workers of one model: each instance is a Piscina pool of exactly one worker
 * thread with its own ONNX Runtime session. One pool per instance because a Piscina pool cannot
 * be resized in place, and a worker must never be terminated inside `run()` (onnxruntime-node
 * ≥ 1.25 aborts the process then): an instance grows in by loading and warming up before it takes
 * work, and leaves by taking no more work, finishing what it holds, and only then closing.
 */
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { ModelSignature, NamedTensors } from '../codecs/tensor.js';
import { InferdError } from '../errors.js';
import {
  isWorkerStartMessage,
  type ExecutionProviderName,
  type InferenceOutcome,
  type InferenceTask,
  type WorkerOptions,
  type WorkerStartMessage,
} from './worker-protocol.js';

const WORKER_FILE = fileURLToPath(new URL('./inference-worker.js', import.meta.url));

type ReadyMessage = Extract<WorkerStartMessage, { type: 'inferd:ready' }>;

export interface StartedPool {
  readonly pool: WorkerPool;
  readonly signature: ModelSignature;
  readonly provider: ExecutionProviderName;
  readonly warnings: readonly string[];
}

class Instance {
  /** Tasks handed to this instance and not yet answered: one running, the rest queued in Piscina. */
  outstanding = 0;
  busySinceMs: number | undefined;
  #waiters: Array<() => void> = [];
  #closed: Promise<void> | undefined;

  constructor(readonly piscina: Piscina) {}

  /** Resolves once the instance holds no task. */
  idle(): Promise<void> {
    return this.outstanding === 0 ? Promise.resolve() : new Promise((resolve) => this.#waiters.push(resolve));
  }

  settled(): void {
    if (this.outstanding > 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Finishes the tasks it holds, then stops its worker; once, whoever asks first. */
  close(): Promise<void> {
    this.#closed ??= this.idle().then(() => this.piscina.close());
    return this.#closed;
  }
}

/** Starts one instance; resolves once its session is loaded and warmed up. */
function startInstance(worker: WorkerOptions): Promise<{ instance: Instance; ready: ReadyMessage }> {
  const piscina = new Piscina({
    filename: WORKER_FILE,
    workerData: worker,
    minThreads: 1,
    maxThreads: 1,
    // The worker holds a loaded model: never let it idle out and reload.
    idleTimeout: Number.POSITIVE_INFINITY,
    concurrentTasksPerWorker: 1,
  });
  return new Promise((resolve, reject) => {
    const done = () => {
      piscina.off('message', onMessage);
      piscina.off('error', onError);
    };
    const fail = (message: string) => {
      done();
      // The worker failed loading or warming up: it is not inside run().
      void piscina.close().catch(() => {});
      reject(new InferdError('INFERD_ERR_MODEL_LOAD_FAILED', `cannot load ${worker.onnxPath}: ${message}`));
    };
    const onMessage = (message: unknown) => {
      if (!isWorkerStartMessage(message)) return;
      if (message.type === 'inferd:load-failed') return fail(message.message);
      done();
      resolve({ instance: new Instance(piscina), ready: message });
    };
    const onError = (error: Error) => fail(error.message);
    piscina.on('message', onMessage);
    piscina.on('error', onError);
  });
}

export class WorkerPool {
  readonly #worker: WorkerOptions;
  readonly #onWorkerError: (error: Error) => void;
  #onResize: ((instances: number) => void) | undefined;
  /** Instances taking work, oldest first. */
  #ready: Instance[] = [];
  /** Instances finishing their last tasks before they close. */
  #leaving = new Set<Instance>();
  #starting = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;
  /** Worker-milliseconds of busy time of every instance that has since gone idle. */
  #busyMsDone = 0;

  private constructor(worker: WorkerOptions, onWorkerError: (error: Error) => void) {
    this.#worker = worker;
    this.#onWorkerError = onWorkerError;
  }

  /** Starts `size` instances and resolves once every one has loaded and warmed up its session. */
  static async start(size: number, worker: WorkerOptions, onWorkerError: (error: Error) => void): Promise<StartedPool> {
    const pool = new WorkerPool(worker, onWorkerError);
    const started = await Promise.allSettled(Array.from({ length: size }, () => startInstance(worker)));
    const failure = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    const instances = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    if (failure) {
      await Promise.all(instances.map(({ instance }) => instance.close()));
      throw failure.reason;
    }
    for (const { instance } of instances) pool.#adopt(instance);
    const { signature, provider, warnings } = instances[0]!.ready;
    return { pool, signature, provider, warnings };
  }

  /** Tells `listener` the number of instances taking work whenever it changes. */
  onResize(listener: (instances: number) => void): void {
    this.#onResize = listener;
  }

  /** Instances taking work. */
  get size(): number {
    return this.#ready.length;
  }

  /** Instances loading or warming up, which take work once ready. */
  get starting(): number {
    return this.#starting.size;
  }

  /** Instances running (or holding) a task, leaving ones included. */
  get busy(): number {
    let busy = 0;
    for (const instance of [...this.#ready, ...this.#leaving]) if (instance.outstanding > 0) busy += 1;
    return busy;
  }

  /** Worker-milliseconds spent busy since the pool started; its rate is the busy worker count. */
  busyMs(nowMs = performance.now()): number {
    let total = this.#busyMsDone;
    for (const instance of [...this.#ready, ...this.#leaving]) {
      if (instance.busySinceMs !== undefined) total += nowMs - instance.busySinceMs;
    }
    return total;
  }

  /** Adds one instance once it has loaded and warmed up. Rejects with the load error; the pool is unchanged then. */
  async grow(): Promise<void> {
    if (this.#closing) throw new InferdError('INFERD_ERR_SHUTTING_DOWN', 'the worker pool is closing');
    const starting = startInstance(this.#worker);
    this.#starting.add(starting);
    try {
      const { instance } = await starting;
      // Closing began while it loaded: close() waits for it and closes it.
      if (!this.#closing) this.#adopt(instance);
    } finally {
      this.#starting.delete(starting);
    }
  }

  /**
   * Takes one instance out of service (the one holding the least work, the newest among equals),
   * lets it finish its tasks, then closes it. False when only one instance is left.
   */
  async shrink(): Promise<boolean> {
    if (this.#ready.length <= 1 || this.#closing) return false;
    let leaving = this.#ready.at(-1)!;
    for (const instance of this.#ready) if (instance.outstanding < leaving.outstanding) leaving = instance;
    this.#ready = this.#ready.filter((instance) => instance !== leaving);
    this.#leaving.add(leaving);
    this.#onResize?.(this.#ready.length);
    await leaving.close();
    this.#leaving.delete(leaving);
    return true;
  }

  #adopt(instance: Instance): void {
    instance.piscina.on('error', this.#onWorkerError);
    this.#ready.push(instance);
    this.#onResize?.(this.#ready.length);
  }

  /** Runs on the instance holding the fewest tasks; the oldest among equals, so light load stays on warm instances. */
  async run(inputs: NamedTensors): Promise<InferenceOutcome> {
    let target = this.#ready[0];
    if (!target) return { ok: false, code: 'INFERD_ERR_SHUTTING_DOWN', message: 'no model instance is running' };
    for (const instance of this.#ready) if (instance.outstanding < target.outstanding) target = instance;
    const transferList = [...new Set(Object.values(inputs).map((t) => t.data.buffer as ArrayBuffer))];
    const task: InferenceTask = { inputs };
    if (target.outstanding === 0) target.busySinceMs = performance.now();
    target.outstanding += 1;
    try {
      return (await target.piscina.run(task, { transferList })) as InferenceOutcome;
    } catch (error) {
      return { ok: false, code: 'INFERD_ERR_INFERENCE_FAILED', message: `worker failed: ${(error as Error).message}` };
    } finally {
      target.outstanding -= 1;
      if (target.outstanding === 0) {
        this.#busyMsDone += performance.now() - target.busySinceMs!;
        target.busySinceMs = undefined;
      }
      target.settled();
    }
  }

  /** Waits for instances still loading and for running tasks, then stops every worker. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      // A worker still warming up is inside run(): it may only be closed once it has started.
      const late = await Promise.allSettled([...this.#starting]);
      const lateInstances = late.flatMap((s) => (s.status === 'fulfilled' ? [(s.value as { instance: Instance }).instance] : []));
      const all = [...this.#ready, ...this.#leaving, ...lateInstances];
      await Promise.all(all.map((instance) => instance.close()));
    })();
    return this.#closing;
  }
}
