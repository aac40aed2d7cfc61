import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decoderFor,
  encoderFor,
  negotiateResponseType,
  SUPPORTED_REQUEST_TYPES,
  SUPPORTED_RESPONSE_TYPES,
} from '../../src/codecs/registry.js';
import { requestDecoder, responseEncoder } from '../../src/codecs/negotiation.js';

describe('codec registry', () => {
  it('finds a decoder for every supported request type, aliases included', () => {
    for (const type of SUPPORTED_REQUEST_TYPES) assert.ok(decoderFor(type), type);
    assert.equal(decoderFor('application/jsonl')?.mediaType, 'application/jsonlines');
    assert.equal(decoderFor('application/x-jsonlines')?.mediaType, 'application/jsonlines');
    assert.equal(decoderFor('text/plain'), undefined);
  });

  it('finds an encoder for every supported response type, and none for octet-stream', () => {
    assert.deepEqual(SUPPORTED_RESPONSE_TYPES, ['application/json', 'application/jsonlines', 'application/x-npy', 'text/csv']);
    for (const type of SUPPORTED_RESPONSE_TYPES) assert.equal(encoderFor(type)?.mediaType, type);
    assert.equal(encoderFor('application/jsonl')?.mediaType, 'application/jsonlines');
    assert.equal(encoderFor('application/octet-stream'), undefined);
  });
});

describe('negotiateResponseType', () => {
  const cases: { accept: string | undefined; defaultAccept?: string; expected: string | undefined }[] = [
    { accept: undefined, expected: 'application/json' },
    { accept: '', expected: 'application/json' },
    { accept: '  ', defaultAccept: 'text/csv', expected: 'text/csv' },
    { accept: '*/*', defaultAccept: 'text/csv', expected: 'text/csv' },
    { accept: '*/*', expected: 'application/json' },
    { accept: 'text/csv', expected: 'text/csv' },
    { accept: 'TEXT/CSV; charset=utf-8', expected: 'text/csv' },
    { accept: 'application/jsonl', expected: 'application/jsonlines' },
    { accept: 'application/x-npy;q=0.5, text/csv;q=0.9', expected: 'text/csv' },
    { accept: 'text/csv, application/json', expected: 'text/csv' },
    { accept: 'application/json;q=0.1, text/*', expected: 'text/csv' },
    { accept: 'application/*', expected: 'application/json' },
    { accept: 'application/*', defaultAccept: 'application/x-npy', expected: 'application/x-npy' },
    { accept: 'application/*', defaultAccept: 'text/csv', expected: 'application/json' },
    { accept: 'application/*, text/csv', expected: 'text/csv' },
    { accept: 'application/json;q=0, */*', expected: 'application/jsonlines' },
    { accept: '*/*;q=0.1, application/x-npy', expected: 'application/x-npy' },
    { accept: 'application/json;q=0', expected: undefined },
    { accept: 'text/html', expected: undefined },
    { accept: 'image/*, text/html;q=0.9', expected: undefined },
    { accept: 'application/xml, application/json;q=0.2', expected: 'application/json' },
    { accept: 'text/csv;q=abc, application/json;q=0.3', expected: 'application/json' },
    { accept: 'garbage', expected: undefined },
  ];
  for (const { accept, defaultAccept = 'application/json', expected } of cases) {
    it(`picks ${expected ?? 'nothing'} for Accept ${JSON.stringify(accept)} (default ${defaultAccept})`, () => {
      assert.equal(negotiateResponseType(accept, defaultAccept), expected);
    });
  }

  it('responseEncoder remembers each header: the same encoder every time, past the memo size, for every default', () => {
    const noise = Array.from({ length: 600 }, (_, i) => `text/csv;q=0.${(i % 9) + 1}, application/x-${i}`);
    for (let pass = 0; pass < 2; pass += 1) {
      for (const { accept, defaultAccept = 'application/json', expected } of [...cases, ...noise.map((accept) => ({ accept, defaultAccept: 'application/json', expected: 'text/csv' }))]) {
        if (expected === undefined) assert.throws(() => responseEncoder(accept, defaultAccept), { code: 'INFERD_ERR_NOT_ACCEPTABLE' });
        else assert.equal(responseEncoder(accept, defaultAccept).mediaType, expected, `Accept ${JSON.stringify(accept)}, pass ${pass}`);
      }
    }
  });

  it('requestDecoder remembers each Content-Type and still refuses the unsupported ones every time', () => {
    for (let pass = 0; pass < 2; pass += 1) {
      assert.equal(requestDecoder('Text/CSV; charset=utf-8').mediaType, 'text/csv');
      assert.equal(requestDecoder(undefined).mediaType, 'application/json');
      assert.throws(() => requestDecoder('text/html'), { code: 'INFERD_ERR_UNSUPPORTED_MEDIA_TYPE' });
    }
  });
});
