import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isAllowedInput } from '../../src/modes/async/input-policy.js';

describe('isAllowedInput', () => {
  const allowed = ['s3://inputs/data', 's3://whole-bucket', '/srv/payloads/'];
  const cases: [string, boolean][] = [
    ['s3://inputs/data/x.csv', true],
    ['s3://inputs/data/deep/er/x.csv', true],
    ['s3://inputs/data', false], // the prefix itself names no object under it
    ['s3://inputs/data-private/x.csv', false], // a sibling that shares the string prefix
    ['s3://inputs/other/x.csv', false],
    ['s3://other-bucket/data/x.csv', false],
    ['s3://whole-bucket/anything/at/all', true],
    ['/srv/payloads/a.json', true],
    ['file:///srv/payloads/a.json', true],
    ['/srv/payloads/../secrets/a.json', false], // `..` is resolved before the check
    ['/srv/payloads-old/a.json', false],
    ['/etc/passwd', false],
    ['s3://inputs/data/../../etc', false], // verbatim in S3, but a proxy might resolve it: refused
  ];
  for (const [uri, expected] of cases) {
    it(`${uri} → ${expected ? 'allowed' : 'refused'}`, () => assert.equal(isAllowedInput(uri, allowed), expected));
  }

  it('refuses everything when no prefix is configured', () => {
    assert.equal(isAllowedInput('s3://inputs/data/x.csv', []), false);
  });

  it('throws on what is not a URI or path at all', () => {
    assert.throws(() => isAllowedInput('https://example.com/x', allowed), { name: 'StorageError', code: 'INVALID_URI' });
  });
});
