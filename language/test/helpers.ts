// Shared helpers for the language tests.

import { formatDiagnostic, LineIndex, type Diagnostic } from '../src/index';

/** Renders diagnostics in the one plain-text form of golden files (`formatDiagnostic`). */
export function renderDiagnostics(text: string, diagnostics: readonly Diagnostic[]): string {
  const index = new LineIndex(text);
  return diagnostics.map((d) => formatDiagnostic(d, index)).join('\n');
}

/** True when the tree still holds one of the parser's internal placeholders, which must never escape. */
export function hasInternalPlaceholder(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (Object.isFrozen(value)) return true;
  if (Array.isArray(value)) return value.some(hasInternalPlaceholder);
  const span = (value as { span?: { start: number } }).span;
  if (span && span.start < 0) return true;
  return Object.values(value).some(hasInternalPlaceholder);
}
