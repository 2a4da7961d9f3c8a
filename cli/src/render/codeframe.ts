// Diagnostics for people: a header with the location, severity, code and
// message, then the source line(s) with the span underlined, the hint, and
// every related location with a frame of its own.
//
//   webstack.mcl:12:5: error MCL0402: port `db` of `app` is not connected
//      12 |     require db: Kv
//         |             ^^
//     hint: connect it, e.g. `connect app.db -> store.kv`
//     related: webstack.mcl:3:1: the protocol is declared here
//       3 | protocol Kv {
//         | ^^^^^^^^

import { countCodePoints, LineIndex, type Diagnostic, type Span } from '@mcl/language';
import { plainStyle, plural, type Styler } from '../io';
import { clipLine, clipMessage, limitDiagnostics, relatedOmittedSummary, type DiagnosticLimits, type ShownDiagnostic } from './limits';

export interface FrameOptions extends DiagnosticLimits {
  /** Text of every file by the path used in diagnostics; a file without text gets a header only. */
  texts: ReadonlyMap<string, string>;
  /** How to print a diagnostic's file (e.g. relative to the current directory). Default: as is. */
  displayPath?: (file: string) => string;
  style?: Styler;
  /** At most this many source lines per frame; longer spans show the first and last lines. Default 6. */
  maxLines?: number;
}

const TAB_WIDTH = 4;

/** Expands tabs so carets line up, returning the text and a map from code-point column to display column. */
function expandTabs(line: string): { text: string; col: (cp: number) => number } {
  const cps = [...line];
  const starts: number[] = [];
  let out = '';
  for (const ch of cps) {
    starts.push(out.length);
    out += ch === '\t' ? ' '.repeat(TAB_WIDTH - (out.length % TAB_WIDTH)) : ch;
  }
  starts.push(out.length);
  return { text: out, col: (cp) => starts[Math.max(0, Math.min(cp, cps.length))] ?? out.length };
}

class FrameRenderer {
  private readonly indexes = new Map<string, LineIndex>();
  private readonly style: Styler;
  private readonly display: (file: string) => string;
  private readonly maxLines: number;

  constructor(private readonly opts: FrameOptions) {
    this.style = opts.style ?? plainStyle;
    this.display = opts.displayPath ?? ((f) => f);
    this.maxLines = Math.max(2, opts.maxLines ?? 6);
  }

  private index(file: string): LineIndex | undefined {
    let idx = this.indexes.get(file);
    if (!idx) {
      const text = this.opts.texts.get(file);
      if (text === undefined) return undefined;
      idx = new LineIndex(text);
      this.indexes.set(file, idx);
    }
    return idx;
  }

  location(file: string, span: Span): string {
    const idx = this.index(file);
    if (!idx) return this.display(file);
    const p = idx.position(span.start);
    return `${this.display(file)}:${p.line}:${p.column}`;
  }

  /** The source lines of `span` with an underline, each line prefixed by `indent`. */
  frame(file: string, span: Span, indent: string, mark: (s: string) => string): string[] {
    const idx = this.index(file);
    if (!idx) return [];
    const start = idx.position(span.start);
    const end = idx.position(Math.max(span.start, span.end));
    // A span that ends at the start of a line does not include that line.
    let lastLine = end.line;
    if (end.line > start.line && end.column === 1) lastLine--;
    const lines: number[] = [];
    for (let l = start.line; l <= lastLine; l++) lines.push(l);
    let shown: (number | null)[] = lines;
    if (lines.length > this.maxLines) {
      const head = lines.slice(0, this.maxLines - 1);
      shown = [...head, null, lines[lines.length - 1]];
    }
    const width = String(lastLine).length;
    const gutter = (n: number | null) => this.style.blue(`${indent}${(n === null ? '' : String(n)).padStart(width)} |`);
    const out: string[] = [];
    for (const l of shown) {
      if (l === null) {
        out.push(this.style.blue(`${indent}${'.'.repeat(width)} |`));
        continue;
      }
      // A long line is cut to a window around the span (limits.ts), so a frame stays a few lines of text.
      const raw = idx.lineText(l - 1);
      const lineStart = idx.lineStart(l - 1);
      const clipped = clipLine(raw, l === start.line ? start.offset - lineStart : 0, l === end.line ? end.offset - lineStart : raw.length);
      const { text, col } = expandTabs(clipped.text);
      let a = col(countCodePoints(clipped.text.slice(0, clipped.from)));
      let b = col(countCodePoints(clipped.text.slice(0, clipped.to)));
      // An empty span (or one covering only the line end) still gets one caret.
      if (b <= a) b = a + 1;
      if (a > text.length) a = text.length;
      out.push(`${gutter(l)}${text.length ? ' ' + text : ''}`);
      out.push(`${gutter(null)} ${' '.repeat(a)}${mark('^'.repeat(b - a))}`);
    }
    return out;
  }
}

/** Renders one diagnostic as lines (no trailing newline). */
export function renderDiagnostic(d: Diagnostic, opts: FrameOptions): string {
  return renderWith(new FrameRenderer(opts), d, opts.style ?? plainStyle);
}

function renderWith(r: FrameRenderer, d: Diagnostic | ShownDiagnostic, s: Styler): string {
  const sev = d.severity === 'error' ? s.red(s.bold('error')) : d.severity === 'warning' ? s.yellow(s.bold('warning')) : s.cyan(s.bold('info'));
  const mark = d.severity === 'error' ? s.red : d.severity === 'warning' ? s.yellow : s.cyan;
  const lines = [`${s.bold(r.location(d.file, d.span))}: ${sev} ${s.dim(d.code)}: ${s.bold(clipMessage(d.message))}`];
  lines.push(...r.frame(d.file, d.span, '  ', mark));
  if (d.hint) lines.push(`  ${s.green('hint')}: ${clipMessage(d.hint)}`);
  for (const rel of d.related ?? []) {
    lines.push(`  ${s.cyan('related')}: ${r.location(rel.file, rel.span)}: ${clipMessage(rel.message)}`);
    lines.push(...r.frame(rel.file, rel.span, '    ', s.cyan));
  }
  const more = 'relatedOmitted' in d ? d.relatedOmitted : 0;
  if (more) lines.push(`  ${s.cyan('related')}: ${relatedOmittedSummary(more)}`);
  return lines.join('\n');
}

/**
 * Renders the diagnostics, separated by blank lines, followed by a count line.
 * At most `maxDiagnostics` are rendered (limits.ts), then a line saying how
 * many were left out; the count line counts them all.
 */
export function renderDiagnostics(diagnostics: readonly Diagnostic[], opts: FrameOptions & { fileCount?: number }): string {
  const r = new FrameRenderer(opts);
  const s = opts.style ?? plainStyle;
  const { shown, omitted } = limitDiagnostics(diagnostics, opts.texts, opts);
  const blocks = shown.map((d) => renderWith(r, d, s));
  if (omitted) blocks.push(s.dim(omitted.summary));
  blocks.push(countLine(diagnostics, opts.fileCount, s));
  return blocks.join('\n\n') + '\n';
}

export function countLine(diagnostics: readonly Diagnostic[], fileCount: number | undefined, s: Styler = plainStyle): string {
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = diagnostics.filter((d) => d.severity === 'warning').length;
  const files = fileCount === undefined ? '' : ` in ${plural(fileCount, 'file')}`;
  if (errors === 0 && warnings === 0) return s.green(`No problems found${files}.`);
  const parts = [];
  if (errors) parts.push(s.red(plural(errors, 'error')));
  if (warnings) parts.push(s.yellow(plural(warnings, 'warning')));
  return `Found ${parts.join(' and ')}${files}.`;
}
