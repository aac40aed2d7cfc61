/**
 * A signed body checked against the SHA-256 its signature covers (`X-Amz-Content-SHA256`). The
 * buffered routes check it whole before their handler runs (install-auth.ts); the async route
 * streams its body to storage, so the check runs as it streams and fails the stream at its end:
 * the staging write fails with it and nothing is queued.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import { payloadMismatch } from './sigv4.js';

const expected = new WeakMap<FastifyRequest, string>();

/** Records the SHA-256 (hex) the body of `request` must have. */
export function expectPayload(request: FastifyRequest, sha256: string): void {
  expected.set(request, sha256);
}

export function expectedPayloadOf(request: FastifyRequest): string | undefined {
  return expected.get(request);
}

/**
 * `body` as it streams, failing at its end if the request's signed hash does not match it. Lazy:
 * nothing is read (and no `100 Continue` sent) until the route reads it.
 */
export function verifiedBody(request: FastifyRequest, body: Readable): Readable {
  const sha256 = expected.get(request);
  if (sha256 === undefined) return body;
  async function* checked(): AsyncGenerator<Buffer> {
    const hash = createHash('sha256');
    for await (const chunk of body as AsyncIterable<Buffer>) {
      hash.update(chunk);
      yield chunk;
    }
    if (hash.digest('hex') !== sha256) throw payloadMismatch();
  }
  const stream = Readable.from(checked(), { objectMode: false });
  // Destroying the checked stream (the route does, when it is done) destroys the body too.
  stream.once('close', () => body.destroy());
  return stream;
}
