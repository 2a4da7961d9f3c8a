// Diagnostics are data. Every stage (lexer, parser, resolver, checker, policy
// checker, planner) reports problems as `Diagnostic` values with a stable code
// from a registry; nothing in the language or compiler layers throws on bad
// input. Renderers (code frame, JSON, SARIF, LSP) live in the layers above and
// read these values without reinterpreting them.

import type { Span } from './ast';
import type { LineIndex } from './text';

export type Severity = 'error' | 'warning' | 'info';

/** Compilation stages, used to group diagnostic codes. */
export type Stage = 'syntax' | 'resolve' | 'type' | 'compose' | 'policy' | 'target' | 'plan';

export interface RelatedLocation {
  file: string;
  span: Span;
  message: string;
}

/** A text edit in one file: replace `span` with `newText`. */
export interface TextEdit {
  file: string;
  span: Span;
  newText: string;
}

/** A machine-applicable fix, offered as a quick fix in the editor. */
export interface Fix {
  title: string;
  edits: TextEdit[];
}

export interface Diagnostic {
  /** Stable code such as `MCL0101`; documented in spec/diagnostics.md. */
  code: string;
  severity: Severity;
  /** What is wrong, in one sentence. */
  message: string;
  /** Workspace-relative path (forward slashes), or `std:<module>` for the standard library. */
  file: string;
  span: Span;
  /** How to fix it, in one sentence. */
  hint?: string;
  /** Other places that explain the problem: a previous definition, each step of a counterexample path. */
  related?: RelatedLocation[];
  fixes?: Fix[];
}

/** One entry of a stage's code registry. */
export interface DiagnosticInfo {
  code: string;
  stage: Stage;
  severity: Severity;
  /** Short title used in documentation and SARIF rule descriptions. */
  title: string;
}

/**
 * Code ranges by stage:
 *   MCL01xx syntax (lexer and parser)
 *   MCL02xx resolve (modules, imports, names)
 *   MCL03xx type (message types, parameters, values)
 *   MCL04xx compose (components, systems, wiring)
 *   MCL05xx policy (reachability, exposure, flow, budgets, call cycles)
 *   MCL06xx target (backend capabilities, host capacity)
 *   MCL07xx plan (plan construction, state)
 */
export const STAGE_PREFIX: Record<Stage, string> = {
  syntax: 'MCL01',
  resolve: 'MCL02',
  type: 'MCL03',
  compose: 'MCL04',
  policy: 'MCL05',
  target: 'MCL06',
  plan: 'MCL07',
};

/** What a diagnostic may carry besides its code, message and place. */
export interface DiagnosticExtra {
  hint?: string;
  related?: RelatedLocation[];
  fixes?: Fix[];
  /** Overrides the registry's default severity (used sparingly, e.g. for warnings that a flag turns into errors). */
  severity?: Severity;
}

/**
 * The one constructor of diagnostics: the code and default severity come from
 * a registry entry (`Codes.X`, language/src/codes.ts), never from a string.
 * Empty lists of related locations or fixes are left out.
 */
export function makeDiagnostic(info: DiagnosticInfo, message: string, file: string, span: Span, extra: DiagnosticExtra = {}): Diagnostic {
  const d: Diagnostic = {
    code: info.code,
    severity: extra.severity ?? info.severity,
    message,
    file,
    span: { start: span.start, end: span.end },
  };
  if (extra.hint) d.hint = extra.hint;
  if (extra.related && extra.related.length) d.related = extra.related;
  if (extra.fixes && extra.fixes.length) d.fixes = extra.fixes;
  return d;
}

/**
 * A diagnostic as plain text: `file:line:col: severity CODE: message` (the
 * header of mclc's code frames), then `  hint: ...` and a `  fix: <title>` line
 * per quick fix. Golden files of diagnostics and the examples of
 * spec/diagnostics.md are written in this one form. `index` is the line index
 * of the diagnostic's file.
 */
export function formatDiagnostic(d: Diagnostic, index: LineIndex): string {
  const p = index.position(d.span.start);
  let s = `${d.file}:${p.line}:${p.column}: ${d.severity} ${d.code}: ${d.message}`;
  if (d.hint) s += `\n  hint: ${d.hint}`;
  for (const f of d.fixes ?? []) s += `\n  fix: ${f.title}`;
  return s;
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

/** Sorts diagnostics by file, then position, then code, so output is deterministic. */
export function sortDiagnostics(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  return [...diagnostics].sort(
    (a, b) =>
      (a.file < b.file ? -1 : a.file > b.file ? 1 : 0) ||
      a.span.start - b.span.start ||
      a.span.end - b.span.end ||
      (a.code < b.code ? -1 : a.code > b.code ? 1 : 0) ||
      (a.message < b.message ? -1 : a.message > b.message ? 1 : 0),
  );
}
