/**
 * Delivers notifications to the success and error webhooks: POSTed as JSON, retried with
 * exponential backoff when the listener fails or cannot be reached, never awaited by the queue.
 * A notification that still fails after its last attempt is dropped and counted; so is one that
 * finds the retry list full (a listener down for long must not grow memory without bound).
 */
import type { Logger } from 'pino';
import type { InferenceNotification } from './notification.js';

export interface WebhookSettings {
  readonly successUrl?: string | undefined;
  readonly errorUrl?: string | undefined;
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  /** Wait before the first retry; doubled each retry up to `maxDelayMs`. */
  readonly firstRetryDelayMs: number;
  readonly maxDelayMs: number;
  /** One POST's time limit. */
  readonly attemptTimeoutMs: number;
  /** Notifications waiting for a retry at most; more are dropped and counted. */
  readonly maxPending: number;
}

export const DEFAULT_WEBHOOK_SETTINGS = {
  maxAttempts: 6,
  firstRetryDelayMs: 500,
  maxDelayMs: 30_000,
  attemptTimeoutMs: 10_000,
  maxPending: 10_000,
} as const;

export type WebhookOutcome = 'delivered' | 'retried' | 'failed' | 'dropped';

export class Webhooks {
  readonly #settings: WebhookSettings;
  readonly #count: (outcome: WebhookOutcome) => void;
  readonly #log: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #closed = false;

  constructor(settings: WebhookSettings, count: (outcome: WebhookOutcome) => void, log: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>) {
    this.#settings = settings;
    this.#count = count;
    this.#log = log;
  }

  /** Sends in the background; returns at once. */
  send(notification: InferenceNotification): void {
    const url = notification.invocationStatus === 'Completed' ? this.#settings.successUrl : this.#settings.errorUrl;
    if (url === undefined || this.#closed) return;
    this.#attempt(url, JSON.stringify(notification), notification.inferenceId, 1);
  }

  #attempt(url: string, body: string, inferenceId: string, attempt: number): void {
    const delivery = this.#post(url, body).then((problem) => {
      this.#inFlight.delete(delivery);
      if (problem === undefined) return this.#count('delivered');
      if (attempt >= this.#settings.maxAttempts || this.#closed) {
        this.#log.warn({ inferenceId, url, attempts: attempt, problem }, 'async notification not delivered');
        return this.#count('failed');
      }
      if (this.#timers.size >= this.#settings.maxPending) {
        this.#log.warn({ inferenceId, url, problem }, 'async notification dropped: too many waiting for a retry');
        return this.#count('dropped');
      }
      this.#count('retried');
      const delayMs = Math.min(this.#settings.firstRetryDelayMs * 2 ** (attempt - 1), this.#settings.maxDelayMs);
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.#attempt(url, body, inferenceId, attempt + 1);
      }, delayMs);
      this.#timers.add(timer);
    });
    this.#inFlight.add(delivery);
  }

  /** Undefined when delivered, else what went wrong. */
  async #post(url: string, body: string): Promise<string | undefined> {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(this.#settings.attemptTimeoutMs),
      });
      await response.body?.cancel();
      return response.ok ? undefined : `HTTP ${response.status}`;
    } catch (error) {
      return String((error as Error).cause ?? error);
    }
  }

  /** Waits for the POSTs in flight; retries not yet due are given up (and counted as failed). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers) {
      clearTimeout(timer);
      this.#count('failed');
    }
    this.#timers.clear();
    await Promise.all(this.#inFlight);
  }
}
