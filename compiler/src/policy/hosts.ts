// Host policies (spec/policy.md, "Host policies"): where instances run.
//
// `apart a, b` holds when no instance of `a` runs on the same machine as an
// instance of `b` (a system's name stands for every instance below it);
// `label secret only on [node1]` holds when every instance labelled `secret`
// or above runs on one of the named targets. An instance runs on its
// `target` in a plan with `targets`, else on the plan's one target; the
// machine of a target is its `host`'s name, or this machine without one, so
// two targets on one machine are one host to `apart`.

import type { ApartRule, LabelOnRule } from '@mcl/language';
import { Codes } from '@mcl/language';
import type { PlanTarget } from '@mcl/plan';
import { hostMachine } from '@mcl/plan/host';
import { addCheck, instanceRef, relatedFor, report, type Context } from './context';
import { labelsAtOrAbove } from '../target/place';
import { qualify, suggest } from './names';
import { resolveOrReport } from './reach';
import type { ScopedRule } from './types';

function deployTargets(ctx: Context): PlanTarget[] {
  const ts = ctx.input.targets;
  return ts && ts.length > 0 ? ts : ctx.input.target ? [ctx.input.target] : [];
}

/** The target an instance runs on, or undefined when it names none of the plan's. */
function targetOf(ctx: Context, id: number, targets: PlanTarget[]): PlanTarget | undefined {
  if (!ctx.input.targets || ctx.input.targets.length < 2) return targets[0];
  const name = ctx.instances[id].target;
  return targets.find((t) => t.name === name);
}

function where(t: PlanTarget | undefined): string {
  if (!t) return 'no target';
  return t.host ? `\`${t.name}\` (${t.host})` : `\`${t.name}\` (the machine mclc applies on)`;
}

export function checkApart(ctx: Context, sr: ScopedRule, rule: ApartRule): void {
  const names = rule.instances.map((n) => qualify(sr.scope, n.name));
  const id = `hosts:apart:${names.join(',')}`;
  const resolved = rule.instances.map((n) => resolveOrReport(ctx, sr, n, false));
  if (resolved.some((r) => !r)) {
    addCheck(ctx, { id, kind: 'placement', status: 'fail', summary: `\`apart ${rule.instances.map((n) => n.name).join(', ')}\` names something that is not in the system.` });
    return;
  }
  const targets = deployTargets(ctx);
  for (let i = 0; i < resolved.length; i++) {
    for (let j = i + 1; j < resolved.length; j++) {
      for (const a of resolved[i]!.nodes) {
        for (const b of resolved[j]!.nodes) {
          if (a === b) continue;
          const ta = targetOf(ctx, a, targets);
          const tb = targetOf(ctx, b, targets);
          if (!ta || !tb || hostMachine(ta.host) !== hostMachine(tb.host)) continue;
          const ia = ctx.graph.ids[a];
          const ib = ctx.graph.ids[b];
          const steps = [
            { instance: ia, note: `on ${ta.name}` },
            { instance: ib, note: `on ${tb.name}` },
          ];
          addCheck(ctx, { id, kind: 'placement', status: 'fail', summary: `\`${ia}\` and \`${ib}\` must run on different hosts, but both run on ${ta === tb ? where(ta) : `one machine (${where(ta)}, ${where(tb)})`}.`, counterexample: steps });
          const at = instanceRef(ctx, ib, false);
          report(ctx, {
            code: Codes.ApartViolated,
            message: `\`${ia}\` and \`${ib}\` must stay apart (\`apart\`), but both run on ${ta === tb ? where(ta) : `the same machine: ${where(ta)} and ${where(tb)}`}.`,
            file: sr.file || at.file,
            span: sr.file ? rule.span : at.span,
            hint: targets.length < 2 ? 'deploy to several targets (`deploy S to [a, b]`) so they can be placed apart' : `pin one of them elsewhere: \`place ${ib} on ...\` in the deploy`,
            related: relatedFor(ctx, steps),
          });
          return;
        }
      }
    }
  }
  addCheck(ctx, { id, kind: 'placement', status: 'pass', summary: `${names.map((n) => `\`${n}\``).join(', ')} run on different hosts.` });
}

export function checkLabelOn(ctx: Context, sr: ScopedRule, rule: LabelOnRule): void {
  const label = rule.label.name;
  const allowed = rule.targets.map((t) => t.name);
  const id = `hosts:label-on:${label}:${allowed.join(',')}`;
  const targets = deployTargets(ctx);
  const known = new Set(targets.map((t) => t.name));
  for (const t of rule.targets) {
    if (known.has(t.name) || !sr.file) continue;
    const close = suggest(t.name, [...known]);
    report(ctx, {
      code: Codes.UnknownRuleTarget,
      message: `\`${t.name}\` is not a target of this deploy, so nothing can run on it.`,
      file: sr.file,
      span: t.span,
      hint: close.length > 0 ? `did you mean \`${close[0]}\`?` : `the deploy's targets are ${[...known].map((n) => `\`${n}\``).join(', ')}`,
    });
  }
  const order = ctx.input.labels ?? { labels: [], edges: [], declaredAt: {} };
  if (!(order.labels ?? []).includes(label)) {
    if (sr.file) report(ctx, { code: Codes.UnknownRuleLabel, message: `\`${label}\` is not a declared label.`, file: sr.file, span: rule.label.span, hint: 'declare it in a `labels { ... }` block, or name a label that is' });
    addCheck(ctx, { id, kind: 'placement', status: 'fail', summary: `\`label ${label} only on\` names an unknown label.` });
    return;
  }
  const covered = labelsAtOrAbove(order, label);
  const scopePrefix = sr.scope === '' ? '' : `${sr.scope}.`;
  const ok = new Set(allowed);
  for (let v = 0; v < ctx.instances.length; v++) {
    const inst = ctx.instances[v];
    if (inst.label === undefined || !covered.has(inst.label)) continue;
    if (scopePrefix && !inst.id.startsWith(scopePrefix)) continue;
    const t = targetOf(ctx, v, targets);
    if (t && ok.has(t.name)) continue;
    const steps = [{ instance: inst.id, note: `labelled ${inst.label}, on ${t?.name ?? 'no target'}` }];
    addCheck(ctx, { id, kind: 'placement', status: 'fail', summary: `\`${inst.id}\` is labelled \`${inst.label}\` but runs on ${where(t)}, not on ${allowed.map((n) => `\`${n}\``).join(', ')}.`, counterexample: steps });
    const at = instanceRef(ctx, inst.id, true);
    report(ctx, {
      code: Codes.LabelOffHosts,
      message: `\`${inst.id}\` is labelled \`${inst.label}\`, which stays on ${allowed.map((n) => `\`${n}\``).join(', ')}, but it runs on ${where(t)}.`,
      file: sr.file || at.file,
      span: sr.file ? rule.span : at.span,
      hint: `pin it: \`place ${inst.id} on ${allowed[0] ?? '...'}\` in the deploy, or add its target to the rule`,
      related: relatedFor(ctx, steps),
    });
    return;
  }
  addCheck(ctx, { id, kind: 'placement', status: 'pass', summary: `Instances labelled \`${label}\` or above run only on ${allowed.map((n) => `\`${n}\``).join(', ')}.` });
}
