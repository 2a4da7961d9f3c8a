// The broker encodes a body parsed from a line without a backslash with
// encodePlain instead of JSON.stringify: what it forwards must be the same
// text, byte for byte, for every such body (the checks a peer's frame passes
// are the same either way; only the cost differs).

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encode, encodePlain, plainLine } from '../src/frames';

/** A JSON text as a peer might send it: any value, keys and strings drawn from the whole of Unicode, escapes and all. */
const jsonText = fc.oneof(fc.jsonValue({ maxDepth: 6 }), fc.jsonValue({ maxDepth: 4, stringUnit: 'binary' })).map((v) => JSON.stringify(v));

describe('encodePlain', () => {
  it('writes what JSON.stringify writes for every body parsed from a line without a backslash', () => {
    fc.assert(
      fc.property(jsonText, (text) => {
        fc.pre(plainLine(text));
        const body = JSON.parse(text) as unknown;
        expect(encodePlain(body)).toBe(encode(body));
      }),
      { numRuns: 3000 },
    );
  });

  it('keeps JSON.stringify key order, number forms and special keys', () => {
    const texts = [
      '{"b":1,"a":2,"10":3,"2":4,"-1":5,"01":6}',
      '{"__proto__":{"x":1},"constructor":"c","toJSON":"t"}',
      '[-0,0.1,1e21,1e-7,123456789012345678901234567890,5e-324,1.7976931348623157e308,-1.5E+3]',
      '{"":"","é":"ü 😀 \u2028\u2029","a":[],"b":{},"c":null,"d":true,"e":false}',
      '"just a string"',
      '42',
      'null',
    ];
    for (const t of texts) {
      expect(plainLine(t)).toBe(true);
      const body = JSON.parse(t) as unknown;
      expect(encodePlain(body)).toBe(JSON.stringify(body));
    }
  });

  it('gives encode its answer for bodies nested too deeply to recurse over', () => {
    const depth = 200_000;
    const text = '['.repeat(depth) + ']'.repeat(depth);
    const body = JSON.parse(text) as unknown;
    expect(encodePlain(body)).toBe(encode(body));
  });

  it('a line with a backslash is not plain', () => {
    expect(plainLine('{"t":"call","body":{"k":"a\\"b"}}')).toBe(false);
    expect(plainLine('{"t":"call","body":{"k":"ab"}}')).toBe(true);
  });
});
