// Quoted names of fields, variants and enum members (`"type": string`), the
// reserved-word error for bare ones, and `int64` as a primitive type.

import { describe, expect, it } from 'vitest';
import { parse, type EnumType, type RecordType, type TypeDecl, type UnionType } from '../src/index';

function typeOf(src: string) {
  const r = parse(`type T = ${src}`, 'test.mcl');
  return { type: (r.file.decls[0] as TypeDecl).type, diags: r.diagnostics.map((d) => `${d.code} ${d.message}`) };
}

describe('quoted names', () => {
  it('parses quoted fields, variants and members to their plain names, marked quoted', () => {
    const rec = typeOf('{ "type": string, "@context"?: string, id: int }');
    expect(rec.diags).toEqual([]);
    const fields = (rec.type as RecordType).fields;
    expect(fields.map((f) => [f.name.name, f.name.quoted ?? false, f.optional ?? false])).toEqual([
      ['type', true, false],
      ['@context', true, true],
      ['id', false, false],
    ]);
    expect(fields[0].name.span).toEqual({ start: 11, end: 17 });
    const en = typeOf('enum { "import", plain, "map" }');
    expect(en.diags).toEqual([]);
    expect((en.type as EnumType).members.map((m) => m.name)).toEqual(['import', 'plain', 'map']);
    const un = typeOf('union { "list": int, "true", none }');
    expect(un.diags).toEqual([]);
    expect((un.type as UnionType).variants.map((v) => [v.name.name, v.type?.kind])).toEqual([['list', 'PrimitiveType'], ['true', undefined], ['none', undefined]]);
  });

  it('reports each bare reserved word once, as a reserved word, and keeps the member', () => {
    const rec = typeOf('{ type: string, map?: int, ok: bool }');
    expect(rec.diags).toEqual([
      'MCL0130 `type` is a reserved word and cannot be a field name as it stands',
      'MCL0130 `map` is a reserved word and cannot be a field name as it stands',
    ]);
    expect((rec.type as RecordType).fields.map((f) => f.name.name)).toEqual(['type', 'map', 'ok']);
    expect(typeOf('enum { import, a }').diags).toEqual(['MCL0130 `import` is a reserved word and cannot be an enum member as it stands']);
    expect(typeOf('union { list: int, true }').diags).toEqual([
      'MCL0130 `list` is a reserved word and cannot be a variant name as it stands',
      'MCL0130 `true` is a reserved word and cannot be a variant name as it stands',
    ]);
  });

  it('reports reserved words among members separated by newlines alone', () => {
    expect(typeOf('enum {\n  import\n  export\n  plain\n}').diags).toEqual([
      'MCL0130 `import` is a reserved word and cannot be an enum member as it stands',
      'MCL0130 `export` is a reserved word and cannot be an enum member as it stands',
    ]);
    expect(typeOf('union {\n  map: int\n  type\n  none\n}').diags).toHaveLength(2);
  });

  it('offers the quoted form as the fix', () => {
    const r = parse('type T = { type: string }', 'test.mcl');
    expect(r.diagnostics[0].fixes).toEqual([{ title: 'Quote `type`', edits: [{ file: 'test.mcl', span: { start: 11, end: 15 }, newText: '"type"' }] }]);
  });

  it('refuses an empty quoted name', () => {
    expect(typeOf('{ "": int }').diags).toEqual(['MCL0130 a quoted name must not be empty']);
  });

  it('still ends an unclosed record or enum at the next declaration', () => {
    for (const body of ['{ a: int', 'enum { a, b', 'union { a, b']) {
      const r = parse(`type T = ${body}\ntype U = int\n`, 'test.mcl');
      expect(r.file.decls.map((d) => (d as TypeDecl).name.name)).toEqual(['T', 'U']);
      expect(r.diagnostics.map((d) => d.code)).not.toContain('MCL0130');
    }
  });
});

describe('int64', () => {
  it('is a primitive type with constraints', () => {
    const r = typeOf('int64(0..100)');
    expect(r.diags).toEqual([]);
    expect(r.type).toMatchObject({ kind: 'PrimitiveType', name: 'int64', constraints: [{ kind: 'Range' }] });
  });
});
