/**
 * The in-process inference API: a registry of models by name. Every door (the SageMaker routes,
 * the model repository, the Open Inference Protocol, async, batch transform) loads, finds and
 * runs models here. The registry knows nothing of batching, workers, metrics or autoscaling:
 * each model is a ServedModel, and what else must follow a model attaches through hooks.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { NamedTensors } from '../codecs/tensor.js';
import { InferdError, shuttingDown } from '../errors.js';
import { ChangeSignal } from './change-signal.js';
import { LoadSlots } from './load-slots.js';
import type { InferenceResult, SubmitOptions } from './batcher.js';
import { evictionsToFit, type Resident } from './eviction.js';
import { locateModel, type ModelLocation } from './model-dir.js';
import { ServedModel, type ModelInfo, type ModelLogger, type ModelStats, type ServingDefaults } from './served-model.js';

export type { ModelInfo, ModelStats } from './served-model.js';

export type ModelState = 'loading' | 'ready' | 'unloading';
export type UnloadReason = 'request' | 'evicted' | 'shutdown';
/** How a footprint was found: declared in inferd.json, resident memory growth over the load, or the files' size. */
export type FootprintSource = 'declared' | 'measured' | 'artifact';

/** Where a model's files are: a local directory, and the address a client gave for it. */
export interface ModelSource {
  readonly dir: string;
  readonly url: string;
}

export interface ModelView {
  readonly name: string;
  readonly url: string;
  readonly state: ModelState;
  /** Loaded by name (`--model-dir`, SageMaker's `POST /models`), not from a repository: never evicted. */
  readonly pinned: boolean;
  /** Once loaded. */
  readonly info: ModelInfo | undefined;
  readonly footprintBytes: number | undefined;
  readonly footprintSource: FootprintSource | undefined;
  readonly loadMs: number | undefined;
}

export interface ModelHooks {
  /** A model is loaded; what this returns runs when it unloads, before its workers stop. */
  loaded?(model: ServedModel, event: { readonly loadMs: number }): (() => void | Promise<void>) | void;
  /** A model's workers have stopped. */
  unloaded?(name: string, reason: UnloadReason): void;
}

export interface RuntimeSettings {
  readonly defaults: ServingDefaults;
  /** Bound on the sum of the loaded models' footprints; unset: no bound. */
  readonly memoryBudgetBytes: number | undefined;
  /**
   * On-prem, least recently used idle models are evicted to make room, and a load waits up to
   * `roomWaitMs` for models in use to become idle. Under SageMaker MME the platform evicts: a
   * model that does not fit is refused at once (507), and SageMaker unloads and retries.
   */
  readonly evictToFit: boolean;
  readonly roomWaitMs: number;
  /**
   * Models loading at once; the others wait their turn, reserving nothing: each would hold room
   * in the budget that models in use could have.
   */
  readonly maxConcurrentLoads: number;
}

export interface RuntimeLogger extends ModelLogger {
  info(object: object, message: string): void;
}

interface Entry {
  readonly name: string;
  /** Loaded by name (`--model-dir`, SageMaker's `POST /models`): never evicted, only unloaded. */
  readonly pinned: boolean;
  url: string;
  state: ModelState;
  served: ServedModel | undefined;
  loading: Promise<ServedModel>;
  unloading: Promise<void> | undefined;
  /** What a loading model is expected to take, counted against the budget until it is measured. */
  reservedBytes: number;
  footprintBytes: number | undefined;
  footprintSource: FootprintSource | undefined;
  loadMs: number | undefined;
  lastUsedMs: number;
  /** Work that holds the model beyond its queue (an async job reading its input): never evicted meanwhile. */
  holds: number;
  /**
   * From its workers' start until its load settles: a shutdown waits for such a load, to stop
   * its workers; one still downloading, or waiting its turn or for room, is abandoned.
   */
  hasWorkers: boolean;
  detach: Array<() => void | Promise<void>>;
}

const MIB = 1024 * 1024;

export class Runtime {
  readonly #settings: RuntimeSettings;
  readonly #log: RuntimeLogger;
  readonly #workerFile: string | undefined;
  readonly #entries = new Map<string, Entry>();
  readonly #hooks: ModelHooks[] = [];
  /** Footprints measured before, by model file: the estimate when the model loads again. */
  readonly #knownFootprints = new Map<string, number>();
  #closing = false;
  #closed: Promise<void> | undefined;
  readonly #slots: LoadSlots;
  /** Told when a model loads, unloads, is released or finishes a batch: a load waiting for room looks again. */
  readonly #roomChanged = new ChangeSignal();

  /** `workerFile` is for tests, which need workers whose tasks end when they say so. */
  constructor(settings: RuntimeSettings, log: RuntimeLogger, workerFile?: string) {
    this.#settings = settings;
    this.#log = log;
    this.#workerFile = workerFile;
    this.#slots = new LoadSlots(settings.maxConcurrentLoads);
  }

  addHooks(hooks: ModelHooks): void {
    this.#hooks.push(hooks);
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Loads a model under `name`; resolves once it is ready. A name already present is 409. */
  load(name: string, source: ModelSource): Promise<ModelInfo> {
    if (this.#entries.has(name)) {
      return Promise.reject(new InferdError('INFERD_ERR_MODEL_ALREADY_LOADED', `model ${name} is already ${this.#entries.get(name)!.state}`));
    }
    return this.#startLoad(name, async () => source, true).then((served) => served.info);
  }

  /**
   * The model `name`, loading it from `source()` unless it is loaded or loading already: every
   * concurrent caller shares one load. Loaded this way, a model may be evicted under the budget.
   */
  loadOnce(name: string, source: () => Promise<ModelSource>): Promise<ModelInfo> {
    const entry = this.#entries.get(name);
    if (entry?.state === 'ready') {
      entry.lastUsedMs = performance.now();
      return Promise.resolve(entry.served!.info);
    }
    // An unloading model is loaded again once its workers have stopped.
    const loading = entry === undefined ? this.#startLoad(name, source, false) : entry.state === 'loading' ? entry.loading : this.#reloadAfter(entry, name, source);
    return loading.then((served) => served.info);
  }

  async #reloadAfter(entry: Entry, name: string, source: () => Promise<ModelSource>): Promise<ServedModel> {
    await entry.unloading?.catch(() => {});
    const next = this.#entries.get(name);
    if (next === undefined) return this.#startLoad(name, source, false);
    return next.state === 'unloading' ? this.#reloadAfter(next, name, source) : next.loading;
  }

  #startLoad(name: string, source: () => Promise<ModelSource>, pinned: boolean): Promise<ServedModel> {
    if (this.#closing) return Promise.reject(shuttingDown());
    const entry: Entry = {
      name,
      pinned,
      url: '',
      state: 'loading',
      served: undefined,
      loading: Promise.resolve(undefined as never),
      unloading: undefined,
      reservedBytes: 0,
      footprintBytes: undefined,
      footprintSource: undefined,
      loadMs: undefined,
      lastUsedMs: performance.now(),
      holds: 0,
      hasWorkers: false,
      detach: [],
    };
    this.#entries.set(name, entry);
    entry.loading = this.#loadInto(entry, source);
    entry.loading.catch((error: unknown) => {
      if (this.#entries.get(name) === entry) this.#entries.delete(name);
      this.#log.warn({ model: name, err: error }, `model ${name} failed to load: ${(error as Error).message}`);
    });
    return entry.loading;
  }

  async #loadInto(entry: Entry, source: () => Promise<ModelSource>): Promise<ServedModel> {
    const startedMs = performance.now();
    // Downloading and unpacking take no slot: only what competes for the cores and the budget does.
    const { dir, url } = await source();
    entry.url = url;
    const location = await locateModel(dir);
    if (this.#closing) throw shuttingDown();
    const served = await this.#startWithinBudget(entry, location);
    try {
      // A shutdown that began during the load does not wait for it: its workers stop here.
      if (this.#closing) throw shuttingDown();
      entry.loadMs = performance.now() - startedMs;
      for (const hooks of this.#hooks) {
        const detach = hooks.loaded?.(served, { loadMs: entry.loadMs });
        if (detach) entry.detach.push(detach);
      }
    } catch (error) {
      await this.#stop(entry, served);
      throw error;
    } finally {
      entry.hasWorkers = false;
    }
    entry.served = served;
    entry.state = 'ready';
    entry.lastUsedMs = performance.now();
    this.#roomChanged.notify();
    const { info } = served;
    const scaling = info.maxInstances > info.minInstances ? `, autoscaling between ${info.minInstances} and ${info.maxInstances}` : '';
    this.#log.info(
      {
        model: info.name,
        url,
        backend: info.backend,
        engine: info.engine,
        provider: info.provider,
        instances: info.instances,
        minInstances: info.minInstances,
        maxInstances: info.maxInstances,
        intraOpNumThreads: info.intraOpNumThreads,
        batching: info.batching,
        footprintBytes: entry.footprintBytes,
        footprintSource: entry.footprintSource,
        loadMs: Math.round(entry.loadMs),
      },
      `model ${info.name} ready on ${info.provider.toUpperCase()} (${info.backend === 'onnx' ? 'ONNX Runtime' : `TF.js ${info.engine}`}) with ${info.instances} instance(s)${scaling}`,
    );
    return served;
  }

  /**
   * In a load slot: makes room for the model's estimated footprint, starts its workers, then
   * checks its measured footprint fits too.
   */
  async #startWithinBudget(entry: Entry, location: ModelLocation): Promise<ServedModel> {
    const declared = location.config.memoryMb === undefined ? undefined : location.config.memoryMb * MIB;
    const artifact = await artifactBytes(location);
    const estimate = declared ?? this.#knownFootprints.get(location.modelPath) ?? artifact;
    let served: ServedModel;
    let rssGrowth: number;
    await this.#slots.acquire();
    try {
      await this.#makeRoom(entry, estimate, { inSlot: true });
      const rssBefore = process.memoryUsage.rss();
      entry.hasWorkers = true;
      served = await ServedModel.start(entry.name, location, this.#settings.defaults, this.#log, this.#workerFile);
      rssGrowth = process.memoryUsage.rss() - rssBefore;
    } catch (error) {
      entry.hasWorkers = false;
      throw error;
    } finally {
      entry.reservedBytes = 0;
      this.#slots.release();
      this.#roomChanged.notify();
    }
    // Resident memory growth over the load sees the sessions' weights and arenas; another load
    // at the same time adds to it, which errs on the side of evicting sooner. It cannot see GPU
    // memory, hence `memoryMb` in inferd.json.
    entry.footprintSource = declared !== undefined ? 'declared' : rssGrowth > artifact ? 'measured' : 'artifact';
    entry.footprintBytes = declared ?? Math.max(rssGrowth, artifact);
    this.#knownFootprints.set(location.modelPath, entry.footprintBytes);
    // A batch finishing may leave the model idle: a load waiting for room looks again.
    served.observe({ completed: () => this.#roomChanged.notify() });
    try {
      await this.#makeRoom(entry, entry.footprintBytes, { inSlot: false });
    } catch (error) {
      await served.close();
      entry.hasWorkers = false;
      throw error;
    }
    return served;
  }

  /**
   * Makes room for `neededBytes` more beside every other model (loading ones count what they
   * reserved, unloading ones what they hold until their workers stop), and reserves it for a
   * model not loaded yet. On-prem it evicts the least recently used idle models, waiting up to
   * `roomWaitMs` for models in use to become idle (giving its load slot back meanwhile); then,
   * and at once under SageMaker MME, it refuses with 507.
   */
  async #makeRoom(entry: Entry, neededBytes: number, { inSlot }: { readonly inSlot: boolean }): Promise<void> {
    const budgetBytes = this.#settings.memoryBudgetBytes;
    if (budgetBytes === undefined) return;
    const { evictToFit, roomWaitMs } = this.#settings;
    const deadlineMs = performance.now() + roomWaitMs;
    for (;;) {
      if (this.#closing) throw shuttingDown();
      const residents = this.#residents(entry);
      const evictions = evictionsToFit(residents, neededBytes, budgetBytes);
      if (evictions !== undefined) {
        // Reserved in the same step it was found, so no other load counts the same room.
        if (entry.footprintBytes === undefined) entry.reservedBytes = neededBytes;
        for (const name of evictions) this.#log.info({ model: name, for: entry.name }, `evicting model ${name} to make room for ${entry.name}`);
        await Promise.all(evictions.map((name) => this.unload(name, 'evicted').catch(() => {})));
        return;
      }
      const waitMs = deadlineMs - performance.now();
      if (!evictToFit || neededBytes > budgetBytes || waitMs <= 0) {
        const usedMib = residents.reduce((sum, r) => sum + r.footprintBytes, 0) / MIB;
        throw new InferdError(
          'INFERD_ERR_INSUFFICIENT_MEMORY',
          `model ${entry.name} needs ${(neededBytes / MIB).toFixed(1)} MiB; ${usedMib.toFixed(1)} of the ${(budgetBytes / MIB).toFixed(1)} MiB budget are held${evictToFit ? ' by models in use' : ''}`,
        );
      }
      // Waiting for room, a load lets another that may fit load meanwhile.
      if (inSlot) this.#slots.release();
      try {
        await this.#roomChanged.wait(waitMs);
      } finally {
        if (inSlot) await this.#slots.acquire();
      }
    }
  }

  #residents(entry: Entry): Resident[] {
    const residents: Resident[] = [];
    for (const other of this.#entries.values()) {
      if (other === entry) continue;
      residents.push({
        name: other.name,
        footprintBytes: other.footprintBytes ?? other.reservedBytes,
        lastUsedMs: other.lastUsedMs,
        evictable:
          this.#settings.evictToFit && !other.pinned && other.state === 'ready' && other.unloading === undefined && other.holds === 0 && other.served!.idle,
      });
    }
    return residents;
  }

  /**
   * Refuses new requests for `name` (404) at once, lets those accepted finish, stops its
   * workers, and only then resolves. A model still loading is unloaded once loaded.
   */
  unload(name: string, reason: UnloadReason = 'request'): Promise<void> {
    const entry = this.#entries.get(name);
    if (!entry) return Promise.reject(notLoaded(name));
    // Refused from this moment: no request, and no other load's eviction, picks it any more.
    if (entry.state === 'ready') entry.state = 'unloading';
    entry.unloading ??= this.#unloadEntry(entry, reason);
    return entry.unloading;
  }

  async #unloadEntry(entry: Entry, reason: UnloadReason): Promise<void> {
    let served: ServedModel;
    try {
      served = await entry.loading;
    } catch {
      throw notLoaded(entry.name);
    }
    entry.state = 'unloading';
    try {
      await this.#stop(entry, served);
    } finally {
      if (this.#entries.get(entry.name) === entry) this.#entries.delete(entry.name);
    }
    this.#log.info({ model: entry.name, url: entry.url, reason, footprintBytes: entry.footprintBytes }, `model ${entry.name} unloaded (${reason})`);
    for (const hooks of this.#hooks) hooks.unloaded?.(entry.name, reason);
    this.#roomChanged.notify();
  }

  /** Detaches what followed the model (each even if another fails), then stops its workers. */
  async #stop(entry: Entry, served: ServedModel): Promise<void> {
    const detached = await Promise.allSettled(entry.detach.map((detach) => detach()));
    for (const result of detached) {
      if (result.status === 'rejected') this.#log.error({ model: entry.name, err: result.reason }, 'detaching from a model failed');
    }
    await served.close();
  }

  get(name: string): ModelView | undefined {
    const entry = this.#entries.get(name);
    return entry && viewOf(entry);
  }

  /** The model `name` in whatever state it is; 404 when there is none. */
  describe(name: string): ModelView {
    const entry = this.#entries.get(name);
    if (!entry) throw notLoaded(name);
    return viewOf(entry);
  }

  /** Every model, loading and unloading ones too, by name. */
  list(): ModelView[] {
    return [...this.#entries.values()].map(viewOf).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The numbers of the model `name` now, if it is ready. */
  statsOf(name: string): ModelStats | undefined {
    const entry = this.#entries.get(name);
    return entry?.state === 'ready' ? entry.served!.stats() : undefined;
  }

  /** The ready models with their numbers now, for metrics. */
  *stats(): Generator<{ readonly name: string; readonly stats: ModelStats; readonly footprintBytes: number }> {
    for (const entry of this.#entries.values()) {
      if (entry.state === 'ready') yield { name: entry.name, stats: entry.served!.stats(), footprintBytes: entry.footprintBytes ?? 0 };
    }
  }

  /**
   * Keeps the model `name` from eviction until the function returned is called: for work that
   * holds a model between its requests (an async job reading its input, then running it).
   */
  hold(name: string): () => void {
    const entry = this.#ready(name);
    entry.holds += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      entry.holds -= 1;
      this.#roomChanged.notify();
    };
  }

  /**
   * The model `name` if it is ready to take requests; the one place that says why not. A use
   * makes it the most recently used; a probe (`{ use: false }`, a readiness check) does not.
   */
  model(name: string, { use = true }: { readonly use?: boolean } = {}): ModelInfo {
    return this.#ready(name, use).served!.info;
  }

  #ready(name: string, use = true): Entry {
    if (this.#closing) throw shuttingDown();
    const entry = this.#entries.get(name);
    if (entry?.state === 'ready') {
      if (use) entry.lastUsedMs = performance.now();
      return entry;
    }
    if (entry?.state === 'loading') throw new InferdError('INFERD_ERR_NOT_READY', `model ${name} is still loading`);
    throw notLoaded(name);
  }

  infer(name: string, inputs: NamedTensors, options?: SubmitOptions): Promise<InferenceResult> {
    let entry: Entry;
    try {
      entry = this.#ready(name);
    } catch (error) {
      return Promise.reject(error);
    }
    return entry.served!.infer(inputs, options);
  }

  /** Refuses new work, lets queued and running inferences finish, then stops every model's workers. */
  close(): Promise<void> {
    this.#closing = true;
    // Loads waiting for room give up at once.
    this.#roomChanged.notify();
    this.#closed ??= (async () => {
      // A load with workers is waited for: it stops them itself once it sees the shutdown. One
      // still downloading, or waiting its turn or for room, gives up at its next step: a hung
      // download does not hold the shutdown.
      const withWorkers = [...this.#entries.values()].filter((entry) => entry.hasWorkers);
      await Promise.all(withWorkers.map((entry) => entry.loading.catch(() => {})));
      const loaded = [...this.#entries.values()].filter((entry) => entry.state !== 'loading');
      await Promise.all(loaded.map((entry) => this.unload(entry.name, 'shutdown').catch(() => {})));
    })();
    return this.#closed;
  }
}

const notLoaded = (name: string) => new InferdError('INFERD_ERR_MODEL_NOT_LOADED', `model ${name} is not loaded`);

function viewOf(entry: Entry): ModelView {
  return {
    name: entry.name,
    url: entry.url,
    state: entry.state,
    pinned: entry.pinned,
    info: entry.served?.info,
    footprintBytes: entry.footprintBytes,
    footprintSource: entry.footprintSource,
    loadMs: entry.loadMs,
  };
}

/** The size of the model directory's files: what a model needs at least once loaded. */
async function artifactBytes(location: ModelLocation): Promise<number> {
  let total = 0;
  for (const entry of await readdir(location.dir, { withFileTypes: true })) {
    if (entry.isFile()) total += (await stat(join(location.dir, entry.name))).size;
  }
  return total;
}
