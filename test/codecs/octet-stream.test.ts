import { describe, it } from 'node:test';
import { octetStreamDecoder } from '../../src/codecs/octet-stream.js';
import type { ModelSignature } from '../../src/codecs/tensor.js';
import type { ErrorCode } from '../../src/errors.js';
import { assertFails, assertTensor, CHURN_MLP, MOBILENET, REFERENCE_FEATURES, TEXT_CLASSIFIER, unaligned } from './fixtures.js';

const referenceBytes = Buffer.from(REFERENCE_FEATURES.buffer, REFERENCE_FEATURES.byteOffset, REFERENCE_FEATURES.byteLength);
const decode = (body: Buffer, shapeHeader?: string, signature: ModelSignature = CHURN_MLP) =>
  octetStreamDecoder.decode(body, signature, { shapeHeader });

describe('octet-stream decoder', () => {
  const shapes: { name: string; shapeHeader?: string }[] = [
    { name: 'the rows inferred from the byte length' },
    { name: 'the shape header', shapeHeader: '5,20' },
    { name: 'a shape header with spaces', shapeHeader: ' 5 , 20 ' },
  ];
  for (const { name, shapeHeader } of shapes) {
    it(`decodes the reference rows with ${name}`, () => {
      assertTensor(decode(referenceBytes, shapeHeader).inputs.features, { dtype: 'float32', dims: [5, 20], data: REFERENCE_FEATURES });
    });
  }

  it('copies bytes that are not aligned for a typed-array view', () => {
    const shifted = unaligned(referenceBytes);
    assertTensor(decode(shifted).inputs.features, { dtype: 'float32', dims: [5, 20], data: REFERENCE_FEATURES });
  });

  it('uses a fully static model shape as is', () => {
    const signature: ModelSignature = { inputs: [{ name: 'x', dtype: 'int16', shape: [2, 2] }], outputs: [] };
    const data = Int16Array.of(1, -2, 3, -4);
    assertTensor(decode(Buffer.from(data.buffer), undefined, signature).inputs.x, { dtype: 'int16', dims: [2, 2], data });
  });

  const failures: { name: string; body: Buffer; shapeHeader?: string; signature?: ModelSignature; code: ErrorCode; message: RegExp }[] = [
    { name: 'an empty body', body: Buffer.alloc(0), code: 'INFERD_ERR_BODY_MALFORMED', message: /empty/ },
    { name: 'a shape header with a zero', body: referenceBytes, shapeHeader: '0,20', code: 'INFERD_ERR_BODY_MALFORMED', message: /X-Inferd-Shape must be comma-separated positive integers/ },
    { name: 'a shape header with a word', body: referenceBytes, shapeHeader: '5,twenty', code: 'INFERD_ERR_BODY_MALFORMED', message: /X-Inferd-Shape/ },
    { name: 'an empty shape header', body: referenceBytes, shapeHeader: '', code: 'INFERD_ERR_BODY_MALFORMED', message: /X-Inferd-Shape/ },
    { name: 'a byte length that is not whole rows', body: referenceBytes.subarray(0, 84), code: 'INFERD_ERR_INPUT_INVALID', message: /84 bytes is not a whole number of float32 rows of \[20\] \(80 bytes each\)/ },
    { name: 'a byte length disagreeing with the shape header', body: referenceBytes, shapeHeader: '4,20', code: 'INFERD_ERR_INPUT_INVALID', message: /shape \[4,20\] of float32 needs 320 bytes, got 400/ },
    { name: 'a shape header disagreeing with the model', body: referenceBytes, shapeHeader: '20,5', code: 'INFERD_ERR_INPUT_INVALID', message: /dimension 1 must be 20, got 5/ },
    { name: 'a model with dynamic dims beyond the batch', body: referenceBytes, signature: { inputs: [{ name: 'x', dtype: 'float32', shape: [null, null] }], outputs: [] }, code: 'INFERD_ERR_INPUT_INVALID', message: /send its shape in X-Inferd-Shape/ },
    { name: 'an image short of a whole row', body: Buffer.alloc(3 * 224 * 224 * 4 - 4), signature: MOBILENET, code: 'INFERD_ERR_INPUT_INVALID', message: /not a whole number/ },
    { name: 'a multi-input model', body: referenceBytes, signature: TEXT_CLASSIFIER, code: 'INFERD_ERR_UNSUPPORTED_MEDIA_TYPE', message: /application\/octet-stream carries a single tensor/ },
  ];
  for (const { name, body, shapeHeader, signature, code, message } of failures) {
    it(`rejects ${name} with ${code}`, () => assertFails(() => decode(body, shapeHeader, signature), code, message));
  }
});
