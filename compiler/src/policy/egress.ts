// Egress in the policies (spec/policy.md, "Egress"). An egress is a
// destination outside the system, named by the egress's name in the rules of
// the system that declares it (and by a dotted path from enclosing systems):
// - `egress only [mail, pay]` lists the egresses a system may have;
// - `no path web -> mail` forbids any chain of channels from `web` to the
//   instance whose port leaves through `mail`;
// - `app only to db, mail` (contain.ts) counts an egress as a destination;
// - information flow: the outside world beyond an egress is at the egress's
//   label (the bottom label when it declares none), so data above it leaving
//   through the egress needs a declassification, as data leaving through an
//   exposure does; `no flow secret -> outside` covers egresses too.

import type { EgressOnlyRule, NoPathRule } from '@mcl/language';
import { Codes } from '@mcl/language';
import type { PlanEgress } from '@mcl/plan';
import { addCheck, describePath, pathSteps, relatedFor, report, type Context, type Counterexample } from './context';
import { BOTTOM, witness as flowWitness, type FlowResult } from './flow';
import { shortestPath } from './graph';
import { qualify, resolveName, suggest } from './names';
import { markNodes, resolveOrReport } from './reach';
import type { ScopedRule, SourceRef } from './types';

/** The note of the last step of a path that leaves through an egress. */
export function egressNote(e: PlanEgress): string {
  const d = e.destination;
  const host = d.host.includes(':') ? `[${d.host}]` : d.host;
  return `leaves through egress ${e.name} (${e.instance}.${e.port} -> ${d.scheme}://${host}:${d.port}${d.path ?? ''})`;
}

/** The egress a rule name stands for: `scope.name`, when no instance or nested system has that name. */
export function egressNamed(ctx: Context, scope: string, name: string): PlanEgress | undefined {
  if (name === '' || !ctx.egresses.length) return undefined;
  if (resolveName(ctx.graph, scope, name, false)) return undefined;
  const full = qualify(scope, name);
  return ctx.egresses.find((e) => e.name === full);
}

function egressRef(ctx: Context, e: PlanEgress): SourceRef | undefined {
  return ctx.input.origins?.egresses?.[e.name];
}

function inScope(scope: string, name: string): boolean {
  return scope === '' || name.startsWith(`${scope}.`);
}

/** The related location of an egress's declaration, when known. */
function egressRelated(ctx: Context, e: PlanEgress, message: string) {
  const ref = egressRef(ctx, e);
  return ref ? [{ file: ref.file, span: ref.span, message }] : [];
}

/** `egress only [a, b]`: every egress of the rule's system (and the systems in it) is listed. */
export function checkEgressOnly(ctx: Context, sr: ScopedRule, rule: EgressOnlyRule): void {
  const id = `exposure:egress-only${sr.scope === '' ? '' : `:${sr.scope}`}`;
  const mine = ctx.egresses.filter((e) => inScope(sr.scope, e.name));
  const listed = new Set<string>();
  let unresolved = false;
  for (const n of rule.names) {
    if (n.name === '') continue;
    const full = qualify(sr.scope, n.name);
    if (mine.some((e) => e.name === full)) {
      listed.add(full);
      continue;
    }
    unresolved = true;
    const names = mine.map((e) => (sr.scope === '' ? e.name : e.name.slice(sr.scope.length + 1)));
    const close = suggest(n.name, names);
    report(ctx, {
      code: Codes.UnknownEgress,
      message: `\`${n.name}\` is not an egress of ${sr.scope === '' ? 'the root system' : `system \`${sr.scope}\``}.`,
      file: sr.file,
      span: n.span,
      hint: close.length > 0 ? `Did you mean ${close.map((c) => `\`${c}\``).join(', ')}?` : `Its egresses are ${names.map((c) => `\`${c}\``).join(', ') || 'none'}.`,
      fixes: close.map((c) => ({ title: `Change to \`${c}\``, edits: [{ file: sr.file, span: n.span, newText: c }] })),
    });
  }
  const extra = mine.filter((e) => !listed.has(e.name));
  for (const e of extra) {
    report(ctx, {
      code: Codes.EgressNotListed,
      message: `Egress \`${e.name}\` (\`${e.instance}.${e.port}\` to \`${e.destination.scheme}://${e.destination.host}:${e.destination.port}\`) is not in the \`egress only\` list.`,
      file: sr.file,
      span: rule.span,
      hint: `Add \`${sr.scope === '' ? e.name : e.name.slice(sr.scope.length + 1)}\` to the list if this traffic is meant to leave, or remove the egress.`,
      related: egressRelated(ctx, e, `egress \`${e.name}\` is declared here`),
    });
  }
  const names = mine.map((e) => `\`${e.name}\``).join(', ') || 'none';
  if (extra.length === 0 && !unresolved) {
    addCheck(ctx, { id, kind: 'exposure', status: 'pass', summary: `Every egress is listed (${names}).` });
  } else {
    addCheck(ctx, {
      id,
      kind: 'exposure',
      status: 'fail',
      summary: extra.length ? `${extra.length} egress${extra.length === 1 ? '' : 'es'} not listed: ${extra.map((e) => `\`${e.name}\``).join(', ')}.` : 'The rule names something that is not an egress.',
      ...(extra.length ? { counterexample: [{ instance: extra[0].instance, note: egressNote(extra[0]) }] } : {}),
    });
  }
}

/** `no path x -> mail` where `mail` is an egress: no chain of channels leads from `x` to the instance that sends through it. */
export function checkNoPathToEgress(ctx: Context, sr: ScopedRule, rule: NoPathRule, e: PlanEgress): void {
  const fromName = rule.from.name;
  const id = `reach:no-path:${fromName === 'outside' ? fromName : qualify(sr.scope, fromName)}->egress:${e.name}`;
  const ruleText = `\`no path ${rule.from.name} -> ${rule.to.name}\``;
  const from = resolveOrReport(ctx, sr, rule.from, true);
  const target = ctx.graph.index.get(e.instance);
  if (!from || target === undefined) {
    addCheck(ctx, { id, kind: 'reachability', status: 'fail', summary: `Rule ${ruleText} could not be checked: it names something that does not exist.` });
    return;
  }
  const g = ctx.graph;
  const path = shortestPath(g, from.nodes, { targets: markNodes(g.n + 1, [target]) });
  if (!path) {
    addCheck(ctx, { id, kind: 'reachability', status: 'pass', summary: `No chain of channels leads from \`${from.id}\` to egress \`${e.name}\`.` });
    return;
  }
  const steps: Counterexample = [...pathSteps(ctx, path), { note: egressNote(e) }];
  addCheck(ctx, { id, kind: 'reachability', status: 'fail', summary: `\`${from.id}\` reaches egress \`${e.name}\`: ${describePath(steps)}.`, counterexample: steps });
  report(ctx, {
    code: Codes.NoPathViolated,
    message: `${ruleText} is violated: ${describePath(steps)}, which sends through egress \`${e.name}\`.`,
    file: sr.file,
    span: rule.span,
    hint: 'Remove one of the connections on the path (every step is listed below), or the egress.',
    related: [...relatedFor(ctx, steps), ...egressRelated(ctx, e, `egress \`${e.name}\` is declared here`)],
  });
}

/**
 * Information flow out of each egress: every label the sending instance holds, after its
 * declassifications for the port, must be at or below the egress's label. One check per egress.
 */
export function checkEgressFlow(ctx: Context, f: FlowResult): void {
  const order = f.order;
  const L = order.labels.length;
  for (const e of ctx.egresses) {
    const id = `flow:egress:${e.name}`;
    const v = ctx.graph.index.get(e.instance);
    const declared = e.label === undefined ? undefined : order.index.get(e.label);
    // Without a label the destination is at the bottom: the least label, or, without one, only minimal labels pass.
    const dest = e.label === undefined ? (order.bottom ?? BOTTOM) : (declared ?? -1);
    if (v === undefined || dest === -1 || L === 0) {
      addCheck(ctx, { id, kind: 'flow', status: 'pass', summary: `Egress \`${e.name}\` is not constrained by a label.` });
      continue;
    }
    const allowed = (lo: number) => (dest === BOTTOM ? order.minimal[lo] === 1 : order.leq[lo * L + dest] === 1);
    let bad: { state: number; lo: number } | undefined;
    for (let l = 0; l < L && !bad; l++) {
      const s = v * L + l;
      if (!f.held[s]) continue;
      const lo = f.forward(v, e.port, l);
      if (!allowed(lo)) bad = { state: s, lo };
    }
    const destName = dest === BOTTOM ? 'the bottom of the label order' : `\`${order.labels[dest]}\``;
    if (!bad) {
      addCheck(ctx, { id, kind: 'flow', status: 'pass', summary: `Only data at or below ${destName} leaves through egress \`${e.name}\`.` });
      continue;
    }
    const steps: Counterexample = [...flowWitness(ctx, f, bad.state), { note: `${egressNote(e)} labelled ${order.labels[bad.lo]}` }];
    addCheck(ctx, { id, kind: 'flow', status: 'fail', summary: `Data labelled \`${order.labels[bad.lo]}\` leaves through egress \`${e.name}\`, whose destination is at ${destName}.`, counterexample: steps });
    const ref = egressRef(ctx, e) ?? { file: '', span: { start: 0, end: 0 } };
    report(ctx, {
      code: Codes.EgressFlowViolated,
      message: `Data labelled \`${order.labels[bad.lo]}\` leaves through egress \`${e.name}\`, whose destination is at ${destName}: ${describePath(steps)}.`,
      file: ref.file,
      span: ref.span,
      hint: `Declassify it where it leaves (\`declassifies ${order.labels[bad.lo]} -> ${dest === BOTTOM ? '<a minimal label>' : order.labels[dest]} on ${e.port}\` in the sending component), or give the egress the destination's label (\`label ${order.labels[bad.lo]}\`) if the outside party may hold such data.`,
      related: relatedFor(ctx, steps),
    });
  }
}
