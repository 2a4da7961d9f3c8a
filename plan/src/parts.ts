// A plan over several targets (`targets`, `instances[].target`; spec/hosts.md,
// "Plans over several hosts") is applied one target at a time: each host gets
// the plan's part for its target, the instances placed there with their
// channels, exposures, egresses, templates and images. The whole plan is verified first
// (its digests, signature and policy checks cover every host); the part is a
// plan of its own, with its own digests, that the host's backend applies and
// records in its state as any plan of one target.

import { invariantsDigest, planDigest, type Sha256 } from './digest';
import type { Plan, PlanChannel } from './types';

/** Where each instance of the plan runs: its `target`, or the plan's one target. */
export function instanceTargets(plan: Plan): Map<string, string> {
  return new Map(plan.instances.map((i) => [i.id, plan.targets && i.target !== undefined ? i.target : plan.target.name]));
}

/** The channels whose two ends run on different targets (carried by the inter-host link), sorted by id as in the plan. */
export function crossHostChannels(plan: Plan): PlanChannel[] {
  if (!plan.targets) return [];
  const where = instanceTargets(plan);
  return plan.channels.filter((c) => where.get(c.from.instance) !== where.get(c.to.instance));
}

/** The part of a plan over several targets that runs on `target`, with its digests; undefined for a target the plan does not name. */
export function planPart(plan: Plan, target: string, sha256: Sha256): Plan | undefined {
  const t = (plan.targets ?? [plan.target]).find((x) => x.name === target);
  if (!t) return undefined;
  if (!plan.targets) return plan;
  const where = instanceTargets(plan);
  const instances = plan.instances.filter((i) => where.get(i.id) === target);
  const here = new Set(instances.map((i) => i.id));
  const channels = plan.channels.filter((c) => here.has(c.from.instance) && here.has(c.to.instance));
  const exposures = plan.exposures.filter((x) => here.has(x.instance));
  const egresses = plan.egresses?.filter((x) => here.has(x.instance));
  const templateIds = new Set(instances.map((i) => i.template));
  const templates = plan.templates.filter((x) => templateIds.has(x.id));
  const imageNames = new Set(templates.map((x) => x.image));
  const { targets: _targets, prior_states: priorStates, ...rest } = plan;
  const part: Plan = {
    ...rest,
    target: t,
    images: plan.images.filter((i) => imageNames.has(i.name)),
    templates,
    instances,
    channels,
    exposures,
    // Optional in the format: absent when the plan has none, as a plan of one target writes it.
    ...(egresses ? { egresses } : {}),
    prior_state: priorStates?.[target] ?? null,
    digests: { ...plan.digests, invariants: '', plan: '' },
  };
  part.digests.invariants = invariantsDigest(part.channels, part.exposures, part.checks, sha256, part.egresses);
  part.digests.plan = planDigest(part, sha256);
  return part;
}
