/**
 * Object URIs: `s3://bucket/key`, `file:///abs/path`, or a plain path (relative to the working
 * directory). An S3 key is taken verbatim, as the AWS CLI does; a file URI is percent-decoded.
 */
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { StorageError } from './object-store.js';

export interface S3Location {
  readonly scheme: 's3';
  readonly bucket: string;
  /** May be empty: the URI then names the whole bucket, which only `list` accepts. */
  readonly key: string;
}

export interface FileLocation {
  readonly scheme: 'file';
  /** Absolute; ends with `/` when the URI did, so that a list prefix keeps its meaning. */
  readonly path: string;
}

export type ObjectLocation = S3Location | FileLocation;

// Two characters at least, so that a typo such as `s3:/bucket` is refused rather than taken
// for a relative path; a relative path that starts with `name:` needs a leading `./`.
const SCHEME = /^([a-z][a-z0-9+.-]+):/i;
const S3_URI = /^s3:\/\/([^/]*)(?:\/([\s\S]*))?$/i;
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function parseUri(uri: string): ObjectLocation {
  if (uri === '' || uri.includes('\0')) throw invalid(uri, 'empty or contains a NUL byte');
  const scheme = SCHEME.exec(uri)?.[1]?.toLowerCase();
  if (scheme === undefined) return { scheme: 'file', path: absolutePath(uri) };
  if (scheme === 's3') return parseS3Uri(uri);
  if (scheme === 'file') return { scheme: 'file', path: filePath(uri) };
  throw invalid(uri, `unsupported scheme "${scheme}:" (use s3://, file:// or a path)`);
}

export function formatUri(location: ObjectLocation): string {
  return location.scheme === 's3' ? `s3://${location.bucket}/${location.key}` : pathToFileURL(location.path).href;
}

/**
 * Appends path segments to `base`, keeping its form (an S3 URI, a file URI, or a plain path).
 * Slashes between parts are normalised and a trailing slash on the last part is kept; `.` and
 * `..` segments are refused, so that the result never escapes `base`.
 */
export function joinUri(base: string, ...parts: readonly string[]): string {
  const segments = parts.flatMap((part) => part.split('/')).filter((segment) => segment !== '');
  if (segments.some((segment) => segment === '.' || segment === '..')) {
    throw invalid(`${base} + ${parts.join(', ')}`, 'path segments "." and ".." are not allowed');
  }
  const trailingSlash = parts.at(-1)?.endsWith('/') ? '/' : '';
  const location = parseUri(base);
  if (location.scheme === 'file' && SCHEME.test(base)) {
    return formatUri({ scheme: 'file', path: appendSegments(location.path, segments) + trailingSlash });
  }
  return appendSegments(base, segments) + trailingSlash;
}

function appendSegments(base: string, segments: readonly string[]): string {
  return [base.replace(/\/$/, ''), ...segments].join('/');
}

function parseS3Uri(uri: string): S3Location {
  const match = S3_URI.exec(uri);
  const bucket = match?.[1];
  if (bucket === undefined) throw invalid(uri, 'expected s3://bucket/key');
  if (!BUCKET_NAME.test(bucket)) throw invalid(uri, `"${bucket}" is not a valid bucket name`);
  return { scheme: 's3', bucket, key: match?.[2] ?? '' };
}

function filePath(uri: string): string {
  let path: string;
  try {
    path = fileURLToPath(uri);
  } catch (error) {
    throw invalid(uri, 'not a local absolute file URI', error);
  }
  if (path.includes('\0')) throw invalid(uri, 'contains a NUL byte');
  return path;
}

function absolutePath(path: string): string {
  const absolute = resolve(path);
  return path.endsWith('/') && absolute !== '/' ? `${absolute}/` : absolute;
}

function invalid(uri: string, reason: string, cause?: unknown): StorageError {
  return new StorageError('INVALID_URI', `invalid object URI "${uri}": ${reason}`, { cause });
}
