// Isolation under a flood: a sender over its violation budget is paused at
// once (the rest of what it sent waits, in order), and a channel's rate and
// max_inflight are shared out per clone of the requiring instance, so that one
// compromised replica cannot starve its siblings.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Broker } from '../src/index';
import { LineSplitter } from '../src/lines';
import { FakePort, kvHandler, tempDir, testPlan } from './helpers';

/** The limit as the test process set it, before any broker ran (a broker that leaves it changed changes it for every later test). */
const STACK_TRACE_LIMIT = Error.stackTraceLimit;
let dir: string;
let cleanup: () => void;
let broker: Broker;
const ports: FakePort[] = [];

async function fake(instance: string, clone: number, port: string): Promise<FakePort> {
  const p = await FakePort.listen(join(dir, `${instance}.${clone}.${port}.sock`));
  ports.push(p);
  void broker.attachPort(instance, clone, port, p.path);
  await p.connected();
  return p;
}

function counter(id: string) {
  const c = broker.counters().find((x) => x.channel === id);
  if (!c) throw new Error(`no counters for ${id}`);
  return c;
}

/** The test plan with the flooding instance replicated: two clones share the channel flood.kv->db.kv (rate 20/s burst 5, max_inflight 8). */
function replicatedFlood() {
  const plan = testPlan();
  const flood = plan.instances.find((i) => i.id === 'flood')!;
  flood.mode = 'replicas';
  flood.replicas = 2;
  return plan;
}

beforeEach(() => {
  ({ dir, cleanup } = tempDir());
  broker = new Broker(replicatedFlood(), { reconnectDelayMs: 10 });
});

afterEach(async () => {
  await broker.close();
  for (const p of ports.splice(0)) await p.close();
  cleanup();
});

describe('LineSplitter.hold', () => {
  it('stops handing out lines mid-chunk and hands out the rest, in order, on release', () => {
    const out: string[] = [];
    let holdAfter: string | null = 'a';
    const sp: LineSplitter = new LineSplitter(100, {
      line: (t) => {
        out.push(t);
        if (t === holdAfter) sp.hold();
      },
      oversize: () => out.push('OVERSIZE'),
    });
    sp.push(Buffer.from('a\nb\npar'));
    expect(out).toEqual(['a']);
    // A chunk read before the stream paused is kept behind the held rest.
    sp.push(Buffer.from('t\nc\n'));
    expect(out).toEqual(['a']);
    holdAfter = null;
    sp.release();
    expect(out).toEqual(['a', 'b', 'part', 'c']);
    sp.push(Buffer.from('d\n'));
    expect(out).toEqual(['a', 'b', 'part', 'c', 'd']);
  });

  it('hands out at most `max` held lines per release, and the rest, in order, on the next', () => {
    const out: string[] = [];
    const sp: LineSplitter = new LineSplitter(100, { line: (t) => (out.push(t), t === 'a' && sp.hold()), oversize: () => undefined });
    sp.push(Buffer.from('a\nb\nc\nd\ne'));
    sp.release(2);
    expect(out).toEqual(['a', 'b', 'c']);
    expect(sp.onHold).toBe(true);
    sp.release(2);
    // The unfinished line is kept as a partial one: nothing is held any more, and the next chunk finishes it.
    expect(out).toEqual(['a', 'b', 'c', 'd']);
    expect(sp.onHold).toBe(false);
    sp.push(Buffer.from('f\ng\nh\n'));
    expect(out).toEqual(['a', 'b', 'c', 'd', 'ef', 'g', 'h']);
  });

  it('forgets what it held on reset', () => {
    const out: string[] = [];
    const sp: LineSplitter = new LineSplitter(100, { line: (t) => (out.push(t), sp.hold()), oversize: () => undefined });
    sp.push(Buffer.from('a\nb\n'));
    sp.reset();
    sp.release();
    sp.push(Buffer.from('c\n'));
    expect(out).toEqual(['a', 'c']);
  });
});

describe('violation budget', () => {
  it('stops checking a flooder at the first violation over its budget, not at the end of the chunk', async () => {
    await fake('db', 0, 'kv');
    const flood = await fake('flood', 0, 'kv');
    // 2000 refused frames (about 60 KB) written at once: the broker reads them in one or a few chunks.
    flood.raw('{"t":"call","op":"nope","id":1,"body":{}}\n'.repeat(2000));
    await new Promise((r) => setTimeout(r, 30));
    // The budget is 64 violations at once (then 640/s): the rest of the chunk waits unread.
    const early = counter('flood.kv->db.kv').violations_total;
    expect(early).toBeGreaterThanOrEqual(64);
    expect(early).toBeLessThan(64 + 40);
  });

  it('checks what it held back later, in order, so that a frame after the junk is still served', async () => {
    const db = await fake('db', 0, 'kv');
    db.handler = kvHandler();
    const flood = await fake('flood', 0, 'kv');
    flood.raw('not json\n'.repeat(150) + '{"t":"call","op":"get","id":9,"body":{"key":"a"}}\n');
    const got: Record<string, unknown>[] = [];
    const t0 = Date.now();
    while (Date.now() - t0 < 3000) {
      const f = await flood.next(3000);
      got.push(f);
      if (f.t !== 'denied') break;
    }
    // Every junk line was refused (the ones that were not dropped as notices to a slow reader arrived), then the call was answered.
    expect(got[got.length - 1]).toEqual({ t: 'reply', id: 9, body: { miss: null } });
    expect(counter('flood.kv->db.kv').violations.malformed).toBe(150);
  });
});

describe('a flood checked in small doses', () => {
  it('checks what a paused flooder sent a few frames at a time, so that no stretch of the event loop is long', async () => {
    await fake('db', 0, 'kv');
    const flood = await fake('flood', 0, 'kv');
    // The refusals of each synchronous stretch of the broker's work (a chunk read, or a resumption after a pause).
    const stretches: number[] = [];
    let current = 0;
    broker.on('violation', () => {
      if (current++ === 0) setImmediate(() => (stretches.push(current), (current = 0)));
    });
    flood.raw('{"t":"call","op":"nope","id":1,"body":{}}\n'.repeat(2000));
    const t0 = Date.now();
    while (stretches.length < 12 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
    expect(stretches.length).toBeGreaterThanOrEqual(12);
    // The first stretch spends the budget's burst of 64 (the chunk as read); what was held after it is checked a few lines
    // per turn of the event loop, not the some 32 refusals the budget refills during a pause at once.
    expect(stretches[0]).toBeGreaterThanOrEqual(64);
    expect(Math.max(...stretches.slice(1))).toBeLessThanOrEqual(8);
  });

  it('leaves Error.stackTraceLimit as it found it, whether a line parses or not', async () => {
    const db = await fake('db', 0, 'kv');
    db.handler = kvHandler();
    const flood = await fake('flood', 0, 'kv');
    flood.raw('not json\n');
    expect(await flood.next()).toMatchObject({ t: 'denied', kind: 'malformed' });
    expect(Error.stackTraceLimit).toBe(STACK_TRACE_LIMIT);
    flood.send({ t: 'call', op: 'get', id: 1, body: { key: 'a' } });
    expect(await flood.next()).toEqual({ t: 'reply', id: 1, body: { miss: null } });
    expect(Error.stackTraceLimit).toBe(STACK_TRACE_LIMIT);
  });
});

describe('budgets per requester clone', () => {
  it('gives each clone of the requiring instance its own share of the rate', async () => {
    const db = await fake('db', 0, 'kv');
    db.handler = kvHandler();
    const bad = await fake('flood', 1, 'kv');
    const good = await fake('flood', 0, 'kv');
    // The compromised clone spends its burst of 5 and more.
    for (let i = 1; i <= 10; i++) bad.send({ t: 'call', op: 'get', id: i, body: { key: 'a' } });
    const seen = { reply: 0, denied: 0 };
    for (let i = 0; i < 10; i++) seen[(await bad.next()).t as 'reply' | 'denied']++;
    expect(seen).toEqual({ reply: 5, denied: 5 });
    // Its sibling still has its own.
    good.send({ t: 'call', op: 'get', id: 1, body: { key: 'a' } });
    expect(await good.next()).toEqual({ t: 'reply', id: 1, body: { miss: null } });
  });

  it('gives each clone of the requiring instance its own max_inflight', async () => {
    await broker.close();
    const plan = replicatedFlood();
    plan.channels.find((c) => c.id === 'flood.kv->db.kv')!.invariants.rate = null;
    broker = new Broker(plan, { reconnectDelayMs: 10 });
    const db = await fake('db', 0, 'kv');
    const bad = await fake('flood', 1, 'kv');
    const good = await fake('flood', 0, 'kv');
    // The provider does not answer: the compromised clone fills its 8 calls and is refused the 9th.
    for (let i = 1; i <= 9; i++) bad.send({ t: 'call', op: 'get', id: i, body: { key: 'a' } });
    expect(await bad.next()).toMatchObject({ t: 'denied', id: 9, kind: 'inflight' });
    for (let i = 0; i < 8; i++) await db.next();
    good.send({ t: 'call', op: 'get', id: 1, body: { key: 'a' } });
    const call = await db.next();
    expect(call).toMatchObject({ t: 'call', op: 'get' });
    db.send({ t: 'reply', id: call.id, body: { miss: null } });
    expect(await good.next()).toEqual({ t: 'reply', id: 1, body: { miss: null } });
  });
});
