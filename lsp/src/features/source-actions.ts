// Source actions over a whole file, as the editor's "Organize Imports" and
// "Fix All" commands (and on-save actions) ask for them:
//
// - `source.organizeImports` rewrites the imports at the top of the file:
//   what the compiler reports as unused (MCL0212) is dropped, explicit
//   imports of one module are merged into one line with each name once, and
//   the lines are sorted (standard library first, then by module path, names
//   by name). Comments on their own lines above an import, and at the end of
//   its line, move with it.
// - `source.fixAll` applies every fix the compiler marked as the only one for
//   its diagnostic (a diagnostic with several possible fixes needs a choice,
//   so it is left to the quick fix menu). Edits that would overlap an edit
//   already taken are left for a second run.
//
// Both act on the checked snapshot of the current text, so their edits apply
// to what the editor shows.

import type { Fix, ImportDecl, SourceFile, Span } from '@mcl/language';
import { CodeActionKind, type CodeAction, type CodeActionParams, type TextEdit } from 'vscode-languageserver';
import { Codes, importedName } from '@mcl/language';
import type { Snapshot } from '../analysis';
import { toRange } from '../convert';
import type { ServerContext } from '../service';

/** The code of unused-import warnings. */
export const UNUSED_IMPORT = Codes.UnusedImport.code;

export const SOURCE_ACTION_KINDS = [CodeActionKind.SourceOrganizeImports, CodeActionKind.SourceFixAll];

/** Whether a request's `only` filter admits a kind (no filter admits everything). */
function wanted(only: string[] | undefined, kind: string): boolean {
  return !only || only.some((k) => kind === k || kind.startsWith(k + '.'));
}

export function sourceActions(s: Snapshot, c: ServerContext, file: string, params: CodeActionParams): CodeAction[] {
  const only = params.context.only;
  const out: CodeAction[] = [];
  if (wanted(only, CodeActionKind.SourceOrganizeImports)) {
    const edit = organizeImports(s, file);
    if (edit) out.push({ title: 'Organize imports', kind: CodeActionKind.SourceOrganizeImports, edit: { changes: { [c.paths.toUri(file)]: [edit] } } });
  }
  if (wanted(only, CodeActionKind.SourceFixAll)) {
    const changes = fixAll(s, c, file);
    if (changes) out.push({ title: 'Fix all auto-fixable problems', kind: CodeActionKind.SourceFixAll, edit: { changes } });
  }
  return out;
}

interface Entry {
  module: string;
  /** `undefined` for a glob import. */
  items?: Map<string, string>;
  /** Comment lines above the import, and a comment after it on its line. */
  leading: string[];
  trailing: string[];
}

/** The edit that organises the imports of `file`, or undefined when they are already organised. */
export function organizeImports(s: Snapshot, file: string): TextEdit | undefined {
  const ast = s.program.files.get(file);
  const text = s.text(file);
  const lines = s.lines(file);
  if (!ast || text === undefined || !lines) return undefined;
  const block = leadingImports(ast);
  if (block.length === 0) return undefined;
  const unused = s.result.diagnostics.filter((d) => d.file === file && d.code === UNUSED_IMPORT).map((d) => d.span);
  const isUnused = (span: Span) => unused.some((u) => u.start === span.start && u.end === span.end);

  // The text replaced: from the line of the first import (or of the comment above it) to the end of the last import's line.
  const firstLine = lines.lineOf(block[0].span.start);
  let from = lines.lineStart(firstLine);
  const last = block[block.length - 1];
  let to = lineEnd(text, last.span.end);
  const inside = ast.comments.filter((cm) => cm.span.start >= from && cm.span.end <= to);
  // A comment line directly above the first import belongs to it only when separated from what is above by nothing:
  // the file's header comment (followed by a blank line) stays where it is.
  const entries: Entry[] = [];
  let prevEnd = from;
  for (const imp of block) {
    const module = imp.module.parts.map((p) => p.name).join('.');
    if (!module || imp.module.parts.some((p) => !p.name)) return undefined;
    const leading = inside.filter((cm) => cm.span.start >= prevEnd && cm.span.end <= imp.span.start).map((cm) => cm.text);
    const eol = lineEnd(text, imp.span.end);
    const trailing = inside.filter((cm) => cm.span.start >= imp.span.end && cm.span.end <= eol).map((cm) => cm.text);
    // Something else than comments and separators between the imports (an unparsed fragment) is not ours to move.
    const between = stripComments(text.slice(prevEnd, imp.span.start), inside, prevEnd);
    if (!/^[\s;,]*$/.test(between)) return undefined;
    // Nor is code on the rest of an import's line (`import a.{X} type T = X`, two imports on one line).
    const rest = stripComments(text.slice(imp.span.end, eol), inside, imp.span.end);
    if (!/^[\s;,]*$/.test(rest)) return undefined;
    prevEnd = eol;
    const entry: Entry = { module, leading, trailing };
    if (imp.items !== '*') {
      entry.items = new Map();
      for (const item of imp.items) {
        if (!item.name.name || isUnused(item.span)) continue;
        const written = item.alias?.name ? `${item.name.name} as ${item.alias.name}` : item.name.name;
        entry.items.set(written, importedName(item));
      }
    }
    const wholeUnused = isUnused(imp.span);
    if (wholeUnused || (entry.items && entry.items.size === 0)) {
      // The import goes; its comments stay, on the next import kept.
      if (leading.length || trailing.length) entries.push({ module: '', leading: [...leading, ...trailing], trailing: [] });
      continue;
    }
    entries.push(entry);
  }

  // Merge the explicit imports of one module, and identical globs.
  const merged = new Map<string, Entry>();
  const orphanComments: string[] = [];
  for (const e of entries) {
    if (!e.module) {
      orphanComments.push(...e.leading);
      continue;
    }
    const key = `${e.module}${e.items ? '.{}' : '.*'}`;
    const known = merged.get(key);
    const leading = [...orphanComments.splice(0), ...e.leading];
    if (!known) {
      merged.set(key, { ...e, leading, items: e.items ? new Map(e.items) : undefined });
      continue;
    }
    known.leading.push(...leading);
    known.trailing.push(...e.trailing);
    for (const [w, local] of e.items ?? []) known.items!.set(w, local);
  }
  const sorted = [...merged.values()].sort(
    (a, b) => Number(!a.module.startsWith('std.')) - Number(!b.module.startsWith('std.')) || cmp(a.module, b.module) || Number(!a.items) - Number(!b.items),
  );
  const out: string[] = [];
  for (const e of sorted) {
    out.push(...e.leading);
    const names = e.items ? [...e.items.keys()].sort(cmp) : undefined;
    const line = names ? `import ${e.module}.{${names.join(', ')}}` : `import ${e.module}.*`;
    out.push(e.trailing.length ? `${line} ${e.trailing.join(' ')}` : line);
  }
  out.push(...orphanComments);
  const eolText = text.includes('\r\n') ? '\r\n' : '\n';
  let newText = out.join(eolText);
  // The block ends where the last import's line ended; with no import left, its lines go (and the blank line after them).
  if (out.length === 0) {
    to = skipLineBreak(text, to);
    if (/^\r?\n/.test(text.slice(to)) && from === 0) to = skipLineBreak(text, to);
  }
  if (text.slice(from, to) === newText) return undefined;
  if (out.length === 0) newText = '';
  from = Math.min(from, to);
  return { range: toRange(lines, { start: from, end: to }), newText };
}

/** Imports before the first declaration: the ones that belong to the file's import block. */
function leadingImports(ast: SourceFile): ImportDecl[] {
  const firstDecl = ast.decls[0]?.span.start ?? Infinity;
  return ast.imports.filter((i) => i.span.start < firstDecl);
}

function lineEnd(text: string, at: number): number {
  const nl = text.indexOf('\n', at);
  const end = nl < 0 ? text.length : nl;
  return text[end - 1] === '\r' ? end - 1 : end;
}

function skipLineBreak(text: string, at: number): number {
  if (text.startsWith('\r\n', at)) return at + 2;
  if (text[at] === '\n') return at + 1;
  return at;
}

function stripComments(slice: string, comments: { span: Span }[], offset: number): string {
  let out = slice;
  for (const cm of [...comments].reverse()) {
    const a = cm.span.start - offset;
    const b = cm.span.end - offset;
    if (a >= 0 && b <= slice.length) out = out.slice(0, a) + out.slice(b);
  }
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Every unambiguous fix of the file's diagnostics, as one workspace edit, or undefined when there is none. */
export function fixAll(s: Snapshot, c: ServerContext, file: string): Record<string, TextEdit[]> | undefined {
  const taken = new Map<string, Span[]>();
  const changes: Record<string, TextEdit[]> = {};
  let any = false;
  for (const d of s.result.diagnostics) {
    if (d.file !== file || d.fixes?.length !== 1) continue;
    const fix: Fix = d.fixes[0];
    // A fix applies whole or not at all: one overlapping edit keeps the entire fix for a later run.
    const clash = fix.edits.some((e) => (taken.get(e.file) ?? []).some((t) => overlaps(t, e.span)));
    if (clash) continue;
    const lspEdits: [string, TextEdit][] = [];
    for (const e of fix.edits) {
      const lines = s.lines(e.file) ?? c.analyzer.parsedDocument(e.file)?.lines;
      if (!lines) break;
      lspEdits.push([c.paths.toUri(e.file), { range: toRange(lines, e.span), newText: e.newText }]);
    }
    if (lspEdits.length !== fix.edits.length) continue;
    for (const e of fix.edits) (taken.get(e.file) ?? taken.set(e.file, []).get(e.file)!).push(e.span);
    for (const [uri, edit] of lspEdits) (changes[uri] ??= []).push(edit);
    any = true;
  }
  return any ? changes : undefined;
}

/** Two spans overlap, or are both insertions at the same place (whose order would be undefined). */
function overlaps(a: Span, b: Span): boolean {
  if (a.start === b.start) return true;
  return a.start < b.end && b.start < a.end;
}
