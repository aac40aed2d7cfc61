/**
 * SageMaker's `InvokeEndpointAsync`: `POST /endpoints/:endpointName/async-invocations` (what
 * the AWS SDKs call) and `POST /async-invocations`, answered 202 once the request is durable;
 * `GET /async-invocations/:inferenceId` tells where it stands.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { InferdError } from '../../errors.js';
import type { AsyncJob } from '../../modes/async/queue.js';
import type { AsyncInference } from '../../modes/async/service.js';
import { verifiedBody } from '../auth/signed-payloads.js';
import type { RequestBodies } from '../request-body.js';

const header = (max: number) => z.string().min(1).max(max).optional();

/** Printable ASCII without slashes, not starting with a dot: it names the output objects. */
const INFERENCE_ID = /^(?!\.)[\x21-\x2e\x30-\x5b\x5d-\x7e]{1,64}$/;

const AsyncHeadersSchema = z.object({
  'x-amzn-sagemaker-inputlocation': header(1024),
  'x-amzn-sagemaker-content-type': header(1024),
  'x-amzn-sagemaker-accept': header(1024),
  'x-amzn-sagemaker-custom-attributes': z
    .string()
    .max(1024)
    .regex(/^[\x20-\x7e]*$/, 'must be printable ASCII')
    .optional(),
  'x-amzn-sagemaker-target-model': header(1024),
  'x-amzn-sagemaker-inference-id': z.string().regex(INFERENCE_ID, 'must be 1-64 printable ASCII characters, no slash, not starting with a dot').optional(),
  'x-amzn-sagemaker-requestttlseconds': z.coerce.number().int().min(60).max(21_600).default(21_600),
  'x-amzn-sagemaker-invocationtimeoutseconds': z.coerce.number().int().min(1).max(3_600).default(900),
  'content-type': z.string().optional(),
  'content-length': z.coerce.number().int().min(0).optional(),
  'transfer-encoding': z.string().optional(),
});

function parseHeaders(request: FastifyRequest) {
  const parsed = AsyncHeadersSchema.safeParse(request.headers);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InferdError('INFERD_ERR_BAD_REQUEST', `${String(issue.path[0])}: ${issue.message}`);
  }
  return parsed.data;
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

function statusBody(job: AsyncJob) {
  return {
    inferenceId: job.inferenceId,
    status: job.status,
    outputLocation: job.outputLocation,
    failureLocation: job.failureLocation,
    failureReason: job.failureReason,
    inputLocation: job.inputInline ? undefined : job.inputLocation,
    receivedTime: iso(job.receivedAtMs),
    startedTime: iso(job.startedAtMs),
    finishedTime: iso(job.finishedAtMs),
    expiresTime: iso(job.receivedAtMs + job.requestTtlS * 1000),
    attempts: job.attempts,
  };
}

export function asyncInvocationRoutes(service: AsyncInference, bodies: RequestBodies) {
  const submit = async (request: FastifyRequest<{ Params: { endpointName?: string } }>, reply: FastifyReply) => {
    const headers = parseHeaders(request);
    const hasBody = (headers['content-length'] ?? 0) > 0 || headers['transfer-encoding'] !== undefined;
    const inputLocation = headers['x-amzn-sagemaker-inputlocation'];
    if (inputLocation !== undefined && hasBody) {
      throw new InferdError('INFERD_ERR_BAD_REQUEST', 'send the payload in the body or name it in X-Amzn-SageMaker-InputLocation, not both');
    }
    const body = hasBody ? verifiedBody(request, bodies.stream(request.raw)) : undefined;
    // The body is read only if the request is accepted; whatever is left of it is read before
    // the answer (here, or in the error handler) so that the client hears it.
    const submitted = service.submit({
      endpointName: request.params.endpointName,
      inferenceId: headers['x-amzn-sagemaker-inference-id'],
      inputLocation,
      body,
      declaredBytes: headers['content-length'],
      contentType: headers['x-amzn-sagemaker-content-type'] ?? (inputLocation === undefined ? headers['content-type'] : undefined),
      accept: headers['x-amzn-sagemaker-accept'],
      customAttributes: headers['x-amzn-sagemaker-custom-attributes'],
      targetModel: headers['x-amzn-sagemaker-target-model'],
      requestTtlS: headers['x-amzn-sagemaker-requestttlseconds'],
      invocationTimeoutS: headers['x-amzn-sagemaker-invocationtimeoutseconds'],
    });
    const { job } = await submitted.finally(() => body?.destroy());
    if (!(await bodies.discardRest(request.raw))) reply.header('connection', 'close');
    return reply
      .code(202)
      .header('x-amzn-sagemaker-outputlocation', job.outputLocation)
      .header('x-amzn-sagemaker-failurelocation', job.failureLocation)
      .send({ InferenceId: job.inferenceId });
  };

  return async (app: FastifyInstance) => {
    // Inline payloads reach the service as streams, whatever their type and size, decoded from
    // their Content-Encoding: it keeps small ones in the queue record, stages the others, and
    // counts them against its own limits.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));
    app.post('/async-invocations', submit);
    app.post('/endpoints/:endpointName/async-invocations', { config: { runtimeApi: 'async' } }, submit);
    app.get('/async-invocations/:inferenceId', async (request: FastifyRequest<{ Params: { inferenceId: string } }>) =>
      statusBody(await service.status(request.params.inferenceId)),
    );
  };
}
