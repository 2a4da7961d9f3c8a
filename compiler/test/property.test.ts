// Property tests: random and mutated workspaces never make the compiler throw
// or report an internal error, and whatever it returns is well formed
// (sorted diagnostics with spans inside their files, a plan only without errors).

import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { join } from 'node:path';
import { compile, type CompileResult, type ParseCache, type ParsedSource } from '../src/index';
import { MemoryHost, readTree, REPO } from './helpers';

/** Shares parsed files across cases (the stdlib is the same every time). */
class MapCache implements ParseCache {
  private readonly m = new Map<string, ParsedSource>();
  get(path: string, text: string) {
    return this.m.get(path + '\u0000' + text);
  }
  set(path: string, text: string, parsed: ParsedSource) {
    if (this.m.size > 2000) this.m.clear();
    this.m.set(path + '\u0000' + text, parsed);
  }
}
const cache = new MapCache();

function wellFormed(r: CompileResult): void {
  const internal = r.diagnostics.filter((d) => d.code === 'MCL0799');
  expect(internal.map((d) => d.message)).toEqual([]);
  for (const d of r.diagnostics) {
    expect(d.code).toMatch(/^MCL0\d{3}$/);
    expect(d.message.length).toBeGreaterThan(0);
    const text = r.program.texts.get(d.file);
    if (text !== undefined) {
      expect(d.span.start).toBeGreaterThanOrEqual(0);
      expect(d.span.end).toBeLessThanOrEqual(text.length);
      expect(d.span.start).toBeLessThanOrEqual(d.span.end);
    }
  }
  const hasError = r.diagnostics.some((d) => d.severity === 'error');
  if (hasError) expect(r.plan).toBeUndefined();
  for (const ref of r.program.references) expect(r.program.symbols.has(ref.symbol)).toBe(true);
}

const examples: Record<string, string>[] = ['webstack', 'honeypot', 'cluster'].map((n) => readTree(join(REPO, 'examples', n)));
const broken = readTree(join(REPO, 'examples', 'broken'));
const corpus: { files: Record<string, string>; entry: string }[] = [
  { files: examples[0], entry: 'webstack.mcl' },
  { files: examples[1], entry: 'honeypot.mcl' },
  { files: examples[2], entry: 'cluster.mcl' },
  ...Object.keys(broken).filter((f) => f.endsWith('.mcl')).map((f) => ({ files: broken, entry: f })),
];

const TOKENS = ['{', '}', '(', ')', '[', ']', '->', '.', ',', ';', ':', '=', '..', '*', '|', 'connect', 'system', 'component', 'provide', 'require', 'import', 'type', 'protocol', 'order', 'policy', 'expose', 'export', 'x', 'db', 'Kv', 'std.kv.Kv', '"s"', '0', '-1', '64KiB', '5s', '10/s', 'optional', 'per session', 'replicas 0', 'label secret', '\n', '"""', '/*', '//'];

describe('property: mutated sources', () => {
  test('random character and token edits of the examples never throw', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: corpus.length - 1 }),
        fc.array(
          fc.record({
            op: fc.constantFrom('insert', 'delete', 'replace', 'token'),
            pos: fc.nat(),
            len: fc.integer({ min: 1, max: 12 }),
            ch: fc.string({ maxLength: 3 }),
            tok: fc.constantFrom(...TOKENS),
          }),
          { minLength: 1, maxLength: 4 },
        ),
        (ci, edits) => {
          const c = corpus[ci];
          let text = c.files[c.entry];
          for (const e of edits) {
            const p = e.pos % (text.length + 1);
            if (e.op === 'insert') text = text.slice(0, p) + e.ch + text.slice(p);
            else if (e.op === 'delete') text = text.slice(0, p) + text.slice(p + e.len);
            else if (e.op === 'replace') text = text.slice(0, p) + e.ch + text.slice(p + e.len);
            else text = text.slice(0, p) + ' ' + e.tok + ' ' + text.slice(p);
          }
          const r = compile(new MemoryHost({ ...c.files, [c.entry]: text }), { entries: [c.entry], mclcVersion: 't', cache, index: true });
          wellFormed(r);
        },
      ),
      { numRuns: 2500, seed: 20261122 },
    );
  });
});

// Random workspaces from a small generator of plausible declarations with random names, so that names
// resolve sometimes and not other times, ports match or mismatch, and systems nest or recurse.
const NAMES = ['A', 'B', 'C', 'Sys', 'Kv', 'Logs', 'Http', 'T', 'x', 'y', 'db', 'app', 'local', 'busybox'];
const name = fc.constantFrom(...NAMES);
const lower = fc.constantFrom('a', 'b', 'c', 'db', 'app', 'x');
const typeExpr = fc.constantFrom('int', 'int(0..10)', 'int(10..0)', 'string(max 8)', 'string(pattern "[a-z]+")', 'bool', 'float(0..1)', 'list<int>(max 3)', 'map<string, int>', '{ a: int, b?: T }', 'enum { p, q }', 'union { ok: int, none }', 'T', 'std.kv.Entry', 'Missing');
const value = fc.constantFrom('1', '-5', '"txt"', 'true', '[1, 2]', '{ "k": 1 }', 'p', '64KiB', '2s', '{ a: 1 }', 'none', '100000');
const decl = fc.oneof(
  fc.tuple(name, typeExpr).map(([n, t]) => `type ${n} = ${t}\n`),
  fc.tuple(name, lower, lower, fc.boolean()).map(([n, a, b, ord]) => `protocol ${n} { call ${a}(T) -> T\n send ${b}({ v: int })${ord ? `\n order (${a} ${b})*` : ''} }\n`),
  fc.tuple(name, fc.array(fc.tuple(fc.constantFrom('provide', 'require', 'expose'), lower, name, fc.boolean()), { maxLength: 3 }), fc.array(fc.tuple(lower, typeExpr, fc.option(value)), { maxLength: 2 }), fc.constantFrom('', 'replicas 2', 'per session pool 1 max 4', 'memory 64MiB', 'vcpus 2', 'label secret', 'restart on-failure max 2', 'program { exec ["/bin/true"] env { A = "1" } }'))
    .map(([n, ports, params, extra]) =>
      `component ${n} {\n${ports.map(([d, p, proto, opt]) => (d === 'expose' ? `  expose ${p}: ${proto} on tcp ${8000 + p.length}` : `  ${d} ${p}: ${proto}${opt && d === 'require' ? ' optional' : ''}`)).join('\n')}\n${params.map(([p, t, v]) => `  param ${p}: ${t}${v ? ` = ${v}` : ''}`).join('\n')}\n  ${extra}\n}\n`),
  fc.tuple(name, fc.array(fc.tuple(lower, name), { maxLength: 3 }), fc.array(fc.tuple(lower, lower, lower, lower), { maxLength: 3 }), fc.option(fc.tuple(lower, lower, lower)), fc.constantFrom('', 'policy { db only from app\n no path app -> db\n exposed only [] }', 'policy { budget memory 1GiB }'))
    .map(([n, insts, conns, exp, pol]) =>
      `system ${n} {\n${insts.map(([i, c]) => `  ${i} = ${c}`).join('\n')}\n${conns.map(([a, p, b, q]) => `  connect ${a}.${p} -> ${b}.${q} { rate 10/s; max_message 1KiB }`).join('\n')}\n${exp ? `  export ${exp[0]} = ${exp[1]}.${exp[2]}` : ''}\n  ${pol}\n}\n`),
  fc.constantFrom('import std.kv.{Kv}\n', 'import std.log.*\n', 'import std.http.{Http as Web}\n', 'import other.*\n', 'import main.{A}\n', 'deploy Sys\n', 'deploy Sys to local\n', 'target t { backend xen\n memory 1GiB\n vcpus 1 }\n', 'labels { public < secret }\n', 'image busybox { base "busybox-static" }\n'),
);

describe('property: generated workspaces', () => {
  test('random declarations never throw', () => {
    fc.assert(
      fc.property(fc.array(decl, { minLength: 1, maxLength: 8 }), fc.array(decl, { maxLength: 4 }), (mainDecls, otherDecls) => {
        const r = compile(new MemoryHost({ 'main.mcl': mainDecls.join(''), 'other.mcl': otherDecls.join('') }), { entries: ['main.mcl'], mclcVersion: 't', cache, index: true });
        wellFormed(r);
      }),
      { numRuns: 2000, seed: 4242 },
    );
  });
});
