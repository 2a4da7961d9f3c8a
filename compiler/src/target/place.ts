// Placement: which target of a deploy to several targets each instance runs on
// (spec/hosts.md, "Placement").
//
// Pinned instances (`place db on node1` in the deploy; a system's name pins
// every instance below it, and the longest pinned name wins) go where they are
// pinned. The rest are placed first-fit decreasing: heaviest first (committed
// guest memory, then vCPUs, then the instance id, so the order is total), each
// on the first target in deploy order where it fits the target's memory and
// vCPUs with what is already there and where it keeps the host policies
// (`apart`, `label L only on [...]`). An instance is placed as a whole: its
// replicas, sessions and created clones run on one target. The same inputs give
// the same placement. What fits nowhere is returned, for a diagnostic naming the
// targets and what is left on each; the policy checker then checks the result
// like any plan (capacity per target, host policies).
//
// Pure, no IO; it reads the plan-shaped instances and targets, and the policy
// rules as the checker gets them, so `mclc apply` could place again from a plan.

import type { PlanInstance, PlanTarget, PlanTemplate } from '@mcl/plan';
import { hostMachine } from '@mcl/plan/host';
import { cloneCount, instancesUnder, privateEstimate } from '../policy/resources';
import type { LabelOrder, ScopedRule } from '../policy/types';
import { qualify } from '../policy/names';

/** The host rules of a composition, resolved to instance ids. */
export interface HostRules {
  /** Each `apart` rule: the instances of each name it lists (a system stands for every instance below it). */
  apart: string[][][];
  /** Each `label L only on [...]` rule: the labels it covers (L and every label above it) and the targets allowed. */
  labelOn: { labels: Set<string>; targets: Set<string> }[];
}

/** Labels at or above `label` in the declared order (the label itself included). */
export function labelsAtOrAbove(order: Pick<LabelOrder, 'edges'>, label: string): Set<string> {
  const out = new Set([label]);
  const stack = [label];
  while (stack.length > 0) {
    const l = stack.pop()!;
    for (const [lo, hi] of order.edges ?? []) {
      if (lo === l && !out.has(hi)) {
        out.add(hi);
        stack.push(hi);
      }
    }
  }
  return out;
}

/** `instances` sorted by id. Names that resolve to nothing are left out (the checker reports them). */
export function hostRules(instances: readonly PlanInstance[], rules: readonly ScopedRule[], order: Pick<LabelOrder, 'edges'>): HostRules {
  const out: HostRules = { apart: [], labelOn: [] };
  for (const { rule, scope } of rules) {
    if (rule?.kind === 'ApartRule') {
      out.apart.push(rule.instances.map((n) => instancesUnder(instances, qualify(scope, n.name)).map((i) => i.id)));
    } else if (rule?.kind === 'LabelOnRule') {
      out.labelOn.push({ labels: labelsAtOrAbove(order, rule.label.name), targets: new Set(rule.targets.map((t) => t.name)) });
    }
  }
  return out;
}

export interface PlacementInput {
  /** Sorted by id. */
  instances: readonly PlanInstance[];
  templates: readonly PlanTemplate[];
  /** In deploy order. */
  targets: readonly PlanTarget[];
  /** Instance id -> target name, for pinned instances. */
  pins: ReadonlyMap<string, string>;
  rules: HostRules;
}

export interface Misfit {
  instance: PlanInstance;
  /** Estimated host memory and vCPUs the instance needs on a target that does not yet hold its template. */
  memory: number;
  vcpus: number;
  /** What is left on each target the host policies allow, in deploy order. */
  left: { target: PlanTarget; memory: number; vcpus: number }[];
}

interface Load {
  target: PlanTarget;
  machine: string;
  templates: Set<string>;
  memory: number;
  vcpus: number;
}

const nonNegative = (n: number | undefined): number => (typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : 0);

export function placeInstances(input: PlacementInput): { placement: Map<string, string>; misfits: Misfit[] } {
  const templateMemory = new Map(input.templates.map((t) => [t.id, nonNegative(t.memory_bytes)]));
  const loads: Load[] = input.targets.map((target) => ({ target, machine: hostMachine(target.host), templates: new Set(), memory: 0, vcpus: 0 }));
  const byName = new Map(loads.map((l) => [l.target.name, l]));
  const placement = new Map<string, string>();
  const misfits: Misfit[] = [];
  const cost = (inst: PlanInstance, load: Load): { memory: number; vcpus: number } => {
    const clones = cloneCount(inst);
    const template = load.templates.has(inst.template) ? 0 : (templateMemory.get(inst.template) ?? nonNegative(inst.memory_bytes));
    return { memory: template + clones * privateEstimate(nonNegative(inst.memory_bytes)), vcpus: clones * Math.max(1, nonNegative(inst.vcpus)) };
  };
  const put = (inst: PlanInstance, load: Load) => {
    const c = cost(inst, load);
    load.memory += c.memory;
    load.vcpus += c.vcpus;
    load.templates.add(inst.template);
    placement.set(inst.id, load.target.name);
  };
  const room = (load: Load) => ({ memory: nonNegative(load.target.memory_bytes) - load.memory, vcpus: nonNegative(load.target.vcpus) * (nonNegative(load.target.vcpu_overcommit) || 1) - load.vcpus });
  const fits = (inst: PlanInstance, load: Load): boolean => {
    const c = cost(inst, load);
    const r = room(load);
    return c.memory <= r.memory && c.vcpus <= r.vcpus;
  };
  // Which apart groups each instance is in: the ids it must not share a machine with.
  const apartFrom = new Map<string, string[]>();
  for (const groups of input.rules.apart) {
    groups.forEach((g, i) => {
      const others = groups.flatMap((h, j) => (j === i ? [] : h));
      for (const id of g) apartFrom.set(id, [...(apartFrom.get(id) ?? []), ...others]);
    });
  }
  const machineOf = new Map<string, string>();
  const keepsRules = (inst: PlanInstance, load: Load): boolean => {
    if (inst.label !== undefined) {
      for (const r of input.rules.labelOn) if (r.labels.has(inst.label) && !r.targets.has(load.target.name)) return false;
    }
    for (const other of apartFrom.get(inst.id) ?? []) if (other !== inst.id && machineOf.get(other) === load.machine) return false;
    return true;
  };
  const record = (inst: PlanInstance, load: Load) => {
    put(inst, load);
    machineOf.set(inst.id, load.machine);
  };

  const free: PlanInstance[] = [];
  for (const inst of input.instances) {
    const pinned = input.pins.get(inst.id);
    const load = pinned !== undefined ? byName.get(pinned) : undefined;
    if (load) record(inst, load);
    else free.push(inst);
  }
  const weight = (i: PlanInstance) => cloneCount(i) * nonNegative(i.memory_bytes);
  const cpus = (i: PlanInstance) => cloneCount(i) * Math.max(1, nonNegative(i.vcpus));
  free.sort((a, b) => weight(b) - weight(a) || cpus(b) - cpus(a) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const inst of free) {
    const allowed = loads.filter((l) => keepsRules(inst, l));
    const load = allowed.find((l) => fits(inst, l)) ?? loads.find((l) => fits(inst, l));
    if (load) {
      record(inst, load);
      continue;
    }
    const c = cost(inst, { target: input.targets[0], machine: '', templates: new Set(), memory: 0, vcpus: 0 });
    misfits.push({ instance: inst, memory: c.memory, vcpus: c.vcpus, left: (allowed.length > 0 ? allowed : loads).map((l) => ({ target: l.target, ...room(l) })) });
  }
  return { placement, misfits };
}
