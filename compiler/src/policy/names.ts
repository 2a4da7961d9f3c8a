// Resolution of the names written in policy rules.
//
// A name `x` in a rule of scope `s` means the instance `s.x` (or `x` when the
// rule is in the root system). When no instance has that id but instances
// exist below it (`s.x.web`, `s.x.db`), `x` is a nested system and stands for
// all of them. Because instance ids are sorted in code-unit order, the
// instances below a prefix `p.` form one contiguous run found by binary search.

import type { Graph } from './graph';

export const OUTSIDE = 'outside';

export interface Resolved {
  /** The id the name stands for (an instance or a nested system), or `outside`. */
  id: string;
  /** Node numbers: one instance, every instance of a nested system, or [n] for outside. */
  nodes: number[];
  isOutside: boolean;
}

export function qualify(scope: string, name: string): string {
  return scope === '' ? name : `${scope}.${name}`;
}

/** First position in `ids` whose id is >= `key` (code-unit order). */
function lowerBound(ids: readonly string[], key: string): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Node numbers of every instance whose id starts with `prefix` (which ends with a dot). */
export function nodesWithPrefix(ids: readonly string[], prefix: string): number[] {
  const nodes: number[] = [];
  for (let i = lowerBound(ids, prefix); i < ids.length && ids[i].startsWith(prefix); i++) nodes.push(i);
  return nodes;
}

/** Nodes of an instance id or of a system id (every instance below it); [] when there are none. */
export function nodesOf(g: Graph, id: string): number[] {
  const exact = g.index.get(id);
  if (exact !== undefined) return [exact];
  return nodesWithPrefix(g.ids, `${id}.`);
}

/** Resolves a rule name; undefined when it names nothing. `outside` is recognised only when `allowOutside`. */
export function resolveName(g: Graph, scope: string, name: string, allowOutside: boolean): Resolved | undefined {
  if (allowOutside && name === OUTSIDE) return { id: OUTSIDE, nodes: [g.n], isOutside: true };
  if (name === '') return undefined;
  const id = qualify(scope, name);
  const nodes = nodesOf(g, id);
  return nodes.length > 0 ? { id, nodes, isOutside: false } : undefined;
}

/** The names a rule of this scope can use: the first id segment below the scope. */
export function namesInScope(ids: readonly string[], scope: string): string[] {
  const prefix = scope === '' ? '' : `${scope}.`;
  const names = new Set<string>();
  for (let i = lowerBound(ids, prefix); i < ids.length && ids[i].startsWith(prefix); i++) {
    const rest = ids[i].slice(prefix.length);
    const dot = rest.indexOf('.');
    names.add(dot === -1 ? rest : rest.slice(0, dot));
  }
  return [...names].sort();
}

/** Levenshtein distance, bounded: returns `limit + 1` as soon as the distance exceeds `limit`. */
export function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let prev = new Array<number>(b.length + 1);
  let cur = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    let best = cur[0];
    for (let j = 1; j <= b.length; j++) {
      const cost = a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1;
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
      if (cur[j] < best) best = cur[j];
    }
    if (best > limit) return limit + 1;
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

/** Up to three candidates close to `name`, closest first (ties in name order). */
export function suggest(name: string, candidates: readonly string[]): string[] {
  const limit = Math.max(1, Math.floor(name.length / 3));
  const lower = name.toLowerCase();
  return candidates
    .map((c) => ({ c, d: editDistance(lower, c.toLowerCase(), limit) }))
    .filter((x) => x.d <= limit)
    .sort((x, y) => x.d - y.d || (x.c < y.c ? -1 : x.c > y.c ? 1 : 0))
    .slice(0, 3)
    .map((x) => x.c);
}
