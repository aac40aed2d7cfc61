/**
 * What a transform job tells its operator: on a terminal, one line redrawn in place (records,
 * bytes, rate, ETA); otherwise plain lines, one per file and one every few seconds, for logs.
 */
import type { InputObject } from './inputs.js';
import type { TransformProgress } from './job.js';

export interface ProgressOutput {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

const REDRAW_MS = 250;
const LOG_EVERY_MS = 10_000;
const BAR_WIDTH = 24;
const MB = 1024 * 1024;

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export class ConsoleProgress implements TransformProgress {
  readonly #out: ProgressOutput;
  readonly #tty: boolean;
  #files = 0;
  #filesEnded = 0;
  #totalBytes = 0;
  #bytes = 0;
  #records = 0;
  #started = performance.now();
  #timer: NodeJS.Timeout | undefined;

  constructor(out: ProgressOutput) {
    this.#out = out;
    this.#tty = out.isTTY === true;
  }

  start(files: number, bytes: number): void {
    this.#files = files;
    this.#totalBytes = bytes;
    this.#started = performance.now();
    this.#line(`transforming ${files} file(s), ${(bytes / MB).toFixed(1)} MB`);
    this.#timer = setInterval(() => this.#report(), this.#tty ? REDRAW_MS : LOG_EVERY_MS);
    this.#timer.unref();
  }

  bytesRead(bytes: number): void {
    this.#bytes += bytes;
  }

  recordsDone(records: number): void {
    this.#records += records;
  }

  fileDone(input: InputObject, outcome: 'done' | 'skipped' | 'failed', detail?: string): void {
    this.#filesEnded++;
    // Its bytes will never be read: the bar measures the work that is left to do.
    if (outcome === 'skipped') this.#totalBytes -= input.sizeBytes;
    if (outcome === 'skipped') this.#line(`skipped ${input.uri}: its .out exists (--overwrite redoes it)`);
    else if (outcome === 'failed') this.#line(`FAILED ${input.uri}: ${detail ?? ''}`);
    else if (!this.#tty) this.#line(`done ${input.uri}`);
  }

  /** Stops reporting; the caller prints the summary. */
  stop(): void {
    clearInterval(this.#timer);
    this.#report();
    if (this.#tty) this.#out.write('\n');
  }

  #status(): string {
    const seconds = (performance.now() - this.#started) / 1000;
    const rate = seconds > 0 ? this.#records / seconds : 0;
    const share = this.#totalBytes > 0 ? Math.min(1, this.#bytes / this.#totalBytes) : undefined;
    const eta = share !== undefined && share > 0 ? (seconds / share) * (1 - share) : Number.NaN;
    const filled = Math.round((share ?? 0) * BAR_WIDTH);
    const bar = share === undefined ? '' : `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${(share * 100).toFixed(0)}% `;
    return (
      `${bar}files ${this.#filesEnded}/${this.#files}, ${this.#records.toLocaleString('en-US')} records, ` +
      // A manifest's objects are not sized up front: then only what was read is known.
      `${(this.#bytes / MB).toFixed(1)}${this.#totalBytes > 0 ? `/${(this.#totalBytes / MB).toFixed(1)}` : ''} MB, ` +
      `${Math.round(rate).toLocaleString('en-US')} records/s, ETA ${duration(eta)}`
    );
  }

  #report(): void {
    if (this.#tty) this.#out.write(`\r\x1b[2K${this.#status()}`);
    else this.#out.write(`progress: ${this.#status()}\n`);
  }

  #line(text: string): void {
    this.#out.write(this.#tty ? `\r\x1b[2K${text}\n` : `${text}\n`);
  }
}
