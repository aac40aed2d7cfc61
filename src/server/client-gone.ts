import type { FastifyReply } from 'fastify';

/**
 * Tells whether the client went away before its response was written. Node marks a response
 * destroyed when its socket closes, so nothing is listened for per request; it is asked only
 * before the answer is written, when "destroyed" can only mean the client left.
 */
export function clientGone(reply: FastifyReply): () => boolean {
  const response = reply.raw;
  return () => response.destroyed;
}
