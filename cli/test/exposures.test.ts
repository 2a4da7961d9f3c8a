// Every kind of exposure the compiler accepts, end to end: the plan mclc
// builds from a source, a real broker listening on its exposures, and fake
// guests behind them. An exposure carries its protocol's operations, schemas
// and order, so a TCP client of an exposure is checked exactly as a channel's
// requiring side: out-of-order, unknown and ill-typed requests are refused, and
// the rest reach the guest, with no channel of the same protocol in the plan.

import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile } from '@mcl/compiler';
import { NodeHost } from '@mcl/compiler/node-host';
import { Broker } from '@mcl/broker';
import type { Plan } from '@mcl/plan';
import { FakePort } from '../../backends/broker/test/helpers';
import { stdlibDir } from '../src/workspace';

const dirs: string[] = [];
const closers: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function planOf(source: string): Plan {
  const root = mkdtempSync(join(tmpdir(), 'mcl-exposures-'));
  dirs.push(root);
  writeFileSync(join(root, 'main.mcl'), source);
  const r = compile(new NodeHost({ root, stdlib: stdlibDir() }), { entries: ['main.mcl'], mclcVersion: 'test' });
  expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return r.plan!;
}

/** A broker on the plan with a fake guest behind every port, listening on its exposures (on ephemeral ports). */
async function up(plan: Plan): Promise<{ broker: Broker; fakes: Map<string, FakePort>; port: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'mcl-exposures-run-'));
  dirs.push(dir);
  const broker = new Broker(plan, { mapHostPort: () => 0, reconnectDelayMs: 10 });
  closers.push(() => broker.close());
  const fakes = new Map<string, FakePort>();
  for (const inst of plan.instances) {
    for (const p of inst.ports) {
      const f = await FakePort.listen(join(dir, `${inst.id}.${p.name}.sock`));
      closers.push(() => f.close());
      fakes.set(`${inst.id}.${p.name}`, f);
      void broker.attachPort(inst.id, 0, p.name, f.path);
      await f.connected();
    }
  }
  const [ex] = await broker.listenExposures();
  return { broker, fakes, port: ex.bound_port };
}

/** A line-JSON client of an exposure. */
function client(port: number): { sock: Socket; next: () => Promise<Record<string, unknown>>; send: (frame: unknown) => void } {
  const sock = connect(port, '127.0.0.1');
  closers.push(async () => void sock.destroy());
  sock.setEncoding('utf8');
  let buf = '';
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  sock.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const w = waiters.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  const next = () =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const have = lines.shift();
      if (have !== undefined) return resolve(JSON.parse(have));
      const t = setTimeout(() => reject(new Error('no frame from the exposure within 2 s')), 2000);
      waiters.push((l) => {
        clearTimeout(t);
        resolve(JSON.parse(l));
      });
    });
  return { sock, next, send: (frame) => sock.write(JSON.stringify(frame) + '\n') };
}

const SESSION = `
type Key = string(1..16, pattern "[a-z]+")
type Ack = { ok: bool }
protocol Session {
  call login(Key) -> Ack
  call query(Key) -> Ack
  send note({ text: string(max 64) })
  notify changed(Key)
  order login (query | note)*
}
component Server {
  memory 96MiB
  expose api: Session on tcp 18500
  program { exec ["/bin/true"] }
}
system S { server = Server }
`;

describe('a line-JSON exposure of a protocol no channel uses', () => {
  it('carries the operations, schemas and order in the plan', () => {
    const plan = planOf(SESSION);
    expect(plan.channels).toEqual([]);
    const [ex] = plan.exposures;
    expect(ex.ops.map((o) => `${o.kind} ${o.name}`)).toEqual(['notify changed', 'call login', 'send note', 'call query']);
    expect(ex.invariants.order).toEqual({ accepting: [1], transitions: [{ login: 1 }, { note: 1, query: 1 }] });
    for (const op of ex.ops) expect(plan.schemas[op.input]).toBeDefined();
  });

  it('enforces them in a real broker: order, operations, schemas, and passes the rest both ways', async () => {
    const { fakes, port } = await up(planOf(SESSION));
    const api = fakes.get('server.api')!;
    api.handler = (f) => ({ t: 'reply', id: f.id, body: { ok: true } });
    const c = client(port);
    // Out of order: the protocol starts with login.
    c.send({ t: 'call', id: 1, op: 'query', body: 'abc' });
    expect(await c.next()).toMatchObject({ t: 'denied', id: 1, kind: 'order' });
    c.send({ t: 'call', id: 2, op: 'login', body: 'abc' });
    expect(await c.next()).toMatchObject({ t: 'reply', id: 2, body: { ok: true } });
    // Not an operation of the protocol, and a message its schema refuses.
    c.send({ t: 'call', id: 3, op: 'drop', body: 'abc' });
    expect(await c.next()).toMatchObject({ t: 'denied', id: 3, kind: 'unknown_op' });
    c.send({ t: 'call', id: 4, op: 'query', body: 'ABC' });
    expect(await c.next()).toMatchObject({ t: 'denied', id: 4, kind: 'schema' });
    // A second login is out of order too.
    c.send({ t: 'call', id: 5, op: 'login', body: 'abc' });
    expect(await c.next()).toMatchObject({ t: 'denied', id: 5, kind: 'order' });
    c.send({ t: 'call', id: 6, op: 'query', body: 'abc' });
    expect(await c.next()).toMatchObject({ t: 'reply', id: 6 });
    // A send reaches the guest; a notify from the guest reaches the client.
    c.send({ t: 'send', op: 'note', body: { text: 'hello' } });
    expect(await api.next()).toMatchObject({ t: 'send', op: 'note', body: { text: 'hello' } });
    api.send({ t: 'notify', op: 'changed', body: 'abc' });
    expect(await c.next()).toMatchObject({ t: 'notify', op: 'changed', body: 'abc' });
  });
});

describe('an HTTP exposure', () => {
  it('takes the request operation and its schemas from the plan', async () => {
    const plan = planOf(`
import std.http.{Http}
component Web {
  memory 96MiB
  expose http: Http on tcp 18501
  program { exec ["/bin/true"] }
}
system S { web = Web }
`);
    expect(plan.exposures[0].ops).toEqual([{ input: 'std.http.Request', kind: 'call', name: 'request', output: 'std.http.Response' }]);
    expect(Object.keys(plan.schemas)).toEqual(['std.http.Headers', 'std.http.Method', 'std.http.Request', 'std.http.Response']);
    const { fakes, port } = await up(plan);
    fakes.get('web.http')!.handler = (f) => ({ t: 'reply', id: f.id, body: { status: 200, headers: {}, body: `hi ${(f.body as { path: string }).path}` } });
    const res = await new Promise<{ status: number; body: string }>((done, fail) => {
      const r = request({ host: '127.0.0.1', port, path: '/x', agent: false }, (m) => {
        let b = '';
        m.setEncoding('utf8');
        m.on('data', (d: string) => (b += d));
        m.on('end', () => done({ status: m.statusCode ?? 0, body: b }));
      });
      r.on('error', fail);
      r.end();
    });
    expect(res).toEqual({ status: 200, body: 'hi /x' });
  });
});

/** A raw TCP client: what it received so far, and promises of its end. */
function rawClient(port: number): { sock: Socket; got: () => string; closed: Promise<void>; waitFor: (text: string) => Promise<void> } {
  const sock = connect(port, '127.0.0.1');
  closers.push(async () => void sock.destroy());
  let buf = '';
  const waiters: [string, () => void][] = [];
  sock.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    for (const w of waiters.splice(0)) if (buf.includes(w[0])) w[1]();
    else waiters.push(w);
  });
  sock.on('error', () => {});
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  const waitFor = (text: string) =>
    new Promise<void>((resolve, reject) => {
      if (buf.includes(text)) return resolve();
      const t = setTimeout(() => reject(new Error(`no ${JSON.stringify(text)} from the exposure within 2 s (got ${JSON.stringify(buf)})`)), 2000);
      waiters.push([text, () => (clearTimeout(t), resolve())]);
    });
  return { sock, got: () => buf, closed, waitFor };
}

const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64');
const unb64 = (s: unknown) => Buffer.from(String(s), 'base64').toString('latin1');

function streamSource(attrs: string): string {
  return `
import std.tcp.{Stream}
component Sshd {
  memory 96MiB
  expose ssh: Stream on tcp 18502 ${attrs}
  program { exec ["/bin/true"] }
}
system S { sshd = Sshd }
`;
}

/** Closes a raw client after `ms`, or resolves when the exposure closed it first; true when the exposure closed it. */
async function closedWithin(c: { closed: Promise<void> }, ms: number): Promise<boolean> {
  return Promise.race([c.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
}

describe('a raw TCP exposure (std.tcp.Stream)', () => {
  it('carries the exposure attributes and connection limits in the plan', () => {
    const plan = planOf(streamSource('{ rate 500/s burst 100; max_message 4KiB; max_connections 2; connection_rate 10/s burst 3; bandwidth 16KiB; idle_timeout 300ms }'));
    const [ex] = plan.exposures;
    expect(ex.protocol).toBe('std.tcp.Stream');
    expect(ex.connections).toEqual({ bytes_per_second: 16384, idle_timeout_ms: 300, max: 2, rate: { burst: 3, per_second: 10 } });
    expect(ex.invariants).toMatchObject({ max_message_bytes: 4096, rate: { burst: 100, per_second: 500 } });
    // An exposure without a block keeps the plan it had before exposures took attributes.
    expect(planOf(SESSION).exposures[0].connections).toBeUndefined();
  });

  it('relays bytes both ways, one numbered connection at a time, and tells the guest of opens and closes', async () => {
    const { fakes, port } = await up(planOf(streamSource('')));
    const guest = fakes.get('sshd.ssh')!;
    const a = rawClient(port);
    const opened = await guest.next();
    expect(opened).toMatchObject({ t: 'send', op: 'opened' });
    const connA = (opened.body as { conn: number }).conn;
    const b = rawClient(port);
    const connB = ((await guest.next()).body as { conn: number }).conn;
    expect(connB).not.toBe(connA);
    // SSH starts with the server's banner: a write to one connection reaches only that client.
    guest.send({ t: 'notify', op: 'write', body: { conn: connA, data: b64('SSH-2.0-guest\r\n') } });
    await a.waitFor('SSH-2.0-guest\r\n');
    a.sock.write('SSH-2.0-client\r\n');
    const data = await guest.next();
    expect(data).toMatchObject({ t: 'send', op: 'data', body: { conn: connA } });
    expect(unb64((data.body as { data: string }).data)).toBe('SSH-2.0-client\r\n');
    // Binary bytes pass unchanged; a large write arrives whole, in chunks of at most 16 KiB.
    const big = Buffer.alloc(40_000, 0xfe);
    b.sock.write(big);
    let seen = 0;
    while (seen < big.length) {
      const f = await guest.next();
      const body = f.body as { conn: number; data: string };
      expect(body.conn).toBe(connB);
      const bytes = Buffer.from(body.data, 'base64');
      expect(bytes.length).toBeLessThanOrEqual(16 * 1024);
      expect(bytes.every((x) => x === 0xfe)).toBe(true);
      seen += bytes.length;
    }
    expect(seen).toBe(big.length);
    expect(b.got()).toBe('');
    // The guest closes one connection; the client closing the other is announced to the guest.
    guest.send({ t: 'notify', op: 'close', body: { conn: connA } });
    await a.closed;
    expect(await guest.next()).toMatchObject({ t: 'send', op: 'closed', body: { conn: connA } });
    b.sock.end();
    expect(await guest.next()).toMatchObject({ t: 'send', op: 'closed', body: { conn: connB } });
  });

  it('refuses the connection past max_connections, and takes one again when one closed', async () => {
    const { broker, fakes, port } = await up(planOf(streamSource('{ max_connections 2 }')));
    const guest = fakes.get('sshd.ssh')!;
    const a = rawClient(port);
    rawClient(port);
    await guest.next();
    await guest.next();
    const c = rawClient(port);
    expect(await closedWithin(c, 2000)).toBe(true);
    expect(await guest.silent(100)).toBe(true);
    a.sock.destroy();
    await guest.next(); // closed
    const d = rawClient(port);
    expect(await guest.next()).toMatchObject({ op: 'opened' });
    expect(await closedWithin(d, 100)).toBe(false);
    const stats = broker.counters().find((x) => x.channel.startsWith("tcp:"))!.connections!;
    expect(stats).toMatchObject({ refused: 1, total: 3, open: 2 });
  });

  it('refuses new connections over connection_rate', async () => {
    const { broker, port } = await up(planOf(streamSource('{ connection_rate 1/h burst 2 }')));
    const a = rawClient(port);
    const b = rawClient(port);
    const c = rawClient(port);
    expect(await closedWithin(c, 2000)).toBe(true);
    expect(await closedWithin(a, 50)).toBe(false);
    expect(await closedWithin(b, 50)).toBe(false);
    expect(broker.counters().find((x) => x.channel.startsWith("tcp:"))!.connections).toMatchObject({ refused: 1, total: 2 });
  });

  it('closes a connection idle for idle_timeout, not one that keeps sending', async () => {
    const { broker, fakes, port } = await up(planOf(streamSource('{ idle_timeout 300ms }')));
    const guest = fakes.get('sshd.ssh')!;
    const idle = rawClient(port);
    const busy = rawClient(port);
    const started = performance.now();
    const timer = setInterval(() => busy.sock.write('.'), 50);
    closers.push(async () => clearInterval(timer));
    await idle.closed;
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect(await closedWithin(busy, 300)).toBe(false);
    clearInterval(timer);
    expect(broker.counters().find((x) => x.channel.startsWith("tcp:"))!.connections).toMatchObject({ timed_out: 1 });
    void guest;
  });

  it('paces what a client sends to its bandwidth, and delivers all of it', async () => {
    const { fakes, port } = await up(planOf(streamSource('{ bandwidth 32KiB }')));
    const guest = fakes.get('sshd.ssh')!;
    const c = rawClient(port);
    await guest.next(); // opened
    const total = 512 * 1024;
    c.sock.write(Buffer.alloc(total, 0x61));
    let seen = 0;
    const started = performance.now();
    while (performance.now() - started < 500) {
      try {
        const f = await guest.next(100);
        seen += Buffer.from((f.body as { data: string }).data, 'base64').length;
      } catch {
        // Nothing within 100 ms: the socket is paused, as it should be.
      }
    }
    // Unpaced, all 512 KiB would have arrived; paced, one second's worth (the bucket), half a second's and one read.
    expect(seen).toBeLessThanOrEqual(32 * 1024 + 16 * 1024 + 64 * 1024);
    expect(seen).toBeGreaterThan(0);
  });

  it('closes the connection when a chunk is refused, rather than leave a hole in the stream', async () => {
    const { fakes, port } = await up(planOf(streamSource('{ rate 1/h burst 2 }')));
    const guest = fakes.get('sshd.ssh')!;
    const c = rawClient(port);
    await guest.next(); // opened: the first token
    c.sock.write('one');
    await guest.next(); // the second
    c.sock.write('two');
    await c.closed;
  });
});

describe('exposure attributes the broker could not enforce', () => {
  it('refuses bandwidth on an HTTP exposure (node:http reads those sockets) and connection limits on a channel', () => {
    const root = mkdtempSync(join(tmpdir(), 'mcl-exposures-'));
    dirs.push(root);
    writeFileSync(
      join(root, 'main.mcl'),
      `
import std.http.{Http}
component Web { memory 96MiB; expose http: Http on tcp 18503 { bandwidth 1MiB; max_connections 10 } }
component Client { memory 96MiB; require web: Http }
system S {
  web = Web
  c = Client
  connect c.web -> web.http { idle_timeout 1s }
}
`,
    );
    const r = compile(new NodeHost({ root, stdlib: stdlibDir() }), { entries: ['main.mcl'], mclcVersion: 'test' });
    expect(r.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code} ${d.message}`)).toEqual([
      'MCL0416 `bandwidth` paces byte streams and frame exposures, not HTTP',
      'MCL0440 `idle_timeout` limits the TCP connections of an exposure; a channel has none',
    ]);
  });
});
