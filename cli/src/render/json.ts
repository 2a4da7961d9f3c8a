// Diagnostics for machines: the `--json` / `--format json` document.
//
// The shape follows `terraform validate -json` so existing tooling can read it:
// a versioned document with a validity flag, counts and one entry per
// diagnostic with a range (1-based lines and code-point columns, 0-based UTF-8
// byte offsets) and a snippet of the source.

import { LineIndex, utf8Length, type Diagnostic, type Span } from '@mcl/language';

export const DIAGNOSTICS_FORMAT_VERSION = '1.0';

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
  /** The source line(s) the range starts on (at most 6 lines). */
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
  fixes: { title: string; edits: { range: JsonRange | null; new_text: string }[] }[];
}

export interface JsonDiagnosticsDocument {
  format_version: string;
  valid: boolean;
  error_count: number;
  warning_count: number;
  diagnostics: JsonDiagnostic[];
}

export interface JsonRenderOptions {
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
    const lines: string[] = [];
    for (let l = s.line; l <= last; l++) lines.push(idx.lineText(l - 1));
    const code = lines.join('\n');
    const lineStartByte = utf8Length(idx.text.slice(0, idx.lineStart(s.line - 1)));
    const startOff = s.byte - lineStartByte;
    const endOff = Math.min(e.byte - lineStartByte, utf8Length(code));
    return { code, start_line: s.line, highlight_start_offset: startOff, highlight_end_offset: Math.max(startOff, endOff) };
  }
}

export function toJsonDiagnostic(d: Diagnostic, m: RangeMapper): JsonDiagnostic {
  return {
    severity: d.severity,
    code: d.code,
    summary: d.message,
    detail: d.hint ?? '',
    hint: d.hint ?? null,
    range: m.range(d.file, d.span),
    snippet: m.snippet(d.file, d.span),
    related: (d.related ?? []).map((r) => ({ message: r.message, range: m.range(r.file, r.span) })),
    fixes: (d.fixes ?? []).map((f) => ({ title: f.title, edits: f.edits.map((e) => ({ range: m.range(e.file, e.span), new_text: e.newText })) })),
  };
}

export function diagnosticsDocument(diagnostics: readonly Diagnostic[], opts: JsonRenderOptions): JsonDiagnosticsDocument {
  const m = new RangeMapper(opts.texts, opts.displayPath);
  const error_count = diagnostics.filter((d) => d.severity === 'error').length;
  return {
    format_version: DIAGNOSTICS_FORMAT_VERSION,
    valid: error_count === 0,
    error_count,
    warning_count: diagnostics.filter((d) => d.severity === 'warning').length,
    diagnostics: diagnostics.map((d) => toJsonDiagnostic(d, m)),
  };
}
