/**
 * The one data plane: every door (`/invocations`, the runtime API, `/models/{name}/invoke`, the
 * Open Inference Protocol, async, batch transform) asks it for the model a request names, and
 * it answers from the runtime's registry, loading a repository model on its first request.
 */
import { InferdError } from './errors.js';
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

export class DataPlane {
  readonly #runtime: Runtime;
  readonly #repository: ModelRepository | undefined;
  readonly #settings: DataPlaneSettings;
  readonly #cache: CacheObserver | undefined;
  #defaultModel: string | undefined;

  constructor(runtime: Runtime, repository: ModelRepository | undefined, settings: DataPlaneSettings, cache?: CacheObserver) {
    this.#runtime = runtime;
    this.#repository = repository;
    this.#settings = settings;
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
   */
  resolve(target: string | undefined): ModelInfo | Promise<ModelInfo> {
    if (target === undefined || target === '') {
      if (this.#defaultModel !== undefined) return this.#runtime.model(this.#defaultModel);
      if (this.#runtime.closing) throw new InferdError('INFERD_ERR_SHUTTING_DOWN', 'the server is shutting down');
      if (this.#settings.multiModel) {
        throw new InferdError('INFERD_ERR_BAD_REQUEST', 'this is a multi-model endpoint: invoke POST /models/{name}/invoke');
      }
      if (this.#repository) throw new InferdError('INFERD_ERR_BAD_REQUEST', 'name a model of the repository in X-Amzn-SageMaker-Target-Model');
      throw new InferdError('INFERD_ERR_NOT_READY', 'the model is still loading');
    }
    if (!this.#repository) {
      throw new InferdError('INFERD_ERR_BAD_REQUEST', 'X-Amzn-SageMaker-Target-Model names a model of a repository, and none is configured (INFERD_MODEL_REPOSITORY)');
    }
    const name = targetModelPath(target);
    const loaded = this.#runtime.get(name);
    if (loaded?.pinned === true) throw shadowed(name);
    if (loaded?.state === 'ready') {
      this.#cache?.hit(name);
      return this.#runtime.model(name);
    }
    this.#cache?.miss(name);
    return this.#waitForLoad(name, this.#load(name));
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

  #load(name: string): Promise<ModelInfo> {
    const repository = this.#repository!;
    if (this.#runtime.get(name)?.pinned === true) return Promise.reject(shadowed(name));
    return this.#runtime.loadOnce(name, () => repository.fetch(name));
  }

  /** As SageMaker: a caller waits up to the load wait, then gets 429 while loading goes on. */
  async #waitForLoad(name: string, loading: Promise<ModelInfo>): Promise<ModelInfo> {
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () => reject(new InferdError('INFERD_ERR_MODEL_LOADING', `model ${name} is still loading after ${this.#settings.loadWaitMs / 1000} s; retry`)),
        this.#settings.loadWaitMs,
      );
    });
    try {
      return await Promise.race([loading, waited]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * A TargetModel is a path in the repository; the `--model-dir` model is registered under its own
 * name. When the two are equal, the repository's model cannot be loaded beside it, and answering
 * with the default model would answer with a model the client did not name.
 */
const shadowed = (name: string) =>
  new InferdError('INFERD_ERR_MODEL_ALREADY_LOADED', `TargetModel ${name} is the name of the --model-dir model; the repository's ${name} cannot be loaded beside it`);
