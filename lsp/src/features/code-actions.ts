// Quick fixes: the compiler attaches machine-applicable fixes to diagnostics
// (swap the ends of a backwards `connect`, wire an unwired required port, add
// a missing import). They travel to the editor in the diagnostic's `data`
// and come back here to become code actions. An unknown name also gets
// "import it from ..." actions computed here (import-fix.ts).

import type { Fix } from '@mcl/language';
import { CodeActionKind, type CodeAction, type CodeActionParams, type Diagnostic, type TextEdit } from 'vscode-languageserver';
import type { Snapshot } from '../analysis';
import { toRange, type DiagnosticData } from '../convert';
import type { ServerContext } from '../service';
import { importEdit, isUnknownName, modulesDeclaring } from './import-fix';

export function codeActions(s: Snapshot, c: ServerContext, file: string, params: CodeActionParams): CodeAction[] {
  const only = params.context.only;
  if (only && !only.some((k) => CodeActionKind.QuickFix.startsWith(k))) return [];
  const out: CodeAction[] = [];
  for (const diagnostic of params.context.diagnostics) {
    const data = diagnostic.data as DiagnosticData | undefined;
    for (const fix of data?.fixes ?? []) {
      const edit = toWorkspaceEdit(s, c, fix);
      if (!edit) continue;
      out.push({ title: fix.title, kind: CodeActionKind.QuickFix, diagnostics: [diagnostic], isPreferred: data!.fixes.length === 1, edit });
    }
    if (isUnknownName(diagnostic)) out.push(...importActions(s, c, file, diagnostic));
  }
  return out;
}

/** "Import `X` from `m`" for each module that declares the unknown name `X`. */
function importActions(s: Snapshot, c: ServerContext, file: string, diagnostic: Diagnostic): CodeAction[] {
  const lines = s.lines(file);
  const text = s.text(file);
  if (!lines || text === undefined) return [];
  const written = text.slice(lines.offsetAt(diagnostic.range.start), lines.offsetAt(diagnostic.range.end));
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(written)) return [];
  const modules = modulesDeclaring(s, c, written, file);
  const out: CodeAction[] = [];
  for (const module of modules) {
    const edit = importEdit(s, file, module, written);
    if (!edit) continue;
    out.push({
      title: `Import \`${written}\` from \`${module}\``,
      kind: CodeActionKind.QuickFix,
      diagnostics: [diagnostic],
      isPreferred: modules.length === 1,
      edit: { changes: { [c.paths.toUri(file)]: [edit] } },
    });
  }
  return out;
}

function toWorkspaceEdit(s: Snapshot, c: ServerContext, fix: Fix): { changes: Record<string, TextEdit[]> } | undefined {
  const changes: Record<string, TextEdit[]> = {};
  for (const e of fix.edits) {
    const lines = s.lines(e.file) ?? c.analyzer.parsedDocument(e.file)?.lines;
    // A fix computed against text that has changed since is dropped rather than applied in the wrong place.
    if (!lines) return undefined;
    (changes[c.paths.toUri(e.file)] ??= []).push({ range: toRange(lines, e.span), newText: e.newText });
  }
  return { changes };
}
