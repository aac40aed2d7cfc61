import type { FastifyInstance } from 'fastify';
import type { ClusterLink } from '../../cluster.js';
import type { Config } from '../../config/schema.js';
import { InferdError } from '../../errors.js';
import type { Runtime } from '../../runtime/runtime.js';
import { sendError } from '../error-handler.js';

/** `/ping` reads one field: it never waits behind inference. */
export interface HealthContext {
  readonly lifecycle: { readonly closing: boolean };
  /** With several server processes, /ping is healthy only when all of them are. */
  readonly cluster: ClusterLink | undefined;
}

export function healthRoutes(runtime: Runtime, config: Config, { lifecycle, cluster }: HealthContext) {
  return async (app: FastifyInstance) => {
    app.get('/ping', async (_request, reply) => {
      switch (lifecycle.closing ? 'draining' : runtime.state) {
        case 'ready':
          if (cluster && !cluster.allReady()) {
            return sendError(reply, new InferdError('INFERD_ERR_NOT_READY', 'other server processes are still loading'));
          }
          return reply.type('application/json').send('{"status":"Healthy"}');
        case 'draining':
        case 'closed':
          return sendError(reply, new InferdError('INFERD_ERR_SHUTTING_DOWN', 'the server is shutting down'));
        default:
          return sendError(reply, new InferdError('INFERD_ERR_NOT_READY', `the model is ${runtime.state}`));
      }
    });

    app.get('/execution-parameters', async () => ({
      MaxConcurrentTransforms: config.batch.maxConcurrentTransforms ?? runtime.model?.maxInstances ?? 1,
      BatchStrategy: config.batch.strategy,
      MaxPayloadInMB: config.server.maxPayloadMb,
    }));

    app.get('/models', async () => ({
      state: runtime.state,
      models: runtime.model ? [{ ...runtime.model, stats: runtime.stats() }] : [],
    }));
  };
}
