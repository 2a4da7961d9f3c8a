// The broker's part of a checkpoint: held, nothing is relayed and no call
// times out; its state carries the counters, the protocol order of each
// requester, the unfinished line of a port and the calls a provider owes, so
// that a new broker over the restored guests goes on where the old one was.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Broker } from '../src/index';
import type { BrokerCheckpoint } from '../src/types';
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

const newBroker = () => {
  const b = new Broker(testPlan(), { reconnectDelayMs: 10 });
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

describe('broker checkpoints', () => {
  it('relays nothing while held and delivers it, in order, after resume', async () => {
    const b = newBroker();
    const db = await fake(b, 'db', 'db', 0, 'kv');
    const client = await fake(b, 'client', 'client', 0, 'kv');
    b.hold();
    client.send({ t: 'send', op: 'log', body: { message: 'one' } });
    client.send({ t: 'send', op: 'log', body: { message: 'two' } });
    await expect(db.next(150)).rejects.toThrow(/no line/);
    b.resume();
    expect(await db.next()).toEqual({ t: 'send', op: 'log', body: { message: 'one' } });
    expect(await db.next()).toEqual({ t: 'send', op: 'log', body: { message: 'two' } });
  });

  it('does not time a call out while held (client.kv has a 300 ms timeout)', async () => {
    const b = newBroker();
    const db = await fake(b, 'db', 'db', 0, 'kv');
    const client = await fake(b, 'client', 'client', 0, 'kv');
    client.send({ t: 'call', op: 'get', id: 1, body: { key: 'a' } });
    const call = await db.next();
    b.hold();
    await new Promise((r) => setTimeout(r, 500));
    b.resume();
    db.send({ t: 'reply', id: call.id, body: { miss: null } });
    expect(await client.next()).toEqual({ t: 'reply', id: 1, body: { miss: null } });
  });

  it('carries counters, order state, an unfinished line and a call in flight to a new broker', async () => {
    const a = newBroker();
    const db = await fake(a, 'db', 'db', 0, 'kv');
    const client = await fake(a, 'client', 'client', 0, 'kv');
    const ordered = await fake(a, 'ordered', 'ordered', 0, 'api');
    const sess = await fake(a, 'sess', 'client', 0, 'sess');
    ordered.handler = (f) => ({ t: 'reply', id: f.id, body: f.op === 'query' ? { miss: null } : { ok: true } });
    sess.send({ t: 'call', op: 'login', id: 1, body: { key: 'a' } });
    expect(await sess.next()).toMatchObject({ t: 'reply', id: 1 });
    client.send({ t: 'call', op: 'put', id: 'p1', body: { key: 'k', value: 'v' } });
    const call = await db.next();
    // Half a frame from the client is on its way when the cut is taken.
    client.raw('{"t":"send","op":"log",');
    await new Promise((r) => setTimeout(r, 50));
    a.hold();
    const state: BrokerCheckpoint = JSON.parse(JSON.stringify(a.checkpointState()));
    expect(state.counters['client.kv->db.kv']).toMatchObject({ calls: 1, frames_to_provider: 1 });
    expect(state.ports.find((p) => p.instance === 'client' && p.port === 'sess')).toMatchObject({ order_state: 1, order_moved: true });
    expect(Buffer.from(state.ports.find((p) => p.instance === 'client' && p.port === 'kv')!.partial_line, 'base64').toString()).toBe('{"t":"send","op":"log",');
    expect(state.ports.find((p) => p.instance === 'db')!.pending).toEqual([
      expect.objectContaining({ id: call.id, channel: 'client.kv->db.kv', op: 'put', requester: { instance: 'client', clone: 0, port: 'kv' }, requester_id: 'p1' }),
    ]);
    await a.close();

    // The restored guests' ports, attached to a new broker that continues from the state.
    const b = newBroker();
    const db2 = await fake(b, 'db2', 'db', 0, 'kv');
    const client2 = await fake(b, 'client2', 'client', 0, 'kv');
    const ordered2 = await fake(b, 'ordered2', 'ordered', 0, 'api');
    const sess2 = await fake(b, 'sess2', 'client', 0, 'sess');
    ordered2.handler = (f) => ({ t: 'reply', id: f.id, body: f.op === 'query' ? { miss: null } : { ok: true } });
    expect(b.restoreState(state)).toEqual([]);
    // The provider answers the call it had received before the cut: the requester gets it under its own id.
    db2.send({ t: 'reply', id: call.id, body: { ok: true } });
    expect(await client2.next()).toEqual({ t: 'reply', id: 'p1', body: { ok: true } });
    // The rest of the half-sent frame completes it.
    client2.raw('"body":{"message":"hi"}}\n');
    expect(await db2.next()).toEqual({ t: 'send', op: 'log', body: { message: 'hi' } });
    // The session is past login: a query is in order, not refused.
    sess2.send({ t: 'call', op: 'query', id: 2, body: { key: 'a' } });
    expect(await sess2.next()).toMatchObject({ t: 'reply', id: 2 });
    const c = b.counters().find((x) => x.channel === 'client.kv->db.kv')!;
    expect(c).toMatchObject({ calls: 1, replies: 1, frames_to_provider: 2 });
    // New calls get provider ids past the restored ones, so none is taken for the one in flight.
    client2.send({ t: 'call', op: 'get', id: 9, body: { key: 'k' } });
    expect(((await db2.next()).id as number) > (call.id as number)).toBe(true);
  });

  it('says what in a state it cannot place', async () => {
    const b = newBroker();
    const problems = b.restoreState({ format: 1, counters: { 'no.such->channel.x': {} as never }, ports: [{ instance: 'db', clone: 3, port: 'kv', partial_line: '' }], next_session: 1 });
    expect(problems).toEqual(['channel no.such->channel.x is not in the plan', 'port db[3].kv is not attached']);
  });
});
