// Generic traversal of the AST: every node with its parent chain, and the
// innermost node at an offset (for hover, completion and go-to-definition).
//
// The traversal is driven by the data rather than by a table of fields per
// node kind, so it keeps working when a node kind gains a field; children are
// visited in the order their fields were created by the parser, which follows
// the source.

import type { Node, SourceFile } from './ast';

/** Return `false` to skip the children of `node`. */
export type Visitor = (node: Node, parents: readonly Node[]) => boolean | void;

function isNode(v: unknown): v is Node {
  return typeof v === 'object' && v !== null && typeof (v as { kind?: unknown }).kind === 'string' && 'span' in v;
}

/** Calls `fn` with every direct child node of `node`, in source order. */
export function forEachChild(node: Node, fn: (child: Node) => void): void {
  for (const key in node) {
    if (key === 'span' || key === 'kind' || key === 'comments') continue;
    visitValue((node as unknown as Record<string, unknown>)[key], fn);
  }
}

function visitValue(v: unknown, fn: (child: Node) => void): void {
  if (typeof v !== 'object' || v === null) return;
  if (Array.isArray(v)) {
    for (const item of v) visitValue(item, fn);
    return;
  }
  if (isNode(v)) {
    fn(v);
    return;
  }
  // A plain grouping object such as `FileEntry.source`: its fields hold the nodes.
  for (const key in v) if (key !== 'kind') visitValue((v as Record<string, unknown>)[key], fn);
}

/** The direct children of `node`, in source order. */
export function childrenOf(node: Node): Node[] {
  const out: Node[] = [];
  forEachChild(node, (c) => out.push(c));
  return out;
}

/** Visits `root` and all its descendants depth-first, pre-order, each with its ancestors (outermost first). */
export function walk(root: Node, visitor: Visitor): void {
  const parents: Node[] = [];
  const visit = (node: Node): void => {
    if (visitor(node, parents) === false) return;
    parents.push(node);
    forEachChild(node, visit);
    parents.pop();
  };
  visit(root);
}

/**
 * The chain of nodes from `file` down to the innermost node whose span holds
 * `offset`. A node that ends exactly at `offset` counts when no other node
 * starts there, so a cursor just after a name still finds the name.
 */
export function nodeAt(file: SourceFile, offset: number): Node[] {
  const path: Node[] = [file];
  let current: Node = file;
  for (;;) {
    let inside: Node | undefined;
    let touching: Node | undefined;
    forEachChild(current, (c) => {
      if (inside) return;
      const { start, end } = c.span;
      if (start <= offset && offset < end) inside = c;
      else if (end === offset && start <= offset) touching ??= c;
    });
    const next = inside ?? touching;
    if (!next) return path;
    path.push(next);
    current = next;
  }
}
