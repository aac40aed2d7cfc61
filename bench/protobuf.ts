/**
 * The little of protocol buffers that writing an ONNX model by hand needs (there is no ONNX
 * library here): varints and length-delimited fields. bench/onnx-mlp.ts and test/onnx-model.ts
 * write their models with it.
 */

export function varint(value: number): Buffer {
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`varint: ${value} is not a non-negative integer`);
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

const key = (field: number, wireType: 0 | 2) => varint(field * 8 + wireType);

/** A varint field. */
export const int = (field: number, value: number) => Buffer.concat([key(field, 0), varint(value)]);

/** A length-delimited field: a string or bytes. */
export const bytes = (field: number, value: Buffer | string) => {
  const payload = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return Buffer.concat([key(field, 2), varint(payload.length), payload]);
};

/** An embedded message made of `parts`. */
export const message = (field: number, ...parts: Buffer[]) => bytes(field, Buffer.concat(parts));
