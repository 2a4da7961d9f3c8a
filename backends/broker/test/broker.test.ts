import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { Broker } from '../src/index';
import { completion } from '../src/broker';
import { exposureInv, FakePort, inv, KV_OPS, kvHandler, SESSION_OPS, tempDir, testPlan } from './helpers';
import type { Violation } from '../src/types';
import type { OrderAutomaton, PlanExposure } from '@mcl/plan';

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

beforeEach(() => {
  ({ dir, cleanup } = tempDir());
  broker = new Broker(testPlan(), { reconnectDelayMs: 10 });
});

afterEach(async () => {
  await broker.close();
  for (const p of ports.splice(0)) await p.close();
  cleanup();
});

describe('relaying', () => {
  it('relays a call and its reply, rewriting ids so requesters never see each other', async () => {
    const db = await fake('db', 0, 'kv');
    const client = await fake('client', 0, 'kv');
    const flood = await fake('flood', 0, 'kv');
    client.send({ t: 'call', op: 'put', id: 7, body: { key: 'a', value: 'x' } });
    flood.send({ t: 'call', op: 'get', id: 7, body: { key: 'a' } });
    const a = await db.next();
    const b = await db.next();
    // Calls from two sockets may arrive in either order; tell them apart by operation.
    const [c1, c2] = a.op === 'put' ? [a, b] : [b, a];
    expect(c1.t).toBe('call');
    expect(c2.op).toBe('get');
    expect(c1.id).not.toBe(c2.id);
    // Answer in the opposite order: each reply must reach its own requester with its own id.
    db.send({ t: 'reply', id: c2.id, body: { miss: null } });
    db.send({ t: 'reply', id: c1.id, body: { ok: true } });
    expect(await client.next()).toEqual({ t: 'reply', id: 7, body: { ok: true } });
    expect(await flood.next()).toEqual({ t: 'reply', id: 7, body: { miss: null } });
    const c = counter('client.kv->db.kv');
    expect(c.calls).toBe(1);
    expect(c.replies).toBe(1);
    expect(c.violations_total).toBe(0);
    expect(c.latency_ms.samples).toBe(1);
  });

  it('counts the bytes of frames as they go on the wire (UTF-8), not as characters', async () => {
    const db = await fake('db', 0, 'kv');
    const client = await fake('client', 0, 'kv');
    // Two-byte and three-byte characters: a count of characters would be a third to a half too low.
    client.send({ t: 'call', op: 'put', id: 1, body: { key: 'a', value: 'é€'.repeat(300) } });
    const line = await db.nextLine();
    const call = JSON.parse(line);
    db.send({ t: 'reply', id: call.id, body: { ok: true } });
    const reply = await client.nextLine();
    const c = counter('client.kv->db.kv');
    expect(c.bytes_to_provider).toBe(Buffer.byteLength(line) + 1);
    expect(c.bytes_to_requirer).toBe(Buffer.byteLength(reply) + 1);
    expect(c.bytes_to_provider).toBeGreaterThan(line.length + 900);
  });

  it('relays one-way sends and delivers provider notifications to every requester of the port', async () => {
    const db = await fake('db', 0, 'kv');
    const client = await fake('client', 0, 'kv');
    const flood = await fake('flood', 0, 'kv');
    client.send({ t: 'send', op: 'log', body: { message: 'hi' } });
    expect(await db.next()).toEqual({ t: 'send', op: 'log', body: { message: 'hi' } });
    db.send({ t: 'notify', op: 'changed', body: { key: 'k' } });
    expect(await client.next()).toEqual({ t: 'notify', op: 'changed', body: { key: 'k' } });
    expect(await flood.next()).toEqual({ t: 'notify', op: 'changed', body: { key: 'k' } });
  });

  it('answers an error when no clone of the provider is attached', async () => {
    const client = await fake('client', 0, 'kv');
    client.send({ t: 'call', op: 'get', id: 1, body: { key: 'a' } });
    const r = await client.next();
    expect(r.t).toBe('error');
    expect(r.id).toBe(1);
    expect(String(r.error)).toMatch(/no clone of db/);
  });

  it('reconnects to a restarted clone and fails calls that the dead one held', async () => {
    const db = await fake('db', 0, 'kv');
    const client = await fake('client', 0, 'kv');
    client.send({ t: 'call', op: 'get', id: 1, body: { key: 'a' } });
    await db.next();
    db.dropConnection();
    const r = await client.next();
    expect(r).toMatchObject({ t: 'error', id: 1 });
    expect(String(r.error)).toMatch(/went away/);
    await db.connected();
    db.handler = kvHandler();
    client.send({ t: 'call', op: 'get', id: 2, body: { key: 'a' } });
    expect(await client.next()).toEqual({ t: 'reply', id: 2, body: { miss: null } });
  });

  it('a reply that arrives on the next connection to a call its dropped connection failed is counted late, not as a violation', async () => {
    const db = await fake('db', 0, 'kv');
    const client = await fake('client', 0, 'kv');
    client.send({ t: 'call', op: 'get', id: 1, body: { key: 'a' } });
    const call = await db.next();
    db.dropConnection();
    expect(await client.next()).toMatchObject({ t: 'error', id: 1 });
    await db.connected();
    // What the guest wrote while no broker was connected goes to the next connection (a KubeVirt guest's FIFO).
    db.send({ t: 'reply', id: call.id, body: { miss: null } });
    await new Promise((r) => setTimeout(r, 50));
    const c = broker.counters().find((x) => x.channel === 'client.kv->db.kv')!;
    expect(c.late_replies).toBe(1);
    expect(c.violations_total).toBe(0);
    expect(await client.silent(50)).toBe(true);
  });
});

describe('enforcement', () => {
  it('denies and counts every kind of hostile frame while the good channel keeps working', async () => {
    const db = await fake('db', 0, 'kv');
    db.handler = kvHandler();
    const client = await fake('client', 0, 'kv');
    const flood = await fake('flood', 0, 'kv');
    const seen: Violation[] = [];
    broker.on('violation', (v: Violation) => seen.push(v));

    const expectDenied = async (kind: string, id?: number) => {
      const d = await flood.next();
      expect(d.t).toBe('denied');
      expect(d.kind).toBe(kind);
      if (id !== undefined) expect(d.id).toBe(id);
      expect(typeof d.reason).toBe('string');
    };
    flood.raw('this is not json\n');
    await expectDenied('malformed');
    flood.send({ t: 'call', op: 'get', id: 1, body: { key: 42 } });
    await expectDenied('schema', 1);
    flood.send({ t: 'call', op: 'get', id: 2, body: { key: 'a', extra: 1 } });
    await expectDenied('schema', 2);
    flood.send({ t: 'call', op: 'drop_tables', id: 3, body: {} });
    await expectDenied('unknown_op', 3);
    flood.send({ t: 'reply', id: 4, body: { ok: true } });
    await expectDenied('direction', 4);
    // The burst of 5 is spent by now; wait for the bucket to refill a little before the next checks.
    await new Promise((r) => setTimeout(r, 300));
    flood.send({ t: 'call', op: 'put', id: 5, body: { key: 'a', value: 'x'.repeat(1500) } });
    await expectDenied('oversize', 5);
    flood.raw('{"t":"call","op":"get","id":6,"body":{"key":"' + 'a'.repeat(5000) + '"}}\n');
    await expectDenied('oversize');
    // Megabytes without a newline: cut off at the limit, the rest discarded, then the next line works.
    const junk = Buffer.alloc(256 * 1024, 0x61);
    for (let i = 0; i < 12; i++) flood.raw(junk);
    await expectDenied('oversize');
    flood.raw('\n');
    await new Promise((r) => setTimeout(r, 300));
    flood.send({ t: 'call', op: 'get', id: 8, body: { key: 'a' } });
    expect(await flood.next()).toEqual({ t: 'reply', id: 8, body: { miss: null } });

    // Flooding: the token bucket (20/s, burst 5) refuses the excess.
    for (let i = 0; i < 50; i++) flood.send({ t: 'send', op: 'log', body: { message: `m${i}` } });
    // Meanwhile the well-behaved channel answers.
    client.send({ t: 'call', op: 'put', id: 1, body: { key: 'k', value: 'v' } });
    expect(await client.next()).toEqual({ t: 'reply', id: 1, body: { ok: true } });
    await new Promise((r) => setTimeout(r, 100));

    // The provider side: a reply that answers no call, a call from the provider, a bad reply, a bad notify.
    db.send({ t: 'reply', id: 999, body: { ok: true } });
    db.send({ t: 'call', op: 'get', id: 1, body: { key: 'a' } });
    db.send({ t: 'notify', op: 'changed', body: { key: 'UPPER' } });
    await new Promise((r) => setTimeout(r, 100));

    const fc = counter('flood.kv->db.kv');
    expect(fc.violations.malformed).toBe(1);
    expect(fc.violations.schema).toBe(2);
    expect(fc.violations.unknown_op).toBe(1);
    expect(fc.violations.direction).toBe(1);
    expect(fc.violations.oversize).toBe(3);
    expect(fc.violations.rate).toBeGreaterThanOrEqual(40);
    const kinds = new Set(seen.map((v) => v.kind));
    for (const k of ['malformed', 'schema', 'unknown_op', 'direction', 'oversize', 'rate', 'unsolicited']) expect(kinds.has(k as never)).toBe(true);
    const fromDb = seen.filter((v) => v.instance === 'db');
    expect(fromDb.map((v) => v.kind).sort()).toEqual(['direction', 'schema', 'unsolicited']);
    expect(broker.violations().length).toBe(seen.length);
    // The well-behaved requester caused nothing; the bad notify counts on the first channel that carries it.
    expect(seen.filter((v) => v.instance === 'client')).toEqual([]);
    expect(counter('client.kv->db.kv').violations).toEqual({ schema: 1 });
  });

  it('refuses everything on a port that has no channel (default deny)', async () => {
    await fake('db', 0, 'kv');
    const loose = await fake('client', 0, 'loose');
    loose.send({ t: 'call', op: 'get', id: 1, body: { key: 'a' } });
    const d = await loose.next();
    expect(d).toMatchObject({ t: 'denied', id: 1, kind: 'unwired' });
    const c = broker.counters().find((x) => x.channel === 'port:client.loose');
    expect(c?.violations.unwired).toBe(1);
  });

  it('fails a call with a timeout error and counts the late reply without calling it an attack', async () => {
    const db = await fake('db', 0, 'kv');
    const client = await fake('client', 0, 'kv');
    const t0 = Date.now();
    client.send({ t: 'call', op: 'get', id: 'q1', body: { key: 'a' } });
    const call = await db.next();
    const r = await client.next(3000);
    expect(r.t).toBe('error');
    expect(r.id).toBe('q1');
    expect(String(r.error)).toMatch(/timeout/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    db.send({ t: 'reply', id: call.id, body: { miss: null } });
    await new Promise((r) => setTimeout(r, 50));
    const c = counter('client.kv->db.kv');
    expect(c.timeouts).toBe(1);
    expect(c.late_replies).toBe(1);
    expect(c.violations_total).toBe(0);
    expect(await client.silent(50)).toBe(true);
  });

  it('limits outstanding calls to max_inflight', async () => {
    const db = await fake('db', 0, 'kv');
    const client = await fake('client', 0, 'kv');
    for (let i = 1; i <= 5; i++) client.send({ t: 'call', op: 'get', id: i, body: { key: 'a' } });
    const d = await client.next();
    expect(d).toMatchObject({ t: 'denied', id: 5, kind: 'inflight' });
    const calls = [await db.next(), await db.next(), await db.next(), await db.next()];
    for (const c of calls) db.send({ t: 'reply', id: c.id, body: { miss: null } });
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push((await client.next()).id);
    expect(ids).toEqual([1, 2, 3, 4]);
  });

  it('enforces the protocol order automaton', async () => {
    const api = await fake('ordered', 0, 'api');
    api.handler = (f) => ({ t: 'reply', id: f.id, body: f.op === 'query' ? { miss: null } : { ok: true } });
    const sess = await fake('client', 0, 'sess');
    sess.send({ t: 'call', op: 'query', id: 1, body: { key: 'a' } });
    expect(await sess.next()).toMatchObject({ t: 'denied', id: 1, kind: 'order' });
    for (const [i, op] of (['login', 'query', 'query', 'logout'] as const).entries()) {
      sess.send({ t: 'call', op, id: 10 + i, body: { key: 'a' } });
      expect(await sess.next()).toMatchObject({ t: 'reply', id: 10 + i });
    }
    sess.send({ t: 'call', op: 'query', id: 20, body: { key: 'a' } });
    expect(await sess.next()).toMatchObject({ t: 'denied', id: 20, kind: 'order' });
    // A new session starts the automaton again.
    sess.send({ t: 'close' });
    expect(await sess.next()).toEqual({ t: 'closed' });
    sess.send({ t: 'call', op: 'login', id: 21, body: { key: 'a' } });
    expect(await sess.next()).toMatchObject({ t: 'reply', id: 21 });
  });
});

describe('protocol order at the end of a session', () => {
  const SESS = 'client.sess->ordered.api';
  const incomplete = () => broker.violations().filter((v) => v.kind === 'order_incomplete');
  /** Sends calls on the ordered channel and waits for each reply. */
  async function calls(sess: FakePort, ops: string[], firstId = 1) {
    for (const [i, op] of ops.entries()) {
      sess.send({ t: 'call', op, id: firstId + i, body: { key: 'a' } });
      expect(await sess.next()).toMatchObject({ t: 'reply', id: firstId + i });
    }
  }
  async function orderedPair() {
    const api = await fake('ordered', 0, 'api');
    api.handler = (f) => ({ t: 'reply', id: f.id, body: f.op === 'query' ? { miss: null } : { ok: true } });
    return { api, sess: await fake('client', 0, 'sess') };
  }
  const until = async (cond: () => boolean) => {
    for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(cond()).toBe(true);
  };

  it('counts a connection that drops in the middle of the protocol, with instance, channel and what was missing', async () => {
    const { sess } = await orderedPair();
    const seen: Violation[] = [];
    broker.on('violation', (v: Violation) => seen.push(v));
    // Traffic on another channel of the same instance, which must stay clean.
    const db = await fake('db', 0, 'kv');
    db.handler = kvHandler();
    const kv = await fake('client', 0, 'kv');
    await calls(sess, ['login', 'query']);
    kv.send({ t: 'call', op: 'get', id: 1, body: { key: 'k' } });
    expect(await kv.next()).toMatchObject({ t: 'reply', id: 1 });
    sess.dropConnection();
    await until(() => incomplete().length === 1);
    const [v] = incomplete();
    expect(v).toMatchObject({ instance: 'client', clone: 0, port: 'sess', channel: SESS, kind: 'order_incomplete' });
    expect(v.detail).toBe('the session ended (the port disconnected) in state 1 of the protocol order, which is not accepting; it still needed: logout');
    expect(seen).toEqual([v]);
    expect(counter(SESS).violations).toEqual({ order_incomplete: 1 });
    expect(counter(SESS).violations_total).toBe(1);
    expect(counter('client.kv->db.kv').violations_total).toBe(0);
    // The broker reconnects; the new connection is a new session, starting in state 0.
    await sess.connected();
    await calls(sess, ['login', 'logout'], 10);
    expect(incomplete()).toHaveLength(1);
  });

  it('does not count sessions that end in an accepting state, or that never moved the automaton', async () => {
    const { sess } = await orderedPair();
    await calls(sess, ['login', 'query', 'logout']);
    sess.dropConnection();
    await sess.connected();
    // Connected, then gone again without a frame: state 0, nothing to report.
    sess.dropConnection();
    await sess.connected();
    // A refused frame does not move the automaton either.
    sess.send({ t: 'call', op: 'query', id: 5, body: { key: 'a' } });
    expect(await sess.next()).toMatchObject({ t: 'denied', kind: 'order' });
    broker.detachClone('client', 0);
    await new Promise((r) => setTimeout(r, 50));
    expect(incomplete()).toEqual([]);
    expect(counter(SESS).violations).toEqual({ order: 1 });
  });

  it('counts a close or a new open in the middle of the protocol, still answers it, and starts again from state 0', async () => {
    const { sess } = await orderedPair();
    await calls(sess, ['login']);
    sess.send({ t: 'close', id: 'c1' });
    expect(await sess.next()).toEqual({ t: 'closed', id: 'c1' });
    expect(incomplete().map((v) => v.detail)).toEqual([
      'the session ended (closed by a close frame) in state 1 of the protocol order, which is not accepting; it still needed: logout',
    ]);
    // Nothing but the answer to close reached the requester: no denied frame for a session that ended.
    expect(await sess.silent(50)).toBe(true);
    await calls(sess, ['login', 'query'], 10);
    sess.send({ t: 'open', id: 'o1' });
    expect(await sess.next()).toMatchObject({ t: 'opened', id: 'o1' });
    expect(incomplete()).toHaveLength(2);
    expect(incomplete()[1].detail).toContain('(a new session was opened) in state 1');
    await calls(sess, ['login'], 20);
  });

  it('counts a guest detached in the middle of the protocol, but not sessions ended by closing the broker', async () => {
    const { sess } = await orderedPair();
    await calls(sess, ['login']);
    broker.detachClone('client', 0);
    expect(incomplete()).toHaveLength(1);
    expect(incomplete()[0].detail).toContain('(the port was detached)');
    const again = await fake('client', 1, 'sess');
    await calls(again, ['login']);
    await broker.close();
    expect(incomplete()).toHaveLength(1);
  });

  it('counts a per-session clone that goes away in the middle of the protocol; the next session starts from state 0', async () => {
    await broker.close();
    const plan = testPlan();
    // On the per-session channel: get only after a put, and a session may end only after its get.
    plan.channels.find((c) => c.id === 'client.ps->ps.kv')!.invariants.order = { transitions: [{ put: 1 }, { get: 2 }, {}], accepting: [0, 2] };
    let next = 0;
    broker = new Broker(plan, {
      reconnectDelayMs: 10,
      onSessionOpen: async () => {
        const idx = next++;
        const p = await FakePort.listen(join(dir, `ps.${idx}.sock`));
        ports.push(p);
        p.handler = kvHandler();
        await broker.attachPort('ps', idx, 'kv', p.path);
        return idx;
      },
    });
    const client = await fake('client', 0, 'ps');
    client.send({ t: 'call', op: 'put', id: 1, body: { key: 'k', value: 'v' } });
    expect(await client.next()).toMatchObject({ t: 'reply', id: 1 });
    broker.detachClone('ps', 0);
    expect(incomplete().map((v) => [v.instance, v.channel, v.detail])).toEqual([
      ['client', 'client.ps->ps.kv', 'the session ended (its clone ps[0] went away) in state 1 of the protocol order, which is not accepting; it still needed: get'],
    ]);
    // A new session on a new clone: put is allowed again.
    client.send({ t: 'call', op: 'put', id: 2, body: { key: 'k', value: 'w' } });
    expect(await client.next()).toMatchObject({ t: 'reply', id: 2 });
    expect(next).toBe(2);
  });

  it('counts a TCP client of an ordered exposure that disconnects in the middle of the protocol', async () => {
    await broker.close();
    const plan = testPlan();
    const order = plan.channels.find((c) => c.id === SESS)!.invariants.order;
    const exposure: PlanExposure = { host_port: 18083, transport: 'tcp', instance: 'ordered', port: 'api', protocol: 't.Session', ops: SESSION_OPS, invariants: inv({ order }) };
    plan.exposures = [exposure];
    broker = new Broker(plan, { mapHostPort: () => 0, reconnectDelayMs: 10 });
    const api = await fake('ordered', 0, 'api');
    api.handler = (f) => ({ t: 'reply', id: f.id, body: { ok: true } });
    const [ex] = await broker.listenExposures();
    const s = connect(ex.bound_port, '127.0.0.1');
    s.setEncoding('utf8');
    let got = '';
    s.on('data', (d: string) => (got += d));
    s.write('{"t":"call","op":"login","id":1,"body":{"key":"a"}}\n');
    await until(() => got.includes('"t":"reply"'));
    s.destroy();
    await until(() => incomplete().length === 1);
    expect(incomplete()[0]).toMatchObject({ instance: 'tcp:18083', channel: 'tcp:18083->ordered.api', kind: 'order_incomplete' });
    expect(incomplete()[0].detail).toContain('(the connection closed) in state 1');
  });
});

describe('completion', () => {
  it('finds the shortest way to an accepting state, or none', () => {
    const order: OrderAutomaton = { transitions: [{ login: 1 }, { query: 1, logout: 2, upgrade: 3 }, {}, { confirm: 2 }, { loop: 4 }], accepting: [0, 2] };
    expect(completion(order, 0)).toEqual([]);
    expect(completion(order, 1)).toEqual(['logout']);
    expect(completion(order, 3)).toEqual(['confirm']);
    expect(completion(order, 4)).toBeNull();
  });
});

describe('isolation', () => {
  it('keeps a good channel answering with bounded latency while a hostile peer floods junk and does not read', async () => {
    // A long timeout on the good channel: the assertion on latency below says what is acceptable.
    await broker.close();
    const plan = testPlan();
    plan.channels.find((c) => c.id === 'client.kv->db.kv')!.invariants.timeout_ms = 10_000;
    broker = new Broker(plan, { reconnectDelayMs: 10 });
    const db = await fake('db', 0, 'kv');
    db.handler = kvHandler();
    const client = await fake('client', 0, 'kv');
    const flood = await fake('flood', 0, 'kv');
    // The hostile peer never reads what the broker tells it.
    flood.socket!.pause();
    const rtts = async (n: number, minMs = 0) => {
      const out: number[] = [];
      const until = performance.now() + minMs;
      for (let i = 0; i < n || performance.now() < until; i++) {
        const t0 = performance.now();
        client.send({ t: 'call', op: 'get', id: i, body: { key: 'a' } });
        const r = await client.next();
        expect(r).toMatchObject({ t: 'reply', id: i });
        out.push(performance.now() - t0);
      }
      return out.sort((a, b) => a - b);
    };
    const quiet = await rtts(50);
    let flooding = true;
    const junk = [
      'not json at all\n',
      '{"t":"call","op":"get","id":1,"body":{"key":"a"}}\n',
      '{"t":"send","op":"log","body":{"message":"x"}}\n',
      '{"t":"call","op":"nope","id":2,"body":{}}\n',
      'x'.repeat(3000) + '\n',
    ].join('');
    let sent = 0;
    const pump = () => {
      if (!flooding) return;
      // Keep a bounded amount queued so the test process itself stays responsive.
      if (flood.socket!.writableLength < 1 << 20) {
        for (let i = 0; i < 50; i++) flood.raw(junk);
        sent += 50 * junk.length;
      }
      setImmediate(pump);
    };
    pump();
    await new Promise((r) => setTimeout(r, 100));
    const t1 = performance.now();
    const loud = await rtts(50, 600);
    flooding = false;
    const seconds = (performance.now() - t1) / 1000 + 0.2;
    const fc = counter('flood.kv->db.kv');
    expect(sent).toBeGreaterThan(1 << 20);
    // The hostile socket is read in bursts (it is paused for a while after every 64 violations), and every
    // kind of junk in each burst is refused and counted.
    expect(fc.violations_total).toBeGreaterThan(300);
    for (const k of ['malformed', 'oversize', 'rate'] as const) expect(fc.violations[k] ?? 0).toBeGreaterThan(20);
    // Nothing from the flood got through beyond its token bucket (burst 5 + 20/s).
    expect(fc.frames_to_provider).toBeLessThanOrEqual(5 + Math.ceil(20 * seconds) + 1);
    expect(counter('client.kv->db.kv').violations_total).toBe(0);
    const p99 = loud[Math.floor(loud.length * 0.99)];
    const p50 = loud[Math.floor(loud.length * 0.5)];
    console.log(`quiet max ${quiet[quiet.length - 1].toFixed(2)} ms, flooded (${loud.length} calls) p50 ${p50.toFixed(2)} p99 ${p99.toFixed(2)} ms, ${(sent / 1e6).toFixed(1)} MB of junk in ${seconds.toFixed(2)} s, ${fc.violations_total} violations`);
    // Generous: this machine is shared; the point is that the good channel is not starved.
    expect(p99).toBeLessThan(Math.max(250, quiet[quiet.length - 1] * 20));
  });
});

describe('backpressure', () => {
  it('stops reading a requester while its provider does not read, then delivers everything', async () => {
    const rep = await fake('rep', 0, 'kv');
    const client = await fake('client', 0, 'rep');
    // The provider stops reading: what the broker writes to it piles up in the broker's socket.
    rep.socket!.pause();
    const line = JSON.stringify({ t: 'send', op: 'log', body: { message: 'm'.repeat(200) } }) + '\n';
    const n = 40_000;
    const chunk = line.repeat(1000);
    for (let i = 0; i < n / 1000; i++) client.raw(chunk);
    await new Promise((r) => setTimeout(r, 300));
    // The broker paused the requester: most of the 9 MB still waits on the requester's side.
    const c = counter('client.rep->rep.kv');
    expect(c.frames_to_provider).toBeLessThan(n);
    expect(client.socket!.writableLength).toBeGreaterThan(0);
    // Once the provider reads again, every frame arrives, in order and whole.
    let got = 0;
    let bad = 0;
    let buf = '';
    rep.socket!.removeAllListeners('data');
    rep.socket!.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        if (buf.slice(0, i + 1) === line) got++;
        else bad++;
        buf = buf.slice(i + 1);
      }
    });
    rep.socket!.resume();
    const t0 = Date.now();
    while (got + bad < n && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
    expect({ got, bad }).toEqual({ got: n, bad: 0 });
    expect(counter('client.rep->rep.kv').violations_total).toBe(0);
  });
});

describe('replicas and sessions', () => {
  it('spreads calls round-robin over the attached replicas', async () => {
    const reps = [];
    for (let i = 0; i < 3; i++) {
      const p = await fake('rep', i, 'kv');
      p.handler = kvHandler(new Map([['k', 'v']]), `r${i}`);
      reps.push(p);
    }
    const client = await fake('client', 0, 'rep');
    const got: string[] = [];
    for (let i = 0; i < 6; i++) {
      client.send({ t: 'call', op: 'get', id: i, body: { key: 'k' } });
      const r = await client.next();
      got.push(((r.body as { hit: { value: string } }).hit.value));
    }
    expect(got).toEqual(['r0:v', 'r1:v', 'r2:v', 'r0:v', 'r1:v', 'r2:v']);
    // A replica that goes away is skipped.
    broker.detachClone('rep', 1);
    const after: string[] = [];
    for (let i = 0; i < 4; i++) {
      client.send({ t: 'call', op: 'get', id: i, body: { key: 'k' } });
      after.push(((await client.next()).body as { hit: { value: string } }).hit.value);
    }
    expect(new Set(after)).toEqual(new Set(['r0:v', 'r2:v']));
    // An explicit session sticks to one replica until it is closed.
    client.send({ t: 'open', id: 'o' });
    expect(await client.next()).toMatchObject({ t: 'opened', id: 'o' });
    const sticky: string[] = [];
    for (let i = 0; i < 4; i++) {
      client.send({ t: 'call', op: 'get', id: i, body: { key: 'k' } });
      sticky.push(((await client.next()).body as { hit: { value: string } }).hit.value);
    }
    expect(new Set(sticky).size).toBe(1);
    client.send({ t: 'close' });
    expect(await client.next()).toEqual({ t: 'closed' });
  });

  it('opens a per-session clone through the hook and disposes it on close', async () => {
    await broker.close();
    const opened: number[] = [];
    const closed: number[] = [];
    let next = 0;
    broker = new Broker(testPlan(), {
      reconnectDelayMs: 10,
      onSessionOpen: async (instance) => {
        expect(instance).toBe('ps');
        const idx = next++;
        const p = await FakePort.listen(join(dir, `ps.${idx}.sock`));
        ports.push(p);
        p.handler = kvHandler(new Map([['k', 'v']]), `s${idx}`);
        void broker.attachPort('ps', idx, 'kv', p.path);
        opened.push(idx);
        return idx;
      },
      onSessionClose: (instance, idx) => {
        closed.push(idx);
        broker.detachClone(instance, idx);
      },
    });
    const client = await fake('client', 0, 'ps');
    // The first call opens a session implicitly.
    client.send({ t: 'call', op: 'get', id: 1, body: { key: 'k' } });
    expect(await client.next()).toEqual({ t: 'reply', id: 1, body: { hit: { key: 'k', value: 's0:v' } } });
    client.send({ t: 'call', op: 'get', id: 2, body: { key: 'k' } });
    expect(await client.next()).toEqual({ t: 'reply', id: 2, body: { hit: { key: 'k', value: 's0:v' } } });
    expect(opened).toEqual([0]);
    client.send({ t: 'close', id: 3 });
    expect(await client.next()).toEqual({ t: 'closed', id: 3 });
    await new Promise((r) => setTimeout(r, 20));
    expect(closed).toEqual([0]);
    client.send({ t: 'open', id: 4 });
    expect(await client.next()).toMatchObject({ t: 'opened', id: 4 });
    client.send({ t: 'call', op: 'get', id: 5, body: { key: 'k' } });
    expect(await client.next()).toEqual({ t: 'reply', id: 5, body: { hit: { key: 'k', value: 's1:v' } } });
    // Ending the requester's port ends its session.
    broker.detachClone('client', 0);
    await new Promise((r) => setTimeout(r, 20));
    expect(closed).toEqual([0, 1]);
  });

  it('gives back a session clone whose requester left while it was being made', async () => {
    await broker.close();
    const closed: number[] = [];
    let finish: (idx: number) => void = () => {};
    broker = new Broker(testPlan(), {
      onSessionOpen: () => new Promise<number>((r) => (finish = r)),
      onSessionClose: (_i, idx) => {
        closed.push(idx);
      },
    });
    const client = await fake('client', 0, 'ps');
    client.send({ t: 'call', op: 'get', id: 1, body: { key: 'k' } });
    await new Promise((r) => setTimeout(r, 20));
    broker.detachClone('client', 0);
    finish(7);
    await new Promise((r) => setTimeout(r, 20));
    expect(closed).toEqual([7]);
  });

  it('refuses sessions beyond max_sessions', async () => {
    await broker.close();
    let next = 0;
    broker = new Broker(testPlan(), {
      onSessionOpen: async () => {
        const idx = next++;
        const p = await FakePort.listen(join(dir, `ps.${idx}.sock`));
        ports.push(p);
        p.handler = kvHandler();
        void broker.attachPort('ps', idx, 'kv', p.path);
        return idx;
      },
    });
    const bound = (await broker.listenExposures()).length;
    expect(bound).toBeGreaterThan(0);
    await broker.close();
    // Three TCP clients of a per-session exposure would need three clones; the plan allows two.
    const plan = testPlan();
    plan.exposures.push({ host_port: 18082, transport: 'tcp', instance: 'ps', port: 'kv', protocol: 't.Kv', ops: KV_OPS, invariants: exposureInv() });
    plan.exposures = plan.exposures.filter((e) => e.host_port === 18082);
    next = 0;
    broker = new Broker(plan, {
      mapHostPort: () => 0,
      onSessionOpen: async () => {
        const idx = next++;
        const p = await FakePort.listen(join(dir, `ps2.${idx}.sock`));
        ports.push(p);
        p.handler = kvHandler();
        void broker.attachPort('ps', idx, 'kv', p.path);
        return idx;
      },
    });
    const [ex] = await broker.listenExposures();
    const socks = [];
    const replies: string[] = [];
    for (let i = 0; i < 3; i++) {
      const s = connect(ex.bound_port, '127.0.0.1');
      socks.push(s);
      s.setEncoding('utf8');
      const got = new Promise<string>((resolve) => s.on('data', (d: string) => resolve(d)));
      await new Promise((r) => s.once('connect', r));
      await new Promise((r) => setTimeout(r, 30));
      s.write(JSON.stringify({ t: 'call', op: 'get', id: i, body: { key: 'k' } }) + '\n');
      replies.push(await got);
    }
    for (const s of socks) s.destroy();
    expect(replies[0]).toMatch(/"t":"reply"/);
    expect(replies[1]).toMatch(/"t":"reply"/);
    expect(replies[2]).toMatch(/"kind":"sessions"/);
    expect(next).toBe(2);
  });
});

describe('exposures', () => {
  it('relays line-JSON frames from a TCP client to a provided port', async () => {
    await broker.close();
    broker = new Broker(testPlan(), { mapHostPort: () => 0 });
    const db = await fake('db', 0, 'kv');
    db.handler = kvHandler(new Map([['k', 'v']]));
    const ex = (await broker.listenExposures()).find((e) => e.mode === 'frames')!;
    expect(ex.id).toBe('tcp:18081->db.kv');
    const s = connect(ex.bound_port, '127.0.0.1');
    s.setEncoding('utf8');
    const lines: string[] = [];
    let buf = '';
    s.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    s.write('{"t":"call","op":"get","id":1,"body":{"key":"k"}}\n{"t":"call","op":"nope","id":2,"body":{}}\n');
    await new Promise((r) => setTimeout(r, 200));
    s.destroy();
    expect(lines).toContain('{"t":"reply","id":1,"body":{"hit":{"key":"k","value":"v"}}}');
    expect(lines.some((l) => l.includes('"kind":"unknown_op"'))).toBe(true);
  });

  it('fails to listen on a port another program holds, and a later call binds only what is missing', async () => {
    await broker.close();
    const other = createServer();
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const taken = (other.address() as { port: number }).port;
    // The HTTP exposure (18080) lands on the taken port, the frames one (18081) on any free port.
    broker = new Broker(testPlan(), { mapHostPort: (p) => (p === 18080 ? taken : 0) });
    const err = await broker.listenExposures().catch((e: Error) => e);
    expect(String(err)).toMatch(new RegExp(`cannot listen on 127\\.0\\.0\\.1:${taken} for exposure tcp:18080->web\\.http: .*EADDRINUSE`));
    await new Promise((r) => other.close(r));
    const [http, frames] = await broker.listenExposures();
    expect(http).toMatchObject({ host_port: 18080, bound_port: taken, mode: 'http' });
    expect(frames).toMatchObject({ host_port: 18081, mode: 'frames' });
    // Asked again, the same listeners: nothing is bound twice.
    expect(await broker.listenExposures()).toEqual([http, frames]);
    const res = await fetch(`http://127.0.0.1:${taken}/`);
    expect(res.headers.get('x-mcl-broker')).toBe('error');
  });
});
