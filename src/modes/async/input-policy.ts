/**
 * Which input locations an async request may name: only objects under the configured prefixes,
 * each read as a folder (`s3://bucket/data` admits `s3://bucket/data/x.csv`, not
 * `s3://bucket/data-private/x.csv`), so a client cannot make inferd read arbitrary objects or files.
 */
import { parseUri, type ObjectLocation } from '../../storage/uri.js';

function within(location: ObjectLocation, prefix: ObjectLocation): boolean {
  if (location.scheme === 's3' && prefix.scheme === 's3') {
    if (location.bucket !== prefix.bucket) return false;
    // S3 keeps `..` verbatim, but an HTTP layer between may not: refuse such keys outright.
    if (location.key.split('/').some((segment) => segment === '.' || segment === '..')) return false;
    const folder = prefix.key.replace(/\/+$/, '');
    return folder === '' || location.key.startsWith(`${folder}/`);
  }
  if (location.scheme === 'file' && prefix.scheme === 'file') {
    // parseUri resolves `.` and `..`, so a path cannot climb out of its prefix.
    return location.path.startsWith(`${prefix.path.replace(/\/+$/, '')}/`);
  }
  return false;
}

/** Throws StorageError `INVALID_URI` when `uri` is not a URI or path at all. */
export function isAllowedInput(uri: string, allowedPrefixes: readonly string[]): boolean {
  const location = parseUri(uri);
  return allowedPrefixes.some((prefix) => within(location, parseUri(prefix)));
}
