import type { FastifyReply } from 'fastify';

/** Tells whether the client went away before its response was written. */
export function clientGone(reply: FastifyReply): () => boolean {
  let gone = false;
  reply.raw.once('close', () => {
    gone = !reply.raw.writableFinished;
  });
  return () => gone;
}
