/**
 * application/x-npy: one tensor in NumPy's .npy format (versions 1.0, 2.0 and 3.0), for models
 * with a single input (requests) or a single output (responses).
 */
import { invalidInput, malformedBody, notAcceptable } from '../errors.js';
import type { RequestDecoder, ResponseEncoder } from './codec.js';
import { signatureOutputs } from './rows.js';
import { checkInputs, singleInput } from './signature-check.js';
import { bytesPerElement, elementCount, type DType, type Tensor } from './tensor.js';
import { castData, checkSameKind, dataFromBytes } from './values.js';

const MAGIC = '\x93NUMPY';
/** numpy pads the header so the data starts on a multiple of this. */
const HEADER_ALIGNMENT = 64;

const DESCR_DTYPES: Record<string, DType> = {
  '<f4': 'float32',
  '<f8': 'float64',
  '|i1': 'int8',
  '<i1': 'int8',
  '|u1': 'uint8',
  '<u1': 'uint8',
  '<i2': 'int16',
  '<u2': 'uint16',
  '<i4': 'int32',
  '<i8': 'int64',
  '|b1': 'bool',
  '<b1': 'bool',
};

const DTYPE_DESCRS: Record<DType, string> = {
  float32: '<f4',
  float64: '<f8',
  int8: '|i1',
  uint8: '|u1',
  int16: '<i2',
  uint16: '<u2',
  int32: '<i4',
  int64: '<i8',
  bool: '|b1',
};

interface NpyHeader {
  readonly descr: string;
  readonly dtype: DType;
  readonly dims: number[];
  readonly dataOffset: number;
}

function headerField(header: string, key: string, value: string): string | undefined {
  return new RegExp(`['"]${key}['"]\\s*:\\s*${value}`).exec(header)?.[1];
}

function parseHeader(body: Buffer): NpyHeader {
  if (body.length < 10 || body.toString('latin1', 0, MAGIC.length) !== MAGIC) throw malformedBody('not an .npy file: the magic string is missing');
  const major = body[6];
  if (major !== 1 && major !== 2 && major !== 3) throw malformedBody(`unsupported .npy version ${major}`);
  const headerStart = major === 1 ? 10 : 12;
  if (body.length < headerStart) throw malformedBody('the .npy header is truncated');
  const headerLength = major === 1 ? body.readUInt16LE(8) : body.readUInt32LE(8);
  const dataOffset = headerStart + headerLength;
  if (body.length < dataOffset) throw malformedBody('the .npy header is truncated');
  const header = body.toString(major === 3 ? 'utf8' : 'latin1', headerStart, dataOffset);

  const descr = headerField(header, 'descr', `['"]([^'"]+)['"]`);
  const fortranOrder = headerField(header, 'fortran_order', '(True|False)');
  const shape = headerField(header, 'shape', '\\(([^)]*)\\)');
  if (descr === undefined || fortranOrder === undefined || shape === undefined) {
    throw malformedBody("the .npy header needs 'descr', 'fortran_order' and 'shape'");
  }
  if (fortranOrder === 'True') throw malformedBody('fortran_order .npy arrays are not supported; save a C-order array');
  const dims = shape
    .split(',')
    .map((d) => d.trim())
    .filter((d) => d !== '');
  if (!dims.every((d) => /^\d+$/.test(d))) throw malformedBody(`the .npy shape (${shape}) is not a tuple of integers`);

  const dtype = Object.hasOwn(DESCR_DTYPES, descr) ? DESCR_DTYPES[descr] : undefined;
  if (!dtype) {
    if (descr.startsWith('>')) throw malformedBody(`.npy dtype '${descr}' is big-endian; only little-endian is supported`);
    throw invalidInput(`.npy dtype '${descr}' is not supported; use one of ${Object.keys(DESCR_DTYPES).join(', ')}`);
  }
  return { descr, dtype, dims: dims.map(Number), dataOffset };
}

export const npyDecoder: RequestDecoder = {
  mediaType: 'application/x-npy',
  decode(body, signature) {
    const spec = singleInput(signature, 'application/x-npy');
    if (body.length === 0) throw malformedBody('the body is empty');
    const { descr, dtype, dims, dataOffset } = parseHeader(body);
    checkSameKind(`.npy dtype '${descr}'`, dtype, spec);
    const byteLength = elementCount(dims) * bytesPerElement(dtype);
    const available = body.length - dataOffset;
    if (available !== byteLength) {
      throw malformedBody(`the .npy data has ${available} bytes, but shape (${dims.join(', ')}) of '${descr}' needs ${byteLength}`);
    }
    const data = dataFromBytes(dtype, body.subarray(dataOffset));
    const inputs = { [spec.name]: { dtype: spec.dtype, dims, data: castData(spec.name, data, dtype, spec.dtype) } };
    checkInputs(inputs, signature);
    return { inputs, style: 'predictions' };
  },
};

/** A version 1.0 .npy file holding the tensor. */
export function encodeNpy(tensor: Tensor): Buffer {
  const shape = tensor.dims.length === 1 ? `(${tensor.dims[0]},)` : `(${tensor.dims.join(', ')})`;
  const dict = `{'descr': '${DTYPE_DESCRS[tensor.dtype]}', 'fortran_order': False, 'shape': ${shape}, }`;
  const unpadded = MAGIC.length + 4 + dict.length + 1;
  const header = `${dict}${' '.repeat((HEADER_ALIGNMENT - (unpadded % HEADER_ALIGNMENT)) % HEADER_ALIGNMENT)}\n`;
  const { data } = tensor;
  const out = Buffer.alloc(MAGIC.length + 4 + header.length + data.byteLength);
  out.write(MAGIC, 0, 'latin1');
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, 'latin1');
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}

export const npyEncoder: ResponseEncoder = {
  mediaType: 'application/x-npy',
  assertCanEncode(signature) {
    if (signature.outputs.length !== 1) {
      const names = signature.outputs.map((spec) => `'${spec.name}'`).join(', ');
      throw notAcceptable(`application/x-npy carries one tensor, but this model has ${signature.outputs.length} outputs (${names}); use application/json`);
    }
  },
  encode(outputs, signature) {
    this.assertCanEncode!(signature);
    return encodeNpy(signatureOutputs(outputs, signature)[0]!.tensor);
  },
};
