/**
 * A second baseline, written apart from the first (inline-server.ts) to check it: node:http with
 * no framework, one onnxruntime-node session with the same options, `session.run()` inline on the
 * HTTP thread. Its own body reading (CSV scanned field by field, JSON.parse, .npy header) and its
 * own encoding (JSON.stringify of plain rows, CSV lines joined), in the same formats as inferd:
 * CSV when Accept asks for text/csv, else `{"predictions": [...]}`. When the two baselines differ by
 * more than the run's noise, one of them does work the other does not.
 * Usage: node node-http-inline.js --model FILE --port N [--threads N] [--provider cpu|cuda]
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';

const BODY_LIMIT_BYTES = 6 * 1024 * 1024;

const { values: args } = parseArgs({
  options: { model: { type: 'string' }, port: { type: 'string' }, threads: { type: 'string' }, provider: { type: 'string' } },
});
if (!args.model) throw new Error('--model FILE is required');
const session = await ort.InferenceSession.create(args.model, {
  executionProviders: [args.provider ?? 'cpu'],
  intraOpNumThreads: Number(args.threads ?? 1),
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  // inferd's session options: with more than one thread, spinning ones would take the core the
  // HTTP work needs.
  extra: { session: { intra_op: { allow_spinning: '0' } } },
});
const firstInput = session.inputNames[0]!;
const int64Inputs = new Set(session.inputMetadata.filter((m) => m.isTensor && m.type === 'int64').map((m) => m.name));

class ClientError extends Error {}

type Nested = number | Nested[];

function csvTensor(text: string): ort.Tensor {
  const values: number[] = [];
  let rows = 0;
  let width = -1;
  let lineStart = 0;
  while (lineStart < text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd === -1) lineEnd = text.length;
    if (lineEnd > lineStart && text.slice(lineStart, lineEnd).trim() !== '') {
      const before = values.length;
      let fieldStart = lineStart;
      for (;;) {
        const comma = text.indexOf(',', fieldStart);
        const fieldEnd = comma === -1 || comma > lineEnd ? lineEnd : comma;
        values.push(Number(text.slice(fieldStart, fieldEnd)));
        if (fieldEnd === lineEnd) break;
        fieldStart = fieldEnd + 1;
      }
      const count = values.length - before;
      if (width === -1) width = count;
      else if (count !== width) throw new ClientError('ragged CSV');
      rows++;
    }
    lineStart = lineEnd + 1;
  }
  return new ort.Tensor('float32', Float32Array.from(values), [rows, width]);
}

function shapeOf(nested: Nested): number[] {
  const shape: number[] = [];
  let level: Nested = nested;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0] ?? 0;
  }
  return shape;
}

function copyInto(nested: Nested, out: Float32Array | BigInt64Array, offset: number): number {
  if (!Array.isArray(nested)) {
    if (out instanceof BigInt64Array) out[offset] = BigInt(nested);
    else out[offset] = nested;
    return offset + 1;
  }
  let next = offset;
  for (const item of nested) next = copyInto(item, out, next);
  return next;
}

function jsonTensor(name: string, nested: Nested): ort.Tensor {
  const shape = shapeOf(nested);
  const size = shape.reduce((a, b) => a * b, 1);
  const out = int64Inputs.has(name) ? new BigInt64Array(size) : new Float32Array(size);
  if (copyInto(nested, out, 0) !== size) throw new ClientError(`ragged input ${name}`);
  return out instanceof BigInt64Array ? new ort.Tensor('int64', out, shape) : new ort.Tensor('float32', out, shape);
}

function npyTensor(bytes: Buffer): ort.Tensor {
  if (bytes.toString('latin1', 1, 6) !== 'NUMPY') throw new ClientError('not a .npy file');
  const headerEnd = 10 + bytes.readUInt16LE(8);
  const header = bytes.toString('latin1', 10, headerEnd);
  if (!/'descr':\s*'<f4'/.test(header)) throw new ClientError('only little-endian float32 .npy');
  const shape = [...(/'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '').matchAll(/\d+/g)].map((m) => Number(m[0]));
  const payload = bytes.subarray(headerEnd);
  const aligned = payload.byteOffset % Float32Array.BYTES_PER_ELEMENT === 0;
  const data = aligned
    ? new Float32Array(payload.buffer, payload.byteOffset, payload.byteLength / 4)
    : new Float32Array(Uint8Array.from(payload).buffer);
  return new ort.Tensor('float32', data, shape);
}

function feedsFor(contentType: string, body: Buffer): Record<string, ort.Tensor> {
  if (contentType.startsWith('text/csv')) return { [firstInput]: csvTensor(body.toString('utf8')) };
  if (contentType.startsWith('application/x-npy')) return { [firstInput]: npyTensor(body) };
  const json = JSON.parse(body.toString('utf8')) as { instances?: Nested; inputs?: Record<string, Nested> };
  if (json.instances !== undefined) return { [firstInput]: jsonTensor(firstInput, json.instances) };
  if (!json.inputs) throw new ClientError('JSON needs "instances" or "inputs"');
  return Object.fromEntries(Object.entries(json.inputs).map(([name, nested]) => [name, jsonTensor(name, nested)]));
}

/** Row `row` of an output as a plain value: a number for 1-D outputs, (nested) arrays otherwise. */
function rowValue(tensor: ort.Tensor, row: number): unknown {
  const inner = tensor.dims.slice(1);
  const stride = tensor.size / (tensor.dims[0] ?? 1);
  const slice = (tensor.data as Float32Array | BigInt64Array).subarray(row * stride, (row + 1) * stride);
  // int64 as numbers, or as strings beyond 2^53 as inferd writes them.
  const flat: unknown[] =
    slice instanceof BigInt64Array
      ? Array.from(slice, (v) => (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()))
      : Array.from(slice);
  if (inner.length === 0) return flat[0];
  if (inner.length === 1) return flat;
  const nest = (start: number, depth: number): unknown => {
    if (depth === inner.length - 1) return flat.slice(start, start + inner[depth]!);
    const step = inner.slice(depth + 1).reduce((a, b) => a * b, 1);
    return Array.from({ length: inner[depth]! }, (_, i) => nest(start + i * step, depth + 1));
  };
  return nest(0, 0);
}

function answer(outputs: ort.InferenceSession.ReturnType, csv: boolean): { type: string; body: string } {
  const names = session.outputNames;
  const rows = outputs[names[0]!]!.dims[0] ?? 1;
  if (csv) {
    const lines: string[] = [];
    for (let row = 0; row < rows; row++) {
      const fields: string[] = [];
      for (const name of names) {
        const tensor = outputs[name]!;
        const stride = tensor.size / rows;
        for (let i = row * stride; i < (row + 1) * stride; i++) fields.push(String(tensor.data[i]));
      }
      lines.push(fields.join(','));
    }
    return { type: 'text/csv', body: `${lines.join('\n')}\n` };
  }
  const predictions = Array.from({ length: rows }, (_, row) =>
    names.length === 1 ? rowValue(outputs[names[0]!]!, row) : Object.fromEntries(names.map((name) => [name, rowValue(outputs[name]!, row)])),
  );
  return { type: 'application/json', body: JSON.stringify({ predictions }) };
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function invocations(req: IncomingMessage, body: Buffer, res: ServerResponse): Promise<void> {
  let feeds: Record<string, ort.Tensor>;
  try {
    feeds = feedsFor(req.headers['content-type'] ?? 'application/json', body);
  } catch (error) {
    return send(res, 400, 'application/json', JSON.stringify({ error: (error as Error).message }));
  }
  const outputs = await session.run(feeds);
  const { type, body: text } = answer(outputs, req.headers.accept?.includes('text/csv') === true);
  send(res, 200, type, text);
}

/** The whole body, then `then(body)`; 413 past the limit. */
function readBody(req: IncomingMessage, res: ServerResponse, then: (body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  let length = 0;
  req.on('data', (chunk: Buffer) => {
    length += chunk.length;
    if (length <= BODY_LIMIT_BYTES) chunks.push(chunk);
  });
  req.on('end', () => {
    if (length > BODY_LIMIT_BYTES) return send(res, 413, 'application/json', '{"error":"body too large"}');
    then(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length));
  });
}

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/ping') return send(res, 200, 'application/json', '{"status":"Healthy"}');
  if (req.method === 'POST' && req.url === '/invocations') {
    return readBody(req, res, (body) => {
      invocations(req, body, res).catch((error: unknown) => send(res, 500, 'application/json', JSON.stringify({ error: String(error) })));
    });
  }
  send(res, 404, 'application/json', '{"error":"not found"}');
});
server.keepAliveTimeout = 65_000;
server.listen(Number(args.port ?? process.env.PORT ?? 8080), '127.0.0.1');
