// What one received chunk makes the broker write: one write per destination,
// frames in the order they were checked, and never more than a bounded amount
// held back before it is written.

import { describe, expect, it } from 'vitest';
import { Duplex, PassThrough, Writable } from 'node:stream';
import { Broker } from '../src/index';
import { testPlan } from './helpers';

/** A port whose broker side records every write the broker makes to it. */
function recordingPort(): { brokerSide: Duplex; toBroker: PassThrough; writes: string[] } {
  const toBroker = new PassThrough();
  const writes: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      writes.push(chunk.toString());
      cb();
    },
  });
  return { brokerSide: Duplex.from({ readable: toBroker, writable: sink }), toBroker, writes };
}

const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

async function wired(): Promise<{ broker: Broker; client: ReturnType<typeof recordingPort>; db: ReturnType<typeof recordingPort> }> {
  const broker = new Broker(testPlan());
  const client = recordingPort();
  const db = recordingPort();
  void broker.attachPort('rep', 0, 'kv', db.brokerSide);
  void broker.attachPort('client', 0, 'rep', client.brokerSide);
  await settle();
  return { broker, client, db };
}

describe('writes of one received chunk', () => {
  it('leave in one write per destination, in order', async () => {
    const { broker, client, db } = await wired();
    const frames = [1, 2, 3].map((id) => JSON.stringify({ t: 'call', op: 'put', id, body: { key: `k${id}`, value: 'v' } }));
    // One chunk: three calls for the provider and a refused frame, whose notice goes back to the requester.
    client.toBroker.write([frames[0], frames[1], '{"t":"call","op":"nope","id":9,"body":{}}', frames[2]].map((l) => l + '\n').join(''));
    await settle();
    expect(db.writes).toHaveLength(1);
    expect(db.writes[0].split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { body: { key: string } }).body.key)).toEqual(['k1', 'k2', 'k3']);
    expect(client.writes).toHaveLength(1);
    expect(client.writes[0]).toMatch(/^\{"t":"denied","id":9,"kind":"unknown_op"/);
    // The provider's answers, in one chunk, go back in one write under the requester's ids.
    const ids = db.writes[0].split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { id: number }).id);
    db.toBroker.write(ids.map((id) => `{"t":"reply","id":${id},"body":{"ok":true}}\n`).join(''));
    await settle();
    expect(client.writes).toHaveLength(2);
    expect(client.writes[1]).toBe('{"t":"reply","id":1,"body":{"ok":true}}\n{"t":"reply","id":2,"body":{"ok":true}}\n{"t":"reply","id":3,"body":{"ok":true}}\n');
    await broker.close();
  });

  it('writes each frame once when a destination answers within the write itself', async () => {
    const broker = new Broker(testPlan());
    const client = recordingPort();
    const seen: string[] = [];
    // A provider that answers every call synchronously, inside the broker's write to it.
    const db: Duplex = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n').filter(Boolean)) {
          seen.push(l);
          db.push(`{"t":"reply","id":${(JSON.parse(l) as { id: number }).id},"body":{"ok":true}}\n`);
        }
        cb();
      },
    });
    void broker.attachPort('rep', 0, 'kv', db);
    void broker.attachPort('client', 0, 'rep', client.brokerSide);
    await settle();
    client.toBroker.write([1, 2].map((id) => JSON.stringify({ t: 'call', op: 'put', id, body: { key: `k${id}`, value: 'v' } }) + '\n').join(''));
    await settle();
    expect(seen).toHaveLength(2);
    expect(client.writes.join('')).toBe('{"t":"reply","id":1,"body":{"ok":true}}\n{"t":"reply","id":2,"body":{"ok":true}}\n');
    await broker.close();
  });

  it('writes what it held back once a destination has more than 64 KiB of it, keeping the order', async () => {
    const { broker, client, db } = await wired();
    // 300 sends of about 300 bytes: about 90 KiB for the provider from one chunk.
    const lines = Array.from({ length: 300 }, (_, i) => JSON.stringify({ t: 'send', op: 'log', body: { message: `${i}:` + 'm'.repeat(250) } }));
    client.toBroker.write(lines.map((l) => l + '\n').join(''));
    await settle();
    expect(db.writes.length).toBeGreaterThan(1);
    for (const w of db.writes.slice(0, -1)) expect(w.length).toBeGreaterThan(64 * 1024);
    const got = db.writes.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { body: { message: string } });
    expect(got.map((f) => f.body.message.split(':')[0])).toEqual(lines.map((_, i) => String(i)));
    await broker.close();
  });
});
