/**
 * application/octet-stream: the single input's raw little-endian bytes. The shape comes from the
 * X-Inferd-Shape header, or from the model's shape when only the batch dimension is dynamic.
 */
import { invalidInput, malformedBody } from '../errors.js';
import type { RequestDecoder } from './codec.js';
import { checkInputs, singleInput } from './signature-check.js';
import { bytesPerElement, elementCount, type TensorSpec } from './tensor.js';
import { dataFromBytes } from './values.js';

const POSITIVE_INTEGER = /^[1-9]\d*$/;

function parseShapeHeader(header: string): number[] {
  const dims = header.split(',').map((d) => d.trim());
  if (!dims.every((d) => POSITIVE_INTEGER.test(d) && Number.isSafeInteger(Number(d)))) {
    throw malformedBody(`X-Inferd-Shape must be comma-separated positive integers ("2,20"), got "${header.slice(0, 64)}"`);
  }
  return dims.map(Number);
}

/** The model's shape, with a dynamic dim 0 set to however many rows the bytes hold. */
function shapeFromSignature(spec: TensorSpec, byteLength: number): number[] {
  const [batch, ...rest] = spec.shape;
  if (rest.some((d) => d === null)) {
    throw invalidInput(`input '${spec.name}' has dynamic dimensions besides the batch; send its shape in X-Inferd-Shape`);
  }
  const restDims = rest as number[];
  if (batch !== null) return spec.shape as number[];
  const rowBytes = bytesPerElement(spec.dtype) * elementCount(restDims);
  if (byteLength % rowBytes !== 0) {
    throw invalidInput(`${byteLength} bytes is not a whole number of ${spec.dtype} rows of [${restDims.join(',')}] (${rowBytes} bytes each)`);
  }
  return [byteLength / rowBytes, ...restDims];
}

export const octetStreamDecoder: RequestDecoder = {
  mediaType: 'application/octet-stream',
  decode(body, signature, { shapeHeader }) {
    const spec = singleInput(signature, 'application/octet-stream');
    if (body.length === 0) throw malformedBody('the body is empty');
    const dims = shapeHeader === undefined ? shapeFromSignature(spec, body.length) : parseShapeHeader(shapeHeader);
    const byteLength = elementCount(dims) * bytesPerElement(spec.dtype);
    if (body.length !== byteLength) {
      throw invalidInput(`shape [${dims.join(',')}] of ${spec.dtype} needs ${byteLength} bytes, got ${body.length}`);
    }
    const inputs = { [spec.name]: { dtype: spec.dtype, dims, data: dataFromBytes(spec.dtype, body) } };
    checkInputs(inputs, signature);
    return { inputs, style: 'predictions' };
  },
};
