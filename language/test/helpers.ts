// Shared helpers for the language tests.

import { expect } from 'vitest';
import { formatDiagnostic, LineIndex, parse, type Diagnostic, type ParseResult } from '../src/index';

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

/**
 * Parses `text` with the fast path (falling back as `parse` does) and with the
 * Chevrotain parser alone, and asserts that both give the same tree, field order
 * included, and the same diagnostics. Returns the default parse.
 */
export function compareEngines(text: string, path: string): ParseResult {
  const r = parse(text, path);
  const ref = parse(text, path, { engine: 'chevrotain' });
  expect(ref.engine).toBe('chevrotain');
  const a = JSON.stringify(r.file);
  const b = JSON.stringify(ref.file);
  if (a !== b) expect(r.file).toEqual(ref.file);
  expect(a).toBe(b);
  expect(r.diagnostics).toEqual(ref.diagnostics);
  return r;
}
