// The kube broker against real guest agents on loopback: two "guests" (the
// guest image's agent under busybox, ./guests.ts) serve their control ports
// and ports over the TCP transport; the broker authenticates to each, sends
// each its identity and starts its program, exactly as on a cluster; a
// client program's call passes through the channel to the database's
// program, a call the plan does not allow is refused and counted.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Plan } from '@mcl/plan';
import { testPlan } from '../../broker/test/helpers';
import { startKubeBroker, type KubeBroker } from '../src/broker-run';
import type { GuestControlEvent } from '../src/guest-control';
import { GUEST_PORT_BASE, vmName, wiredSlots } from '../src/render';
import { haveBusybox, startGuest, type Guest } from './guests';

const KEY = Buffer.alloc(32, 9);

/** A client and a database on one channel (client.kv -> db.kv), with the programs given. */
function twoGuests(client: string, db: string): Plan {
  const plan = testPlan();
  plan.target = { ...plan.target, backend: 'kubevirt' } as Plan['target'];
  plan.instances = plan.instances.filter((i) => i.id === 'client' || i.id === 'db');
  plan.channels = plan.channels.filter((c) => c.from.instance === 'client' && c.to.instance === 'db');
  for (const i of plan.instances) {
    for (const p of i.ports) p.channels = p.channels.filter((id) => plan.channels.some((c) => c.id === id));
    i.restart = { policy: 'never', max_retries: 0 };
  }
  plan.exposures = [];
  const sh = (script: string) => ({ argv: ['busybox', 'sh', '-c', script], env: { MCL_TIMEOUT: '5' }, files: [] });
  plan.instances.find((i) => i.id === 'client')!.program = sh(client);
  plan.instances.find((i) => i.id === 'db')!.program = sh(db);
  return plan;
}

let kb: KubeBroker | null = null;
const guests: Guest[] = [];
afterEach(async () => {
  await kb?.close();
  kb = null;
  for (const g of guests.splice(0)) g.stop();
});

async function until<T>(what: string, f: () => T | undefined | false, ms = 20_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts a guest per clone of the plan and the broker dialling them. */
async function deploy(plan: Plan, events: GuestControlEvent[]): Promise<Record<string, Guest>> {
  const byVm: Record<string, Guest> = {};
  for (const inst of plan.instances) {
    const g = startGuest(vmName(inst, 0), wiredSlots(inst));
    guests.push(g);
    byVm[g.vm] = g;
  }
  kb = await startKubeBroker(plan, {
    guests: 'mcl-guests.shop.svc',
    key: KEY,
    dial: (vm, port) => ({ host: '127.0.0.1', port: byVm[vm].base + (port - GUEST_PORT_BASE) }),
    listenHost: '127.0.0.1',
    statusPort: null,
    reconnectDelayMs: 20,
    controlTimeoutMs: 15_000,
    onGuestEvent: (e) => events.push(e),
  });
  return byVm;
}

describe.skipIf(!haveBusybox)('the kube broker and real guest agents (TCP transport, loopback)', () => {
  it('starts each guest\'s program over its control port; a call passes through the channel between two guests, a denied one is counted', async () => {
    const events: GuestControlEvent[] = [];
    const db = `h() { mcl_field "$MCL_BODY" key k; mcl_reply "{\\"hit\\":{\\"key\\":\\"$k\\",\\"value\\":\\"from-$MCL_INSTANCE-$MCL_CLONE\\"}}"; }; . mcl-msg; mcl_serve kv h`;
    // The client calls until the database is connected (a call before that is answered `unavailable`).
    const client = [
      'i=0; until mcl-msg call kv get \'{"key":"k1"}\' >"$OUT/reply"; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done',
      'mcl-msg call kv drop_table \'{}\' >"$OUT/denied" 2>&1; echo $? >"$OUT/denied.status"',
      'echo "$MCL_INSTANCE $MCL_CLONE" >"$OUT/identity"',
    ].join('\n');
    const plan = twoGuests(client, db);
    const byVm = await deploy(plan, events);
    const c = byVm['client-0'];
    await until('the client program', () => existsSync(join(c.dir, 'identity')) && existsSync(join(c.dir, 'denied.status')));
    expect(readFileSync(join(c.dir, 'reply'), 'utf8')).toBe('{"hit":{"key":"k1","value":"from-db-0"}}\n');
    expect(readFileSync(join(c.dir, 'identity'), 'utf8')).toBe('client 0\n');
    // mcl-msg's status for a call the broker denied.
    expect(readFileSync(join(c.dir, 'denied.status'), 'utf8')).toBe('2\n');
    const ch = kb!.broker.counters().find((x) => x.channel.startsWith('client.kv'))!;
    expect(ch.violations).toEqual({ unknown_op: 1 });
    expect(kb!.broker.violations()).toEqual([expect.objectContaining({ instance: 'client', clone: 0, port: 'kv', kind: 'unknown_op' })]);
    // Identity: the hostname is the machine's name, and each guest learnt its own token from the broker.
    expect(readFileSync(join(c.dir, 'run', 'hostname'), 'utf8')).toBe('client-0\n');
    expect(events.filter((e) => e.type === 'started').map((e) => e.vm).sort()).toEqual(['client-0', 'db-0']);
    await until('the client\'s exit', () => events.find((e) => e.type === 'exit' && e.vm === 'client-0'));
    expect(events.find((e) => e.type === 'exit' && e.vm === 'client-0')).toEqual({ type: 'exit', vm: 'client-0', status: 0, restart: false });
  }, 60_000);

  it('a broker that connects again to a running guest does not start its program a second time', async () => {
    const events: GuestControlEvent[] = [];
    const plan = twoGuests('echo started >>"$OUT/starts"; exec sleep 60', '. mcl-msg; h() { mcl_reply "{}"; }; mcl_serve kv h');
    const byVm = await deploy(plan, events);
    await until('both programs', () => events.filter((e) => e.type === 'started').length === 2);
    await kb!.close();
    // A new broker (a restarted pod) with the same key: the guests know its token, and only attach.
    kb = null;
    const again: GuestControlEvent[] = [];
    kb = await startKubeBroker(plan, {
      guests: 'x',
      key: KEY,
      dial: (vm, port) => ({ host: '127.0.0.1', port: byVm[vm].base + (port - GUEST_PORT_BASE) }),
      listenHost: '127.0.0.1',
      statusPort: null,
      reconnectDelayMs: 20,
      controlTimeoutMs: 15_000,
      onGuestEvent: (e) => again.push(e),
    });
    await until('both attached', () => again.filter((e) => e.type === 'attached').length === 2);
    expect(again.some((e) => e.type === 'started')).toBe(false);
    expect(readFileSync(join(byVm['client-0'].dir, 'starts'), 'utf8')).toBe('started\n');
  }, 60_000);

  it('a broker with another key is refused by guests that learnt the first one', async () => {
    const events: GuestControlEvent[] = [];
    const plan = twoGuests('exec sleep 60', 'exec sleep 60');
    const byVm = await deploy(plan, events);
    await until('both programs', () => events.filter((e) => e.type === 'started').length === 2);
    await kb!.close();
    kb = null;
    const other: GuestControlEvent[] = [];
    const logged: string[] = [];
    kb = await startKubeBroker(plan, {
      guests: 'x',
      key: Buffer.alloc(32, 1),
      log: (e) => logged.push(e.message),
      dial: (vm, port) => ({ host: '127.0.0.1', port: byVm[vm].base + (port - GUEST_PORT_BASE) }),
      listenHost: '127.0.0.1',
      statusPort: null,
      reconnectDelayMs: 20,
      controlTimeoutMs: 15_000,
      onGuestEvent: (e) => other.push(e),
    });
    await new Promise((r) => setTimeout(r, 1500));
    expect(other).toEqual([]);
    // Said once per guest, however often it is dialled again.
    expect(logged.filter((m) => /does not accept this broker's token/.test(m)).sort()).toEqual([
      expect.stringMatching(/^guest client-0: /),
      expect.stringMatching(/^guest db-0: /),
    ]);
  }, 60_000);

  it('a connection that drops mid-call: the caller gets an explicit error at once, the reply that comes later is counted late (not a violation), and the port serves again', async () => {
    const events: GuestControlEvent[] = [];
    // The database answers `slow` only after the test has cut its connection.
    const db = 'h() { mcl_field "$MCL_BODY" key k; if [ "$k" = slow ]; then : >"$OUT/slow"; until [ -e "$OUT/cut" ]; do sleep 0.05; done; fi; mcl_reply "{\\"hit\\":{\\"key\\":\\"$k\\",\\"value\\":\\"v\\"}}"; }; . mcl-msg; mcl_serve kv h';
    const client = [
      'i=0; until mcl-msg call kv get \'{"key":"up"}\' >/dev/null; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done',
      'mcl-msg call kv get \'{"key":"slow"}\' >"$OUT/r1" 2>"$OUT/e1"; echo $? >"$OUT/s1"',
      'until [ -e "$OUT/go" ]; do sleep 0.05; done',
      'mcl-msg call kv get \'{"key":"k2"}\' >"$OUT/r2"; echo $? >"$OUT/s2"',
    ].join('\n');
    const plan = twoGuests(client, db);
    const byVm = await deploy(plan, events);
    const c = byVm['client-0'];
    const d = byVm['db-0'];
    await until('the slow call at the database', () => existsSync(join(d.dir, 'slow')));
    // Drop the broker's connection to the database's port (the agent's copy of it), as a network fault would.
    for (const pid of readFileSync(join(d.dir, 'ports', 'kv.conn'), 'utf8').trim().split(' ')) process.kill(Number(pid), 'SIGKILL');
    await until('the caller\'s answer', () => existsSync(join(c.dir, 's1')));
    expect(readFileSync(join(c.dir, 's1'), 'utf8')).toBe('1\n');
    expect(readFileSync(join(c.dir, 'e1'), 'utf8')).toMatch(/went away \(the port disconnected\)/);
    // Now the database answers; the broker has dialled again, and the reply reaches it on the new connection.
    const ch = () => kb!.broker.counters().find((x) => x.channel.startsWith('client.kv'))!;
    writeFileSync(join(d.dir, 'cut'), '');
    await until('the late reply', () => ch().late_replies === 1);
    writeFileSync(join(c.dir, 'go'), '');
    await until('the next call', () => existsSync(join(c.dir, 's2')));
    expect(readFileSync(join(c.dir, 's2'), 'utf8')).toBe('0\n');
    expect(readFileSync(join(c.dir, 'r2'), 'utf8')).toBe('{"hit":{"key":"k2","value":"v"}}\n');
    expect(ch().violations).toEqual({});
    expect(kb!.broker.violations()).toEqual([]);
  }, 60_000);

  it('a program that fails is started again in the same machine as its restart policy says, up to max_retries', async () => {
    const events: GuestControlEvent[] = [];
    const plan = twoGuests('echo run >>"$OUT/runs"; exit 3', 'exec sleep 60');
    plan.instances.find((i) => i.id === 'client')!.restart = { policy: 'on_failure', max_retries: 2 };
    const byVm = await deploy(plan, events);
    const count = (type: string) => events.filter((e) => e.type === type && e.vm === 'client-0').length;
    await until('the last exit', () => count('exit') === 3 && count('started') === 3);
    // Nothing after the last: max_retries is spent.
    await new Promise((r) => setTimeout(r, 800));
    // A program that ends at once may be reported before the answer to its start: count, do not order.
    const mine = events.filter((e) => e.vm === 'client-0');
    expect(mine.filter((e) => e.type === 'started')).toHaveLength(3);
    expect(mine.flatMap((e) => (e.type === 'exit' ? [`${e.status} ${e.restart}`] : []))).toEqual(['3 true', '3 true', '3 false']);
    expect(readFileSync(join(byVm['client-0'].dir, 'runs'), 'utf8')).toBe('run\nrun\nrun\n');
  }, 60_000);
});
