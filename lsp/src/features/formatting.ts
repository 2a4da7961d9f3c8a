// Formatting through the Prettier plugin. The plugin (and Prettier with it)
// is loaded on first use only, so starting the server stays fast. The layout
// comes from the project's configuration files (`.prettierrc`,
// `.editorconfig`), resolved by the plugin as `mclc fmt` and `prettier`
// resolve it, not from the editor's tab settings, so all three agree. The
// reply is the smallest set of line edits that turns the text into the
// formatted text, so the client keeps its cursor, marks and folds; range
// formatting returns those of the edits that touch the range. A file with
// syntax errors is not formatted (the plugin refuses rather than guess).

import type { FormattingOptions, Range, TextEdit } from 'vscode-languageserver';
import type { LineIndex } from '@mcl/language';
import type { ParsedDocument } from '../analysis';

interface Formatter {
  formatMcl(text: string, opts: { filepath?: string }): Promise<string>;
  clearConfigCache(): Promise<void>;
}
let formatter: Promise<Formatter> | undefined;

function loadFormatter(): Promise<Formatter> {
  formatter ??= (async () => {
    const restore = patchForCommonJsBundle();
    try {
      const m = await import('@mcl/prettier-plugin');
      return { formatMcl: m.formatMcl, clearConfigCache: m.clearConfigCache };
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

/**
 * The edits that format a document. `fsPath` is where the configuration is
 * looked up. With `range`, only the edits that touch it (formatting a
 * selection never changes text outside the lines it covers).
 */
export async function formatDocument(doc: ParsedDocument, fsPath: string, _options: FormattingOptions, range?: Range): Promise<TextEdit[] | null> {
  if (doc.diagnostics.some((d) => d.severity === 'error')) return null;
  const f = await loadFormatter();
  // Configuration files may have changed since the last format; reading them again is cheap next to formatting.
  await f.clearConfigCache();
  const formatted = await f.formatMcl(doc.text, { filepath: fsPath });
  if (formatted === doc.text) return [];
  const edits = lineEdits(doc.text, formatted, doc.lines);
  if (!range) return edits;
  return edits.filter((e) => e.range.start.line <= range.end.line && e.range.end.line >= range.start.line);
}

/** Above this many line pairs the middle of a change is replaced in one edit rather than diffed line by line. */
const MAX_DIFF_CELLS = 4_000_000;

/**
 * The smallest line edits from `before` to `after`: common leading and
 * trailing lines are skipped, the rest is matched by a longest common
 * subsequence of lines, and each run of differing lines becomes one edit.
 */
export function lineEdits(before: string, after: string, lines: LineIndex): TextEdit[] {
  const a = splitLines(before);
  const b = splitLines(after);
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const n = endA - start;
  const m = endB - start;
  // Pairs (i, j) of matching lines in order, found by dynamic programming over the middle.
  const matches: [number, number][] = [];
  if (n > 0 && m > 0 && n * m <= MAX_DIFF_CELLS) {
    const table = new Uint32Array((n + 1) * (m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        table[i * (m + 1) + j] =
          a[start + i] === b[start + j] ? table[(i + 1) * (m + 1) + j + 1] + 1 : Math.max(table[(i + 1) * (m + 1) + j], table[i * (m + 1) + j + 1]);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n && j < m) {
      if (a[start + i] === b[start + j]) {
        matches.push([start + i, start + j]);
        i++;
        j++;
      } else if (table[(i + 1) * (m + 1) + j] >= table[i * (m + 1) + j + 1]) i++;
      else j++;
    }
  }
  matches.push([endA, endB]);
  const edits: TextEdit[] = [];
  let i = start;
  let j = start;
  // Line offsets of `before`, so an edit's range is whole lines (line k starts at startOf(k)).
  const startOf = (line: number): number => (line >= a.length ? before.length : lines.offsetAt({ line, character: 0 }));
  for (const [mi, mj] of matches) {
    if (mi > i || mj > j) {
      edits.push({
        range: { start: lines.lspPosition(startOf(i)), end: lines.lspPosition(startOf(mi)) },
        newText: b.slice(j, mj).join(''),
      });
    }
    i = mi + 1;
    j = mj + 1;
  }
  return edits;
}

/** Lines with their line breaks attached, so joining them gives the text back. */
function splitLines(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}
