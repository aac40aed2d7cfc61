/**
 * The baseline: the server a user would write in an afternoon. Fastify, one onnxruntime-node
 * session, `session.run()` inline on the HTTP thread (so it blocks the event loop for every
 * inference, /ping included), naive parsing of the same bodies, JSON out.
 * Usage: node inline-server.js --model FILE --port N [--threads N] [--provider cpu|cuda]
 */
import Fastify from 'fastify';
import ort from 'onnxruntime-node';
import { BODY_LIMIT_BYTES, readServerArgs, registerNaiveParsers } from './naive-body.js';

type Nested = number | Nested[];

const { port, flags } = readServerArgs(['model', 'threads', 'provider']);
if (!flags.model) throw new Error('--model FILE is required');
const session = await ort.InferenceSession.create(flags.model, {
  executionProviders: [flags.provider ?? 'cpu'],
  intraOpNumThreads: Number(flags.threads ?? 1),
});
const inputTypes = new Map(session.inputMetadata.map((meta) => [meta.name, meta.isTensor ? meta.type : 'float32']));

function tensor(name: string, values: number[], dims: number[]): ort.Tensor {
  if (inputTypes.get(name) === 'int64') return new ort.Tensor('int64', BigInt64Array.from(values, BigInt), dims);
  return new ort.Tensor('float32', Float32Array.from(values), dims);
}

function flatten(nested: Nested, into: number[] = []): number[] {
  if (Array.isArray(nested)) for (const item of nested) flatten(item, into);
  else into.push(nested);
  return into;
}

function fromNested(name: string, nested: Nested): ort.Tensor {
  const dims: number[] = [];
  for (let level = nested; Array.isArray(level); level = level[0] ?? 0) dims.push(level.length);
  return tensor(name, flatten(nested), dims);
}

function fromNpy(name: string, bytes: Buffer): ort.Tensor {
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.toString('latin1', 10, 10 + headerLength);
  const dims = (/'shape': \(([^)]*)\)/.exec(header)?.[1] ?? '').split(',').filter((d) => d.trim() !== '').map(Number);
  const data = bytes.subarray(10 + headerLength);
  return new ort.Tensor('float32', new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)), dims);
}

function feeds(body: unknown): Record<string, ort.Tensor> {
  const first = session.inputNames[0]!;
  if (Buffer.isBuffer(body)) return { [first]: fromNpy(first, body) };
  if (Array.isArray(body)) return { [first]: fromNested(first, (body as string[][]).map((row) => row.map(Number))) };
  const json = body as { instances?: Nested; inputs?: Record<string, Nested> };
  if (json.instances) return { [first]: fromNested(first, json.instances) };
  return Object.fromEntries(Object.entries(json.inputs ?? {}).map(([name, value]) => [name, fromNested(name, value)]));
}

/** One prediction per row: the output's row, or an object of outputs for several outputs. */
function predictions(outputs: ort.InferenceSession.ReturnType): unknown[] {
  const rowsOf = (output: ort.Tensor) => {
    const count = output.dims[0] ?? 1;
    const width = output.size / count;
    const values = Array.from(output.data as ArrayLike<number | bigint>, Number);
    return Array.from({ length: count }, (_, i) => (output.dims.length === 1 ? values[i] : values.slice(i * width, (i + 1) * width)));
  };
  const columns = session.outputNames.map((name) => [name, rowsOf(outputs[name]!)] as const);
  if (columns.length === 1) return columns[0]![1];
  return columns[0]![1].map((_, i) => Object.fromEntries(columns.map(([name, rows]) => [name, rows[i]])));
}

const app = Fastify({ bodyLimit: BODY_LIMIT_BYTES });
registerNaiveParsers(app);
app.get('/ping', async () => ({ status: 'Healthy' }));
app.post('/invocations', async (request) => ({ predictions: predictions(await session.run(feeds(request.body))) }));

await app.listen({ port, host: '127.0.0.1' });
