// Containment: `x only to a, b`, the mirror of `only from`. It says where an
// instance may send: every channel out of `x` goes to one of the listed
// instances, so a component added later that `x` is wired to breaks the rule
// without anyone having to think of it. `x` may also name a label: then the
// rule holds for each instance of the rule's system labelled `x` or above,
// which is how "secret data goes only to the vault and the audit log" is said
// once for every secret instance, present or future. spec/policy.md, 2.

import type { OnlyRule } from '@mcl/language';
import { Codes } from '@mcl/language';
import { addCheck, relatedFor, report, type Context, type Counterexample } from './context';
import type { LabelOrderInfo } from './flow';
import { qualify, resolveName } from './names';
import { resolveOrReport } from './reach';
import { egressNamed, egressNote } from './egress';
import type { ScopedRule } from './types';

/** The instances of a label subject: those of the scope whose own label is the label or above it. */
function labelled(ctx: Context, scope: string, label: number, order: LabelOrderInfo): number[] {
  const L = order.labels.length;
  const prefix = scope === '' ? '' : `${scope}.`;
  const out: number[] = [];
  ctx.instances.forEach((inst, v) => {
    if (scope !== '' && inst.id !== scope && !inst.id.startsWith(prefix)) return;
    const own = inst.label === undefined ? undefined : order.index.get(inst.label);
    if (own !== undefined && order.leq[label * L + own]) out.push(v);
  });
  return out;
}

export function checkOnlyTo(ctx: Context, sr: ScopedRule, rule: OnlyRule, order: LabelOrderInfo): void {
  const g = ctx.graph;
  const name = rule.target.name;
  // An instance or nested system of that name comes first; a label only when no instance has the name.
  const asInstance = resolveName(g, sr.scope, name, false);
  const labelIndex = asInstance ? undefined : order.index.get(name);
  const subject = asInstance ? `\`${asInstance.id}\`` : `the instances labelled \`${name}\` or above`;
  const targetId = asInstance ? asInstance.id : labelIndex !== undefined ? `label:${name}` : qualify(sr.scope, name);
  // A listed egress (egress.ts) is a destination too; every other name is an instance or a nested system.
  const egressesListed = new Set<string>();
  const sources = rule.sources.filter((s) => {
    const e = egressNamed(ctx, sr.scope, s.name);
    if (e) egressesListed.add(e.name);
    return !e;
  }).map((s) => resolveOrReport(ctx, sr, s, false));
  const id = `reach:${targetId}-only-to:${rule.sources.map((s) => qualify(sr.scope, s.name)).join(',')}`;
  const ruleText = `\`${name} only to ${rule.sources.map((s) => s.name).join(', ')}\``;
  const targetNodes = asInstance ? asInstance.nodes : labelIndex !== undefined ? labelled(ctx, sr.scope, labelIndex, order) : undefined;
  // An unknown subject is reported as any unknown name of a rule is (MCL0515, with suggestions).
  if (targetNodes === undefined) resolveOrReport(ctx, sr, rule.target, false);
  if (targetNodes === undefined || sources.some((s) => s === undefined)) {
    addCheck(ctx, { id, kind: 'reachability', status: 'fail', summary: `Rule ${ruleText} could not be checked: it names something that does not exist.` });
    return;
  }
  const size = g.n + 1;
  const inTarget = new Uint8Array(size);
  for (const v of targetNodes) inTarget[v] = 1;
  const allowed = new Uint8Array(size);
  for (const s of sources) for (const v of s!.nodes) allowed[v] = 1;
  const allowedNames = [...sources.map((s) => s!.id), ...egressesListed].map((n) => `\`${n}\``).join(', ');
  let first: Counterexample | undefined;
  let violations = 0;
  // Channels in id order: the first offending one is the check's counterexample.
  for (let k = 0; k < ctx.channels.length; k++) {
    const from = ctx.channelFrom[k];
    const to = ctx.channelTo[k];
    // Inside a nested system subject its channels are its own business; each instance of a label subject is
    // constrained on its own, so a channel between two of them counts (a self-channel never does).
    const inside = asInstance ? inTarget[to] : from === to;
    if (from < 0 || to < 0 || !inTarget[from] || inside || allowed[to]) continue;
    const c = ctx.channels[k];
    const steps: Counterexample = [{ instance: c.from.instance }, { channel: c.id }, { instance: c.to.instance }];
    violations++;
    first ??= steps;
    report(ctx, {
      code: Codes.OnlyToViolated,
      message: `${ruleText} is violated: channel \`${c.id}\` goes from \`${c.from.instance}\` to \`${c.to.instance}\`, which is not in the list.`,
      file: sr.file,
      span: rule.span,
      hint: `Remove the connection, route it through ${allowedNames}, or add \`${c.to.instance}\` to the list.`,
      related: relatedFor(ctx, steps),
    });
  }
  // Egresses of the subject's instances: each must be listed by name.
  for (const e of ctx.egresses) {
    const v = g.index.get(e.instance);
    if (v === undefined || !inTarget[v] || egressesListed.has(e.name)) continue;
    const steps: Counterexample = [{ instance: e.instance }, { note: egressNote(e) }];
    violations++;
    first ??= steps;
    report(ctx, {
      code: Codes.OnlyToViolated,
      message: `${ruleText} is violated: \`${e.instance}\` sends to the outside through egress \`${e.name}\`, which is not in the list.`,
      file: sr.file,
      span: rule.span,
      hint: `Remove the egress, or add \`${e.name}\` to the list.`,
      related: [...relatedFor(ctx, steps), ...(ctx.input.origins?.egresses?.[e.name] ? [{ ...ctx.input.origins.egresses[e.name], message: `egress \`${e.name}\` is declared here` }] : [])],
    });
  }
  if (violations === 0) {
    addCheck(ctx, { id, kind: 'reachability', status: 'pass', summary: `Every channel out of ${subject} goes to ${allowedNames}.` });
  } else {
    addCheck(ctx, {
      id,
      kind: 'reachability',
      status: 'fail',
      summary: `${violations} channel${violations === 1 ? '' : 's'} out of ${subject} to outside ${allowedNames}.`,
      counterexample: first,
    });
  }
}
