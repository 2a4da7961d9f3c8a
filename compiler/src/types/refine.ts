// Protocol refinement: a required port of protocol P may be connected to a
// provided port of a different protocol Q when P refines Q, that is, when
// every conversation P permits is one Q serves (spec/types.md, "Protocol
// refinement"). The typical P is a read-only view of a store: a subset of its
// operations, perhaps with a stricter order. The channel then carries P, so
// the broker enforces the narrower protocol on it.
//
// The relation is structural; nothing in P names Q. It is checked per
// connect, and the first reason it fails is the message of MCL0404.

import type { OrderAutomaton } from '@mcl/plan';
import { compileOrder } from './dfa';
import type { Types, RType } from './message-types';
import type { OpInfo, ProtocolInfo } from './protocols';

/**
 * Why a value of type `a` may not be a value of type `b` (undefined when
 * every value of `a` is one of `b`, as the broker checks values). Named types
 * are compared co-inductively: a pair already being compared is assumed to
 * hold, which is sound for the finite values that travel.
 */
export function subtypeProblem(types: Types, a: RType, b: RType, where: string, seen = new Set<string>()): string | undefined {
  if (a.k === 'named' && b.k === 'named') {
    if (a.entry === b.entry) return undefined;
    const key = `${a.entry.qname}\u0000${b.entry.qname}`;
    if (seen.has(key)) return undefined;
    seen.add(key);
  }
  const x = types.deref(a);
  const y = types.deref(b);
  // A type that failed to resolve has been reported already.
  if (x.k === 'error' || y.k === 'error') return undefined;
  const range = (lo?: number, hi?: number) => `${lo ?? ''}..${hi ?? ''}`;
  const within = (p: { min?: number; max?: number }, q: { min?: number; max?: number }) =>
    (q.min === undefined || (p.min !== undefined && p.min >= q.min)) && (q.max === undefined || (p.max !== undefined && p.max <= q.max));
  const numeric = (k: string) => k === 'int' || k === 'int64' || k === 'float';
  if (numeric(x.k) && numeric(y.k)) {
    const xr = x as { k: string; min?: number; max?: number };
    const yr = y as { k: string; min?: number; max?: number };
    // An int travels as a JSON number, which an int64 and a float also accept; not the other way round.
    const kindOk = xr.k === yr.k || (xr.k === 'int' && (yr.k === 'int64' || yr.k === 'float'));
    if (!kindOk) return `${where} is \`${xr.k}\` on one side and \`${yr.k}\` on the other`;
    if (!within(xr, yr)) return `${where} allows ${range(xr.min, xr.max)} where ${range(yr.min, yr.max)} is required`;
    return undefined;
  }
  if (x.k !== y.k) return `${where} is ${kindText(x)} on one side and ${kindText(y)} on the other`;
  switch (x.k) {
    case 'bool':
      return undefined;
    case 'string':
    case 'bytes': {
      const yy = y as typeof x;
      if (!within(x, yy)) return `${where} allows lengths ${range(x.min, x.max)} where ${range(yy.min, yy.max)} is required`;
      if (yy.pattern !== undefined && x.pattern !== yy.pattern) return `${where} must match the pattern ${JSON.stringify(yy.pattern)}`;
      return undefined;
    }
    case 'list': {
      const yy = y as typeof x;
      if (!within(x, yy)) return `${where} allows ${range(x.min, x.max)} items where ${range(yy.min, yy.max)} is required`;
      return subtypeProblem(types, x.el, yy.el, `${where}[]`, seen);
    }
    case 'map': {
      const yy = y as typeof x;
      if (!within(x, yy)) return `${where} allows ${range(x.min, x.max)} entries where ${range(yy.min, yy.max)} is required`;
      return subtypeProblem(types, x.key, yy.key, `${where} (key)`, seen) ?? subtypeProblem(types, x.value, yy.value, `${where}{}`, seen);
    }
    case 'record': {
      const yy = y as typeof x;
      const theirs = new Map(yy.fields.map((f) => [f.name, f]));
      for (const f of x.fields) {
        const g = theirs.get(f.name);
        // Records are closed on the wire: a field the other side does not know is refused.
        if (!g) return `${where}.${f.name} is not a field on the other side`;
        if (f.optional && !g.optional) return `${where}.${f.name} is optional on one side and required on the other`;
        const p = subtypeProblem(types, f.type, g.type, `${where}.${f.name}`, seen);
        if (p) return p;
      }
      const names = new Set(x.fields.map((f) => f.name));
      for (const g of yy.fields) if (!g.optional && !names.has(g.name)) return `${where}.${g.name} is required on the other side`;
      return undefined;
    }
    case 'enum': {
      const members = new Set((y as typeof x).members);
      const extra = x.members.find((n) => !members.has(n));
      return extra === undefined ? undefined : `${where} has the member \`${extra}\`, which the other side does not`;
    }
    case 'union': {
      const theirs = new Map((y as typeof x).variants.map((v) => [v.name, v]));
      for (const v of x.variants) {
        const w = theirs.get(v.name);
        if (!w) return `${where} has the variant \`${v.name}\`, which the other side does not`;
        if (!v.type !== !w.type) return `${where}'s variant \`${v.name}\` has a payload on one side only`;
        if (v.type && w.type) {
          const p = subtypeProblem(types, v.type, w.type, `${where}.${v.name}`, seen);
          if (p) return p;
        }
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

function kindText(t: RType): string {
  return t.k === 'record' || t.k === 'enum' || t.k === 'union' || t.k === 'list' || t.k === 'map' ? `a ${t.k}` : `\`${t.k}\``;
}

/** The automaton of a protocol's order over its operations, or null when any order is allowed. */
function automaton(p: ProtocolInfo): OrderAutomaton | null | undefined {
  return p.order ? compileOrder(p.order, [...p.ops.keys()]) : null;
}

/**
 * Why protocol `p` (the requirer's) does not refine `q` (the provider's), or
 * undefined when it does:
 * - every operation of `p` is an operation of `q` of the same kind, whose
 *   messages from the sender fit `q`'s and whose responses and notifications
 *   from `q` fit `p`'s (so the broker, checking `p`'s schemas, refuses
 *   nothing `q` may say);
 * - every `notify` of `q` is in `p` (a provider's notifications are not
 *   narrowed away);
 * - every sequence of operations `p`'s order accepts, `q`'s order accepts
 *   too (language inclusion, checked on the product of the two automata: a
 *   missing transition in `q` or a state accepting in `p` but not in `q`
 *   refutes it, with the shortest sequence as the witness).
 */
export function refinementProblem(types: Types, p: ProtocolInfo, q: ProtocolInfo): string | undefined {
  const pn = `\`${p.entry.name}\``;
  const qn = `\`${q.entry.name}\``;
  for (const op of p.ops.values()) {
    const theirs = q.ops.get(op.name);
    if (!theirs) return `${pn} has the operation \`${op.name}\`, which ${qn} does not`;
    if (theirs.kind !== op.kind) return `\`${op.name}\` is a \`${op.kind}\` in ${pn} but a \`${theirs.kind}\` in ${qn}`;
    const problem = messageProblem(types, op, theirs);
    if (problem) return problem;
  }
  for (const op of q.ops.values()) {
    if (op.kind === 'notify' && !p.ops.has(op.name)) return `${qn} may notify \`${op.name}\`, which ${pn} does not have`;
  }
  const pa = automaton(p);
  const qa = automaton(q);
  if (pa === undefined || qa === undefined) return undefined; // too complex: reported with the protocol
  if (qa === null) return undefined;
  return orderProblem(pa, [...p.ops.keys()].sort(), qa, pn, qn);
}

function messageProblem(types: Types, mine: OpInfo, theirs: OpInfo): string | undefined {
  const name = `\`${mine.name}\``;
  // Requests and sends go from the requirer (the refined side) to the provider; notifications and responses come back.
  if (mine.kind === 'notify') return subtypeProblem(types, theirs.inputType, mine.inputType, `the notification of ${name}`);
  const req = subtypeProblem(types, mine.inputType, theirs.inputType, `the request of ${name}`);
  if (req) return req;
  if (mine.outputType && theirs.outputType) return subtypeProblem(types, theirs.outputType, mine.outputType, `the response of ${name}`);
  return undefined;
}

/** Language inclusion L(p) ⊆ L(q) by breadth-first search of the product, with the shortest counterexample. */
function orderProblem(p: OrderAutomaton | null, pOps: string[], q: OrderAutomaton, pn: string, qn: string): string | undefined {
  // Without an order, `p` accepts every sequence of its operations: one accepting state looping on each.
  const pt = p ?? { transitions: [Object.fromEntries(pOps.map((o) => [o, 0]))], accepting: [0] };
  const pAcc = new Set(pt.accepting);
  const qAcc = new Set(q.accepting);
  const seen = new Map<string, string[]>([['0,0', []]]);
  const queue: [number, number][] = [[0, 0]];
  for (let i = 0; i < queue.length; i++) {
    const [ps, qs] = queue[i];
    const path = seen.get(`${ps},${qs}`)!;
    const seq = (ops: string[]) => (ops.length ? ops.map((o) => `\`${o}\``).join(', ') : 'the empty sequence');
    if (pAcc.has(ps) && !qAcc.has(qs)) return `${pn}'s order may stop after ${seq(path)}, where ${qn}'s order is not complete`;
    for (const op of Object.keys(pt.transitions[ps] ?? {}).sort()) {
      const pn2 = pt.transitions[ps][op];
      const qn2 = q.transitions[qs]?.[op];
      const next = [...path, op];
      if (qn2 === undefined) return `${pn}'s order allows ${seq(next)}, which ${qn}'s order refuses`;
      const key = `${pn2},${qn2}`;
      if (!seen.has(key)) {
        seen.set(key, next);
        queue.push([pn2, qn2]);
      }
    }
  }
  return undefined;
}
