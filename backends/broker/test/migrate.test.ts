// The broker's part of a live migration: a moving clone's traffic is held
// (in order, bounded), what its old QEMU still wrote is relayed, and the held
// frames go to its new place, where the port keeps its calls in flight, its
// unfinished line and its protocol order; or back to the old place when the
// migration failed.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Broker } from '../src/index';
import { FakePort, tempDir, testPlan } from './helpers';

let dir: string;
let cleanup: () => void;
const brokers: Broker[] = [];
const ports: FakePort[] = [];

async function fake(broker: Broker, name: string, instance: string, clone: number, port: string): Promise<FakePort> {
  const p = await FakePort.listen(join(dir, `${name}.sock`));
  ports.push(p);
  const attached = broker.attachPort(instance, clone, port, p.path);
  await p.connected();
  expect(await attached).toBe(true);
  return p;
}

const newBroker = (maxHeldBytes?: number) => {
  const b = new Broker(testPlan(), { reconnectDelayMs: 10, maxHeldBytes });
  brokers.push(b);
  return b;
};

beforeEach(() => {
  ({ dir, cleanup } = tempDir());
});

afterEach(async () => {
  for (const b of brokers.splice(0)) await b.close();
  for (const p of ports.splice(0)) await p.close();
  cleanup();
});

describe('moving a clone', () => {
  it('holds frames for the clone, relays what its old place still sends, and delivers the held frames at the new place in order', async () => {
    const b = newBroker();
    const db = await fake(b, 'db', 'db', 0, 'kv');
    const client = await fake(b, 'client', 'client', 0, 'kv');
    client.send({ t: 'call', op: 'get', id: 1, body: { key: 'a' } });
    const inFlight = await db.next();
    b.holdClone('db', 0);
    for (let i = 2; i <= 4; i++) client.send({ t: 'call', op: 'get', id: i, body: { key: `k${i}` } });
    client.send({ t: 'send', op: 'log', body: { message: 'x' } });
    // Nothing reaches the held clone.
    await expect(db.next(50)).rejects.toThrow(/no line/);
    // The old place answers the call it had, and half of a second line, before it goes away.
    db.send({ t: 'reply', id: inFlight.id, body: { miss: null } });
    expect(await client.next()).toEqual({ t: 'reply', id: 1, body: { miss: null } });
    const db2 = await FakePort.listen(join(dir, 'db2.sock'));
    ports.push(db2);
    const moved = b.moveClone('db', 0, { kv: db2.path });
    await db.close();
    await moved;
    // The held frames arrive at the new place, in order, once each.
    const got = [await db2.next(), await db2.next(), await db2.next(), await db2.next()];
    expect(got.map((f) => (f.t === 'call' ? (f.body as { key: string }).key : f.op))).toEqual(['k2', 'k3', 'k4', 'log']);
    await expect(db2.next(100)).rejects.toThrow(/no line/);
    // Its replies reach the requester under the requester's ids.
    for (const f of got.slice(0, 3)) db2.send({ t: 'reply', id: f.id, body: { miss: null } });
    expect([await client.next(), await client.next(), await client.next()].map((f) => f.id)).toEqual([2, 3, 4]);
    // And new traffic flows straight through.
    client.send({ t: 'call', op: 'get', id: 5, body: { key: 'k5' } });
    const f5 = await db2.next();
    db2.send({ t: 'reply', id: f5.id, body: { miss: null } });
    expect(await client.next()).toEqual({ t: 'reply', id: 5, body: { miss: null } });
  });

  it('holds a call with a large body (written as bytes, not text) and delivers it whole and in order at the new place', async () => {
    const plan = testPlan();
    // Room for bodies of 4 KiB on the channel: bodies of 2,048 characters or more take the byte path.
    plan.channels.find((c) => c.id === 'client.kv->db.kv')!.invariants.max_message_bytes = 64 * 1024;
    const b = new Broker(plan, { reconnectDelayMs: 10 });
    brokers.push(b);
    const db = await fake(b, 'db', 'db', 0, 'kv');
    const client = await fake(b, 'client', 'client', 0, 'kv');
    b.holdClone('db', 0);
    const big = 'é'.repeat(2000) + 'v'.repeat(96);
    client.send({ t: 'call', op: 'put', id: 1, body: { key: 'small', value: 'x' } });
    client.send({ t: 'call', op: 'put', id: 2, body: { key: 'big', value: big } });
    client.send({ t: 'call', op: 'get', id: 3, body: { key: 'after' } });
    await expect(db.next(50)).rejects.toThrow(/no line/);
    const db2 = await FakePort.listen(join(dir, 'db2.sock'));
    ports.push(db2);
    const moved = b.moveClone('db', 0, { kv: db2.path });
    await db.close();
    await moved;
    const got = [await db2.next(), await db2.next(), await db2.next()];
    expect(got.map((f) => (f.body as { key: string }).key)).toEqual(['small', 'big', 'after']);
    expect((got[1].body as { value: string }).value).toBe(big);
    expect(b.violations()).toEqual([]);
  });

  it('keeps a call in flight and the unfinished line of the moving clone: the new place finishes both', async () => {
    const b = newBroker();
    const db = await fake(b, 'db', 'db', 0, 'kv');
    const client = await fake(b, 'client', 'client', 0, 'kv');
    client.send({ t: 'call', op: 'get', id: 'c1', body: { key: 'a' } });
    const call = await db.next();
    b.holdClone('db', 0);
    // The old QEMU had written half of the reply when the guest stopped; the guest writes the rest after the move.
    const text = JSON.stringify({ t: 'reply', id: call.id, body: { miss: null } }) + '\n';
    db.raw(text.slice(0, 10));
    await new Promise((r) => setTimeout(r, 30));
    const db2 = await FakePort.listen(join(dir, 'db2.sock'));
    ports.push(db2);
    const moved = b.moveClone('db', 0, { kv: db2.path });
    await db.close();
    await moved;
    db2.raw(text.slice(10));
    expect(await client.next()).toEqual({ t: 'reply', id: 'c1', body: { miss: null } });
    expect(b.violations()).toEqual([]);
  });

  it('releases the held frames to the old place when the move is abandoned', async () => {
    const b = newBroker();
    const db = await fake(b, 'db', 'db', 0, 'kv');
    const client = await fake(b, 'client', 'client', 0, 'kv');
    b.holdClone('db', 0);
    client.send({ t: 'send', op: 'log', body: { message: 'one' } });
    client.send({ t: 'send', op: 'log', body: { message: 'two' } });
    await expect(db.next(100)).rejects.toThrow(/no line/);
    b.releaseClone('db', 0);
    expect(await db.next()).toEqual({ t: 'send', op: 'log', body: { message: 'one' } });
    expect(await db.next()).toEqual({ t: 'send', op: 'log', body: { message: 'two' } });
  });

  it('bounds what it holds: past the bound a call fails at once', async () => {
    const b = newBroker(250);
    const db = await fake(b, 'db', 'db', 0, 'kv');
    const client = await fake(b, 'client', 'client', 0, 'kv');
    b.holdClone('db', 0);
    const value = 'v'.repeat(60);
    for (let i = 1; i <= 3; i++) client.send({ t: 'call', op: 'put', id: i, body: { key: 'k', value } });
    // Two calls (114 bytes each) fit in 250 bytes; the third fails at once.
    expect(await client.next(250)).toMatchObject({ t: 'error', id: 3, error: expect.stringMatching(/not connected/) });
    b.releaseClone('db', 0);
    expect([(await db.next()).body, (await db.next()).body]).toEqual([{ key: 'k', value }, { key: 'k', value }]);
  });
});
