/**
 * The batched reference (batched-app.ts) on a port, as bench/batched-reference.ts runs it.
 * Usage: node batched-server.js --model FILE --port N [--workers N]
 */
import { availableParallelism } from 'node:os';
import { buildBatchedReference } from './batched-app.js';
import { readServerArgs } from './fastify-body.js';

const { port, flags } = readServerArgs(['model', 'workers']);
if (!flags.model) throw new Error('--model FILE is required');
const app = await buildBatchedReference(flags.model, Number(flags.workers ?? availableParallelism()));
await app.listen({ port, host: '127.0.0.1' });
