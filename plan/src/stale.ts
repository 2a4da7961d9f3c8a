// Whether a plan may be applied to the state that exists when `apply` holds
// the lock. A plan is a diff computed against one state; applied to another,
// it would silently undo whatever changed in between (someone else's apply),
// so apply refuses it as `stale`, like Terraform's "Saved plan is stale".

import type { DeploymentState, Plan } from './types';

export interface StaleReason {
  message: string;
  hint: string;
}

const REPLAN_HINT = 'run `mclc plan` again (it compares the sources with the current deployment), review it, and apply the new plan';

/**
 * True when the state records a deployment: a plan was applied and not
 * destroyed since. `destroy` writes a state with no instances and a null
 * `plan_digest`; that state (like no state at all) records none.
 */
export function recordsDeployment(state: DeploymentState | null): boolean {
  return !!state && (state.plan_digest !== null || state.instances.length > 0);
}

/**
 * Why `plan` must not be applied to `state`, or null when it may be.
 *
 * - The plan the state was last applied from may always be applied again
 *   (same plan digest): that only converges, e.g. after the supervisor died
 *   or an earlier apply of the same plan was interrupted.
 * - A plan made against a state (`prior_state` set) needs exactly that state:
 *   same lineage and serial.
 * - A plan made with no state (`prior_state` null) needs a state that records
 *   no deployment: none, or one emptied by `destroy`.
 */
export function staleReason(plan: Plan, state: DeploymentState | null): StaleReason | null {
  if (state && state.plan_digest !== null && state.plan_digest === plan.digests.plan) return null;
  const prior = plan.prior_state;
  if (prior) {
    if (state && state.lineage === prior.lineage && state.serial === prior.serial) return null;
    return {
      message: `the plan was made against state ${prior.lineage} serial ${prior.serial}, but the state is ${state ? `${state.lineage} serial ${state.serial}` : 'absent'}`,
      hint: REPLAN_HINT,
    };
  }
  if (!recordsDeployment(state)) return null;
  const s = state!;
  const what = s.instances.length === 1 ? '1 instance' : `${s.instances.length} instances`;
  return {
    message:
      `the plan was made when nothing was deployed, but the state now records a deployment of ${s.system ?? 'a system'} ` +
      `(serial ${s.serial}, ${what}); applying the plan would overwrite it`,
    hint: REPLAN_HINT,
  };
}
