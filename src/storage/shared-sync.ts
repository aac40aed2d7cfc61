/**
 * One fsync shared by everyone who needs it: a caller that arrives while a sync runs (which may
 * have begun before its write) waits for the next one, and every caller arriving meanwhile
 * shares that one. N concurrent writers then pay one or two syncs, not N, and the disk's sync
 * latency bounds how often a sync runs, not how many writes it covers.
 */
export class SharedSync {
  readonly #sync: () => Promise<void>;
  readonly #onIdle: (() => void) | undefined;
  #running: Promise<void> | undefined;
  #queued: Promise<void> | undefined;

  /** `onIdle` is called when the last sync requested has ended. */
  constructor(sync: () => Promise<void>, onIdle?: () => void) {
    this.#sync = sync;
    this.#onIdle = onIdle;
  }

  /** Resolves once a sync that began after this call has completed. */
  request(): Promise<void> {
    if (!this.#running) return this.#start();
    this.#queued ??= this.#running.then(
      () => this.#start(),
      () => this.#start(),
    );
    return this.#queued;
  }

  /** Resolves when no sync runs or waits to run (never rejects). */
  async idle(): Promise<void> {
    while (this.#running) await (this.#queued ?? this.#running).catch(() => undefined);
  }

  #start(): Promise<void> {
    this.#queued = undefined;
    const running = this.#sync().finally(() => {
      if (this.#running !== running) return;
      this.#running = undefined;
      if (this.#queued === undefined) this.#onIdle?.();
    });
    this.#running = running;
    return running;
  }
}
