/**
 * The HTTP ceiling: what Fastify alone does with the scenario's requests. It reads each body
 * into feeds exactly as the Fastify baseline does (fastify-body.ts; the model is loaded only for
 * its input names and types, never run) and answers a constant in the format asked for, so no
 * server with inference behind the same HTTP stack and parsing can beat it.
 * Usage: node http-ceiling.js --model FILE --port N
 */
import Fastify from 'fastify';
import ort from 'onnxruntime-node';
import { BODY_LIMIT_BYTES, FeedReader, readServerArgs, wantsCsv } from './fastify-body.js';

const { port, flags } = readServerArgs(['model']);
if (!flags.model) throw new Error('--model FILE is required');
const reader = new FeedReader(await ort.InferenceSession.create(flags.model, { intraOpNumThreads: 1, interOpNumThreads: 1 }));
const app = Fastify({ bodyLimit: BODY_LIMIT_BYTES });
reader.register(app);

const JSON_ANSWER = '{"predictions":[0]}';
const CSV_ANSWER = '0\n';
app.get('/ping', async () => ({ status: 'Healthy' }));
app.post('/invocations', async (request, reply) => {
  reader.feeds(request);
  return wantsCsv(request) ? reply.type('text/csv').send(CSV_ANSWER) : reply.type('application/json').send(JSON_ANSWER);
});

await app.listen({ port, host: '127.0.0.1' });
