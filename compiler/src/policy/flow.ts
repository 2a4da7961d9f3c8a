// Information flow: the label order, the propagation of labels along
// channels, the `flow:lattice` check and the `no flow L -> x` rules.
//
// The propagation is the least fixed point of a monotone dataflow problem,
// computed as a breadth-first search over (instance, label) states: the state
// (u, l) means "u holds data labelled l". An instance holds its own label and
// every label it receives; what it forwards is what it holds after its
// declassifications. Because a declassification maps each label to exactly
// one label, the fixed point over label sets equals reachability in this
// product graph, and the search tree gives a shortest witness path for every
// label that reaches an instance.

import type { Ident, NoFlowRule } from '@mcl/language';
import { Codes } from '@mcl/language';
import {
  addCheck,
  channelRef,
  describePath,
  exposureNote,
  instanceRef,
  KIND_CALL,
  KIND_NOTIFY,
  KIND_SEND,
  relatedFor,
  report,
  type Context,
  type Counterexample,
} from './context';
import { buildGraph, compareStrings, EdgeList, type Graph } from './graph';
import { OUTSIDE, suggest } from './names';
import { egressNote } from './egress';
import { resolveOrReport } from './reach';
import type { ScopedRule } from './types';

export interface LabelOrderInfo {
  labels: string[];
  index: Map<string, number>;
  /** leq[a * L + b] = 1 when a <= b (reflexive, transitive). */
  leq: Uint8Array;
  /** The least label, when the order has one. */
  bottom: number | undefined;
  /** minimal[l] = 1 when no label is strictly below l (every label, with a least label, is above the one minimal label). */
  minimal: Uint8Array;
}

export function buildLabelOrder(ctx: Context): LabelOrderInfo {
  const order = ctx.input.labels ?? { labels: [], edges: [], declaredAt: {} };
  const names = new Set<string>(order.labels ?? []);
  for (const [a, b] of order.edges ?? []) {
    names.add(a);
    names.add(b);
  }
  const labels = [...names].sort(compareStrings);
  const index = new Map(labels.map((l, i) => [l, i]));
  const L = labels.length;
  const adj: number[][] = labels.map(() => []);
  for (const [a, b] of order.edges ?? []) adj[index.get(a)!].push(index.get(b)!);
  for (const list of adj) list.sort((x, y) => x - y);
  const leq = new Uint8Array(L * L);
  for (let a = 0; a < L; a++) {
    leq[a * L + a] = 1;
    const stack = [a];
    while (stack.length > 0) {
      const u = stack.pop()!;
      for (const v of adj[u]) {
        if (leq[a * L + v]) continue;
        leq[a * L + v] = 1;
        stack.push(v);
      }
    }
  }
  let bottom: number | undefined;
  for (let b = 0; b < L && bottom === undefined; b++) {
    let least = true;
    for (let x = 0; x < L && least; x++) if (!leq[b * L + x]) least = false;
    if (least) bottom = b;
  }
  const minimal = new Uint8Array(L);
  for (let m = 0; m < L; m++) {
    minimal[m] = 1;
    for (let x = 0; x < L && minimal[m]; x++) if (x !== m && leq[x * L + m] && !leq[m * L + x]) minimal[m] = 0;
  }
  checkLabelCycles(ctx, labels, adj);
  return { labels, index, leq, bottom, minimal };
}

/** Reports every cycle of the declared order (`a < b < a`) at the declaration of its first label. */
function checkLabelCycles(ctx: Context, labels: string[], adj: number[][]): void {
  const L = labels.length;
  const seen = new Uint8Array(L);
  const cycles: string[][] = [];
  for (let s = 0; s < L; s++) {
    if (seen[s]) continue;
    // Shortest cycle through s, by breadth-first search back to s.
    const parent = new Int32Array(L).fill(-1);
    const queue = [s];
    let found = -1;
    for (let h = 0; h < queue.length && found === -1; h++) {
      const u = queue[h];
      for (const v of adj[u]) {
        if (v === s) {
          found = u;
          break;
        }
        if (parent[v] !== -1) continue;
        parent[v] = u;
        queue.push(v);
      }
    }
    if (found === -1) continue;
    const chain: number[] = [];
    for (let v = found; v !== s; v = parent[v]) chain.push(v);
    chain.push(s);
    chain.reverse();
    for (const v of chain) seen[v] = 1;
    cycles.push([...chain.map((v) => labels[v]), labels[s]]);
  }
  const declaredAt = ctx.input.labels?.declaredAt ?? {};
  for (const cycle of cycles) {
    const at = declaredAt[cycle[0]] ?? ctx.input.origins?.target ?? { file: '', span: { start: 0, end: 0 } };
    report(ctx, {
      code: Codes.LabelOrderCycle,
      message: `The label order has a cycle: ${cycle.join(' < ')}; labels on a cycle would all be equal.`,
      file: at.file,
      span: at.span,
      hint: 'Remove one of the `<` steps so that the labels form a partial order.',
      related: cycle.slice(1, -1).flatMap((l) => {
        const ref = declaredAt[l];
        return ref ? [{ file: ref.file, span: ref.span, message: `label \`${l}\`` }] : [];
      }),
    });
  }
  addCheck(ctx, {
    id: 'flow:labels',
    kind: 'flow',
    status: cycles.length === 0 ? 'pass' : 'fail',
    summary:
      cycles.length === 0
        ? labels.length === 0
          ? 'No labels are declared: information flow is not constrained.'
          : `The ${labels.length} label${labels.length === 1 ? '' : 's'} form a partial order.`
        : `The label order has ${cycles.length} cycle${cycles.length === 1 ? '' : 's'}: ${cycles.map((c) => c.join(' < ')).join('; ')}.`,
    counterexample: cycles.length === 0 ? undefined : cycles[0].map((l) => ({ note: `label ${l}` })),
  });
}

/**
 * `FlowResult.own` of an unlabelled instance when the order has no least
 * label: it is at the bottom all the same, and may receive only data labelled
 * with a minimal label.
 */
export const BOTTOM = -2;

export interface FlowResult {
  order: LabelOrderInfo;
  /** Label of each instance for checking what it receives, -1 when it is unconstrained, BOTTOM for an unlabelled instance without a least label. */
  own: Int32Array;
  /** decl[v * L + l]: the label data labelled l leaves v with, through a port without port-scoped declassifications. */
  decl: Int32Array;
  /** The label data labelled l leaves instance v with through port `port` (its declassifications for that port). */
  forward: (v: number, port: string, l: number) => number;
  held: Uint8Array;
  initial: Uint8Array;
  recv: Uint8Array;
  parentState: Int32Array;
  parentEdge: Int32Array;
  flow: Graph;
}

export function propagate(ctx: Context, order: LabelOrderInfo): FlowResult {
  const g = ctx.graph;
  const n = g.n;
  const L = order.labels.length;
  const own = new Int32Array(n).fill(-1);
  const decl = new Int32Array(n * L);
  for (let v = 0; v < n; v++) {
    const inst = ctx.instances[v];
    // An unlabelled instance is at the bottom of the order: the least label
    // when there is one, else it may receive only minimal labels (BOTTOM), so
    // that a `labels` declaration in some module that adds a second minimal
    // label cannot lift the constraint off every unlabelled instance. A label
    // missing from the order was reported by name resolution and leaves the
    // instance unconstrained rather than guessing.
    if (inst.label === undefined) own[v] = order.bottom ?? BOTTOM;
    else own[v] = order.index.get(inst.label) ?? -1;
    decl.set(labelMap(order, (inst.declassifies ?? []).filter((d) => !d.ports)), v * L);
  }
  // Port-scoped declassifications (`declassifies s -> t on p`) give the ports they name a table of
  // their own: the instance's declassifications that apply there, in declaration order (the first
  // declassification of a label applies, as for the instance-wide ones).
  const portTables = new Map<string, Int32Array>();
  for (let v = 0; v < n; v++) {
    const ds = ctx.instances[v].declassifies ?? [];
    const scoped = new Set(ds.flatMap((d) => d.ports ?? []));
    for (const port of scoped) portTables.set(`${v}\u0000${port}`, labelMap(order, ds.filter((d) => !d.ports || d.ports.includes(port))));
  }
  const forward = (v: number, port: string, l: number): number => {
    const t = portTables.size ? portTables.get(`${v}\u0000${port}`) : undefined;
    return t ? t[l] : decl[v * L + l];
  };
  // A channel's own declassifications apply to what it delivers, after the sender's.
  const channelTables = ctx.channels.map((c) => (c.declassifies?.length ? labelMap(order, c.declassifies) : undefined));
  const edges = new EdgeList();
  for (let k = 0; k < ctx.channels.length; k++) {
    const a = ctx.channelFrom[k];
    const b = ctx.channelTo[k];
    if (a < 0 || b < 0) continue;
    const kinds = ctx.channelKinds[k];
    // Requests (call, send) carry data to the provider, unless the channel is a `query` one, whose
    // requests carry none of the requiring side's data; responses (call) and notifications go back.
    if (kinds & (KIND_CALL | KIND_SEND) && !ctx.channels[k].query) edges.push(a, b, k);
    if (kinds & (KIND_CALL | KIND_NOTIFY)) edges.push(b, a, k);
  }
  const special = portTables.size > 0 || channelTables.some((t) => t !== undefined);
  /** The label data labelled l arrives with when u sends it along channel k. */
  const delivered = (u: number, k: number, l: number): number => {
    const c = ctx.channels[k];
    // On a channel from an instance to itself both ends are u: the request end is used.
    const port = ctx.channelFrom[k] === u ? c.from.port : c.to.port;
    const out = forward(u, port, l);
    const t = channelTables[k];
    return t ? t[out] : out;
  };
  const flow = buildGraph(g.ids, g.index, edges);
  const S = n * L;
  const held = new Uint8Array(S);
  const initial = new Uint8Array(S);
  const recv = new Uint8Array(S);
  const parentState = new Int32Array(S).fill(-1);
  const parentEdge = new Int32Array(S).fill(-1);
  const queue = new Int32Array(S);
  let head = 0;
  let tail = 0;
  for (let v = 0; v < n; v++) {
    const inst = ctx.instances[v];
    // Unconstrained instances produce no labelled data of their own.
    const l = inst.label === undefined ? (order.bottom ?? -1) : (order.index.get(inst.label) ?? -1);
    if (l < 0) continue;
    const s = v * L + l;
    held[s] = initial[s] = 1;
    queue[tail++] = s;
  }
  while (head < tail) {
    const s = queue[head++];
    const u = (s / L) | 0;
    const out = decl[s];
    for (let i = flow.start[u]; i < flow.start[u + 1]; i++) {
      const t = flow.to[i] * L + (special ? delivered(u, flow.edge[i], s % L) : out);
      if (recv[t]) continue;
      recv[t] = 1;
      parentState[t] = s;
      parentEdge[t] = flow.edge[i];
      if (held[t]) continue;
      held[t] = 1;
      queue[tail++] = t;
    }
  }
  return { order, own, decl, forward, held, initial, recv, parentState, parentEdge, flow };
}

/** The label table of a list of declassifications: table[l] is what data labelled l becomes; the first one of a label applies. */
function labelMap(order: LabelOrderInfo, ds: readonly { from: string; to: string }[]): Int32Array {
  const L = order.labels.length;
  const t = new Int32Array(L);
  for (let l = 0; l < L; l++) t[l] = l;
  const applied = new Uint8Array(L);
  for (const d of ds) {
    const from = order.index.get(d.from);
    const to = order.index.get(d.to);
    if (from === undefined || to === undefined || applied[from]) continue;
    applied[from] = 1;
    t[from] = to;
  }
  return t;
}

/**
 * The witness of a held state: the chain of channels from the instance whose
 * own data it is, with the label carried at every step.
 */
export function witness(ctx: Context, f: FlowResult, state: number): Counterexample {
  const L = f.order.labels.length;
  const rev: { channel: number; from: number; to: number; label: number }[] = [];
  let s = state;
  // Walk back through the deliveries that first brought each label, until
  // reaching an instance's own label. Every state that is not an own label was
  // discovered by a delivery from a state discovered earlier, so this ends.
  while (!f.initial[s]) {
    const p = f.parentState[s];
    if (p < 0) break;
    rev.push({ channel: f.parentEdge[s], from: (p / L) | 0, to: (s / L) | 0, label: s % L });
    s = p;
  }
  rev.reverse();
  const labels = f.order.labels;
  const origin = (s / L) | 0;
  const steps: Counterexample = [{ instance: ctx.graph.ids[origin], note: `its own data is labelled ${labels[s % L]}` }];
  let carried = s % L;
  for (const r of rev) {
    const c = ctx.channels[r.channel];
    const forward = c.from.instance === ctx.graph.ids[r.from];
    const relabel = relabelNote(ctx, f, r.channel, r.from, carried, r.label);
    steps.push({
      channel: c.id,
      note: `carries ${labels[r.label]}${forward ? '' : ' back to the requiring side'}${relabel}`,
    });
    steps.push({ instance: ctx.graph.ids[r.to] });
    carried = r.label;
  }
  return steps;
}

/** How a delivery along channel k from u changed the label, for witness notes: by the sender, by the channel, or both. */
function relabelNote(ctx: Context, f: FlowResult, k: number, u: number, before: number, after: number): string {
  if (before === after) return '';
  const labels = f.order.labels;
  const c = ctx.channels[k];
  const sent = f.forward(u, ctx.channelFrom[k] === u ? c.from.port : c.to.port, before);
  if (sent === after) return `, declassified from ${labels[before]} by ${ctx.graph.ids[u]}`;
  if (sent === before) return `, declassified from ${labels[before]} by the channel`;
  return `, declassified from ${labels[before]} to ${labels[sent]} by ${ctx.graph.ids[u]} and on by the channel`;
}

/** Witness of a received state: the delivery itself must be part of the path even when the state is also the instance's own label. */
function receivedWitness(ctx: Context, f: FlowResult, state: number): Counterexample {
  const L = f.order.labels.length;
  const p = f.parentState[state];
  if (p < 0) return witness(ctx, f, state);
  const before = witness(ctx, f, p);
  const c = ctx.channels[f.parentEdge[state]];
  const from = (p / L) | 0;
  const forward = c.from.instance === ctx.graph.ids[from];
  const labels = f.order.labels;
  const relabel = relabelNote(ctx, f, f.parentEdge[state], from, p % L, state % L);
  return [
    ...before,
    { channel: c.id, note: `carries ${labels[state % L]}${forward ? '' : ' back to the requiring side'}${relabel}` },
    { instance: ctx.graph.ids[(state / L) | 0] },
  ];
}

export function checkLattice(ctx: Context, f: FlowResult): void {
  const L = f.order.labels.length;
  const labels = f.order.labels;
  const bottomName = f.order.bottom !== undefined ? labels[f.order.bottom] : undefined;
  const refuses = (state: number): boolean => {
    const lv = f.own[(state / L) | 0];
    const l = state % L;
    return lv !== -1 && (lv === BOTTOM ? !f.order.minimal[l] : !f.order.leq[l * L + lv]);
  };
  const labelledText = (v: number): string => {
    const lv = f.own[v];
    return ctx.instances[v].label === undefined
      ? bottomName !== undefined
        ? `unlabelled (so ${bottomName})`
        : 'unlabelled (so at the bottom: it may receive only minimal labels)'
      : `labelled ${labels[lv]}`;
  };
  let first: Counterexample | undefined;
  let violations = 0;
  let flows = 0;
  // One mistake (a missing `allow`, a missing declassification) lets a label past one channel and
  // then on to everything downstream. Each violation is traced back to its fault: the first delivery
  // on its witness path into an instance that may not hold the label. Violations with the same
  // fault are one diagnostic, at the channel of that delivery, with the others folded in.
  const faults = new Map<number, number[]>();
  for (let v = 0; v < ctx.graph.n; v++) {
    const lv = f.own[v];
    for (let l = 0; l < L; l++) if (f.recv[v * L + l]) flows++;
    if (lv === -1) continue;
    let bad = -1;
    for (let l = 0; l < L && bad < 0; l++) if (f.recv[v * L + l] && refuses(v * L + l)) bad = l;
    if (bad < 0) continue;
    violations++;
    if (!first) {
      first = receivedWitness(ctx, f, v * L + bad);
      first[first.length - 1] = { instance: ctx.graph.ids[v], note: labelledText(v) };
    }
    const fault = faultOf(f, v * L + bad, refuses);
    const list = faults.get(fault);
    if (list) list.push(v);
    else faults.set(fault, [v]);
  }
  for (const [fault, receivers] of faults) {
    const v = (fault / L) | 0;
    const bad = fault % L;
    const id = ctx.graph.ids[v];
    const labelled = labelledText(v);
    const steps = receivedWitness(ctx, f, fault);
    steps[steps.length - 1] = { instance: id, note: labelled };
    const channel = ctx.channels[f.parentEdge[fault]];
    const others = receivers.filter((r) => r !== v);
    const at = channel ? channelRef(ctx, channel.id) : undefined;
    const ref = at && at.file !== '' ? at : instanceRef(ctx, id, true);
    const further = others.length > 0 ? ` From there it also reaches ${others.map((r) => `\`${ctx.graph.ids[r]}\``).join(', ')}.` : '';
    report(ctx, {
      code: Codes.FlowToLowerLabel,
      message: `Data labelled \`${labels[bad]}\` reaches \`${id}\`, which is ${labelled}${channel ? `, over channel \`${channel.id}\`` : ''}: ${describePath(steps)}.${further}`,
      file: ref.file,
      span: ref.span,
      hint:
        `Label \`${id}\` \`${labels[bad]}\` or higher, restrict or remove this channel, or route the data through a component that declassifies \`${labels[bad]}\`` +
        (f.own[v] === BOTTOM ? `${minimalLabels(f.order)}.` : '.'),
      related: [
        ...relatedFor(ctx, steps),
        ...others.map((r) => {
          const o = instanceRef(ctx, ctx.graph.ids[r], true);
          return { file: o.file, span: o.span, message: `\`${ctx.graph.ids[r]}\` (${labelledText(r)}) receives it too` };
        }),
      ].filter((x) => x.file !== ''),
    });
  }
  addCheck(ctx, {
    id: 'flow:lattice',
    kind: 'flow',
    status: violations === 0 ? 'pass' : 'fail',
    summary:
      violations === 0
        ? `Every labelled flow (${flows} instance-label pair${flows === 1 ? '' : 's'}) goes up the label order or through a declassifier.`
        : `${violations} instance${violations === 1 ? ' receives' : 's receive'} data labelled above their own label.`,
    counterexample: first,
  });
}

/**
 * The first delivery on a received state's witness path into an instance
 * that may not hold the label delivered (the state itself when there is no
 * earlier one).
 */
function faultOf(f: FlowResult, state: number, refuses: (state: number) => boolean): number {
  const hops: number[] = [state];
  for (let s = f.parentState[state]; s >= 0 && !f.initial[s]; s = f.parentState[s]) hops.push(s);
  for (let i = hops.length - 1; i >= 0; i--) if (refuses(hops[i])) return hops[i];
  return state;
}

/** Why an order has no least label: its minimal labels, to be put in one chain. */
function minimalLabels(order: LabelOrderInfo): string {
  const minimal = order.labels.filter((_, l) => order.minimal[l]);
  if (minimal.length < 2) return '';
  return ` (with no least label, unlabelled instances may receive only the minimal labels ${minimal.map((m) => `\`${m}\``).join(', ')})`;
}

export function checkNoFlow(ctx: Context, sr: ScopedRule, rule: NoFlowRule, f: FlowResult): void {
  const targetName = rule.to.name === OUTSIDE ? OUTSIDE : sr.scope === '' ? rule.to.name : `${sr.scope}.${rule.to.name}`;
  const id = `flow:no-flow:${rule.label.name}->${targetName}`;
  const ruleText = `\`no flow ${rule.label.name} -> ${rule.to.name}\``;
  const L = f.order.labels.length;
  const label = resolveLabel(ctx, sr, rule.label, f);
  const target = resolveOrReport(ctx, sr, rule.to, true);
  if (label === undefined || !target) {
    addCheck(ctx, { id, kind: 'flow', status: 'fail', summary: `Rule ${ruleText} could not be checked: it names something that does not exist.` });
    return;
  }
  const labels = f.order.labels;
  let steps: Counterexample | undefined;
  // The witness shows the label the rule names when that label itself gets through, and a label
  // above it only when none of the named label's data does.
  const candidates = [label, ...Array.from({ length: L }, (_, l) => l).filter((l) => l !== label)];
  if (target.isOutside) {
    // `lo` is the label the data leaves with (after the exposed instance's declassifications).
    for (const lo of candidates) {
      if (!f.order.leq[label * L + lo]) continue;
      for (const x of ctx.exposures) {
        const v = ctx.graph.index.get(x.instance);
        if (v === undefined) continue;
        for (let l = 0; l < L && !steps; l++) {
          const s = v * L + l;
          if (f.held[s] && f.forward(v, x.port, l) === lo) steps = [...witness(ctx, f, s), { note: `leaves as ${labels[lo]} through tcp ${x.host_port} (${exposureNote(x)})` }];
        }
        if (steps) break;
      }
      // Data that leaves through an egress reaches the outside too.
      for (const e of ctx.egresses) {
        if (steps) break;
        const v = ctx.graph.index.get(e.instance);
        if (v === undefined) continue;
        for (let l = 0; l < L && !steps; l++) {
          const s = v * L + l;
          if (f.held[s] && f.forward(v, e.port, l) === lo) steps = [...witness(ctx, f, s), { note: `leaves as ${labels[lo]}, ${egressNote(e)}` }];
        }
      }
      if (steps) break;
    }
  } else {
    for (const l of candidates) {
      if (!f.order.leq[label * L + l]) continue;
      for (const v of target.nodes) {
        const s = v * L + l;
        if (f.recv[s]) {
          steps = receivedWitness(ctx, f, s);
          break;
        }
      }
      if (steps) break;
    }
  }
  if (!steps) {
    addCheck(ctx, {
      id,
      kind: 'flow',
      status: 'pass',
      summary: `No data labelled \`${labels[label]}\` or above reaches \`${target.id}\`.`,
    });
    return;
  }
  addCheck(ctx, {
    id,
    kind: 'flow',
    status: 'fail',
    summary: `Data labelled \`${labels[label]}\` or above reaches \`${target.id}\`: ${describePath(steps)}.`,
    counterexample: steps,
  });
  report(ctx, {
    code: Codes.NoFlowViolated,
    message: `${ruleText} is violated: ${describePath(steps)}.`,
    file: sr.file,
    span: rule.span,
    hint: `Remove a channel on the path, restrict it with \`allow\` to operations that do not carry data back, or declassify \`${labels[label]}\` on the way.`,
    related: relatedFor(ctx, steps),
  });
}

function resolveLabel(ctx: Context, sr: ScopedRule, ident: Ident, f: FlowResult): number | undefined {
  const l = f.order.index.get(ident.name);
  if (l !== undefined) return l;
  if (ident.name === '') return undefined;
  const close = suggest(ident.name, f.order.labels);
  report(ctx, {
    code: Codes.UnknownRuleLabel,
    message: `\`${ident.name}\` is not a declared label.`,
    file: sr.file,
    span: ident.span,
    hint:
      close.length > 0
        ? `Did you mean ${close.map((c) => `\`${c}\``).join(', ')}?`
        : `Declare it in a \`labels { ... }\` block, or use one of ${f.order.labels.map((c) => `\`${c}\``).join(', ') || 'the declared labels'}.`,
    fixes: close.map((c) => ({ title: `Change to \`${c}\``, edits: [{ file: sr.file, span: ident.span, newText: c }] })),
  });
  return undefined;
}
