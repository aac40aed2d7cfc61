import type { FastifyInstance } from 'fastify';
import type { DataPlane } from '../../data-plane.js';
import type { Runtime } from '../../runtime/runtime.js';
import type { RequestBodies } from '../request-body.js';

export interface OipContext {
  readonly dataPlane: DataPlane;
  readonly runtime: Runtime;
  readonly bodies: RequestBodies;
  readonly readiness: { readonly state: 'loading' | 'ready' };
  readonly lifecycle: { readonly closing: boolean };
}

export function oipRoutes(_context: OipContext) {
  return async (_app: FastifyInstance) => {};
}
