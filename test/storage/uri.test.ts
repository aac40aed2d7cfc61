import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { formatUri, joinUri, parseUri } from '../../src/storage/uri.js';

describe('parseUri', () => {
  const valid: [string, ReturnType<typeof parseUri>][] = [
    ['s3://bucket/key/prefix', { scheme: 's3', bucket: 'bucket', key: 'key/prefix' }],
    ['S3://my.bucket-1/a b/c%20d', { scheme: 's3', bucket: 'my.bucket-1', key: 'a b/c%20d' }],
    ['s3://bucket', { scheme: 's3', bucket: 'bucket', key: '' }],
    ['s3://bucket/', { scheme: 's3', bucket: 'bucket', key: '' }],
    ['file:///abs/path', { scheme: 'file', path: '/abs/path' }],
    ['file:///abs/dir/', { scheme: 'file', path: '/abs/dir/' }],
    ['file:///a%20b/c', { scheme: 'file', path: '/a b/c' }],
    ['/abs/path', { scheme: 'file', path: '/abs/path' }],
    ['/abs/../other/dir/', { scheme: 'file', path: '/other/dir/' }],
    ['relative/file', { scheme: 'file', path: resolve('relative/file') }],
    ['./data:1', { scheme: 'file', path: resolve('data:1') }],
  ];
  for (const [uri, expected] of valid) {
    it(`parses ${uri}`, () => assert.deepEqual(parseUri(uri), expected));
  }

  const invalid: [string, string][] = [
    ['', 'empty'],
    ['s3://', 'no bucket'],
    ['s3:///key', 'empty bucket'],
    ['s3://Bad_Bucket/key', 'bucket name with capitals and underscore'],
    ['s3://ab/key', 'bucket name too short'],
    ['s3:/bucket/key', 'one slash'],
    ['gs://bucket/key', 'other scheme'],
    ['https://bucket.s3.amazonaws.com/key', 'an HTTPS URL'],
    ['file://host/path', 'file URI with a host'],
    ['file:///a%2Fb', 'encoded slash'],
    ['file:///a%00b', 'encoded NUL'],
    ['path/with\0nul', 'NUL in a path'],
  ];
  for (const [uri, why] of invalid) {
    it(`refuses ${JSON.stringify(uri)} (${why})`, () => {
      assert.throws(() => parseUri(uri), { name: 'StorageError', code: 'INVALID_URI' });
    });
  }
});

describe('formatUri', () => {
  it('formats S3 and file locations as URIs that parse back', () => {
    for (const uri of ['s3://bucket/a b/c', 'file:///tmp/a%20b/c', 'file:///tmp/dir/']) {
      assert.equal(formatUri(parseUri(uri)), uri);
    }
  });
});

describe('joinUri', () => {
  const cases: [string, string[], string][] = [
    ['s3://bucket/prefix', ['run-1', 'part.jsonl'], 's3://bucket/prefix/run-1/part.jsonl'],
    ['s3://bucket/prefix/', ['/run-1/', 'x/'], 's3://bucket/prefix/run-1/x/'],
    ['s3://bucket', ['key'], 's3://bucket/key'],
    ['/data/out', ['a', 'b.json'], '/data/out/a/b.json'],
    ['/', ['a'], '/a'],
    ['file:///data/out/', ['my file#1.json'], 'file:///data/out/my%20file%231.json'],
    ['file:///', ['a'], 'file:///a'],
  ];
  for (const [base, parts, expected] of cases) {
    it(`joins ${base} + ${parts.join(' + ')}`, () => assert.equal(joinUri(base, ...parts), expected));
  }

  it('keeps the joined file URI pointing where the parts say', () => {
    assert.deepEqual(parseUri(joinUri('file:///data/', 'my file#1.json')), { scheme: 'file', path: '/data/my file#1.json' });
  });

  it('refuses "." and ".." segments and invalid bases', () => {
    assert.throws(() => joinUri('/data', '../etc/passwd'), { code: 'INVALID_URI' });
    assert.throws(() => joinUri('s3://bucket/p', 'a/./b'), { code: 'INVALID_URI' });
    assert.throws(() => joinUri('gs://bucket', 'a'), { code: 'INVALID_URI' });
  });
});
