// Property: parseLine (the broker's parse of a frame's line, which splices a long final string in
// rather than have JSON.parse read it) gives JSON.parse's answer for every line: the same value
// (keys in the same order, an own `__proto__` member kept as a member) or a throw where JSON.parse
// throws. The lines are built around the shape the splice takes (a frame ending with a long
// string) and break it in every way that matters: control characters, quotes, backslashes and
// non-ASCII text in the string, the mark itself, duplicate keys, `__proto__`, whitespace, other
// depths, deep nesting, numbers and broken JSON.

import { describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { controlByte, parseLine } from '../src/frames';

/** What the line splitter hands over for `bytes` (lines.ts): the decoded text, and the bytes at an offset of `pad`. */
function received(bytes: Buffer, pad: number): { line: string; raw: Buffer; start: number } {
  const raw = Buffer.concat([Buffer.alloc(pad, 0x41), bytes, Buffer.from('\n')]);
  return { line: raw.toString('utf8', pad, pad + bytes.length), raw, start: pad };
}

type Outcome = { ok: true; value: unknown; text: string; protos: boolean[] } | { ok: false; error: string };

function outcome(fn: () => unknown): Outcome {
  let value: unknown;
  try {
    value = fn();
  } catch (e) {
    // JSON.parse throws a SyntaxError, or a RangeError for a value nested too deeply for its stack.
    return { ok: false, error: (e as Error).constructor.name };
  }
  // The prototype of every object, so that a `__proto__` assigned rather than defined shows.
  const protos: boolean[] = [];
  const walk = (v: unknown, depth: number): void => {
    if (typeof v !== 'object' || v === null || depth > 50) return;
    protos.push(Object.getPrototypeOf(v) === (Array.isArray(v) ? Array.prototype : Object.prototype));
    for (const k of Object.keys(v)) walk((v as Record<string, unknown>)[k], depth + 1);
  };
  walk(value, 0);
  return { ok: true, value, text: JSON.stringify(value), protos };
}

function same(bytes: Buffer, pad: number): void {
  const { line, raw, start } = received(bytes, pad);
  const want = outcome(() => JSON.parse(line));
  const got = outcome(() => parseLine(line, raw, start, bytes.length));
  expect(got.ok).toBe(want.ok);
  if (!got.ok && !want.ok) expect(got.error).toBe(want.error);
  if (got.ok && want.ok) {
    expect(got.text).toBe(want.text);
    expect(got.protos).toEqual(want.protos);
    expect(isDeepStrictEqual(got.value, want.value)).toBe(true);
  }
}

/** Pieces of the long string: mostly plain text, and everything that may not stand in a string as it is. */
const piece = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 1, max: 400 }).map((n) => 'v'.repeat(n)) },
  { weight: 3, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.constantFrom('\t', '\u0001', '\u001f', ' ', '\u007f', '"', '\\', '\\"', '\\n', '\\u0041', 'é', '€', '😀', '\ud800', '\udc00', '~mcl-spliced~', '"}}', '":"') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }) },
);
const longString = fc.array(piece, { minLength: 1, maxLength: 12 }).map((ps) => ps.join(''));

/** Keys of the final member and of what comes before it. */
const key = fc.oneof(fc.constantFrom('value', 'key', '__proto__', 'body', 't', '', 'a b', '~mcl-spliced~', 'é'), fc.string({ maxLength: 6 }));
const scalar = fc.oneof(fc.integer().map(String), fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)), fc.constantFrom('1e400', '-0', '0.1e-5', '01', '1.', 'true', 'null', '"x"', '[]', '{}', '"\\u00e9"', '"\\ud800"', '{"m":"~mcl-spliced~"}', '"~mcl-spliced~"'));
/** Members written before the final one (duplicates of its key among them). */
const members = fc.array(fc.tuple(key, scalar), { maxLength: 4 }).map((ms) => ms.map(([k, v]) => `${JSON.stringify(k)}:${v},`).join(''));
/** A prefix of the frame up to the final string's opening quote, in the shapes that matter. */
const prefix = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(members, members, key, fc.nat()).map(([a, b, k, id]) => `{"t":"call","op":"put","id":${id},${a}"body":{${b}${JSON.stringify(k)}:"`) },
  { weight: 1, arbitrary: fc.tuple(members, key).map(([a, k]) => `{"t":"call",${a}${JSON.stringify(k)}:"`) },
  { weight: 1, arbitrary: fc.tuple(key, key).map(([k, m]) => `{"x":{${JSON.stringify(k)}:{${JSON.stringify(m)}:"`) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1, max: 600 }), key).map(([d, k]) => `{"body":${'['.repeat(d)}0${']'.repeat(d)},"b":{${JSON.stringify(k)}:"`) },
  { weight: 1, arbitrary: fc.tuple(fc.json(), key).map(([j, k]) => `{"j":${j},"b":{${JSON.stringify(k)} : "`) },
  { weight: 1, arbitrary: fc.tuple(fc.json(), key).map(([j, k]) => `{"j":${j},"b":[${JSON.stringify(k)},"`) },
  { weight: 1, arbitrary: fc.tuple(key, fc.string({ maxLength: 30 })).map(([k, junk]) => `{"t":"call","body":{${junk}${JSON.stringify(k)}:"`) },
);
const suffix = fc.oneof({ weight: 8, arbitrary: fc.constant('"}}') }, { weight: 1, arbitrary: fc.constantFrom('"} }', '"}}}', '"}', '"}]}', ' "}}', '"}},', '"}\t}') });

/** A line as bytes: a prefix, the long string and a suffix, sometimes with a byte changed or a stray invalid UTF-8 byte. */
const line = fc
  .tuple(prefix, longString, suffix, fc.option(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { freq: 4 }))
  .map(([p, s, x, change]) => {
    const bytes = Buffer.from(p + s + x, 'utf8');
    if (change) bytes[change[0] % bytes.length] = change[1];
    return bytes;
  });

describe('parseLine', () => {
  it('answers as JSON.parse does, for random and adversarial lines', () => {
    // How many of the lines took the splice (JSON.parse called once, on less than the line), so that the property is
    // seen to cover it and not only the lines it leaves to JSON.parse.
    let spliced = 0;
    const parse = vi.spyOn(JSON, 'parse');
    try {
      fc.assert(
        fc.property(line, fc.integer({ min: 0, max: 7 }), (bytes, pad) => {
          parse.mockClear();
          same(bytes, pad);
          // The first call is the reference's JSON.parse(line); parseLine's follow.
          const calls = parse.mock.calls.slice(1);
          if (calls.length === 1 && (calls[0][0] as string).length < Buffer.byteLength(parse.mock.calls[0][0] as string)) spliced++;
        }),
        { numRuns: 3000 },
      );
    } finally {
      parse.mockRestore();
    }
    expect(spliced).toBeGreaterThan(300);
  });

  it('answers as JSON.parse does around each thing the splice must refuse', () => {
    const v = 'v'.repeat(1100);
    const head = '{"t":"call","op":"put","id":1,"body":{"key":"k","value":"';
    const cases = [
      head + v + '"}}',
      head + v + '\t' + v + '"}}',
      head + v + '\u0000"}}',
      head + '\u001f' + v + '"}}',
      head + v + '\\n' + v + '"}}',
      head + v + '\\"' + v + '"}}',
      head + v + 'é' + v + '"}}',
      head + v + '😀"}}',
      head + v + '~mcl-spliced~' + v + '"}}',
      '{"t":"call","op":"put","id":1,"note":"~mcl-spliced~","body":{"value":"' + v + '"}}',
      '{"t":"call","op":"put","id":1,"x":{"m":"~mcl-spliced~"},"body":{"value":"' + v + '"}}',
      '{"t":"call","op":"put","id":1,"body":{"__proto__":"' + v + '"}}',
      '{"t":"call","op":"put","id":1,"body":{"value":"a","value":"' + v + '"}}',
      '{"t":"call","op":"put","id":1,"body":{"value":"' + v + '"},"body":{"value":"' + v + 'w"}}',
      '{"t":"call","op":"put","id":1,"body":{"value" : "' + v + '"}}',
      '{"t":"call","op":"put","id":1,"body":["value","' + v + '"}}',
      '{"t":"call","value":"' + v + '"}}',
      '{"a":{"b":{"value":"' + v + '"}}',
      '{"t":"call","op":"put","id":1,"body":{"n":1e999,"m":-0,"value":"' + v + '"}}',
    ];
    // Nested deeper than a recursive walk goes (JSON.parse does not recurse): the same members, the same body.
    const deep = '{"deep":' + '['.repeat(200_000) + ']'.repeat(200_000) + ',"body":{"value":"' + v + '"}}';
    const { line: dl, raw: dr, start: ds } = received(Buffer.from(deep), 1);
    const got = parseLine(dl, dr, ds, deep.length) as Record<string, { value: string }>;
    expect(Object.keys(got)).toEqual(['deep', 'body']);
    expect(got.body).toEqual({ value: v });
    for (const c of cases) for (const pad of [0, 1, 2, 3]) same(Buffer.from(c, 'utf8'), pad);
    // Bytes that are not UTF-8 become U+FFFD one byte each: as many characters as bytes.
    same(Buffer.concat([Buffer.from(head + v), Buffer.from([0xff, 0xfe, 0x80]), Buffer.from('"}}')]), 1);
  });

  it('takes the long string out of the line without copying it (a slice of the line)', () => {
    const v = 'v'.repeat(4096);
    const text = '{"t":"call","op":"put","id":7,"body":{"key":"k","value":"' + v + '"}}';
    const { line: l, raw, start } = received(Buffer.from(text), 3);
    const parse = vi.spyOn(JSON, 'parse');
    let f: { body: { value: string } };
    try {
      f = parseLine(l, raw, start, raw.length - start - 1) as { body: { value: string } };
      // JSON.parse read the frame without the long string, once.
      expect(parse.mock.calls.map((c) => (c[0] as string).length)).toEqual([text.length - 4096 + '~mcl-spliced~'.length]);
    } finally {
      parse.mockRestore();
    }
    expect(f).toEqual(JSON.parse(text));
    expect(Object.keys(f)).toEqual(['t', 'op', 'id', 'body']);
  });
});

describe('controlByte', () => {
  it('finds a byte below 0x20 wherever it is, at every alignment', () => {
    // Mostly bytes of 0x20 and above (0x80 and above among them), with at most one below planted.
    const bytes = fc.tuple(fc.uint8Array({ min: 32, max: 255, minLength: 0, maxLength: 80 }), fc.option(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 31 }))));
    fc.assert(
      fc.property(bytes, fc.integer({ min: 0, max: 7 }), fc.nat(), fc.nat(), ([a, plant], pad, x, y) => {
        if (plant && a.length) a[plant[0] % a.length] = plant[1];
        const raw = Buffer.concat([Buffer.alloc(pad), Buffer.from(a)]);
        const start = pad + (a.length ? x % (a.length + 1) : 0);
        const end = Math.max(start, pad + (a.length ? y % (a.length + 1) : 0));
        let want = false;
        for (let i = start; i < end; i++) if (raw[i] < 32) want = true;
        expect(controlByte(raw, start, end)).toBe(want);
      }),
      { numRuns: 5000 },
    );
  });
});
