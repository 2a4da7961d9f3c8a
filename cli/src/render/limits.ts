// Bounds on what the diagnostic renderers (code frames, JSON, SARIF) print,
// so that output grows with what people can read, never with the size of a
// line: a 1 MB minified line that holds a few thousand mistakes must not
// print the line a few thousand times.
//
// Three bounds, all applied here and nowhere else:
// - which diagnostics are shown: at most MAX_PER_LINE whose span starts on the
//   same line and MAX_DIAGNOSTICS in total (errors before warnings before
//   notes when the total is cut), the rest counted in an "and N more" summary;
//   the counts (`Found N errors`, `error_count`) and the exit code still cover
//   every diagnostic;
// - how much of a source line is shown: lines longer than LONG_LINE are cut
//   to a window of LINE_WINDOW code units around the span, the cut marked
//   with an ellipsis;
// - how long a message is: a quoted name longer than MAX_QUOTED (the
//   compiler quotes what it read, and a name can be a megabyte long) is cut,
//   and a whole message to MAX_MESSAGE.

import { LineIndex, type Diagnostic } from '@mcl/language';

/** Diagnostics shown in total unless the caller asks for another number (`--max-diagnostics`). */
export const MAX_DIAGNOSTICS = 200;
/** Diagnostics shown whose span starts on one line. */
export const MAX_PER_LINE = 10;
/** Related locations shown per diagnostic. */
export const MAX_RELATED = 20;
/** Lines up to this many UTF-16 code units are shown whole. */
export const LONG_LINE = 200;
/** Code units of a long line shown around a span, and how many of them come before the span. */
export const LINE_WINDOW = 160;
const WINDOW_BEFORE = 40;
/** Longest message printed, and longest quoted part of one. */
export const MAX_MESSAGE = 2000;
export const MAX_QUOTED = 100;
export const ELLIPSIS = '…';

export interface DiagnosticLimits {
  /** At most this many diagnostics in total; 0 lifts every count limit (per line, in total, related). Default MAX_DIAGNOSTICS. */
  maxDiagnostics?: number;
}

/** A diagnostic as shown: its related locations cut to MAX_RELATED, with the number left out. */
export interface ShownDiagnostic extends Diagnostic {
  relatedOmitted: number;
}

export interface OmittedDiagnostics {
  count: number;
  error_count: number;
  warning_count: number;
  info_count: number;
  /** "and N more ..." for people, the same sentence in every output format. */
  summary: string;
}

export interface LimitedDiagnostics {
  shown: ShownDiagnostic[];
  /** What was left out, or null when everything is shown. */
  omitted: OmittedDiagnostics | null;
}

const RANK = { error: 0, warning: 1, info: 2 } as const;

/**
 * The diagnostics to show, in their original order: at most MAX_PER_LINE per
 * starting line, then at most `maxDiagnostics` in total, preferring errors.
 */
export function limitDiagnostics(diagnostics: readonly Diagnostic[], texts: ReadonlyMap<string, string>, limits: DiagnosticLimits = {}): LimitedDiagnostics {
  const max = limits.maxDiagnostics ?? MAX_DIAGNOSTICS;
  if (max === 0) return { shown: diagnostics.map((d) => ({ ...d, relatedOmitted: 0 })), omitted: null };
  const indexes = new Map<string, LineIndex | null>();
  const lineOf = (d: Diagnostic): string => {
    if (!indexes.has(d.file)) {
      const t = texts.get(d.file);
      indexes.set(d.file, t === undefined ? null : new LineIndex(t));
    }
    const idx = indexes.get(d.file);
    return `${d.file}\u0000${idx ? idx.lineOf(d.span.start) : 0}`;
  };
  const perLine = new Map<string, number>();
  const candidates: number[] = [];
  diagnostics.forEach((d, i) => {
    const key = lineOf(d);
    const n = perLine.get(key) ?? 0;
    perLine.set(key, n + 1);
    if (n < MAX_PER_LINE) candidates.push(i);
  });
  let kept = candidates;
  if (kept.length > max) {
    kept = [...kept].sort((a, b) => RANK[diagnostics[a].severity] - RANK[diagnostics[b].severity] || a - b).slice(0, max);
    kept.sort((a, b) => a - b);
  }
  const keep = new Set(kept);
  const shown = kept.map((i) => {
    const d = diagnostics[i];
    const related = d.related ?? [];
    if (related.length <= MAX_RELATED) return { ...d, relatedOmitted: 0 };
    return { ...d, related: related.slice(0, MAX_RELATED), relatedOmitted: related.length - MAX_RELATED };
  });
  if (kept.length === diagnostics.length) return { shown, omitted: null };
  const left = diagnostics.filter((_, i) => !keep.has(i));
  const by = (sev: Diagnostic['severity']) => left.filter((d) => d.severity === sev).length;
  const omitted = { count: left.length, error_count: by('error'), warning_count: by('warning'), info_count: by('info') };
  return { shown, omitted: { ...omitted, summary: omittedSummary(omitted, max) } };
}

function omittedSummary(o: { count: number; error_count: number; warning_count: number; info_count: number }, max: number): string {
  const parts: string[] = [];
  if (o.error_count) parts.push(`${o.error_count} ${o.error_count === 1 ? 'error' : 'errors'}`);
  if (o.warning_count) parts.push(`${o.warning_count} ${o.warning_count === 1 ? 'warning' : 'warnings'}`);
  if (o.info_count) parts.push(`${o.info_count} ${o.info_count === 1 ? 'note' : 'notes'}`);
  return (
    `... and ${o.count} more ${o.count === 1 ? 'diagnostic' : 'diagnostics'} not shown (${parts.join(', ')}): ` +
    `at most ${MAX_PER_LINE} are shown per line and ${max} in total; pass --max-diagnostics 0 to show them all.`
  );
}

/** "... and N more related locations", for a diagnostic whose related list was cut. */
export function relatedOmittedSummary(n: number): string {
  return `... and ${n} more related ${n === 1 ? 'location' : 'locations'}`;
}

export interface ClippedLine {
  /** The line, or the window of it that is shown, with an ellipsis where it was cut. */
  text: string;
  /** UTF-16 offsets into `text` of the highlighted part. */
  from: number;
  to: number;
}

const isHigh = (c: number) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c: number) => c >= 0xdc00 && c <= 0xdfff;

/**
 * A source line cut to a window around the highlighted part [from, to)
 * (UTF-16 offsets into the line). Lines up to LONG_LINE code units come back
 * whole; in a longer one the window starts a little before `from`, and a
 * highlight running past the window's end runs on over the ellipsis.
 */
export function clipLine(line: string, from: number, to: number): ClippedLine {
  from = Math.max(0, Math.min(from, line.length));
  to = Math.max(from, Math.min(to, line.length));
  if (line.length <= LONG_LINE) return { text: line, from, to };
  let start = Math.max(0, from - WINDOW_BEFORE);
  let end = Math.min(line.length, start + LINE_WINDOW);
  if (end === line.length) start = Math.max(0, end - LINE_WINDOW);
  // Never cut a surrogate pair in two.
  if (start > 0 && isLow(line.charCodeAt(start))) start++;
  if (end < line.length && isHigh(line.charCodeAt(end - 1))) end--;
  const prefix = start > 0 ? ELLIPSIS : '';
  const suffix = end < line.length ? ELLIPSIS : '';
  const text = prefix + line.slice(start, end) + suffix;
  const a = prefix.length + Math.min(from - start, end - start);
  const b = to > end ? text.length : prefix.length + Math.max(0, Math.min(to - start, end - start));
  return { text, from: a, to: Math.max(a, b) };
}

/** A message with long quoted parts cut, and at most MAX_MESSAGE code units long. */
export function clipMessage(message: string): string {
  let m = message;
  if (m.length > MAX_QUOTED) {
    m = m.replace(/`([^`]+)`/g, (whole, inner: string) => (inner.length > MAX_QUOTED ? '`' + safeSlice(inner, MAX_QUOTED - 20) + ELLIPSIS + '`' : whole));
  }
  return m.length > MAX_MESSAGE ? safeSlice(m, MAX_MESSAGE) + ELLIPSIS : m;
}

function safeSlice(s: string, n: number): string {
  return isHigh(s.charCodeAt(n - 1)) ? s.slice(0, n - 1) : s.slice(0, n);
}
