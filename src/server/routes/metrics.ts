import type { FastifyInstance } from 'fastify';
import type { ClusterLink } from '../../cluster.js';
import type { Metrics } from '../../metrics.js';

/**
 * `GET /metrics` on the serving port, as SageMaker's detailed observability scrapes it. With
 * several server processes any of them answers for all: the primary sums their registries.
 */
export function metricsRoutes(metrics: Metrics, cluster: ClusterLink | undefined) {
  return async (app: FastifyInstance) => {
    app.get('/metrics', async (_request, reply) =>
      reply.type(metrics.registry.contentType).send(await (cluster ? cluster.metrics() : metrics.registry.metrics())),
    );
  };
}
