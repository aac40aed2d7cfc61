/**
 * A request's logger is pino's child only once the request logs: what it writes must be what
 * pino's child would have written, and nothing is made for a request that logs nothing.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import { pino, type Logger } from 'pino';
import { deferredChildLogger, RequestLog } from '../../src/server/request-logger.js';

/** A real pino logger writing into an array, and how many children it has made. */
function capturedLogger(level: string) {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level }, stream);
  const counted = { made: 0 };
  // pino's children inherit `child` from this logger, so it counts theirs too.
  const child = logger.child;
  logger.child = function (this: Logger, ...args: Parameters<Logger['child']>) {
    counted.made += 1;
    return child.apply(this, args);
  } as Logger['child'];
  // pino writes synchronously to a plain Writable; a tick lets the stream's write land.
  const written = () => new Promise<Record<string, unknown>[]>((resolve) => setImmediate(() => resolve(lines)));
  return { logger, counted, written };
}

describe('deferredChildLogger', () => {
  it('makes no pino child while nothing is logged at a level that is on', async () => {
    const { logger, counted, written } = capturedLogger('info');
    const log = deferredChildLogger(logger, { reqId: 'r-1' }, {});
    log.debug({ status: 200 }, 'request completed');
    log.trace('detail');
    log.child({ model: 'm' }).debug('nested detail');
    assert.equal(counted.made, 0);
    assert.deepEqual(await written(), []);
  });

  it('writes what pino\'s child writes, bindings and all, at every enabled level', async () => {
    const { logger, written } = capturedLogger('trace');
    const log = deferredChildLogger(logger, { reqId: 'r-2' }, {});
    log.trace('t');
    log.debug('d');
    log.info({ code: 'X' }, 'i %s', 'formatted');
    log.warn('w');
    log.error(new Error('boom'), 'e');
    log.fatal('f');
    const lines = await written();
    assert.deepEqual(
      lines.map(({ level, reqId, msg }) => ({ level, reqId, msg })),
      [
        { level: 10, reqId: 'r-2', msg: 't' },
        { level: 20, reqId: 'r-2', msg: 'd' },
        { level: 30, reqId: 'r-2', msg: 'i formatted' },
        { level: 40, reqId: 'r-2', msg: 'w' },
        { level: 50, reqId: 'r-2', msg: 'e' },
        { level: 60, reqId: 'r-2', msg: 'f' },
      ],
    );
    assert.equal(lines[2]!.code, 'X');
    assert.equal((lines[4]!.err as { message: string }).message, 'boom');
  });

  it('gives a child of a child both bindings, and makes each pino child once', async () => {
    const { logger, counted, written } = capturedLogger('info');
    const log = deferredChildLogger(logger, { reqId: 'r-3' }, {});
    const modelLog = log.child({ model: 'churn', targetModel: 'churn.tar.gz' });
    modelLog.info('one');
    modelLog.info('two');
    log.info('three');
    // The request's child and its own child, each made once.
    assert.equal(counted.made, 2);
    const lines = await written();
    assert.deepEqual(
      lines.map(({ reqId, model, targetModel, msg }) => ({ reqId, model, targetModel, msg })),
      [
        { reqId: 'r-3', model: 'churn', targetModel: 'churn.tar.gz', msg: 'one' },
        { reqId: 'r-3', model: 'churn', targetModel: 'churn.tar.gz', msg: 'two' },
        { reqId: 'r-3', model: undefined, targetModel: undefined, msg: 'three' },
      ],
    );
  });

  it('follows a level of its own, as a route\'s logLevel sets it, and reports its level', async () => {
    const { logger, written } = capturedLogger('warn');
    const quiet = deferredChildLogger(logger, { reqId: 'r-4' }, {});
    const chatty = deferredChildLogger(logger, { reqId: 'r-5' }, { level: 'debug' });
    assert.equal(quiet.level, 'warn');
    assert.equal(chatty.level, 'debug');
    quiet.info('not written');
    chatty.debug('written');
    chatty.level = 'error';
    chatty.warn('not written either');
    assert.equal(chatty.level, 'error');
    assert.deepEqual(
      (await written()).map(({ reqId, msg }) => ({ reqId, msg })),
      [{ reqId: 'r-5', msg: 'written' }],
    );
  });

  it('is what Fastify hands each request, with its request id, and the request log line at debug', async () => {
    const { logger, counted, written } = capturedLogger('debug');
    const app = Fastify({
      loggerInstance: logger as unknown as FastifyBaseLogger,
      requestIdHeader: 'x-amzn-sagemaker-inference-id',
      logController: new RequestLog(),
      childLoggerFactory: deferredChildLogger,
    });
    app.post('/invocations', async (request) => {
      request.log.info('in the handler');
      return 'ok';
    });
    app.get('/ping', async () => 'pong');
    try {
      const response = await app.inject({ method: 'POST', url: '/invocations', headers: { 'x-amzn-sagemaker-inference-id': 'inf-7', 'content-type': 'text/plain' }, payload: 'x' });
      assert.equal(response.statusCode, 200);
      assert.equal((await app.inject({ method: 'GET', url: '/ping' })).statusCode, 200);
      const lines = (await written()).filter((line) => line.reqId !== undefined);
      assert.deepEqual(
        lines.map(({ reqId, msg, status }) => ({ reqId, msg, status })),
        [
          { reqId: 'inf-7', msg: 'in the handler', status: undefined },
          { reqId: 'inf-7', msg: 'request completed', status: 200 },
        ],
      );
      const made = counted.made;
      // At info, the same requests log nothing of their own, and no child is made for them.
      logger.level = 'info';
      await app.inject({ method: 'GET', url: '/ping' });
      assert.equal(counted.made, made);
    } finally {
      await app.close();
    }
  });
});
