// Diagnostics for machines: the `--json` / `--format json` document.
//
// The shape follows `terraform validate -json` so existing tooling can read it:
// a versioned document with a validity flag, counts and one entry per
// diagnostic with a range (1-based lines and code-point columns, 0-based UTF-8
// byte offsets) and a snippet of the source.

import { LineIndex, utf8Length, type Diagnostic, type Span } from '@mcl/language';
import { clipLine, clipMessage, limitDiagnostics, type DiagnosticLimits, type OmittedDiagnostics, type ShownDiagnostic } from './limits';

/** 1.1 added `omitted` and `related_omitted` (the bounds of limits.ts). */
export const DIAGNOSTICS_FORMAT_VERSION = '1.1';

export interface JsonPos {
  line: number;
  column: number;
  byte: number;
}

export interface JsonRange {
  filename: string;
  start: JsonPos;
  end: JsonPos;
}

export interface JsonSnippet {
  /** The source line(s) the range starts on (at most 6 lines; a long line cut to a window around the range, marked with `…`). */
  code: string;
  start_line: number;
  /** UTF-8 byte offsets into `code` of the highlighted part. */
  highlight_start_offset: number;
  highlight_end_offset: number;
}

export interface JsonDiagnostic {
  severity: 'error' | 'warning' | 'info';
  code: string;
  summary: string;
  detail: string;
  hint: string | null;
  range: JsonRange | null;
  snippet: JsonSnippet | null;
  related: { message: string; range: JsonRange | null }[];
  /** Related locations left out of `related` (limits.ts); only present when some were. */
  related_omitted?: number;
  fixes: { title: string; edits: { range: JsonRange | null; new_text: string }[] }[];
}

export interface JsonDiagnosticsDocument {
  format_version: string;
  valid: boolean;
  error_count: number;
  warning_count: number;
  /** The diagnostics left out of `diagnostics` by the limits (the counts above include them), or null. */
  omitted: OmittedDiagnostics | null;
  diagnostics: JsonDiagnostic[];
}

export interface JsonRenderOptions extends DiagnosticLimits {
  texts: ReadonlyMap<string, string>;
  /** Path written in `filename` (e.g. relative to the current directory). Default: as is. */
  displayPath?: (file: string) => string;
}

export class RangeMapper {
  private readonly indexes = new Map<string, LineIndex | null>();
  constructor(
    private readonly texts: ReadonlyMap<string, string>,
    private readonly display: (file: string) => string = (f) => f,
  ) {}

  index(file: string): LineIndex | null {
    if (!this.indexes.has(file)) {
      const t = this.texts.get(file);
      this.indexes.set(file, t === undefined ? null : new LineIndex(t));
    }
    return this.indexes.get(file)!;
  }

  range(file: string, span: Span): JsonRange | null {
    const idx = this.index(file);
    if (!idx) return null;
    const s = idx.position(span.start);
    const e = idx.position(Math.max(span.start, span.end));
    return {
      filename: this.display(file),
      start: { line: s.line, column: s.column, byte: s.byte },
      end: { line: e.line, column: e.column, byte: e.byte },
    };
  }

  snippet(file: string, span: Span): JsonSnippet | null {
    const idx = this.index(file);
    if (!idx) return null;
    const s = idx.position(span.start);
    const e = idx.position(Math.max(span.start, span.end));
    const last = Math.min(e.line, s.line + 5);
    // Each line is cut to a window around the range when it is long (limits.ts).
    const lines = [];
    for (let l = s.line; l <= last; l++) {
      const raw = idx.lineText(l - 1);
      const lineStart = idx.lineStart(l - 1);
      lines.push(clipLine(raw, l === s.line ? s.offset - lineStart : 0, l === e.line ? e.offset - lineStart : raw.length));
    }
    const code = lines.map((c) => c.text).join('\n');
    const startOff = utf8Length(lines[0].text.slice(0, lines[0].from));
    let endOff = utf8Length(code);
    if (e.line <= last) {
      endOff = 0;
      for (const c of lines.slice(0, -1)) endOff += utf8Length(c.text) + 1;
      const lastLine = lines[lines.length - 1];
      endOff += utf8Length(lastLine.text.slice(0, lastLine.to));
    }
    return { code, start_line: s.line, highlight_start_offset: startOff, highlight_end_offset: Math.max(startOff, endOff) };
  }
}

export function toJsonDiagnostic(d: Diagnostic | ShownDiagnostic, m: RangeMapper): JsonDiagnostic {
  const hint = d.hint === undefined ? undefined : clipMessage(d.hint);
  const out: JsonDiagnostic = {
    severity: d.severity,
    code: d.code,
    summary: clipMessage(d.message),
    detail: hint ?? '',
    hint: hint ?? null,
    range: m.range(d.file, d.span),
    snippet: m.snippet(d.file, d.span),
    related: (d.related ?? []).map((r) => ({ message: clipMessage(r.message), range: m.range(r.file, r.span) })),
    fixes: (d.fixes ?? []).map((f) => ({ title: clipMessage(f.title), edits: f.edits.map((e) => ({ range: m.range(e.file, e.span), new_text: e.newText })) })),
  };
  if ('relatedOmitted' in d && d.relatedOmitted > 0) {
    // Keep the documented key order: related_omitted right after related.
    const { fixes, ...rest } = out;
    return { ...rest, related_omitted: d.relatedOmitted, fixes };
  }
  return out;
}

/** The `--json` document: counts over every diagnostic, and the diagnostics within the limits of limits.ts. */
export function diagnosticsDocument(diagnostics: readonly Diagnostic[], opts: JsonRenderOptions): JsonDiagnosticsDocument {
  const m = new RangeMapper(opts.texts, opts.displayPath);
  const error_count = diagnostics.filter((d) => d.severity === 'error').length;
  const { shown, omitted } = limitDiagnostics(diagnostics, opts.texts, opts);
  return {
    format_version: DIAGNOSTICS_FORMAT_VERSION,
    valid: error_count === 0,
    error_count,
    warning_count: diagnostics.filter((d) => d.severity === 'warning').length,
    omitted,
    diagnostics: shown.map((d) => toJsonDiagnostic(d, m)),
  };
}
