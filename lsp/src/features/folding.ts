// Folding ranges from the parsed tree: every declaration and nested block that
// spans lines, runs of line comments, block comments and the import list.

import type { Node, Span } from '@mcl/language';
import { FoldingRangeKind, type FoldingRange } from 'vscode-languageserver';
import type { ParsedDocument } from '../analysis';

export function foldingRanges(doc: ParsedDocument): FoldingRange[] {
  const out: FoldingRange[] = [];
  const seen = new Set<number>();
  const add = (span: Span, kind?: FoldingRangeKind): void => {
    const startLine = doc.lines.lineOf(span.start);
    const endLine = doc.lines.lineOf(Math.max(span.start, span.end - 1));
    // The closing brace stays visible: fold up to the line before it.
    const lastLine = kind === FoldingRangeKind.Comment || kind === FoldingRangeKind.Imports ? endLine : endLine - 1;
    if (lastLine <= startLine || seen.has(startLine)) return;
    seen.add(startLine);
    out.push({ startLine, endLine: lastLine, kind });
  };

  const ast = doc.ast;
  if (ast.imports.length > 1) {
    add({ start: ast.imports[0].span.start, end: ast.imports[ast.imports.length - 1].span.end }, FoldingRangeKind.Imports);
  }
  for (const d of ast.decls) {
    visitBlocks(d as Node, (span) => add(span), 0);
  }
  // Consecutive line comments fold together; a block comment folds alone.
  let run: Span | undefined;
  let runEndLine = -2;
  for (const c of ast.comments) {
    const line = doc.lines.lineOf(c.span.start);
    if (c.kind === 'block') {
      add(c.span, FoldingRangeKind.Comment);
      continue;
    }
    if (run && line === runEndLine + 1) {
      run = { start: run.start, end: c.span.end };
    } else {
      if (run) add(run, FoldingRangeKind.Comment);
      run = c.span;
    }
    runEndLine = line;
  }
  if (run) add(run, FoldingRangeKind.Comment);
  out.sort((a, b) => a.startLine - b.startLine);
  return out;
}

/** Calls `fold` for a node and every descendant whose text spans several lines. */
function visitBlocks(node: unknown, fold: (span: Span) => void, depth: number): void {
  if (depth > 64 || node === null || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const n of node) visitBlocks(n, fold, depth + 1);
    return;
  }
  const n = node as { kind?: string; span?: Span };
  if (n.kind && n.span && n.kind !== 'Ident' && n.kind !== 'QualifiedName') fold(n.span);
  for (const [key, value] of Object.entries(n)) {
    if (key === 'span') continue;
    if (value && typeof value === 'object') visitBlocks(value, fold, depth + 1);
  }
}
