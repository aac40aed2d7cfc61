import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FileObjectStore } from '../../src/storage/file-store.js';
import { openObjectStore } from '../../src/storage/open-store.js';
import { S3ObjectStore } from '../../src/storage/s3-store.js';

describe('openObjectStore', () => {
  it('chooses the store by scheme', () => {
    assert.ok(openObjectStore('/tmp/x', {}) instanceof FileObjectStore);
    assert.ok(openObjectStore('file:///tmp/x', {}) instanceof FileObjectStore);
    assert.ok(openObjectStore('s3://bucket/x', { region: 'us-east-1' }) instanceof S3ObjectStore);
  });

  it('shares one S3 store, and so one client, per settings', () => {
    const settings = { s3Endpoint: 'http://127.0.0.1:9', region: 'us-east-1' };
    const first = openObjectStore('s3://bucket/a', settings);
    assert.equal(openObjectStore('s3://other-bucket/b', { ...settings }), first);
    assert.notEqual(openObjectStore('s3://bucket/a', { ...settings, region: 'eu-west-1' }), first);
  });

  it('refuses other schemes', () => {
    assert.throws(() => openObjectStore('gs://bucket/x', {}), { code: 'INVALID_URI' });
  });
});
