// Projects: which files are compiled together, and from which root.
//
// Module paths are relative to a root (`import shop.types` is
// `<root>/shop/types.mcl`), and `mclc` takes the root to be the directory of
// the files it is given. A folder opened in the editor often holds several
// such projects side by side (`examples/webstack/`, `examples/cluster/`),
// each importing its neighbours by their short module paths. Compiling the
// whole folder from its top would misresolve those imports and mix unrelated
// `deploy` declarations, so the server groups files first:
//
// - A file's root is its own directory, unless the modules it names (in
//   imports and in qualified names such as `mods.m0.Sys`) exist only relative
//   to an ancestor directory; then the highest such ancestor is its root.
// - A file and the files it names are in the same project; the project's root
//   is the highest root among its files.
//
// This only decides roots and groups from module paths and file existence;
// what a name means is still decided by the compiler, which checks each
// project exactly as `mclc validate` checks it from that root.

import type { QualifiedName, SourceFile } from '@mcl/language';

export interface Project {
  /** Workspace-relative root directory, "" for the workspace root. */
  root: string;
  /** Workspace-relative paths of the files, sorted. */
  files: string[];
}

/** Module paths a file names (imports and every dotted prefix of qualified names), cached by text. */
export class ModuleRefCache {
  private readonly cache = new Map<string, { text: string; refs: string[] }>();

  refs(file: string, text: string, ast: SourceFile): string[] {
    const known = this.cache.get(file);
    if (known && known.text === text) return known.refs;
    const out = new Set<string>();
    for (const imp of ast.imports) {
      const path = imp.module.parts.map((p) => p.name).join('.');
      if (path) out.add(path);
    }
    collectQualified(ast, (q) => {
      // `a.b.C` may name module `a.b` (or `a`, with `b.C` an enum member); every prefix is a candidate.
      for (let n = 1; n < q.parts.length; n++) out.add(q.parts.slice(0, n).map((p) => p.name).join('.'));
    });
    const refs = [...out].filter((m) => m && !m.startsWith('std.') && m !== 'std');
    this.cache.set(file, { text, refs });
    return refs;
  }
}

function collectQualified(node: unknown, visit: (q: QualifiedName) => void, depth = 0): void {
  if (depth > 200 || node === null || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const n of node) collectQualified(n, visit, depth + 1);
    return;
  }
  const n = node as { kind?: string };
  if (n.kind === 'QualifiedName') {
    const q = node as QualifiedName;
    if (q.parts.length > 1) visit(q);
    return;
  }
  for (const [key, value] of Object.entries(n)) {
    if (key === 'span' || key === 'comments' || value === null || typeof value !== 'object') continue;
    collectQualified(value, visit, depth + 1);
  }
}

function dirOf(file: string): string {
  const i = file.lastIndexOf('/');
  return i < 0 ? '' : file.slice(0, i);
}

/** `a/b` and its ancestors up to the workspace root, deepest first: `a/b`, `a`, ``. */
function ancestors(dir: string): string[] {
  const out = [dir];
  let d = dir;
  while (d !== '') {
    d = dirOf(d);
    out.push(d);
  }
  return out;
}

function join(root: string, rel: string): string {
  return root === '' ? rel : `${root}/${rel}`;
}

function depth(dir: string): number {
  return dir === '' ? 0 : dir.split('/').length;
}

/**
 * Groups workspace files into projects. `refsOf` gives the module paths a file
 * names (undefined when the file cannot be read).
 */
export function groupProjects(files: string[], refsOf: (file: string) => string[] | undefined): Project[] {
  const exists = new Set(files);
  const parent = new Map<string, string>();
  const find = (f: string): string => {
    let r = f;
    while (parent.get(r) !== r) r = parent.get(r)!;
    // Path compression keeps later lookups short.
    let x = f;
    while (parent.get(x) !== r) {
      const next = parent.get(x)!;
      parent.set(x, r);
      x = next;
    }
    return r;
  };
  const union = (a: string, b: string): void => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent.set(ra, rb);
  };
  for (const f of files) parent.set(f, f);

  const rootOf = new Map<string, string>();
  for (const f of files) {
    let root = dirOf(f);
    for (const m of refsOf(f) ?? []) {
      const rel = m.split('.').join('/') + '.mcl';
      // The deepest ancestor under which the module exists resolves it for this file.
      const hit = ancestors(dirOf(f)).find((r) => exists.has(join(r, rel)));
      if (hit === undefined) continue;
      if (depth(hit) < depth(root)) root = hit;
      union(f, join(hit, rel));
    }
    rootOf.set(f, root);
  }

  const groups = new Map<string, Project>();
  for (const f of files) {
    const key = find(f);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { root: rootOf.get(f)!, files: [] }));
    g.files.push(f);
    const r = rootOf.get(f)!;
    if (depth(r) < depth(g.root)) g.root = r;
  }
  // A project's files must all lie under its root; a file outside it (possible
  // only with conflicting imports) is moved to a project of its own.
  const out: Project[] = [];
  for (const g of groups.values()) {
    const under = (f: string) => g.root === '' || f.startsWith(g.root + '/');
    const inside = g.files.filter(under);
    const outside = g.files.filter((f) => !under(f));
    out.push({ root: g.root, files: inside.sort() });
    for (const f of outside) out.push({ root: dirOf(f), files: [f] });
  }
  out.sort((a, b) => (a.files[0] < b.files[0] ? -1 : 1));
  return out;
}
