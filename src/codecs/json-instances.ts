/**
 * The JSON body most clients send, `{"instances": [[0.5, -2, ...], ...]}` for a model with one
 * float input, read in one pass over its bytes straight into the tensor. `JSON.parse` built an
 * array per row and a number per value that `tensorFromNested` then copied: for 64 rows of 20
 * features that was 67–89 µs of the HTTP thread's time, this reader 26–27 with the signature
 * check (bench/results/2026-12-06T0931-json-instances.md).
 */
import { DIGIT_0, DOT, EXACT_POWERS_OF_TEN, MAX_EXACT_DIGITS, MINUS } from './decimal.js';
import { allocateShared, type Tensor } from './tensor.js';

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const COMMA = 0x2c;
const COLON = 0x3a;
const PLUS = 0x2b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const LOWER_E = 0x65;
const UPPER_E = 0x45;
const INSTANCES_KEY = Buffer.from('"instances"', 'latin1');

/** Deeper nesting than any model takes goes to the general decoder, which refuses it. */
const MAX_RANK = 32;

/**
 * Values land here before the tensor is cut to their count: reused across requests, so that the
 * count need not be known first. Kept only up to 512 KB; a larger request grows a copy of its own.
 */
const SCRATCH_KEPT_VALUES = 64 * 1024;
let scratch = new Float64Array(1024);

function skipSpace(body: Buffer, at: number): number {
  const end = body.length;
  while (at < end) {
    const code = body[at]!;
    if (code !== SPACE && code !== LF && code !== CR && code !== TAB) break;
    at++;
  }
  return at;
}

function isDigit(code: number | undefined): boolean {
  return code !== undefined && code >= DIGIT_0 && code <= DIGIT_0 + 9;
}

/**
 * The tensor of `{"instances": nested}` for a single input of `dtype`, or undefined at the first
 * thing this reader does not expect: another key or a second one, a string, `null` or any leaf
 * but a number, an empty or ragged array, nesting deeper than 32. The general decoder then reads
 * the body from the start and says what is wrong with it, if anything is: so this reader must
 * give exactly what `JSON.parse` and `tensorFromNested` give for what it accepts. Every JSON
 * number is read: a plain one of at most 15 significant digits as decimal.ts says, the rest
 * (exponents, long digits) through `Number()` of its text, which is how `JSON.parse` reads it.
 */
export function floatInstances(body: Buffer, dtype: 'float32' | 'float64'): Tensor | undefined {
  const end = body.length;
  let i = skipSpace(body, 0);
  if (body[i] !== OPEN_BRACE) return undefined;
  i = skipSpace(body, i + 1);
  if (i + INSTANCES_KEY.length > end || INSTANCES_KEY.compare(body, i, i + INSTANCES_KEY.length) !== 0) return undefined;
  i = skipSpace(body, i + INSTANCES_KEY.length);
  if (body[i] !== COLON) return undefined;
  i = skipSpace(body, i + 1);
  if (body[i] !== OPEN_BRACKET) return undefined;

  // dims[d]: the length every array at depth d must have, set by the first one to close (the
  // outermost's is the row count); lengths[d]: the elements seen so far in the open one.
  const dims: number[] = [];
  const lengths: number[] = [];
  let depth = 0;
  let rank = 0;
  let data = scratch;
  let count = 0;
  for (;;) {
    if (body[i] === OPEN_BRACKET) {
      if (depth === rank && rank > 0) return undefined;
      if (depth === MAX_RANK) return undefined;
      lengths[depth++] = 0;
      i = skipSpace(body, i + 1);
      continue;
    }
    if (rank === 0) rank = depth;
    else if (depth !== rank) return undefined;

    // An innermost array: numbers only, since an array here was refused above.
    let length = 0;
    for (;;) {
      const start = i;
      const negative = body[i] === MINUS;
      if (negative) i++;
      const wholeStart = i;
      let mantissa = 0;
      for (; i < end; i++) {
        const digit = body[i]! - DIGIT_0;
        if (digit < 0 || digit > 9) break;
        mantissa = mantissa * 10 + digit;
      }
      const wholeDigits = i - wholeStart;
      if (wholeDigits === 0 || (wholeDigits > 1 && body[wholeStart] === DIGIT_0)) return undefined;
      let fractionDigits = 0;
      if (body[i] === DOT) {
        const fractionStart = ++i;
        for (; i < end; i++) {
          const digit = body[i]! - DIGIT_0;
          if (digit < 0 || digit > 9) break;
          mantissa = mantissa * 10 + digit;
        }
        fractionDigits = i - fractionStart;
        if (fractionDigits === 0) return undefined;
      }
      let value: number;
      if (body[i] === LOWER_E || body[i] === UPPER_E) {
        i++;
        if (body[i] === PLUS || body[i] === MINUS) i++;
        if (!isDigit(body[i])) return undefined;
        while (isDigit(body[i])) i++;
        value = Number(body.toString('latin1', start, i));
      } else if (wholeDigits + fractionDigits > MAX_EXACT_DIGITS) {
        value = Number(body.toString('latin1', start, i));
      } else {
        value = fractionDigits > 0 ? mantissa / EXACT_POWERS_OF_TEN[fractionDigits]! : mantissa;
        if (negative) value = -value;
      }
      if (count === data.length) {
        const grown = new Float64Array(data.length * 2);
        grown.set(data);
        data = grown;
        if (grown.length <= SCRATCH_KEPT_VALUES) scratch = grown;
      }
      data[count++] = value;
      length++;
      if (body[i]! <= SPACE) i = skipSpace(body, i);
      if (body[i] !== COMMA) break;
      i++;
      if (body[i]! <= SPACE) i = skipSpace(body, i);
    }
    lengths[depth - 1] = length;

    while (body[i] === CLOSE_BRACKET) {
      const length = lengths[--depth]!;
      i = skipSpace(body, i + 1);
      if (depth === 0) {
        if (body[i] !== CLOSE_BRACE || skipSpace(body, i + 1) !== end) return undefined;
        dims[0] = length;
        const tensorData = allocateShared(dtype, count) as Float32Array | Float64Array;
        tensorData.set(data.subarray(0, count));
        return { dtype, dims, data: tensorData };
      }
      if (dims[depth] === undefined) dims[depth] = length;
      else if (dims[depth] !== length) return undefined;
      lengths[depth - 1]!++;
    }
    if (body[i] !== COMMA) return undefined;
    i = skipSpace(body, i + 1);
  }
}
