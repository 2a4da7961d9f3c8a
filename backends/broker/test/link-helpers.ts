// Two hosts' brokers joined by a link, for the tests and the benchmark: the
// test plan with `client` and `flood` placed on host `a` and `db` on host `b`
// (the placement fields a plan over several targets carries: `targets`,
// `instances[].target`), so client.kv->db.kv and flood.kv->db.kv cross hosts.

import type { Plan } from '@mcl/plan';
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

/** Host b listens on `listenHost` (loopback by default), host a dials it at `dialHost`. */
export async function linkedPair(
  plan = twoHostPlan(),
  over: Partial<LinkOptions> = {},
  hosts: { listenHost?: string; dialHost?: string } = {},
): Promise<Pair> {
  const id = identities();
  const brokerA = new Broker(plan, { reconnectDelayMs: 10 });
  const brokerB = new Broker(plan, { reconnectDelayMs: 10 });
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
