// The `int64` type on the wire. JSON numbers are IEEE doubles, exact only up
// to 2^53-1, so (as in protobuf's JSON mapping) a 64-bit integer travels as a
// decimal string; a JSON number is accepted too, but only when it is an exact
// integer (|n| <= 2^53-1): a larger one has already been rounded by whoever
// parsed it, and its true value, or whether it is even in range, is unknown.
// The compiler (parameter values) and the broker (frames) both check values
// with these functions, so the two agree on what an int64 is.

/** The range of `int64`, as decimal text. */
export const INT64_MIN = '-9223372036854775808';
export const INT64_MAX = '9223372036854775807';
const LO = BigInt(INT64_MIN);
const HI = BigInt(INT64_MAX);
const DECIMAL = /^-?(?:0|[1-9][0-9]{0,18})$/;

/** A decimal integer (optional `-`, no leading zeros, `+`, spaces or exponent) within the range of `int64`, or undefined. */
export function parseInt64(text: string): bigint | undefined {
  if (!DECIMAL.test(text)) return undefined;
  const v = BigInt(text);
  return v < LO || v > HI ? undefined : v;
}

/**
 * The exact value of an `int64` as it arrived in JSON, or a reason it is not
 * one: a decimal string in range, or a number that is an exact integer.
 */
export function int64FromJson(v: unknown): bigint | string {
  if (typeof v === 'string') {
    const n = parseInt64(v);
    return n ?? `expected a 64-bit integer as a decimal string between ${INT64_MIN} and ${INT64_MAX}`;
  }
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) return BigInt(v);
    if (Number.isInteger(v)) return 'an integer beyond ±(2^53-1) must be sent as a decimal string (a JSON number that large has lost precision)';
  }
  return 'expected a 64-bit integer (a decimal string, or a number up to ±(2^53-1))';
}
