import { describe, expect, it } from 'vitest';
import { base64DecodedLength, compileSchema, compileSchemas, utf8Length } from '../src/schema';
import { LineSplitter, TokenBucket } from '../src/lines';

describe('message schemas', () => {
  it('checks ints and floats with bounds', () => {
    const v = compileSchema({ kind: 'int', min: 1, max: 100 });
    expect(v(5)).toBeUndefined();
    expect(v(0)).toMatch(/below the minimum 1/);
    expect(v(101)).toMatch(/above the maximum 100/);
    expect(v(1.5)).toMatch(/expected an integer/);
    expect(v('5')).toMatch(/expected an integer/);
    const f = compileSchema({ kind: 'float', max: 2 });
    expect(f(1.5)).toBeUndefined();
    expect(f(3)).toMatch(/above/);
    expect(f(null)).toMatch(/expected a number/);
  });

  it('measures strings in UTF-8 bytes and anchors patterns', () => {
    const v = compileSchema({ kind: 'string', min_len: 1, max_len: 4, pattern: '[a-zé]+' });
    expect(v('abcd')).toBeUndefined();
    expect(v('')).toMatch(/shorter than the minimum 1/);
    expect(v('ééé')).toMatch(/6 bytes is longer than the maximum 4/);
    // Anchored: a match inside the value is not enough.
    expect(v('ab1')).toMatch(/does not match/);
    expect(utf8Length('a\u00e9\u20ac\u{1F600}')).toBe(1 + 2 + 3 + 4);
  });

  it('decodes base64 lengths for bytes', () => {
    expect(base64DecodedLength('aGVsbG8=')).toBe(5);
    expect(base64DecodedLength('aGVsbG8')).toBe(5);
    expect(base64DecodedLength('aGk*')).toBe(-1);
    const v = compileSchema({ kind: 'bytes', max_len: 4 });
    expect(v('aGVsbA==')).toBeUndefined();
    expect(v('aGVsbG8=')).toMatch(/5 bytes is longer than the maximum 4/);
    expect(v('not base64!')).toMatch(/not valid base64/);
  });

  it('checks lists and maps, with typed map keys', () => {
    const l = compileSchema({ kind: 'list', element: { kind: 'int', max: 9 }, max_items: 3 });
    expect(l([1, 2, 3])).toBeUndefined();
    expect(l([1, 2, 3, 4])).toMatch(/4 items, more than the maximum 3/);
    expect(l([1, 20])).toBe('[1]: 20 is above the maximum 9');
    const m = compileSchema({ kind: 'map', key: { kind: 'int', min: 0 }, value: { kind: 'string' }, max_entries: 2 });
    expect(m({ '1': 'a', '2': 'b' })).toBeUndefined();
    expect(m({ x: 'a' })).toMatch(/not a number/);
    expect(m({ '-1': 'a' })).toMatch(/below the minimum 0/);
    expect(m({ '1': 'a', '2': 'b', '3': 'c' })).toMatch(/3 entries/);
    expect(m([])).toMatch(/expected a map/);
  });

  it('closes records and accepts absent or null optional fields', () => {
    const r = compileSchema({
      kind: 'record',
      fields: [
        { name: 'a', optional: false, type: { kind: 'int' } },
        { name: 'b', optional: true, type: { kind: 'string' } },
      ],
    });
    expect(r({ a: 1 })).toBeUndefined();
    expect(r({ a: 1, b: null })).toBeUndefined();
    expect(r({ a: 1, b: 'x' })).toBeUndefined();
    expect(r({ b: 'x' })).toBe('a: required field is missing');
    expect(r({ a: 1, c: 2 })).toBe('c: unknown field (records are closed)');
    expect(r({ a: 'x' })).toBe('a: expected an integer, got "x"');
    expect(r({ a: 1, b: 2 })).toMatch(/^b: expected a string/);
  });

  it('encodes unions as one-key objects and payload-less variants also as strings', () => {
    const u = compileSchema({ kind: 'union', variants: [{ name: 'hit', type: { kind: 'int' } }, { name: 'miss' }] });
    expect(u({ hit: 3 })).toBeUndefined();
    expect(u({ miss: null })).toBeUndefined();
    expect(u('miss')).toBeUndefined();
    expect(u('hit')).toMatch(/carries a value/);
    expect(u({ hit: 'x' })).toMatch(/^hit: expected an integer/);
    expect(u({ hit: 1, miss: null })).toMatch(/exactly one key/);
    expect(u({ other: 1 })).toMatch(/not a variant/);
    expect(u({ miss: 1 })).toMatch(/carries no value/);
    const e = compileSchema({ kind: 'enum', members: ['GET', 'POST'] });
    expect(e('GET')).toBeUndefined();
    expect(e('TRACE')).toMatch(/not one of GET, POST/);
  });

  it('resolves recursive references and reports dangling ones', () => {
    const schemas = compileSchemas({
      Tree: {
        kind: 'record',
        fields: [
          { name: 'v', optional: false, type: { kind: 'int' } },
          { name: 'kids', optional: true, type: { kind: 'list', element: { kind: 'ref', name: 'Tree' } } },
        ],
      },
      Bad: { kind: 'ref', name: 'Nowhere' },
    });
    const t = schemas.get('Tree');
    expect(t({ v: 1, kids: [{ v: 2 }, { v: 3, kids: [] }] })).toBeUndefined();
    expect(t({ v: 1, kids: [{ v: 2 }, { v: 'x' }] })).toBe('kids[1].v: expected an integer, got "x"');
    expect(schemas.problems.join('\n')).toMatch(/Nowhere/);
    expect(schemas.get('Bad')({})).toMatch(/not in the plan/);
    expect(schemas.get('Unknown')({})).toMatch(/not in the plan/);
  });

  it('refuses every value of a type whose pattern does not compile', () => {
    const schemas = compileSchemas({ S: { kind: 'string', pattern: '(' } });
    expect(schemas.problems[0]).toMatch(/does not compile/);
    expect(schemas.get('S')('x')).toMatch(/does not compile/);
  });
});

describe('line splitter', () => {
  function collect(limit: number) {
    const lines: string[] = [];
    const over: number[] = [];
    const s = new LineSplitter(limit, { line: (t) => lines.push(t), oversize: (n) => over.push(n) });
    return { s, lines, over };
  }

  it('splits lines across chunks and drops blank lines and CR', () => {
    const { s, lines } = collect(100);
    s.push(Buffer.from('ab'));
    s.push(Buffer.from('c\r\n\nde'));
    s.push(Buffer.from('f\n'));
    expect(lines).toEqual(['abc', 'def']);
  });

  it('cuts off a line without newline at the limit and discards the rest', () => {
    const { s, lines, over } = collect(10);
    for (let i = 0; i < 100; i++) s.push(Buffer.alloc(1000, 0x61));
    expect(over.length).toBe(1);
    expect(s.pending).toBe(0);
    s.push(Buffer.from('tail\nok\n'));
    expect(lines).toEqual(['ok']);
    s.push(Buffer.from('12345678901\n'));
    expect(over.length).toBe(2);
  });

  it('keeps multi-byte characters split across chunks', () => {
    const { s, lines } = collect(100);
    const b = Buffer.from('é€\n');
    s.push(b.subarray(0, 1));
    s.push(b.subarray(1, 4));
    s.push(b.subarray(4));
    expect(lines).toEqual(['é€']);
  });
});

describe('token bucket', () => {
  it('allows the burst then refills at the rate', () => {
    const b = new TokenBucket(10, 3, 0);
    expect([b.take(0), b.take(0), b.take(0), b.take(0)]).toEqual([true, true, true, false]);
    expect(b.take(50)).toBe(false);
    expect(b.take(100)).toBe(true);
    expect(b.take(10_000)).toBe(true);
  });
});

describe('messages about hostile values', () => {
  it('keep peer-chosen names short', () => {
    const r = compileSchema({ kind: 'record', fields: [] });
    const err = r({ ['k'.repeat(100_000)]: 1 })!;
    expect(err.length).toBeLessThan(200);
    const m = compileSchema({ kind: 'map', key: { kind: 'string', max_len: 4 }, value: { kind: 'int' } });
    expect(m({ ['x'.repeat(100_000)]: 1 })!.length).toBeLessThan(300);
  });
});

describe('deeply nested values', () => {
  it('are refused by recursive types instead of overflowing the stack', () => {
    const schemas = compileSchemas({
      Tree: { kind: 'record', fields: [{ name: 'kids', optional: true, type: { kind: 'list', element: { kind: 'ref', name: 'Tree' } } }] },
    });
    let v: Record<string, unknown> = {};
    for (let i = 0; i < 200_000; i++) v = { kids: [v] };
    expect(schemas.get('Tree')(v)).toMatch(/nested too deeply/);
    expect(schemas.get('Tree')({ kids: [{ kids: [] }] })).toBeUndefined();
  });
});

describe('int64 on the wire (broker)', () => {
  const v = compileSchemas({ 'T': { kind: 'int64', min: -5, max: 9007199254740991 } }).get('T');
  const full = compileSchemas({ 'T': { kind: 'int64' } }).get('T');

  it('accepts decimal strings over the whole range and exact numbers', () => {
    expect(full('9223372036854775807')).toBeUndefined();
    expect(full('-9223372036854775808')).toBeUndefined();
    expect(full(9007199254740991)).toBeUndefined();
    expect(full(-9007199254740991)).toBeUndefined();
    expect(full('0')).toBeUndefined();
  });

  it('refuses numbers that have lost precision, out-of-range strings and other shapes', () => {
    expect(full(9007199254740992)).toMatch(/must be sent as a decimal string/);
    expect(full(2 ** 63)).toMatch(/must be sent as a decimal string/);
    expect(full('9223372036854775808')).toMatch(/decimal string between/);
    expect(full('-9223372036854775809')).toMatch(/decimal string between/);
    for (const bad of ['1e3', '01', '+1', ' 1', '1.0', '', '0x10', 1.5, true, null, [], {}]) expect(full(bad), String(bad)).toBeDefined();
  });

  it('checks bounds exactly', () => {
    expect(v('9007199254740991')).toBeUndefined();
    expect(v('9007199254740992')).toMatch(/above the maximum 9007199254740991/);
    expect(v(-6)).toMatch(/below the minimum -5/);
    expect(v('-5')).toBeUndefined();
  });
});

describe('names that are reserved words in .mcl', () => {
  it('travel unquoted: the plan of `{ "type": string, "@context"?: string }` checks plain JSON keys', () => {
    // The schemas as the compiler writes them for quoted fields, variants and enum members (compiler/test/wire-types.test.ts).
    const v = compileSchemas({
      'main.Event': { kind: 'record', fields: [
        { name: 'type', optional: false, type: { kind: 'string' } },
        { name: '@context', optional: true, type: { kind: 'string' } },
        { name: 'kind', optional: false, type: { kind: 'ref', name: 'main.Kind' } },
      ] },
      'main.Kind': { kind: 'enum', members: ['import', 'map'] },
      'main.Ack': { kind: 'union', variants: [{ name: 'true' }, { name: 'list', type: { kind: 'list', element: { kind: 'int' } } }] },
    });
    expect(v.problems).toEqual([]);
    expect(v.get('main.Event')({ type: 'com.example.created', '@context': 'x', kind: 'import' })).toBeUndefined();
    expect(v.get('main.Event')({ kind: 'map' })).toMatch(/type/);
    expect(v.get('main.Event')({ type: 'a', kind: 'list' })).toBeDefined();
    expect(v.get('main.Ack')({ true: null })).toBeUndefined();
    expect(v.get('main.Ack')({ list: [1] })).toBeUndefined();
  });
});
