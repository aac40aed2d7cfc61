/**
 * At most `size` models load at once, in the order they asked. Loads are CPU-bound (graph
 * optimisation, warm-up): more at once only share the cores.
 */
export class LoadSlots {
  #free: number;
  readonly #waiting: Array<() => void> = [];

  constructor(size: number) {
    this.#free = size;
  }

  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free -= 1;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  /** The slot passes straight to the next load in line, or is freed. */
  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free += 1;
  }
}
