/**
 * Data capture as the server sees it: decide sampling before any body byte is kept, then hand
 * each sampled exchange over as a SageMaker capture record. Never throws into the request path.
 */
import type { Config } from '../config/schema.js';
import type { ObjectStore } from '../storage/object-store.js';
import { buildCaptureRecord, type CapturedExchange, type RecordFormat } from './capture-record.js';
import { CaptureWriter, type CaptureObserver } from './capture-writer.js';
import { Spool } from './spool.js';

export interface DataCaptureObserver extends CaptureObserver {
  sampledOut(): void;
}

/** SIGTERM leaves 25 s; capture gets most of what HTTP draining does not use. */
const CLOSE_BUDGET_MS = 15_000;

export class DataCapture {
  readonly #percentage: number;
  readonly #format: RecordFormat;
  readonly #writer: CaptureWriter;
  readonly #observer: DataCaptureObserver;

  constructor(
    settings: Config['capture'],
    store: ObjectStore,
    observer: DataCaptureObserver,
    log: { warn(object: object, message: string): void },
  ) {
    this.#percentage = settings.samplingPercentage;
    this.#format = settings;
    this.#observer = observer;
    this.#writer = new CaptureWriter({
      store,
      spool: new Spool(settings.spoolDir, settings.spoolMaxBytes),
      prefixUri: `${settings.destination!.replace(/\/+$/, '')}/${settings.endpointName}/${settings.variantName}`,
      kmsKeyId: settings.kmsKeyId,
      flushIntervalMs: settings.flushIntervalMs,
      flushSizeBytes: settings.flushSizeBytes,
      bufferMaxBytes: settings.bufferMaxBytes,
      observer,
      log,
    });
  }

  start(): Promise<void> {
    return this.#writer.start();
  }

  get spoolBytes(): number {
    return this.#writer.spoolBytes;
  }

  /** Called once per invocation before its body is read. */
  sample(): boolean {
    const sampled = this.#percentage >= 100 || Math.random() * 100 < this.#percentage;
    if (!sampled) this.#observer.sampledOut();
    return sampled;
  }

  record(exchange: CapturedExchange): void {
    this.#writer.offer(JSON.stringify(buildCaptureRecord(exchange, this.#format)), exchange.time);
  }

  flush(): Promise<void> {
    return this.#writer.flush();
  }

  close(): Promise<void> {
    return this.#writer.close(CLOSE_BUDGET_MS);
  }
}
