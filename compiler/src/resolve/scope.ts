// Names: each module's own declarations, its explicit and glob imports, and
// the prelude, looked up in that order. Every successful lookup is recorded as
// a reference so the language server can answer definition, references and
// rename from the Program alone.

import type { Decl, Ident, QualifiedName, Span } from '@mcl/language';
import { Codes, importedName } from '@mcl/language';
import { Ctx, related, type DeclEntry, type DeclKind, type Module } from '../context';
import { didYouMean, suggest } from '../util/suggest';
import { moduleFile, PRELUDE, qnameText, type Loader } from './load';

const KIND_OF: Partial<Record<Decl['kind'], DeclKind>> = {
  TypeDecl: 'type',
  ProtocolDecl: 'protocol',
  ComponentDecl: 'component',
  SystemDecl: 'system',
  ImageDecl: 'image',
  TargetDecl: 'target',
};

const ARTICLE: Record<DeclKind, string> = {
  type: 'a type',
  protocol: 'a protocol',
  component: 'a component',
  system: 'a system',
  image: 'an image',
  target: 'a target',
};

/** Declares every module's top-level declarations (symbols only; members are declared by the stages that check them). */
export function declareModules(ctx: Ctx): void {
  for (const m of ctx.modules.values()) {
    if (ctx.reused.has(m)) continue;
    for (const d of m.ast.decls) {
      const kind = KIND_OF[d.kind];
      if (!kind) continue;
      const named = d as Decl & { name: Ident };
      const name = named.name?.name;
      if (!name) continue;
      const prev = m.decls.get(name);
      if (prev) {
        ctx.report(Codes.DuplicateDeclaration, `\`${name}\` is declared twice in this module`, m.file, named.name.span, {
          hint: `rename one of them; the first declaration is ${ARTICLE[prev.kind]}`,
          related: [related(m.file, prev.decl.name.span, 'first declared here')],
        });
        continue;
      }
      const qname = `${m.path}.${name}`;
      const symbol = ctx.declare(kind, m.file, name, named.name, d.span, qname, () => `${kind} ${qname}`, (d as { doc?: string }).doc);
      m.decls.set(name, { kind, name, qname, decl: named, module: m, symbol });
    }
  }
}

/** Binds imports (reports unknown modules and names, conflicts) and attaches the prelude. */
export function bindImports(ctx: Ctx, loader: Loader): void {
  const prelude = ctx.modules.get(PRELUDE);
  for (const m of ctx.modules.values()) {
    if (ctx.reused.has(m)) continue;
    for (const imp of m.ast.imports) {
      const path = qnameText(imp.module);
      if (!path || imp.module.parts.some((p) => p.name === '')) continue;
      const target = ctx.modules.get(path);
      if (!target) {
        const bad = imp.module.parts.find((p) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(p.name));
        if (bad) {
          ctx.report(Codes.ModulePathOutsideWorkspace, `module path \`${path}\` cannot name a file inside the workspace`, m.file, imp.module.span, {
            hint: 'module path segments are identifiers: letters, digits and `_`',
          });
        } else {
          const file = path.startsWith('std.') ? undefined : moduleFile(path, ctx.root);
          const why = file === undefined ? undefined : ctx.host.unreadable?.(file);
          const s = loader.suggestModule(path);
          ctx.report(Codes.UnknownModule, why ? `module \`${path}\` cannot be read: ${why.reason}` : `no module \`${path}\``, m.file, imp.module.span, {
            hint:
              why?.hint ??
              s ??
              (path.startsWith('std.') ? 'the standard library has std.blob, std.http, std.kv, std.log and std.sql' : `create \`${path.split('.').join('/')}.mcl\` under the workspace root`),
          });
        }
        continue;
      }
      ctx.reference(m.file, imp.module.span, target.symbol);
      if (imp.items === '*') {
        if (!m.globs.includes(target)) m.globs.push(target);
        continue;
      }
      for (const item of imp.items) {
        const name = item.name.name;
        if (!name) continue;
        const entry = target.decls.get(name);
        if (!entry) {
          const s = didYouMean(name, target.decls.keys());
          ctx.report(Codes.ImportedNameNotDeclared, `module \`${path}\` does not declare \`${name}\``, m.file, item.name.span, {
            hint: s ?? `the module declares ${listNames([...target.decls.keys()])}`,
          });
          continue;
        }
        ctx.reference(m.file, item.name.span, entry.symbol);
        const local = importedName(item);
        const span = (item.alias ?? item.name).span;
        if (item.alias?.name) ctx.reference(m.file, item.alias.span, entry.symbol);
        const own = m.decls.get(local);
        if (own) {
          ctx.report(Codes.ConflictingImport, `the import of \`${local}\` conflicts with the declaration of \`${local}\` in this module`, m.file, span, {
            hint: `import it under another name: \`${name} as Other${name}\``,
            related: [related(m.file, own.decl.name.span, 'declared here')],
          });
          continue;
        }
        const prev = m.explicit.get(local);
        if (prev && prev.entry !== entry) {
          ctx.report(Codes.ConflictingImport, `\`${local}\` is imported twice, as \`${prev.entry.qname}\` and as \`${entry.qname}\``, m.file, span, {
            hint: `rename one import with \`as\``,
            related: [related(m.file, prev.span, 'first imported here')],
          });
          continue;
        }
        m.explicit.set(local, { entry, span });
      }
    }
    if (prelude && m !== prelude && !m.globs.includes(prelude)) m.globs.push(prelude);
  }
}

function listNames(names: string[]): string {
  if (names.length === 0) return 'nothing';
  const sorted = [...names].sort();
  const shown = sorted.slice(0, 8).map((n) => `\`${n}\``);
  return shown.join(', ') + (sorted.length > 8 ? ', ...' : '');
}

export type LookupResult =
  | { ok: true; entry: DeclEntry }
  | { ok: false; ambiguous?: DeclEntry[] };

/** Looks a plain name up in a module's scope without reporting. */
export function lookupPlain(m: Module, name: string): LookupResult {
  const own = m.decls.get(name);
  if (own) return { ok: true, entry: own };
  const imp = m.explicit.get(name);
  if (imp) return { ok: true, entry: imp.entry };
  let found: DeclEntry | undefined;
  let more: DeclEntry[] | undefined;
  for (const g of m.globs) {
    const e = g.decls.get(name);
    if (!e || e === found) continue;
    if (g.path === PRELUDE) continue;
    if (!found) found = e;
    else (more ??= [found]).push(e);
  }
  if (more) return { ok: false, ambiguous: more };
  if (found) return { ok: true, entry: found };
  const prelude = m.globs.find((g) => g.path === PRELUDE);
  const p = prelude?.decls.get(name);
  if (p) return { ok: true, entry: p };
  return { ok: false };
}

/** Every name visible in a module (for suggestions). */
export function visibleNames(m: Module, kind?: DeclKind): string[] {
  const out: string[] = [];
  const add = (e: DeclEntry, n: string) => {
    if (!kind || e.kind === kind) out.push(n);
  };
  for (const [n, e] of m.decls) add(e, n);
  for (const [n, b] of m.explicit) add(b.entry, n);
  for (const g of m.globs) for (const [n, e] of g.decls) add(e, n);
  return out;
}

/**
 * Resolves a reference to a declaration of one of `kinds`, reporting unknown,
 * ambiguous and wrong-kind names, and records the reference. `what` names the
 * expected thing in messages ("type", "protocol").
 */
export function resolveRef(
  ctx: Ctx,
  m: Module,
  q: QualifiedName,
  kinds: readonly DeclKind[],
  what: string,
  primitiveHint?: string[],
): DeclEntry | undefined {
  const parts = q.parts;
  if (parts.length === 0 || parts.some((p) => p.name === '')) return undefined;
  let entry: DeclEntry | undefined;
  const name = parts[parts.length - 1].name;
  const lastSpan: Span = parts[parts.length - 1].span;
  if (parts.length === 1) {
    const r = lookupPlain(m, name);
    if (r.ok) entry = r.entry;
    else if (r.ambiguous) {
      ctx.report(Codes.AmbiguousName, `\`${name}\` is ambiguous: it is declared by ${r.ambiguous.map((e) => `\`${e.qname}\``).join(' and ')}`, m.file, q.span, {
        hint: `import the one you mean explicitly, e.g. \`import ${r.ambiguous[0].module.path}.{${name}}\`, or write its qualified name`,
        related: r.ambiguous.map((e) => related(e.module.file, e.decl.name.span, `\`${e.qname}\` is declared here`)),
      });
      return undefined;
    } else {
      const candidates = [...visibleNames(m).filter((n) => {
        const l = lookupPlain(m, n);
        return l.ok && kinds.includes(l.entry.kind);
      }), ...(primitiveHint ?? [])];
      const s = didYouMean(name, candidates);
      // A loaded module that declares the name is the likely fix: say which import brings it in.
      const owners = [...ctx.modules.values()].filter((o) => o !== m && o.path !== PRELUDE && kinds.includes(o.decls.get(name)?.kind as DeclKind)).map((o) => o.path).sort();
      let hint = s ?? (owners.length ? `import it: \`import ${owners[0]}.{${name}}\`` : undefined);
      if (!hint) {
        const elsewhere = new Map<string, string>();
        for (const o of ctx.modules.values()) {
          if (o === m || o.path === PRELUDE) continue;
          for (const e of o.decls.values()) if (kinds.includes(e.kind) && !elsewhere.has(e.name)) elsewhere.set(e.name, o.path);
        }
        const near = suggest(name, elsewhere.keys(), 1)[0];
        hint = near
          ? `did you mean \`${near}\`? import it: \`import ${elsewhere.get(near)}.{${near}}\``
          : `declare it, or import the module that declares it: \`import some.module.{${name}}\``;
      }
      ctx.report(Codes.UnknownName, `unknown ${what} \`${name}\``, m.file, q.span, { hint });
      return undefined;
    }
  } else {
    const modPath = parts.slice(0, -1).map((p) => p.name).join('.');
    const target = ctx.modules.get(modPath);
    const modSpan: Span = { start: parts[0].span.start, end: parts[parts.length - 2].span.end };
    if (!target) {
      ctx.report(Codes.UnknownModule, `no module \`${modPath}\``, m.file, modSpan, {
        hint: didYouMean(modPath, [...ctx.modules.keys()].concat(['std.blob', 'std.http', 'std.kv', 'std.log', 'std.sql'])) ?? 'check the module path',
      });
      return undefined;
    }
    ctx.reference(m.file, modSpan, target.symbol);
    entry = target.decls.get(name);
    if (!entry) {
      ctx.report(Codes.UnknownName, `module \`${modPath}\` does not declare \`${name}\``, m.file, lastSpan, {
        hint: didYouMean(name, [...target.decls.values()].filter((e) => kinds.includes(e.kind)).map((e) => e.name)) ?? `the module declares ${listNames([...target.decls.keys()])}`,
      });
      return undefined;
    }
  }
  ctx.reference(m.file, lastSpan, entry.symbol);
  if (!kinds.includes(entry.kind)) {
    ctx.report(Codes.WrongDeclarationKind, `\`${qnameText(q)}\` is ${ARTICLE[entry.kind]}, not ${kinds.map((k) => ARTICLE[k]).join(' or ')}`, m.file, q.span, {
      hint: `use ${kinds.map((k) => ARTICLE[k]).join(' or ')} here`,
      related: [related(entry.module.file, entry.decl.name.span, `\`${entry.qname}\` is declared here`)],
    });
    return undefined;
  }
  return entry;
}
