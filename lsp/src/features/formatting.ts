// Formatting through the Prettier plugin. The plugin (and Prettier with it)
// is loaded on first use only, so starting the server stays fast. The whole
// document is replaced by one edit; a file with syntax errors is not
// formatted (the plugin refuses rather than guess).

import type { FormattingOptions, TextEdit } from 'vscode-languageserver';
import type { ParsedDocument } from '../analysis';

type FormatFn = (text: string, opts: { filepath?: string; printWidth?: number }) => Promise<string>;
let formatter: Promise<FormatFn> | undefined;

function loadFormatter(): Promise<FormatFn> {
  formatter ??= (async () => {
    const restore = patchForCommonJsBundle();
    try {
      const m = await import('@mcl/prettier-plugin');
      return m.formatMcl as FormatFn;
    } finally {
      restore();
    }
  })();
  return formatter;
}

/**
 * Prettier's Node entry is an ES module that starts with
 * `createRequire(import.meta.url)` and `fileURLToPath(import.meta.url)`. In
 * the server's CommonJS bundle `import.meta` is empty, so both calls would
 * throw while Prettier initialises. For the moment Prettier is first loaded,
 * the two functions accept a missing URL and fall back to this bundle's own
 * path (Prettier uses it only to find external plugins and configuration,
 * which the server does not use). Outside a CommonJS bundle nothing is changed.
 */
function patchForCommonJsBundle(): () => void {
  if (typeof require !== 'function' || typeof __filename !== 'string') return () => undefined;
  const nodeModule = require('node:module') as { createRequire: (f: string | URL) => NodeJS.Require };
  const nodeUrl = require('node:url') as { fileURLToPath: (u: string | URL) => string };
  const createRequire = nodeModule.createRequire;
  const fileURLToPath = nodeUrl.fileURLToPath;
  const self = __filename;
  nodeModule.createRequire = (f) => createRequire(f ?? self);
  nodeUrl.fileURLToPath = (u) => (u === undefined ? self : fileURLToPath(u));
  return () => {
    nodeModule.createRequire = createRequire;
    nodeUrl.fileURLToPath = fileURLToPath;
  };
}

export async function formatDocument(doc: ParsedDocument, _options: FormattingOptions): Promise<TextEdit[] | null> {
  if (doc.diagnostics.some((d) => d.severity === 'error')) return null;
  const format = await loadFormatter();
  const formatted = await format(doc.text, { filepath: doc.file });
  if (formatted === doc.text) return [];
  return [{ range: { start: { line: 0, character: 0 }, end: doc.lines.lspPosition(doc.text.length) }, newText: formatted }];
}
