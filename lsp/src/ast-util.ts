// Small queries over the AST that several features share.

import type { ComponentDecl, Node, SourceFile, Span, SystemDecl } from '@mcl/language';

/** Finds the node of a given kind whose `name` identifier has exactly this span. */
export function findNamed<K extends Node['kind']>(
  root: SourceFile | undefined,
  kind: K,
  nameSpan: Span,
): Extract<Node, { kind: K }> | undefined {
  if (!root) return undefined;
  let found: Extract<Node, { kind: K }> | undefined;
  walk(root, (n) => {
    if (found) return false;
    const span = (n as { span?: Span }).span;
    // Skip subtrees that cannot contain the name.
    if (span && (span.start > nameSpan.start || span.end < nameSpan.end)) return false;
    const name = (n as { name?: { span?: Span } }).name;
    if (n.kind === kind && name?.span && name.span.start === nameSpan.start && name.span.end === nameSpan.end) {
      found = n as Extract<Node, { kind: K }>;
      return false;
    }
    return true;
  });
  return found;
}

/** The innermost nodes containing an offset, outermost first. */
export function nodesAt(root: SourceFile, offset: number): Node[] {
  const path: Node[] = [];
  walk(root, (n) => {
    const span = (n as { span?: Span }).span;
    if (!span || offset < span.start || offset > span.end) return false;
    path.push(n);
    return true;
  });
  return path;
}

/** Depth-first walk over AST nodes; `visit` returns false to skip a node's children. */
export function walk(node: Node, visit: (n: Node) => boolean, depth = 0): void {
  if (depth > 200) return;
  if (!visit(node)) return;
  for (const [key, value] of Object.entries(node)) {
    if (key === 'span' || value === null || typeof value !== 'object') continue;
    if (Array.isArray(value)) {
      for (const v of value) if (v && typeof v === 'object' && 'kind' in v) walk(v as Node, visit, depth + 1);
    } else if ('kind' in value) walk(value as Node, visit, depth + 1);
    else if (key === 'source') {
      // FileEntry.source is a small tagged object, not a node.
      for (const v of Object.values(value)) if (v && typeof v === 'object' && 'kind' in v) walk(v as Node, visit, depth + 1);
    }
  }
}

export function findComponent(file: SourceFile | undefined, nameSpan: Span): ComponentDecl | undefined {
  return file?.decls.find((d): d is ComponentDecl => d.kind === 'ComponentDecl' && d.name.span.start === nameSpan.start);
}

export function findSystem(file: SourceFile | undefined, nameSpan: Span): SystemDecl | undefined {
  return file?.decls.find((d): d is SystemDecl => d.kind === 'SystemDecl' && d.name.span.start === nameSpan.start);
}

/** Formats a byte count the way sources write it (`256MiB`). */
export function formatSize(bytes: number): string {
  const units: [string, number][] = [
    ['TiB', 2 ** 40],
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ];
  for (const [u, n] of units) if (bytes >= n && bytes % n === 0) return `${bytes / n}${u}`;
  return `${bytes}B`;
}
