import type { FastifyInstance } from 'fastify';
import type { ClusterLink } from '../../cluster.js';
import { InferdError , shuttingDown } from '../../errors.js';
import { sendError } from '../error-handler.js';

/** `/ping` reads two fields: it never waits behind inference or a model load. */
export interface HealthContext {
  /** Ready once the model of `--model-dir` and the repository's preloads are loaded; with none, at once. */
  readonly readiness: { readonly state: 'loading' | 'ready' };
  readonly lifecycle: { readonly closing: boolean };
  /** With several server processes, /ping is healthy only when all of them are. */
  readonly cluster: ClusterLink | undefined;
  readonly executionParameters: () => object;
}

export function healthRoutes({ readiness, lifecycle, cluster, executionParameters }: HealthContext) {
  return async (app: FastifyInstance) => {
    app.get('/ping', async (_request, reply) => {
      if (lifecycle.closing) return sendError(reply, shuttingDown());
      if (readiness.state !== 'ready') return sendError(reply, new InferdError('INFERD_ERR_NOT_READY', 'the model is loading'));
      if (cluster && !cluster.allReady()) {
        return sendError(reply, new InferdError('INFERD_ERR_NOT_READY', 'other server processes are still loading'));
      }
      return reply.type('application/json').send('{"status":"Healthy"}');
    });

    app.get('/execution-parameters', async () => executionParameters());
  };
}
