// Inputs at the edges of the grammar: every .mcl file of the repository and
// both generated benchmark workspaces parse (the valid ones without
// diagnostics), valid inputs that exercise gated alternatives, repetitions
// that continue on their first token and nesting limits give no diagnostics,
// and the same constructs written wrongly give one.

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { generateWorkspace as generateCompilerWorkspace } from '../../compiler/bench/generate';
import { generateWorkspace as generateParseWorkspace } from '../bench/generate';
import { parse } from '../src/index';
import { MAX_NESTING } from '../src/parser';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function mclFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...mclFiles(p));
    else if (e.name.endsWith('.mcl')) out.push(p);
  }
  return out;
}

describe('the grammar at its edges', () => {
  it('parses every .mcl file in the repository, most of them without diagnostics', () => {
    const files = mclFiles(root);
    expect(files.length).toBeGreaterThan(40);
    let clean = 0;
    for (const f of files) {
      const r = parse(readFileSync(f, 'utf8'), relative(root, f));
      if (r.diagnostics.length === 0) clean++;
    }
    // examples/broken and the other broken fixtures have syntax errors; the rest do not.
    expect(clean).toBeGreaterThan(files.length / 2);
  });

  it('parses every file of both generated benchmark workspaces without diagnostics', () => {
    const parseWs = generateParseWorkspace({ components: 300, files: 7 });
    const compilerWs = generateCompilerWorkspace(120, 40);
    const texts = [
      ...parseWs.files.filter((f) => f.path.endsWith('.mcl')).map((f) => [f.path, f.text] as const),
      ...Object.entries(compilerWs.files).filter(([p]) => p.endsWith('.mcl')),
    ];
    expect(texts.length).toBeGreaterThan(8);
    for (const [path, text] of texts) expect(parse(text, path).diagnostics).toEqual([]);
  });

  const valid: string[] = [
    // Instance settings: a keyword setting yields to a parameter override of the same name.
    'system S { a = A { single = 2, memory 64MiB; per session pool 2 max 3\n replicas = 4 label secret restart on-failure max 2 } }',
    'system S { a = A { per session max 3 } b = x.y.B }',
    // Policy rules whose first word is also an instance name.
    'system S { policy { no only from a; exposed only from b; exposed only through b; budget only through c\n no path a -> b; no flow l -> x; exposed only [a.b, c.d,]; budget vcpus 4; budget memory 1GiB } }',
    'system S { connect a.x -> b.y { rate 5/s burst 3, max_message 64KiB; timeout 2s allow p, q max_inflight 4 } expose a.web on tcp 80 export e = a.p }',
    'protocol P { call a(int) -> int order a b* (c | d)+ e? call e() send f(string) notify g }',
    'protocol P {\n  /// Doc.\n  call a(list<map<string, {x: int(0..10), y?: float(max 1.5, min 0.5)}>>) -> union { a, b: enum { x, y, } }\n}',
    'import a.b.{X as Y, Z,}\nimport c.*\n/// Docs\n/// twice\ncomponent C { image std.busybox provide p: P optional on tcp 80 expose q: Q on tcp 81\n param x: string(pattern "^a", ..64) = "d" sensitive\n param y: list<int>(..3) = [1, 2,] program { script "s" exec ["a", "b"] file "/a" = "t" file "/b" from "b" env { A: "1", "B" = 2 } } declassifies a -> b vcpus 2 restart never }',
    'image I { kernel "k" size 1GiB nested { a: [true, false] } } target T { cpus 4 } labels { public < internal < secret; other } deploy a.S to T',
    'type T = { a: int(1.., 2..3, -1..0x10) }',
    '',
    ';;,',
    // Nesting below the limit.
    `type T = ${'list<'.repeat(30)}int${'>'.repeat(30)}`,
  ];
  it.each(valid.map((t, i) => [i, t]))('parses valid input %i without diagnostics', (_, text) => {
    expect(parse(text as string, 'v.mcl').diagnostics).toEqual([]);
  });

  const invalid: string[] = [
    // A repetition that continues on its first token: the trailing `,` is an error, not a separator.
    'system S { connect a.x -> b.y { allow p, } }',
    'system S { policy { x only from a, } }',
    'system S { a = A { per session\n max = 3 } }',
    'import a.b.C',
    'import a.b',
    'component C { memory 64 }',
    'component C { expose p: P }',
    'protocol P { send a(int) -> int }',
    'protocol P { order a order b }',
    'type T = int(5)',
    'type T = [1 2]',
    'system S { a = A { x = [1 2] } }',
    'component C {}\nimport a.*',
    'component C { x }',
    'type T = "unterminated',
    `type T = ${'list<'.repeat(MAX_NESTING)}int${'>'.repeat(MAX_NESTING)}`,
    `system S { a = A { x = ${'['.repeat(MAX_NESTING)}${']'.repeat(MAX_NESTING)} } }`,
    `protocol P { order ${'('.repeat(MAX_NESTING)}a${')'.repeat(MAX_NESTING)} }`,
  ];
  it.each(invalid.map((t, i) => [i, t]))('reports input %i with problems', (_, text) => {
    expect(parse(text as string, 'f.mcl').diagnostics.length).toBeGreaterThan(0);
  });
});
