/** The few settings the runtime and the model repository need, taken once from the validated configuration. */
import { availableParallelism } from 'node:os';
import type { RepositorySettings } from '../repository/repository.js';
import type { RuntimeSettings } from '../runtime/runtime.js';
import type { Config } from './schema.js';

const MIB = 1024 * 1024;

/** What a batch transform job run in this process changes: its own timeout; one process, whose main thread parses every record. */
export interface TransformJobOverrides {
  readonly invocationTimeoutS: number;
}

export function runtimeSettings(config: Config, transformJob?: TransformJobOverrides): RuntimeSettings {
  const { memoryBudgetMb } = config.model;
  return {
    defaults: {
      processes: transformJob ? 1 : config.server.processes,
      // A batch job's main thread parses every mini-batch and is its limit (measured on
      // `inferd transform`): it keeps a core. Under SAGEMAKER_BATCH the HTTP thread does the same work.
      mainThreadCores: transformJob || config.batch.enabled ? 1 : 0,
      instances: config.model.instances,
      minInstances: config.autoscale.minInstances,
      maxInstances: config.autoscale.maxInstances,
      requireGpu: config.model.requireGpu,
      invocationTimeoutMs: (transformJob?.invocationTimeoutS ?? config.server.invocationTimeoutS) * 1000,
      batching: config.batching,
    },
    memoryBudgetBytes: memoryBudgetMb === undefined ? undefined : Math.floor(memoryBudgetMb * MIB),
    evictToFit: !config.model.multiModel,
    // Half the load wait: a load that finds no room is refused (507) while its requests still
    // wait, rather than after they were told to retry (429).
    roomWaitMs: (config.model.loadWaitS * 1000) / 2,
    // As SageMaker's multi-model endpoints: load concurrency follows the cores.
    maxConcurrentLoads: Math.max(1, Math.floor(availableParallelism() / 2)),
  };
}

/** Undefined without `INFERD_MODEL_REPOSITORY`. */
export function repositorySettings(config: Config): RepositorySettings | undefined {
  const { repository, cacheDir, maxUnpackedMb } = config.model;
  return repository === undefined ? undefined : { root: repository, cacheDir, maxModelBytes: Math.floor(maxUnpackedMb * MIB) };
}
