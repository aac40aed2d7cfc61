/**
 * Decimal numbers read from bytes without making a string. With at most 15 significant digits
 * the mantissa is an exact integer below 2^53 and 10^k (k ≤ 22) is exact, so one division is
 * correctly rounded: `mantissa / 10^k` is the very double `Number()` and `JSON.parse` give.
 */

/** Powers of ten that doubles hold exactly: 10^0 … 10^22. */
export const EXACT_POWERS_OF_TEN: readonly number[] = Array.from({ length: 23 }, (_, k) => 10 ** k);

/** The most significant digits whose mantissa stays exact. */
export const MAX_EXACT_DIGITS = 15;

export const DIGIT_0 = 0x30;
export const MINUS = 0x2d;
export const DOT = 0x2e;
