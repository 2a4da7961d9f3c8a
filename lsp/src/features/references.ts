// Find references and rename. Both use the compiler's list of every resolved
// name use, so they agree with what the compiler checks.
//
// Rename is refused, with a reason, when it cannot be done safely: on a
// keyword or literal, on a standard library declaration (the library is not
// the user's to change), on a module (rename its file instead), for a name
// that is not an identifier or is reserved, and when the new name would clash
// with a declaration already visible where the symbol is declared or used.

import type { SymbolInfo } from '@mcl/compiler';
import { RESERVED_WORDS as LANGUAGE_RESERVED_WORDS } from '@mcl/language';
import { DocumentHighlightKind, ResponseError, ErrorCodes, type DocumentHighlight, type Location, type Position, type Range, type TextEdit, type WorkspaceEdit } from 'vscode-languageserver';
import type { Snapshot } from '../analysis';
import { toRange } from '../convert';
import { moduleOf } from '../model';
import type { ServerContext } from '../service';

export const RESERVED_WORDS: ReadonlySet<string> = new Set(LANGUAGE_RESERVED_WORDS);

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function references(s: Snapshot, c: ServerContext, file: string, position: Position, includeDeclaration: boolean): Location[] | null {
  const lines = s.lines(file);
  if (!lines) return null;
  const hit = s.refs.symbolAt(file, lines.offsetAt(position));
  if (!hit) return null;
  const sym = hit.symbol;
  const out: Location[] = [];
  const seen = new Set<string>();
  const push = (f: string, span: { start: number; end: number }): void => {
    const key = `${f}:${span.start}:${span.end}`;
    if (seen.has(key)) return;
    const l = s.lines(f);
    if (!l) return;
    seen.add(key);
    out.push({ uri: c.paths.toUri(f), range: toRange(l, span) });
  };
  if (includeDeclaration) push(sym.file, sym.nameSpan);
  for (const r of s.refs.references(sym.id)) {
    if (isDeclaration(sym, r)) continue;
    push(r.file, r.span);
  }
  return out;
}

/** Every use of the symbol under the cursor in the same file; the declaration is marked as a write. */
export function documentHighlights(s: Snapshot, _c: ServerContext, file: string, position: Position): DocumentHighlight[] | null {
  const lines = s.lines(file);
  if (!lines) return null;
  const hit = s.refs.symbolAt(file, lines.offsetAt(position));
  if (!hit) return null;
  const sym = hit.symbol;
  const out: DocumentHighlight[] = [];
  const seen = new Set<number>();
  if (sym.file === file) {
    out.push({ range: toRange(lines, sym.nameSpan), kind: DocumentHighlightKind.Write });
    seen.add(sym.nameSpan.start);
  }
  for (const r of s.refs.inFile(file)) {
    if (r.symbol !== sym.id || seen.has(r.span.start)) continue;
    seen.add(r.span.start);
    out.push({ range: toRange(lines, r.span), kind: DocumentHighlightKind.Read });
  }
  return out;
}

function isDeclaration(sym: SymbolInfo, r: { file: string; span: { start: number; end: number } }): boolean {
  return r.file === sym.file && r.span.start === sym.nameSpan.start && r.span.end === sym.nameSpan.end;
}

function refuse(message: string): never {
  throw new ResponseError(ErrorCodes.InvalidRequest, message);
}

/** The identifier under the cursor in raw text (for messages about keywords). */
function wordAt(text: string, offset: number): string {
  let a = offset;
  let b = offset;
  while (a > 0 && /[A-Za-z0-9_]/.test(text[a - 1])) a--;
  while (b < text.length && /[A-Za-z0-9_]/.test(text[b])) b++;
  return text.slice(a, b);
}

/** The span of the symbol's own name inside a reference (the last part of `std.http.Request`). */
function nameSpanIn(text: string, span: { start: number; end: number }, name: string): { start: number; end: number } | undefined {
  const written = text.slice(span.start, span.end);
  if (written === name) return span;
  if (written.endsWith('.' + name) && /^[A-Za-z0-9_.\s]*$/.test(written)) return { start: span.end - name.length, end: span.end };
  // An alias (`import m.{Foo as Bar}` used as `Bar`) keeps its own name.
  return undefined;
}

function checkRenamable(s: Snapshot, file: string, offset: number): { sym: SymbolInfo; range: { start: number; end: number } } {
  const text = s.text(file) ?? '';
  const hit = s.refs.symbolAt(file, offset);
  if (!hit) {
    const word = wordAt(text, offset);
    if (RESERVED_WORDS.has(word)) refuse(`\`${word}\` is a keyword and cannot be renamed.`);
    refuse(word ? `\`${word}\` does not name a declaration that can be renamed.` : 'There is no name here to rename.');
  }
  const sym = hit.symbol;
  if (sym.file.startsWith('std:')) {
    refuse(`\`${sym.name}\` is declared in the standard library (${moduleOf(s, sym)}) and cannot be renamed; import it under another name with \`as\` instead.`);
  }
  if (sym.kind === 'module') refuse('A module is named by its file: rename the file to rename the module.');
  const range = nameSpanIn(text, hit.ref.span, sym.name);
  if (!range) refuse(`\`${text.slice(hit.ref.span.start, hit.ref.span.end)}\` is an import alias; rename \`${sym.name}\` at its declaration.`);
  return { sym, range };
}

export function prepareRename(s: Snapshot, _c: ServerContext, file: string, position: Position): { range: Range; placeholder: string } | null {
  const lines = s.lines(file);
  if (!lines) return null;
  const { sym, range } = checkRenamable(s, file, lines.offsetAt(position));
  return { range: toRange(lines, range), placeholder: sym.name };
}

export function rename(s: Snapshot, c: ServerContext, file: string, position: Position, newName: string): WorkspaceEdit | null {
  const lines = s.lines(file);
  if (!lines) return null;
  const { sym } = checkRenamable(s, file, lines.offsetAt(position));
  if (!IDENT.test(newName)) refuse(`\`${newName}\` is not a valid name: use letters, digits and \`_\`, not starting with a digit.`);
  if (RESERVED_WORDS.has(newName)) refuse(`\`${newName}\` is a reserved word and cannot be used as a name.`);
  if (newName === sym.name) return { changes: {} };
  const clash = findClash(s, sym, newName);
  if (clash) refuse(clash);

  const changes: Record<string, TextEdit[]> = {};
  const seen = new Set<string>();
  const edit = (f: string, span: { start: number; end: number }): void => {
    const text = s.text(f);
    const l = s.lines(f);
    if (text === undefined || !l) return;
    const target = nameSpanIn(text, span, sym.name);
    if (!target) return;
    const key = `${f}:${target.start}`;
    if (seen.has(key)) return;
    seen.add(key);
    (changes[c.paths.toUri(f)] ??= []).push({ range: toRange(l, target), newText: newName });
  };
  edit(sym.file, sym.nameSpan);
  for (const r of s.refs.references(sym.id)) edit(r.file, r.span);
  return { changes };
}

/** Why `newName` would clash, or undefined when it is free. */
function findClash(s: Snapshot, sym: SymbolInfo, newName: string): string | undefined {
  // Siblings: members of the same container, or top-level declarations of the same module.
  const siblings = sym.container ? s.refs.children(sym.container) : s.refs.declarationsIn(sym.file).filter((d) => !d.container);
  const sibling = siblings.find((d) => d.id !== sym.id && d.name === newName && d.kind !== 'module');
  if (sibling) {
    const where = sym.container ? `in \`${s.program.symbols.get(sym.container)?.name ?? 'the same block'}\`` : `in module \`${moduleOf(s, sym)}\``;
    return `\`${newName}\` is already declared ${where} (${sibling.kind} \`${sibling.qualifiedName}\`).`;
  }
  if (sym.container) return undefined;
  // A top-level name is also visible where it is imported or used: the new
  // name must not collide with what those files already declare or import.
  const files = new Set(s.refs.references(sym.id).map((r) => r.file));
  for (const f of files) {
    if (f === sym.file) continue;
    const local = s.refs.declarationsIn(f).find((d) => !d.container && d.name === newName);
    if (local) return `\`${newName}\` is already declared in module \`${moduleOf(s, local)}\`, which uses \`${sym.name}\`.`;
    const ast = s.program.files.get(f);
    for (const imp of ast?.imports ?? []) {
      if (imp.items === '*') continue;
      for (const item of imp.items) {
        if ((item.alias?.name ?? item.name.name) === newName) {
          return `\`${newName}\` is already imported in \`${f}\`, which uses \`${sym.name}\`.`;
        }
      }
    }
  }
  return undefined;
}
