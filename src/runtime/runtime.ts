/**
 * The in-process inference API. Every mode (real-time HTTP today; batch transform and async
 * later) calls `infer()`; none reaches into the pool or the queue.
 */
import { availableParallelism } from 'node:os';
import type { ScalingDecision } from '../autoscale/policy.js';
import { WorkerAutoscaler, type WorkerSignals } from '../autoscale/worker-autoscaler.js';
import type { Config } from '../config/schema.js';
import type { DType, ModelSignature, NamedTensors } from '../codecs/tensor.js';
import { InferdError } from '../errors.js';
import { locateModel, type ModelLocation } from './model-dir.js';
import { batchLayout } from './batch-merge.js';
import { Batcher, type BatchingOptions, type BatchObserver, type BatcherStats, type InferenceResult, type SubmitOptions } from './batcher.js';
import { WorkerPool } from './worker-pool.js';
import type { ExecutionProviderName } from './worker-protocol.js';

/**
 * Batches out per instance: one running and one waiting in the pool's queue for the first free
 * instance, so a worker starts its next batch without waiting for the batcher to assemble one
 * (measured on 2 cores: +36% requests/s for 64-row MLP requests at 16 connections). The waiting
 * batch is dispatched: past its deadline it is answered 504 and its result discarded.
 */
const BATCHES_PER_INSTANCE = 2;

export type RuntimeState = 'loading' | 'ready' | 'draining' | 'closed' | 'failed';

export interface ModelInfo {
  readonly name: string;
  readonly path: string;
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

export interface RuntimeStats extends BatcherStats {
  readonly busyWorkers: number;
  /** Instances taking work. */
  readonly workers: number;
  /** Instances loading, added by the autoscaler. */
  readonly startingWorkers: number;
}

export interface RuntimeLogger {
  debug(object: object, message: string): void;
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
  error(object: object, message: string): void;
}

interface LoadedModel {
  readonly info: ModelInfo;
  readonly pool: WorkerPool;
  readonly batcher: Batcher;
  readonly autoscaler: WorkerAutoscaler | undefined;
}

export interface RuntimeOptions {
  readonly log: RuntimeLogger;
  /** Told of every batch; metrics implement it. */
  readonly observer?: ((model: string) => BatchObserver) | undefined;
  /** Told of every worker autoscaling decision; metrics count them. */
  readonly autoscaleObserver?: ((model: string) => (decision: ScalingDecision, signals: WorkerSignals) => void) | undefined;
}

export class Runtime {
  #config: Config;
  #log: RuntimeLogger;
  #observer: RuntimeOptions['observer'];
  #autoscaleObserver: RuntimeOptions['autoscaleObserver'];
  #state: RuntimeState = 'loading';
  #model: LoadedModel | undefined;
  #starting: Promise<void> | undefined;

  constructor(config: Config, { log, observer, autoscaleObserver }: RuntimeOptions) {
    this.#config = config;
    this.#log = log;
    this.#observer = observer;
    this.#autoscaleObserver = autoscaleObserver;
  }

  get state(): RuntimeState {
    return this.#state;
  }

  get model(): ModelInfo | undefined {
    return this.#model?.info;
  }

  /** Loads the model in every worker and warms each up; rejects with the model's own error. */
  start(): Promise<void> {
    this.#starting ??= this.#load().catch((error: unknown) => {
      this.#state = 'failed';
      throw error;
    });
    return this.#starting;
  }

  async #load(): Promise<void> {
    const location = await locateModel(this.#config.model.dir!);
    const range = this.#instanceRange(location);
    const { config } = location;
    const started = await WorkerPool.start(
      range.initial,
      {
        onnxPath: location.onnxPath,
        executionProvider: config.executionProvider,
        deviceId: config.deviceId,
        requireGpu: this.#config.model.requireGpu,
        intraOpNumThreads: config.intraOpNumThreads,
        graphOptimizationLevel: config.graphOptimizationLevel,
        outputs: config.outputs,
      },
      (error) => this.#log.error({ err: error }, 'inference worker error'),
    );
    for (const warning of started.warnings) this.#log.warn({ model: location.name }, warning);
    try {
      checkDeclaredInputs(location, started.signature);
      checkPadRules(location, started.signature);
    } catch (error) {
      await started.pool.close();
      throw error;
    }
    const batching = this.#batchingOptions(location, started.signature);
    const batcher = new Batcher({
      ...batching,
      run: (inputs) => started.pool.run(inputs),
      maxBatchesInFlight: started.pool.size * BATCHES_PER_INSTANCE,
      timeoutMs: this.#config.server.invocationTimeoutS * 1000,
      layout: batchLayout(started.signature, config.batching.pad),
      observer: this.#observer?.(location.name),
    });
    const info: ModelInfo = {
      name: location.name,
      path: location.onnxPath,
      provider: started.provider,
      requestedProvider: config.executionProvider,
      instances: range.initial,
      minInstances: range.min,
      maxInstances: range.max,
      intraOpNumThreads: config.intraOpNumThreads,
      batching,
      signature: started.signature,
    };
    started.pool.onResize((instances) => batcher.resize(instances * BATCHES_PER_INSTANCE));
    const autoscaler =
      range.max > range.min
        ? new WorkerAutoscaler({
            model: info.name,
            pool: started.pool,
            queue: () => batcher.stats(),
            maxBatchSize: batching.maxBatchSize,
            settings: { ...this.#config.autoscale, minInstances: range.min, maxInstances: range.max },
            log: this.#log,
            onDecision: this.#autoscaleObserver?.(info.name),
          })
        : undefined;
    this.#model = { info, pool: started.pool, batcher, autoscaler };
    if (this.#state === 'loading') this.#state = 'ready';
    autoscaler?.start();
    const scaling = autoscaler ? `, autoscaling between ${range.min} and ${range.max}` : '';
    this.#log.info(
      { model: info.name, provider: info.provider, instances: range.initial, minInstances: range.min, maxInstances: range.max, intraOpNumThreads: info.intraOpNumThreads, batching },
      `model ${info.name} ready on ${info.provider.toUpperCase()} with ${range.initial} instance(s)${scaling}`,
    );
  }

  /**
   * Instances to start with, and the range the autoscaler keeps them in: fixed unless a
   * `maxInstances` is set (inferd.json over the environment, as for `instances`).
   */
  #instanceRange(location: ModelLocation): { initial: number; min: number; max: number } {
    const cores = availableParallelism();
    const { config } = location;
    const threads = config.intraOpNumThreads;
    // On CPU one core per server process stays with its HTTP thread: decoding, encoding and /ping
    // live there. On a GPU, two sessions overlap one's host work with the other's kernels.
    const processes = this.#config.server.processes;
    const fallback =
      config.executionProvider === 'cuda' ? 2 : Math.max(1, Math.floor((cores - processes) / (processes * threads)));
    const fixed = config.instances ?? this.#config.model.instances;
    const max = config.maxInstances ?? this.#config.autoscale.maxInstances;
    const ownMin = config.minInstances ?? this.#config.autoscale.minInstances;
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
      this.#log.warn(
        { processes, instances: range.max, intraOpNumThreads: threads, cores },
        `processes × instances × intraOpNumThreads (${threadsInAll}) exceeds the ${cores} available cores; expect contention`,
      );
    }
    return range;
  }

  /** Server defaults, then inferd.json, then what the signature allows. */
  #batchingOptions(location: ModelLocation, signature: ModelSignature): BatchingOptions {
    const server = this.#config.batching;
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

  infer(inputs: NamedTensors, options?: SubmitOptions): Promise<InferenceResult> {
    if (this.#state === 'draining' || this.#state === 'closed') {
      return Promise.reject(new InferdError('INFERD_ERR_SHUTTING_DOWN', 'the server is shutting down'));
    }
    if (!this.#model || this.#state !== 'ready') {
      return Promise.reject(new InferdError('INFERD_ERR_NOT_READY', 'the model is still loading'));
    }
    const { batcher, autoscaler } = this.#model;
    if (!autoscaler) return batcher.submit(inputs, options);
    return batcher.submit(inputs, options).then((result) => {
      autoscaler.queueWait(result.queueMs);
      return result;
    });
  }

  stats(): RuntimeStats {
    const model = this.#model;
    return model
      ? { ...model.batcher.stats(), busyWorkers: model.pool.busy, workers: model.pool.size, startingWorkers: model.pool.starting }
      : { queued: 0, queuedRows: 0, inFlight: 0, busyWorkers: 0, workers: 0, startingWorkers: 0 };
  }

  /** Refuses new work, lets queued and running inferences finish, then stops the workers. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'draining';
    await this.#starting?.catch(() => {});
    if (this.#model) {
      // A worker the autoscaler is still loading joins the pool before the pool closes.
      await this.#model.autoscaler?.stop();
      await this.#model.batcher.drain();
      await this.#model.pool.close();
    }
    this.#state = 'closed';
  }
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
