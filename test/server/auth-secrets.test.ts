/**
 * No secret leaves the server: an authenticated run of the real server (a child process, logging
 * at trace, capturing every request, async on) is scanned — its log output, /metrics, every error
 * body and every captured or written file — for the secret keys, the tokens and the signatures
 * the clients sent, and finds none. Captured records name no header but the custom attributes and
 * the target model.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import {
  InvokeEndpointAsyncCommand,
  InvokeEndpointCommand,
  InvokeEndpointWithResponseStreamCommand,
  type SageMakerRuntimeClient,
} from '@aws-sdk/client-sagemaker-runtime';
import { MODELS } from '../helper.js';
import { freePort, spawnServer, waitUntilReady } from '../child.js';
import { filesUnder, parseRecords } from '../capture/records.js';
import { until } from '../async/toolkit.js';
import { authEnv, runtimeClient, writeAuthFiles, type AccessKey } from './auth-fixtures.js';

const ROW = Array.from({ length: 20 }, (_, i) => i / 10).join(',');

it('an authenticated run writes no secret, token or signature to its logs, /metrics, error bodies or files', async () => {
  const files = await writeAuthFiles();
  const dir = await mkdtemp(join(tmpdir(), 'inferd-secrets-'));
  const [capture, spool, output, state, input] = ['capture', 'spool', 'output', 'state', 'input'].map((name) => join(dir, name)) as [string, string, string, string, string];
  await mkdir(input);
  await writeFile(join(input, 'rows.csv'), `${ROW}\n`);
  const port = await freePort();
  const child = await spawnServer(
    ['dist/src/main.js', 'serve'],
    {
      ...authEnv(files),
      SAGEMAKER_BIND_TO_PORT: String(port),
      INFERD_HOST: '127.0.0.1',
      INFERD_MODEL_DIR: MODELS.forest,
      SAGEMAKER_MODEL_SERVER_WORKERS: '1',
      SAGEMAKER_CONTAINER_LOG_LEVEL: 'trace',
      INFERD_CAPTURE_ENABLED: 'true',
      INFERD_CAPTURE_DESTINATION: `file://${capture}`,
      INFERD_CAPTURE_SAMPLING_PERCENTAGE: '100',
      INFERD_CAPTURE_SPOOL_DIR: spool,
      INFERD_CAPTURE_FLUSH_INTERVAL_MS: '100',
      INFERD_ENDPOINT_NAME: 'ep',
      INFERD_ASYNC_OUTPUT_PATH: output,
      INFERD_ASYNC_STATE_DIR: state,
      INFERD_ASYNC_ALLOWED_INPUT_PREFIXES: input,
    },
    port,
  );
  const answers: string[] = [];
  const signatures: string[] = [];
  try {
    await waitUntilReady(child);
    /** A client whose every signed Authorization header is kept, to be looked for afterwards. */
    const client = (key: AccessKey): SageMakerRuntimeClient => {
      const rt = runtimeClient(child.url, key, { maxAttempts: 1 });
      rt.middlewareStack.add(
        (next) => async (args) => {
          const { headers } = args.request as { headers: Record<string, string> };
          signatures.push(headers.authorization!, /Signature=([0-9a-f]{64})/.exec(headers.authorization!)![1]!);
          return next(args);
        },
        { step: 'finalizeRequest', priority: 'low', name: 'keepSignature' },
      );
      return rt;
    };
    const wrong = { ...files.keys.full, secretAccessKey: `${files.keys.full.secretAccessKey}x` };
    const sdkCalls: Array<Promise<unknown>> = [
      client(files.keys.full).send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: ROW, CustomAttributes: 'trace=1' })),
      client(wrong).send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: ROW })),
      client(files.keys.forestOnly).send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: ROW, TargetModel: 'other' })),
      client(files.keys.full).send(new InvokeEndpointCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: '1,2,3' })),
      client(files.keys.full)
        .send(new InvokeEndpointWithResponseStreamCommand({ EndpointName: 'ep', ContentType: 'text/csv', Body: ROW }))
        .then(async (answer) => {
          for await (const event of answer.Body!) answers.push(Buffer.from(event.PayloadPart!.Bytes!).toString());
        }),
      client(files.keys.full).send(new InvokeEndpointAsyncCommand({ EndpointName: 'ep', InputLocation: join(input, 'rows.csv'), InferenceId: 'scan-1', ContentType: 'text/csv' })),
      client(wrong).send(new InvokeEndpointAsyncCommand({ EndpointName: 'ep', InputLocation: join(input, 'rows.csv'), InferenceId: 'scan-2' })),
    ];
    const outcomes = await Promise.allSettled(sdkCalls);
    assert.deepEqual(
      outcomes.map((outcome) => (outcome.status === 'fulfilled' ? 'ok' : (outcome.reason as Error).name)),
      ['ok', 'InvalidSignatureException', 'AccessDeniedException', 'ModelError', 'ok', 'ok', 'InvalidSignatureException'],
    );
    for (const outcome of outcomes) if (outcome.status === 'rejected') answers.push((outcome.reason as Error).message);

    const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
    const fetches: Array<[string, RequestInit]> = [
      ['/invocations', { method: 'POST', body: ROW, headers: { 'content-type': 'text/csv', 'x-amzn-sagemaker-custom-attributes': 'a=b', ...bearer(files.tokens.invoke) } }],
      ['/invocations', { method: 'POST', body: ROW, headers: { 'content-type': 'text/csv', ...bearer(files.tokens.metrics) } }],
      ['/invocations', { method: 'POST', body: ROW, headers: { 'content-type': 'text/csv', ...bearer(`${files.tokens.invoke}x`) } }],
      ['/v2/models/churn-forest', { headers: bearer(files.tokens.manage) }],
      ['/models', { headers: bearer(files.tokens.metrics) }],
      ['/endpoints/ep/invocations', { method: 'POST', body: ROW, headers: { 'content-type': 'text/csv', ...bearer(files.tokens.invoke) } }],
      ['/async-invocations/scan-1', { headers: bearer(files.tokens.invoke) }],
    ];
    for (const [path, init] of fetches) answers.push(await (await fetch(`${child.url}${path}`, init)).text());
    await until(
      async () => ((await (await fetch(`${child.url}/async-invocations/scan-1`, { headers: bearer(files.tokens.invoke) })).json()) as { status: string }).status === 'completed' || undefined,
      30_000,
      'the async request',
    );
    answers.push(await (await fetch(`${child.url}/metrics`, { headers: bearer(files.tokens.metrics) })).text());
  } finally {
    child.process.kill('SIGTERM');
  }
  assert.deepEqual(await child.exited, { code: 0, signal: null });

  const written = await Promise.all([...(await filesUnder(dir))].map(async (file) => ({ file, text: (await readFile(file)).toString('latin1') })));
  const captured = written.filter(({ file }) => file.startsWith(capture));
  const records = captured.flatMap(({ text }) => parseRecords(text));
  // The four requests let in: refused ones never reach capture.
  assert.equal(records.length, 4);
  const sources = [
    { what: 'the log output', text: child.output() },
    ...answers.map((text, i) => ({ what: `answer ${i}`, text })),
    ...written.map(({ file, text }) => ({ what: file, text })),
  ];
  assert.ok(signatures.length >= 14);
  for (const secret of [...files.secrets, ...signatures]) {
    for (const { what, text } of sources) assert.ok(!text.includes(secret), `${what} holds a secret`);
  }
  for (const { file, text } of captured) assert.doesNotMatch(text, /authorization|x-amz-|bearer|AWS4-HMAC/i, file);
  assert.ok(records.some((record) => record.eventMetadata.customAttributes?.[0] === 'trace=1'));
  // The log did record the refusals, by code.
  assert.match(child.output(), /INFERD_ERR_SIGNATURE_INVALID/);
  assert.match(child.output(), /INFERD_ERR_CREDENTIALS_UNKNOWN/);
});
