/** Request bodies reach the routes as Buffers; which codec reads them is src/codecs/negotiation.ts's call. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { BodyCallback, RequestBodies } from './request-body.js';

/**
 * Every body arrives as a Buffer, decoded from its Content-Encoding, whatever its type:
 * decoding the type is the codecs' job, after the route knows the model.
 */
export function installBodyParser(app: FastifyInstance, bodies: RequestBodies): void {
  const parse = (request: FastifyRequest, _payload: unknown, done: BodyCallback) => bodies.read(request.raw, done);
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', parse);
  // The same parser again, for any type: Fastify remembers a type a RegExp parser matched, but
  // looks the catch-all up anew on every request, parsing the Content-Type header each time.
  app.addContentTypeParser(/^/, parse);
}
