// The instance graph the policy rules are checked on, in compressed sparse
// row form so that graphs of tens of thousands of instances are traversed with
// typed arrays and iterative loops (no recursion, no per-node objects).
//
// Nodes 0..n-1 are the instances in id order (plain code-unit order, so the
// instances of a nested system are contiguous); node n is `outside`, whose
// out-edges are the exposures. An edge is labelled with what it stands for: a
// channel index (>= 0) into the sorted channel list, or an exposure index k
// encoded as -(k + 1).

import type { PlanChannel, PlanExposure, PlanInstance } from '@mcl/plan';

export interface Graph {
  /** Number of instances; node `n` is `outside`. */
  n: number;
  ids: string[];
  index: Map<string, number>;
  /** Out-edges of node v are positions start[v]..start[v+1]-1 of `to` and `edge`. */
  start: Int32Array;
  to: Int32Array;
  edge: Int32Array;
}

export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Instance ids sorted in code-unit order and their node numbers. */
export function indexInstances(instances: readonly PlanInstance[]): { ids: string[]; index: Map<string, number> } {
  const ids = [...new Set(instances.map((i) => i.id))].sort(compareStrings);
  const index = new Map<string, number>();
  ids.forEach((id, i) => index.set(id, i));
  return { ids, index };
}

export interface EdgeSpec {
  from: number;
  to: number;
  /** Channel index, or -(exposure index + 1). */
  edge: number;
}

/**
 * Builds the CSR graph from an edge list. Out-edges of a node are ordered by
 * target node, then by edge label, so that every traversal is deterministic.
 */
export function buildGraph(ids: string[], index: Map<string, number>, edges: EdgeSpec[]): Graph {
  const n = ids.length;
  const nodes = n + 1;
  const start = new Int32Array(nodes + 1);
  for (const e of edges) start[e.from + 1]++;
  for (let v = 0; v < nodes; v++) start[v + 1] += start[v];
  const sorted = [...edges].sort((a, b) => a.from - b.from || a.to - b.to || a.edge - b.edge);
  const to = new Int32Array(sorted.length);
  const edge = new Int32Array(sorted.length);
  sorted.forEach((e, i) => {
    to[i] = e.to;
    edge[i] = e.edge;
  });
  return { n, ids, index, start, to, edge };
}

/** One step of a path: the edge taken (channel or exposure) and the node reached. */
export interface PathStep {
  edge: number;
  node: number;
}

export interface Path {
  start: number;
  steps: PathStep[];
}

export interface BfsOptions {
  /** Nodes the search may not enter (their out-edges are never followed). */
  blocked?: Uint8Array;
  /** Nodes whose discovery ends the search. */
  targets: Uint8Array;
}

/**
 * Shortest path of at least one edge from any of `sources` to any target.
 * Sources are expanded in the given order at distance 0 without being marked
 * as visited, so a source that is itself a target is found only through a
 * cycle, never by the empty path. Returns undefined when no target is reachable.
 */
export function shortestPath(g: Graph, sources: readonly number[], opts: BfsOptions): Path | undefined {
  const nodes = g.n + 1;
  const dist = new Int32Array(nodes).fill(-1);
  const parent = new Int32Array(nodes);
  const parentEdge = new Int32Array(nodes);
  // A node can be queued twice (once as a source, once when reached), so the
  // queue holds up to 2 * nodes entries and records the level of each entry.
  const queue = new Int32Array(2 * nodes);
  const level = new Int32Array(2 * nodes);
  let head = 0;
  let tail = 0;
  for (const s of sources) {
    queue[tail] = s;
    level[tail++] = 0;
  }
  const { blocked, targets } = opts;
  while (head < tail) {
    const u = queue[head];
    const d = level[head++];
    for (let i = g.start[u]; i < g.start[u + 1]; i++) {
      const v = g.to[i];
      if (dist[v] !== -1 || (blocked && blocked[v])) continue;
      dist[v] = d + 1;
      parent[v] = u;
      parentEdge[v] = g.edge[i];
      if (targets[v]) return rebuild(v, dist, parent, parentEdge);
      queue[tail] = v;
      level[tail++] = d + 1;
    }
  }
  return undefined;
}

function rebuild(target: number, dist: Int32Array, parent: Int32Array, parentEdge: Int32Array): Path {
  // Walk back exactly dist[target] edges: a source that was also reached later
  // has a parent of its own, which must not be followed past distance 0.
  const steps: PathStep[] = [];
  let v = target;
  for (let k = dist[target]; k > 0; k--) {
    steps.push({ edge: parentEdge[v], node: v });
    v = parent[v];
  }
  steps.reverse();
  return { start: v, steps };
}

/**
 * Strongly connected components (Tarjan's algorithm with an explicit stack).
 * Returns the component number of every node; components are numbered in
 * reverse topological order of the condensation (a component's successors
 * have smaller numbers).
 */
export function stronglyConnected(g: Graph, nodes: number): { comp: Int32Array; count: number } {
  const index = new Int32Array(nodes).fill(-1);
  const low = new Int32Array(nodes);
  const comp = new Int32Array(nodes).fill(-1);
  const onStack = new Uint8Array(nodes);
  const stack = new Int32Array(nodes);
  let sp = 0;
  const callNode = new Int32Array(nodes);
  const callEdge = new Int32Array(nodes);
  let cp = 0;
  let counter = 0;
  let count = 0;
  for (let root = 0; root < nodes; root++) {
    if (index[root] !== -1) continue;
    callNode[cp] = root;
    callEdge[cp++] = g.start[root];
    index[root] = low[root] = counter++;
    stack[sp++] = root;
    onStack[root] = 1;
    while (cp > 0) {
      const u = callNode[cp - 1];
      const i = callEdge[cp - 1];
      if (i < g.start[u + 1]) {
        callEdge[cp - 1] = i + 1;
        const v = g.to[i];
        if (v >= nodes) continue;
        if (index[v] === -1) {
          index[v] = low[v] = counter++;
          stack[sp++] = v;
          onStack[v] = 1;
          callNode[cp] = v;
          callEdge[cp++] = g.start[v];
        } else if (onStack[v] && index[v] < low[u]) {
          low[u] = index[v];
        }
        continue;
      }
      cp--;
      if (cp > 0) {
        const p = callNode[cp - 1];
        if (low[u] < low[p]) low[p] = low[u];
      }
      if (low[u] === index[u]) {
        let w: number;
        do {
          w = stack[--sp];
          onStack[w] = 0;
          comp[w] = count;
        } while (w !== u);
        count++;
      }
    }
  }
  return { comp, count };
}

/** Builds the graph of instances joined by channels (and `outside` by exposures). */
export function channelGraph(
  ids: string[],
  index: Map<string, number>,
  channels: readonly PlanChannel[],
  exposures: readonly PlanExposure[],
  keep: (c: PlanChannel) => boolean = () => true,
): Graph {
  const edges: EdgeSpec[] = [];
  channels.forEach((c, k) => {
    const from = index.get(c.from.instance);
    const to = index.get(c.to.instance);
    if (from === undefined || to === undefined || !keep(c)) return;
    edges.push({ from, to, edge: k });
  });
  exposures.forEach((x, k) => {
    const to = index.get(x.instance);
    if (to === undefined) return;
    edges.push({ from: ids.length, to, edge: -(k + 1) });
  });
  return buildGraph(ids, index, edges);
}
