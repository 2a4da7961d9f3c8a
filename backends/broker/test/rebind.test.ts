// Late binding in the broker (spec/factories.md): a required port connected
// to several candidates starts on the first, moves to another on a `rebind`
// frame naming it, and is refused (`rebind`, counted and audited) any name
// that is not one of its candidates.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Broker } from '../src/index';
import { FakePort, kvHandler, lateBoundPlan, tempDir } from './helpers';

let dir: string;
let cleanup: () => void;
let broker: Broker;
const ports: FakePort[] = [];

beforeEach(() => {
  ({ dir, cleanup } = tempDir());
});
afterEach(async () => {
  await broker?.close();
  for (const p of ports.splice(0)) await p.close();
  cleanup();
});

async function listen(name: string, handler?: (f: Record<string, unknown>) => unknown): Promise<FakePort> {
  const p = await FakePort.listen(join(dir, `${name}.sock`));
  ports.push(p);
  if (handler) p.handler = handler;
  return p;
}

describe('late binding in the broker', () => {
  it('starts on the first candidate, moves on rebind, and refuses names that are not candidates', async () => {
    broker = new Broker(lateBoundPlan(), { reconnectDelayMs: 10 });
    const db = await listen('db', kvHandler(new Map([['k', 'v']]), 'db'));
    const rep = await listen('rep', kvHandler(new Map([['k', 'v']]), 'rep'));
    const app = await listen('app');
    void broker.attachPort('db', 0, 'kv', db.path);
    void broker.attachPort('rep', 0, 'kv', rep.path);
    void broker.attachPort('app', 0, 'db', app.path);
    await Promise.all([db.connected(), rep.connected(), app.connected()]);

    app.send({ t: 'call', op: 'get', id: 1, body: { key: 'k' } });
    expect(await app.next()).toEqual({ t: 'reply', id: 1, body: { hit: { key: 'k', value: 'db:v' } } });

    // A name that is not a candidate (an instance of the plan, even one wired elsewhere) is refused.
    app.send({ t: 'rebind', id: 2, candidate: 'ordered' });
    expect(await app.next()).toMatchObject({ t: 'denied', id: 2, kind: 'rebind' });
    app.send({ t: 'call', op: 'get', id: 3, body: { key: 'k' } });
    expect(await app.next()).toEqual({ t: 'reply', id: 3, body: { hit: { key: 'k', value: 'db:v' } } });

    // Fail over to the other candidate, by instance name; then back, by instance.port.
    app.send({ t: 'rebind', id: 4, candidate: 'rep' });
    expect(await app.next()).toEqual({ t: 'rebound', id: 4, candidate: 'rep.kv' });
    app.send({ t: 'call', op: 'get', id: 5, body: { key: 'k' } });
    expect(await app.next()).toEqual({ t: 'reply', id: 5, body: { hit: { key: 'k', value: 'rep:v' } } });
    app.send({ t: 'rebind', id: 6, candidate: 'db.kv' });
    expect(await app.next()).toEqual({ t: 'rebound', id: 6, candidate: 'db.kv' });
    app.send({ t: 'call', op: 'get', id: 7, body: { key: 'k' } });
    expect(await app.next()).toEqual({ t: 'reply', id: 7, body: { hit: { key: 'k', value: 'db:v' } } });

    const counters = broker.counters();
    expect(counters.find((c) => c.channel === 'app.db->db.kv')?.calls).toBe(3);
    expect(counters.find((c) => c.channel === 'app.db->rep.kv')?.calls).toBe(1);
    expect(broker.violations().map((v) => [v.kind, v.channel])).toEqual([['rebind', 'app.db->db.kv']]);
  });

  it("gives a call outstanding on the previous candidate's channel back to that channel's budget", async () => {
    const plan = lateBoundPlan();
    for (const c of plan.channels) if (c.id === 'app.db->rep.kv') c.invariants = { ...c.invariants, max_inflight: 1 };
    broker = new Broker(plan, { reconnectDelayMs: 10 });
    const db = await listen('db');
    // The primary holds its calls: the test answers them.
    const held: Record<string, unknown>[] = [];
    db.handler = (f) => void held.push(f);
    const rep = await listen('rep');
    const repHeld: Record<string, unknown>[] = [];
    rep.handler = (f) => void repHeld.push(f);
    const app = await listen('app');
    void broker.attachPort('db', 0, 'kv', db.path);
    void broker.attachPort('rep', 0, 'kv', rep.path);
    void broker.attachPort('app', 0, 'db', app.path);
    await Promise.all([db.connected(), rep.connected(), app.connected()]);
    app.send({ t: 'call', op: 'get', id: 1, body: { key: 'k' } });
    while (held.length === 0) await new Promise((r) => setTimeout(r, 10));
    app.send({ t: 'rebind', id: 2, candidate: 'rep' });
    expect(await app.next()).toEqual({ t: 'rebound', id: 2, candidate: 'rep.kv' });
    // The old call is answered after the move: its requester gets the answer...
    db.send({ t: 'reply', id: held[0].id, body: { miss: null } });
    expect(await app.next()).toEqual({ t: 'reply', id: 1, body: { miss: null } });
    // ...and the standby's max_inflight of 1 still holds: one call in flight, the second refused.
    app.send({ t: 'call', op: 'get', id: 3, body: { key: 'k' } });
    while (repHeld.length === 0) await new Promise((r) => setTimeout(r, 10));
    app.send({ t: 'call', op: 'get', id: 4, body: { key: 'k' } });
    expect(await app.next()).toMatchObject({ t: 'denied', id: 4, kind: 'inflight' });
  });

  it('refuses rebind on a port that is not late-bound, and a malformed candidate', async () => {
    broker = new Broker(lateBoundPlan(), { reconnectDelayMs: 10 });
    const db = await listen('db', kvHandler());
    const client = await listen('client');
    void broker.attachPort('db', 0, 'kv', db.path);
    void broker.attachPort('client', 0, 'kv', client.path);
    await Promise.all([db.connected(), client.connected()]);
    client.send({ t: 'rebind', id: 1, candidate: 'db' });
    expect(await client.next()).toMatchObject({ t: 'denied', id: 1, kind: 'rebind' });
    client.send({ t: 'rebind', id: 2, candidate: 7 });
    expect(await client.next()).toMatchObject({ t: 'denied', id: 2, kind: 'malformed' });
    expect(broker.violations().map((v) => v.kind)).toEqual(['rebind', 'malformed']);
  });
});
