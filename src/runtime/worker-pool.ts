/**
 * The inference workers of one model: each instance is a Piscina pool of exactly one worker
 * thread with its own ONNX Runtime session. One pool per instance because a Piscina pool cannot
 * be resized in place, and a worker must never be terminated inside `run()` (onnxruntime-node
 * ≥ 1.25 aborts the process then): an instance grows in by loading and warming up before it takes
 * work, and leaves by taking no more work, finishing what it holds, and only then closing.
 */
import { Piscina } from 'piscina';
import type { ModelSignature, NamedTensors } from '../codecs/tensor.js';
import { InferdError } from '../errors.js';
import { inputBytes } from './batch-merge.js';
import {
  isWorkerStartMessage,
  type ExecutionProviderName,
  type InferenceOutcome,
  type InferenceTask,
  type WorkerOptions,
  type WorkerStartMessage,
} from './worker-protocol.js';

type ReadyMessage = Extract<WorkerStartMessage, { type: 'inferd:ready' }>;

export interface StartedPool {
  readonly pool: WorkerPool;
  readonly signature: ModelSignature;
  readonly provider: ExecutionProviderName;
  readonly engine: string;
  readonly warnings: readonly string[];
}

/** The most tasks a worker holds at once (`setTasksPerWorker`): one running, one waiting. */
const MAX_TASKS_PER_WORKER = 2;

class Instance {
  /** Tasks handed to the worker and not yet answered: running, or waiting in its port. */
  tasks = 0;
  /** Input bytes of those tasks: how much work the instance holds, to place a waiting task. */
  heldBytes = 0;
  busySinceMs: number | undefined;
  #waiters: Array<() => void> = [];
  /** Resolves once the current worker thread has started (or failed to): only then may it be closed. */
  #started: Promise<void> = Promise.resolve();
  #closed: Promise<void> | undefined;

  constructor(
    readonly piscina: Piscina,
    onWorkerError: (error: Error) => void,
  ) {
    piscina.on('error', (error: Error) => {
      onWorkerError(error);
      // Piscina replaces a dead worker at once; the new one loads and warms up, inside run().
      this.#started = new Promise((resolve) => {
        const onMessage = (message: unknown) => {
          if (!isWorkerStartMessage(message)) return;
          piscina.off('message', onMessage);
          if (message.type === 'inferd:load-failed') onWorkerError(new Error(`a replaced worker cannot load its model: ${message.message}`));
          resolve();
        };
        piscina.on('message', onMessage);
      });
    });
  }

  /** Resolves once the instance runs nothing. */
  idle(): Promise<void> {
    return this.tasks > 0 ? new Promise((resolve) => this.#waiters.push(resolve)) : Promise.resolve();
  }

  settled(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Finishes its task, waits for a replaced worker to start, then stops; once, whoever asks first. */
  close(): Promise<void> {
    this.#closed ??= this.idle()
      .then(() => this.#started)
      .then(() => this.piscina.close());
    return this.#closed;
  }
}

interface QueuedTask {
  readonly task: InferenceTask;
  readonly resolve: (outcome: InferenceOutcome) => void;
}

/** Starts one instance; resolves once its session is loaded and warmed up. */
function startInstance(workerFile: string, worker: WorkerOptions, onWorkerError: (error: Error) => void): Promise<{ instance: Instance; ready: ReadyMessage }> {
  const piscina = new Piscina({
    filename: workerFile,
    workerData: worker,
    minThreads: 1,
    maxThreads: 1,
    // The worker holds a loaded model: never let it idle out and reload.
    idleTimeout: Number.POSITIVE_INFINITY,
    // The pool decides how many a worker holds (setTasksPerWorker); the worker entry runs them
    // one after the other.
    concurrentTasksPerWorker: MAX_TASKS_PER_WORKER,
  });
  return new Promise((resolve, reject) => {
    const done = () => {
      piscina.off('message', onMessage);
      piscina.off('error', onError);
    };
    const fail = (error: InferdError) => {
      done();
      // The worker failed loading or warming up: it is not inside run().
      void piscina.close().catch(() => {});
      reject(error);
    };
    const onMessage = (message: unknown) => {
      if (!isWorkerStartMessage(message)) return;
      // The model's own fault (ONNX Runtime refuses it): the client who sent it can fix it.
      if (message.type === 'inferd:load-failed') return fail(new InferdError('INFERD_ERR_MODEL_LOAD_FAILED', `cannot load ${worker.modelPath}: ${message.message}`));
      done();
      // The instance listens for errors from here on: an unheard worker error would end the process.
      resolve({ instance: new Instance(piscina, onWorkerError), ready: message });
    };
    // The worker itself died (out of memory, a native abort): the server's fault, not the model's.
    const onError = (error: Error) => fail(new InferdError('INFERD_ERR_INTERNAL', `a model worker stopped while loading ${worker.modelPath}`, { cause: error }));
    piscina.on('message', onMessage);
    piscina.on('error', onError);
  });
}

export class WorkerPool {
  readonly #workerFile: string;
  readonly #worker: WorkerOptions;
  readonly #onWorkerError: (error: Error) => void;
  /** What the first instances reported: an instance added later must match it. */
  readonly #first: ReadyMessage;
  #onResize: ((instances: number) => void) | undefined;
  /** Instances taking work, oldest first. */
  #ready: Instance[] = [];
  /** Instances finishing their last task before they close. */
  #leaving = new Set<Instance>();
  #starting = new Set<Promise<{ instance: Instance; ready: ReadyMessage }>>();
  /**
   * Tasks waiting, in order, once every worker holds all it may: one queue for the pool, so that
   * such a task goes to whichever worker frees first.
   */
  #queue: QueuedTask[] = [];
  #tasksPerWorker: 1 | 2 = 1;
  #closing: Promise<void> | undefined;
  /** Worker-milliseconds of busy time of every instance that has since gone idle. */
  #busyMsDone = 0;

  private constructor(workerFile: string, worker: WorkerOptions, onWorkerError: (error: Error) => void, first: ReadyMessage) {
    this.#workerFile = workerFile;
    this.#worker = worker;
    this.#onWorkerError = onWorkerError;
    this.#first = first;
  }

  /**
   * Starts `size` instances and resolves once every one has loaded and warmed up its session.
   * `workerFile` is the backend's worker entry (backends.ts); tests give one whose tasks end when they say so.
   */
  static async start(size: number, worker: WorkerOptions, onWorkerError: (error: Error) => void, workerFile: string): Promise<StartedPool> {
    const started = await Promise.allSettled(Array.from({ length: size }, () => startInstance(workerFile, worker, onWorkerError)));
    const failure = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    const instances = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    if (failure) {
      await Promise.all(instances.map(({ instance }) => instance.close()));
      throw failure.reason;
    }
    const first = instances[0]!.ready;
    const pool = new WorkerPool(workerFile, worker, onWorkerError, first);
    for (const { instance } of instances) pool.#adopt(instance);
    return { pool, signature: first.signature, provider: first.provider, engine: first.engine, warnings: first.warnings };
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

  /** Instances running a task, leaving ones included. */
  get busy(): number {
    let busy = 0;
    for (const instance of [...this.#ready, ...this.#leaving]) if (instance.tasks > 0) busy += 1;
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

  /**
   * Adds one instance once it has loaded and warmed up. Rejects with the load error, or when the
   * new session differs from the others (another provider after a failed GPU allocation, another
   * signature after the file changed); the pool is unchanged then.
   */
  async grow(): Promise<void> {
    if (this.#closing) throw new InferdError('INFERD_ERR_SHUTTING_DOWN', 'the worker pool is closing');
    const starting = startInstance(this.#workerFile, this.#worker, this.#onWorkerError);
    this.#starting.add(starting);
    try {
      const { instance, ready } = await starting;
      // Closing began while it loaded: close() waits for it and closes it.
      if (this.#closing) return;
      const differs =
        ready.provider !== this.#first.provider
          ? `runs on ${ready.provider.toUpperCase()}, the others on ${this.#first.provider.toUpperCase()}`
          : JSON.stringify(ready.signature) !== JSON.stringify(this.#first.signature)
            ? 'has another signature than the others (the model file changed?)'
            : undefined;
      if (differs) {
        await instance.close();
        throw new InferdError('INFERD_ERR_MODEL_LOAD_FAILED', `a new instance of ${this.#worker.modelPath} ${differs}: not added`);
      }
      this.#adopt(instance);
    } finally {
      this.#starting.delete(starting);
    }
  }

  /**
   * Takes one instance out of service (an idle one, the newest, if any), lets it finish its task,
   * then closes it. False when only one instance is left.
   */
  async shrink(): Promise<boolean> {
    if (this.#ready.length <= 1 || this.#closing) return false;
    const leaving = this.#ready.findLast((instance) => instance.tasks === 0) ?? this.#ready.at(-1)!;
    this.#ready = this.#ready.filter((instance) => instance !== leaving);
    this.#leaving.add(leaving);
    this.#onResize?.(this.#ready.length);
    await leaving.close();
    this.#leaving.delete(leaving);
    return true;
  }

  /**
   * How many tasks a worker holds at once. With 1 a task waits in the pool's queue and goes to
   * whichever worker frees first, never behind a long task while another is idle. With 2 a busy
   * worker also holds the next one in its own message port and starts it the moment a run ends,
   * without waiting for the HTTP thread, which may be busy parsing requests, to see the answer
   * and post more work.
   */
  setTasksPerWorker(count: 1 | 2): void {
    this.#tasksPerWorker = count;
    this.#dispatch();
  }

  #adopt(instance: Instance): void {
    this.#ready.push(instance);
    this.#onResize?.(this.#ready.length);
    this.#dispatch();
  }

  /**
   * Runs on an idle instance, the oldest, so light load stays on warm instances. With none idle
   * and two tasks per worker, it waits inside the busy worker that holds the fewest input bytes,
   * so that it does not queue behind a long task while a short one finishes elsewhere; otherwise
   * in the pool's queue for whichever worker frees first.
   */
  run(task: InferenceTask): Promise<InferenceOutcome> {
    if (this.#ready.length === 0) return Promise.resolve({ ok: false, code: 'INFERD_ERR_SHUTTING_DOWN', message: 'no model instance is running' });
    return new Promise((resolve) => {
      this.#queue.push({ task, resolve });
      this.#dispatch();
    });
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      const instance = this.#leastLoaded();
      if (!instance) return;
      void this.#runOn(instance, this.#queue.shift()!);
    }
  }

  /** The oldest of the instances with the fewest tasks, then the fewest bytes, if any can take one more. */
  #leastLoaded(): Instance | undefined {
    let best: Instance | undefined;
    for (const candidate of this.#ready) {
      if (candidate.tasks >= this.#tasksPerWorker) continue;
      if (!best || candidate.tasks < best.tasks || (candidate.tasks === best.tasks && candidate.heldBytes < best.heldBytes)) best = candidate;
    }
    return best;
  }

  async #runOn(instance: Instance, { task, resolve }: QueuedTask): Promise<void> {
    const transferList = 'inputs' in task ? wholeBuffers(task.inputs) : [];
    // Counted before the transfer empties the moved buffers.
    const bytes = 'inputs' in task ? inputBytes(task.inputs) : task.members.reduce((sum, member) => sum + inputBytes(member), 0);
    if (instance.tasks === 0) instance.busySinceMs = performance.now();
    instance.tasks += 1;
    instance.heldBytes += bytes;
    let outcome: InferenceOutcome;
    try {
      outcome = (await instance.piscina.run(task, { transferList })) as InferenceOutcome;
    } catch (error) {
      outcome = { ok: false, code: 'INFERD_ERR_INFERENCE_FAILED', message: `worker failed: ${(error as Error).message}` };
    }
    instance.tasks -= 1;
    instance.heldBytes -= bytes;
    if (instance.tasks === 0) {
      this.#busyMsDone += performance.now() - instance.busySinceMs!;
      instance.busySinceMs = undefined;
      instance.settled();
    }
    // The next task first, so the worker has its next one waiting before this result is handled.
    this.#dispatch();
    resolve(outcome);
  }

  /** Waits for instances still loading and for running tasks, then stops every worker. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      // A worker still warming up is inside run(): it may only be closed once it has started.
      const late = await Promise.allSettled([...this.#starting]);
      const lateInstances = late.flatMap((s) => (s.status === 'fulfilled' ? [s.value.instance] : []));
      const all = [...this.#ready, ...this.#leaving, ...lateInstances];
      this.#ready = [];
      await Promise.all(all.map((instance) => instance.close()));
      this.#leaving.clear();
    })();
    return this.#closing;
  }
}

/**
 * The buffers that tensors fill whole, moved to the worker instead of copied. Anything else is
 * cloned: a view's buffer holds bytes that are not the tensor's (Node's Buffer pool, the request
 * body), and a batch's members stay readable, to be run one by one if the batch fails.
 */
function wholeBuffers(inputs: NamedTensors): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const name in inputs) {
    const { data } = inputs[name]!;
    if (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) buffers.add(data.buffer as ArrayBuffer);
  }
  return [...buffers];
}
