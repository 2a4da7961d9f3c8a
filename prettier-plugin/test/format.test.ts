// Formatter tests: real Prettier running the plugin. Formatting must be
// idempotent, keep every comment, and never change the parsed tree.

import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import fc from 'fast-check';
import { parse } from '@mcl/language';
import { formatMcl, McLSyntaxError } from '../src/index';

const repo = join(__dirname, '..', '..');

function mclFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...mclFiles(p));
    else if (name.endsWith('.mcl')) out.push(p);
  }
  return out;
}

/** The tree without positions or comments: what formatting must preserve. */
function shape(text: string): unknown {
  const { file } = parse(text, 'x.mcl');
  return JSON.parse(
    JSON.stringify(file, (key, value) => (key === 'span' || key === 'comments' ? undefined : value)),
  );
}

function commentTexts(text: string): string[] {
  return parse(text, 'x.mcl').file.comments.map((c) => c.text.trimEnd());
}

const wellFormed = [...mclFiles(join(repo, 'stdlib')), ...mclFiles(join(repo, 'examples'))].filter((p) => {
  const { diagnostics } = parse(readFileSync(p, 'utf8'), p);
  return !diagnostics.some((d) => d.severity === 'error');
});

describe('prettier plugin', () => {
  it('formats port-scoped and channel declassifications and `query`', async () => {
    const input = 'component C { declassifies a->b   on  x ,y }\nsystem S { connect c.x -> d.y { query ; declassifies a  ->  b } }\n';
    const out = await formatMcl(input);
    expect(out).toBe('component C {\n  declassifies a -> b on x, y\n}\n\nsystem S {\n  connect c.x -> d.y { query; declassifies a -> b }\n}\n');
    expect(await formatMcl(out)).toBe(out);
    expect(shape(out)).toEqual(shape(input));
  });

  it('formats the candidates of a late binding on the connection\'s line, keeping comments', async () => {
    const input = 'system S { connect a.db->x.sql|y.sql   |z.sql{timeout 2s}\n connect b.db -> x.sql | /* spare */ y.sql }\n';
    const out = await formatMcl(input);
    expect(out).toBe('system S {\n  connect a.db -> x.sql | y.sql | z.sql { timeout 2s }\n  connect b.db -> x.sql | /* spare */ y.sql\n}\n');
    expect(await formatMcl(out)).toBe(out);
    expect(shape(out)).toEqual(shape(input));
    expect(commentTexts(out)).toEqual(commentTexts(input));
  });

  it('keeps quoted names as written and formats int64 like the other primitives', async () => {
    const input = 'type  T = {  "type"  :string, /* c */ "@id" ? : int64( 0 .. ),\n plain:int }\ntype E = enum { "import" ,  a }\n';
    const out = await formatMcl(input);
    expect(out).toBe('type T = { "type": string, /* c */ "@id"?: int64(0..), plain: int }\n\ntype E = enum { "import", a }\n');
    expect(await formatMcl(out)).toBe(out);
    expect(shape(out)).toEqual(shape(input));
  });

  it('formats port arrays, element indices and fan-out lists', async () => {
    const input = 'component R { require shards:Kv[ 3 ]  optional }\nsystem S { connect r.shards[*]->[a.kv,b.kv,\n c.kv] { rate 1/s }\n connect r.x[ 0 ] -> a.kv\n export e = r.y[2] }\n';
    const out = await formatMcl(input);
    expect(out).toBe('component R {\n  require shards: Kv[3] optional\n}\n\nsystem S {\n  connect r.shards[*] -> [a.kv, b.kv, c.kv] { rate 1/s }\n  connect r.x[0] -> a.kv\n  export e = r.y[2]\n}\n');
    expect(await formatMcl(out)).toBe(out);
    expect(shape(out)).toEqual(shape(input));
  });

  it('formats the messy fixture to its golden output', async () => {
    const input = readFileSync(join(__dirname, 'fixtures', 'messy.mcl'), 'utf8');
    const out = await formatMcl(input);
    const goldenPath = join(__dirname, 'fixtures', 'messy.formatted.mcl');
    if (process.env.UPDATE_GOLDEN === '1' || !existsSync(goldenPath)) writeFileSync(goldenPath, out);
    expect(out).toBe(readFileSync(goldenPath, 'utf8'));
    expect(await formatMcl(out)).toBe(out);
    expect(shape(out)).toEqual(shape(input));
    expect(commentTexts(out)).toEqual(commentTexts(input));
  });

  it('finds the standard library and examples to check', () => {
    expect(wellFormed.length).toBeGreaterThan(10);
  });

  for (const p of wellFormed) {
    it(`leaves ${relative(repo, p)} unchanged (already formatted)`, async () => {
      const text = readFileSync(p, 'utf8');
      expect(await formatMcl(text)).toBe(text);
    });
  }

  it('refuses to format text with syntax errors, with the position of the first', async () => {
    const err = await formatMcl('component X {\n  memory = 1\n}\n').catch((e) => e);
    expect(err).toBeInstanceOf(McLSyntaxError);
    expect(err.loc.start.line).toBe(2);
  });

  it('keeps a narrow print width idempotent and the tree unchanged', async () => {
    const input = readFileSync(join(__dirname, 'fixtures', 'messy.mcl'), 'utf8');
    const narrow = await formatMcl(input, { printWidth: 30 });
    expect(await formatMcl(narrow, { printWidth: 30 })).toBe(narrow);
    expect(shape(narrow)).toEqual(shape(input));
    expect(commentTexts(narrow)).toEqual(commentTexts(input));
  });

  it('is idempotent and tree-preserving on generated programs', async () => {
    const ident = fc.constantFrom('a', 'b', 'web', 'db', 'item', 'x1', 'port_2');
    const prim = fc.constantFrom('int', 'string', 'bool', 'float', 'bytes', 'int(0..9)', 'string(max 8)', 'list<int>(max 3)');
    const field = fc.tuple(ident, fc.boolean(), prim).map(([n, o, t]) => `${n}${o ? '?' : ''}: ${t}`);
    const record = fc.uniqueArray(field, { selector: (f) => f.split(/[?:]/)[0], minLength: 0, maxLength: 5 });
    const comment = fc.constantFrom('', ' // note', ' /* c */');
    const member = fc.oneof(
      fc.constantFrom('memory 64MiB', 'vcpus 2', 'label secret', 'replicas 3', 'restart always', 'single'),
      fc.tuple(ident, prim).map(([n, t]) => `param ${n}: ${t}`),
      ident.map((n) => `provide ${n}: std.http.Http`),
    );
    const program = fc
      .tuple(record, fc.array(fc.tuple(member, comment), { maxLength: 6 }), fc.integer({ min: 20, max: 120 }), fc.boolean())
      .map(([fields, members, width, oneLine]) => {
        const sep = oneLine ? '; ' : '\n  ';
        return {
          width,
          text: `type T = { ${fields.join(', ')} }\n\ncomponent C {${sep}${members.map(([m, c]) => m + c + (c.startsWith(' //') ? '\n' : '')).join(sep)}\n}\n`,
        };
      });
    await fc.assert(
      fc.asyncProperty(program, async ({ text, width }) => {
        if (parse(text, 'g.mcl').diagnostics.some((d) => d.severity === 'error')) return;
        const once = await formatMcl(text, { printWidth: width });
        expect(await formatMcl(once, { printWidth: width })).toBe(once);
        expect(shape(once)).toEqual(shape(text));
        expect(commentTexts(once)).toEqual(commentTexts(text));
      }),
      { numRuns: 300, seed: 42 },
    );
  });
});
