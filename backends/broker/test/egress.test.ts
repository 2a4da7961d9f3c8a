// Egress through a real broker to real servers on loopback: a byte-stream
// egress to a line server (the shape of an SMTP conversation) and an HTTP
// egress to an HTTP server. What the egress allows passes; a request outside
// its protocol or its path, a connection over its limits and a response that
// is not of the protocol's response type are refused and counted.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { MessageSchema, Plan, PlanEgress, PlanOperation } from '@mcl/plan';
import { Broker } from '../src/index';
import { pathAllowed } from '../src/egress';
import { exposureInv, FakePort, tempDir, testPlan } from './helpers';

const STREAM_OPS: PlanOperation[] = [
  { input: 'std.tcp.Conn', kind: 'notify', name: 'close' },
  { input: 'std.tcp.Conn', kind: 'send', name: 'closed' },
  { input: 'std.tcp.Chunk', kind: 'send', name: 'data' },
  { input: 'std.tcp.Conn', kind: 'send', name: 'opened' },
  { input: 'std.tcp.Chunk', kind: 'notify', name: 'write' },
];
const PAY_OPS: PlanOperation[] = [{ input: 't.PayRequest', kind: 'call', name: 'request', output: 't.PayResponse' }];
const EGRESS_SCHEMAS: Record<string, MessageSchema> = {
  'std.tcp.Conn': { kind: 'record', fields: [{ name: 'conn', optional: false, type: { kind: 'int', min: 0 } }] },
  'std.tcp.Chunk': {
    kind: 'record',
    fields: [
      { name: 'conn', optional: false, type: { kind: 'int', min: 0 } },
      { name: 'data', optional: false, type: { kind: 'bytes', max_len: 16384 } },
    ],
  },
  // A payment API's view of HTTP: only POST, small bodies, and only successful answers.
  't.PayRequest': {
    kind: 'record',
    fields: [
      { name: 'method', optional: false, type: { kind: 'enum', members: ['POST'] } },
      { name: 'path', optional: false, type: { kind: 'string', min_len: 1, max_len: 8192, pattern: '/.*' } },
      { name: 'headers', optional: false, type: { kind: 'ref', name: 'std.http.Headers' } },
      { name: 'body', optional: true, type: { kind: 'string', max_len: 64 } },
    ],
  },
  't.PayResponse': {
    kind: 'record',
    fields: [
      { name: 'status', optional: false, type: { kind: 'int', min: 200, max: 299 } },
      { name: 'headers', optional: false, type: { kind: 'ref', name: 'std.http.Headers' } },
      { name: 'body', optional: true, type: { kind: 'string', max_len: 1048576 } },
    ],
  },
};

let dir: string;
let cleanup: () => void;
let broker: Broker;
let lineServer: TcpServer;
let httpServer: HttpServer;
let linePort: number;
let httpPort: number;
const seen: { method: string; url: string; body: string }[] = [];
const sockets = new Set<Socket>();
const fakes: FakePort[] = [];
let flooded: 'no' | 'waiting' | 'drained' = 'no';

/** The test plan with a `mailer` instance whose three required ports leave through egresses. */
function egressPlan(): Plan {
  const plan = testPlan();
  plan.instances.push({
    ...plan.instances[0],
    id: 'mailer',
    component: 't.Mailer',
    ports: [
      { name: 'smtp', direction: 'require', protocol: 'std.tcp.Stream', slot: 1, channels: [] },
      { name: 'relay', direction: 'require', protocol: 'std.tcp.Stream', slot: 2, channels: [] },
      { name: 'pay', direction: 'require', protocol: 't.Pay', slot: 3, channels: [] },
      { name: 'slow', direction: 'require', protocol: 'std.tcp.Stream', slot: 4, channels: [] },
      { name: 'quiet', direction: 'require', protocol: 'std.tcp.Stream', slot: 5, channels: [] },
    ],
  });
  plan.instances.sort((a, b) => a.id.localeCompare(b.id));
  const tcp = (name: string, port: string, connections: PlanEgress['connections']): PlanEgress => ({
    name,
    instance: 'mailer',
    port,
    protocol: 'std.tcp.Stream',
    kind: 'tcp',
    destination: { scheme: 'tcp', host: '127.0.0.1', port: linePort },
    ops: STREAM_OPS,
    invariants: exposureInv(),
    connections,
  });
  plan.egresses = [
    tcp('mail', 'smtp', { max: 1, idle_timeout_ms: 60_000 }),
    tcp('relay', 'relay', { rate: { per_second: 0.5, burst: 1 } }),
    tcp('slow', 'slow', { bytes_per_second: 1000 }),
    tcp('quiet', 'quiet', { idle_timeout_ms: 400 }),
    {
      name: 'stripe',
      instance: 'mailer',
      port: 'pay',
      protocol: 't.Pay',
      kind: 'http',
      destination: { scheme: 'http', host: '127.0.0.1', port: httpPort, path: '/v1' },
      ops: PAY_OPS,
      invariants: exposureInv({ timeout_ms: 3000 }),
      connections: { max: 4 },
    },
  ];
  plan.schemas = { ...plan.schemas, ...EGRESS_SCHEMAS };
  return plan;
}

async function guestPort(port: string): Promise<FakePort> {
  const p = await FakePort.listen(join(dir, `mailer.0.${port}.sock`));
  fakes.push(p);
  void broker.attachPort('mailer', 0, port, p.path);
  await p.connected();
  return p;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

beforeEach(async () => {
  ({ dir, cleanup } = tempDir());
  seen.length = 0;
  flooded = 'no';
  // A line server in the manner of SMTP: a greeting, then an answer to every line.
  lineServer = createTcpServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.setEncoding('utf8');
    s.write('220 test ready\r\n');
    let buf = '';
    s.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line === 'QUIT') s.end('221 bye\r\n');
        else if (line === 'BIG') s.write(`250 ${'x'.repeat(3000)}\r\n`);
        else if (line === 'FLOOD') {
          // 32 MB at once; `flooded` tells whether the broker read it all (the socket drained).
          flooded = s.write(Buffer.alloc(32 * 1024 * 1024, 0x61)) ? 'drained' : 'waiting';
          s.once('drain', () => (flooded = 'drained'));
        }
        else s.write(`250 ${line}\r\n`);
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => lineServer.listen(0, '127.0.0.1', r));
  linePort = (lineServer.address() as { port: number }).port;
  httpServer = createHttpServer((req: IncomingMessage, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', body });
      if (req.url === '/v1/fail') {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('down');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'x-test': 'yes' });
      res.end(JSON.stringify({ id: 'ch_1', got: body }));
    });
  });
  await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
  httpPort = (httpServer.address() as { port: number }).port;
  broker = new Broker(egressPlan(), { reconnectDelayMs: 10 });
});

afterEach(async () => {
  await broker.close();
  for (const f of fakes.splice(0)) await f.close();
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => lineServer.close(() => r()));
  httpServer.closeAllConnections();
  await new Promise<void>((r) => httpServer.close(() => r()));
  cleanup();
});

/** The next frame that is not a `denied` notice or is one, as asked. */
async function nextOf(p: FakePort, pred: (f: Record<string, unknown>) => boolean, ms = 3000): Promise<Record<string, unknown>> {
  const until = Date.now() + ms;
  for (;;) {
    const f = await p.next(Math.max(1, until - Date.now()));
    if (pred(f)) return f;
  }
}

/** Collects what the destination wrote on connection `conn` until `text` has arrived. */
async function readUntil(p: FakePort, conn: number, text: string): Promise<string> {
  let got = '';
  while (!got.includes(text)) {
    const f = await nextOf(p, (x) => x.t === 'notify' && x.op === 'write');
    const body = f.body as { conn: number; data: string };
    expect(body.conn).toBe(conn);
    got += Buffer.from(body.data, 'base64').toString('utf8');
  }
  return got;
}

function counters(id: string) {
  return broker.counters().find((c) => c.channel === id)!;
}

describe('byte-stream egress', () => {
  it('opens the connection for the guest and relays bytes both ways', async () => {
    const g = await guestPort('smtp');
    g.send({ t: 'send', op: 'opened', body: { conn: 7 } });
    expect(await readUntil(g, 7, '220 test ready')).toContain('220');
    g.send({ t: 'send', op: 'data', body: { conn: 7, data: b64('HELO guest\r\n') } });
    expect(await readUntil(g, 7, '250 HELO guest')).toContain('250 HELO guest');
    g.send({ t: 'send', op: 'data', body: { conn: 7, data: b64('QUIT\r\n') } });
    await readUntil(g, 7, '221 bye');
    const closed = await nextOf(g, (f) => f.t === 'notify' && f.op === 'close');
    expect(closed.body).toEqual({ conn: 7 });
    const c = counters('egress:mail');
    expect(c.connections).toMatchObject({ total: 1, refused: 0 });
    expect(c.violations_total).toBe(0);
  });

  it('refuses a connection past max_connections and counts it', async () => {
    const g = await guestPort('smtp');
    g.send({ t: 'send', op: 'opened', body: { conn: 1 } });
    await readUntil(g, 1, '220');
    g.send({ t: 'send', op: 'opened', body: { conn: 2 } });
    const denied = await nextOf(g, (f) => f.t === 'denied');
    expect(denied.kind).toBe('egress_limit');
    expect(await nextOf(g, (f) => f.t === 'notify' && f.op === 'close')).toMatchObject({ body: { conn: 2 } });
    expect(sockets.size).toBe(1);
    const c = counters('egress:mail');
    expect(c.connections).toMatchObject({ open: 1, total: 1, refused: 1 });
    expect(c.violations.egress_limit).toBe(1);
  });

  it('refuses a connection over connection_rate', async () => {
    const g = await guestPort('relay');
    g.send({ t: 'send', op: 'opened', body: { conn: 1 } });
    await readUntil(g, 1, '220');
    g.send({ t: 'send', op: 'closed', body: { conn: 1 } });
    await nextOf(g, (f) => f.t === 'notify' && f.op === 'close');
    g.send({ t: 'send', op: 'opened', body: { conn: 2 } });
    expect((await nextOf(g, (f) => f.t === 'denied')).kind).toBe('egress_limit');
    expect(counters('egress:relay').connections).toMatchObject({ total: 1, refused: 1 });
  });

  it('closes a connection idle for longer than idle_timeout, and counts it', async () => {
    const g = await guestPort('quiet');
    g.send({ t: 'send', op: 'opened', body: { conn: 4 } });
    await readUntil(g, 4, '220');
    // Nothing either way for 400 ms: the broker closes the destination's connection and tells the guest.
    expect((await nextOf(g, (f) => f.t === 'notify' && f.op === 'close', 5000)).body).toEqual({ conn: 4 });
    expect(counters('egress:quiet').connections).toMatchObject({ open: 0, total: 1, timed_out: 1 });
  });

  it('reads from the destination no faster than its bandwidth', async () => {
    const g = await guestPort('slow');
    g.send({ t: 'send', op: 'opened', body: { conn: 5 } });
    await readUntil(g, 5, '220');
    // 3,000 bytes at once against 1,000 bytes a second (a second's worth of burst): the next read waits about 2 s.
    g.send({ t: 'send', op: 'data', body: { conn: 5, data: b64('BIG\r\n') } });
    await readUntil(g, 5, 'xxx\r\n');
    const asked = Date.now();
    g.send({ t: 'send', op: 'data', body: { conn: 5, data: b64('MORE\r\n') } });
    await readUntil(g, 5, '250 MORE');
    expect(counters('egress:slow').connections).toMatchObject({ open: 1, total: 1, timed_out: 0 });
    // A lower bound only: the throttle can delay more on a loaded machine, never less.
    expect(Date.now() - asked).toBeGreaterThanOrEqual(1500);
  });

  it('stops reading from a destination while the guest does not read what it already sent', async () => {
    const g = await guestPort('smtp');
    g.send({ t: 'send', op: 'opened', body: { conn: 6 } });
    await readUntil(g, 6, '220');
    g.socket!.pause();
    g.send({ t: 'send', op: 'data', body: { conn: 6, data: b64('FLOOD\r\n') } });
    await new Promise((r) => setTimeout(r, 1500));
    // The kernel's buffers hold a few MB at most: the broker must leave the rest at the destination
    // rather than queue 32 MB (and more, were the destination to go on) for a guest that reads nothing.
    expect(flooded).toBe('waiting');
    g.socket!.resume();
  });

  it('refuses bytes for a connection that is not open, and frames outside the protocol', async () => {
    const g = await guestPort('smtp');
    g.send({ t: 'send', op: 'data', body: { conn: 3, data: b64('x') } });
    expect((await nextOf(g, (f) => f.t === 'denied')).kind).toBe('malformed');
    g.send({ t: 'send', op: 'write', body: { conn: 3, data: b64('x') } });
    expect((await nextOf(g, (f) => f.t === 'denied')).kind).toBe('direction');
    expect(sockets.size).toBe(0);
  });
});

describe('HTTP egress', () => {
  const call = (g: FakePort, id: number, body: unknown) => g.send({ t: 'call', op: 'request', id, body });

  it('sends an allowed request and returns the response as the reply', async () => {
    const g = await guestPort('pay');
    call(g, 1, { method: 'POST', path: '/v1/charges', headers: { 'content-type': 'application/json', authorization: 'Bearer k' }, body: '{"amount":100}' });
    const reply = await nextOf(g, (f) => f.id === 1);
    expect(reply.t).toBe('reply');
    const body = reply.body as { status: number; headers: Record<string, string>; body: string };
    expect(body.status).toBe(200);
    expect(body.headers['x-test']).toBe('yes');
    expect(JSON.parse(body.body)).toEqual({ id: 'ch_1', got: '{"amount":100}' });
    expect(seen).toEqual([{ method: 'POST', url: '/v1/charges', body: '{"amount":100}' }]);
    const c = counters('egress:stripe');
    expect(c).toMatchObject({ calls: 1, replies: 1, errors: 0, violations_total: 0 });
    expect(c.connections).toMatchObject({ open: 0, total: 1 });
  });

  it('refuses a method, a path and a body the egress does not allow, and sends none of them', async () => {
    const g = await guestPort('pay');
    call(g, 1, { method: 'GET', path: '/v1/charges', headers: {} });
    expect(await nextOf(g, (f) => f.id === 1)).toMatchObject({ t: 'denied', kind: 'schema' });
    call(g, 2, { method: 'POST', path: '/admin/users', headers: {} });
    expect(await nextOf(g, (f) => f.id === 2)).toMatchObject({ t: 'denied', kind: 'egress_path' });
    call(g, 3, { method: 'POST', path: '/v1/../admin', headers: {} });
    expect(await nextOf(g, (f) => f.id === 3)).toMatchObject({ t: 'denied', kind: 'egress_path' });
    call(g, 4, { method: 'POST', path: '/v1/charges', headers: {}, body: 'x'.repeat(65) });
    expect(await nextOf(g, (f) => f.id === 4)).toMatchObject({ t: 'denied', kind: 'schema' });
    expect(seen).toEqual([]);
    const c = counters('egress:stripe');
    expect(c.violations).toMatchObject({ schema: 2, egress_path: 2 });
    expect(broker.violations().filter((v) => v.channel === 'egress:stripe')).toHaveLength(4);
  });

  it('refuses a response that is not of the protocol\'s response type', async () => {
    const g = await guestPort('pay');
    call(g, 1, { method: 'POST', path: '/v1/fail', headers: {} });
    const answer = await nextOf(g, (f) => f.id === 1);
    expect(answer.t).toBe('error');
    expect(String(answer.error)).toMatch(/response was refused/);
    expect(counters('egress:stripe').violations.egress_response).toBe(1);
  });
});

describe('pathAllowed', () => {
  it('keeps requests under the destination path, on a segment boundary', () => {
    expect(pathAllowed('/v1', '/v1')).toBe(true);
    expect(pathAllowed('/v1', '/v1/charges?x=1')).toBe(true);
    expect(pathAllowed('/v1', '/v10/charges')).toBe(false);
    expect(pathAllowed('/v1/', '/v1/a')).toBe(true);
    expect(pathAllowed('/', '/anything')).toBe(true);
    expect(pathAllowed('/v1', '/v1/%2e%2e/admin')).toBe(false);
  });
});
