import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../../metrics.js';

/** `GET /metrics` on the serving port, as SageMaker's detailed observability scrapes it. */
export function metricsRoutes(metrics: Metrics) {
  return async (app: FastifyInstance) => {
    app.get('/metrics', async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  };
}
