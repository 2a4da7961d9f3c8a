// Recomputing a plan's own digest, for tools that edit a plan after the
// compiler produced it (the CLI fills `prior_state`).

import type { Plan } from '@mcl/plan';
import { canonicalJson } from '../util/canonical';
import { sha256Hex } from '../util/sha256';

/** sha256 of the canonical JSON of the plan with `digests.plan` set to "". */
export function planDigest(plan: Plan): string {
  return sha256Hex(canonicalJson({ ...plan, digests: { ...plan.digests, plan: '' } }));
}
