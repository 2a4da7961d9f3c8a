// Property tests: generated valid programs parse without diagnostics into the
// expected shape; mutated programs never make the parser throw, hang or
// report positions outside the text; nodeAt and walk agree with the spans.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  nodeAt,
  parse,
  syntaxDiagnosticInfos,
  walk,
  type Decl,
  type Node,
  type SourceFile,
  type TypeExpr,
} from '../src/index';
import { program } from './arbitraries';
import { hasInternalPlaceholder } from './helpers';

function typeShape(t: TypeExpr): string {
  switch (t.kind) {
    case 'PrimitiveType':
      return t.name;
    case 'NamedType':
      return 'N';
    case 'ListType':
      return `L(${typeShape(t.element)})`;
    case 'MapType':
      return `M(${typeShape(t.key)},${typeShape(t.value)})`;
    case 'RecordType':
      return `R(${t.fields.map((f) => typeShape(f.type)).join(',')})`;
    case 'EnumType':
      return `E${t.members.length}`;
    case 'UnionType':
      return `U(${t.variants.map((v) => (v.type ? typeShape(v.type) : '-')).join(',')})`;
    case 'MissingType':
      return '?';
  }
}

function declShape(d: Decl): string {
  switch (d.kind) {
    case 'TypeDecl':
      return `type ${d.name.name}: ${typeShape(d.type)}`;
    case 'ProtocolDecl':
      return `protocol ${d.name.name}: ${d.ops.length}${d.order ? '+order' : ''}`;
    case 'ComponentDecl':
      return `component ${d.name.name}: ${d.members.map((m) => m.kind).join(',')}`;
    case 'SystemDecl':
      return `system ${d.name.name}: ${d.members.map((m) => m.kind).join(',')}`;
    case 'TargetDecl':
      return `target ${d.name.name}: ${d.props.map((p) => p.value.kind).join(',')}`;
    case 'ImageDecl':
      return `image ${d.name.name}: ${d.props.length}`;
    case 'LabelsDecl':
      return `labels ${d.chains.map((c) => c.length).join(',')}`;
    case 'DeployDecl':
      return `deploy ${d.system.parts.at(-1)!.name}${d.target ? ' ' + d.target.name : ''}${d.targets ? ` [${d.targets.map((t) => t.name).join(',')}]` : ''}${d.placements ? ` {${d.placements.map((p) => `${p.instance.name}@${p.target.name}`).join(',')}}` : ''}`;
  }
}

function shapeOf(f: SourceFile): string[] {
  return [`imports ${f.imports.length}`, ...f.decls.map(declShape)];
}

const codes = new Set(syntaxDiagnosticInfos.map((i) => i.code));

/**
 * Checks what must hold for any input: bounded spans, registered codes, no
 * internal placeholders, ordered comments. Problems are collected and asserted
 * once, because an assertion per node would dominate the run time.
 */
function checkInvariants(text: string, file: SourceFile, diagnostics: ReturnType<typeof parse>['diagnostics']): void {
  const problems: string[] = [];
  const bad = (s: { start: number; end: number }) => !(s.start >= 0 && s.start <= s.end && s.end <= text.length);
  for (const d of diagnostics) {
    if (!codes.has(d.code)) problems.push(`unregistered code ${d.code}`);
    if (bad(d.span)) problems.push(`diagnostic span ${JSON.stringify(d.span)}: ${d.message}`);
    if (!d.message) problems.push(`empty message for ${d.code}`);
  }
  if (hasInternalPlaceholder(file)) problems.push('internal placeholder in the tree');
  let last = 0;
  for (const c of file.comments) {
    if (c.span.start < last || text.slice(c.span.start, c.span.end) !== c.text) problems.push(`comment ${JSON.stringify(c)}`);
    last = c.span.end;
  }
  walk(file, (n) => {
    if (bad(n.span)) problems.push(`${n.kind} span ${JSON.stringify(n.span)}`);
  });
  expect(problems).toEqual([]);
}

describe('generated valid programs', () => {
  it('parse without diagnostics into the expected shape', () => {
    fc.assert(
      fc.property(program, (g) => {
        const { file, diagnostics } = parse(g.text, 'gen.mcl');
        expect(diagnostics.map((d) => `${d.code} ${d.message} @${d.span.start}`)).toEqual([]);
        expect(shapeOf(file)).toEqual(g.shape);
        checkInvariants(g.text, file, diagnostics);
      }),
      { numRuns: 2500 },
    );
  });

  it('have every node inside its parent and nodeAt paths that hold the offset', () => {
    fc.assert(
      fc.property(program, fc.double({ min: 0, max: 1, noNaN: true }), (g, where) => {
        const { file } = parse(g.text, 'gen.mcl');
        const outside: string[] = [];
        walk(file, (n, parents) => {
          const p = parents.at(-1);
          if (p && (n.span.start < p.span.start || n.span.end > p.span.end)) outside.push(`${n.kind} outside ${p.kind}`);
        });
        expect(outside).toEqual([]);
        const offset = Math.floor(where * g.text.length);
        const path = nodeAt(file, offset);
        expect(path[0]).toBe(file);
        for (const n of path) {
          expect(n.span.start).toBeLessThanOrEqual(offset);
          expect(n.span.end).toBeGreaterThanOrEqual(offset);
        }
        for (let i = 1; i < path.length; i++) {
          const kids: Node[] = [];
          walk(path[i - 1], (n) => {
            if (n !== path[i - 1]) kids.push(n);
            return n === path[i - 1];
          });
          expect(kids).toContain(path[i]);
        }
      }),
      { numRuns: 600 },
    );
  });
});

const snippets = ['{', '}', '(', ')', '[', ']', '<', '>', ',', ';', ':', '.', '..', '=', '->', '|', '*', '"', '"""', '/*', '//', '///', '\n',
  'component', 'system', 'type', 'import', 'protocol', 'provide', 'memory', 'on-failure', 'per session', 'connect a.b ->', 'policy {',
  '64KiB', '5/s', '2s', '-1', '0x', '1e', '99999999999999999999', '\u0000', '😀', 'é', '\\', "'", '#', '@', 'x'];

const edit = fc.record({
  at: fc.double({ min: 0, max: 1, noNaN: true }),
  kind: fc.constantFrom('insert', 'delete', 'replace', 'duplicate'),
  len: fc.integer({ min: 1, max: 40 }),
  text: fc.oneof(fc.constantFrom(...snippets), fc.string({ maxLength: 4 })),
});

function mutate(text: string, edits: { at: number; kind: string; len: number; text: string }[]): string {
  let t = text;
  for (const e of edits) {
    const i = Math.floor(e.at * t.length);
    if (e.kind === 'insert') t = t.slice(0, i) + e.text + t.slice(i);
    else if (e.kind === 'delete') t = t.slice(0, i) + t.slice(i + e.len);
    else if (e.kind === 'replace') t = t.slice(0, i) + e.text + t.slice(i + e.len);
    else t = t.slice(0, i) + t.slice(i, i + e.len) + t.slice(i);
  }
  return t;
}

describe('mutated programs', () => {
  it('never make the parser throw, and every reported position is inside the text', () => {
    fc.assert(
      fc.property(program, fc.array(edit, { minLength: 1, maxLength: 6 }), (g, edits) => {
        const text = mutate(g.text, edits);
        const started = performance.now();
        const { file, diagnostics } = parse(text, 'mut.mcl');
        // A generous bound: a hang would take forever, a slow machine only a little longer.
        expect(performance.now() - started).toBeLessThan(2000);
        checkInvariants(text, file, diagnostics);
      }),
      { numRuns: 3000 },
    );
  });
});
