/**
 * SageMaker's runtime API as unchanged clients see it, against the real server and models: the
 * AWS SDK for JavaScript v3 and boto3 (Debian's python3-boto3) raise their modelled exceptions,
 * retry exactly what SageMaker lets them retry, read the variant and the request id, and
 * `InvokeEndpointWithResponseStream` delivers a record stream part by part.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  InvokeEndpointCommand,
  InvokeEndpointWithResponseStreamCommand,
  ModelError,
  ModelNotReadyException,
  ModelStreamError,
  SageMakerRuntimeClient,
  ServiceUnavailable,
  ValidationError,
} from '@aws-sdk/client-sagemaker-runtime';
import { ERROR_CODES, InferdError, type ErrorCode } from '../../src/errors.js';
import { runtimeApiError, type RuntimeApiRoute } from '../../src/server/runtime-api.js';
import { MODELS, REPO_ROOT, invoke, startServer, type TestServer } from '../helper.js';
import { writeNpy } from '../npy.js';
import { counterValue, until } from '../async/toolkit.js';

const FOREST_ROW = Array.from({ length: 20 }, (_, i) => i / 10).join(',');
const SLOW_ROW = Array(256).fill(0.25).join(',');
const client = (server: TestServer) =>
  new SageMakerRuntimeClient({ endpoint: server.url, region: 'us-east-1', credentials: { accessKeyId: 'unused', secretAccessKey: 'unused' } });
const metrics = async (server: TestServer) => (await fetch(`${server.url}/metrics`)).text();
const gauge = async (server: TestServer, series: string) => counterValue(await metrics(server), series);

/** Rows of the slow model as .npy: a body that holds its one worker for seconds. */
const slowNpy = (rows: number) => writeNpy('<f4', [rows, 256], new Float32Array(rows * 256).fill(0.25));
const NPY = { 'content-type': 'application/x-npy', accept: 'application/x-npy' };

let forest: TestServer;
before(async () => {
  forest = await startServer(MODELS.forest, { env: { INFERD_VARIANT_NAME: 'variant-a' } });
});
after(() => forest?.http.close());

describe('InvokeEndpoint through the AWS SDK for JavaScript v3', () => {
  it('names the variant and the request: the inference id when the client sent one', async () => {
    const rt = client(forest);
    const named = await rt.send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: FOREST_ROW, InferenceId: 'req-42' }));
    assert.equal(named.InvokedProductionVariant, 'variant-a');
    assert.equal(named.$metadata.requestId, 'req-42');
    const anonymous = await rt.send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: FOREST_ROW }));
    assert.match(anonymous.$metadata.requestId ?? '', /^[0-9a-f-]{36}$/);
  });

  it('a bad record raises ModelError with OriginalStatusCode and OriginalMessage, tried once', async () => {
    const error = await client(forest)
      .send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: '1,2,3' }))
      .catch((e: unknown) => e);
    assert.ok(error instanceof ModelError, String(error));
    assert.equal(error.$metadata.httpStatusCode, 424);
    assert.equal(error.$metadata.attempts, 1);
    assert.equal(error.OriginalStatusCode, 422);
    assert.equal((JSON.parse(error.OriginalMessage!) as { code: string }).code, 'INFERD_ERR_INPUT_INVALID');
    assert.match(error.message, /^Received client error \(422\) from primary with message "/);
  });

  it('a session id raises ValidationError: stateful sessions are not enabled', async () => {
    const error = await client(forest)
      .send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: FOREST_ROW, SessionId: 'NEW_SESSION' }))
      .catch((e: unknown) => e);
    assert.ok(error instanceof ValidationError, String(error));
    assert.match(error.message, /stateful sessions not enabled/);
    // /invocations answers the same refusal in the container's own terms.
    const container = await invoke(forest.url, FOREST_ROW, { 'content-type': 'text/csv', 'x-amzn-sagemaker-session-id': 'abc' });
    assert.equal(container.status, 400);
    assert.equal((JSON.parse(container.text) as { code: string }).code, 'INFERD_ERR_SESSIONS_DISABLED');
  });
});

describe('every path under /endpoints/', () => {
  it('answers an unknown route or a wrong method as the runtime API would: ValidationError, with the variant', async () => {
    for (const [method, path, status] of [
      ['GET', '/endpoints/ep/invocations', 400],
      ['POST', '/endpoints/ep/nothing-here', 400],
    ] as const) {
      const response = await fetch(`${forest.url}${path}`, { method });
      assert.equal(response.status, status, `${method} ${path}`);
      assert.equal(response.headers.get('x-amzn-errortype'), 'ValidationError');
      assert.equal(response.headers.get('x-amzn-invoked-production-variant'), 'variant-a');
      assert.match(((await response.json()) as { Message: string }).Message, /^INFERD_ERR_(METHOD_NOT_ALLOWED|NOT_FOUND): /);
    }
    // The container's own routes keep inferd's answers.
    assert.equal((await fetch(`${forest.url}/invocations`)).status, 405);
  });
});

describe('the runtime API error of each inferd code', () => {
  const cases: Array<[ErrorCode, RuntimeApiRoute, string, number]> = [
    ['INFERD_ERR_INPUT_INVALID', 'invoke', 'ModelError', 424],
    ['INFERD_ERR_TIMEOUT', 'invoke', 'ModelError', 424],
    ['INFERD_ERR_INTERNAL', 'invoke', 'ModelError', 424],
    ['INFERD_ERR_QUEUE_FULL', 'invoke', 'ServiceUnavailable', 503],
    ['INFERD_ERR_SHUTTING_DOWN', 'stream', 'ServiceUnavailable', 503],
    ['INFERD_ERR_NOT_READY', 'invoke', 'ModelNotReadyException', 429],
    ['INFERD_ERR_PAYLOAD_TOO_LARGE', 'invoke', 'ValidationError', 400],
    ['INFERD_ERR_SESSIONS_DISABLED', 'invoke', 'ValidationError', 400],
    // An async submission runs nothing: what would be the model's error is the request's.
    ['INFERD_ERR_UNSUPPORTED_MEDIA_TYPE', 'async', 'ValidationError', 400],
    ['INFERD_ERR_UNSUPPORTED_MEDIA_TYPE', 'invoke', 'ModelError', 424],
    ['INFERD_ERR_STORAGE_UNAVAILABLE', 'async', 'ServiceUnavailable', 503],
  ];
  for (const [code, route, type, status] of cases) {
    it(`${code} on ${route}: ${type} ${status}`, () => {
      const answer = runtimeApiError(new InferdError(code, 'why'), route);
      assert.equal(answer.type, type);
      assert.equal(answer.status, status);
      if (type === 'ModelError') {
        assert.equal(answer.body.OriginalStatusCode, ERROR_CODES[code].status);
        assert.deepEqual(JSON.parse(String(answer.body.OriginalMessage)), { code, message: 'why' });
      } else {
        assert.equal(answer.body.Message, `${code}: why`);
      }
    });
  }

  it('a model still loading raises ModelNotReadyException in the SDK', async () => {
    const loading = await startServer(MODELS.forest, { load: false });
    try {
      const rt = new SageMakerRuntimeClient({ endpoint: loading.url, region: 'us-east-1', credentials: { accessKeyId: 'unused', secretAccessKey: 'unused' }, maxAttempts: 1 });
      const error = await rt.send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: FOREST_ROW })).catch((e: unknown) => e);
      assert.ok(error instanceof ModelNotReadyException, String(error));
      assert.equal(error.$metadata.httpStatusCode, 429);
    } finally {
      await loading.http.close();
    }
  });
});

describe('a timed-out invocation', () => {
  let slow: TestServer;
  before(async () => {
    slow = await startServer(MODELS.slow, { env: { SAGEMAKER_MODEL_SERVER_TIMEOUT: '0.5', SAGEMAKER_MAX_PAYLOAD_IN_MB: '32' } });
  });
  after(() => slow?.http.close());

  it('raises ModelError ("server error (0)") and is run exactly once: the SDK does not retry it', async () => {
    const error = await client(slow)
      .send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'application/x-npy', Accept: 'application/x-npy', Body: slowNpy(24_000) }))
      .catch((e: unknown) => e);
    assert.ok(error instanceof ModelError, String(error));
    assert.equal(error.$metadata.attempts, 1);
    assert.equal(error.OriginalStatusCode, 504);
    assert.match(error.message, /^Received server error \(0\) from primary/);
    // The inference cannot be interrupted: it runs to its end, once.
    await until(async () => ((await gauge(slow, 'inferd_busy_workers{model="slow-matmul"}')) === 0 ? true : undefined), 60_000, 'the worker to finish');
    const exposition = await metrics(slow);
    assert.equal(counterValue(exposition, 'inferd_request_errors_total{model="slow-matmul",code="INFERD_ERR_TIMEOUT"}'), 1);
    assert.equal(counterValue(exposition, 'inferd_rows_inferred_total{model="slow-matmul"}'), 24_000);
  });

  it('raises ModelError in boto3 too, with no retry: one more timeout, one more run', async () => {
    const before = await metrics(slow);
    const body = `${Buffer.from(slowNpy(24_000)).toString('base64')}`;
    const result = await boto3(
      `${BOTO3_CLIENT}
import base64
try:
    runtime.invoke_endpoint(EndpointName='ep', ContentType='application/x-npy', Accept='application/x-npy',
                            Body=base64.b64decode(sys.stdin.read()))
    print(json.dumps({}))
except runtime.exceptions.ModelError as error:
    print(json.dumps({'original': error.response['OriginalStatusCode'], 'retries': error.response['ResponseMetadata']['RetryAttempts']}))
`,
      slow.url,
      body,
    );
    assert.deepEqual(result, { original: 504, retries: 0 });
    await until(async () => ((await gauge(slow, 'inferd_busy_workers{model="slow-matmul"}')) === 0 ? true : undefined), 60_000, 'the worker to finish');
    const now = await metrics(slow);
    const delta = (series: string) => counterValue(now, series) - counterValue(before, series);
    assert.equal(delta('inferd_request_errors_total{model="slow-matmul",code="INFERD_ERR_TIMEOUT"}'), 1);
    assert.equal(delta('inferd_rows_inferred_total{model="slow-matmul"}'), 24_000);
  });
});

describe('a full queue', () => {
  let slow: TestServer;
  before(async () => {
    slow = await startServer(MODELS.slow, { env: { INFERD_MAX_QUEUE_SIZE: '1', SAGEMAKER_MAX_PAYLOAD_IN_MB: '32' } });
  });
  after(() => slow?.http.close());

  it('raises ServiceUnavailable, which the default client retries until it succeeds', async () => {
    // A long request runs, a second takes the other batch slot, a third fills the queue of one.
    const blocker = invoke(slow.url, slowNpy(24_000), NPY);
    await until(async () => ((await gauge(slow, 'inferd_busy_workers{model="slow-matmul"}')) === 1 ? true : undefined), 20_000, 'the long request to run');
    const held = async (concurrent: number, queued: number) => {
      const exposition = await metrics(slow);
      const now = [counterValue(exposition, 'inferd_concurrent_requests'), counterValue(exposition, 'inferd_queued_requests{model="slow-matmul"}')];
      return now[0] === concurrent && now[1] === queued ? true : undefined;
    };
    // One at a time: sent together they would be merged into the one batch in the second slot.
    const fillers = [invoke(slow.url, slowNpy(1), NPY)];
    await until(() => held(2, 0), 20_000, 'the second request to take the other slot');
    fillers.push(invoke(slow.url, slowNpy(1), NPY));
    await until(() => held(3, 1), 20_000, 'the queue to fill');

    const rt = client(slow);
    const refusals: number[] = [];
    const retryAfter: Array<string | undefined> = [];
    // Sits inside the SDK's own retry loop and only watches: when an attempt is refused, it lets
    // the SDK see the refusal once the queue has room again, so that the retry the SDK decides
    // on (after its own back-off) finds room whatever the speed of the machine.
    rt.middlewareStack.add(
      (next) => async (args) => {
        try {
          return await next(args);
        } catch (error) {
          if (error instanceof ServiceUnavailable) {
            refusals.push(error.$metadata.httpStatusCode ?? 0);
            retryAfter.push((error as { $response?: { headers: Record<string, string> } }).$response?.headers['retry-after']);
            await blocker;
            await until(async () => ((await gauge(slow, 'inferd_queued_requests{model="slow-matmul"}')) === 0 ? true : undefined), 20_000, 'room in the queue');
          }
          throw error;
        }
      },
      { step: 'finalizeRequest', priority: 'low', name: 'watchRefusals' },
    );
    const answer = await rt.send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: SLOW_ROW }));
    assert.deepEqual(refusals, [503]);
    assert.deepEqual(retryAfter, ['1']);
    assert.equal(answer.$metadata.attempts, 2);
    assert.equal((await blocker).status, 200);
    for (const filler of await Promise.all(fillers)) assert.equal(filler.status, 200);
    assert.equal(await gauge(slow, 'inferd_request_errors_total{model="slow-matmul",code="INFERD_ERR_QUEUE_FULL"}'), 1);
  });
});

describe('InvokeEndpointWithResponseStream', () => {
  let slow: TestServer;
  before(async () => {
    slow = await startServer(MODELS.slow);
  });
  after(() => slow?.http.close());

  const records = (count: number) => Array.from({ length: count }, () => SLOW_ROW).join('\n') + '\n';

  // That the first part goes out before the last is computed is shown, whatever the speeds, on a
  // runtime whose inferences end on command: test/modes/streamed-invocation.test.ts.
  it('yields a 500-record CSV answer in parts of 64 records; together, the InvokeEndpoint answer', async () => {
    const rt = client(slow);
    const whole = await rt.send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Accept: 'text/csv', Body: records(500) }));
    const streamed = await rt.send(new InvokeEndpointWithResponseStreamCommand({ EndpointName: 'ep', ContentType: 'text/csv', Accept: 'text/csv', Body: records(500) }));
    assert.equal(streamed.ContentType, 'text/csv');
    assert.equal(streamed.InvokedProductionVariant, 'AllTraffic');
    const parts: Buffer[] = [];
    for await (const event of streamed.Body!) {
      assert.ok(event.PayloadPart, JSON.stringify(event));
      parts.push(Buffer.from(event.PayloadPart.Bytes!));
    }
    assert.deepEqual(parts.map((part) => part.toString().trim().split('\n').length), [64, 64, 64, 64, 64, 64, 64, 52]);
    assert.deepEqual(Buffer.concat(parts), Buffer.from(whole.Body!));
  });

  it('InvokeEndpoint itself never streams: a record failing late is still a ModelError, tried once', async () => {
    const error = await client(slow)
      .send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Accept: 'application/jsonlines', Body: records(128) + '1,2,3\n' }))
      .catch((e: unknown) => e);
    assert.ok(error instanceof ModelError, String(error));
    assert.equal(error.$metadata.attempts, 1);
    assert.equal(error.OriginalStatusCode, 422);
  });

  it('a record that fails after the first part ends the stream with ModelStreamError', async () => {
    const body = records(128) + '1,2,3\n';
    const streamed = await client(slow).send(new InvokeEndpointWithResponseStreamCommand({ EndpointName: 'ep', ContentType: 'text/csv', Accept: 'text/csv', Body: body }));
    const parts: Buffer[] = [];
    const error = await (async () => {
      for await (const event of streamed.Body!) parts.push(Buffer.from(event.PayloadPart!.Bytes!));
    })().catch((e: unknown) => e);
    assert.ok(error instanceof ModelStreamError, String(error));
    assert.equal(error.ErrorCode, 'INFERD_ERR_INPUT_INVALID');
    assert.equal(Buffer.concat(parts).toString().trim().split('\n').length, 128, 'the two good parts came first');
  });

  it('a request that fails before any part is a plain ModelError', async () => {
    const error = await client(slow)
      .send(new InvokeEndpointWithResponseStreamCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: '1,2,3\n' }))
      .catch((e: unknown) => e);
    assert.ok(error instanceof ModelError, String(error));
    assert.equal(error.OriginalStatusCode, 422);
  });

  it('a late failure on /invocations breaks off the chunked answer, or ends the events with an error event, and is counted', async () => {
    const errors = () => gauge(slow, 'inferd_request_errors_total{model="slow-matmul",code="INFERD_ERR_INPUT_INVALID"}');
    const before = await errors();
    const broken = await fetch(`${slow.url}/invocations`, { method: 'POST', headers: { 'content-type': 'text/csv', accept: 'application/jsonlines' }, body: records(128) + '1,2,3\n' })
      .then((response) => response.text())
      .then(
        () => 'read whole',
        (error: Error & { cause?: { code?: string } }) => error.cause?.code ?? error.message,
      );
    assert.notEqual(broken, 'read whole', 'the client cannot take a partial answer for a whole one');
    const events = await invoke(slow.url, records(128) + '1,2,3\n', { 'content-type': 'text/csv', accept: 'text/event-stream' });
    assert.equal(events.status, 200);
    assert.match(events.text, /\n\nevent: error\ndata: \{"code":"INFERD_ERR_INPUT_INVALID"/);
    await until(async () => ((await errors()) - before === 2 ? true : undefined), 20_000, 'both failures counted');
  });

  it('/invocations streams the same records as Server-Sent Events, and as chunked JSON Lines', async () => {
    const lines = await invoke(slow.url, records(120), { 'content-type': 'text/csv', accept: 'application/jsonlines' });
    assert.equal(lines.status, 200);
    assert.equal(lines.headers.get('transfer-encoding'), 'chunked');
    const events = await invoke(slow.url, records(120), { 'content-type': 'text/csv', accept: 'text/event-stream' });
    assert.equal(events.headers.get('content-type'), 'text/event-stream');
    const data = events.text.split('\n\n').filter(Boolean).map((frame) => frame.replace(/^data: /, ''));
    assert.deepEqual(data, lines.text.trim().split('\n'));
  });
});

/** Runs a Python snippet with Debian's boto3 (scripts/install-test-tools.sh puts it in .tools). */
async function boto3(script: string, url: string, stdin = ''): Promise<Record<string, unknown>> {
  const run = promisify(execFile)(`${REPO_ROOT}.tools/bin/python3-boto3`, ['-c', script, url], {
    env: { HOME: '/nonexistent', PATH: process.env.PATH ?? '' },
    maxBuffer: 1024 * 1024,
  });
  run.child.stdin!.end(stdin);
  return JSON.parse((await run).stdout) as Record<string, unknown>;
}

const BOTO3_CLIENT = `
import json, sys, boto3
runtime = boto3.client('sagemaker-runtime', endpoint_url=sys.argv[1], region_name='us-east-1',
                       aws_access_key_id='unused', aws_secret_access_key='unused')
`;

describe('InvokeEndpoint through boto3', () => {
  it('reads the variant and the request id, and raises ModelError with OriginalStatusCode, not retried', async () => {
    const result = await boto3(
      `${BOTO3_CLIENT}
ok = runtime.invoke_endpoint(EndpointName='ep', ContentType='text/csv', Body='${FOREST_ROW}', InferenceId='py-7')
try:
    runtime.invoke_endpoint(EndpointName='ep', ContentType='text/csv', Body='1,2,3')
    raised = None
except runtime.exceptions.ModelError as error:
    raised = error.response
print(json.dumps({'variant': ok['InvokedProductionVariant'], 'requestId': ok['ResponseMetadata']['RequestId'],
                  'code': raised['Error']['Code'], 'original': raised['OriginalStatusCode'],
                  'retries': raised['ResponseMetadata']['RetryAttempts'], 'status': raised['ResponseMetadata']['HTTPStatusCode']}))
`,
      forest.url,
    );
    assert.deepEqual(result, { variant: 'variant-a', requestId: 'py-7', code: 'ModelError', original: 422, retries: 0, status: 424 });
  });

  it('a session header raises ValidationError', async () => {
    // This botocore predates SessionId; the header is what newer ones send for it.
    const result = await boto3(
      `${BOTO3_CLIENT}
runtime.meta.events.register('before-sign.sagemaker-runtime.InvokeEndpoint',
                             lambda request, **kwargs: request.headers.add_header('X-Amzn-SageMaker-Session-Id', 'NEW_SESSION'))
try:
    runtime.invoke_endpoint(EndpointName='ep', ContentType='text/csv', Body='${FOREST_ROW}')
    print(json.dumps({}))
except runtime.exceptions.ValidationError as error:
    print(json.dumps({'code': error.response['Error']['Code'], 'status': error.response['ResponseMetadata']['HTTPStatusCode']}))
`,
      forest.url,
    );
    assert.deepEqual(result, { code: 'ValidationError', status: 400 });
  });
});
