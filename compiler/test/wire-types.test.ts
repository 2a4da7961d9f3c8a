// Wire formats written in .mcl: field, variant and enum member names that are
// reserved words (quoted), and 64-bit integers, from source to the plan's
// message schemas and through the broker's validator of those schemas.

import { describe, expect, it } from 'vitest';
import { codes, compileText } from './helpers';

const PROGRAM = 'program { exec ["/bin/true"] }';

const wire = (types: string) => `
${types}
protocol Events { call publish(Event) -> Ack }
component Bus { memory 96MiB provide events: Events ${PROGRAM} }
component App { memory 96MiB require events: Events ${PROGRAM} }
system Main {
  bus = Bus
  app = App
  connect app.events -> bus.events
}
`;

describe('reserved words as names', () => {
  const types = `
type Kind = enum { "import", "map", plain }
type Event = { "type": string, "@context"?: string, kind: Kind, id: int64(0..) }
type Ack = union { "true", "list": list<int> }
`;

  it('puts the unquoted names in the plan (backends/broker/test/schema.test.ts checks the broker takes them)', () => {
    const r = compileText(wire(types));
    expect(r.diagnostics).toEqual([]);
    const s = r.plan!.schemas;
    expect(s['main.Event']).toEqual({
      kind: 'record',
      fields: [
        { name: 'type', optional: false, type: { kind: 'string' } },
        { name: '@context', optional: true, type: { kind: 'string' } },
        { name: 'kind', optional: false, type: { kind: 'ref', name: 'main.Kind' } },
        { name: 'id', optional: false, type: { kind: 'int64', min: 0 } },
      ],
    });
    expect(s['main.Kind']).toEqual({ kind: 'enum', members: ['import', 'map', 'plain'] });
    expect(s['main.Ack']).toEqual({ kind: 'union', variants: [{ name: 'true' }, { name: 'list', type: { kind: 'list', element: { kind: 'int' } } }] });
  });

  it('reports a bare reserved word as a reserved word, with the quoted form as the fix', () => {
    const r = compileText(wire(`
type Kind = enum { plain }
type Event = { type: string, map?: int }
type Ack = union { ok }
`));
    expect(codes(r)).toEqual(['MCL0130', 'MCL0130']);
    const d = r.diagnostics[0];
    expect(d.message).toBe('`type` is a reserved word and cannot be a field name as it stands');
    expect(d.hint).toBe('quote it: `"type"` (the name on the wire stays `type`)');
    expect(d.fixes?.[0].edits[0].newText).toBe('"type"');
    expect(r.program.texts.get('main.mcl')!.slice(d.span.start, d.span.end)).toBe('type');
  });

  it('counts a quoted and a bare spelling of one name as the same name', () => {
    const r = compileText(wire(`
type Kind = enum { plain, "plain" }
type Event = { id: int, "id": int }
type Ack = {}
`));
    expect(codes(r)).toEqual(['MCL0307', 'MCL0305']);
  });

  it('accepts a string holding a quoted enum member as a parameter value', () => {
    const r = compileText(`
type Kind = enum { "import", plain }
component C { memory 96MiB param k: Kind = "import" param j: Kind = plain ${PROGRAM} }
system Main { c = C }
`);
    expect(r.diagnostics).toEqual([]);
    expect(r.plan!.instances[0].params).toMatchObject({ k: 'import', j: 'plain' });
  });
});

describe('int64', () => {
  const param = (decl: string) =>
    compileText(`component C { memory 96MiB ${decl} ${PROGRAM} }\nsystem Main { c = C }`);

  it('takes integers as numbers and, beyond 2^53-1, as decimal strings', () => {
    const r = param('param a: int64 = "9223372036854775807" param b: int64 = "-9223372036854775808" param c: int64 = 42 param d: int64 = "42" param e: int64 = 4KiB');
    expect(r.diagnostics).toEqual([]);
    expect(r.plan!.instances[0].params).toEqual({ a: '9223372036854775807', b: '-9223372036854775808', c: 42, d: 42, e: 4096 });
  });

  it('refuses values outside 64 bits, malformed strings and fractions', () => {
    for (const v of ['"9223372036854775808"', '"-9223372036854775809"', '"12x"', '"+1"', '"007"', '" 1"', '1.5', 'true']) {
      expect(codes(param(`param a: int64 = ${v}`)), v).toEqual(['MCL0311']);
    }
  });

  it('checks bounds exactly, beyond the precision of a double', () => {
    expect(codes(param('param a: int64(..9007199254740991) = "9007199254740992"'))).toEqual(['MCL0312']);
    expect(codes(param('param a: int64(0..) = "-1"'))).toEqual(['MCL0312']);
    expect(codes(param('param a: int64(0..) = "9223372036854775807"'))).toEqual([]);
    expect(codes(param('param a: int64(0.5..) = 1'))).toEqual(['MCL0303']);
  });

  it('is a reserved word', () => {
    expect(codes(compileText('type int64 = int'))[0]).toBe('MCL0108');
  });
});
