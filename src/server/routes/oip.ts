/**
 * The Open Inference Protocol v2 over REST (KServe v2, Triton's HTTP API): server and model
 * health, metadata and `infer`, in the v2 JSON tensor form, over the same data plane as every
 * other door. Errors on these paths answer `{"error": message}` with the status of their inferd
 * code (error-handler.ts, isOipRequest). Models have no versions: a `/versions/{v}` path serves
 * the one model whatever `v` says. The body of `infer` is read as v2 JSON whatever its
 * Content-Type says, as Triton and KServe read it (`curl -d` sends a form type); the binary
 * tensor data extension is refused (415).
 */
import { readFile } from 'node:fs/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { v2Datatype, parseV2Request } from '../../codecs/json.js';
import type { TensorSpec } from '../../codecs/tensor.js';
import type { DataPlane } from '../../data-plane.js';
import { InferdError, shuttingDown, unsupportedMediaType } from '../../errors.js';
import type { Metrics } from '../../metrics.js';
import { invokeWhole } from '../../modes/invocation.js';
import type { Runtime } from '../../runtime/runtime.js';
import { toInferdError } from '../error-handler.js';
import { clientGone } from '../client-gone.js';

export interface OipContext {
  readonly dataPlane: DataPlane;
  readonly runtime: Runtime;
  readonly readiness: { readonly state: 'loading' | 'ready' };
  readonly lifecycle: { readonly closing: boolean };
  readonly metrics: Metrics;
}

/** Sent by clients of the binary tensor data extension: the length of the JSON part of the body. */
const BINARY_HEADER = 'inference-header-content-length';
/** Triton's platform names: ONNX Runtime's is `onnxruntime_onnx`; TF.js has none there. */
const PLATFORMS = { onnx: 'onnxruntime_onnx', tfjs: 'tensorflowjs' } as const;


/** inferd's version, for the server metadata; absent when package.json cannot be read. */
async function packageVersion(): Promise<string | undefined> {
  try {
    // dist/src/server/routes/oip.js, four levels below the package root.
    const text = await readFile(new URL('../../../../package.json', import.meta.url), 'utf8');
    const { version } = JSON.parse(text) as { version?: unknown };
    return typeof version === 'string' ? version : undefined;
  } catch {
    return undefined;
  }
}

/** A tensor as the metadata describes it: dynamic dimensions are -1. */
const tensorMetadata = (spec: TensorSpec) => ({ name: spec.name, datatype: v2Datatype(spec.dtype), shape: spec.shape.map((d) => d ?? -1) });

/** The model a path names; `%2F` in a repository path arrives decoded (`a/b`). */
const modelNameOf = (request: FastifyRequest) => (request.params as { name: string }).name;

export function oipRoutes({ dataPlane, runtime, readiness, lifecycle, metrics }: OipContext) {
  return async (app: FastifyInstance) => {
    // Inferences are counted as /invocations' are: by model, status class and error code.
    const errorCodes = new WeakMap<FastifyRequest, string>();
    // The model each inference ran on; 'none' for those refused before: a label per model served,
    // never one per name a client made up.
    const inferences = new WeakMap<FastifyRequest, string>();
    app.addHook('onError', (request, _reply, error, done) => {
      errorCodes.set(request, toInferdError(error).code);
      done();
    });
    app.addHook('onResponse', (request, reply, done) => {
      const model = inferences.get(request);
      if (model !== undefined) metrics.request(model, reply.statusCode, reply.elapsedTime, errorCodes.get(request));
      done();
    });

    const version = await packageVersion();
    const serverMetadata = Buffer.from(JSON.stringify({ name: 'inferd', version, extensions: [] }));
    const json = (reply: FastifyReply, body: unknown) => reply.type('application/json').send(Buffer.from(JSON.stringify(body)));

    app.get('/v2', async (_request, reply) => reply.type('application/json').send(serverMetadata));

    // Every request is refused while draining (app.ts), but these say so whoever asks.
    app.get('/v2/health/live', async (_request, reply) => {
      if (lifecycle.closing) throw shuttingDown();
      return json(reply, { live: true });
    });

    app.get('/v2/health/ready', async (_request, reply) => {
      if (lifecycle.closing) throw shuttingDown();
      if (readiness.state !== 'ready') throw new InferdError('INFERD_ERR_NOT_READY', 'the server is still loading its models');
      return json(reply, { ready: true });
    });

    const modelMetadata = async (request: FastifyRequest, reply: FastifyReply) => {
      const model = await dataPlane.named(modelNameOf(request));
      return json(reply, {
        name: model.name,
        versions: [],
        platform: PLATFORMS[model.backend],
        inputs: model.signature.inputs.map(tensorMetadata),
        outputs: model.signature.outputs.map(tensorMetadata),
      });
    };
    app.get('/v2/models/:name', modelMetadata);
    app.get('/v2/models/:name/versions/:version', modelMetadata);

    // A probe: it never loads a repository model, nor counts as a use that keeps one from eviction.
    const modelReady = async (request: FastifyRequest, reply: FastifyReply) => {
      const name = modelNameOf(request);
      if (lifecycle.closing) throw shuttingDown();
      runtime.model(name, { use: false });
      return json(reply, { name, ready: true });
    };
    app.get('/v2/models/:name/ready', modelReady);
    app.get('/v2/models/:name/versions/:version/ready', modelReady);

    const infer = async (request: FastifyRequest, reply: FastifyReply) => {
      inferences.set(request, 'none');
      if (request.headers[BINARY_HEADER] !== undefined) {
        throw unsupportedMediaType(`the binary tensor data extension (Inference-Header-Content-Length) is not supported; send the tensors as JSON "data"`);
      }
      const model = await dataPlane.named(modelNameOf(request));
      inferences.set(request, model.name);
      const body = (request.body as Buffer | undefined) ?? Buffer.alloc(0);
      const { decoder, encoder } = parseV2Request(body);
      const answer = await invokeWhole(runtime, model, { body, decoder, encoder, isCancelled: clientGone(reply) });
      metrics.codec(model.name, 'decode', answer.decodeMs);
      metrics.queueWait(model.name, answer.queueMs);
      metrics.codec(model.name, 'encode', answer.encodeMs);
      return reply.type('application/json').send(answer.body);
    };
    app.post('/v2/models/:name/infer', infer);
    app.post('/v2/models/:name/versions/:version/infer', infer);
  };
}
