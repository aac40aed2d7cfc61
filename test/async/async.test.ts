/**
 * Async inference against the real server, the real model, a real S3-compatible server
 * (s3rver, in a child process) and a real HTTP listener for the webhooks.
 */
import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { InvokeEndpointAsyncCommand, SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { openObjectStore } from '../../src/storage/open-store.js';
import { defaultModel, MODELS, REPO_ROOT, invoke, startServer, type TestServer } from '../helper.js';
import { writeNpy } from '../npy.js';
import { startHttpGate } from '../http-gate.js';
import { promtoolCheck } from '../promtool.js';
import { S3RVER_ENV, startS3Server, type S3Server } from '../s3-server.js';
import { CompletedNotificationSchema, FailedNotificationSchema } from './sagemaker-notification.js';
import { asyncStatus, counterValue, finished, startWebhookListener, submitAsync, until, type WebhookListener } from './toolkit.js';

Object.assign(process.env, S3RVER_ENV, { AWS_EC2_METADATA_DISABLED: 'true' });

const IN = 'async-in';
const OUT = 'async-out';
let s3: S3Server;
let hooks: WebhookListener;
let server: TestServer;
let csv: string;
const stateDirs: string[] = [];

async function stateDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'inferd-async-'));
  stateDirs.push(dir);
  return dir;
}

async function asyncEnv(extra: Record<string, string> = {}): Promise<Record<string, string>> {
  return {
    INFERD_ASYNC_OUTPUT_PATH: `s3://${OUT}/results`,
    INFERD_ASYNC_FAILURE_PATH: `s3://${OUT}/failures`,
    INFERD_ASYNC_ALLOWED_INPUT_PREFIXES: `s3://${IN}/data`,
    INFERD_ASYNC_STATE_DIR: await stateDir(),
    INFERD_ASYNC_SUCCESS_WEBHOOK: hooks.url('/success'),
    INFERD_ASYNC_ERROR_WEBHOOK: hooks.url('/error'),
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_REGION: 'us-east-1',
    ...extra,
  };
}

const store = () => openObjectStore(`s3://${OUT}/x`, { s3Endpoint: s3.endpoint });
const objectText = async (uri: string) => (await store().getBuffer(uri)).toString('utf8');
const metricsText = async (url: string) => (await fetch(`${url}/metrics`)).text();
const csvRows = () => csv.trim().split('\n');
const jsonLines = () => csvRows().map((row) => `[${row}]`).join('\n') + '\n';

/** The Content-Type an answer was stored under, as S3 reports it. */
async function objectContentType(key: string): Promise<string | undefined> {
  const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED' });
  try {
    return (await client.send(new HeadObjectCommand({ Bucket: OUT, Key: key }))).ContentType;
  } finally {
    client.destroy();
  }
}

before(async () => {
  s3 = await startS3Server({ buckets: [IN, OUT] });
  hooks = await startWebhookListener();
  csv = (await readFile(`${REPO_ROOT}test/fixtures/churn-requests.csv`, 'utf8')).split('\n').slice(0, 20).join('\n') + '\n';
  await store().put(`s3://${IN}/data/requests.csv`, csv);
  await store().put(`s3://${IN}/other/requests.csv`, csv);
  server = await startServer(MODELS.forest, {
    env: await asyncEnv({
      INFERD_ASYNC_INCLUDE_RESPONSE_IN: 'SUCCESS_NOTIFICATION_TOPIC,ERROR_NOTIFICATION_TOPIC',
      INFERD_ASYNC_MAX_PAYLOAD_MB: '0.01',
      // A real-time limit that a test payload can pass, to be streamed a record a line.
      SAGEMAKER_MAX_PAYLOAD_IN_MB: '1',
    }),
  });
});

after(async () => {
  await server?.http.close();
  await hooks?.close();
  await s3?.close();
  for (const dir of stateDirs) await rm(dir, { recursive: true, force: true });
});

describe('async inference', () => {
  it('takes an inline CSV body: 202 with the locations, the answer /invocations gives, a SageMaker success notification', async () => {
    const expected = await invoke(server.url, csv, { 'content-type': 'text/csv', accept: 'text/csv' });
    assert.equal(expected.status, 200);

    const accepted = await submitAsync(
      server.url,
      { 'content-type': 'text/csv', 'x-amzn-sagemaker-accept': 'text/csv', 'x-amzn-sagemaker-custom-attributes': 'trace=1' },
      csv,
    );
    assert.equal(accepted.status, 202);
    const id = accepted.json.InferenceId as string;
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.equal(accepted.headers.get('x-amzn-sagemaker-outputlocation'), `s3://${OUT}/results/${id}.out`);
    assert.equal(accepted.headers.get('x-amzn-sagemaker-failurelocation'), `s3://${OUT}/failures/${id}-error.out`);

    const status = await finished(server.url, id);
    assert.equal(status.status, 'completed');
    assert.equal(status.attempts, 1);
    assert.equal(await objectText(`s3://${OUT}/results/${id}.out`), expected.text);

    const notification = CompletedNotificationSchema.parse((await hooks.waitFor('/success', id)).body);
    assert.equal(notification.responseParameters.outputLocation, `s3://${OUT}/results/${id}.out`);
    assert.equal(notification.responseParameters.contentType, 'text/csv');
    assert.deepEqual(notification.responseParameters.responseBody, { content: expected.text, encoding: 'TEXT' });
    assert.equal(notification.requestParameters.customAttributes, 'trace=1');
    assert.equal(notification.requestParameters.endpointName, 'inferd');
    assert.equal(notification.awsRegion, 'us-east-1');
  });

  it('holds a small inline body in its queue record, and stages a larger one only until it has run', async () => {
    const rows = csvRows();
    const large = Array.from({ length: 1000 }, (_, i) => rows[i % rows.length]).join('\n') + '\n';
    assert.ok(Buffer.byteLength(large) > 64 * 1024 && Buffer.byteLength(csv) < 64 * 1024);
    for (const [id, body] of [['held-small', csv], ['staged-large', large]] as const) {
      const expected = await invoke(server.url, body, { 'content-type': 'text/csv', accept: 'text/csv' });
      const accepted = await submitAsync(server.url, { 'content-type': 'text/csv', 'x-amzn-sagemaker-accept': 'text/csv', 'x-amzn-sagemaker-inference-id': id }, body);
      assert.equal(accepted.status, 202);
      assert.equal((await finished(server.url, id)).status, 'completed');
      assert.equal(await objectText(`s3://${OUT}/results/${id}.out`), expected.text);
    }
    const held = CompletedNotificationSchema.parse((await hooks.waitFor('/success', 'held-small')).body);
    assert.equal(held.requestParameters.inputLocation, 'inline:held-small');
    const staged = CompletedNotificationSchema.parse((await hooks.waitFor('/success', 'staged-large')).body).requestParameters.inputLocation;
    assert.match(staged, /^\/.*\/payloads\/staged-large-/, 'staged in the state directory');
    // The notification goes out once the request has finished, its staged payload removed.
    await assert.rejects(stat(staged), { code: 'ENOENT' });
  });

  it('reads an S3 input under an allowed prefix, by the SDK\'s route: a JSON document answered whole', async () => {
    const rows = csv.trim().split('\n').slice(0, 5).map((line) => line.split(',').map(Number));
    const document = JSON.stringify({ instances: rows });
    const expected = await invoke(server.url, document, { 'content-type': 'application/json' });
    await store().put(`s3://${IN}/data/document.json`, document);

    const accepted = await submitAsync(
      server.url,
      { 'x-amzn-sagemaker-inputlocation': `s3://${IN}/data/document.json`, 'x-amzn-sagemaker-content-type': 'application/json', 'x-amzn-sagemaker-inference-id': 'json-doc-1' },
      undefined,
      '/endpoints/churn/async-invocations',
    );
    assert.equal(accepted.status, 202);
    assert.deepEqual(accepted.json, { InferenceId: 'json-doc-1' });
    assert.equal((await finished(server.url, 'json-doc-1')).status, 'completed');
    assert.deepEqual(JSON.parse(await objectText(`s3://${OUT}/results/json-doc-1.out`)), JSON.parse(expected.text));
    const notification = CompletedNotificationSchema.parse((await hooks.waitFor('/success', 'json-doc-1')).body);
    assert.equal(notification.requestParameters.endpointName, 'churn');
    assert.equal(notification.requestParameters.inputLocation, `s3://${IN}/data/document.json`);
  });

  it('works with the AWS SDK\'s InvokeEndpointAsyncCommand, unchanged', async () => {
    const expected = await invoke(server.url, csv, { 'content-type': 'text/csv', accept: 'text/csv' });
    const client = new SageMakerRuntimeClient({ endpoint: server.url, region: 'us-east-1', credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' } });
    const output = await client.send(
      new InvokeEndpointAsyncCommand({
        EndpointName: 'churn',
        InputLocation: `s3://${IN}/data/requests.csv`,
        ContentType: 'text/csv',
        Accept: 'text/csv',
        InferenceId: 'sdk-1',
        RequestTTLSeconds: 600,
        InvocationTimeoutSeconds: 60,
      }),
    );
    assert.equal(output.InferenceId, 'sdk-1');
    assert.equal(output.OutputLocation, `s3://${OUT}/results/sdk-1.out`);
    assert.equal(output.FailureLocation, `s3://${OUT}/failures/sdk-1-error.out`);
    assert.equal((await finished(server.url, 'sdk-1')).status, 'completed');
    assert.equal(await objectText(output.OutputLocation), expected.text);
  });

  it('a request the model refuses fails: failure object, reason, and an error notification', async () => {
    const accepted = await submitAsync(server.url, { 'content-type': 'text/csv', 'x-amzn-sagemaker-inference-id': 'bad-rows' }, '1,2,3\n4,5,6\n');
    assert.equal(accepted.status, 202);
    const status = await finished(server.url, 'bad-rows');
    assert.equal(status.status, 'failed');
    assert.match(status.failureReason!, /^ClientError: Received client error \(4\d\d\) from model/);

    const failure = JSON.parse(await objectText(`s3://${OUT}/failures/bad-rows-error.out`)) as { code: string; message: string };
    assert.equal(failure.code, 'INFERD_ERR_INPUT_INVALID');
    assert.equal(await store().exists(`s3://${OUT}/results/bad-rows.out`), false);

    const notification = FailedNotificationSchema.parse((await hooks.waitFor('/error', 'bad-rows')).body);
    assert.equal(notification.failureReason, status.failureReason);
    assert.equal(notification.responseParameters.failureLocation, `s3://${OUT}/failures/bad-rows-error.out`);
    assert.equal(notification.responseParameters.outputLocation, undefined);
    assert.deepEqual(JSON.parse(notification.responseParameters.responseBody!.content), failure);
  });

  it('a duplicate inference id gets the first request\'s locations and runs nothing more', async () => {
    const acceptedBefore = counterValue(await metricsText(server.url), 'inferd_async_accepted_total');
    const first = await submitAsync(server.url, { 'content-type': 'text/csv', 'x-amzn-sagemaker-accept': 'text/csv', 'x-amzn-sagemaker-inference-id': 'dup-1' }, csv);
    const second = await submitAsync(server.url, { 'content-type': 'application/json', 'x-amzn-sagemaker-inference-id': 'dup-1' }, '{"instances": []}');
    assert.equal(first.status, 202);
    assert.equal(second.status, 202);
    assert.deepEqual(second.json, first.json);
    assert.equal(second.headers.get('x-amzn-sagemaker-outputlocation'), first.headers.get('x-amzn-sagemaker-outputlocation'));
    assert.equal(second.headers.get('x-amzn-sagemaker-failurelocation'), first.headers.get('x-amzn-sagemaker-failurelocation'));

    const status = await finished(server.url, 'dup-1');
    assert.equal(status.status, 'completed');
    assert.equal(status.attempts, 1);
    const expected = await invoke(server.url, csv, { 'content-type': 'text/csv', accept: 'text/csv' });
    assert.equal(await objectText(`s3://${OUT}/results/dup-1.out`), expected.text);
    assert.equal(counterValue(await metricsText(server.url), 'inferd_async_accepted_total'), acceptedBefore + 1);
  });

  it('refuses at once what it could never run, with stable codes', async () => {
    const big = JSON.stringify({ instances: Array(200).fill(Array(20).fill(0.5)) }); // over the 0.01 MiB limit
    await store().put(`s3://${IN}/data/big.json`, big);
    const cases: [string, Record<string, string>, string | Uint8Array | undefined, number, string][] = [
      ['input outside the allowed prefixes', { 'x-amzn-sagemaker-inputlocation': `s3://${IN}/other/requests.csv` }, undefined, 403, 'INFERD_ERR_ASYNC_INPUT_FORBIDDEN'],
      ['input in another bucket', { 'x-amzn-sagemaker-inputlocation': `s3://${OUT}/results/sdk-1.out` }, undefined, 403, 'INFERD_ERR_ASYNC_INPUT_FORBIDDEN'],
      ['a local file', { 'x-amzn-sagemaker-inputlocation': '/etc/passwd' }, undefined, 403, 'INFERD_ERR_ASYNC_INPUT_FORBIDDEN'],
      ['a sibling prefix', { 'x-amzn-sagemaker-inputlocation': `s3://${IN}/data-private/x.csv` }, undefined, 403, 'INFERD_ERR_ASYNC_INPUT_FORBIDDEN'],
      ['an https URL', { 'x-amzn-sagemaker-inputlocation': 'https://example.com/x.csv' }, undefined, 400, 'INFERD_ERR_BAD_REQUEST'],
      ['a missing input', { 'x-amzn-sagemaker-inputlocation': `s3://${IN}/data/missing.csv`, 'x-amzn-sagemaker-content-type': 'text/csv' }, undefined, 400, 'INFERD_ERR_ASYNC_INPUT_NOT_FOUND'],
      ['no payload at all', {}, undefined, 400, 'INFERD_ERR_BODY_EMPTY'],
      ['a body that decodes to nothing', { 'content-type': 'text/csv', 'content-encoding': 'gzip' }, gzipSync(''), 400, 'INFERD_ERR_BODY_EMPTY'],
      ['a body that is not gzip data', { 'content-type': 'text/csv', 'content-encoding': 'gzip' }, 'not gzip', 400, 'INFERD_ERR_BODY_MALFORMED'],
      ['a body and an input location', { 'x-amzn-sagemaker-inputlocation': `s3://${IN}/data/requests.csv`, 'content-type': 'text/csv' }, csv, 400, 'INFERD_ERR_BAD_REQUEST'],
      ['a TTL under 60 s', { 'content-type': 'text/csv', 'x-amzn-sagemaker-requestttlseconds': '59' }, csv, 400, 'INFERD_ERR_BAD_REQUEST'],
      ['a timeout over 3600 s', { 'content-type': 'text/csv', 'x-amzn-sagemaker-invocationtimeoutseconds': '3601' }, csv, 400, 'INFERD_ERR_BAD_REQUEST'],
      ['an inference id with a slash', { 'content-type': 'text/csv', 'x-amzn-sagemaker-inference-id': 'a/../b' }, csv, 400, 'INFERD_ERR_BAD_REQUEST'],
      ['an unsupported content type', { 'content-type': 'image/png' }, 'x', 415, 'INFERD_ERR_UNSUPPORTED_MEDIA_TYPE'],
      ['an accept nothing matches', { 'content-type': 'text/csv', 'x-amzn-sagemaker-accept': 'image/png' }, csv, 406, 'INFERD_ERR_NOT_ACCEPTABLE'],
      ['a JSON body over INFERD_ASYNC_MAX_PAYLOAD_MB', { 'content-type': 'application/json' }, big, 413, 'INFERD_ERR_PAYLOAD_TOO_LARGE'],
      ['a JSON S3 input over it', { 'x-amzn-sagemaker-inputlocation': `s3://${IN}/data/big.json`, 'x-amzn-sagemaker-content-type': 'application/json' }, undefined, 413, 'INFERD_ERR_PAYLOAD_TOO_LARGE'],
    ];
    for (const [what, headers, body, status, code] of cases) {
      const answer = await submitAsync(server.url, headers, body);
      assert.equal(answer.status, status, what);
      assert.equal(answer.json.code, code, what);
    }
    const unknown = await fetch(`${server.url}/async-invocations/never-sent`);
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { code: string }).code, 'INFERD_ERR_ASYNC_NOT_FOUND');
  });

  for (const [name, contentType, body, accept] of [
    ['CSV, answered as JSON', 'text/csv', () => csv, 'application/json'],
    ['CSV, answered as CSV', 'text/csv', () => csv, 'text/csv'],
    ['JSON Lines, answered as JSON', 'application/jsonlines', () => jsonLines(), 'application/json'],
    ['JSON Lines, answered as JSON Lines', 'application/jsonlines', () => jsonLines(), 'application/jsonlines'],
    ['JSON instances, answered as JSON', 'application/json', () => JSON.stringify({ instances: csvRows().map((row) => row.split(',').map(Number)) }), 'application/json'],
  ] as const) {
    it(`stores a payload within the real-time limit as /invocations answers it: ${name}`, async () => {
      const id = `same-${contentType.replace('/', '-')}-${accept.replace('/', '-')}`;
      const expected = await invoke(server.url, body(), { 'content-type': contentType, accept });
      assert.equal(expected.status, 200, expected.text);
      const accepted = await submitAsync(server.url, { 'content-type': contentType, 'x-amzn-sagemaker-accept': accept, 'x-amzn-sagemaker-inference-id': id }, body());
      assert.equal(accepted.status, 202);
      assert.equal((await finished(server.url, id)).status, 'completed');
      assert.equal(await objectText(`s3://${OUT}/results/${id}.out`), expected.text);
      assert.equal(await objectContentType(`results/${id}.out`), expected.headers.get('content-type'));
    });
  }

  it('streams a CSV payload past the real-time limit through the batch path, a record a line, stored as JSON Lines', async () => {
    const rows = csvRows();
    // ~1.4 MB: over the 1 MiB real-time limit, and more than one 1 MiB mini-batch.
    const lines = Array.from({ length: 9000 }, (_, i) => rows[i % rows.length]);
    const large = lines.join('\n') + '\n';
    // The same records a line, asked of /invocations in pieces within its limit.
    let expected = '';
    for (let from = 0; from < lines.length; from += 2000) {
      const piece = await invoke(server.url, lines.slice(from, from + 2000).join('\n') + '\n', { 'content-type': 'text/csv', accept: 'application/jsonlines' });
      assert.equal(piece.status, 200, piece.text);
      expected += piece.text;
    }
    const accepted = await submitAsync(server.url, { 'content-type': 'text/csv', 'x-amzn-sagemaker-accept': 'application/json', 'x-amzn-sagemaker-inference-id': 'large-csv' }, large);
    assert.equal(accepted.status, 202);
    assert.equal((await finished(server.url, 'large-csv')).status, 'completed');
    const stored = await objectText(`s3://${OUT}/results/large-csv.out`);
    assert.ok(stored === expected, `the stored answer (${stored.length} bytes) is /invocations' records, a line each (${expected.length} bytes)`);
    assert.equal(stored.trim().split('\n').length, 9000);
    assert.equal(await objectContentType('results/large-csv.out'), 'application/jsonlines');
    // Over 128 KB: the notification goes without the body.
    const notification = CompletedNotificationSchema.parse((await hooks.waitFor('/success', 'large-csv')).body);
    assert.equal(notification.responseParameters.responseBody, undefined);
  });

  it('retries a failing webhook with backoff until it takes the notification, and counts the retries', async () => {
    const before = await metricsText(server.url);
    hooks.failNext('/success', 2);
    const accepted = await submitAsync(server.url, { 'content-type': 'text/csv', 'x-amzn-sagemaker-inference-id': 'flaky-hook' }, csv);
    assert.equal(accepted.status, 202);
    assert.equal((await finished(server.url, 'flaky-hook')).status, 'completed');
    CompletedNotificationSchema.parse((await hooks.waitFor('/success', 'flaky-hook')).body);
    const attempts = hooks.deliveries.filter((d) => (d.body as { inferenceId: string }).inferenceId === 'flaky-hook');
    assert.deepEqual(attempts.map((d) => d.refused), [true, true, false]);
    const now = await metricsText(server.url);
    const delta = (series: string) => counterValue(now, series) - counterValue(before, series);
    assert.equal(delta('inferd_async_notifications_total{outcome="retried"}'), 2);
    assert.equal(delta('inferd_async_notifications_total{outcome="delivered"}'), 1);
  });

  it('publishes the backlog metrics, in an exposition promtool accepts', async () => {
    const text = await metricsText(server.url);
    const check = await promtoolCheck(text);
    assert.equal(check.code, 0, check.output);
    assert.equal(check.output.trim(), '', check.output);
    for (const name of [
      'inferd_async_backlog_size',
      'inferd_async_backlog_size_per_instance',
      'inferd_async_oldest_request_age_seconds',
      'inferd_async_has_backlog_without_capacity',
      'inferd_async_time_in_backlog_seconds_count',
      'inferd_async_processing_seconds_count',
    ]) {
      assert.match(text, new RegExp(`^${name} `, 'm'), name);
    }
    assert.ok(counterValue(text, 'inferd_async_completed_total') >= 5);
    assert.ok(counterValue(text, 'inferd_async_failures_total{kind="invocation"}') >= 1);
  });
});

/**
 * A server whose S3 is behind a gate holding the answer upload of `inferenceId` until released:
 * that request provably holds its invocation slot, past any timeout, whatever the machine's speed.
 */
async function serverHoldingAnswer(t: TestContext, inferenceId: string, options: { clock?: () => number } = {}) {
  let holding = true;
  const gate = await startHttpGate(s3.endpoint, (request) => holding && request.method === 'PUT' && request.url!.startsWith(`/${OUT}/results/${inferenceId}.out`));
  t.after(() => gate.close());
  const gated = await startServer(MODELS.forest, {
    env: await asyncEnv({ INFERD_ASYNC_MAX_CONCURRENT_INVOCATIONS: '1', AWS_ENDPOINT_URL_S3: gate.url }),
    ...options,
  });
  return {
    server: gated,
    gate,
    release() {
      holding = false;
      gate.release();
    },
  };
}

describe('async inference: time limits', () => {
  it('fails a request past its invocation timeout with the reason, discards its result, and goes on', async (t) => {
    const { server: gated, gate, release } = await serverHoldingAnswer(t, 'too-slow');
    try {
      const accepted = await submitAsync(gated.url, { 'content-type': 'text/csv', 'x-amzn-sagemaker-inference-id': 'too-slow', 'x-amzn-sagemaker-invocationtimeoutseconds': '1' }, csv);
      assert.equal(accepted.status, 202);
      const status = await finished(gated.url, 'too-slow');
      assert.equal(status.status, 'failed');
      assert.match(status.failureReason!, /timeout of 1 s/);
      assert.equal(gate.held, 1, 'it timed out waiting on its answer upload');
      assert.equal(JSON.parse(await objectText(`s3://${OUT}/failures/too-slow-error.out`)).code, 'INFERD_ERR_TIMEOUT');
      FailedNotificationSchema.parse((await hooks.waitFor('/error', 'too-slow')).body);

      // The abandoned invocation goes on: its upload now lands, and is removed once it ends.
      release();
      const next = await submitAsync(gated.url, { 'content-type': 'text/csv', 'x-amzn-sagemaker-inference-id': 'after-slow' }, csv);
      assert.equal(next.status, 202);
      assert.equal((await finished(gated.url, 'after-slow')).status, 'completed');
      assert.equal(counterValue(await metricsText(gated.url), 'inferd_async_failures_total{kind="timeout"}'), 1);
    } finally {
      // Closing waits for abandoned invocations and their cleanup.
      await gated.http.close();
    }
    assert.equal(await store().exists(`s3://${OUT}/results/too-slow.out`), false);
  });

  it('expires a request still queued past its TTL: notified as failed, never run', async (t) => {
    let offsetMs = 0;
    const { server: gated, gate, release } = await serverHoldingAnswer(t, 'busy', { clock: () => Date.now() + offsetMs });
    t.after(() => gated.http.close());
    // The one slot is held by a request whose answer upload hangs, so the next one waits in the queue.
    assert.equal((await submitAsync(gated.url, { 'content-type': 'text/csv', 'x-amzn-sagemaker-inference-id': 'busy' }, csv)).status, 202);
    await until(() => (gate.held === 1 ? true : undefined), 10_000, 'busy to hold the slot');
    const waiting = await submitAsync(gated.url, { 'content-type': 'text/csv', 'x-amzn-sagemaker-inference-id': 'short-lived', 'x-amzn-sagemaker-requestttlseconds': '60' }, csv);
    assert.equal(waiting.status, 202);
    assert.equal((await asyncStatus(gated.url, 'short-lived'))?.status, 'queued');

    offsetMs = 61_000;
    const status = await finished(gated.url, 'short-lived');
    assert.equal(status.status, 'expired');
    assert.equal(status.startedTime, undefined);
    assert.match(status.failureReason!, /TTL of 60 s/);
    const notification = FailedNotificationSchema.parse((await hooks.waitFor('/error', 'short-lived')).body);
    assert.equal(notification.failureReason, status.failureReason);
    assert.equal(await store().exists(`s3://${OUT}/failures/short-lived-error.out`), true);
    release();
    assert.equal((await finished(gated.url, 'busy')).status, 'completed');
    assert.equal(await store().exists(`s3://${OUT}/results/short-lived.out`), false);
    assert.equal(counterValue(await metricsText(gated.url), 'inferd_async_failures_total{kind="expired"}'), 1);
  });
});

describe('async inference: a full inference queue', () => {
  it('makes an async request wait its turn, not fail, while real-time requests keep the queue full', async (t) => {
    const slow = await startServer(MODELS.slow, { env: await asyncEnv({ INFERD_MAX_QUEUE_SIZE: '1' }) });
    t.after(() => slow.http.close());
    const npy = { 'content-type': 'application/x-npy', accept: 'application/x-npy' };
    // Senders of heavy requests, each resending as soon as it is answered: two batches run, one
    // request waits, and whatever else arrives meanwhile is refused for a full queue.
    const heavy = writeNpy('<f4', [6000, 256], new Float32Array(6000 * 256).fill(0.5));
    let loading = true;
    const statuses: number[] = [];
    const senders = Array.from({ length: 4 }, async () => {
      while (loading) statuses.push((await invoke(slow.url, heavy, npy)).status);
    });
    try {
      await until(() => (defaultModel(slow).stats.queued >= 1 ? true : undefined), 30_000, 'the queue to fill');
      const small = writeNpy('<f4', [4, 256], new Float32Array(4 * 256).fill(0.25));
      const accepted = await submitAsync(slow.url, { 'content-type': 'application/x-npy', 'x-amzn-sagemaker-accept': 'application/x-npy', 'x-amzn-sagemaker-inference-id': 'behind-full-queue' }, small);
      assert.equal(accepted.status, 202);
      const status = await finished(slow.url, 'behind-full-queue', 60_000);
      assert.equal(status.status, 'completed', status.failureReason);
      loading = false;
      await Promise.all(senders);
      assert.ok(statuses.includes(503), 'real-time requests were refused for a full queue meanwhile');
      assert.deepEqual([...new Set(statuses)].sort(), [200, 503]);
      const expected = await invoke(slow.url, small, npy);
      assert.deepEqual(await store().getBuffer(`s3://${OUT}/results/behind-full-queue.out`), Buffer.from(expected.bytes));
    } finally {
      loading = false;
      await Promise.all(senders);
    }
  });
});
