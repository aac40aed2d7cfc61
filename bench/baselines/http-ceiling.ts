/**
 * The HTTP ceiling: what Fastify alone does with the scenario's requests. It parses the body like
 * the baselines (naive-body.ts) and answers a constant, so no server with inference behind the
 * same HTTP stack can beat it. Usage: node http-ceiling.js --port N
 */
import Fastify from 'fastify';
import { BODY_LIMIT_BYTES, readServerArgs, registerNaiveParsers } from './naive-body.js';

const { port } = readServerArgs([]);
const app = Fastify({ bodyLimit: BODY_LIMIT_BYTES });
registerNaiveParsers(app);

const PREDICTION = { predictions: [0] };
app.get('/ping', async () => ({ status: 'Healthy' }));
app.post('/invocations', async () => PREDICTION);

await app.listen({ port, host: '127.0.0.1' });
