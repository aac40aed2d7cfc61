/**
 * A fixed-size Piscina pool of inference workers. It never terminates a worker that may be
 * inside `run()` (onnxruntime-node ≥ 1.25 aborts the process then): shutdown is `close()`,
 * which waits for running tasks, and callers never pass an AbortSignal for a running task.
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
} from './worker-protocol.js';

const WORKER_FILE = fileURLToPath(new URL('./inference-worker.js', import.meta.url));

export interface StartedPool {
  readonly pool: WorkerPool;
  readonly signature: ModelSignature;
  readonly provider: ExecutionProviderName;
  readonly warnings: readonly string[];
}

export class WorkerPool {
  readonly size: number;
  #piscina: Piscina;
  #busy = 0;

  private constructor(piscina: Piscina, size: number) {
    this.#piscina = piscina;
    this.size = size;
  }

  /** Starts `size` workers and resolves once every one has loaded and warmed up its session. */
  static start(size: number, worker: WorkerOptions, onWorkerError: (error: Error) => void): Promise<StartedPool> {
    const piscina = new Piscina({
      filename: WORKER_FILE,
      workerData: worker,
      minThreads: size,
      maxThreads: size,
      // Workers hold a loaded model: never let them idle out and reload.
      idleTimeout: Number.POSITIVE_INFINITY,
      // The request queue in front of the pool never has more than `size` tasks out.
      maxQueue: size,
      concurrentTasksPerWorker: 1,
    });
    const pool = new WorkerPool(piscina, size);
    return new Promise((resolve, reject) => {
      let ready = 0;
      const fail = (message: string) => {
        piscina.off('message', onMessage);
        // Every worker fails at the same step (load or warm-up), so none is inside run() here.
        void piscina.close().catch(() => {});
        reject(new InferdError('INFERD_ERR_MODEL_LOAD_FAILED', `cannot load ${worker.onnxPath}: ${message}`));
      };
      const onMessage = (message: unknown) => {
        if (!isWorkerStartMessage(message)) return;
        if (message.type === 'inferd:load-failed') return fail(message.message);
        ready += 1;
        if (ready < size) return;
        piscina.off('message', onMessage);
        piscina.off('error', onError);
        piscina.on('error', onWorkerError);
        resolve({ pool, signature: message.signature, provider: message.provider, warnings: message.warnings });
      };
      const onError = (error: Error) => fail(error.message);
      piscina.on('message', onMessage);
      piscina.once('error', onError);
    });
  }

  get busy(): number {
    return this.#busy;
  }

  async run(inputs: NamedTensors): Promise<InferenceOutcome> {
    const transferList = [...new Set(Object.values(inputs).map((t) => t.data.buffer as ArrayBuffer))];
    const task: InferenceTask = { inputs };
    this.#busy += 1;
    try {
      return (await this.#piscina.run(task, { transferList })) as InferenceOutcome;
    } catch (error) {
      return { ok: false, code: 'INFERD_ERR_INFERENCE_FAILED', message: `worker failed: ${(error as Error).message}` };
    } finally {
      this.#busy -= 1;
    }
  }

  /** Waits for running tasks, then stops the workers. */
  async close(): Promise<void> {
    await this.#piscina.close();
  }
}
