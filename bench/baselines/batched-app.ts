/**
 * The batched reference: inferd's architecture as an afternoon's server, with none of its
 * features. Fastify, the baselines' CSV parse (fastify-body.ts), the requests read in one
 * event-loop turn merged into one float32 batch, held while a batch runs (inferd's rule), run in a
 * Piscina worker per core, one CSV line back per row. No limits, metrics, timeouts, cancellation,
 * other formats or models: what inferd's batching path could cost at least on the same stack
 * (bench/batched-reference.ts over sockets, bench/request-path.ts in process). Single-input
 * float32 models with CSV in and out only. batched-server.ts serves it on a port.
 */
import { availableParallelism } from 'node:os';
import Fastify, { type FastifyInstance } from 'fastify';
import ort from 'onnxruntime-node';
import { Piscina } from 'piscina';
import { BODY_LIMIT_BYTES, FeedReader } from './fastify-body.js';

interface Waiting {
  readonly data: Float32Array;
  readonly rows: number;
  readonly answer: (csv: string) => void;
  readonly fail: (error: Error) => void;
}

/** The reference's Fastify app, its workers started; `close()` stops them too. */
export async function buildBatchedReference(modelPath: string, workers = availableParallelism()): Promise<FastifyInstance> {
  const session = await ort.InferenceSession.create(modelPath);
  const reader = new FeedReader(session);
  // Requests are merged by copying rows end to end: each must have the model's row width.
  const [input] = session.inputMetadata;
  const rowWidth = input?.isTensor ? input.shape[1] : undefined;
  if (typeof rowWidth !== 'number') throw new Error('the batched reference needs a model whose first input has a fixed row width');
  const width: number = rowWidth;
  const pool = new Piscina({
    filename: new URL('./batched-worker.js', import.meta.url).href,
    minThreads: workers,
    maxThreads: workers,
    workerData: { model: modelPath },
  });

  let waiting: Waiting[] = [];
  let running = false;
  let flushScheduled = false;

  function flushThisTurn(): void {
    if (flushScheduled) return;
    flushScheduled = true;
    setImmediate(() => {
      flushScheduled = false;
      flush();
    });
  }

  function flush(): void {
    if (running || waiting.length === 0) return;
    const batch = waiting;
    waiting = [];
    let rows = 0;
    for (const request of batch) rows += request.rows;
    const data = new Float32Array(rows * width);
    let offset = 0;
    for (const request of batch) {
      data.set(request.data, offset);
      offset += request.data.length;
    }
    running = true;
    void pool.run({ data, rows, width }).then(
      (outputs: Array<ort.Tensor['data']>) => {
        running = false;
        const strides = outputs.map((output) => output.length / rows);
        let row = 0;
        for (const request of batch) {
          let csv = '';
          for (const end = row + request.rows; row < end; row++) {
            let line = '';
            outputs.forEach((output, k) => {
              for (let i = row * strides[k]!; i < (row + 1) * strides[k]!; i++) line += (line === '' ? '' : ',') + String(output[i]);
            });
            csv += `${line}\n`;
          }
          request.answer(csv);
        }
        flushThisTurn();
      },
      (error: Error) => {
        running = false;
        for (const request of batch) request.fail(error);
        flushThisTurn();
      },
    );
  }

  const app = Fastify({ bodyLimit: BODY_LIMIT_BYTES });
  reader.register(app);
  app.get('/ping', async () => ({ status: 'Healthy' }));
  app.post('/invocations', async (request, reply) => {
    const [feed] = Object.values(reader.feeds(request));
    if (feed?.type !== 'float32' || !(request.headers['content-type'] ?? '').startsWith('text/csv')) {
      return reply.code(415).send({ message: 'the batched reference takes CSV rows of one float32 input' });
    }
    if (feed.dims[0] === 0 || feed.dims[1] !== width) {
      return reply.code(400).send({ message: `every request needs at least one row of ${width} values` });
    }
    const csv = await new Promise<string>((answer, fail) => {
      waiting.push({ data: feed.data as Float32Array, rows: feed.dims[0]!, answer, fail });
      flushThisTurn();
    });
    return reply.type('text/csv').send(csv);
  });

  app.addHook('onClose', () => pool.destroy());
  return app;
}
