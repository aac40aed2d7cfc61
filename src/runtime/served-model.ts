/**
 * One loaded model: its worker pool (one instance of the model per worker thread, on its backend), its batcher, its
 * signature. The registry (runtime.ts) holds these by name; it knows nothing of what is inside.
 */
import { availableParallelism } from 'node:os';
import type { DType, ModelSignature, NamedTensors } from '../codecs/tensor.js';
import { InferdError } from '../errors.js';
import { batchLayout } from './batch-merge.js';
import { Batcher, type BatchingOptions, type BatchObserver, type BatcherStats, type InferenceResult, type SubmitOptions } from './batcher.js';
import type { ModelLocation } from './model-dir.js';
import { WorkerPool } from './worker-pool.js';
import { BACKENDS } from './backends.js';
import type { BackendName, ExecutionProviderName } from './worker-protocol.js';

/**
 * Batches out per instance: one running and one waiting to run (in the pool's queue, or in the
 * worker when requests are never merged), so a worker starts its next batch without waiting for
 * the batcher to assemble one (measured on 2 cores: +36% requests/s for 64-row MLP requests at
 * 16 connections). The waiting batch is dispatched: past its deadline it is answered 504 and its
 * result discarded.
 */
const BATCHES_PER_INSTANCE = 2;

export interface ModelInfo {
  readonly name: string;
  /** The file served: the `.onnx` file, or TF.js's `model.json`. */
  readonly path: string;
  readonly backend: BackendName;
  /** What computes: ONNX Runtime's execution provider, or the TF.js engine (`wasm`, `tfjs-node`, `tfjs-node-gpu`). */
  readonly engine: string;
  readonly provider: ExecutionProviderName;
  readonly requestedProvider: ExecutionProviderName;
  /** Instances at start; with autoscaling the pool moves between `minInstances` and `maxInstances`. */
  readonly instances: number;
  readonly minInstances: number;
  readonly maxInstances: number;
  readonly intraOpNumThreads: number;
  readonly batching: BatchingOptions;
  readonly signature: ModelSignature;
}

export interface ModelStats extends BatcherStats {
  readonly busyWorkers: number;
  /** Instances taking work. */
  readonly workers: number;
  /** Instances loading, added by the autoscaler. */
  readonly startingWorkers: number;
}

/** What the server's configuration says for every model, before its own `inferd.json`. */
export interface ServingDefaults {
  /** Server processes sharing the cores: each runs its own instances. */
  readonly processes: number;
  /**
   * Cores each process keeps for its main thread when `instances` is unset: 0 for the server,
   * whose HTTP thread gets its share from the scheduler; 1 for a batch job (in-process
   * transform, or the server under SAGEMAKER_BATCH), whose main thread parses every record and
   * is its bottleneck.
   */
  readonly mainThreadCores: number;
  readonly instances: number | undefined;
  readonly minInstances: number | undefined;
  readonly maxInstances: number | undefined;
  readonly requireGpu: boolean;
  readonly invocationTimeoutMs: number;
  readonly batching: BatchingOptions;
}

export interface ModelLogger {
  warn(object: object, message: string): void;
  error(object: object, message: string): void;
}

/** Told of what a model does as it serves: metrics count it, the autoscaler reads it. */
export interface ModelObserver extends Partial<BatchObserver> {
  /** Milliseconds each request waited in the batcher. */
  queueWait?(waitMs: number): void;
}

export class ServedModel {
  readonly info: ModelInfo;
  /** The autoscaler resizes it. */
  readonly pool: WorkerPool;
  readonly #batcher: Batcher;
  /** The batcher's observer fans out to these. */
  readonly #observers: Set<ModelObserver>;
  /** Those that want queue waits: read on every request, so kept as an array. */
  #waitObservers: ModelObserver[] = [];

  private constructor(info: ModelInfo, pool: WorkerPool, batcher: Batcher, observers: Set<ModelObserver>) {
    this.info = info;
    this.pool = pool;
    this.#batcher = batcher;
    this.#observers = observers;
  }

  /**
   * Loads the model in every instance of its backend and warms each up; rejects with the model's
   * own error. `workerFile` replaces the backend's worker entry, for tests.
   */
  static async start(name: string, location: ModelLocation, defaults: ServingDefaults, log: ModelLogger, workerFile?: string): Promise<ServedModel> {
    const range = instanceRange(location, defaults, log);
    const { config } = location;
    const started = await WorkerPool.start(
      range.initial,
      {
        modelPath: location.modelPath,
        executionProvider: config.executionProvider,
        deviceId: config.deviceId,
        requireGpu: defaults.requireGpu,
        intraOpNumThreads: config.intraOpNumThreads,
        graphOptimizationLevel: config.graphOptimizationLevel,
        outputs: config.outputs,
      },
      (error) => log.error({ err: error, model: name }, 'inference worker error'),
      workerFile ?? BACKENDS[location.backend].workerFile,
    );
    for (const warning of started.warnings) log.warn({ model: name }, warning);
    try {
      checkDeclaredInputs(location, started.signature);
      checkPadRules(location, started.signature);
    } catch (error) {
      await started.pool.close();
      throw error;
    }
    const batching = batchingOptions(location, defaults, started.signature);
    // Unmerged, every request is a task of its own and pays the wait for the HTTP thread between
    // two runs: holding the next one in the worker gained 1.10-1.19x requests/s on the text
    // classifier and 1.30-1.41x on churn with batching off. With merging, alternated runs on
    // churn ranged from 0.92x to 1.07x, so merged batches wait on the HTTP thread as before.
    started.pool.setTasksPerWorker(batching.maxBatchSize === 1 ? 2 : 1);
    const observers = new Set<ModelObserver>();
    const batcher = new Batcher({
      ...batching,
      run: (task) => started.pool.run(task),
      maxBatchesInFlight: started.pool.size * BATCHES_PER_INSTANCE,
      timeoutMs: defaults.invocationTimeoutMs,
      layout: batchLayout(started.signature, config.batching.pad),
      observer: {
        dispatched: (event) => {
          for (const observer of observers) observer.dispatched?.(event);
        },
        completed: (event) => {
          for (const observer of observers) observer.completed?.(event);
        },
      },
    });
    started.pool.onResize((instances) => batcher.resize(instances * BATCHES_PER_INSTANCE));
    const info: ModelInfo = {
      name,
      path: location.modelPath,
      backend: location.backend,
      engine: started.engine,
      provider: started.provider,
      requestedProvider: config.executionProvider,
      instances: range.initial,
      minInstances: range.min,
      maxInstances: range.max,
      intraOpNumThreads: config.intraOpNumThreads,
      batching,
      signature: started.signature,
    };
    return new ServedModel(info, started.pool, batcher, observers);
  }

  /** Adds an observer; the function returned removes it. */
  observe(observer: ModelObserver): () => void {
    this.#observers.add(observer);
    this.#waitObservers = [...this.#observers].filter((o) => o.queueWait !== undefined);
    return () => {
      this.#observers.delete(observer);
      this.#waitObservers = [...this.#observers].filter((o) => o.queueWait !== undefined);
    };
  }

  infer(inputs: NamedTensors, options?: SubmitOptions): Promise<InferenceResult> {
    const waits = this.#waitObservers;
    if (waits.length === 0) return this.#batcher.submit(inputs, options);
    return this.#batcher.submit(inputs, options).then((result) => {
      for (const observer of waits) observer.queueWait!(result.queueMs);
      return result;
    });
  }

  /** Requests and rows waiting in the batcher now. */
  queue(): BatcherStats {
    return this.#batcher.stats();
  }

  /** Nothing queued or running. */
  get idle(): boolean {
    const { queued, inFlight } = this.#batcher.stats();
    return queued === 0 && inFlight === 0;
  }

  stats(): ModelStats {
    return { ...this.#batcher.stats(), busyWorkers: this.pool.busy, workers: this.pool.size, startingWorkers: this.pool.starting };
  }

  /** Lets queued and running inferences finish, then stops the workers (never inside run()). */
  async close(): Promise<void> {
    await this.#batcher.drain();
    await this.pool.close();
  }
}

/**
 * Instances when nothing sets them. On CPU, the cores that the processes' main threads do not
 * keep. The server keeps none: an idle worker costs no CPU (ONNX Runtime's threads do not
 * spin), a compute-bound model uses the core an HTTP-bound one would leave to its HTTP thread
 * (on 2 cores, two instances against one: the text classifier 1.59x the requests/s, churn-mlp
 * 1.09x, churn-forest 1.01x; docs/runtime.md), and the HTTP thread still gets its share from the
 * scheduler (mobilenetv2's /ping p99 under 36 ms under load). A batch job keeps one: its parser
 * is the limit (1,000,000 churn rows: 0.93x the records/s and 40 MB more with a second
 * instance). On a GPU, two sessions overlap one's host work with the other's kernels.
 */
export function defaultInstances(layout: {
  executionProvider: ExecutionProviderName;
  cores: number;
  processes: number;
  mainThreadCores: number;
  intraOpNumThreads: number;
}): number {
  if (layout.executionProvider === 'cuda') return 2;
  return Math.max(1, Math.floor((layout.cores - layout.processes * layout.mainThreadCores) / (layout.processes * layout.intraOpNumThreads)));
}

/**
 * Instances to start with, and the range an autoscaler keeps them in: fixed unless a
 * `maxInstances` is set (inferd.json over the server's settings, as for `instances`).
 */
function instanceRange(location: ModelLocation, defaults: ServingDefaults, log: ModelLogger): { initial: number; min: number; max: number } {
  const cores = availableParallelism();
  const { config } = location;
  const threads = config.intraOpNumThreads;
  const { processes, mainThreadCores } = defaults;
  const fallback = defaultInstances({ executionProvider: config.executionProvider, cores, processes, mainThreadCores, intraOpNumThreads: threads });
  const fixed = config.instances ?? defaults.instances;
  const max = config.maxInstances ?? defaults.maxInstances;
  const ownMin = config.minInstances ?? defaults.minInstances;
  if (max === undefined && ownMin !== undefined) {
    throw new InferdError('INFERD_ERR_MODEL_LOAD_FAILED', `minInstances (${ownMin}) needs a maxInstances: without it the pool does not autoscale`);
  }
  const min = max === undefined ? (fixed ?? fallback) : (ownMin ?? 1);
  if (max !== undefined && min > max) {
    throw new InferdError('INFERD_ERR_MODEL_LOAD_FAILED', `minInstances (${min}) exceeds maxInstances (${max})`);
  }
  const range = { initial: Math.min(max ?? min, Math.max(min, fixed ?? min)), min, max: max ?? min };
  const threadsInAll = processes * range.max * threads;
  if (config.executionProvider === 'cpu' && threadsInAll > cores) {
    log.warn(
      { processes, instances: range.max, intraOpNumThreads: threads, cores },
      `processes × instances × intraOpNumThreads (${threadsInAll}) exceeds the ${cores} available cores; expect contention`,
    );
  }
  return range;
}

/** Server defaults, then inferd.json, then what the signature allows. */
function batchingOptions(location: ModelLocation, defaults: ServingDefaults, signature: ModelSignature): BatchingOptions {
  const server = defaults.batching;
  const own = location.config.batching;
  // A fixed batch dimension (often 1) means the model cannot take merged requests.
  const fixedBatch = signature.inputs.some((input) => input.shape[0] !== null);
  return {
    maxBatchSize: fixedBatch ? 1 : (own.maxBatchSize ?? server.maxBatchSize),
    maxQueueDelayMs: own.maxQueueDelayMs ?? server.maxQueueDelayMs,
    preferredBatchSizes: own.preferredBatchSizes ?? server.preferredBatchSizes,
    maxQueueSize: own.maxQueueSize ?? server.maxQueueSize,
  };
}

function checkDeclaredInputs(location: ModelLocation, signature: ModelSignature): void {
  const declared = location.config.inputs;
  if (!declared) return;
  const actual = signature.inputs.map((i) => i.name);
  if (declared.length !== actual.length || declared.some((name) => !actual.includes(name))) {
    throw new InferdError(
      'INFERD_ERR_MODEL_LOAD_FAILED',
      `inferd.json declares inputs [${declared.join(', ')}] but the model has [${actual.join(', ')}]`,
    );
  }
}

/** Values each integer dtype can hold; a pad value outside them would wrap or throw at merge time. */
const INTEGER_RANGES: Partial<Record<DType, readonly [number, number]>> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-2147483648, 2147483647],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  bool: [0, 1],
};

/**
 * A pad rule must name a symbolic dimension the model has beyond the batch dimension, with a
 * value every input carrying that dimension can hold.
 */
function checkPadRules(location: ModelLocation, signature: ModelSignature): void {
  const fail = (message: string) => new InferdError('INFERD_ERR_MODEL_LOAD_FAILED', `inferd.json batching.pad: ${message}`);
  const names = new Set(signature.inputs.flatMap((input) => (input.dimNames ?? []).slice(1).filter((n): n is string => n !== null)));
  for (const [name, rule] of Object.entries(location.config.batching.pad)) {
    if (!names.has(name)) throw fail(`"${name}" is not one of the model's variable dimensions [${[...names].join(', ')}]`);
    for (const input of signature.inputs.filter((i) => i.dimNames?.slice(1).includes(name))) {
      const range = INTEGER_RANGES[input.dtype];
      if (range && !(Number.isInteger(rule.value) && rule.value >= range[0] && rule.value <= range[1])) {
        throw fail(`"${name}" pads ${input.dtype} input '${input.name}' with ${rule.value}, which it cannot hold`);
      }
    }
  }
}
