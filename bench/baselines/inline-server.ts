/**
 * The baseline: the server an expert writes in an afternoon. Fastify, one onnxruntime-node
 * session with inferd's session options, `session.run()` inline on the HTTP thread (so it blocks
 * the event loop for every inference, /ping included), one parse of each body straight into the
 * feeds (fastify-body.ts), and the answer in inferd's formats: CSV rows when Accept asks for
 * text/csv, else `{"predictions": [...]}` with one entry per row (an object of outputs when the
 * model has several), written as text in one pass.
 * Usage: node inline-server.js --model FILE --port N [--threads N] [--provider cpu|cuda]
 */
import Fastify from 'fastify';
import ort from 'onnxruntime-node';
import { BODY_LIMIT_BYTES, FeedReader, readServerArgs, wantsCsv } from './fastify-body.js';

const { port, flags } = readServerArgs(['model', 'threads', 'provider']);
if (!flags.model) throw new Error('--model FILE is required');
const session = await ort.InferenceSession.create(flags.model, {
  executionProviders: [flags.provider ?? 'cpu'],
  intraOpNumThreads: Number(flags.threads ?? 1),
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  // inferd's session options: with more than one thread, spinning ones would take the core the
  // HTTP work needs.
  extra: { session: { intra_op: { allow_spinning: '0' } } },
});
const reader = new FeedReader(session);
const outputNames = session.outputNames;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

type Values = ort.Tensor['data'];

function jsonNumber(data: Values, index: number): string {
  const value = data[index] as number | bigint;
  if (typeof value === 'bigint') return value > MAX_SAFE || value < -MAX_SAFE ? `"${value}"` : String(value);
  return Number.isFinite(value) ? String(value) : `"${value}"`;
}

/** dims[depth..] of one output as nested JSON arrays from flat index `start`. */
function jsonNested(tensor: ort.Tensor, depth: number, start: number): string {
  const { dims, data } = tensor;
  if (depth === dims.length) return jsonNumber(data, start);
  let stride = 1;
  for (let axis = depth + 1; axis < dims.length; axis++) stride *= dims[axis]!;
  let text = '[';
  for (let i = 0; i < dims[depth]!; i++) text += (i > 0 ? ',' : '') + jsonNested(tensor, depth + 1, start + i * stride);
  return `${text}]`;
}

function encodeJson(outputs: ort.InferenceSession.ReturnType): string {
  const tensors = outputNames.map((name) => outputs[name]!);
  const rows = tensors[0]!.dims[0] ?? 1;
  const strides = tensors.map((t) => t.size / rows);
  let text = '{"predictions":[';
  for (let row = 0; row < rows; row++) {
    if (row > 0) text += ',';
    if (tensors.length === 1) {
      text += jsonNested(tensors[0]!, 1, row * strides[0]!);
      continue;
    }
    text += '{';
    tensors.forEach((tensor, k) => (text += `${k > 0 ? ',' : ''}${JSON.stringify(outputNames[k])}:${jsonNested(tensor, 1, row * strides[k]!)}`));
    text += '}';
  }
  return `${text}]}`;
}

function encodeCsv(outputs: ort.InferenceSession.ReturnType): string {
  const tensors = outputNames.map((name) => outputs[name]!);
  const rows = tensors[0]!.dims[0] ?? 1;
  let text = '';
  for (let row = 0; row < rows; row++) {
    let line = '';
    for (const tensor of tensors) {
      const stride = tensor.size / rows;
      for (let i = row * stride; i < (row + 1) * stride; i++) line += (line === '' ? '' : ',') + String(tensor.data[i]);
    }
    text += `${line}\n`;
  }
  return text;
}

const app = Fastify({ bodyLimit: BODY_LIMIT_BYTES });
reader.register(app);
app.get('/ping', async () => ({ status: 'Healthy' }));
app.post('/invocations', async (request, reply) => {
  const outputs = await session.run(reader.feeds(request));
  return wantsCsv(request) ? reply.type('text/csv').send(encodeCsv(outputs)) : reply.type('application/json').send(encodeJson(outputs));
});

await app.listen({ port, host: '127.0.0.1' });
