/**
 * SigV4 on the runtime API, verified against the real server with unchanged clients: the AWS SDK
 * for JavaScript v3 and boto3 (Debian's python3-boto3) sign with the keys they are given, and
 * every refusal is the 403 and `x-amzn-ErrorType` AWS answers, which the SDKs surface by name.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  InvokeEndpointAsyncCommand,
  InvokeEndpointCommand,
  InvokeEndpointWithResponseStreamCommand,
  SageMakerRuntimeServiceException,
  type SageMakerRuntimeClient,
} from '@aws-sdk/client-sagemaker-runtime';
import { SignatureV4 } from '@smithy/signature-v4';
import { MODELS, REPO_ROOT, invoke, startServer, type TestServer } from '../helper.js';
import { until } from '../async/toolkit.js';
import { authEnv, runtimeClient, writeAuthFiles, type AccessKey, type AuthFiles } from './auth-fixtures.js';

const ROW = Array.from({ length: 20 }, (_, i) => i / 10).join(',');
const OTHER_ROW = Array.from({ length: 20 }, (_, i) => (19 - i) / 10).join(',');
const TEN_MINUTES = 10 * 60_000;

let files: AuthFiles;
let server: TestServer;
let inputDir: string;
let outputDir: string;

before(async () => {
  files = await writeAuthFiles();
  const dir = await mkdtemp(join(tmpdir(), 'inferd-auth-async-'));
  inputDir = join(dir, 'in');
  outputDir = join(dir, 'out');
  server = await startServer(MODELS.forest, {
    env: {
      ...authEnv(files),
      INFERD_ASYNC_OUTPUT_PATH: outputDir,
      INFERD_ASYNC_STATE_DIR: join(dir, 'state'),
      INFERD_ASYNC_ALLOWED_INPUT_PREFIXES: inputDir,
    },
  });
  await mkdir(inputDir, { recursive: true });
  await writeFile(join(inputDir, 'rows.csv'), `${ROW}\n`);
});
after(() => server?.http.close());

const wrongSecret = (key: AccessKey): AccessKey => ({ ...key, secretAccessKey: `${key.secretAccessKey}x` });

/** The refusal an SDK call ends in: AWS's error code as the exception's name, status 403. */
async function refusal(call: Promise<unknown>): Promise<SageMakerRuntimeServiceException> {
  const error = await call.then(
    () => assert.fail('the call succeeded'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof SageMakerRuntimeServiceException, String(error));
  assert.equal(error.$metadata.httpStatusCode, 403);
  assert.equal(error.$fault, 'client');
  return error;
}

const invokeRow = (rt: SageMakerRuntimeClient, extra: { TargetModel?: string } = {}) =>
  rt.send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: ROW, ...extra }));

/** Runs `change` on the request the SDK has just signed, before it is sent. */
function afterSigning(rt: SageMakerRuntimeClient, change: (request: { body?: unknown; headers: Record<string, string> }) => void): SageMakerRuntimeClient {
  // Low priority in the finalize step: inside the signing middleware, so after it has signed.
  rt.middlewareStack.add(
    (next) => async (args) => {
      change(args.request as { body?: unknown; headers: Record<string, string> });
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: 'afterSigning' },
  );
  return rt;
}

describe('InvokeEndpoint signed by the AWS SDK for JavaScript v3', () => {
  it('the right key is answered 200, with what /invocations answers', async () => {
    const answer = await invokeRow(runtimeClient(server.url, files.keys.full));
    const direct = await invoke(server.url, ROW, { 'content-type': 'text/csv', authorization: `Bearer ${files.tokens.invoke}` });
    assert.equal(direct.status, 200);
    assert.equal(Buffer.from(answer.Body!).toString(), direct.text);
  });

  it('a wrong secret is InvalidSignatureException, not retried', async () => {
    const error = await refusal(invokeRow(runtimeClient(server.url, wrongSecret(files.keys.full))));
    assert.equal(error.name, 'InvalidSignatureException');
    assert.match(error.message, /The request signature we calculated does not match the signature you provided/);
    assert.equal(error.$metadata.attempts, 1);
  });

  it('an unknown access key is UnrecognizedClientException', async () => {
    const error = await refusal(invokeRow(runtimeClient(server.url, { accessKeyId: 'AKIDUNKNOWN', secretAccessKey: 'whatever' })));
    assert.equal(error.name, 'UnrecognizedClientException');
    assert.match(error.message, /The security token included in the request is invalid/);
  });

  it('no signature is MissingAuthenticationTokenException; a bearer token is no signature', async () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{}, 'MissingAuthenticationTokenException'],
      [{ authorization: `Bearer ${files.tokens.invoke}` }, 'InvalidSignatureException'],
    ];
    for (const [headers, expected] of cases) {
      const answer = await invoke(server.url, ROW, { 'content-type': 'text/csv', ...headers }, '/endpoints/ep/invocations');
      assert.equal(answer.status, 403);
      assert.equal(answer.headers.get('x-amzn-errortype'), expected);
      assert.equal(answer.headers.get('x-amzn-invoked-production-variant'), 'AllTraffic');
    }
  });

  it('a key not allowed the model it names, or the operation, is AccessDeniedException', async () => {
    // forestOnly may run churn-forest, the default model, with InvokeEndpoint only.
    assert.ok(await invokeRow(runtimeClient(server.url, files.keys.forestOnly)));
    const otherModel = await refusal(invokeRow(runtimeClient(server.url, files.keys.forestOnly), { TargetModel: 'other/model.tar.gz' }));
    assert.equal(otherModel.name, 'AccessDeniedException');
    assert.match(otherModel.message, /is not authorized to perform: sagemaker:InvokeEndpoint on model: other\/model\.tar\.gz/);
    const streaming = await refusal(
      runtimeClient(server.url, files.keys.forestOnly).send(new InvokeEndpointWithResponseStreamCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: ROW })),
    );
    assert.equal(streaming.name, 'AccessDeniedException');
    // The full key names the same model: past authentication, it is the model that is missing.
    const missing = await invokeRow(runtimeClient(server.url, files.keys.full), { TargetModel: 'other/model.tar.gz' }).catch((e: unknown) => e);
    assert.equal((missing as Error).name, 'ValidationError');
  });

  it('a request dated 10 minutes off is InvalidSignatureException (Signature expired / not yet current)', async () => {
    const late = await refusal(invokeRow(runtimeClient(server.url, files.keys.full, { systemClockOffset: -TEN_MINUTES, maxAttempts: 1 })));
    assert.equal(late.name, 'InvalidSignatureException');
    assert.match(late.message, /Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 5 min\.\)/);
    const early = await refusal(invokeRow(runtimeClient(server.url, files.keys.full, { systemClockOffset: TEN_MINUTES, maxAttempts: 1 })));
    assert.match(early.message, /Signature not yet current/);
  });

  it('the SDK corrects its clock from the refusal\'s Date, as it does with AWS, and its retry passes', async () => {
    const answer = await invokeRow(runtimeClient(server.url, files.keys.full, { systemClockOffset: -TEN_MINUTES }));
    assert.equal(answer.$metadata.attempts, 2);
  });

  it('a body changed after signing is refused: it is not the body whose hash was signed', async () => {
    const rt = afterSigning(runtimeClient(server.url, files.keys.full), (request) => {
      request.body = OTHER_ROW; // the same length: only the bytes differ
    });
    const error = await refusal(invokeRow(rt));
    assert.equal(error.name, 'InvalidSignatureException');
    assert.match(error.message, /x-amz-content-sha256' header does not match/);
  });

  it('a signed header changed after signing is refused', async () => {
    const rt = afterSigning(runtimeClient(server.url, files.keys.full), (request) => {
      request.headers['x-amzn-sagemaker-target-model'] = 'other/model.tar.gz';
    });
    const error = await refusal(invokeRow(rt, { TargetModel: 'churn-forest' }));
    assert.equal(error.name, 'InvalidSignatureException');
  });

  it('a header the route acts on, added unsigned after signing, is refused: a replay cannot change what a request does', async () => {
    const rt = afterSigning(runtimeClient(server.url, files.keys.full), (request) => {
      request.headers['x-amzn-sagemaker-custom-attributes'] = 'replayed';
    });
    const error = await refusal(invokeRow(rt));
    assert.equal(error.name, 'InvalidSignatureException');
    assert.match(error.message, /x-amzn-sagemaker-custom-attributes' must be signed/);
  });
});

describe('InvokeEndpointWithResponseStream', () => {
  const stream = (key: AccessKey) =>
    runtimeClient(server.url, key).send(new InvokeEndpointWithResponseStreamCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: `${ROW}\n${ROW}\n` }));

  it('streams to the right key, refuses a wrong secret', async () => {
    const answer = await stream(files.keys.full);
    const parts: Buffer[] = [];
    for await (const event of answer.Body!) parts.push(Buffer.from(event.PayloadPart!.Bytes!));
    assert.equal(Buffer.concat(parts).toString().trim().split('\n').length, 2);
    assert.equal((await refusal(stream(wrongSecret(files.keys.full)))).name, 'InvalidSignatureException');
  });
});

describe('InvokeEndpointAsync', () => {
  const status = async (inferenceId: string) => {
    const response = await fetch(`${server.url}/async-invocations/${inferenceId}`, { headers: { authorization: `Bearer ${files.tokens.invoke}` } });
    return { code: response.status, body: (await response.json()) as { status?: string } };
  };
  const submit = (rt: SageMakerRuntimeClient, inferenceId: string) =>
    rt.send(new InvokeEndpointAsyncCommand({ EndpointName: 'ep', InputLocation: join(inputDir, 'rows.csv'), ContentType: 'text/csv', InferenceId: inferenceId }));

  it('accepts the right key and runs the request; refuses a wrong secret and queues nothing', async () => {
    const accepted = await submit(runtimeClient(server.url, files.keys.full), 'signed-1');
    assert.equal(accepted.InferenceId, 'signed-1');
    await until(async () => ((await status('signed-1')).body.status === 'completed' ? true : undefined), 30_000, 'the async request to complete');
    assert.match(await readFile(join(outputDir, 'signed-1.out'), 'utf8'), /probabilities/);

    assert.equal((await refusal(submit(runtimeClient(server.url, wrongSecret(files.keys.full)), 'unsigned-1'))).name, 'InvalidSignatureException');
    assert.equal((await refusal(submit(runtimeClient(server.url, files.keys.forestOnly), 'denied-1'))).name, 'AccessDeniedException');
    assert.equal((await status('unsigned-1')).code, 404);
    assert.equal((await status('denied-1')).code, 404);
  });

  /** The SDK's request with an inline body in place of its InputLocation, signed with its X-Amz-Content-SHA256. */
  const withInlineBody = (rt: SageMakerRuntimeClient, body: string) => {
    rt.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { body?: unknown; headers: Record<string, string> };
        request.body = body;
        delete request.headers['x-amzn-sagemaker-inputlocation'];
        request.headers['content-type'] = 'text/csv';
        request.headers['content-length'] = String(Buffer.byteLength(body));
        return next(args);
      },
      { step: 'build', name: 'inlineBody' },
    );
    return rt;
  };

  it('checks an inline body as it streams: the signed one is queued, a changed one refused and not queued', async () => {
    const rt = withInlineBody(runtimeClient(server.url, files.keys.full), `${ROW}\n`);
    await submit(rt, 'inline-1');
    await until(async () => ((await status('inline-1')).body.status === 'completed' ? true : undefined), 30_000, 'the inline request to complete');

    const changed = afterSigning(withInlineBody(runtimeClient(server.url, files.keys.full), `${ROW}\n`), (request) => {
      request.body = `${OTHER_ROW}\n`;
    });
    const error = await refusal(submit(changed, 'inline-changed'));
    assert.equal(error.name, 'InvalidSignatureException');
    assert.match(error.message, /x-amz-content-sha256' header does not match/);
    assert.equal((await status('inline-changed')).code, 404);
  });

  it('refuses an inline body signed without X-Amz-Content-SHA256', async () => {
    const signer = new SignatureV4({
      credentials: files.keys.full,
      region: 'us-east-1',
      service: 'sagemaker',
      sha256: runtimeClient(server.url, files.keys.full).config.sha256,
      applyChecksum: false,
    });
    const { host } = new URL(server.url);
    const body = `${ROW}\n`;
    const signed = await signer.sign({
      method: 'POST',
      protocol: 'http:',
      hostname: host,
      path: '/endpoints/ep/async-invocations',
      headers: { host, 'content-type': 'text/csv', 'content-length': String(body.length), 'x-amzn-sagemaker-inference-id': 'inline-unhashed' },
      body,
    });
    assert.doesNotMatch(signed.headers.authorization!, /x-amz-content-sha256/);
    const response = await fetch(`${server.url}/endpoints/ep/async-invocations`, { method: 'POST', headers: signed.headers, body });
    assert.equal(response.status, 403);
    assert.equal(response.headers.get('x-amzn-errortype'), 'InvalidSignatureException');
    assert.equal((await status('inline-unhashed')).code, 404);
    // The same request with its body hash signed passes.
    const hashed = await signer.sign({
      method: 'POST',
      protocol: 'http:',
      hostname: host,
      path: '/endpoints/ep/async-invocations',
      headers: {
        host,
        'content-type': 'text/csv',
        'content-length': String(body.length),
        'x-amzn-sagemaker-inference-id': 'inline-hashed',
        'x-amz-content-sha256': createHash('sha256').update(body).digest('hex'),
      },
      body,
    });
    assert.equal((await fetch(`${server.url}/endpoints/ep/async-invocations`, { method: 'POST', headers: hashed.headers, body })).status, 202);
  });
});

/** Runs a Python snippet with Debian's boto3 (scripts/install-test-tools.sh puts it in .tools). */
async function boto3(script: string, args: readonly string[]): Promise<Record<string, unknown>> {
  const { stdout } = await promisify(execFile)(`${REPO_ROOT}.tools/bin/python3-boto3`, ['-c', script, ...args], {
    env: { HOME: '/nonexistent', PATH: process.env.PATH ?? '' },
  });
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('InvokeEndpoint signed by boto3', () => {
  // botocore signs no X-Amz-Content-SHA256 for this service: the server hashes the body it read.
  const script = `
import json, sys, boto3
url, key, secret, row = sys.argv[1:5]
runtime = boto3.client('sagemaker-runtime', endpoint_url=url, region_name='eu-west-1',
                       aws_access_key_id=key, aws_secret_access_key=secret)
try:
    answer = runtime.invoke_endpoint(EndpointName='ep', ContentType='text/csv', Body=row)
    print(json.dumps({'status': answer['ResponseMetadata']['HTTPStatusCode'], 'body': answer['Body'].read().decode()}))
except runtime.exceptions.ClientError as error:
    print(json.dumps({'status': error.response['ResponseMetadata']['HTTPStatusCode'], 'code': error.response['Error']['Code'],
                      'retries': error.response['ResponseMetadata']['RetryAttempts']}))
`;

  it('the right key is answered 200; a wrong secret raises InvalidSignatureException, not retried', async () => {
    const { full } = files.keys;
    const good = await boto3(script, [server.url, full.accessKeyId, full.secretAccessKey, ROW]);
    assert.equal(good.status, 200);
    assert.match(String(good.body), /probabilities/);
    const bad = await boto3(script, [server.url, full.accessKeyId, `${full.secretAccessKey}x`, ROW]);
    assert.deepEqual(bad, { status: 403, code: 'InvalidSignatureException', retries: 0 });
  });
});
