/**
 * Wakes whoever waits for something to change (a load waiting for room under the memory
 * budget): many notifications in one turn of the event loop wake them once, after the turn, so
 * that the notifier's own bookkeeping (a batch just finished) is done when they look.
 */
export class ChangeSignal {
  readonly #waiters = new Set<() => void>();
  #pending = false;

  /** Resolves at the next change, or after `timeoutMs`. */
  wait(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const waiters = this.#waiters;
      const timer = setTimeout(wake, timeoutMs);
      function wake() {
        clearTimeout(timer);
        waiters.delete(wake);
        resolve();
      }
      waiters.add(wake);
    });
  }

  notify(): void {
    if (this.#waiters.size === 0 || this.#pending) return;
    this.#pending = true;
    setImmediate(() => {
      this.#pending = false;
      for (const wake of [...this.#waiters]) wake();
    });
  }
}
