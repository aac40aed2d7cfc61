/**
 * Wires data capture to the invocation routes: sampling is decided in onRequest, before the
 * body is read; onSend keeps a reference to the payload of sampled requests only (a copy of a
 * streamed one's parts as they go out); onResponse,
 * after the reply has gone out, hands the exchange to capture. The request never waits for it.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { pipeline, Readable, Transform } from 'node:stream';
import type { DataCapture } from '../capture/data-capture.js';

const header = (request: FastifyRequest, name: string): string | undefined => {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
};

/** A streamed answer's parts, copied as they go out to the client (it is never held whole otherwise). */
interface CopiedStream {
  readonly parts: Buffer[];
}

/** The stream to send in place of `stream`: the same parts, each copied on its way. */
function copying(stream: Readable, copy: CopiedStream): Readable {
  const tee = new Transform({
    // Reads no further ahead than the client does.
    highWaterMark: 1,
    transform(part: Buffer, _encoding, callback) {
      copy.parts.push(part);
      callback(null, part);
    },
  });
  pipeline(stream, tee, () => {});
  return tee;
}

function responseBodyOf(payload: unknown): Buffer | string {
  if (Buffer.isBuffer(payload) || typeof payload === 'string') return payload;
  if (payload && typeof payload === 'object' && 'parts' in payload) return Buffer.concat((payload as CopiedStream).parts);
  return '';
}

export function installCaptureHooks(app: FastifyInstance, capture: DataCapture): void {
  const sampled = new WeakMap<FastifyRequest, { payload: unknown }>();
  app.addHook('onRequest', (request, _reply, done) => {
    if (capture.sample()) sampled.set(request, { payload: undefined });
    done();
  });
  app.addHook('onSend', (request, _reply, payload, done) => {
    const entry = sampled.get(request);
    if (entry && payload instanceof Readable) {
      const copy: CopiedStream = { parts: [] };
      entry.payload = copy;
      return done(null, copying(payload, copy));
    }
    if (entry) entry.payload = payload;
    done(null, payload);
  });
  app.addHook('onResponse', (request, reply, done) => {
    const entry = sampled.get(request);
    // A request refused for its credentials is not the endpoint's traffic: never recorded.
    if (entry && reply.statusCode !== 401 && reply.statusCode !== 403) {
      const body = request.body;
      capture.record({
        requestBody: Buffer.isBuffer(body) ? body : Buffer.alloc(0),
        requestContentType: header(request, 'content-type'),
        responseBody: responseBodyOf(entry.payload),
        responseContentType: reply.getHeader('content-type')?.toString(),
        inferenceId: header(request, 'x-amzn-sagemaker-inference-id'),
        customAttributes: header(request, 'x-amzn-sagemaker-custom-attributes'),
        targetModel: header(request, 'x-amzn-sagemaker-target-model') ?? (request.params as { name?: string } | undefined)?.name,
        time: new Date(),
      });
    }
    done();
  });
}
