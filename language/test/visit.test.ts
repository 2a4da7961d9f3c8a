// walk, childrenOf and nodeAt over real trees; and the repository's own
// examples and standard library, which must parse without syntax errors.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { childrenOf, nodeAt, parse, walk, type Node } from '../src/index';

const text = 'system S {\n  web = Web { replicas 2 }\n  connect web.db -> db.sql { rate 5/s }\n}\n\ncomponent C { program { file "/a" from "b" } }';
const { file } = parse(text, 'v.mcl');

describe('walk', () => {
  it('visits every node once, pre-order, with its parents', () => {
    const seen: string[] = [];
    walk(file, (n, parents) => {
      seen.push(`${'  '.repeat(parents.length)}${n.kind}`);
      if (parents.length) expect(childrenOf(parents[parents.length - 1])).toContain(n);
    });
    expect(seen.slice(0, 8)).toEqual([
      'SourceFile',
      '  SystemDecl',
      '    Ident',
      '    InstanceDecl',
      '      Ident',
      '      QualifiedName',
      '        Ident',
      '      InstancesMember',
    ]);
    expect(seen.filter((s) => s.trim() === 'PortRef')).toHaveLength(2);
    // The nodes inside `FileEntry.source` are reached through the grouping object.
    expect(seen.filter((s) => s.trim() === 'String')).toHaveLength(2);
  });

  it('skips the children of a node when the visitor returns false', () => {
    const kinds: string[] = [];
    walk(file, (n) => {
      kinds.push(n.kind);
      return n.kind !== 'SystemDecl';
    });
    expect(kinds).not.toContain('InstanceDecl');
    expect(kinds).toContain('ComponentDecl');
  });
});

describe('nodeAt', () => {
  const at = (needle: string, delta = 0) => nodeAt(file, text.indexOf(needle) + delta).map((n: Node) => n.kind);

  it('finds the innermost node and its chain', () => {
    expect(at('db.sql')).toEqual(['SourceFile', 'SystemDecl', 'ConnectDecl', 'PortRef', 'Ident']);
    expect(at('5/s')).toEqual(['SourceFile', 'SystemDecl', 'ConnectDecl', 'RateAttr', 'Rate']);
    expect(at('Web {')).toEqual(['SourceFile', 'SystemDecl', 'InstanceDecl', 'QualifiedName', 'Ident']);
  });

  it('finds a name when the offset is just past it', () => {
    expect(at('web = ', 3)).toEqual(['SourceFile', 'SystemDecl', 'InstanceDecl', 'Ident']);
  });

  it('returns only the file outside every declaration', () => {
    expect(nodeAt(file, text.indexOf('}\n\ncomponent') + 2)).toEqual([file]);
  });
});

describe('the repository sources', () => {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const files: string[] = [];
  for (const dir of ['stdlib', ...(existsSync(join(root, 'examples')) ? readdirSync(join(root, 'examples')).filter((d) => d !== 'broken').map((d) => `examples/${d}`) : [])]) {
    const abs = join(root, dir);
    if (!existsSync(abs)) continue;
    for (const f of readdirSync(abs)) if (f.endsWith('.mcl') && !f.startsWith('.')) files.push(`${dir}/${f}`);
  }

  it.each(files)('%s parses without syntax errors', (path) => {
    const r = parse(readFileSync(join(root, path), 'utf8'), path);
    expect(r.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual([]);
    expect(r.file.decls.length).toBeGreaterThan(0);
  });
});
