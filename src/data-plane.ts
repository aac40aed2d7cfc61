/**
 * The one data plane: every door (`/invocations`, the runtime API, `/models/{name}/invoke`, the
 * Open Inference Protocol, async, batch transform) asks it for the model a request names, and
 * it answers from the runtime's registry, loading a repository model on its first request.
 */
import { InferdError, shuttingDown, type ErrorCode } from './errors.js';
import type { ModelRepository } from './repository/repository.js';
import { targetModelPath } from './repository/target-model.js';
import type { ModelInfo, Runtime } from './runtime/runtime.js';

export interface DataPlaneSettings {
  /** How long a request waits for its model to load before 429; loading goes on. */
  readonly loadWaitMs: number;
  /** SageMaker MME: models are named by `/models/{name}/invoke`, never by default. */
  readonly multiModel: boolean;
}

/** Told whether each request that names a repository model found it loaded (SageMaker's ModelCacheHit). */
export interface CacheObserver {
  hit(model: string): void;
  miss(model: string): void;
}

export interface DataPlaneLogger {
  info(object: object, message: string): void;
}

/** A model held from eviction until `release()`. */
export interface HeldModel {
  readonly model: ModelInfo;
  release(): void;
}

/** Failures of a load that still say the model exists: its request counts as a cache miss. */
const MISSES: ReadonlySet<ErrorCode> = new Set(['INFERD_ERR_MODEL_LOADING', 'INFERD_ERR_INSUFFICIENT_MEMORY']);

export class DataPlane {
  readonly #runtime: Runtime;
  readonly #repository: ModelRepository | undefined;
  readonly #settings: DataPlaneSettings;
  readonly #cache: CacheObserver | undefined;
  readonly #log: DataPlaneLogger;
  #defaultModel: string | undefined;

  constructor(runtime: Runtime, repository: ModelRepository | undefined, settings: DataPlaneSettings, log: DataPlaneLogger, cache?: CacheObserver) {
    this.#runtime = runtime;
    this.#repository = repository;
    this.#settings = settings;
    this.#log = log;
    this.#cache = cache;
  }

  /** The model requests that name none go to (`--model-dir`), once it is known. */
  get defaultModel(): string | undefined {
    return this.#defaultModel;
  }

  set defaultModel(name: string | undefined) {
    this.#defaultModel = name;
  }

  /**
   * The model for a request with `target` (`X-Amzn-SageMaker-Target-Model`), or the default
   * model without one. Synchronous when the model is loaded: the hot path allocates no promise.
   * A repository model that is not loaded is loaded, and waited for up to the load wait (then
   * 429 while loading goes on).
   */
  resolve(target: string | undefined): ModelInfo | Promise<ModelInfo> {
    const name = this.#repositoryName(target);
    if (name === undefined) return this.#defaultOrWhy();
    const loaded = this.#loaded(name);
    if (loaded) return loaded;
    return this.#counted(name, withTimeout(this.#load(name), this.#settings.loadWaitMs, name));
  }

  /**
   * As `resolve`, for work that takes its time (an async job): waits for the load however long
   * it takes, and holds the model from eviction until released.
   */
  async acquire(target: string | undefined): Promise<HeldModel> {
    for (let attempt = 0; ; attempt += 1) {
      const name = this.#repositoryName(target);
      const model = name === undefined ? this.#defaultOrWhy() : (this.#loaded(name) ?? (await this.#counted(name, this.#load(name))));
      try {
        return { model, release: this.#runtime.hold(model.name) };
      } catch (error) {
        // Evicted between its load and the hold: once more.
        if (attempt > 0 || !(error instanceof InferdError) || error.code !== 'INFERD_ERR_MODEL_NOT_LOADED') throw error;
      }
    }
  }

  /** The model `target` names if it is loaded now, without loading it; undefined otherwise. */
  peek(target: string | undefined): ModelInfo | undefined {
    const name = this.#repositoryName(target) ?? this.#defaultModel;
    return name !== undefined && this.#runtime.get(name)?.state === 'ready' ? this.#runtime.model(name, { use: false }) : undefined;
  }

  /**
   * A model by its name (`/v2/models/{name}`): one loaded under that name (the default model, a
   * SageMaker MME model, a repository model), else the repository's model of that path.
   */
  named(name: string): ModelInfo | Promise<ModelInfo> {
    if (this.#runtime.get(name)?.state === 'ready' || !this.#repository) return this.#runtime.model(name);
    return this.resolve(name);
  }

  /** Loads repository models before the server is ready (`INFERD_PRELOAD_MODELS`). */
  async preload(targets: readonly string[]): Promise<void> {
    await Promise.all(targets.map((target) => this.#load(targetModelPath(target))));
  }

  /** The repository's name for `target`, validated; undefined for a request that names none. */
  #repositoryName(target: string | undefined): string | undefined {
    if (target === undefined || target === '') return undefined;
    if (!this.#repository) {
      throw new InferdError('INFERD_ERR_BAD_REQUEST', 'X-Amzn-SageMaker-Target-Model names a model of a repository, and none is configured (INFERD_MODEL_REPOSITORY)');
    }
    return targetModelPath(target);
  }

  #defaultOrWhy(): ModelInfo {
    if (this.#defaultModel !== undefined) return this.#runtime.model(this.#defaultModel);
    if (this.#runtime.closing) throw shuttingDown();
    if (this.#settings.multiModel) throw new InferdError('INFERD_ERR_BAD_REQUEST', 'this is a multi-model endpoint: invoke POST /models/{name}/invoke');
    if (this.#repository) throw new InferdError('INFERD_ERR_BAD_REQUEST', 'name a model of the repository in X-Amzn-SageMaker-Target-Model');
    throw new InferdError('INFERD_ERR_NOT_READY', 'the model is still loading');
  }

  /** The repository model `name` if it is loaded now (a cache hit). */
  #loaded(name: string): ModelInfo | undefined {
    const view = this.#runtime.get(name);
    if (view?.pinned === true) throw shadowed(name);
    if (view?.state !== 'ready') return undefined;
    this.#cache?.hit(name);
    return this.#runtime.model(name);
  }

  /** A miss is counted once the model is known to exist: a load that succeeds, or one still going. */
  async #counted(name: string, loading: Promise<ModelInfo>): Promise<ModelInfo> {
    try {
      const model = await loading;
      this.#cache?.miss(name);
      return model;
    } catch (error) {
      if (error instanceof InferdError && MISSES.has(error.code)) this.#cache?.miss(name);
      throw error;
    }
  }

  #load(name: string): Promise<ModelInfo> {
    const repository = this.#repository!;
    if (this.#runtime.get(name)?.pinned === true) return Promise.reject(shadowed(name));
    return this.#runtime.loadOnce(name, async () => {
      const fetched = await repository.fetch(name);
      if (fetched.fetched) this.#log.info({ model: name, url: fetched.url, dir: fetched.dir }, `model ${name} downloaded into the cache`);
      return fetched;
    });
  }
}

/** As SageMaker: a caller waits up to the load wait, then gets 429 while loading goes on. */
async function withTimeout(loading: Promise<ModelInfo>, waitMs: number, name: string): Promise<ModelInfo> {
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new InferdError('INFERD_ERR_MODEL_LOADING', `model ${name} is still loading after ${waitMs / 1000} s; retry`)), waitMs);
  });
  try {
    return await Promise.race([loading, waited]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A TargetModel is a path in the repository; the `--model-dir` model is registered under its own
 * name. When the two are equal, the repository's model cannot be loaded beside it, and answering
 * with the default model would answer with a model the client did not name.
 */
const shadowed = (name: string) =>
  new InferdError('INFERD_ERR_MODEL_ALREADY_LOADED', `TargetModel ${name} is the name of the --model-dir model; the repository's ${name} cannot be loaded beside it`);
