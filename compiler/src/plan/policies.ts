// The policy rules a plan carries (`Plan.policies`), and the checks run again
// from a plan alone.
//
// A plan records the result of every check (`checks`), but a result is only
// a claim: anyone who edits a plan can recompute its digests. So the plan
// also carries the rules and the label order the checks were computed from,
// and `recheckPlan` runs the same policy checker over the plan's own
// instances, channels, exposures and target: a plan whose checks do not come
// out as it claims, or fail, is refused by `mclc apply`. What a plan cannot
// prove about itself (that its rules, limits and instances are those of the
// reviewed sources) is what plan signing is for (spec/plan.md, "Trust").

import type { Ident, PolicyRule, Span } from '@mcl/language';
import { canonicalJson, type Plan, type PlanCheck, type PlanPolicies, type PlanPolicyRule, type PlanResources } from '@mcl/plan';
import { checkPolicies } from '../policy/index';
import type { LabelOrder, ScopedRule } from '../policy/types';

/** The rules and label order as the plan records them (names only: spans point into sources a plan does not have). */
export function planPolicies(rules: readonly ScopedRule[], labels: LabelOrder): PlanPolicies {
  const out: PlanPolicyRule[] = [];
  for (const { rule, scope } of rules) {
    switch (rule.kind) {
      case 'OnlyRule':
        out.push({ kind: 'only', scope, mode: rule.mode, target: rule.target.name, sources: rule.sources.map((s) => s.name) });
        break;
      case 'NoPathRule':
        out.push({ kind: 'no_path', scope, from: rule.from.name, to: rule.to.name });
        break;
      case 'ExposedOnlyRule':
        out.push({ kind: 'exposed_only', scope, ports: rule.ports.map((p) => ({ instance: p.instance.name, port: p.port.name })) });
        break;
      case 'EgressOnlyRule':
        out.push({ kind: 'egress_only', scope, names: rule.names.map((n) => n.name) });
        break;
      case 'NoFlowRule':
        out.push({ kind: 'no_flow', scope, label: rule.label.name, to: rule.to.name });
        break;
      case 'ApartRule':
        out.push({ kind: 'apart', scope, instances: rule.instances.map((i) => i.name) });
        break;
      case 'LabelOnRule':
        out.push({ kind: 'label_on', scope, label: rule.label.name, targets: rule.targets.map((t) => t.name) });
        break;
      case 'BudgetRule': {
        // A plan exists only when every budget has a valid value (the checker reports the others).
        const v = rule.value;
        if (v.kind === 'Size') out.push({ kind: 'budget', scope, resource: rule.resource, value: v.bytes, raw: v.raw });
        else if (v.kind === 'Int') out.push({ kind: 'budget', scope, resource: rule.resource, value: v.value, raw: v.raw });
        break;
      }
    }
  }
  return { rules: out, labels: { labels: [...labels.labels], edges: labels.edges.map(([a, b]) => [a, b]) } };
}

const NOWHERE: Span = { start: 0, end: 0 };
const ident = (name: string): Ident => ({ kind: 'Ident', name, span: NOWHERE });

/** The checker's input rules from the plan's (the inverse of `planPolicies`, with empty spans). */
function scopedRules(policies: PlanPolicies): ScopedRule[] {
  return policies.rules.map((r): ScopedRule => {
    let rule: PolicyRule;
    switch (r.kind) {
      case 'only':
        rule = { kind: 'OnlyRule', target: ident(r.target), mode: r.mode, sources: r.sources.map(ident), span: NOWHERE };
        break;
      case 'no_path':
        rule = { kind: 'NoPathRule', from: ident(r.from), to: ident(r.to), span: NOWHERE };
        break;
      case 'exposed_only':
        rule = { kind: 'ExposedOnlyRule', ports: r.ports.map((p) => ({ kind: 'PortRef', instance: ident(p.instance), port: ident(p.port), span: NOWHERE })), span: NOWHERE };
        break;
      case 'egress_only':
        rule = { kind: 'EgressOnlyRule', names: r.names.map(ident), span: NOWHERE };
        break;
      case 'no_flow':
        rule = { kind: 'NoFlowRule', label: ident(r.label), to: ident(r.to), span: NOWHERE };
        break;
      case 'apart':
        rule = { kind: 'ApartRule', instances: r.instances.map(ident), span: NOWHERE };
        break;
      case 'label_on':
        rule = { kind: 'LabelOnRule', label: ident(r.label), targets: r.targets.map(ident), span: NOWHERE };
        break;
      case 'budget':
        rule = {
          kind: 'BudgetRule',
          resource: r.resource,
          value:
            r.resource === 'memory'
              ? { kind: 'Size', raw: r.raw, amount: r.value, unit: 'B', bytes: r.value, span: NOWHERE }
              : { kind: 'Int', raw: r.raw, value: r.value, span: NOWHERE },
          span: NOWHERE,
        };
        break;
    }
    return { rule, file: '', scope: r.scope };
  });
}

/**
 * The checks (sorted by id) and resource estimate the policy checker finds
 * for the plan's own data and rules, or undefined for a plan without
 * `policies`.
 */
export function planChecks(plan: Plan): { checks: PlanCheck[]; resources: PlanResources } | undefined {
  if (!plan.policies) return undefined;
  const result = checkPolicies({
    target: plan.target,
    ...(plan.targets ? { targets: plan.targets } : {}),
    templates: plan.templates,
    instances: plan.instances,
    channels: plan.channels,
    exposures: plan.exposures,
    egresses: plan.egresses,
    rules: scopedRules(plan.policies),
    labels: { labels: plan.policies.labels.labels, edges: plan.policies.labels.edges, declaredAt: {} },
    origins: { instances: {}, channels: {}, exposures: {}, labels: {} },
  });
  const checks = [...result.checks].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { checks, resources: result.resources };
}

/**
 * Runs the policy checks again over the plan's own data and returns what does
 * not hold, as sentences (empty when the plan's checks are what the checker
 * finds and none fails). A plan without `policies` (format 1.0) cannot be
 * checked and is reported as such.
 */
export function recheckPlan(plan: Plan): string[] {
  const result = planChecks(plan);
  if (!result) return ['the plan does not record its policy rules (it was written by an mclc older than plan format 1.1), so its checks cannot be verified'];
  const out: string[] = [];
  // Placement: an instance on no target, or on one the plan does not list, would escape every capacity and host check.
  if (plan.targets) {
    const names = new Set(plan.targets.map((t) => t.name));
    if (names.size !== plan.targets.length) out.push('the plan names a target twice in `targets`');
    if (plan.targets[0]?.name !== plan.target.name) out.push('`target` is not the first of `targets`');
    for (const i of plan.instances) if (i.target === undefined || !names.has(i.target)) out.push(`instance ${i.id} is placed on ${i.target === undefined ? 'no target' : `\`${i.target}\`, which is not one of the plan's targets`}`);
  } else {
    for (const i of plan.instances) if (i.target !== undefined) out.push(`instance ${i.id} names a target, but the plan has no \`targets\``);
  }
  const claimed = new Map(plan.checks.map((c) => [c.id, c]));
  const found = new Map(result.checks.map((c) => [c.id, c]));
  for (const c of result.checks) {
    const had = claimed.get(c.id);
    if (had && had.status !== c.status) out.push(`check ${c.id} is recorded as ${had.status} but is ${c.status}: ${c.summary}`);
    else if (c.status === 'fail') out.push(`check ${c.id} fails: ${c.summary}`);
    if (!had) out.push(`check ${c.id} is missing from the plan's checks`);
    else if (had.status === c.status && canonicalJson(had) !== canonicalJson(c)) out.push(`check ${c.id} is recorded differently from what the checker finds: ${c.summary}`);
  }
  for (const c of plan.checks) if (!found.has(c.id)) out.push(`check ${c.id} is recorded but no rule of the plan produces it`);
  if (canonicalJson(result.resources) !== canonicalJson(plan.resources)) out.push('the resource estimate does not match the plan\'s instances and templates');
  return out;
}
