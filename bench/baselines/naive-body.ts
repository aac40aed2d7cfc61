/**
 * Body parsing as an afternoon's server does it, shared by both baselines so that they parse
 * exactly the same way: Fastify's JSON parser, CSV split on newlines and commas, .npy as bytes.
 */
import type { FastifyInstance } from 'fastify';
import { parseArgs } from 'node:util';

export const BODY_LIMIT_BYTES = 6 * 1024 * 1024;

export function registerNaiveParsers(app: FastifyInstance): void {
  app.addContentTypeParser('text/csv', { parseAs: 'string' }, (_request, body, done) => {
    done(null, (body as string).trim().split('\n').map((line) => line.split(',')));
  });
  app.addContentTypeParser('application/x-npy', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
}

/** `--port N` (else $PORT, else 8080) and the server's other `--name value` flags. */
export function readServerArgs(names: readonly string[]): { port: number; flags: Record<string, string | undefined> } {
  const { values } = parseArgs({ options: Object.fromEntries(['port', ...names].map((name) => [name, { type: 'string' as const }])) });
  const flags = values as Record<string, string | undefined>;
  return { port: Number(flags.port ?? process.env.PORT ?? 8080), flags };
}
