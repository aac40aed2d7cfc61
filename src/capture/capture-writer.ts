/**
 * Off the request path: records wait in a bounded buffer, grouped by hour folder, and are
 * written as one object per group when the buffer reaches flushSizeBytes or flushIntervalMs
 * passes. An object that cannot be uploaded goes to the spool and is retried with backoff;
 * records are dropped, and counted, only when both the buffer and the spool are full.
 */
import type { ObjectStore } from '../storage/object-store.js';
import { hourFolder, objectName } from './capture-record.js';
import type { Spool } from './spool.js';

/** What the writer reports; metrics implement it. */
export interface CaptureObserver {
  captured(records: number): void;
  dropped(records: number): void;
  spooled(records: number): void;
  uploadFailed(): void;
  uploaded(latencyMs: number): void;
}

export interface CaptureWriterOptions {
  readonly store: ObjectStore;
  readonly spool: Spool;
  /** `<destination>/<endpoint>/<variant>`, without a trailing slash. */
  readonly prefixUri: string;
  readonly kmsKeyId: string | undefined;
  readonly flushIntervalMs: number;
  readonly flushSizeBytes: number;
  readonly bufferMaxBytes: number;
  readonly observer: CaptureObserver;
  readonly log: { warn(object: object, message: string): void };
}

interface Group {
  readonly time: Date;
  readonly lines: string[];
  bytes: number;
}

const MIN_BACKOFF_MS = 500;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
const MAX_BACKOFF_MS = 60_000;

export class CaptureWriter {
  readonly #options: CaptureWriterOptions;
  #groups = new Map<string, Group>();
  /** Buffered and being uploaded: what the memory bound covers. */
  #heldBytes = 0;
  #flushTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #backoffMs = MIN_BACKOFF_MS;
  #writes = new Set<Promise<void>>();
  /** The one spool drain running, if any: two at once would upload objects twice. */
  #draining: Promise<boolean> | undefined;
  #closing = false;

  constructor(options: CaptureWriterOptions) {
    this.#options = options;
  }

  /** Opens the spool and uploads what a previous run left there. */
  async start(): Promise<void> {
    await this.#options.spool.open();
    this.#flushTimer = setInterval(() => void this.flush(), this.#options.flushIntervalMs).unref();
    if (this.#options.spool.bytes > 0) this.#scheduleRetry(0);
  }

  get spoolBytes(): number {
    return this.#options.spool.bytes;
  }

  offer(line: string, time: Date): void {
    const bytes = Buffer.byteLength(line) + 1;
    if (this.#heldBytes + bytes > this.#options.bufferMaxBytes) {
      this.#options.observer.dropped(1);
      return;
    }
    const folder = hourFolder(time);
    let group = this.#groups.get(folder);
    if (!group) this.#groups.set(folder, (group = { time, lines: [], bytes: 0 }));
    group.lines.push(line);
    group.bytes += bytes;
    this.#heldBytes += bytes;
    this.#options.observer.captured(1);
    if (this.#bufferedBytes() >= this.#options.flushSizeBytes) void this.flush();
  }

  /** Writes every buffered group as one object each; resolves once uploaded or spooled. */
  async flush(): Promise<void> {
    const groups = [...this.#groups.entries()];
    this.#groups = new Map();
    for (const [folder, group] of groups) {
      const write = this.#write(`${this.#options.prefixUri}/${folder}/${objectName(group.time)}`, group);
      this.#writes.add(write);
      void write.finally(() => this.#writes.delete(write));
    }
    await Promise.all([...this.#writes]);
  }

  /**
   * Flushes, then keeps retrying the spool until it is empty or the budget is spent; what is
   * left stays spooled for the next start.
   */
  async close(budgetMs: number): Promise<void> {
    this.#closing = true;
    clearInterval(this.#flushTimer);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const deadline = Date.now() + budgetMs;
    const work = (async () => {
      await this.flush();
      while (this.#options.spool.bytes > 0 && Date.now() < deadline) {
        if (await this.#drain()) break;
        await sleep(Math.min(this.#backoffMs, Math.max(0, deadline - Date.now())));
      }
    })();
    // Past the budget, what is not uploaded stays in the spool for the next start.
    await Promise.race([work, sleep(budgetMs)]);
  }

  #bufferedBytes(): number {
    let bytes = 0;
    for (const group of this.#groups.values()) bytes += group.bytes;
    return bytes;
  }

  /** Never rejects: capture failures are counted and logged, never thrown at the server. */
  async #write(uri: string, group: Group): Promise<void> {
    const body = `${group.lines.join('\n')}\n`;
    try {
      if (await this.#upload(uri, body)) return;
      if (await this.#options.spool.write(uri, body)) {
        this.#options.observer.spooled(group.lines.length);
        this.#scheduleRetry(this.#backoffMs);
        return;
      }
      this.#options.log.warn({ records: group.lines.length }, 'capture buffer and spool are full: records dropped');
    } catch (error) {
      this.#options.log.warn({ records: group.lines.length, err: (error as Error).message }, 'capture spool write failed: records dropped');
    } finally {
      this.#heldBytes -= group.bytes;
    }
    this.#options.observer.dropped(group.lines.length);
  }

  async #upload(uri: string, body: string): Promise<boolean> {
    const started = performance.now();
    try {
      await this.#options.store.put(uri, body, { contentType: 'application/jsonlines', kmsKeyId: this.#options.kmsKeyId });
      this.#options.observer.uploaded(performance.now() - started);
      return true;
    } catch (error) {
      this.#options.observer.uploadFailed();
      this.#options.log.warn({ uri, err: (error as Error).message }, 'capture upload failed; spooling');
      return false;
    }
  }

  #scheduleRetry(delayMs: number): void {
    if (this.#retryTimer || this.#closing) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#drain().then((empty) => {
        if (!empty) this.#scheduleRetry(this.#backoffMs);
      });
    }, delayMs);
    this.#retryTimer.unref();
  }

  #drain(): Promise<boolean> {
    this.#draining ??= this.#drainSpool().finally(() => {
      this.#draining = undefined;
    });
    return this.#draining;
  }

  /** Uploads spooled objects in order; true when the spool is empty, false at the first failure. */
  async #drainSpool(): Promise<boolean> {
    try {
      for await (const object of this.#options.spool.objects()) {
        if (!(await this.#upload(object.uri, object.body))) {
          this.#backoffMs = Math.min(this.#backoffMs * 2, MAX_BACKOFF_MS);
          return false;
        }
        await this.#options.spool.remove(object);
      }
    } catch (error) {
      this.#options.log.warn({ err: (error as Error).message }, 'capture spool cannot be read; retrying later');
      return false;
    }
    this.#backoffMs = MIN_BACKOFF_MS;
    return true;
  }
}
