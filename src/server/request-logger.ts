/**
 * Each request's logger. Fastify makes a child of the server's logger for every request, and
 * pino serializes a child's bindings as it makes it; at thousands of requests a second almost
 * none of them log. So a request gets a deferred child: its bindings are kept, and pino's child
 * is made the first time the request logs at a level that is on (a child of it, likewise).
 */
import { LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Bindings, ChildLoggerOptions, Level, Logger } from 'pino';

class DeferredChildLogger {
  /** The server's logger, or the deferred child this one is a child of. */
  readonly #parent: Logger | DeferredChildLogger;
  readonly #bindings: Bindings;
  readonly #options: ChildLoggerOptions | undefined;
  #made: FastifyBaseLogger | undefined;

  constructor(parent: Logger | DeferredChildLogger, bindings: Bindings, options: ChildLoggerOptions | undefined) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  #logger(): FastifyBaseLogger {
    if (this.#made === undefined) {
      const parent = this.#parent instanceof DeferredChildLogger ? this.#parent.#logger() : this.#parent;
      this.#made = parent.child(this.#bindings, this.#options);
    }
    return this.#made;
  }

  /** A child given a level of its own (a route's `logLevel`) answers with pino's child. */
  isLevelEnabled(level: Level): boolean {
    if (this.#made === undefined && this.#options?.level === undefined) return this.#parent.isLevelEnabled(level);
    return (this.#logger() as Logger).isLevelEnabled(level);
  }

  get level(): string {
    return this.#made?.level ?? this.#options?.level ?? this.#parent.level;
  }

  set level(level: string) {
    this.#logger().level = level;
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return new DeferredChildLogger(this, bindings, options) as unknown as FastifyBaseLogger;
  }

  fatal(...args: unknown[]): void {
    this.#log('fatal', args);
  }

  error(...args: unknown[]): void {
    this.#log('error', args);
  }

  warn(...args: unknown[]): void {
    this.#log('warn', args);
  }

  info(...args: unknown[]): void {
    this.#log('info', args);
  }

  debug(...args: unknown[]): void {
    this.#log('debug', args);
  }

  trace(...args: unknown[]): void {
    this.#log('trace', args);
  }

  #log(level: Level, args: unknown[]): void {
    if (this.isLevelEnabled(level)) (this.#logger()[level] as (...a: unknown[]) => void)(...args);
  }

  silent(): void {}
}

/** Fastify's `childLoggerFactory`: a deferred child of the server's (pino) logger. */
export function deferredChildLogger(logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  return new DeferredChildLogger(logger as Logger, bindings, options) as unknown as FastifyBaseLogger;
}

/**
 * One debug line per request once it is answered, named by the SageMaker inference id when the
 * client sent one; nothing for /ping, which SageMaker calls every few seconds.
 */
export class RequestLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (request.url === '/ping' || !(request.log as unknown as Logger).isLevelEnabled('debug')) return;
    request.log.debug({ status: reply.statusCode, ms: reply.elapsedTime, err: error ?? undefined }, 'request completed');
  }
}
