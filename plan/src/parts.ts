// A plan over several targets (`targets`, `instances[].target`; spec/hosts.md,
// "Plans over several hosts") is applied one target at a time: each host gets
// the plan's part for its target, the instances placed there with their
// channels, exposures, egresses, templates and images. The whole plan is verified first
// (its digests, signature and policy checks cover every host); the part is a
// plan of its own, with its own digests, that the host's backend applies and
// records in its state as any plan of one target.
//
// A channel whose ends are on two targets (a cross-host channel) is in the
// part of each of its two targets: its broker checks it there and the link
// between the two hosts carries it (spec/hosts.md, "Links between hosts").
// The instance at the other end is in the part's `remote_instances`, with its
// `target`, for the broker (its ports and their types) and the link (where it
// runs); the backend starts, diffs, records and reports only `instances`.

import { invariantsDigest, planDigest, type Sha256 } from './digest';
import { canonicalJson } from './canonical';
import type { MessageSchema, Plan, PlanChannel, PlanInstance } from './types';

/**
 * Where each instance of the plan runs: its `target`, or the plan's one target; in a part, also
 * the instances of `remote_instances` at the far end of its cross-host channels, on their targets.
 */
export function instanceTargets(plan: Plan): Map<string, string> {
  const where = new Map(plan.instances.map((i) => [i.id, (plan.targets || plan.remote_instances) && i.target !== undefined ? i.target : plan.target.name]));
  for (const r of plan.remote_instances ?? []) if (r.target !== undefined && !where.has(r.id)) where.set(r.id, r.target);
  return where;
}

/**
 * The channels whose two ends run on different targets (carried by the inter-host link), sorted
 * by id as in the plan: of a whole plan over several targets, or of one of its parts (the
 * channels between its target and the others).
 */
export function crossHostChannels(plan: Plan): PlanChannel[] {
  if (!plan.targets && !plan.remote_instances) return [];
  const where = instanceTargets(plan);
  return plan.channels.filter((c) => where.get(c.from.instance) !== undefined && where.get(c.to.instance) !== undefined && where.get(c.from.instance) !== where.get(c.to.instance));
}

/**
 * Instance `id` as a plan or part knows it: one of its own `instances`, or one at the far end of a
 * cross-host channel (`remote_instances`), which runs on another target and whose clone a host may
 * keep when it is moved there (spec/hosts.md, "Live migration"). Undefined when the plan knows neither.
 */
export function knownInstance(plan: Plan, id: string): PlanInstance | undefined {
  return plan.instances.find((i) => i.id === id) ?? plan.remote_instances?.find((i) => i.id === id);
}

/**
 * The plan a part's broker is made over: its own instances and, after them, the remote ends of
 * its cross-host channels (`remote_instances`, with their targets), so that the broker knows
 * every port its channels join. The same plan when it has no remote instances.
 */
export function brokerPlan(plan: Plan): Plan {
  if (!plan.remote_instances?.length) return plan;
  return { ...plan, instances: [...plan.instances, ...plan.remote_instances] };
}

/**
 * The channels between targets `a` and `b` (either direction), sorted by id: what the link
 * between those two hosts carries. A frame names its channel by its index in this list, the
 * same on both hosts whether each holds the whole plan or its own part.
 */
export function channelsBetween(plan: Plan, a: string, b: string): PlanChannel[] {
  const where = instanceTargets(plan);
  return crossHostChannels(plan)
    .filter((c) => {
      const ends = [where.get(c.from.instance), where.get(c.to.instance)];
      return ends.includes(a) && ends.includes(b);
    })
    .sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
}

/**
 * What the two hosts of a link must agree on, as canonical JSON (the link's greeting compares
 * its digest): the channels between `a` and `b` (`channelsBetween`), the message schemas their
 * operations use (with the schemas those refer to), and where each of their ends runs. The two
 * hosts' parts of one plan give the same text; a host running another plan, or the same
 * channels under other types, gives another.
 */
export function linkAgreement(plan: Plan, a: string, b: string): string {
  const channels = channelsBetween(plan, a, b);
  const where = instanceTargets(plan);
  const schemas: Record<string, MessageSchema | null> = {};
  const visit = (name: string) => {
    if (name in schemas) return;
    const s = plan.schemas[name];
    schemas[name] = s ?? null;
    if (s) refsOf(s, visit);
  };
  for (const c of channels) for (const op of c.ops) [op.input, op.output].forEach((n) => n !== undefined && visit(n));
  const placement: Record<string, string> = {};
  for (const c of channels) for (const id of [c.from.instance, c.to.instance]) placement[id] = where.get(id)!;
  return canonicalJson({ hosts: [a, b].sort(), channels, schemas, placement });
}

/** Calls `visit` with every schema name `s` refers to. */
function refsOf(s: MessageSchema, visit: (name: string) => void): void {
  switch (s.kind) {
    case 'ref':
      return visit(s.name);
    case 'list':
      return refsOf(s.element, visit);
    case 'map':
      refsOf(s.key, visit);
      return refsOf(s.value, visit);
    case 'record':
      for (const f of s.fields) refsOf(f.type, visit);
      return;
    case 'union':
      for (const v of s.variants) if (v.type) refsOf(v.type, visit);
      return;
    default:
      return;
  }
}

/** The part of a plan over several targets that runs on `target`, with its digests; undefined for a target the plan does not name. */
export function planPart(plan: Plan, target: string, sha256: Sha256): Plan | undefined {
  const t = (plan.targets ?? [plan.target]).find((x) => x.name === target);
  if (!t) return undefined;
  if (!plan.targets) return plan;
  const where = instanceTargets(plan);
  const instances = plan.instances.filter((i) => where.get(i.id) === target);
  const here = new Set(instances.map((i) => i.id));
  // The channels with an end here: those within the target, and those crossing to or from it.
  const channels = plan.channels.filter((c) => here.has(c.from.instance) || here.has(c.to.instance));
  const far = new Set(channels.flatMap((c) => [c.from.instance, c.to.instance]).filter((id) => !here.has(id)));
  const remote = plan.instances.filter((i) => far.has(i.id)).map((i) => ({ ...i, target: where.get(i.id)! }));
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
    // Optional too: only a part with cross-host channels has the instances at their far ends.
    ...(remote.length ? { remote_instances: remote } : {}),
    prior_state: priorStates?.[target] ?? null,
    digests: { ...plan.digests, invariants: '', plan: '' },
  };
  part.digests.invariants = invariantsDigest(part.channels, part.exposures, part.checks, sha256, part.egresses);
  part.digests.plan = planDigest(part, sha256);
  return part;
}
