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
