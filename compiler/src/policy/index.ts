// The policy checker: checks the elaborated system (instances, channels,
// exposures) against the policy rules, the information-flow labels, the call
// graph and the target host's capacity. Pure: no IO, and it never throws on
// bad input. Every check produces a `PlanCheck` whether it passes or not, so
// the plan records what was verified; failures also produce diagnostics with
// the counterexample as related locations. spec/policy.md is the reference.

import { Codes, makeDiagnostic, sortDiagnostics } from '@mcl/language';
import type { PlanCheck } from '@mcl/plan';
import { createContext, type Context } from './context';
import { checkCallCycles } from './cycles';
import { buildLabelOrder, checkLattice, checkNoFlow, propagate, type FlowResult } from './flow';
import { compareStrings } from './graph';
import { checkExposedOnly, checkNoPath, checkOnly, exposureSummary, wiringSummary } from './reach';
import { checkOnlyTo } from './contain';
import { checkEgressFlow, checkEgressOnly, checkNoPathToEgress, egressNamed } from './egress';
import { checkBudget, checkTarget } from './resources';
import { checkApart, checkLabelOn } from './hosts';
import type { PolicyInput, PolicyResult } from './types';

export type { PolicyInput, PolicyResult, ScopedRule, LabelOrder, SourceRef } from './types';
export { VM_OVERHEAD_BYTES, IDLE_DIRTY_FRACTION, cloneCount } from './resources';

export function checkPolicies(input: PolicyInput): PolicyResult {
  try {
    return run(input);
  } catch (error) {
    // A failure here is a bug in the checker, not in the user's sources; it is
    // reported as a diagnostic so that callers still get a result.
    const message = error instanceof Error ? error.message : String(error);
    return {
      checks: [{ id: 'policy', kind: 'wiring', status: 'fail', summary: `The policy checker failed: ${message}` }],
      resources: { template_memory_bytes: 0, estimated_private_bytes: 0, estimated_total_bytes: 0, worst_case_bytes: 0, committed_vcpus: 0 },
      diagnostics: [
        makeDiagnostic(Codes.PolicyCheckerFailed, `The policy checker failed unexpectedly: ${message}.`, input?.origins?.target?.file ?? '', input?.origins?.target?.span ?? { start: 0, end: 0 }, {
          hint: 'This is a bug in mclc; please report it with the sources that trigger it.',
        }),
      ],
    };
  }
}

function run(input: PolicyInput): PolicyResult {
  const ctx = createContext(input);
  wiringSummary(ctx);
  exposureSummary(ctx);
  const order = buildLabelOrder(ctx);
  let flow: FlowResult | undefined;
  const flowResult = (): FlowResult => (flow ??= propagate(ctx, order));
  checkLattice(ctx, flowResult());
  if (ctx.egresses.length) checkEgressFlow(ctx, flowResult());
  for (const sr of input.rules ?? []) {
    const rule = sr?.rule;
    if (!rule || typeof rule !== 'object') continue;
    switch (rule.kind) {
      case 'OnlyRule':
        if (rule.mode === 'to') checkOnlyTo(ctx, sr, rule, order);
        else checkOnly(ctx, sr, rule);
        break;
      case 'NoPathRule': {
        const egress = egressNamed(ctx, sr.scope, rule.to?.name ?? '');
        if (egress) checkNoPathToEgress(ctx, sr, rule, egress);
        else checkNoPath(ctx, sr, rule);
        break;
      }
      case 'ExposedOnlyRule':
        checkExposedOnly(ctx, sr, rule);
        break;
      case 'EgressOnlyRule':
        checkEgressOnly(ctx, sr, rule);
        break;
      case 'NoFlowRule':
        checkNoFlow(ctx, sr, rule, flowResult());
        break;
      case 'BudgetRule':
        checkBudget(ctx, sr, rule);
        break;
      case 'ApartRule':
        checkApart(ctx, sr, rule);
        break;
      case 'LabelOnRule':
        checkLabelOn(ctx, sr, rule);
        break;
      default:
        break;
    }
  }
  const resources = checkTarget(ctx);
  checkCallCycles(ctx);
  return { checks: finishChecks(ctx), resources, diagnostics: sortDiagnostics(ctx.diagnostics) };
}

/**
 * Makes ids unique (the same rule written twice gets `#2`, `#3` in source
 * order) and sorts the checks by id. Optional fields that are unset are left
 * out so that the plan's canonical JSON does not depend on how a check was built.
 */
function finishChecks(ctx: Context): PlanCheck[] {
  const seen = new Map<string, number>();
  const out: PlanCheck[] = [];
  for (const check of ctx.checks) {
    const n = (seen.get(check.id) ?? 0) + 1;
    seen.set(check.id, n);
    const id = n === 1 ? check.id : `${check.id}#${n}`;
    const clean: PlanCheck = { id, kind: check.kind, status: check.status, summary: check.summary };
    if (check.counterexample !== undefined) clean.counterexample = check.counterexample;
    out.push(clean);
  }
  return out.sort((a, b) => compareStrings(a.id, b.id));
}
