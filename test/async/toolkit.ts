/** What the async tests share: a real HTTP listener for webhooks, and polling a request's status. */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export interface Delivery {
  readonly path: string;
  readonly body: unknown;
}

export interface WebhookListener {
  url(path: string): string;
  /** Every notification received so far, in order, including refused ones (`refused: true`). */
  readonly deliveries: (Delivery & { readonly refused: boolean })[];
  /** Answers the next `count` POSTs to `path` with 500. */
  failNext(path: string, count: number): void;
  /** The first accepted delivery to `path` about `inferenceId`. */
  waitFor(path: string, inferenceId: string, timeoutMs?: number): Promise<Delivery>;
  close(): Promise<void>;
}

export async function startWebhookListener(): Promise<WebhookListener> {
  const deliveries: (Delivery & { refused: boolean })[] = [];
  const failures = new Map<string, number>();
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const path = request.url ?? '/';
      const left = failures.get(path) ?? 0;
      const refused = left > 0;
      if (refused) failures.set(path, left - 1);
      deliveries.push({ path, body: JSON.parse(Buffer.concat(chunks).toString('utf8')), refused });
      response.statusCode = refused ? 500 : 204;
      response.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const find = (path: string, inferenceId: string) =>
    deliveries.find((d) => !d.refused && d.path === path && (d.body as { inferenceId?: string }).inferenceId === inferenceId);
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    deliveries,
    failNext: (path, count) => failures.set(path, count),
    async waitFor(path, inferenceId, timeoutMs = 20_000) {
      return until(() => find(path, inferenceId), timeoutMs, `a notification to ${path} about ${inferenceId}`);
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Polls `probe` until it returns something, or fails after `timeoutMs`. */
export async function until<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface AsyncAnswer {
  readonly status: number;
  readonly json: Record<string, unknown>;
  readonly headers: Headers;
}

export async function submitAsync(baseUrl: string, headers: Record<string, string>, body?: string | Uint8Array, path = '/async-invocations'): Promise<AsyncAnswer> {
  const response = await fetch(`${baseUrl}${path}`, { method: 'POST', headers, ...(body === undefined ? {} : { body }) });
  return { status: response.status, json: (await response.json()) as Record<string, unknown>, headers: response.headers };
}

export interface StatusBody {
  readonly inferenceId: string;
  readonly status: 'queued' | 'running' | 'completed' | 'failed' | 'expired';
  readonly outputLocation: string;
  readonly failureLocation: string;
  readonly failureReason?: string;
  readonly attempts: number;
  readonly receivedTime: string;
  readonly startedTime?: string;
  readonly finishedTime?: string;
}

export async function asyncStatus(baseUrl: string, inferenceId: string): Promise<StatusBody | undefined> {
  const response = await fetch(`${baseUrl}/async-invocations/${encodeURIComponent(inferenceId)}`);
  if (response.status === 404) return undefined;
  return (await response.json()) as StatusBody;
}

/** Waits until the request is finished (completed, failed or expired). */
export async function finished(baseUrl: string, inferenceId: string, timeoutMs = 30_000): Promise<StatusBody> {
  return until(
    async () => {
      const status = await asyncStatus(baseUrl, inferenceId);
      return status && ['completed', 'failed', 'expired'].includes(status.status) ? status : undefined;
    },
    timeoutMs,
    `async request ${inferenceId} to finish`,
  );
}

/** A counter's value in a Prometheus exposition (0 when absent). */
export function counterValue(exposition: string, series: string): number {
  const line = exposition.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}
