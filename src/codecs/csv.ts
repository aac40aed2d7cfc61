/**
 * text/csv: headerless, one record per line, RFC 4180 quoting. Requests need a model with a
 * single 2-D numeric input; responses put every output of a record on its line, flattened.
 */
import { invalidInput, malformedBody, unsupportedMediaType } from '../errors.js';
import type { DecodedRequest, RequestDecoder, ResponseEncoder } from './codec.js';
import { DIGIT_0, DOT, EXACT_POWERS_OF_TEN, MAX_EXACT_DIGITS, MINUS } from './decimal.js';
import { csvRecord, outputColumns } from './rows.js';
import { checkInputs } from './signature-check.js';
import { allocate, allocateShared, type DType, type ModelSignature, type TensorData, type TensorSpec } from './tensor.js';
import { describeValue, leafWriter } from './values.js';

const COMMA = 0x2c;
const QUOTE = 0x22;
const CR = 0x0d;
const LF = 0x0a;
const BOM = '\uFEFF';

function csvInput(signature: ModelSignature): TensorSpec {
  const [spec] = signature.inputs;
  if (signature.inputs.length !== 1 || !spec || spec.shape.length !== 2 || spec.dtype === 'bool') {
    throw unsupportedMediaType('text/csv needs a model with a single 2-D numeric input; use application/json');
  }
  return spec;
}

/** The field as a number, or its digits when an int64 would not survive float64; undefined if not numeric. */
function parseField(field: string, dtype: DType): number | string | undefined {
  const number = Number(field);
  if (Number.isNaN(number)) return field.trim() === 'NaN' ? number : undefined;
  if (number === 0 && field.trim() === '') return undefined;
  return dtype === 'int64' && !Number.isSafeInteger(number) ? field.trim() : number;
}

/**
 * `[-]digits[.digits]` with at most 15 significant digits, read without making a string (the
 * very double `Number()` gives: decimal.ts): most CSV fields look like this, and slicing then
 * `Number()` dominated decoding. Anything else (exponents, spaces, NaN, long digits) returns
 * undefined and takes the general path.
 */
function simpleDecimal(text: string, start: number, end: number): number | undefined {
  let at = start;
  const negative = text.charCodeAt(at) === MINUS;
  if (negative) at++;
  let mantissa = 0;
  let digits = 0;
  let fractionDigits = -1;
  for (; at < end; at++) {
    const code = text.charCodeAt(at);
    if (code === DOT && fractionDigits === -1) {
      fractionDigits = 0;
      continue;
    }
    const digit = code - DIGIT_0;
    if (digit < 0 || digit > 9) return undefined;
    mantissa = mantissa * 10 + digit;
    digits++;
    if (fractionDigits !== -1) fractionDigits++;
  }
  if (digits === 0 || digits > MAX_EXACT_DIGITS || fractionDigits === 0) return undefined;
  const value = fractionDigits > 0 ? mantissa / EXACT_POWERS_OF_TEN[fractionDigits]! : mantissa;
  return negative ? -value : value;
}

function resized(data: TensorData, dtype: DType, length: number): TensorData {
  const out = allocate(dtype, length);
  (out as Uint8Array).set((data as Uint8Array).subarray(0, Math.min(length, data.length)));
  return out;
}

/**
 * The body most clients send, read in one pass over its bytes: unquoted `[-]digits[.digits]`
 * fields of at most 15 significant digits (each then the very double `Number()` gives, as in
 * simpleDecimal), `\n` or `\r\n` line ends and no blank line, into a float tensor. Undefined at
 * the first thing it does not expect: the general reader then decodes the body from the start,
 * and says what is wrong with it if anything is. Reading the text a character at a time and a
 * field twice cost four times as much, and decoding was most of a transform job's main thread.
 */
function decodePlainDecimals(body: Buffer, dtype: 'float32' | 'float64', fixedWidth: number | undefined): { data: TensorData; records: number; width: number } | undefined {
  const end = body.length;
  const firstLineEnd = body.indexOf(LF);
  const firstLine = firstLineEnd === -1 ? body : body.subarray(0, firstLineEnd);
  let width = fixedWidth ?? firstLine.reduce((commas, byte) => commas + (byte === COMMA ? 1 : 0), 1);
  // Sized for every line, the last one unless the body ends with it: usually exact, no copy.
  const data = allocateShared(dtype, (countLines(body) - (body[end - 1] === LF ? 1 : 0)) * width) as Float32Array | Float64Array;
  let count = 0;
  let records = 0;
  let fields = 0;
  let i = 0;
  while (i < end) {
    const negative = body[i] === MINUS;
    if (negative) i++;
    let mantissa = 0;
    let digits = 0;
    let fractionDigits = -1;
    let code = -1;
    for (; i < end; i++) {
      code = body[i]!;
      const digit = code - DIGIT_0;
      if (digit >= 0 && digit <= 9) {
        mantissa = mantissa * 10 + digit;
        digits++;
        if (fractionDigits !== -1) fractionDigits++;
      } else if (code === DOT && fractionDigits === -1) {
        fractionDigits = 0;
      } else {
        break;
      }
    }
    if (digits === 0 || digits > MAX_EXACT_DIGITS || fractionDigits === 0 || count === data.length) return undefined;
    const value = fractionDigits > 0 ? mantissa / EXACT_POWERS_OF_TEN[fractionDigits]! : mantissa;
    data[count++] = negative ? -value : value;
    fields++;
    if (i === end) break;
    if (code === COMMA) {
      // A comma that ends the body leaves a last field empty: the general reader names it.
      if (++i === end) return undefined;
      continue;
    }
    if (code === CR && body[i + 1] === LF) i++;
    else if (code !== LF) return undefined;
    i++;
    if (fields !== width || body[i] === LF || body[i] === CR) return undefined;
    records++;
    fields = 0;
  }
  if (fields > 0) {
    if (fields !== width) return undefined;
    records++;
  }
  if (records === 0) return undefined;
  width = count / records;
  return { data: count === data.length ? data : resized(data, dtype, count), records, width };
}

function countLines(body: Buffer): number {
  let lines = 1;
  for (let at = body.indexOf(LF); at !== -1; at = body.indexOf(LF, at + 1)) lines++;
  return lines;
}

function decodeCsv(body: Buffer, signature: ModelSignature): DecodedRequest {
  const spec = csvInput(signature);
  if (body.length === 0) throw malformedBody('the body is empty');
  const { dtype } = spec;
  const fixedWidth = spec.shape[1] ?? undefined;
  const plain = dtype === 'float32' || dtype === 'float64' ? decodePlainDecimals(body, dtype, fixedWidth) : undefined;
  if (plain) {
    const inputs = { [spec.name]: { dtype, dims: [plain.records, plain.width], data: plain.data } };
    checkInputs(inputs, signature);
    return { inputs, style: 'predictions' };
  }
  const write = leafWriter(dtype);
  let width = fixedWidth;
  let data = allocate(dtype, countLines(body) * (fixedWidth ?? 1));
  let count = 0;
  let records = 0;

  let text = body.toString('utf8');
  if (text.startsWith(BOM)) text = text.slice(1);
  const end = text.length;
  let i = 0;
  let line = 1;

  const store = (value: number | string | undefined, field: string, fieldLine: number, column: number): void => {
    if (count === data.length) data = resized(data, dtype, data.length * 2);
    const problem = value === undefined ? `expected a number, got ${describeValue(field)}` : write(data, count, value);
    if (problem !== undefined) throw invalidInput(`line ${fieldLine}, column ${column}: ${problem}`);
    count++;
  };

  while (i < end) {
    const first = text.charCodeAt(i);
    if (first === LF || (first === CR && text.charCodeAt(i + 1) === LF)) {
      i += first === LF ? 1 : 2;
      line++;
      continue;
    }
    const recordLine = line;
    let fields = 0;
    for (;;) {
      const fieldLine = line;
      let field = '';
      let value: number | string | undefined;
      if (text.charCodeAt(i) === QUOTE) {
        field = '';
        let from = ++i;
        for (;;) {
          const close = text.indexOf('"', i);
          if (close === -1) throw malformedBody(`line ${fieldLine}: a quoted field is not closed`);
          for (let at = text.indexOf('\n', i); at !== -1 && at < close; at = text.indexOf('\n', at + 1)) line++;
          if (text.charCodeAt(close + 1) !== QUOTE) {
            field += text.slice(from, close);
            i = close + 1;
            break;
          }
          field += text.slice(from, close + 1);
          i = from = close + 2;
        }
        const next = text.charCodeAt(i);
        const atEnd = i === end || next === COMMA || next === LF || (next === CR && text.charCodeAt(i + 1) === LF);
        if (!atEnd) throw malformedBody(`line ${line}: unexpected character after a closing quote`);
      } else {
        let stop = i;
        while (stop < end) {
          const code = text.charCodeAt(stop);
          if (code === COMMA || code === LF) break;
          stop++;
        }
        const crlf = stop > i && text.charCodeAt(stop) === LF && text.charCodeAt(stop - 1) === CR;
        const fieldEnd = crlf ? stop - 1 : stop;
        value = simpleDecimal(text, i, fieldEnd);
        if (value === undefined) field = text.slice(i, fieldEnd);
        i = stop;
      }
      store(value ?? parseField(field, dtype), field, fieldLine, ++fields);
      if (text.charCodeAt(i) !== COMMA) break;
      i++;
    }
    if (text.charCodeAt(i) === CR) i++;
    if (text.charCodeAt(i) === LF) {
      i++;
      line++;
    }
    width ??= fields;
    if (fields !== width) throw invalidInput(`line ${recordLine} has ${fields} fields, expected ${width}`);
    records++;
  }

  if (records === 0) throw malformedBody('the body has no records, only blank lines');
  const inputs = { [spec.name]: { dtype, dims: [records, width as number], data: count === data.length ? data : resized(data, dtype, count) } };
  checkInputs(inputs, signature);
  return { inputs, style: 'predictions' };
}

export const csvDecoder: RequestDecoder = {
  mediaType: 'text/csv',
  decode: decodeCsv,
};

export const csvEncoder: ResponseEncoder = {
  mediaType: 'text/csv',
  encode(outputs, signature) {
    const { columns, rows } = outputColumns(outputs, signature);
    let text = '';
    for (let row = 0; row < rows; row++) text += `${csvRecord(columns, row)}\n`;
    return Buffer.from(text, 'utf8');
  },
};
