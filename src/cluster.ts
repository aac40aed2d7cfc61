/**
 * `--processes N`: N server processes on one port (node:cluster). One Node process's HTTP layer
 * tops out near one core, far below what a GPU serves, so the front scales out in processes,
 * each with its own batchers and model instances. The primary serves nothing itself: it keeps
 * the processes, tells them when all are ready (so /ping means the whole server), gathers their
 * metrics into one scrape, and drains them all on SIGTERM.
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

type Message =
  | { type: 'inferd:ready' }
  | { type: 'inferd:stopped-listening' }
  | { type: 'inferd:all-stopped-listening' }
  | { type: 'inferd:all-ready'; value: boolean }
  | { type: 'inferd:metrics-request'; id: number }
  | { type: 'inferd:metrics-response'; id: number; body?: string; error?: string };

const isMessage = (value: unknown): value is Message =>
  typeof value === 'object' && value !== null && String((value as { type?: unknown }).type).startsWith('inferd:');

/** What a server process needs from its cluster; absent when it runs alone. */
export interface ClusterLink {
  /** True once every process of the server has loaded and warmed up its models. */
  allReady(): boolean;
  reportReady(): void;
  /**
   * Draining: this process has closed its side of the listener. Resolves once every process
   * has, when the primary has stopped taking connections: from then on a client that reconnects
   * is refused, never handed to a process that has stopped listening (which would close it
   * unanswered).
   */
  stoppedListening(): Promise<void>;
  /** The whole server's metrics, gathered by the primary. */
  metrics(): Promise<string>;
}

export interface PrimaryLogger {
  info(object: object, message: string): void;
  error(object: object, message: string): void;
}

/** Runs in the primary; resolves with the exit code once every process has stopped. */
export function runPrimary(processes: number, shutdownTimeoutS: number, log: PrimaryLogger): Promise<number> {
  const aggregator = new AggregatorRegistry();
  const ready = new Set<number>();
  const stoppedListening = new Set<number>();
  let stopping = false;
  let exitCode = 0;

  // A process may be exiting: a send without a callback would then raise an unhandled 'error'.
  const send = (worker: Worker | undefined, message: Message) => {
    if (worker?.isConnected()) worker.send(message, () => {});
  };
  const broadcast = (message: Message) => {
    for (const worker of Object.values(cluster.workers ?? {})) send(worker, message);
  };
  const fork = () => cluster.fork();
  // Node's own message removing a process from the listener goes first on the same channel, so
  // once every live process has said this, the primary has closed the listening socket.
  const tellIfAllStoppedListening = () => {
    const alive = Object.values(cluster.workers ?? {}).filter((w) => w && !w.isDead());
    if (stoppedListening.size > 0 && alive.every((w) => stoppedListening.has(w!.id))) broadcast({ type: 'inferd:all-stopped-listening' });
  };

  forwardSighup(log);
  cluster.on('message', (worker: Worker, message: unknown) => {
    if (!isMessage(message)) return;
    if (message.type === 'inferd:ready') {
      ready.add(worker.id);
      if (ready.size === processes) {
        log.info({ processes }, `all ${processes} server processes ready`);
        broadcast({ type: 'inferd:all-ready', value: true });
      }
    } else if (message.type === 'inferd:stopped-listening') {
      stoppedListening.add(worker.id);
      tellIfAllStoppedListening();
    } else if (message.type === 'inferd:metrics-request') {
      aggregator.clusterMetrics().then(
        (body) => send(worker, { type: 'inferd:metrics-response', id: message.id, body }),
        (error: Error) => send(worker, { type: 'inferd:metrics-response', id: message.id, error: error.message }),
      );
    }
  });

  return new Promise((resolve) => {
    cluster.on('exit', (worker, code, signal) => {
      const wasReady = ready.delete(worker.id);
      if (!stopping) {
        log.error({ pid: worker.process.pid, code, signal }, 'server process exited');
        if (!wasReady) {
          // It never got ready: the model cannot load. Retrying would fail the same way.
          exitCode = 1;
          stop('startup failure');
        } else {
          broadcast({ type: 'inferd:all-ready', value: false });
          fork();
        }
      } else if (code !== 0) {
        exitCode = 1;
      }
      const alive = Object.values(cluster.workers ?? {}).filter((w) => w && !w.isDead());
      if (stopping && alive.length === 0) resolve(exitCode);
      if (stopping) tellIfAllStoppedListening();
    });

    const stop = (reason: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ reason }, 'stopping every server process');
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
      setTimeout(() => {
        log.error({}, `server processes still running after ${shutdownTimeoutS} s; exiting`);
        resolve(1);
      }, (shutdownTimeoutS + 2) * 1000).unref();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    for (let i = 0; i < processes; i += 1) fork();
  });
}

/**
 * SIGHUP (reload the TLS certificate) reaches every server process. One not listening yet is
 * signalled once it listens: before, it may have no SIGHUP handler yet (Node's default kills
 * it), and it may have read the files before they changed.
 */
function forwardSighup(log: PrimaryLogger): void {
  const listening = new Set<number>();
  const pending = new Set<number>();
  process.on('SIGHUP', () => {
    log.info({ signal: 'SIGHUP' }, 'forwarding SIGHUP to every server process');
    for (const worker of Object.values(cluster.workers ?? {})) {
      if (worker && listening.has(worker.id)) worker.process.kill('SIGHUP');
      else if (worker) pending.add(worker.id);
    }
  });
  cluster.on('listening', (worker: Worker) => {
    listening.add(worker.id);
    if (pending.delete(worker.id)) worker.process.kill('SIGHUP');
  });
  cluster.on('exit', (worker: Worker) => {
    listening.delete(worker.id);
    pending.delete(worker.id);
  });
}

export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/** Runs in each server process of a cluster. */
export function joinCluster(registry: Registry): ClusterLink {
  // Constructing the aggregator installs prom-client's worker-side listener.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  let allReady = false;
  let allStoppedListening: () => void = () => {};
  const allStopped = new Promise<void>((resolve) => (allStoppedListening = resolve));
  let nextId = 0;
  const pending = new Map<number, { resolve: (body: string) => void; reject: (error: Error) => void }>();
  process.on('message', (message: unknown) => {
    if (!isMessage(message)) return;
    if (message.type === 'inferd:all-ready') allReady = message.value;
    else if (message.type === 'inferd:all-stopped-listening') allStoppedListening();
    else if (message.type === 'inferd:metrics-response') {
      const request = pending.get(message.id);
      pending.delete(message.id);
      if (message.body !== undefined) request?.resolve(message.body);
      else request?.reject(new Error(message.error ?? 'no metrics'));
    }
  });
  return {
    allReady: () => allReady,
    reportReady: () => process.send!({ type: 'inferd:ready' } satisfies Message),
    stoppedListening: () => {
      process.send!({ type: 'inferd:stopped-listening' } satisfies Message);
      return allStopped;
    },
    metrics: () =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        process.send!({ type: 'inferd:metrics-request', id } satisfies Message);
      }),
  };
}
