/** Request bodies reach the routes as Buffers; which codec reads them is src/codecs/negotiation.ts's call. */
import type { FastifyInstance } from 'fastify';
import type { RequestBodies } from './request-body.js';

/**
 * Every body arrives as a Buffer, decoded from its Content-Encoding, whatever its type:
 * decoding the type is the codecs' job, after the route knows the model.
 */
export function installBodyParser(app: FastifyInstance, bodies: RequestBodies): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, _payload, done) => bodies.read(request.raw, done));
}
