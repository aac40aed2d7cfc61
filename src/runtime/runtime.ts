/**
 * The in-process inference API. Every mode (real-time HTTP today; batch transform and async
 * later) calls `infer()`; none reaches into the pool or the queue.
 */
import { availableParallelism } from 'node:os';
import type { Config } from '../config/schema.js';
import type { ModelSignature, NamedTensors } from '../codecs/tensor.js';
import { InferdError } from '../errors.js';
import { locateModel, type ModelLocation } from './model-dir.js';
import { RequestQueue, type InferenceResult, type QueueStats, type SubmitOptions } from './request-queue.js';
import { WorkerPool } from './worker-pool.js';
import type { ExecutionProviderName } from './worker-protocol.js';

export type RuntimeState = 'loading' | 'ready' | 'draining' | 'closed' | 'failed';

export interface ModelInfo {
  readonly name: string;
  readonly path: string;
  readonly provider: ExecutionProviderName;
  readonly requestedProvider: ExecutionProviderName;
  readonly workers: number;
  readonly intraOpNumThreads: number;
  readonly signature: ModelSignature;
}

export interface RuntimeLogger {
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
  error(object: object, message: string): void;
}

interface LoadedModel {
  readonly info: ModelInfo;
  readonly pool: WorkerPool;
  readonly queue: RequestQueue;
}

export class Runtime {
  #config: Config;
  #log: RuntimeLogger;
  #state: RuntimeState = 'loading';
  #model: LoadedModel | undefined;
  #starting: Promise<void> | undefined;

  constructor(config: Config, log: RuntimeLogger) {
    this.#config = config;
    this.#log = log;
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
    const workers = this.#workerCount(location);
    const { config } = location;
    const started = await WorkerPool.start(
      workers,
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
    } catch (error) {
      await started.pool.close();
      throw error;
    }
    const queue = new RequestQueue({
      run: (inputs) => started.pool.run(inputs),
      concurrency: workers,
      maxQueueSize: this.#config.model.maxQueueSize,
      timeoutMs: this.#config.server.invocationTimeoutS * 1000,
    });
    const info: ModelInfo = {
      name: location.name,
      path: location.onnxPath,
      provider: started.provider,
      requestedProvider: config.executionProvider,
      workers,
      intraOpNumThreads: config.intraOpNumThreads,
      signature: started.signature,
    };
    this.#model = { info, pool: started.pool, queue };
    if (this.#state === 'loading') this.#state = 'ready';
    this.#log.info(
      { model: info.name, provider: info.provider, workers, intraOpNumThreads: info.intraOpNumThreads },
      `model ${info.name} ready on ${info.provider.toUpperCase()} with ${workers} worker(s)`,
    );
  }

  #workerCount(location: ModelLocation): number {
    const cores = availableParallelism();
    const threads = location.config.intraOpNumThreads;
    // One core stays with the HTTP thread: decoding, encoding and /ping live there.
    const workers = location.config.workers ?? this.#config.model.workers ?? Math.max(1, Math.floor((cores - 1) / threads));
    if (workers * threads > cores) {
      this.#log.warn(
        { workers, intraOpNumThreads: threads, cores },
        `workers × intraOpNumThreads (${workers * threads}) exceeds the ${cores} available cores; expect contention`,
      );
    }
    return workers;
  }

  infer(inputs: NamedTensors, options?: SubmitOptions): Promise<InferenceResult> {
    if (this.#state === 'draining' || this.#state === 'closed') {
      return Promise.reject(new InferdError('INFERD_ERR_SHUTTING_DOWN', 'the server is shutting down'));
    }
    if (!this.#model || this.#state !== 'ready') {
      return Promise.reject(new InferdError('INFERD_ERR_NOT_READY', 'the model is still loading'));
    }
    return this.#model.queue.submit(inputs, options);
  }

  stats(): QueueStats & { busyWorkers: number } {
    const model = this.#model;
    return model ? { ...model.queue.stats(), busyWorkers: model.pool.busy } : { queued: 0, inFlight: 0, busyWorkers: 0 };
  }

  /** Refuses new work, lets queued and running inferences finish, then stops the workers. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'draining';
    await this.#starting?.catch(() => {});
    if (this.#model) {
      await this.#model.queue.drain();
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
