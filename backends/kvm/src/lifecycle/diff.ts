// What an apply must do, computed from what runs and what the plan wants.
//
// Instances are compared by their plan digest (`diffInstances` of @mcl/plan):
// the compiler folds everything that reaches the guest (component, template,
// params, program, ports) into it, so an unchanged digest means the running
// clones are still right and are left alone. Start order follows the
// channels: a provider starts before the instances that require it, so a
// requirer's first call finds its peer up.

import type { PlanChannel } from '@mcl/plan';

// Which instances an apply creates, replaces, keeps or deletes is the plan
// format's rule, the same `mclc plan` shows.
export { diffInstances, type InstanceDiff } from '@mcl/plan';

/**
 * Groups instance ids into layers: every instance comes after the providers it
 * requires (through `channels`). Instances within a layer do not depend on each
 * other and may start together. Channels that form a cycle cannot all be
 * honoured; the instances on a cycle are put in one layer after everything
 * they depend on outside it, in id order, so the result is deterministic.
 */
export function startLayers(ids: readonly string[], channels: readonly PlanChannel[]): string[][] {
  const inSet = new Set(ids);
  // deps[x] = providers x requires, restricted to the instances being ordered.
  const deps = new Map<string, Set<string>>();
  for (const id of ids) deps.set(id, new Set());
  for (const c of channels) {
    if (c.from.instance === c.to.instance) continue;
    if (inSet.has(c.from.instance) && inSet.has(c.to.instance)) deps.get(c.from.instance)!.add(c.to.instance);
  }
  const layers: string[][] = [];
  const done = new Set<string>();
  let remaining = [...ids].sort();
  while (remaining.length > 0) {
    let layer = remaining.filter((id) => [...deps.get(id)!].every((p) => done.has(p)));
    if (layer.length === 0) {
      // Only cycles are left. Take the strongly connected part that depends on
      // nothing outside itself: the members of the cycle reachable from the
      // smallest id whose own dependencies all lead back to it.
      layer = smallestClosedCycle(remaining, deps, done);
    }
    layers.push(layer);
    for (const id of layer) done.add(id);
    remaining = remaining.filter((id) => !done.has(id));
  }
  return layers;
}

function reach(from: string, deps: Map<string, Set<string>>, done: Set<string>): Set<string> {
  const seen = new Set<string>([from]);
  const stack = [from];
  while (stack.length) {
    for (const p of deps.get(stack.pop()!)!) {
      if (!done.has(p) && !seen.has(p)) {
        seen.add(p);
        stack.push(p);
      }
    }
  }
  return seen;
}

function smallestClosedCycle(remaining: string[], deps: Map<string, Set<string>>, done: Set<string>): string[] {
  // A node whose reachable set is smallest is in a "sink" component of the
  // dependency graph; that component must go first.
  let best: Set<string> | null = null;
  for (const id of remaining) {
    const r = reach(id, deps, done);
    if (best === null || r.size < best.size) best = r;
  }
  return [...best!].sort();
}

/** Stop order: the reverse of the start order (requirers go before the providers they use). */
export function stopLayers(ids: readonly string[], channels: readonly PlanChannel[]): string[][] {
  return startLayers(ids, channels).reverse();
}
