import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { encodeNpy, npyDecoder, npyEncoder } from '../../src/codecs/npy.js';
import { DTYPES, type ModelSignature, type Tensor } from '../../src/codecs/tensor.js';
import type { ErrorCode } from '../../src/errors.js';
import {
  assertFails,
  assertTensor,
  CHURN_FOREST,
  CHURN_MLP,
  FOREST_OUTPUTS,
  MLP_OUTPUTS,
  REFERENCE,
  REFERENCE_FEATURES,
  TEXT_CLASSIFIER,
  tensorArbitrary,
  unaligned,
} from './fixtures.js';

const decode = (body: Buffer, signature: ModelSignature = CHURN_MLP) => npyDecoder.decode(body, signature, {});

/** An .npy file with a hand-written header dict, for the cases numpy itself would not write. */
function npyFile(dict: string, data: Uint8Array, version = 1): Buffer {
  const prefix = version === 1 ? 10 : 12;
  const header = `${dict}${' '.repeat(63 - ((prefix + dict.length) % 64))}\n`;
  const file = Buffer.alloc(prefix + header.length + data.length);
  file.write('\x93NUMPY', 'latin1');
  file[6] = version;
  if (version === 1) file.writeUInt16LE(header.length, 8);
  else file.writeUInt32LE(header.length, 8);
  file.write(header, prefix, 'latin1');
  file.set(data, prefix + header.length);
  return file;
}

const bytesOf = (data: Tensor['data']) => new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
const referenceFloat64 = Float64Array.from(REFERENCE.rows.flat());
const THREE_COLUMNS: ModelSignature = { inputs: [{ name: 'x', dtype: 'float32', shape: [null, 3] }], outputs: [] };

// np.arange(6, dtype='<f8').reshape(2, 3) / 4, saved by numpy 2.4 in each format version.
const NUMPY_FILES: Record<string, string> = {
  '1.0':
    'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAAAAAAAAAAANA/AAAAAAAA4D8AAAAAAADoPwAAAAAAAPA/AAAAAAAA9D8=',
  '2.0':
    'k05VTVBZAgB0AAAAeydkZXNjcic6ICc8ZjgnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMiwgMyksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAAAAAAAAAAANA/AAAAAAAA4D8AAAAAAADoPwAAAAAAAPA/AAAAAAAA9D8=',
  '3.0':
    'k05VTVBZAwB0AAAAeydkZXNjcic6ICc8ZjgnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMiwgMyksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAAAAAAAAAAANA/AAAAAAAA4D8AAAAAAADoPwAAAAAAAPA/AAAAAAAA9D8=',
};

describe('npy decoder', () => {
  for (const [version, base64] of Object.entries(NUMPY_FILES)) {
    it(`reads a float64 file numpy wrote in format ${version} into a float32 input`, () => {
      assertTensor(decode(Buffer.from(base64, 'base64'), THREE_COLUMNS).inputs.x, {
        dtype: 'float32',
        dims: [2, 3],
        data: Float32Array.of(0, 0.25, 0.5, 0.75, 1, 1.25),
      });
    });
  }

  it('decodes the reference rows from float32 and from float64 files', () => {
    const expected: Tensor = { dtype: 'float32', dims: [5, 20], data: REFERENCE_FEATURES };
    assertTensor(decode(encodeNpy(expected)).inputs.features, expected);
    assertTensor(decode(encodeNpy({ dtype: 'float64', dims: [5, 20], data: referenceFloat64 })).inputs.features, expected);
  });

  it('copies data that is not aligned for a typed-array view', () => {
    const file = encodeNpy({ dtype: 'float32', dims: [5, 20], data: REFERENCE_FEATURES });
    const shifted = unaligned(file);
    assert.equal(shifted.byteOffset % 4, 1);
    assertTensor(decode(shifted).inputs.features, { dtype: 'float32', dims: [5, 20], data: REFERENCE_FEATURES });
  });

  it('casts integers of another width to the model dtype', () => {
    const signature: ModelSignature = { inputs: [{ name: 'ids', dtype: 'int64', shape: [null, 2] }], outputs: [] };
    const file = npyFile("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 2), }", Uint8Array.of(7, 255));
    assertTensor(decode(file, signature).inputs.ids, { dtype: 'int64', dims: [1, 2], data: BigInt64Array.of(7n, 255n) });
  });

  const float32Row = bytesOf(new Float32Array(3));
  const header = (descr: string, shape = '(1, 3)', fortran = 'False') => `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;
  const int8Signature: ModelSignature = { inputs: [{ name: 'x', dtype: 'int8', shape: [null] }], outputs: [] };
  const failures: { name: string; body: Buffer; signature?: ModelSignature; code: ErrorCode; message: RegExp }[] = [
    { name: 'an empty body', body: Buffer.alloc(0), code: 'INFERD_ERR_BODY_MALFORMED', message: /empty/ },
    { name: 'a missing magic string', body: Buffer.from('{"instances": [[1, 2, 3]]}'), code: 'INFERD_ERR_BODY_MALFORMED', message: /magic/ },
    { name: 'format version 4', body: npyFile(header('<f4'), float32Row, 4), code: 'INFERD_ERR_BODY_MALFORMED', message: /version 4/ },
    { name: 'a truncated header', body: npyFile(header('<f4'), float32Row).subarray(0, 40), code: 'INFERD_ERR_BODY_MALFORMED', message: /header is truncated/ },
    { name: 'a header without a shape', body: npyFile("{'descr': '<f4', 'fortran_order': False, }", float32Row), code: 'INFERD_ERR_BODY_MALFORMED', message: /needs 'descr', 'fortran_order' and 'shape'/ },
    { name: 'truncated data', body: npyFile(header('<f4'), float32Row.subarray(0, 10)), code: 'INFERD_ERR_BODY_MALFORMED', message: /has 10 bytes, but shape \(1, 3\) of '<f4' needs 12/ },
    { name: 'trailing data', body: npyFile(header('<f4'), bytesOf(new Float32Array(4))), code: 'INFERD_ERR_BODY_MALFORMED', message: /has 16 bytes/ },
    { name: 'big-endian data', body: npyFile(header('>f4'), float32Row), code: 'INFERD_ERR_BODY_MALFORMED', message: /only little-endian/ },
    { name: 'Fortran order', body: npyFile(header('<f4', '(1, 3)', 'True'), float32Row), code: 'INFERD_ERR_BODY_MALFORMED', message: /fortran_order/ },
    { name: 'an unsupported dtype', body: npyFile(header('<c8'), bytesOf(new Float32Array(6))), code: 'INFERD_ERR_INPUT_INVALID', message: /dtype '<c8' is not supported/ },
    { name: 'integers for a float model', body: npyFile(header('<i4'), bytesOf(new Int32Array(3))), code: 'INFERD_ERR_INPUT_INVALID', message: /has .npy dtype '<i4', but the model expects float32/ },
    { name: 'a dimension mismatch', body: npyFile(header('<f4'), float32Row), signature: CHURN_MLP, code: 'INFERD_ERR_INPUT_INVALID', message: /dimension 1 must be 20, got 3/ },
    { name: 'an int64 out of range for int8', body: npyFile(header('<i8', '(2,)'), bytesOf(BigInt64Array.of(1n, 200n))), signature: int8Signature, code: 'INFERD_ERR_INPUT_INVALID', message: /element 1: 200 is out of range for int8/ },
    { name: 'a multi-input model', body: npyFile(header('<i8', '(1, 1)'), bytesOf(new BigInt64Array(1))), signature: TEXT_CLASSIFIER, code: 'INFERD_ERR_UNSUPPORTED_MEDIA_TYPE', message: /application\/x-npy carries a single tensor/ },
  ];
  for (const { name, body, signature = THREE_COLUMNS, code, message } of failures) {
    it(`rejects ${name} with ${code}`, () => assertFails(() => decode(body, signature), code, message));
  }
});

describe('npy encoder', () => {
  it('writes a version 1.0 header padded to a multiple of 64 bytes', () => {
    const file = npyEncoder.encode(MLP_OUTPUTS, CHURN_MLP, { style: 'predictions', modelName: 'm' });
    const headerLength = file.readUInt16LE(8);
    assert.equal(file.toString('latin1', 0, 8), '\x93NUMPY\x01\x00');
    assert.equal((10 + headerLength) % 64, 0);
    assert.equal(file[10 + headerLength - 1], 0x0a);
    assert.match(file.toString('latin1', 10, 10 + headerLength), /^\{'descr': '<f4', 'fortran_order': False, 'shape': \(5, 2\), \} *\n$/);
    assert.equal(file.length, 10 + headerLength + 5 * 2 * 4);
  });

  it('writes a 1-D shape as a one-element tuple', () => {
    const file = encodeNpy({ dtype: 'int64', dims: [3], data: BigInt64Array.of(1n, -2n, 9007199254740993n) });
    assert.match(file.toString('latin1', 10, 80), /'descr': '<i8', 'fortran_order': False, 'shape': \(3,\)/);
  });

  it('refuses a multi-output model with 406', () => {
    assertFails(
      () => npyEncoder.encode(FOREST_OUTPUTS, CHURN_FOREST, { style: 'predictions', modelName: 'm' }),
      'INFERD_ERR_NOT_ACCEPTABLE',
      /carries one tensor, but this model has 2 outputs \('label', 'probabilities'\)/,
    );
  });

  for (const dtype of DTYPES) {
    it(`round-trips any ${dtype} tensor`, () => {
      fc.assert(
        fc.property(tensorArbitrary(dtype), (tensor) => {
          const signature: ModelSignature = { inputs: [{ name: 'x', dtype, shape: tensor.dims.map(() => null) }], outputs: [] };
          assertTensor(decode(encodeNpy(tensor), signature).inputs.x, tensor);
        }),
      );
    });
  }
});
