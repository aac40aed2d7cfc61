/**
 * Wires data capture to the invocation routes: sampling is decided in onRequest, before the
 * body is read; onSend keeps a reference to the payload of sampled requests only; onResponse,
 * after the reply has gone out, hands the exchange to capture. The request never waits for it.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { DataCapture } from '../capture/data-capture.js';

const header = (request: FastifyRequest, name: string): string | undefined => {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
};

export function installCaptureHooks(app: FastifyInstance, capture: DataCapture): void {
  const sampled = new WeakMap<FastifyRequest, { payload: unknown }>();
  app.addHook('onRequest', (request, _reply, done) => {
    if (capture.sample()) sampled.set(request, { payload: undefined });
    done();
  });
  app.addHook('onSend', (request, _reply, payload, done) => {
    const entry = sampled.get(request);
    if (entry) entry.payload = payload;
    done(null, payload);
  });
  app.addHook('onResponse', (request, reply, done) => {
    const entry = sampled.get(request);
    if (entry) {
      const body = request.body;
      capture.record({
        requestBody: Buffer.isBuffer(body) ? body : Buffer.alloc(0),
        requestContentType: header(request, 'content-type'),
        responseBody: Buffer.isBuffer(entry.payload) || typeof entry.payload === 'string' ? entry.payload : '',
        responseContentType: reply.getHeader('content-type')?.toString(),
        inferenceId: header(request, 'x-amzn-sagemaker-inference-id'),
        customAttributes: header(request, 'x-amzn-sagemaker-custom-attributes'),
        time: new Date(),
      });
    }
    done();
  });
}
