/**
 * A signed body checked against the SHA-256 its signature covers (`X-Amz-Content-SHA256`). The
 * buffered routes check it whole before their handler runs (install-auth.ts); the async route
 * streams its body to storage, so the check runs as it streams and fails the stream at its end:
 * the staging write fails with it and nothing is queued.
 */
import { createHash } from 'node:crypto';
import { pipeline, Transform, type Readable } from 'node:stream';
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

/** `body` as it streams, failing at its end if the request's signed hash does not match it. */
export function verifiedBody(request: FastifyRequest, body: Readable): Readable {
  const sha256 = expected.get(request);
  if (sha256 === undefined) return body;
  const hash = createHash('sha256');
  const checked = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      callback(null, chunk);
    },
    flush(callback) {
      callback(hash.digest('hex') === sha256 ? null : payloadMismatch());
    },
  });
  // Destroying the checked stream (the route does, when it is done) destroys the body too.
  pipeline(body, checked, () => {});
  return checked;
}
