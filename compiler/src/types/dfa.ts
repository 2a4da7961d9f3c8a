// Compiles a protocol's `order` expression (a regular expression over
// operation names) into the minimal deterministic automaton the broker runs.
//
// Thompson construction gives an NFA, the subset construction a DFA over the
// operations the channel carries, Moore's partition refinement minimises it,
// and a breadth-first renumbering with operations visited in name order makes
// the result canonical: equal languages give identical automata, which keeps
// plans byte-identical. The automaton is partial (no dead state): an
// operation without a transition is out of order.

import type { OrderExpr } from '@mcl/language';
import type { OrderAutomaton } from '@mcl/plan';

/** The most states the minimal automaton may have; beyond it the order is reported as too complex. */
export const MAX_DFA_STATES = 4096;

/**
 * Subset construction stops beyond this many (unminimised) states: a bound on
 * the work, well above MAX_DFA_STATES because the limit applies to the
 * minimal automaton, and a subset automaton can be far larger than its
 * minimal form (`((a|b)* a (a|b)...) | (a|b)*` has thousands of subset states
 * and one minimal state).
 */
export const MAX_SUBSET_STATES = 16 * MAX_DFA_STATES;

interface Nfa {
  /** eps[s] = states reachable by one epsilon move. */
  eps: number[][];
  /** moves[s] = [op, target] pairs. */
  moves: [string, number][][];
  start: number;
  accept: number;
}

function buildNfa(expr: OrderExpr): Nfa {
  const eps: number[][] = [];
  const moves: [string, number][][] = [];
  const state = () => {
    eps.push([]);
    moves.push([]);
    return eps.length - 1;
  };
  // Iterative-safe recursion: order expressions are small and the parser bounds their depth.
  const frag = (e: OrderExpr): [number, number] => {
    switch (e.kind) {
      case 'OrderOp': {
        const s = state();
        const t = state();
        moves[s].push([e.name.name, t]);
        return [s, t];
      }
      case 'OrderSeq': {
        const s = state();
        let cur = s;
        for (const item of e.items) {
          const [a, b] = frag(item);
          eps[cur].push(a);
          cur = b;
        }
        return [s, cur];
      }
      case 'OrderAlt': {
        const s = state();
        const t = state();
        for (const o of e.options) {
          const [a, b] = frag(o);
          eps[s].push(a);
          eps[b].push(t);
        }
        if (e.options.length === 0) eps[s].push(t);
        return [s, t];
      }
      case 'OrderRepeat': {
        const s = state();
        const t = state();
        const [a, b] = frag(e.expr);
        eps[s].push(a);
        if (e.op !== '+') eps[s].push(t);
        eps[b].push(t);
        if (e.op !== '?') eps[b].push(a);
        return [s, t];
      }
      default:
        // An unknown node (from a newer AST): treat it as the empty sequence.
        {
          const s = state();
          return [s, s];
        }
    }
  };
  const [start, accept] = frag(expr);
  return { eps, moves, start, accept };
}

function closure(nfa: Nfa, states: number[]): number[] {
  const seen = new Set<number>(states);
  const stack = [...states];
  while (stack.length) {
    const s = stack.pop()!;
    for (const t of nfa.eps[s]) {
      if (!seen.has(t)) {
        seen.add(t);
        stack.push(t);
      }
    }
  }
  return [...seen].sort((a, b) => a - b);
}

/**
 * The minimal canonical DFA of `expr` restricted to `ops` (operations outside
 * the set are dropped, as a channel's `allow` list removes them), or
 * `undefined` when the minimal automaton has more than MAX_DFA_STATES states
 * (or the subset construction more than MAX_SUBSET_STATES).
 */
export function compileOrder(expr: OrderExpr, ops: readonly string[]): OrderAutomaton | undefined {
  const alphabet = [...new Set(ops)].sort();
  const allowed = new Set(alphabet);
  const nfa = buildNfa(expr);

  // Subset construction.
  const key = (set: number[]) => set.join(',');
  const startSet = closure(nfa, [nfa.start]);
  const ids = new Map<string, number>([[key(startSet), 0]]);
  const sets: number[][] = [startSet];
  const trans: Map<string, number>[] = [];
  for (let i = 0; i < sets.length; i++) {
    if (sets.length > MAX_SUBSET_STATES) return undefined;
    const byOp = new Map<string, number[]>();
    for (const s of sets[i]) {
      for (const [op, t] of nfa.moves[s]) {
        if (!allowed.has(op)) continue;
        let l = byOp.get(op);
        if (!l) byOp.set(op, (l = []));
        l.push(t);
      }
    }
    const row = new Map<string, number>();
    for (const op of alphabet) {
      const targets = byOp.get(op);
      if (!targets) continue;
      const c = closure(nfa, targets);
      const k = key(c);
      let id = ids.get(k);
      if (id === undefined) {
        id = sets.length;
        ids.set(k, id);
        sets.push(c);
      }
      row.set(op, id);
    }
    trans.push(row);
  }
  const n = sets.length;
  const accepting = sets.map((s) => s.includes(nfa.accept));

  // Remove states from which no accepting state is reachable: they only delay a denial.
  const live = new Array<boolean>(n).fill(false);
  const rev: number[][] = Array.from({ length: n }, () => []);
  for (let s = 0; s < n; s++) for (const t of trans[s].values()) rev[t].push(s);
  const stack: number[] = [];
  for (let s = 0; s < n; s++) if (accepting[s]) { live[s] = true; stack.push(s); }
  while (stack.length) {
    const s = stack.pop()!;
    for (const p of rev[s]) if (!live[p]) { live[p] = true; stack.push(p); }
  }
  if (!live[0]) return { accepting: [], transitions: [{}] };

  // Moore minimisation: refine the partition {accepting, non-accepting} by transition signatures.
  let cls = new Array<number>(n);
  for (let s = 0; s < n; s++) cls[s] = live[s] ? (accepting[s] ? 1 : 0) : -1;
  let count = -1;
  for (;;) {
    const sig = new Map<string, number>();
    const next = new Array<number>(n).fill(-1);
    for (let s = 0; s < n; s++) {
      if (!live[s]) continue;
      let k = String(cls[s]);
      for (const op of alphabet) {
        const t = trans[s].get(op);
        k += '|' + (t === undefined || !live[t] ? -1 : cls[t]);
      }
      let c = sig.get(k);
      if (c === undefined) sig.set(k, (c = sig.size));
      next[s] = c;
    }
    cls = next;
    if (sig.size === count) break;
    count = sig.size;
  }
  if (count > MAX_DFA_STATES) return undefined;

  // Canonical numbering: breadth-first from the start class, operations in name order.
  const order = new Map<number, number>([[cls[0], 0]]);
  const rep = new Map<number, number>();
  for (let s = 0; s < n; s++) if (live[s] && !rep.has(cls[s])) rep.set(cls[s], s);
  const queue = [cls[0]];
  const transitions: Record<string, number>[] = [];
  const acc: number[] = [];
  for (let qi = 0; qi < queue.length; qi++) {
    const c = queue[qi];
    const s = rep.get(c)!;
    const row: Record<string, number> = {};
    for (const op of alphabet) {
      const t = trans[s].get(op);
      if (t === undefined || !live[t]) continue;
      let id = order.get(cls[t]);
      if (id === undefined) {
        id = order.size;
        order.set(cls[t], id);
        queue.push(cls[t]);
      }
      row[op] = id;
    }
    transitions.push(row);
    if (accepting[s]) acc.push(qi);
  }
  return { accepting: acc, transitions };
}
