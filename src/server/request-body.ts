/**
 * Reading request bodies off the wire so that every client hears its answer. A server that
 * answers before it has read the body and then closes makes a client that is still writing see
 * a broken pipe instead of the answer (Node's fetch, Python's urllib do), so a refused body is
 * read and thrown away, up to a cap, before the refusal is sent. `Expect: 100-continue` is
 * answered only when a route actually reads the body, so a refused one is never sent at all.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import { contentCodingOf, decodeContent, type ContentCoding } from '../codecs/content-encoding.js';
import { InferdError, malformedBody } from '../errors.js';

export interface RequestBodySettings {
  /** Largest body for the buffered routes, in bytes, counted after decoding. */
  readonly maxBytes: number;
  /** How the limit reads in the 413's message. */
  readonly limitText: string;
  /** A refused body is read and discarded up to this many more bytes before the answer goes out... */
  readonly discardMaxBytes: number;
  /** ...and for at most this long; past either, the answer is sent and the connection closed. */
  readonly discardMaxMs: number;
}

export type BodyCallback = (error: Error | null, body?: Buffer) => void;

const clientGone = () => new InferdError('INFERD_ERR_CANCELLED', 'the client closed the connection before its body ended');

export class RequestBodies {
  readonly #settings: RequestBodySettings;
  /** Requests that asked `Expect: 100-continue` and have not been told to send their body yet. */
  readonly #awaitingContinue = new WeakMap<IncomingMessage, ServerResponse>();

  constructor(settings: RequestBodySettings) {
    this.#settings = settings;
  }

  /**
   * Takes over `checkContinue`: without a listener Node sends `100 Continue` before any route
   * has looked at the request, and the client then sends a body we may refuse.
   */
  handleExpectContinue(server: Server): void {
    server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
      this.#awaitingContinue.set(request, response);
      server.emit('request', request, response);
    });
  }

  tooLarge(): InferdError {
    return new InferdError('INFERD_ERR_PAYLOAD_TOO_LARGE', `the request body is larger than ${this.#settings.limitText}`);
  }

  /**
   * The whole body, decoded, for the buffered routes; 413 past `maxBytes`. Callback-style, as
   * Fastify's parsers are: a plain body, the hot path, costs no promise.
   */
  read(raw: IncomingMessage, done: BodyCallback): void {
    const coding = contentCodingOf(singleHeader(raw.headers['content-encoding']));
    // Bytes on the wire count too: a body sent larger than the limit is refused before it is read.
    if (Number(raw.headers['content-length']) > this.#settings.maxBytes) throw this.tooLarge();
    this.#continue(raw);
    if (coding === undefined) readPlain(raw, this.#settings.maxBytes, this, done);
    else this.#readDecoded(raw, coding).then((body) => done(null, body), done);
  }

  async #readDecoded(raw: IncomingMessage, coding: ContentCoding): Promise<Buffer> {
    const { maxBytes } = this.#settings;
    const chunks: Buffer[] = [];
    let bytes = 0;
    try {
      for await (const chunk of decodeContent(raw, coding)) {
        bytes += chunk.length;
        // Leaving the loop stops inflating at once: a bomb never grows past the limit in memory.
        if (bytes > maxBytes) throw this.tooLarge();
        chunks.push(chunk);
      }
    } catch (error) {
      throw error instanceof InferdError ? error : clientGone();
    }
    // The compressed stream has ended; the body must end with it. Bytes after it would
    // otherwise stay unread on the connection and be taken for the next request.
    if (!raw.complete && (await readRest(raw, Infinity, Infinity)).bytes > 0) {
      throw malformedBody(`the body goes on after the end of its ${coding} stream`);
    }
    return Buffer.concat(chunks, bytes);
  }

  /**
   * The body as a decoded stream, for routes that stream it elsewhere and apply limits of their
   * own (async). Lazy: nothing is read, and `100 Continue` is not sent, until the stream is read,
   * so a route may still refuse the request first. Destroying it leaves the request open, so an
   * answer can still reach the client after `discardRest`.
   */
  stream(raw: IncomingMessage): Readable {
    const coding = contentCodingOf(singleHeader(raw.headers['content-encoding']));
    return Readable.from(this.#chunks(raw, coding));
  }

  async *#chunks(raw: IncomingMessage, coding: ContentCoding | undefined): AsyncGenerator<Buffer> {
    this.#continue(raw);
    if (coding !== undefined) {
      yield* decodeContent(raw, coding);
      return;
    }
    // Iterating `raw` itself would destroy it (and the socket) when the consumer stops early.
    const body = new PassThrough();
    const onError = (error: Error) => body.destroy(error);
    raw.once('error', onError);
    raw.pipe(body);
    try {
      for await (const chunk of body) yield chunk as Buffer;
    } finally {
      raw.off('error', onError);
      raw.unpipe(body);
      body.destroy();
    }
  }

  /**
   * Before an answer that did not take the whole body: reads what is left of it and throws it
   * away, so a client still writing reaches the point where it reads our answer. Past the cap
   * the answer goes out anyway. Resolves true when the whole body has been read; false means the
   * connection must close, or what is left of the body would be read as the next request.
   */
  async discardRest(raw: IncomingMessage): Promise<boolean> {
    if (raw.complete) return true;
    // Never told to send it: the client waits for our answer, not for us to read.
    if (this.#awaitingContinue.has(raw) || raw.destroyed) return false;
    return (await readRest(raw, this.#settings.discardMaxBytes, this.#settings.discardMaxMs)).complete;
  }

  #continue(raw: IncomingMessage): void {
    const response = this.#awaitingContinue.get(raw);
    if (response === undefined) return;
    this.#awaitingContinue.delete(raw);
    response.writeContinue();
  }
}

const singleHeader = (value: string | string[] | undefined) => (Array.isArray(value) ? value.join(',') : value);

/** Reads and drops the rest of `raw`, up to `maxBytes` or `maxMs`, whichever comes first. */
function readRest(raw: IncomingMessage, maxBytes: number, maxMs: number): Promise<{ bytes: number; complete: boolean }> {
  return new Promise((resolve) => {
    let bytes = 0;
    const finish = () => {
      clearTimeout(timer);
      raw.off('data', onData);
      raw.off('end', finish);
      raw.off('error', finish);
      raw.off('close', finish);
      resolve({ bytes, complete: raw.complete });
    };
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > maxBytes) finish();
    };
    const timer = Number.isFinite(maxMs) ? setTimeout(finish, maxMs) : undefined;
    raw.on('data', onData);
    raw.once('end', finish);
    raw.once('error', finish);
    raw.once('close', finish);
    raw.resume();
  });
}

/**
 * The hot path, as Fastify's own parser reads: chunks gathered, one copy at the end (always a
 * copy: the chunks may be views of the socket's read buffer).
 */
function readPlain(raw: IncomingMessage, maxBytes: number, bodies: RequestBodies, done: BodyCallback): void {
  const chunks: Buffer[] = [];
  let bytes = 0;
  const cleanup = () => {
    raw.off('data', onData);
    raw.off('end', onEnd);
    raw.off('error', onGone);
    raw.off('close', onGone);
  };
  function onData(chunk: Buffer) {
    bytes += chunk.length;
    if (bytes > maxBytes) {
      cleanup();
      // Paused until `discardRest` takes the rest.
      raw.pause();
      done(bodies.tooLarge());
      return;
    }
    chunks.push(chunk);
  }
  function onEnd() {
    cleanup();
    done(null, Buffer.concat(chunks, bytes));
  }
  // An error, or 'close' before 'end': the client went away mid-body.
  function onGone() {
    cleanup();
    done(clientGone());
  }
  if (raw.readableEnded || raw.destroyed) return done(clientGone());
  // `on`, not `once`: each handler removes all four first, and `once` wraps each in a closure.
  raw.on('data', onData);
  raw.on('end', onEnd);
  raw.on('error', onGone);
  raw.on('close', onGone);
}
