/** ObjectStore over S3, or any S3-compatible server, through @aws-sdk/client-s3. */
import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { StorageError, type ObjectInfo, type ObjectStore, type PutOptions, type StorageSettings } from './object-store.js';
import { formatUri, parseUri, type S3Location } from './uri.js';

const DEFAULT_REGION = 'us-east-1';

const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/** Credentials always come from the SDK's default chain (environment, profile, container role). */
export function createS3Client(settings: StorageSettings): S3Client {
  return new S3Client({
    region: settings.region ?? sdkRegionOrDefault(),
    ...(settings.s3Endpoint ? { endpoint: settings.s3Endpoint, forcePathStyle: true } : {}),
    // Since v3.729 the SDK adds CRC32 checksums to every request and sends stream bodies as
    // `aws-chunked` with a trailing checksum, and asks for checksums on every response. S3 itself
    // accepts both, but S3-compatible servers that predate them do not: s3rver, for one, reports
    // success and stores the chunk framing inside the object. Checksums only where S3 requires
    // them (DeleteObjects, for example) work everywhere; TLS already protects the transfer.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/**
 * The SDK's own region chain (AWS_REGION, the shared config file, EC2 instance metadata) fails
 * when it finds nothing; a local S3-compatible server ignores the region, so fall back instead.
 * The chain is only reachable through a client's resolved configuration, hence the probe.
 */
function sdkRegionOrDefault(): () => Promise<string> {
  let region: Promise<string> | undefined;
  return () => {
    if (region === undefined) {
      const probe = new S3Client({});
      region = probe.config
        .region()
        .catch(() => DEFAULT_REGION)
        .finally(() => probe.destroy());
    }
    return region;
  };
}

export class S3ObjectStore implements ObjectStore {
  constructor(private readonly client: S3Client) {}

  async put(uri: string, body: Buffer | string | Readable, options: PutOptions = {}): Promise<void> {
    const { bucket, key } = s3ObjectLocation(uri);
    const params = {
      Bucket: bucket,
      Key: key,
      ContentType: options.contentType,
      ...(options.kmsKeyId ? { ServerSideEncryption: 'aws:kms' as const, SSEKMSKeyId: options.kmsKeyId } : {}),
    };
    await withStorageErrors(uri, async () => {
      if (body instanceof Readable) {
        // Upload reads the stream in 5 MiB parts (multipart when there are several), so the
        // object is never held whole, and on failure aborts the multipart upload: no partial
        // object, no orphaned parts. If the abort fails too, Upload throws the abort's error,
        // so the body's own error is kept to be reported in its place.
        let bodyError: unknown;
        body.once('error', (error) => (bodyError = error));
        await new Upload({ client: this.client, params: { ...params, Body: body } }).done().catch((error: unknown) => {
          throw bodyError ?? error;
        });
      } else {
        await this.client.send(new PutObjectCommand({ ...params, Body: body }));
      }
    });
  }

  async get(uri: string): Promise<Readable> {
    const { bucket, key } = s3ObjectLocation(uri);
    const { Body } = await withStorageErrors(uri, () =>
      this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key })),
    );
    if (!(Body instanceof Readable)) throw new StorageError('FAILED', `S3 returned no body stream for ${uri}`);
    return Body;
  }

  async getBuffer(uri: string): Promise<Buffer> {
    return withStorageErrors(uri, async () => Buffer.concat(await (await this.get(uri)).toArray()));
  }

  async exists(uri: string): Promise<boolean> {
    const { bucket, key } = s3ObjectLocation(uri);
    try {
      await withStorageErrors(uri, () => this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })));
      return true;
    } catch (error) {
      if (error instanceof StorageError && error.code === 'NOT_FOUND') return false;
      throw error;
    }
  }

  async stat(uri: string): Promise<ObjectInfo> {
    const { bucket, key } = s3ObjectLocation(uri);
    const head = await withStorageErrors(uri, () => this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })));
    return { uri, sizeBytes: head.ContentLength ?? 0, version: head.ETag };
  }

  async *list(prefixUri: string): AsyncIterable<ObjectInfo> {
    const { bucket, key: prefix } = s3Location(prefixUri);
    const pages = paginateListObjectsV2({ client: this.client }, { Bucket: bucket, Prefix: prefix });
    try {
      for await (const page of pages) {
        for (const object of page.Contents ?? []) {
          if (object.Key === undefined) continue;
          yield { uri: formatUri({ scheme: 's3', bucket, key: object.Key }), sizeBytes: object.Size ?? 0, version: object.ETag };
        }
      }
    } catch (error) {
      throw toStorageError(error, prefixUri);
    }
  }

  async delete(uri: string): Promise<void> {
    const { bucket, key } = s3ObjectLocation(uri);
    await withStorageErrors(uri, () => this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })));
  }
}

function s3Location(uri: string): S3Location {
  const location = parseUri(uri);
  if (location.scheme !== 's3') throw new StorageError('INVALID_URI', `not an s3:// URI: ${uri}`);
  return location;
}

function s3ObjectLocation(uri: string): S3Location {
  const location = s3Location(uri);
  if (location.key === '') throw new StorageError('INVALID_URI', `${uri} names a bucket, not an object`);
  return location;
}

async function withStorageErrors<T>(uri: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw toStorageError(error, uri);
  }
}

function toStorageError(error: unknown, uri: string): StorageError {
  if (error instanceof StorageError) return error;
  const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  if (error instanceof S3ServiceException) {
    const status = error.$metadata.httpStatusCode ?? 0;
    if (error.name === 'NoSuchKey' || status === 404) {
      return new StorageError('NOT_FOUND', `${uri} does not exist (${reason})`, { cause: error });
    }
    if (status >= 500) return new StorageError('UNAVAILABLE', `S3 failed on ${uri} (${reason})`, { cause: error });
  } else if (isConnectionError(error)) {
    return new StorageError('UNAVAILABLE', `S3 unreachable for ${uri} (${reason})`, { cause: error });
  }
  return new StorageError('FAILED', `S3 request for ${uri} failed (${reason})`, { cause: error });
}

function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const { code } = error as NodeJS.ErrnoException;
  if (error.name === 'TimeoutError' || (code !== undefined && CONNECTION_ERROR_CODES.has(code))) return true;
  // Node tries every address of a host name and reports the failures together.
  return error instanceof AggregateError && error.errors.some(isConnectionError);
}
