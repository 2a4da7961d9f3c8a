// Unused imports (MCL0212, a warning): an imported name the module never
// uses, an import of the same name twice, or a glob import none of whose
// names the module uses. Each warning carries a fix that deletes what is
// unused (the item and its comma, or the whole import line), so the editor's
// quick fix, "fix all" and "organise imports" remove it.
//
// Use is decided from the syntax tree, not from the reference index (which
// only an indexing compile builds): a name is used when it is the first part
// of a name written outside the imports (`Http`, `Http.something`) or the
// target of `deploy ... to`. That errs towards "used" (an enum member with the
// same name as an import keeps the import), never towards deleting an import
// something needs. Files with syntax errors are skipped: a name lost to the
// parser's recovery would make an import look unused while it is being typed.

import type { ImportDecl, ImportItem, Node, SourceFile, Span, TextEdit } from '@mcl/language';
import { Codes, importedName, walk } from '@mcl/language';
import type { Ctx, Module } from '../context';
import { qnameText } from './load';


/**
 * Syntax errors after which the parser recovered by skipping or guessing
 * input, so the tree may lack names the text uses. A value of the wrong kind
 * (`memory 64`) leaves every name in place and does not count.
 */
const RECOVERED = new Set(
  [
    Codes.InvalidCharacter,
    Codes.UnterminatedString,
    Codes.UnterminatedComment,
    Codes.ExpectedToken,
    Codes.UnexpectedToken,
    Codes.NestingTooDeep,
    Codes.MissingImportItems,
    Codes.MissingComma,
    Codes.TooManyErrors,
  ].map((c) => c.code),
);

export function reportUnusedImports(ctx: Ctx): void {
  const withSyntaxErrors = new Set(ctx.diagnostics.filter((d) => RECOVERED.has(d.code)).map((d) => d.file));
  for (const m of ctx.modules.values()) {
    // The standard library's imports are not the user's to change.
    if (m.isStd || m.ast.imports.length === 0 || withSyntaxErrors.has(m.file) || ctx.reused.has(m)) continue;
    checkModule(ctx, m);
  }
}

/**
 * Names written in the module outside its imports: the first part of every qualified name, and
 * `deploy`'s target. With `wanted`, the walk stops once every name in it has been seen: a module
 * without a glob import asks only about the names its imports bind, and most modules use each of
 * them early, so the rest of a large module's tree is not walked.
 */
function usedNames(ast: SourceFile, wanted?: ReadonlySet<string>): Set<string> {
  const used = new Set<string>();
  let missing = wanted?.size ?? -1;
  const use = (name: string): void => {
    if (used.has(name)) return;
    used.add(name);
    if (wanted?.has(name)) missing--;
  };
  for (const d of ast.decls) {
    if (missing === 0) break;
    walk(d as Node, (n) => {
      if (missing === 0) return false;
      if (n.kind === 'QualifiedName') {
        const first = n.parts[0]?.name;
        if (first) use(first);
        return false;
      }
      if (n.kind === 'DeployDecl') for (const t of n.targets ?? (n.target ? [n.target] : [])) if (t.name) use(t.parts?.[0].name ?? t.name);
      return undefined;
    });
  }
  return used;
}

/** The local names a module's item imports bind, or undefined when it has a glob import (which needs every used name). */
function boundNames(ast: SourceFile): Set<string> | undefined {
  const names = new Set<string>();
  for (const imp of ast.imports) {
    if (imp.items === '*') return undefined;
    for (const item of imp.items) {
      const local = importedName(item);
      if (local) names.add(local);
    }
  }
  return names;
}

function checkModule(ctx: Ctx, m: Module): void {
  const used = usedNames(m.ast, boundNames(m.ast));
  /** Local names already bound by an earlier import item of this module, to the module path they came from. */
  const bound = new Map<string, string>();
  for (const imp of m.ast.imports) {
    const path = qnameText(imp.module);
    const target = path ? ctx.modules.get(path) : undefined;
    // An import that does not resolve already has its error; a second warning on it would say nothing new.
    if (!target || imp.module.parts.some((p) => p.name === '')) continue;
    if (imp.items === '*') {
      const usesGlob = [...used].some((n) => target.decls.has(n) && !m.decls.has(n) && !m.explicit.has(n));
      if (!usesGlob) {
        ctx.report(Codes.UnusedImport, `nothing imported from \`${path}\` is used`, m.file, imp.span, {
          hint: 'remove the import',
          fixes: [{ title: `Remove the unused import of \`${path}\``, edits: [removeImport(m, imp)] }],
        });
      }
      continue;
    }
    const unused: { item: ImportItem; local: string; twice: boolean }[] = [];
    for (const item of imp.items) {
      const name = item.name.name;
      if (!name || !target.decls.has(name)) continue;
      const local = importedName(item);
      const twice = bound.get(local) === `${path}.${name}`;
      if (!twice) bound.set(local, `${path}.${name}`);
      if (twice || !used.has(local)) unused.push({ item, local, twice });
    }
    if (unused.length === 0) continue;
    const resolvable = imp.items.filter((i) => i.name.name && target.decls.has(i.name.name));
    if (unused.length === imp.items.length && resolvable.length === imp.items.length) {
      // Nothing of this import is used: one warning, and the fix removes the line.
      const names = unused.map((u) => `\`${u.local}\``).join(', ');
      const what = unused.every((u) => u.twice) ? 'imported twice' : 'imported but never used';
      ctx.report(Codes.UnusedImport, `${names} ${unused.length === 1 ? 'is' : 'are'} ${what}`, m.file, imp.span, {
        hint: 'remove the import',
        fixes: [{ title: `Remove the unused import of \`${path}\``, edits: [removeImport(m, imp)] }],
      });
      continue;
    }
    for (const u of unused) {
      const message = u.twice ? `\`${u.local}\` is imported twice` : `\`${u.local}\` is imported but never used`;
      ctx.report(Codes.UnusedImport, message, m.file, u.item.span, {
        hint: u.twice ? 'remove the second import of it' : `remove \`${u.local}\` from the import`,
        fixes: [{ title: `Remove the unused import of \`${u.local}\``, edits: [removeItem(m, imp.items as ImportItem[], u.item)] }],
      });
    }
  }
}

/** Deletes an import and the rest of its line (and the line itself when nothing else is on it). */
function removeImport(m: Module, imp: ImportDecl): TextEdit {
  const text = m.text;
  let start = imp.span.start;
  let end = imp.span.end;
  const lineStart = text.lastIndexOf('\n', start - 1) + 1;
  const before = text.slice(lineStart, start);
  let after = end;
  while (after < text.length && (text[after] === ' ' || text[after] === '\t' || text[after] === ';')) after++;
  if (/^[ \t]*$/.test(before) && (after >= text.length || text[after] === '\n' || text[after] === '\r')) {
    // Alone on its line: the whole line goes, line break included.
    start = lineStart;
    end = text.startsWith('\r\n', after) ? after + 2 : text[after] === '\n' ? after + 1 : after;
  }
  return { file: m.file, span: { start, end }, newText: '' };
}

/** Deletes one item of `import m.{A, B, C}` with the comma that separates it from a neighbour. */
function removeItem(m: Module, items: ImportItem[], item: ImportItem): TextEdit {
  const i = items.indexOf(item);
  let span: Span;
  if (i + 1 < items.length) span = { start: item.span.start, end: items[i + 1].span.start };
  else if (i > 0) span = { start: items[i - 1].span.end, end: item.span.end };
  else span = item.span;
  return { file: m.file, span, newText: '' };
}
