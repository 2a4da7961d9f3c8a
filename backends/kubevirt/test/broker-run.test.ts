// The kubevirt broker on loopback: fake guests are TCP listeners on
// 127.0.0.1 (the guests' pod addresses replaced through `dial`), and the
// broker is the real one, started as `mclc __kube-broker` starts it.

import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Plan } from '@mcl/plan';
import { FakePort, kvHandler, testPlan } from '../../broker/test/helpers';
import { startKubeBroker, type KubeBroker } from '../src/broker-run';
import { guestToken } from '../src/guest-control';
import { GUEST_PORT_BASE, vmName } from '../src/render';

/** The deployment's key in these tests. */
const KEY = Buffer.alloc(32, 7);

/** The broker's test plan without its per-session instance, which a kubevirt target refuses. */
function kubePlan(): Plan {
  const plan = testPlan();
  plan.instances = plan.instances.filter((i) => i.mode !== 'per_session');
  plan.channels = plan.channels.filter((c) => plan.instances.some((i) => i.id === c.to.instance));
  for (const i of plan.instances) for (const p of i.ports) p.channels = p.channels.filter((id) => plan.channels.some((c) => c.id === id));
  return plan;
}

let running: KubeBroker | null = null;
const fakes: FakePort[] = [];
afterEach(async () => {
  await running?.close();
  running = null;
  for (const f of fakes.splice(0)) await f.close();
});

/** Fake guests for the given `instance/clone/port`s; every other guest port is dialled at a closed port. */
async function start(plan: Plan, wanted: string[]): Promise<{ kb: KubeBroker; guest: Record<string, FakePort>; dialled: string[] }> {
  const guest: Record<string, FakePort> = {};
  const byAddress = new Map<string, FakePort>();
  for (const w of wanted) {
    const [id, clone, port] = w.split('/');
    const inst = plan.instances.find((i) => i.id === id)!;
    const slot = inst.ports.find((p) => p.name === port)!.slot;
    const f = await FakePort.listenTcp();
    fakes.push(f);
    guest[w] = f;
    byAddress.set(`${vmName(inst, Number(clone))}:${GUEST_PORT_BASE + slot}`, f);
  }
  const dialled: string[] = [];
  const kb = await startKubeBroker(plan, {
    guests: 'mcl-guests.shop.svc',
    key: KEY,
    dial: (vm, port) => {
      dialled.push(`${vm}:${port}`);
      const f = byAddress.get(`${vm}:${port}`);
      return { host: '127.0.0.1', port: f ? f.tcpPort : 1 };
    },
    listenHost: '127.0.0.1',
    mapHostPort: () => 0,
    statusPort: 0,
    reconnectDelayMs: 20,
  });
  running = kb;
  return { kb, guest, dialled };
}

function lineClient(port: number): { sock: Socket; next: () => Promise<Record<string, unknown>> } {
  const sock = connect(port, '127.0.0.1');
  sock.setEncoding('utf8');
  let buf = '';
  const waiters: ((l: string) => void)[] = [];
  const queue: string[] = [];
  sock.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const w = waiters.shift();
      if (w) w(l);
      else queue.push(l);
    }
  });
  return {
    sock,
    next: () => {
      const q = queue.shift();
      return q !== undefined ? Promise.resolve(JSON.parse(q)) : new Promise((resolve) => waiters.push((l) => resolve(JSON.parse(l))));
    },
  };
}

describe('mclc __kube-broker (startKubeBroker)', () => {
  it('dials every clone\'s control port and wired ports at the names and ports the rendered objects give, and nothing else', async () => {
    const plan = kubePlan();
    const { dialled } = await start(plan, []);
    const expected: string[] = [];
    for (const inst of plan.instances) {
      const ports = inst.ports.filter((p) => p.channels.length > 0 || p.exposed_on !== undefined);
      const clones = inst.mode === 'replicas' ? inst.replicas : 1;
      for (let k = 0; k < clones; k++) {
        expected.push(`${vmName(inst, k)}:${GUEST_PORT_BASE}`);
        for (const p of ports) expected.push(`${vmName(inst, k)}:${GUEST_PORT_BASE + p.slot}`);
      }
    }
    expect([...new Set(dialled)].sort()).toEqual(expected.sort());
    // The unwired port (client.loose) is not dialled: the guest's policy does not open it either.
    expect(dialled.some((d) => d === `client-0:${GUEST_PORT_BASE + 5}`)).toBe(false);
  });

  it('by default dials the guests by their DNS names in the headless Service', async () => {
    const plan = kubePlan();
    plan.exposures = [];
    const kb = await startKubeBroker(plan, { guests: 'mcl-guests.shop.svc', key: KEY, listenHost: '127.0.0.1', statusPort: null, connectTimeoutMs: 50 });
    running = kb;
    // Nothing resolves on loopback; the ports stay attached and not connected, and the broker keeps running.
    expect(kb.broker.ports().every((p) => !p.connected)).toBe(true);
  });

  it('a request through an exposure reaches the right fake guest, and the status port answers /ready', async () => {
    const { kb, guest } = await start(kubePlan(), ['db/0/kv']);
    guest['db/0/kv'].handler = kvHandler(new Map([['k1', 'v1']]), 'db0');
    await guest['db/0/kv'].connected();
    const frames = kb.exposures.find((x) => x.instance === 'db')!;
    const c = lineClient(frames.bound_port);
    c.sock.write(JSON.stringify({ t: 'call', op: 'get', id: 1, body: { key: 'k1' } }) + '\n');
    expect(await c.next()).toEqual({ t: 'reply', id: 1, body: { hit: { key: 'k1', value: 'db0:v1' } } });
    c.sock.destroy();
    const res = await fetch(`http://127.0.0.1:${kb.statusPort}/ready`);
    expect(res.status).toBe(200);
  });

  it('a frame the plan denies is refused and counted; an allowed one is forwarded', async () => {
    const { kb, guest } = await start(kubePlan(), ['client/0/kv', 'db/0/kv']);
    guest['db/0/kv'].handler = kvHandler();
    await Promise.all([guest['client/0/kv'].connected(), guest['db/0/kv'].connected()]);
    const client = guest['client/0/kv'];
    client.send({ t: 'call', op: 'drop_table', id: 1, body: {} });
    expect(await client.next()).toMatchObject({ t: 'denied', id: 1 });
    client.send({ t: 'call', op: 'put', id: 2, body: { key: 'a', value: 'b' } });
    expect(await client.next()).toEqual({ t: 'reply', id: 2, body: { ok: true } });
    const ch = kb.broker.counters().find((x) => x.channel.startsWith('client.kv'))!;
    expect(ch.violations).toEqual({ unknown_op: 1 });
    // Every connection began with the guest's own token, derived from the deployment's key and its name.
    expect(client.greetings).toEqual([`auth ${guestToken(KEY, 'client-0')}`]);
    expect(guest['db/0/kv'].greetings).toEqual([`auth ${guestToken(KEY, 'db-0')}`]);
    expect(ch.calls).toBe(1);
    expect(kb.broker.violations()).toEqual([expect.objectContaining({ instance: 'client', clone: 0, port: 'kv', kind: 'unknown_op' })]);
  });

  it('redials a guest that dropped the connection (a restarted machine) and serves again', async () => {
    const { kb, guest } = await start(kubePlan(), ['db/0/kv']);
    const db = guest['db/0/kv'];
    db.handler = kvHandler(new Map([['k', 'v']]));
    await db.connected();
    const reconnected = new Promise<void>((resolve) => kb.broker.on('connected', (e) => e.instance === 'db' && resolve()));
    db.dropConnection();
    await reconnected;
    await db.connected();
    const c = lineClient(kb.exposures.find((x) => x.instance === 'db')!.bound_port);
    c.sock.write(JSON.stringify({ t: 'call', op: 'get', id: 7, body: { key: 'k' } }) + '\n');
    expect(await c.next()).toEqual({ t: 'reply', id: 7, body: { hit: { key: 'k', value: 'v' } } });
    c.sock.destroy();
  });

  it('connects to a guest that starts listening only after the broker (a machine still booting)', async () => {
    const plan = kubePlan();
    // The guest is not there at first: its address is refused, then a listener appears on it.
    const late = await FakePort.listenTcp();
    const port = late.tcpPort;
    await late.close();
    const kb = await startKubeBroker(plan, {
      guests: 'x',
      key: KEY,
      dial: (vm, p) => ({ host: '127.0.0.1', port: vm === 'db-0' && p === GUEST_PORT_BASE + 1 ? port : 1 }),
      listenHost: '127.0.0.1',
      mapHostPort: () => 0,
      statusPort: null,
      reconnectDelayMs: 20,
    });
    running = kb;
    await new Promise((r) => setTimeout(r, 100));
    expect(kb.broker.ports().find((p) => p.instance === 'db')!.connected).toBe(false);
    const { createServer } = await import('node:net');
    const srv = createServer();
    // The guest reads what the broker sends (its greeting), so that it sees the broker close.
    const accepted = new Promise<void>((resolve) => srv.once('connection', (s) => (s.resume(), resolve())));
    const connected = new Promise<void>((resolve) => kb.broker.on('connected', (e) => e.instance === 'db' && resolve()));
    await new Promise<void>((resolve) => srv.listen(port, '127.0.0.1', resolve));
    await Promise.all([accepted, connected]);
    await kb.close();
    running = null;
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  });
});
