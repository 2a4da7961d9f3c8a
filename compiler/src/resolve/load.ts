// Loading modules: the entry files, the implicit prelude, every imported
// module and every module named by a qualified reference (`std.http.Request`
// loads `std.http` without an import). Module paths map to files:
// `a.b` is `a/b.mcl` under the workspace root and `std.x` is the standard
// library's `x`. A path that could leave the workspace is refused before the
// host is asked for it.

import { Codes, parse, type QualifiedName, type SourceFile, type Span, type TypeExpr } from '@mcl/language';
import type { ParseCache, SymbolInfo } from '../api';
import { Ctx, related, type Module } from '../context';
import { didYouMean } from '../util/suggest';

/** Standard library modules shipped with mcl (the host cannot list directories, so suggestions use this). */
export const KNOWN_STD_MODULES = ['blob', 'http', 'kv', 'log', 'prelude', 'sql'];

export const PRELUDE = 'std.prelude';

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The file of a module path (`a.b` is `a/b.mcl`, under `root` when one is
 * given: `<root>/a/b.mcl`; `std.x` is `std:x`), or undefined when the module
 * path is not valid.
 */
export function moduleFile(modulePath: string, root = ''): string | undefined {
  const parts = modulePath.split('.');
  if (parts.length === 0 || parts.some((p) => !IDENT.test(p))) return undefined;
  if (parts[0] === 'std') return parts.length > 1 ? `std:${parts.slice(1).join('.')}` : undefined;
  return underRoot(root, parts.join('/') + '.mcl');
}

/**
 * Module path of a workspace file (`a/b.mcl` -> `a.b`) as seen from `root`,
 * or undefined when the file is not under the root or its name cannot be a module.
 */
export function modulePathOfFile(file: string, root = ''): string | undefined {
  const rel = relativeToRoot(root, file);
  if (rel === undefined || !rel.endsWith('.mcl')) return undefined;
  const parts = rel.slice(0, -4).split('/');
  if (parts.some((p) => !IDENT.test(p))) return undefined;
  return parts.join('.');
}

/** A root-relative path as the host names it. */
export function underRoot(root: string, rel: string): string {
  return root === '' ? rel : `${root}/${rel}`;
}

/** A host's file name relative to `root`, or undefined when it is not under it (standard library files are their own). */
export function relativeToRoot(root: string, file: string): string | undefined {
  if (root === '' || file.startsWith('std:')) return file;
  return file.startsWith(root + '/') ? file.slice(root.length + 1) : undefined;
}

/** True when a workspace-relative path stays inside the workspace (no `..`, not absolute, no drive or NUL). */
export function isSafeRelativePath(p: string): boolean {
  if (p === '' || p.includes('\0') || p.includes('\\')) return false;
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p)) return false;
  return !p.split('/').some((s) => s === '..');
}

/** Joins a path relative to a directory and normalises `.` and `..`; returns undefined when it climbs above the root. */
export function joinRelative(dir: string, rel: string): string | undefined {
  if (rel.startsWith('/') || /^[A-Za-z]:/.test(rel) || rel.includes('\0') || rel.includes('\\')) return undefined;
  const out = dir === '' ? [] : dir.split('/');
  for (const seg of rel.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length === 0) return undefined;
      out.pop();
    } else out.push(seg);
  }
  return out.length ? out.join('/') : undefined;
}

export function qnameText(q: QualifiedName): string {
  return q.parts.map((p) => p.name).join('.');
}

/** Module paths named by qualified references (`std.http.Request`) in a file's declarations. */
function qualifiedModuleRefs(file: SourceFile): string[] {
  const out = new Set<string>();
  const add = (q: QualifiedName | undefined) => {
    if (q && q.parts && q.parts.length >= 2) out.add(q.parts.slice(0, -1).map((p) => p.name).join('.'));
  };
  // Type expressions nest; an explicit stack keeps hostile nesting from overflowing the call stack.
  const types: (TypeExpr | undefined)[] = [];
  for (const d of file.decls) {
    switch (d.kind) {
      case 'TypeDecl':
        types.push(d.type);
        break;
      case 'ProtocolDecl':
        for (const op of d.ops) types.push(op.input, op.output);
        break;
      case 'ComponentDecl':
        for (const m of d.members) {
          if (m.kind === 'ImageMember') add(m.image);
          else if (m.kind === 'PortDecl') add(m.protocol);
          else if (m.kind === 'ParamDecl') types.push(m.type);
        }
        break;
      case 'SystemDecl':
        for (const m of d.members) if (m.kind === 'InstanceDecl') add(m.component);
        break;
      case 'DeployDecl':
        add(d.system);
        for (const t of d.targets ?? (d.target ? [d.target] : [])) if (t.parts) add({ kind: 'QualifiedName', parts: t.parts, span: t.span });
        break;
      default:
        break;
    }
  }
  while (types.length) {
    const t = types.pop();
    if (!t) continue;
    switch (t.kind) {
      case 'NamedType':
        add(t.name);
        break;
      case 'ListType':
        types.push(t.element);
        break;
      case 'MapType':
        types.push(t.key, t.value);
        break;
      case 'RecordType':
        for (const f of t.fields) types.push(f.type);
        break;
      case 'UnionType':
        for (const v of t.variants) types.push(v.type);
        break;
      default:
        break;
    }
  }
  return [...out];
}

/** A module as loading makes it: its tree, nothing declared or bound yet. */
function newModule(path: string, file: string, ast: SourceFile, text: string, isStd: boolean, isEntry: boolean): Module {
  return {
    path,
    file,
    ast,
    text,
    isStd,
    isEntry,
    decls: new Map(),
    explicit: new Map(),
    globs: [],
    importEdges: [],
    deps: [],
    symbol: `${file}#module:${path}`,
  };
}

/** Makes a module the one loaded under its path and file. */
function registerModule(ctx: Ctx, m: Module): void {
  ctx.modules.set(m.path, m);
  ctx.byFile.set(m.file, m);
  ctx.program.files.set(m.file, m.ast);
  ctx.program.texts.set(m.file, m.text);
}

/** Registers a module made by this compile and records its symbol in the index. */
function declareModule(ctx: Ctx, m: Module): Module {
  registerModule(ctx, m);
  if (ctx.indexing) {
    const info: SymbolInfo = {
      id: m.symbol,
      kind: 'module',
      name: m.path.split('.').pop() ?? m.path,
      qualifiedName: m.path,
      file: m.file,
      nameSpan: { start: 0, end: 0 },
      span: { start: 0, end: m.text.length },
      detail: `module ${m.path}`,
    };
    ctx.program.symbols.set(m.symbol, info);
    ctx.addedSymbols?.push(info);
  }
  return m;
}

/**
 * In place of an earlier compile's module that loading took as it was
 * (`Loader` with `prior`), a module of this compile with the same tree and
 * dependencies and nothing declared yet, as loading makes one; the earlier
 * module is left as it was, for whatever still holds it.
 */
export function freshModule(ctx: Ctx, prior: Module, isEntry = prior.isEntry): Module {
  const m = newModule(prior.path, prior.file, prior.ast, prior.text, prior.isStd, isEntry);
  m.importEdges = prior.importEdges;
  m.deps = prior.deps;
  return declareModule(ctx, m);
}

export class Loader {
  private readonly failed = new Set<string>();

  /**
   * @param prior an earlier compile's modules by module path: a module whose
   *   tree is the same is loaded as that very object, with its imports and
   *   dependencies, rather than made and walked again; `reuseModules`
   *   (incremental.ts) replaces those it does not take over (freshModule).
   */
  constructor(
    private readonly ctx: Ctx,
    private readonly cache: ParseCache | undefined,
    private readonly prior?: ReadonlyMap<string, Module>,
  ) {}

  private parseText(file: string, text: string): SourceFile {
    let r = this.cache?.get(file, text);
    if (!r) {
      r = parse(text, file);
      this.cache?.set(file, text, r);
    }
    this.ctx.addDiagnostics(r.diagnostics);
    return r.file;
  }

  private addModule(path: string, file: string, text: string, isStd: boolean, isEntry: boolean): Module {
    const ast = this.parseText(file, text);
    // An earlier compile's module of the same tree is taken as it is for now: most of them are taken
    // over whole (incremental.ts), and making a new object of every module on every edit, to be thrown
    // away at once, was a fifth of what an edit allocated. `reuseModules` gives each one that is not
    // taken over a new object of its own (freshModule) before anything reads its declarations.
    const known = this.prior?.get(path);
    if (known && known.ast === ast && known.file === file && known.isStd === isStd && known.isEntry === isEntry && known.text === text) {
      registerModule(this.ctx, known);
      return known;
    }
    return declareModule(this.ctx, newModule(path, file, ast, text, isStd, isEntry));
  }

  /** Loads a module by path if it exists (memoised, including failures). Never reports. */
  load(modulePath: string): Module | undefined {
    const existing = this.ctx.modules.get(modulePath);
    if (existing) return existing;
    if (this.failed.has(modulePath)) return undefined;
    const file = moduleFile(modulePath, this.ctx.root);
    let text: string | undefined;
    if (file !== undefined) {
      try {
        text = file.startsWith('std:') ? this.ctx.host.readStdlib(file.slice(4)) : this.ctx.host.readFile(file);
      } catch {
        text = undefined;
      }
    }
    if (file === undefined || text === undefined) {
      this.failed.add(modulePath);
      return undefined;
    }
    return this.addModule(modulePath, file, text, file.startsWith('std:'), false);
  }

  loadEntry(path: string): Module | undefined {
    const norm = path.replace(/^\.\//, '');
    const span: Span = { start: 0, end: 0 };
    if (!isSafeRelativePath(norm)) {
      this.ctx.report(Codes.ModulePathOutsideWorkspace, `entry \`${path}\` is outside the workspace`, norm, span, {
        hint: 'give a path relative to the workspace root, without `..`',
      });
      return undefined;
    }
    const modulePath = modulePathOfFile(norm, this.ctx.root);
    if (modulePath === undefined && relativeToRoot(this.ctx.root, norm) === undefined) {
      this.ctx.report(Codes.ModulePathOutsideWorkspace, `entry \`${path}\` is outside the project folder \`${this.ctx.root}\``, norm, span, {
        hint: 'compile it from a folder that holds it',
      });
      return undefined;
    }
    if (modulePath === undefined) {
      this.ctx.report(Codes.ModulePathOutsideWorkspace, `\`${path}\` cannot be a module: file names must be identifiers ending in \`.mcl\``, norm, span, {
        hint: 'rename the file so every path segment is a letter or `_` followed by letters, digits or `_`',
      });
      return undefined;
    }
    const existing = this.ctx.modules.get(modulePath);
    if (existing) {
      // An earlier compile's module is not changed in place (freshModule).
      if (!existing.isEntry && existing === this.prior?.get(modulePath)) return freshModule(this.ctx, existing, true);
      existing.isEntry = true;
      return existing;
    }
    let text: string | undefined;
    try {
      text = this.ctx.host.readFile(norm);
    } catch {
      text = undefined;
    }
    if (text === undefined) {
      const why = this.ctx.host.unreadable?.(norm);
      this.ctx.report(Codes.EntryFileNotFound, why ? `entry file \`${path}\` cannot be read: ${why.reason}` : `entry file \`${path}\` does not exist`, norm, span, {
        hint: why?.hint ?? 'check the path; it is relative to the workspace root',
      });
      return undefined;
    }
    return this.addModule(modulePath, norm, text, false, true);
  }

  /** Loads the entries, the prelude and, transitively, every module they name. */
  loadAll(entries: readonly string[]): void {
    const queue: Module[] = [];
    const prelude = this.load(PRELUDE);
    if (prelude) queue.push(prelude);
    // Indexes rather than for-of over every entry and dependency: this runs on every compile (the
    // language server's every edit), and until V8 optimises it for-of makes an iterator result per element.
    const sorted = [...entries].sort();
    for (let i = 0; i < sorted.length; i++) {
      const m = this.loadEntry(sorted[i]);
      if (m) queue.push(m);
    }
    const visited = new Set<string>();
    for (let i = 0; i < queue.length; i++) {
      const m = queue[i];
      if (visited.has(m.path)) continue;
      visited.add(m.path);
      const known = this.prior?.get(m.path);
      if (known && known.ast === m.ast && known.file === m.file) {
        m.importEdges = known.importEdges;
        m.deps = known.deps;
        for (let j = 0; j < m.deps.length; j++) {
          const dep = this.load(m.deps[j]);
          if (dep && !visited.has(dep.path)) queue.push(dep);
        }
        continue;
      }
      const targets: string[] = [];
      for (const imp of m.ast.imports) {
        const mp = qnameText(imp.module);
        if (!mp || imp.module.parts.some((p) => p.name === '')) continue;
        m.importEdges.push({ target: mp, span: imp.module.span });
        targets.push(mp);
      }
      targets.push(...qualifiedModuleRefs(m.ast));
      m.deps = targets;
      for (const t of targets) {
        const dep = this.load(t);
        if (dep && !visited.has(dep.path)) queue.push(dep);
      }
    }
  }

  /** Suggestion text for an unknown module path. */
  suggestModule(path: string): string | undefined {
    const names = new Set<string>(this.ctx.modules.keys());
    for (const s of KNOWN_STD_MODULES) names.add(`std.${s}`);
    return didYouMean(path, names);
  }
}

/** Reports every import cycle once, at the import that closes it, with the cycle path. */
export function reportImportCycles(ctx: Ctx): void {
  const modules = [...ctx.modules.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const state = new Map<string, 0 | 1 | 2>();
  for (const root of modules) {
    if (state.get(root.path)) continue;
    // Iterative DFS over explicit imports; `stack` holds the current path.
    const stack: { m: Module; i: number }[] = [{ m: root, i: 0 }];
    state.set(root.path, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      if (top.i >= top.m.importEdges.length) {
        state.set(top.m.path, 2);
        stack.pop();
        continue;
      }
      const edge = top.m.importEdges[top.i++];
      const dep = ctx.modules.get(edge.target);
      if (!dep) continue;
      const st = state.get(dep.path) ?? 0;
      if (st === 0) {
        state.set(dep.path, 1);
        stack.push({ m: dep, i: 0 });
      } else if (st === 1) {
        const from = stack.findIndex((f) => f.m.path === dep.path);
        const cyc = stack.slice(from).map((f) => f.m);
        const pathText = [...cyc.map((m) => m.path), dep.path].join(' -> ');
        const rel = cyc.slice(0, -1).map((m, k) => {
          const e = m.importEdges.find((x) => x.target === cyc[k + 1].path)!;
          return related(m.file, e.span, `\`${m.path}\` imports \`${cyc[k + 1].path}\``);
        });
        ctx.report(Codes.ImportCycle, `import cycle: ${pathText}`, top.m.file, edge.span, {
          hint: 'move the declarations both modules need into a third module that imports neither',
          related: rel,
        });
      }
    }
  }
}
