// The part of a plan over several targets that one host applies (parts.ts).

import { describe, expect, it } from 'vitest';
import { crossHostChannels, digestMismatches, instanceTargets, planPart, staleReason, type Plan, type PlanEgress } from '../src/index';
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

  it("gives each target only its own instances' egresses, covered by the part's digests", async () => {
    const { createHash } = await import('node:crypto');
    const sha = (parts: string | readonly string[]) => {
      const h = createHash('sha256');
      for (const p of Array.isArray(parts) ? parts : [parts]) h.update(p);
      return h.digest('hex');
    };
    const plan = twoTargets();
    const egress = (name: string, instance: string) =>
      ({ name, instance, port: 'out', protocol: 'std.tcp.Stream', kind: 'tcp', destination: { scheme: 'tcp', host: 'smtp.example.com', port: 25 }, ops: {}, invariants: plan.channels[0].invariants }) as unknown as PlanEgress;
    plan.egresses = [egress('first', plan.instances[0].id), egress('second', plan.instances[1].id)];
    for (const target of [plan.target.name, 'node2']) {
      const part = planPart(plan, target, sha)!;
      expect(part.egresses!.map((e) => e.instance)).toEqual(part.instances.filter((i) => plan.egresses!.some((e) => e.instance === i.id)).map((i) => i.id));
      // The host checks the part's digests before it applies it (the fixture's own instance, image and source
      // digests are not those of this hand-placed plan: only the digests the part makes are looked at).
      expect(digestMismatches(part, sha).filter((m) => /^digests\.(invariants|plan) /.test(m))).toEqual([]);
    }
  });
});
