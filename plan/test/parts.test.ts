// The part of a plan over several targets that one host applies (parts.ts).

import { describe, expect, it } from 'vitest';
import { crossHostChannels, instanceTargets, planPart, staleReason, type Plan } from '../src/index';
import { webstackPlan } from './fixtures';

function twoTargets(): Plan {
  const plan = structuredClone(webstackPlan());
  const second = { ...plan.target, name: 'node2', host: 'ssh://node2' };
  plan.targets = [plan.target, second];
  plan.instances.forEach((i, n) => (i.target = n === 0 ? plan.target.name : 'node2'));
  plan.prior_states = { [plan.target.name]: null, node2: { lineage: 'l', serial: 3 } };
  return plan;
}

describe('planPart', () => {
  it('keeps a plan of one target whole', () => {
    const plan = webstackPlan();
    expect(planPart(plan, plan.target.name, (x) => String(x.length))).toBe(plan);
    expect(planPart(plan, 'nope', (x) => String(x.length))).toBeUndefined();
    expect(crossHostChannels(plan)).toEqual([]);
  });

  it("gives each target its instances, the channels within it, and its prior state, with the part's own digests", async () => {
    const { createHash } = await import('node:crypto');
    const sha = (parts: string | readonly string[]) => {
      const h = createHash('sha256');
      for (const p of Array.isArray(parts) ? parts : [parts]) h.update(p);
      return h.digest('hex');
    };
    const plan = twoTargets();
    const where = instanceTargets(plan);
    const part = planPart(plan, 'node2', sha)!;
    expect(part.targets).toBeUndefined();
    expect(part.prior_states).toBeUndefined();
    expect(part.target.name).toBe('node2');
    expect(part.instances.every((i) => where.get(i.id) === 'node2')).toBe(true);
    expect(part.channels.every((c) => where.get(c.from.instance) === 'node2' && where.get(c.to.instance) === 'node2')).toBe(true);
    expect(part.prior_state).toEqual({ lineage: 'l', serial: 3 });
    expect(staleReason(part, null)?.message).toContain('state l serial 3');
    expect(crossHostChannels(plan).length + planPart(plan, plan.target.name, sha)!.channels.length + part.channels.length).toBe(plan.channels.length);
  });
});
