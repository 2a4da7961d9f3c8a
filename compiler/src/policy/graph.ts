// The instance graph the policy rules are checked on, in compressed sparse
// row form so that graphs of tens of thousands of instances are traversed with
// typed arrays and iterative loops (no recursion, no per-node objects).
//
// Nodes 0..n-1 are the instances in id order (plain code-unit order, so the
// instances of a nested system are contiguous); node n is `outside`, whose
// out-edges are the exposures. An edge is labelled with what it stands for: a
// channel index (>= 0) into the sorted channel list, or an exposure index k
// encoded as -(k + 1).

import type { PlanInstance } from '@mcl/plan';

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

function isSorted(xs: readonly string[]): boolean {
  for (let i = 1; i < xs.length; i++) if (!(xs[i - 1] < xs[i])) return false;
  return true;
}

/** Sorts in code-unit order, skipping the sort when the list already is (plans list everything sorted). */
export function sortedStrings(xs: string[]): string[] {
  return isSorted(xs) ? xs : [...new Set(xs)].sort(compareStrings);
}

/** Instance ids sorted in code-unit order and their node numbers. */
export function indexInstances(instances: readonly PlanInstance[]): { ids: string[]; index: Map<string, number> } {
  const ids = sortedStrings(instances.map((i) => i.id));
  const index = new Map<string, number>();
  ids.forEach((id, i) => index.set(id, i));
  return { ids, index };
}

/** A growable list of edges in parallel typed arrays. */
export class EdgeList {
  from = new Int32Array(16);
  to = new Int32Array(16);
  edge = new Int32Array(16);
  length = 0;

  /** `edge` is a channel index, or -(exposure index + 1). */
  push(from: number, to: number, edge: number): void {
    if (this.length === this.from.length) {
      const grow = (a: Int32Array) => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.from = grow(this.from);
      this.to = grow(this.to);
      this.edge = grow(this.edge);
    }
    this.from[this.length] = from;
    this.to[this.length] = to;
    this.edge[this.length++] = edge;
  }
}

/**
 * Builds the CSR graph from an edge list. Out-edges of a node are ordered by
 * target node, then by edge label, so that every traversal is deterministic.
 */
export function buildGraph(ids: string[], index: Map<string, number>, edges: EdgeList): Graph {
  const n = ids.length;
  const nodes = n + 1;
  const m = edges.length;
  const start = new Int32Array(nodes + 1);
  for (let k = 0; k < m; k++) start[edges.from[k] + 1]++;
  for (let v = 0; v < nodes; v++) start[v + 1] += start[v];
  const fill = start.slice(0, nodes);
  const to = new Int32Array(m);
  const edge = new Int32Array(m);
  for (let k = 0; k < m; k++) {
    const at = fill[edges.from[k]]++;
    to[at] = edges.to[k];
    edge[at] = edges.edge[k];
  }
  // Out-degrees are small, so an insertion sort per node beats sorting the whole edge list.
  for (let v = 0; v < nodes; v++) {
    for (let i = start[v] + 1; i < start[v + 1]; i++) {
      const t = to[i];
      const l = edge[i];
      let j = i - 1;
      while (j >= start[v] && (to[j] > t || (to[j] === t && edge[j] > l))) {
        to[j + 1] = to[j];
        edge[j + 1] = edge[j];
        j--;
      }
      to[j + 1] = t;
      edge[j + 1] = l;
    }
  }
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
  const w = workspace(nodes, sources.length);
  const { seen, dist, parent, parentEdge, queue, level } = w;
  const stamp = w.stamp;
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
      if (seen[v] === stamp || (blocked && blocked[v])) continue;
      seen[v] = stamp;
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

/**
 * Buffers of the breadth-first search, reused across searches: a checker run
 * makes one search per rule, and allocating them each time on graphs of tens
 * of thousands of nodes dominated the run time through garbage collection.
 * `seen[v] === stamp` marks the nodes of the current search, so nothing needs
 * clearing between searches. Searches never nest, so one set suffices.
 */
interface Workspace {
  stamp: number;
  seen: Int32Array;
  dist: Int32Array;
  parent: Int32Array;
  parentEdge: Int32Array;
  queue: Int32Array;
  level: Int32Array;
}

let shared: Workspace | undefined;

function workspace(nodes: number, sources: number): Workspace {
  // A node is queued at most once when reached plus once per occurrence in `sources`.
  const queueSize = nodes + sources;
  if (!shared || shared.seen.length < nodes || shared.queue.length < queueSize || shared.stamp >= 0x7ffffff0) {
    const size = Math.max(nodes, shared?.seen.length ?? 0);
    const qsize = Math.max(queueSize, size * 2);
    shared = {
      stamp: 0,
      seen: new Int32Array(size),
      dist: new Int32Array(size),
      parent: new Int32Array(size),
      parentEdge: new Int32Array(size),
      queue: new Int32Array(qsize),
      level: new Int32Array(qsize),
    };
  }
  shared.stamp++;
  return shared;
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

/**
 * Builds the graph of instances joined by channels (and `outside` by
 * exposures) from the endpoint nodes of each channel and exposure (-1 for an
 * endpoint that is not in the plan; such edges are left out).
 */
export function channelGraph(
  ids: string[],
  index: Map<string, number>,
  channelFrom: Int32Array,
  channelTo: Int32Array,
  exposureTo: Int32Array,
  keep: (channel: number) => boolean = () => true,
): Graph {
  const edges = new EdgeList();
  for (let k = 0; k < channelFrom.length; k++) {
    if (channelFrom[k] < 0 || channelTo[k] < 0 || !keep(k)) continue;
    edges.push(channelFrom[k], channelTo[k], k);
  }
  for (let k = 0; k < exposureTo.length; k++) {
    if (exposureTo[k] < 0) continue;
    edges.push(ids.length, exposureTo[k], -(k + 1));
  }
  return buildGraph(ids, index, edges);
}
