/**
 * `/models`: what is loaded, in every mode; and, under SageMaker multi-model endpoints
 * (`SAGEMAKER_MULTI_MODEL=true`), the container API SageMaker drives: load, list, describe and
 * unload (docs/many-models.md). One shape for every mode, `modelName` and `modelUrl` first, so
 * one client reads both.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { InferdError } from '../../errors.js';
import { checkModelEntries, modelDirectoryOf } from '../../repository/model-source.js';
import type { ModelView, Runtime } from '../../runtime/runtime.js';

export interface ModelRoutesSettings {
  /** Adds SageMaker's `POST /models` and `DELETE /models/{name}`. */
  readonly multiModel: boolean;
}

/** As MMS: a page holds at most 100 models unless `limit` says fewer. */
const MAX_PAGE_SIZE = 100;
const MAX_MODEL_NAME_LENGTH = 1024;

const badRequest = (message: string) => new InferdError('INFERD_ERR_BAD_REQUEST', message);

function describe(view: ModelView, runtime: Runtime) {
  const stats = runtime.statsOf(view.name);
  return {
    modelName: view.name,
    modelUrl: view.url,
    state: view.state,
    ...view.info,
    footprintBytes: view.footprintBytes,
    footprintSource: view.footprintSource,
    loadMs: view.loadMs === undefined ? undefined : Math.round(view.loadMs),
    stats,
  };
}

/** The page after `token` (the last name of the previous page, base64url), at most `limit` long. */
function page(request: FastifyRequest, views: readonly ModelView[]) {
  const query = request.query as Record<string, string | undefined>;
  const limit = query.limit === undefined ? MAX_PAGE_SIZE : Number(query.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) throw badRequest(`limit must be an integer from 1 to ${MAX_PAGE_SIZE}`);
  const token = query.next_page_token;
  const after = token === undefined || token === '' ? undefined : Buffer.from(token, 'base64url').toString('utf8');
  const rest = after === undefined ? views : views.filter((view) => view.name > after);
  const models = rest.slice(0, limit);
  const more = rest.length > limit;
  return { models, nextPageToken: more ? Buffer.from(models.at(-1)!.name, 'utf8').toString('base64url') : undefined };
}

/** The body of SageMaker's `POST /models`: `{"model_name": "...", "url": "..."}`. */
function loadRequestOf(body: unknown): { name: string; url: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.isBuffer(body) ? body.toString('utf8') : '');
  } catch {
    throw new InferdError('INFERD_ERR_BODY_MALFORMED', 'the body must be JSON: {"model_name": "...", "url": "..."}');
  }
  const { model_name: name, url } = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  if (typeof name !== 'string' || name === '' || name.length > MAX_MODEL_NAME_LENGTH || [...name].some((c) => c < ' ')) {
    throw badRequest(`model_name must be a string of 1 to ${MAX_MODEL_NAME_LENGTH} printable characters`);
  }
  if (typeof url !== 'string' || url === '') throw badRequest('url must be the path of the model directory');
  return { name, url };
}

export function modelRoutes(runtime: Runtime, { multiModel }: ModelRoutesSettings) {
  return async (app: FastifyInstance) => {
    app.get('/models', async (request) => {
      const { models, nextPageToken } = page(request, runtime.list());
      return { models: models.map((view) => describe(view, runtime)), nextPageToken };
    });

    app.get('/models/:name', async (request) => {
      const { name } = request.params as { name: string };
      return describe(runtime.describe(name), runtime);
    });

    if (!multiModel) return;

    app.post('/models', async (request, reply) => {
      const { name, url } = loadRequestOf(request.body);
      const dir = await modelDirectoryOf(url);
      await checkModelEntries(dir, `url ${url}`);
      request.log.info({ model: name, url, targetModel: request.headers['x-amzn-sagemaker-target-model'] }, `loading model ${name}`);
      await runtime.load(name, { dir, url });
      return reply.type('application/json').send({ status: `Model "${name}" loaded` });
    });

    app.delete('/models/:name', async (request, reply) => {
      const { name } = request.params as { name: string };
      await runtime.unload(name);
      return reply.type('application/json').send({ status: `Model "${name}" unloaded` });
    });
  };
}
