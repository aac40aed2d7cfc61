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
import { InferdError } from '../errors.js';

export interface RequestBodySettings {
  /** Largest body for the buffered routes, in bytes, counted after decoding. */
  readonly maxBytes: number;
  /** How the limit reads in the 413's message. */
  readonly limitText: string;
  /** A refused body is read and discarded up to this many bytes before the answer goes out... */
  readonly discardMaxBytes: number;
  /** ...and for at most this long; past either, the answer is sent and the connection closed. */
  readonly discardMaxMs: number;
}

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
   * The whole body, decoded, for the buffered routes; 413 past `maxBytes`. Not async: a refusal
   * is thrown at once, and a plain body costs no more promises than it must.
   */
  read(raw: IncomingMessage): Promise<Buffer> {
    const coding = contentCodingOf(singleHeader(raw.headers['content-encoding']));
    const { maxBytes } = this.#settings;
    // Bytes on the wire count too: a body sent larger than the limit is refused before it is read.
    if (Number(raw.headers['content-length']) > maxBytes) throw this.tooLarge();
    this.#continue(raw);
    return coding === undefined ? readPlain(raw, maxBytes, () => this.tooLarge()) : this.#readDecoded(raw, coding);
  }

  async #readDecoded(raw: IncomingMessage, coding: ContentCoding): Promise<Buffer> {
    const { maxBytes } = this.#settings;
    const chunks: Buffer[] = [];
    let bytes = 0;
    for await (const chunk of decodeContent(raw, coding)) {
      bytes += chunk.length;
      // Leaving the loop stops inflating at once: a bomb never grows past the limit in memory.
      if (bytes > maxBytes) throw this.tooLarge();
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, bytes);
  }

  /**
   * The body as a decoded stream, for routes that stream it elsewhere and apply limits of their
   * own (async). Destroying the stream leaves the request open, so the refusal can still reach
   * the client after `discardRest`.
   */
  stream(raw: IncomingMessage): Readable {
    const coding = contentCodingOf(singleHeader(raw.headers['content-encoding']));
    this.#continue(raw);
    if (coding !== undefined) return Readable.from(decodeContent(raw, coding));
    const body = new PassThrough();
    raw.once('error', (error) => body.destroy(error));
    return raw.pipe(body);
  }

  /**
   * Before an answer that did not take the body: reads what is left of it and throws it away,
   * so a client still writing reaches the point where it reads our answer. Past the cap the
   * answer goes out anyway and the connection must close under the rest. Resolves true when the
   * whole body has been read, so the connection can carry another request.
   */
  discardRest(raw: IncomingMessage): Promise<boolean> {
    if (raw.complete) return Promise.resolve(true);
    // Never told to send it: the client waits for our answer, not for us to read.
    if (this.#awaitingContinue.has(raw) || raw.destroyed) return Promise.resolve(false);
    const { discardMaxBytes, discardMaxMs } = this.#settings;
    return new Promise((resolve) => {
      let bytes = 0;
      const finish = () => {
        clearTimeout(timer);
        raw.off('data', onData);
        raw.off('end', finish);
        raw.off('error', finish);
        raw.off('close', finish);
        resolve(raw.complete);
      };
      const onData = (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > discardMaxBytes) finish();
      };
      const timer = setTimeout(finish, discardMaxMs);
      raw.on('data', onData);
      raw.once('end', finish);
      raw.once('error', finish);
      raw.once('close', finish);
      raw.resume();
    });
  }

  #continue(raw: IncomingMessage): void {
    const response = this.#awaitingContinue.get(raw);
    if (response === undefined) return;
    this.#awaitingContinue.delete(raw);
    response.writeContinue();
  }
}

const singleHeader = (value: string | string[] | undefined) => (Array.isArray(value) ? value.join(',') : value);

/**
 * The hot path, as Fastify's own parser reads: chunks gathered, one copy at the end (always a
 * copy: the chunks may be views of the socket's read buffer).
 */
function readPlain(raw: IncomingMessage, maxBytes: number, tooLarge: () => InferdError): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const cleanup = () => {
      raw.off('data', onData);
      raw.off('end', onEnd);
      raw.off('error', onError);
      raw.off('close', onError);
    };
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > maxBytes) {
        cleanup();
        // Paused until `discardRest` takes the rest.
        raw.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, bytes));
    };
    // 'close' before 'end': the client went away mid-body.
    const onError = (error?: Error) => {
      cleanup();
      reject(error ?? new Error('the client closed the connection before the body ended'));
    };
    raw.on('data', onData);
    raw.once('end', onEnd);
    raw.once('error', onError);
    raw.once('close', onError);
  });
}
