import { describe, expect, it } from 'vitest';
import { canonicalJson, canonicalJsonMembers, prettyJson, CanonicalJsonError } from '../src/canonical';

describe('canonical JSON', () => {
  it('sorts keys at every level and leaves out undefined properties', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } })).toBe('{"a":{"d":[3,{"y":2,"z":1}]},"b":1}');
  });

  it('gives an object member by member, in pieces that join to its canonical JSON', () => {
    const objects: Record<string, unknown>[] = [
      {},
      { only: undefined },
      { z: [1, { b: 2, a: 1 }], checks: { x: 1, a: 2 }, a: undefined, B: 'é', 'key "q"': null },
      { 10: 'index-like keys', 9: 1, a: 2 },
    ];
    for (const o of objects) expect(canonicalJsonMembers(o).join('')).toBe(canonicalJson(o));
    expect(() => canonicalJsonMembers({ a: 1, b: { c: Number.NaN } })).toThrow(/\.b\.c/);
  });

  it('sorts keys by UTF-16 code units, not by locale', () => {
    expect(canonicalJson({ b: 0, B: 0, é: 0, a: 0, _: 0 })).toBe('{"B":0,"_":0,"a":0,"b":0,"é":0}');
  });

  it('prints numbers in their shortest round-trip form', () => {
    expect(canonicalJson([1.0, -0, 1e21, 0.1, 1_000_000, 2.5e-7])).toBe('[1,0,1e+21,0.1,1000000,2.5e-7]');
  });

  it('escapes strings as JSON does', () => {
    expect(canonicalJson({ s: 'a"\n\u0001😀' })).toBe('{"s":"a\\"\\n\\u0001😀"}');
  });

  it('writes the pretty form with two spaces and a trailing newline', () => {
    expect(prettyJson({ b: [1, 2], a: {}, c: [] })).toBe('{\n  "a": {},\n  "b": [\n    1,\n    2\n  ],\n  "c": []\n}\n');
  });

  it('gives the same bytes whatever the insertion order', () => {
    const x = { one: 1, two: { x: 1, y: [true, null] } };
    const y = { two: { y: [true, null], x: 1 }, one: 1 };
    expect(prettyJson(x)).toBe(prettyJson(y));
    expect(JSON.parse(prettyJson(x))).toEqual(x);
  });

  it('sorts keys that look like array indices with the others', () => {
    const v = { b: 1, '10': 2, '9': 3, a: { '1': true, x: null } };
    expect(canonicalJson(v)).toBe('{"10":2,"9":3,"a":{"1":true,"x":null},"b":1}');
    expect(prettyJson(v)).toBe('{\n  "10": 2,\n  "9": 3,\n  "a": {\n    "1": true,\n    "x": null\n  },\n  "b": 1\n}\n');
  });

  it('keeps a key named __proto__', () => {
    const v = JSON.parse('{"b":1,"__proto__":{"x":1}}');
    expect(canonicalJson(v)).toBe('{"__proto__":{"x":1},"b":1}');
  });

  it('writes values that are partly in canonical order as wholly unordered ones', () => {
    // In order up to a key whose value is undefined, a nested object out of order, an
    // array holding undefined, and an unordered object above canonical subtrees.
    const inner = { a: [1, { p: 1, q: [true] }], b: 'x' };
    const cases: [unknown, string][] = [
      [{ a: 1, b: undefined, c: 2 }, '{"a":1,"c":2}'],
      [{ a: 1, b: { z: 1, y: 2 }, c: [inner] }, '{"a":1,"b":{"y":2,"z":1},"c":[{"a":[1,{"p":1,"q":[true]}],"b":"x"}]}'],
      [[inner, undefined, { k: 1, j: 2 }], '[{"a":[1,{"p":1,"q":[true]}],"b":"x"},null,{"j":2,"k":1}]'],
      [{ z: inner, a: inner }, '{"a":{"a":[1,{"p":1,"q":[true]}],"b":"x"},"z":{"a":[1,{"p":1,"q":[true]}],"b":"x"}}'],
    ];
    for (const [v, text] of cases) {
      expect(canonicalJson(v)).toBe(text);
      expect(prettyJson(v)).toBe(JSON.stringify(JSON.parse(text), null, 2) + '\n');
    }
    // Nothing the writer was given is changed.
    expect(inner).toEqual({ a: [1, { p: 1, q: [true] }], b: 'x' });
  });

  it('copies a value that needs it once, however deep below objects in canonical order', () => {
    // Each level is in order up to its last key, whose value holds the one object out of order:
    // a level that copied its values again on finding one that changed would take 2^60 steps.
    let v: unknown = { z: 1, y: 2 };
    let text = '{"y":2,"z":1}';
    for (let i = 0; i < 60; i++) {
      v = { a: i, b: [v] };
      text = `{"a":${i},"b":[${text}]}`;
    }
    expect(prettyJson(v)).toBe(JSON.stringify(JSON.parse(text), null, 2) + '\n');
    // The same, with keys out of order after the one whose value needs a copy.
    let w: unknown = { z: 1, y: 2 };
    let wText = '{"y":2,"z":1}';
    for (let i = 0; i < 60; i++) {
      w = { a: 0, b: [w], d: i, c: 1 };
      wText = `{"a":0,"b":[${wText}],"c":1,"d":${i}}`;
    }
    expect(prettyJson(w)).toBe(JSON.stringify(JSON.parse(wText), null, 2) + '\n');
  });

  it('leaves out inherited properties and keeps own ones after an undefined one', () => {
    const o = Object.create({ inherited: 1, a: 2 }) as Record<string, unknown>;
    o.b = 1;
    o.c = { y: 1, x: 2 };
    expect(canonicalJson(o)).toBe('{"b":1,"c":{"x":2,"y":1}}');
    expect(prettyJson(o)).toBe('{\n  "b": 1,\n  "c": {\n    "x": 2,\n    "y": 1\n  }\n}\n');
    expect(prettyJson({ a: undefined, b: { d: 1, c: 2 }, e: 3 })).toBe('{\n  "b": {\n    "c": 2,\n    "d": 1\n  },\n  "e": 3\n}\n');
  });

  it('writes random values as a plain recursive sort does', () => {
    // A small deterministic generator: objects in and out of order, undefined values and entries, nesting.
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const gen = (depth: number): unknown => {
      const r = rnd(depth > 3 ? 4 : 7);
      if (r === 0) return rnd(100) - 50;
      if (r === 1) return ['x', 'y', '', 'é'][rnd(4)];
      if (r === 2) return rnd(2) === 0;
      if (r === 3) return rnd(3) === 0 ? undefined : null;
      if (r === 4) return Array.from({ length: rnd(4) }, () => gen(depth + 1));
      const keys = ['a', 'b', 'c', 'd', 'e'].filter(() => rnd(2) === 0);
      if (rnd(2) === 0) keys.reverse();
      const o: Record<string, unknown> = {};
      for (const k of keys) o[k] = gen(depth + 1);
      return o;
    };
    const sort = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map((x) => (x === undefined ? null : sort(x)));
      if (v === null || typeof v !== 'object') return v;
      const o = v as Record<string, unknown>;
      return Object.fromEntries(Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => [k, sort(o[k])]));
    };
    for (let i = 0; i < 500; i++) {
      const v = { root: gen(0) };
      const before = JSON.stringify(v);
      expect(canonicalJson(v)).toBe(JSON.stringify(sort(v)));
      expect(prettyJson(v)).toBe(JSON.stringify(sort(v), null, 2) + '\n');
      expect(JSON.stringify(v)).toBe(before);
    }
  });

  it('refuses values JSON cannot represent', () => {
    expect(() => canonicalJson({ a: [NaN] })).toThrow(CanonicalJsonError);
    expect(() => canonicalJson({ a: [NaN] })).toThrow('$.a[0]');
    expect(() => canonicalJson({ f: () => 1 })).toThrow('function');
  });
});
