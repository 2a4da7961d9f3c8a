import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Broker } from '../src/index';
import { FakePort, inv, tempDir, testPlan } from './helpers';

let dir: string;
let cleanup: () => void;
let broker: Broker;
let port: number;
const fakes: FakePort[] = [];

function httpCall(method: string, path: string, body?: string, headers: Record<string, string> = {}, agent: Agent | false = false): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }));
    });
    r.on('error', reject);
    if (body !== undefined) r.write(body);
    r.end();
  });
}

beforeEach(async () => {
  ({ dir, cleanup } = tempDir());
  const plan = testPlan();
  // Only the HTTP exposure, with a short timeout for the 504 case.
  plan.exposures = plan.exposures.filter((e) => e.host_port === 18080).map((e) => ({ ...e, invariants: inv({ timeout_ms: 300, max_message_bytes: 64 * 1024 }) }));
  broker = new Broker(plan, { mapHostPort: () => 0 });
  const [ex] = await broker.listenExposures();
  expect(ex.mode).toBe('http');
  port = ex.bound_port;
});

afterEach(async () => {
  await broker.close();
  for (const f of fakes.splice(0)) await f.close();
  cleanup();
});

async function web(): Promise<FakePort> {
  const p = await FakePort.listen(join(dir, 'web.0.http.sock'));
  fakes.push(p);
  void broker.attachPort('web', 0, 'http', p.path);
  await p.connected();
  return p;
}

describe('HTTP exposure', () => {
  it('turns an HTTP request into a request call and the reply into an HTTP response', async () => {
    const w = await web();
    let seen: Record<string, unknown> | null = null;
    w.handler = (f) => {
      seen = f.body as Record<string, unknown>;
      return { t: 'reply', id: f.id, body: { status: 201, headers: { 'content-type': 'text/plain', 'x-app': 'yes' }, body: 'made ✓' } };
    };
    const r = await httpCall('POST', '/orders?x=1', '{"item":"tea"}', { 'X-Trace': 'abc' });
    expect(r.status).toBe(201);
    expect(r.body).toBe('made ✓');
    expect(r.headers['x-app']).toBe('yes');
    expect(seen).toMatchObject({ method: 'POST', path: '/orders?x=1', body: '{"item":"tea"}' });
    expect((seen as unknown as { headers: Record<string, string> }).headers['x-trace']).toBe('abc');
    const c = broker.counters().find((x) => x.channel === 'tcp:18080->web.http')!;
    expect(c.calls).toBe(1);
    expect(c.replies).toBe(1);
  });

  it('moves a kept-alive connection to the new clone when its clone is replaced', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await web();
      first.handler = (f) => ({ t: 'reply', id: f.id, body: { status: 200, headers: {}, body: 'old' } });
      expect((await httpCall('GET', '/', undefined, {}, agent)).body).toBe('old');
      // The clone is replaced: detached, and a new clone attached under the same index.
      broker.detachClone('web', 0);
      await first.close();
      fakes.splice(fakes.indexOf(first), 1);
      const second = await FakePort.listen(join(dir, 'web.0.http.new.sock'));
      fakes.push(second);
      void broker.attachPort('web', 0, 'http', second.path);
      await second.connected();
      second.handler = (f) => ({ t: 'reply', id: f.id, body: { status: 200, headers: {}, body: 'new' } });
      const r = await httpCall('GET', '/', undefined, {}, agent);
      expect(r).toMatchObject({ status: 200, body: 'new' });
    } finally {
      agent.destroy();
    }
  });

  it('answers 400 for a request the schema refuses, 502 without a clone, 504 on timeout', async () => {
    let r = await httpCall('GET', '/');
    expect(r.status).toBe(502);
    expect(r.body).toMatch(/no clone of web/);
    const w = await web();
    r = await httpCall('TRACE', '/');
    expect(r.status).toBe(400);
    expect(r.body).toMatch(/method/);
    // No reply: the broker answers 504 when the channel's timeout passes.
    r = await httpCall('GET', '/slow');
    expect(r.status).toBe(504);
    await w.next();
    const c = broker.counters().find((x) => x.channel === 'tcp:18080->web.http')!;
    expect(c.timeouts).toBe(1);
    expect(c.violations.schema).toBe(1);
  });

  it('serves a kept-alive connection once a clone attaches after it was opened', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    let r = await httpCall('GET', '/', undefined, {}, agent);
    expect(r.status).toBe(502);
    const w = await web();
    w.handler = (f) => ({ t: 'reply', id: f.id, body: { status: 200, headers: {}, body: 'late but here' } });
    r = await httpCall('GET', '/', undefined, {}, agent);
    expect(r.status).toBe(200);
    expect(r.body).toBe('late but here');
    agent.destroy();
  });

  it('answers 502 when the provider replies with something that is not a Response', async () => {
    const w = await web();
    w.handler = (f) => ({ t: 'reply', id: f.id, body: { status: 999, headers: {} } });
    const r = await httpCall('GET', '/');
    expect(r.status).toBe(502);
    expect(r.body).toMatch(/status/);
    expect(broker.violations().some((v) => v.instance === 'web' && v.kind === 'schema')).toBe(true);
  });

  it('answers 400 to bytes that are not HTTP and keeps serving others', async () => {
    const w = await web();
    w.handler = (f) => ({ t: 'reply', id: f.id, body: { status: 200, headers: {}, body: 'ok' } });
    const s = connect(port, '127.0.0.1');
    const got = await new Promise<string>((resolve) => {
      let buf = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (buf += d));
      s.on('close', () => resolve(buf));
      s.on('connect', () => s.write('\x00\x01 garbage\r\n\r\n'));
    });
    expect(got).toMatch(/^HTTP\/1.1 400/);
    const r = await httpCall('GET', '/');
    expect(r.status).toBe(200);
    expect(r.body).toBe('ok');
  });

  it('refuses a body larger than the channel allows with 413', async () => {
    const w = await web();
    w.handler = (f) => ({ t: 'reply', id: f.id, body: { status: 200, headers: {} } });
    const r = await httpCall('POST', '/', 'x'.repeat(100 * 1024));
    expect(r.status).toBe(413);
    expect(await w.silent(50)).toBe(true);
  });
});
