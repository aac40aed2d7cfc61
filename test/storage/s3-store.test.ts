import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { S3Client } from '@aws-sdk/client-s3';
import { S3ObjectStore, createS3Client } from '../../src/storage/s3-store.js';
import { S3RVER_ENV, startS3Server, type S3Server } from '../s3-server.js';
import { collect, objectStoreContract, patternChunks } from './object-store-contract.js';

Object.assign(process.env, S3RVER_ENV);
// No region is configured here, so the SDK would ask EC2 instance metadata (1 s timeout) first.
process.env.AWS_EC2_METADATA_DISABLED = 'true';

const BUCKET = 'inferd-test';
const MiB = 1024 * 1024;
let server: S3Server;
let client: S3Client;
let store: S3ObjectStore;

before(async () => {
  server = await startS3Server({ buckets: [BUCKET] });
  client = createS3Client({ s3Endpoint: server.endpoint });
  store = new S3ObjectStore(client);
});
after(async () => {
  client.destroy();
  await server.close();
});

objectStoreContract('S3 store on s3rver', () => ({ store, root: `s3://${BUCKET}/contract/` }));

describe('S3 store', () => {
  it('reports UNAVAILABLE while the server is down, and works again once it is back', async () => {
    await store.put(`s3://${BUCKET}/outage/kept`, 'kept');
    await server.stop();
    try {
      await assert.rejects(store.getBuffer(`s3://${BUCKET}/outage/kept`), { code: 'UNAVAILABLE' });
      await assert.rejects(store.put(`s3://${BUCKET}/outage/new`, 'new'), { code: 'UNAVAILABLE' });
      await assert.rejects(store.exists(`s3://${BUCKET}/outage/kept`), { code: 'UNAVAILABLE' });
      await assert.rejects(collect(store.list(`s3://${BUCKET}/outage/`)), { code: 'UNAVAILABLE' });
    } finally {
      await server.restart();
    }
    assert.equal((await store.getBuffer(`s3://${BUCKET}/outage/kept`)).toString(), 'kept');
  });

  it('asks for SSE-KMS with the key id when one is given', async () => {
    const { store: kmsStore, sent, destroy } = recordingStore();
    try {
      await kmsStore.put(`s3://${BUCKET}/kms/buffer`, 'x', { kmsKeyId: 'alias/capture' });
      await kmsStore.put(`s3://${BUCKET}/kms/stream`, Readable.from(patternChunks(6 * MiB)), { kmsKeyId: 'alias/capture' });
      await kmsStore.put(`s3://${BUCKET}/kms/plain`, 'x');
    } finally {
      destroy();
    }
    const sse = ({ command, headers }: SentRequest): [string, string?, string?] => [
      command,
      headers['x-amz-server-side-encryption'],
      headers['x-amz-server-side-encryption-aws-kms-key-id'],
    ];
    assert.deepEqual(
      sent.filter(({ command }) => command !== 'UploadPartCommand').map(sse),
      [
        ['PutObjectCommand', 'aws:kms', 'alias/capture'],
        ['CreateMultipartUploadCommand', 'aws:kms', 'alias/capture'],
        ['CompleteMultipartUploadCommand', undefined, undefined],
        ['PutObjectCommand', undefined, undefined],
      ],
    );
  });

  it('aborts the multipart upload when a streamed body fails, leaving no object', async () => {
    const { store: abortingStore, sent, destroy } = recordingStore();
    async function* failsAfterOnePart(): AsyncGenerator<Buffer> {
      yield* patternChunks(6 * MiB);
      throw new Error('source failed');
    }
    try {
      // s3rver answers the abort with 405 MethodNotAllowed; the body's own error is what counts.
      await assert.rejects(abortingStore.put(`s3://${BUCKET}/aborted/object`, Readable.from(failsAfterOnePart())), {
        code: 'FAILED',
        message: /source failed/,
      });
    } finally {
      destroy();
    }
    assert.ok(sent.some(({ command }) => command === 'AbortMultipartUploadCommand'));
    assert.equal(await store.exists(`s3://${BUCKET}/aborted/object`), false);
  });

  it('refuses file URIs and bucket-only URIs for objects', async () => {
    await assert.rejects(store.put('/tmp/x', 'x'), { code: 'INVALID_URI' });
    await assert.rejects(store.getBuffer(`s3://${BUCKET}`), { code: 'INVALID_URI' });
    await assert.rejects(store.getBuffer(`s3://${BUCKET}/`), { code: 'INVALID_URI' });
  });

  it('reports NOT_FOUND for a missing bucket', async () => {
    await assert.rejects(store.getBuffer('s3://no-such-bucket/key'), { code: 'NOT_FOUND' });
  });
});

describe('S3 client region', () => {
  it('takes the region from the settings, else the SDK chain, else us-east-1', async () => {
    const names = ['AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_PROFILE', 'AWS_REGION'] as const;
    const saved = names.map((name) => [name, process.env[name]] as const);
    try {
      process.env.AWS_CONFIG_FILE = '/nonexistent/aws-config';
      process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/aws-credentials';
      delete process.env.AWS_PROFILE;
      delete process.env.AWS_REGION;
      assert.equal(await createS3Client({ region: 'eu-west-3' }).config.region(), 'eu-west-3');
      assert.equal(await createS3Client({}).config.region(), 'us-east-1');
      process.env.AWS_REGION = 'ap-south-1';
      assert.equal(await createS3Client({}).config.region(), 'ap-south-1');
    } finally {
      for (const [name, value] of saved) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });
});

interface SentRequest {
  readonly command: string;
  readonly headers: Record<string, string>;
}

/** A store whose client records every request it sends, as it goes on the wire. */
function recordingStore(): { store: S3ObjectStore; sent: SentRequest[]; destroy(): void } {
  const recordingClient = createS3Client({ s3Endpoint: server.endpoint });
  const sent: SentRequest[] = [];
  recordingClient.middlewareStack.add(
    (next, context) => async (args) => {
      const { headers } = args.request as { headers: Record<string, string> };
      sent.push({ command: String(context.commandName), headers });
      return next(args);
    },
    { step: 'finalizeRequest' },
  );
  return { store: new S3ObjectStore(recordingClient), sent, destroy: () => recordingClient.destroy() };
}
