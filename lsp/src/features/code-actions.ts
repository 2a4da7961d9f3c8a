// Quick fixes: the compiler attaches machine-applicable fixes to diagnostics
// (swap the ends of a backwards `connect`, wire an unwired required port, add
// a missing import). They travel to the editor in the diagnostic's `data`
// and come back here to become code actions.

import type { Fix } from '@mcl/language';
import { CodeActionKind, type CodeAction, type CodeActionParams, type TextEdit } from 'vscode-languageserver';
import type { Snapshot } from '../analysis';
import { toRange, type DiagnosticData } from '../convert';
import type { ServerContext } from '../service';

export function codeActions(s: Snapshot, c: ServerContext, _file: string, params: CodeActionParams): CodeAction[] {
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
