/**
 * Request bodies as ONNX Runtime feeds, read the way a careful afternoon's Fastify server reads
 * them: one parse, straight into the typed arrays the session takes. CSV (headerless, one row per
 * line) into one float32 [rows, columns] tensor; JSON through Fastify's own parser, then
 * `{"instances": [...]}` (the first input) or `{"inputs": {name: nested}}` copied into typed arrays
 * of each input's type; .npy (little-endian float32) as a view of the body's bytes. Shared by the
 * Fastify baseline and the HTTP ceiling, so that the ceiling does exactly the baseline's work but
 * `run()` and the answer's encoding.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import ort from 'onnxruntime-node';
import { parseArgs } from 'node:util';

export const BODY_LIMIT_BYTES = 6 * 1024 * 1024;

export type Feeds = Record<string, ort.Tensor>;
type Nested = number | Nested[];

class BadRequest extends Error {
  readonly statusCode = 400;
}

/** Reads bodies into feeds for `session`'s inputs. */
export class FeedReader {
  readonly #first: string;
  readonly #int64: ReadonlySet<string>;

  constructor(session: ort.InferenceSession) {
    this.#first = session.inputNames[0]!;
    this.#int64 = new Set(session.inputMetadata.filter((meta) => meta.isTensor && meta.type === 'int64').map((meta) => meta.name));
  }

  /** Content-type parsers for CSV and .npy that answer feeds; JSON stays Fastify's. */
  register(app: FastifyInstance): void {
    app.addContentTypeParser('text/csv', { parseAs: 'string' }, (_request, body, done) => {
      try {
        done(null, this.csv(body as string));
      } catch (error) {
        done(error as Error);
      }
    });
    app.addContentTypeParser('application/x-npy', { parseAs: 'buffer' }, (_request, body, done) => {
      try {
        done(null, this.npy(body as Buffer));
      } catch (error) {
        done(error as Error);
      }
    });
  }

  /** The request's feeds: already made by the CSV and .npy parsers, made here from parsed JSON. */
  feeds(request: FastifyRequest): Feeds {
    const body = request.body as Feeds | { instances?: Nested; inputs?: Record<string, Nested> };
    if (!(request.headers['content-type'] ?? 'application/json').startsWith('application/json')) return body as Feeds;
    const json = body as { instances?: Nested; inputs?: Record<string, Nested> };
    if (json.instances !== undefined) return { [this.#first]: this.#tensor(this.#first, json.instances) };
    if (json.inputs === undefined) throw new BadRequest('JSON needs "instances" or "inputs"');
    const feeds: Feeds = {};
    for (const name of Object.keys(json.inputs)) feeds[name] = this.#tensor(name, json.inputs[name]!);
    return feeds;
  }

  csv(text: string): Feeds {
    const lines = text.split('\n');
    while (lines.length > 0 && lines.at(-1)!.trim() === '') lines.pop();
    const width = lines[0]?.split(',').length ?? 0;
    const data = new Float32Array(lines.length * width);
    let i = 0;
    for (const line of lines) {
      const fields = line.split(',');
      if (fields.length !== width) throw new BadRequest(`every CSV row needs ${width} values`);
      for (const field of fields) data[i++] = +field;
    }
    return { [this.#first]: new ort.Tensor('float32', data, [lines.length, width]) };
  }

  npy(bytes: Buffer): Feeds {
    const headerLength = bytes.readUInt16LE(8);
    const header = bytes.toString('latin1', 10, 10 + headerLength);
    if (!header.includes("'descr': '<f4'") || header.includes("'fortran_order': True")) throw new BadRequest('.npy must be little-endian float32, C order');
    const dims = (/'shape': \(([^)]*)\)/.exec(header)?.[1] ?? '').split(',').filter((d) => d.trim() !== '').map(Number);
    const start = bytes.byteOffset + 10 + headerLength;
    const length = (bytes.byteLength - 10 - headerLength) / 4;
    // A view when the bytes are aligned for float32, a copy otherwise.
    const data = start % 4 === 0 ? new Float32Array(bytes.buffer, start, length) : new Float32Array(bytes.buffer.slice(start, start + length * 4));
    return { [this.#first]: new ort.Tensor('float32', data, dims) };
  }

  #tensor(name: string, nested: Nested): ort.Tensor {
    const dims: number[] = [];
    for (let level = nested; Array.isArray(level); level = level[0] ?? 0) dims.push(level.length);
    const size = dims.reduce((a, b) => a * b, 1);
    if (this.#int64.has(name)) {
      const data = new BigInt64Array(size);
      let i = 0;
      const fill = (node: Nested): void => {
        if (Array.isArray(node)) for (const item of node) fill(item);
        else data[i++] = BigInt(node);
      };
      fill(nested);
      if (i !== size) throw new BadRequest(`input ${name} is ragged`);
      return new ort.Tensor('int64', data, dims);
    }
    const data = new Float32Array(size);
    let i = 0;
    const fill = (node: Nested): void => {
      if (Array.isArray(node)) for (const item of node) fill(item);
      else data[i++] = node;
    };
    fill(nested);
    if (i !== size) throw new BadRequest(`input ${name} is ragged`);
    return new ort.Tensor('float32', data, dims);
  }
}

/** `--port N` (else $PORT, else 8080) and the server's other `--name value` flags. */
export function readServerArgs(names: readonly string[]): { port: number; flags: Record<string, string | undefined> } {
  const { values } = parseArgs({ options: Object.fromEntries(['port', ...names].map((name) => [name, { type: 'string' as const }])) });
  const flags = values as Record<string, string | undefined>;
  return { port: Number(flags.port ?? process.env.PORT ?? 8080), flags };
}

/** True when the request asks for CSV; JSON otherwise (inferd's default). */
export function wantsCsv(request: FastifyRequest): boolean {
  return request.headers.accept?.includes('text/csv') === true;
}
