// Error recovery: every error is reported, the tree keeps what was recognised
// (with placeholders for what was missing), and no input makes the parser
// throw, hang or overflow the stack.

import { describe, expect, it } from 'vitest';
import { parse, Codes, walk, type ComponentDecl, type SystemDecl } from '../src/index';
import { MAX_NESTING } from '../src/parser';
import { hasInternalPlaceholder } from './helpers';

function run(text: string) {
  const r = parse(text, 'r.mcl');
  expect(hasInternalPlaceholder(r.file)).toBe(false);
  return r;
}

describe('recovery inside declarations', () => {
  it('reports every error of a component and keeps the members around them', () => {
    const r = run('component A {\n  memory 64MiB\n  vcpus\n  label secret\n  foo bar\n  provide }\ncomponent B { vcpus 1 }');
    expect(r.diagnostics.map((d) => d.code)).toEqual([Codes.ExpectedToken.code, Codes.UnexpectedToken.code, Codes.ExpectedToken.code]);
    const [a, b] = r.file.decls as ComponentDecl[];
    expect(a.members.map((m) => m.kind)).toEqual(['MemoryMember', 'VcpusMember', 'LabelMember', 'PortDecl']);
    expect(a.members[1]).toMatchObject({ value: { kind: 'MissingExpr' } });
    expect(a.members[3]).toMatchObject({ name: { name: '' }, protocol: { parts: [{ name: '' }] } });
    expect(b.members).toHaveLength(1);
  });

  it('phrases a missing name with what it is and what was found', () => {
    const [d] = run('component C { provide }').diagnostics;
    expect(d.message).toBe('expected a port name after `provide`, found `}`');
    expect(d.span).toEqual({ start: 22, end: 23 });
    expect(d.hint).toBeTruthy();
  });

  it('puts placeholders where required parts are missing', () => {
    const r = run('type T =\ntype U = { a: }');
    expect(r.file.decls).toMatchObject([
      { kind: 'TypeDecl', name: { name: 'T' }, type: { kind: 'MissingType' } },
      { kind: 'TypeDecl', type: { kind: 'RecordType', fields: [{ name: { name: 'a' }, type: { kind: 'MissingType' } }] } },
    ]);
    expect(r.diagnostics).toHaveLength(2);
    const missing = (r.file.decls[0] as { type: { span: { start: number; end: number } } }).type.span;
    expect(missing.start).toBe(missing.end);
  });

  it('gives a qualified name at least one part', () => {
    for (const text of ['deploy', 'component C { image', 'system S { a =']) {
      walk(run(text).file, (n) => {
        if (n.kind === 'QualifiedName') expect(n.parts.length).toBeGreaterThan(0);
      });
    }
  });

  it('closes blocks left open at the end of the file', () => {
    const r = run('system S {\n  a = A {\n    replicas 2');
    expect(r.diagnostics).toHaveLength(1);
    expect(r.diagnostics[0]).toMatchObject({ message: expect.stringContaining('found the end of the file'), fixes: [{ title: 'Insert `}`' }] });
    // The related location points at the brace that was left open (the instance's, the innermost).
    expect(r.diagnostics[0].related).toEqual([{ file: 'r.mcl', span: { start: 19, end: 20 }, message: 'the `{` that is not closed' }]);
    expect((r.file.decls[0] as SystemDecl).members[0]).toMatchObject({ kind: 'InstanceDecl', settings: [{ kind: 'InstancesMember', mode: 'replicas' }] });
  });

  it('does not let one bad line spill onto the next', () => {
    const r = run('system S {\n  expose a.web on udp 53\n  b = B\n}');
    expect(r.diagnostics).toHaveLength(1);
    expect(r.diagnostics[0].message).toBe('expected `tcp` after `on`, found the name `udp`');
    expect((r.file.decls[0] as SystemDecl).members.map((m) => m.kind)).toEqual(['ExposeDecl', 'InstanceDecl']);
  });

  it('keeps an opening brace instead of deleting it to fit a name', () => {
    const r = run('system S { connect a.x -> { rate 5/s } }');
    expect(r.diagnostics).toHaveLength(1);
    expect((r.file.decls[0] as SystemDecl).members[0]).toMatchObject({ kind: 'ConnectDecl', attrs: [{ kind: 'RateAttr' }] });
  });

  it('checks the kind of literal a setting takes and offers a fix', () => {
    const [d] = run('component C { memory 256 }').diagnostics;
    expect(d).toMatchObject({ code: Codes.WrongLiteralKind.code, message: '`memory` takes a size such as `256MiB`, found the integer `256`' });
    expect(d.fixes?.[0].edits[0].newText).toBe('256MiB');
    expect(run('system S { connect a.b -> c.d { timeout 3 } }').diagnostics[0].fixes?.[0].edits[0].newText).toBe('3s');
  });

  it('reports a missing comma with a fix that inserts it', () => {
    const [d] = run('target t { v [1 2] }').diagnostics;
    expect(d).toMatchObject({ code: Codes.MissingComma.code, fixes: [{ edits: [{ span: { start: 15, end: 15 }, newText: ',' }] }] });
  });

  it('reports rule-specific mistakes', () => {
    expect(run('type T = int(5)').diagnostics[0].code).toBe(Codes.InvalidConstraint.code);
    expect(run('protocol P { send a(X) -> Y }').diagnostics[0].code).toBe(Codes.ResponseOnOneWay.code);
    expect(run('protocol P { call a order a order a }').diagnostics[0].code).toBe(Codes.DuplicateOrder.code);
    expect(run('type T = int\nimport a.{B}').diagnostics[0]).toMatchObject({ code: Codes.ImportAfterDeclaration.code, severity: 'warning' });
    const bare = run('import a.b.C').diagnostics[0];
    expect(bare).toMatchObject({ code: Codes.MissingImportItems.code, hint: 'write `import a.b.{C}`' });
    expect(run('import a.b.C').file.imports[0]).toMatchObject({ module: { parts: [{ name: 'a' }, { name: 'b' }] }, items: [{ name: { name: 'C' } }] });
    expect(run('component C { expose web: Http }').diagnostics[0].message).toContain('on tcp');
  });

  it('suggests the keyword a misspelt word was meant to be, with a fix', () => {
    const top = run('componet A { memory 1MiB }\ntype T = int').diagnostics[0];
    expect(top).toMatchObject({ hint: 'did you mean `component`?', fixes: [{ edits: [{ span: { start: 0, end: 8 }, newText: 'component' }] }] });
    expect(run('component A { requires db: Sql }').diagnostics[0].hint).toBe('did you mean `require`?');
    expect(run('system S { connect a.b -> c.d { timout 2s } }').diagnostics[0].hint).toBe('did you mean `timeout`?');
    expect(run('component A { banana 3 }').diagnostics[0].hint).toContain('component members are');
  });

  it('reports garbage between declarations once per run and resumes at the next declaration', () => {
    const r = run('garbage { with } braces ] ) and more\ntype T = int\n}}');
    expect(r.diagnostics.map((d) => d.code)).toEqual([Codes.UnexpectedToken.code, Codes.UnexpectedToken.code]);
    expect(r.file.decls).toHaveLength(1);
  });
});

describe('robustness', () => {
  it('cuts off deep nesting with a diagnostic instead of overflowing the stack', () => {
    for (const [open, close] of [['[', ']'], ['{ a: ', '}']]) {
      const text = `target t { v ${open.repeat(20000)}${close.repeat(20000)} }`;
      const r = run(text);
      expect(r.diagnostics.some((d) => d.code === Codes.NestingTooDeep.code)).toBe(true);
      expect(r.file.decls).toHaveLength(1);
    }
    const types = run(`type T = ${'list<'.repeat(5000)}int${'>'.repeat(5000)}\ntype U = int`);
    expect(types.diagnostics.filter((d) => d.code === Codes.NestingTooDeep.code)).toHaveLength(1);
    expect(types.file.decls).toHaveLength(2);
    const order = run(`protocol P { call a order ${'('.repeat(5000)}a${')'.repeat(5000)} }`);
    expect(order.diagnostics.some((d) => d.code === Codes.NestingTooDeep.code)).toBe(true);
  });

  it('accepts nesting below the limit without complaint', () => {
    const depth = Math.floor(MAX_NESTING / 4);
    expect(run(`target t { v ${'['.repeat(depth)}${']'.repeat(depth)} }`).diagnostics).toEqual([]);
  });

  it('survives unclosed deep nesting', () => {
    const r = run(`target t { v ${'['.repeat(10000)}`);
    expect(r.diagnostics.length).toBeGreaterThan(0);
  });

  it('survives binary garbage and caps the number of diagnostics', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    // Without `/` and `"`, which would turn the rest into one comment or string.
    const bytes = Array.from({ length: 200_000 }, () => String.fromCharCode(Math.floor(rnd() * 256))).join('').replace(/[/"]/g, ' ');
    const r = run(bytes);
    expect(r.diagnostics.length).toBeLessThanOrEqual(1001);
    expect(r.diagnostics.at(-1)?.code).toBe(Codes.TooManyErrors.code);
  });

  it('survives every prefix of a valid file', () => {
    const text = 'import a.{B as C}\ntype T = { a?: list<int(0..9)>(max 3) }\ncomponent X { memory 1MiB expose h: H on tcp 1 program { env { A = "b" } } }\nsystem S { x = X { replicas 2 } connect x.a -> y.b { rate 5/s burst 2 } policy { no path a -> b exposed only [x.h] } }\ndeploy S to t';
    for (let i = 0; i <= text.length; i++) {
      const r = run(text.slice(0, i));
      for (const d of r.diagnostics) {
        expect(d.span.start).toBeGreaterThanOrEqual(0);
        expect(d.span.end).toBeLessThanOrEqual(i);
        expect(d.span.start).toBeLessThanOrEqual(d.span.end);
      }
    }
  });
});
