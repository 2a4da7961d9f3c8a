// Two hosts' brokers joined by a link, for the tests and the benchmark: the
// test plan with `client` and `flood` placed on host `a` and `db` on host `b`
// (the placement fields a plan over several targets carries: `targets`,
// `instances[].target`), so client.kv->db.kv and flood.kv->db.kv cross hosts.

import { createHash } from 'node:crypto';
import { brokerPlan, planPart, type Plan } from '@mcl/plan';
import { Broker } from '../src/broker';
import { Links, makeLinkIdentity, type LinkIdentity, type LinkOptions } from '../src/link';
import { testPlan } from './helpers';

export function twoHostPlan(): Plan {
  const plan = testPlan();
  const a = { ...plan.target, name: 'a' };
  const b = { ...plan.target, name: 'b' };
  const out = { ...plan, target: a, targets: [a, b] } as Plan & { targets: unknown[] };
  out.instances = plan.instances.map((i) => ({ ...i, target: i.id === 'db' ? 'b' : 'a' }));
  return out;
}

let ids: Record<string, LinkIdentity> | null = null;
/** Identities for hosts a and b, and an impostor with a key nobody pinned (made once per test file). */
export function identities(): Record<'a' | 'b' | 'evil', LinkIdentity> {
  ids ??= { a: makeLinkIdentity('a'), b: makeLinkIdentity('b'), evil: makeLinkIdentity('a') };
  return ids as Record<'a' | 'b' | 'evil', LinkIdentity>;
}

export interface Pair {
  brokerA: Broker;
  brokerB: Broker;
  linksA: Links;
  linksB: Links;
  /** The port host b's link listens on. */
  port: number;
  close(): Promise<void>;
}

/** The broker's plan of one host's part of `plan`, as a host applying its part makes it (planPart, brokerPlan). */
export function hostView(plan: Plan, target: string): Plan {
  const sha = (parts: string | readonly string[]) => {
    const h = createHash('sha256');
    for (const p of typeof parts === 'string' ? [parts] : parts) h.update(p);
    return h.digest('hex');
  };
  return brokerPlan(planPart(plan, target, sha)!);
}

/**
 * Host b listens on `listenHost` (loopback by default), host a dials it at `dialHost`. Each
 * broker holds the whole plan, or with `parts` only its host's part, as `mclc apply` gives it.
 */
export async function linkedPair(
  plan = twoHostPlan(),
  over: Partial<LinkOptions> = {},
  hosts: { listenHost?: string; dialHost?: string; parts?: boolean } = {},
): Promise<Pair> {
  const id = identities();
  const brokerA = new Broker(hosts.parts ? hostView(plan, 'a') : plan, { reconnectDelayMs: 10 });
  const brokerB = new Broker(hosts.parts ? hostView(plan, 'b') : plan, { reconnectDelayMs: 10 });
  const linksB = new Links(brokerB, { self: id.b, peers: [{ name: 'a', cert: id.a.cert, host: '', port: 0 }], listen: { host: hosts.listenHost ?? '127.0.0.1', port: 0 }, ...over });
  const { port } = await linksB.start();
  const linksA = new Links(brokerA, { self: id.a, peers: [{ name: 'b', cert: id.b.cert, host: hosts.dialHost ?? '127.0.0.1', port: port! }], ...over });
  await linksA.start();
  await linksA.whenUp('b');
  await linksB.whenUp('a');
  return {
    brokerA,
    brokerB,
    linksA,
    linksB,
    port: port!,
    async close() {
      await linksA.close();
      await linksB.close();
      await brokerA.close();
      await brokerB.close();
    },
  };
}
