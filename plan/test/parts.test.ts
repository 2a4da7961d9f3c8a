// The part of a plan over several targets that one host applies (parts.ts).

import { describe, expect, it } from 'vitest';
import { brokerPlan, channelsBetween, crossHostChannels, digestMismatches, instanceTargets, knownInstance, linkAgreement, planPart, staleReason, validatePlan, type Plan, type PlanEgress } from '../src/index';
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

  it("gives each target its instances, the channels with an end there, and its prior state, with the part's own digests", async () => {
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
    expect(part.channels.every((c) => where.get(c.from.instance) === 'node2' || where.get(c.to.instance) === 'node2')).toBe(true);
    expect(part.prior_state).toEqual({ lineage: 'l', serial: 3 });
    expect(staleReason(part, null)?.message).toContain('state l serial 3');
    // Every channel is in the part of each target it has an end on: a cross-host channel in both.
    expect(planPart(plan, plan.target.name, sha)!.channels.length + part.channels.length - crossHostChannels(plan).length).toBe(plan.channels.length);
  });

  it('gives both targets of a cross-host channel the channel and the far end as a remote instance, which the backend never sees as its own', async () => {
    const { createHash } = await import('node:crypto');
    const sha = (parts: string | readonly string[]) => {
      const h = createHash('sha256');
      for (const p of Array.isArray(parts) ? parts : [parts]) h.update(p);
      return h.digest('hex');
    };
    const plan = twoTargets();
    const one = plan.target.name;
    const cross = crossHostChannels(plan);
    expect(cross.length).toBeGreaterThan(0);
    const [a, b] = [planPart(plan, one, sha)!, planPart(plan, 'node2', sha)!];
    for (const [part, other] of [[a, 'node2'], [b, one]] as const) {
      // The far ends are remote instances placed on the other target, not instances of this part.
      const here = new Set(part.instances.map((i) => i.id));
      expect(part.remote_instances!.length).toBeGreaterThan(0);
      for (const r of part.remote_instances!) {
        expect(here.has(r.id)).toBe(false);
        expect(r.target).toBe(other);
        expect(part.channels.some((c) => c.from.instance === r.id || c.to.instance === r.id)).toBe(true);
      }
      // The part's cross-host channels are the whole plan's with an end here, found the same way.
      expect(crossHostChannels(part).map((c) => c.id)).toEqual(cross.filter((c) => here.has(c.from.instance) || here.has(c.to.instance)).map((c) => c.id));
      expect(validatePlan(JSON.parse(JSON.stringify(part))).errors).toEqual([]);
      expect(digestMismatches(part, sha).filter((m) => /^digests\.(invariants|plan) /.test(m))).toEqual([]);
      // The broker's plan adds the far ends to the instances; the part itself does not.
      expect(brokerPlan(part).instances.map((i) => i.id).sort()).toEqual([...here, ...part.remote_instances!.map((r) => r.id)].sort());
      expect(instanceTargets(brokerPlan(part))).toEqual(instanceTargets(part));
      // A part knows its own instances and the far ends, each as the object it holds, and no other instance.
      for (const i of part.instances) expect(knownInstance(part, i.id)).toBe(i);
      for (const r of part.remote_instances!) expect(knownInstance(part, r.id)).toBe(r);
      const unknown = plan.instances.filter((i) => !here.has(i.id) && !part.remote_instances!.some((r) => r.id === i.id));
      for (const i of unknown) expect(knownInstance(part, i.id)).toBeUndefined();
      expect(knownInstance(part, 'no-such-instance')).toBeUndefined();
    }
    // Both hosts agree on the link: the same channels in the same order, the same schemas and placement.
    expect(channelsBetween(a, one, 'node2').map((c) => c.id)).toEqual(channelsBetween(b, one, 'node2').map((c) => c.id));
    expect(linkAgreement(a, one, 'node2')).toBe(linkAgreement(b, 'node2', one));
    expect(linkAgreement(a, one, 'node2')).toBe(linkAgreement(plan, one, 'node2'));
    // Another type on a crossing channel is another agreement.
    const other = structuredClone(plan);
    const op = other.channels.find((c) => c.id === cross[0].id)!.ops[0];
    other.schemas[op.input] = { kind: 'string', max_len: 3 };
    expect(linkAgreement(other, one, 'node2')).not.toBe(linkAgreement(plan, one, 'node2'));
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
