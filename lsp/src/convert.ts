// Conversions between compiler values (spans in UTF-16 offsets, file names)
// and LSP values (ranges in line/character, URIs).

import type { Diagnostic as McDiagnostic, Fix, LineIndex, Span } from '@mcl/language';
import { Codes } from '@mcl/language';
import {
  DiagnosticSeverity,
  DiagnosticTag,
  type Diagnostic,
  type DiagnosticRelatedInformation,
  type Range,
} from 'vscode-languageserver';
import { PathMapper } from './paths';

export function toRange(lines: LineIndex, span: Span): Range {
  return { start: lines.lspPosition(span.start), end: lines.lspPosition(span.end) };
}

/** What a code action needs to rebuild the fixes of a diagnostic sent earlier. */
export interface DiagnosticData {
  fixes: Fix[];
}

/** What the client accepts in a diagnostic (see client.ts); defaults to yes. */
export interface DiagnosticFeatures {
  relatedInformation: boolean;
  /** Unused code may be tagged so the client greys it out. */
  unnecessaryTag?: boolean;
}

/** Diagnostics about code that does nothing (unused imports): tagged "unnecessary" where the client supports it. */
const UNNECESSARY = new Set([Codes.UnusedImport.code]);

export function toLspDiagnostic(
  d: McDiagnostic,
  linesOf: (file: string) => LineIndex | undefined,
  paths: PathMapper,
  features: DiagnosticFeatures = { relatedInformation: true },
): Diagnostic | undefined {
  const lines = linesOf(d.file);
  if (!lines) return undefined;
  const related: DiagnosticRelatedInformation[] = [];
  const relatedFiles: string[] = [];
  for (const r of d.related ?? []) {
    const rl = linesOf(r.file);
    if (!rl) continue;
    relatedFiles.push(r.file.startsWith('std:') ? PathMapper.modulePath(r.file) : r.file);
    related.push({ location: { uri: paths.toUri(r.file), range: toRange(rl, r.span) }, message: r.message });
  }
  const out: Diagnostic = {
    range: toRange(lines, d.span),
    severity: d.severity === 'error' ? DiagnosticSeverity.Error : d.severity === 'warning' ? DiagnosticSeverity.Warning : DiagnosticSeverity.Information,
    code: d.code,
    source: 'mcl',
    message: d.hint ? `${d.message}\nHint: ${d.hint}` : d.message,
  };
  if (related.length > 0) {
    if (features.relatedInformation) out.relatedInformation = related;
    // A client that cannot show related locations gets them in the message, so nothing is lost.
    else out.message += related.map((r, i) => `\n${relatedFiles[i]}:${r.location.range.start.line + 1}:${r.location.range.start.character + 1}: ${r.message}`).join('');
  }
  if (features.unnecessaryTag && UNNECESSARY.has(d.code)) out.tags = [DiagnosticTag.Unnecessary];
  if (d.fixes && d.fixes.length > 0) out.data = { fixes: d.fixes } satisfies DiagnosticData;
  return out;
}
