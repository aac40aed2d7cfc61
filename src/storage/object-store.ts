/**
 * One way to read and write objects, whether they live in S3 (`s3://bucket/key`) or on local
 * disk (`file:///path` or a plain path). Data capture and the monitor use it, and batch
 * transform and async inference are to: none of them talks to the AWS SDK for payloads directly.
 */
import type { Readable } from 'node:stream';

export interface ObjectInfo {
  /** Full URI of the object, in the scheme of the store (`s3://b/k` or `file:///p`). */
  readonly uri: string;
  readonly sizeBytes: number;
  /**
   * Changes whenever the object is written, even with the same size: the ETag on S3; the
   * modification time (ms), size and inode on local disk. Opaque: compare it, never parse it.
   * Absent where a store cannot tell.
   */
  readonly version?: string | undefined;
}

export interface PutOptions {
  readonly contentType?: string | undefined;
  /** SSE-KMS key for S3; ignored on local disk. */
  readonly kmsKeyId?: string | undefined;
}

export interface ObjectStore {
  /** Writes a whole object; a stream body is uploaded without being held whole in memory. */
  put(uri: string, body: Buffer | string | Readable, options?: PutOptions): Promise<void>;
  /** Reads an object as a stream; rejects with StorageError code `NOT_FOUND` when absent. */
  get(uri: string): Promise<Readable>;
  /** Reads a whole (small) object. */
  getBuffer(uri: string): Promise<Buffer>;
  exists(uri: string): Promise<boolean>;
  /** The object's size and version; rejects with StorageError code `NOT_FOUND` when absent. */
  stat(uri: string): Promise<ObjectInfo>;
  /**
   * Every object whose URI starts with `prefixUri` (a string prefix, as in S3: `…/run-1` also
   * matches `…/run-10/x`), in lexicographic (UTF-8 byte) order of key. Nothing matching: empty.
   */
  list(prefixUri: string): AsyncIterable<ObjectInfo>;
  /** Removes an object; removing one that is absent is not an error, as in S3. */
  delete(uri: string): Promise<void>;
}

/**
 * `NOT_FOUND`: no such object. `INVALID_URI`: the URI cannot name an object in this store.
 * `UNAVAILABLE`: the store could not be reached or answered 5xx; worth retrying later.
 * `FAILED`: anything else (access denied, disk full…); the original error is the `cause`.
 */
export type StorageErrorCode = 'NOT_FOUND' | 'INVALID_URI' | 'UNAVAILABLE' | 'FAILED';

export class StorageError extends Error {
  readonly code: StorageErrorCode;
  constructor(code: StorageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StorageError';
    this.code = code;
  }
}

/** Settings the store needs from the validated configuration (never read from the environment here). */
export interface StorageSettings {
  /** S3-compatible endpoint (`AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`); when set, path-style addressing. */
  readonly s3Endpoint?: string | undefined;
  readonly region?: string | undefined;
}
