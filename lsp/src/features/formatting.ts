// Formatting through the Prettier plugin. The plugin (and Prettier with it)
// is loaded on first use only, so starting the server stays fast. The whole
// document is replaced by one edit; a file with syntax errors is not
// formatted (the plugin refuses rather than guess).

import type { FormattingOptions, TextEdit } from 'vscode-languageserver';
import type { ParsedDocument } from '../analysis';

type FormatFn = (text: string, opts: { filepath?: string; printWidth?: number }) => Promise<string>;
let formatter: Promise<FormatFn> | undefined;

function loadFormatter(): Promise<FormatFn> {
  formatter ??= import('@mcl/prettier-plugin').then((m) => m.formatMcl as FormatFn);
  return formatter;
}

export async function formatDocument(doc: ParsedDocument, _options: FormattingOptions): Promise<TextEdit[] | null> {
  if (doc.diagnostics.some((d) => d.severity === 'error')) return null;
  const format = await loadFormatter();
  const formatted = await format(doc.text, { filepath: doc.file });
  if (formatted === doc.text) return [];
  return [{ range: { start: { line: 0, character: 0 }, end: doc.lines.lspPosition(doc.text.length) }, newText: formatted }];
}
