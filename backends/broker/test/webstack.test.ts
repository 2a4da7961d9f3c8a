// The broker on the compiler's plans of the examples (their golden files), with
// fake guests: the plan's schemas compile, the exposure speaks HTTP, the
// channels' allow lists, sizes and types are enforced as declared, and the
// honeypot gives every HTTP connection a clone of its own.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join, resolve } from 'node:path';
import type { Plan } from '@mcl/plan';
import { Broker } from '../src/index';
import type { BrokerLogEntry } from '../src/types';
import { FakePort, tempDir } from './helpers';

const PLAN = resolve(__dirname, '../../../examples/webstack/webstack.plan.json');
const HONEYPOT = resolve(__dirname, '../../../examples/honeypot/honeypot.plan.json');

function get(port: number, path: string, agent: Agent | false = false): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const r = request({ host: '127.0.0.1', port, path, agent }, (m) => {
      let b = '';
      m.setEncoding('utf8');
      m.on('data', (d: string) => (b += d));
      m.on('end', () => done({ status: m.statusCode ?? 0, body: b }));
    });
    r.on('error', fail);
    r.end();
  });
}

describe.skipIf(!existsSync(PLAN))('webstack plan', () => {
  let broker: Broker;
  let dir: string;
  let cleanup: () => void;
  let httpPort = 0;
  const logs: BrokerLogEntry[] = [];
  const fakes: Record<string, FakePort> = {};

  beforeAll(async () => {
    ({ dir, cleanup } = tempDir());
    const plan = JSON.parse(readFileSync(PLAN, 'utf8')) as Plan;
    broker = new Broker(plan, { mapHostPort: () => 0, log: (e) => logs.push(e) });
    for (const inst of plan.instances) {
      for (const p of inst.ports) {
        const f = await FakePort.listen(join(dir, `${inst.id}.${p.name}.sock`));
        fakes[`${inst.id}.${p.name}`] = f;
        void broker.attachPort(inst.id, 0, p.name, f.path);
        await f.connected();
      }
    }
    const [ex] = await broker.listenExposures();
    expect(ex).toMatchObject({ instance: 'web', port: 'http', mode: 'http' });
    httpPort = ex.bound_port;
  });

  afterAll(async () => {
    await broker.close();
    for (const f of Object.values(fakes)) await f.close();
    cleanup();
  });

  it('compiles every schema of the plan without problems', () => {
    expect(logs.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('carries an HTTP request to web.http and its Response back', async () => {
    const web = fakes['web.http'];
    web.handler = (f) => {
      expect(f.op).toBe('request');
      return { t: 'reply', id: f.id, body: { status: 200, headers: { 'content-type': 'text/plain' }, body: `you asked for ${(f.body as { path: string }).path}` } };
    };
    const res = await new Promise<{ status: number; body: string }>((done, fail) => {
      const r = request({ host: '127.0.0.1', port: httpPort, path: '/', agent: false }, (m) => {
        let b = '';
        m.setEncoding('utf8');
        m.on('data', (d: string) => (b += d));
        m.on('end', () => done({ status: m.statusCode ?? 0, body: b }));
      });
      r.on('error', fail);
      r.end();
    });
    expect(res).toEqual({ status: 200, body: 'you asked for /' });
  });

  it('enforces the declared types, sizes and allow lists', async () => {
    const web = fakes['web.auth'];
    const auth = fakes['auth.auth'];
    auth.handler = (f) => ({ t: 'reply', id: f.id, body: (f.body as { token: string }).token === 'demo-token' ? { user: 'alice' } : 'anonymous' });
    web.send({ t: 'call', op: 'check', id: 1, body: { token: 'demo-token' } });
    expect(await web.next()).toEqual({ t: 'reply', id: 1, body: { user: 'alice' } });
    web.send({ t: 'call', op: 'check', id: 2, body: { token: 'nobody' } });
    expect(await web.next()).toEqual({ t: 'reply', id: 2, body: 'anonymous' });
    // Credentials.token is string(max 256).
    web.send({ t: 'call', op: 'check', id: 3, body: { token: 'x'.repeat(300) } });
    expect(await web.next()).toMatchObject({ t: 'denied', id: 3, kind: 'schema' });
    // The channel allows only get and put on the store.
    const app = fakes['app.db'];
    app.send({ t: 'call', op: 'delete', id: 4, body: { key: 'a' } });
    expect(await app.next()).toMatchObject({ t: 'denied', id: 4, kind: 'unknown_op' });
    // The token store's answer must be an Identity: a user name that breaks its pattern is refused.
    auth.handler = (f) => ({ t: 'reply', id: f.id, body: { user: 'Alice!' } });
    web.send({ t: 'call', op: 'check', id: 5, body: { token: 'demo-token' } });
    const r = await web.next();
    expect(r).toMatchObject({ t: 'error', id: 5 });
    expect(String(r.error)).toMatch(/does not match the pattern/);
    // The handlers cannot call the token store: handler has no port wired to it.
    expect(() => broker.attachPort('handler', 0, 'auth', join(dir, 'x.sock'))).toThrow(/has no port "auth"/);
  });
});

describe.skipIf(!existsSync(HONEYPOT))('honeypot plan', () => {
  it('forks a clone per HTTP connection and gives it back when the connection closes', async () => {
    const { dir, cleanup } = tempDir();
    const plan = JSON.parse(readFileSync(HONEYPOT, 'utf8')) as Plan;
    const opened: number[] = [];
    const closed: number[] = [];
    const traps: FakePort[] = [];
    let next = 0;
    const broker: Broker = new Broker(plan, {
      mapHostPort: () => 0,
      onSessionOpen: async (instance) => {
        expect(instance).toBe('trap');
        const idx = next++;
        const f = await FakePort.listen(join(dir, `trap.${idx}.sock`));
        f.handler = (fr) => ({ t: 'reply', id: fr.id, body: { status: 200, headers: { server: 'Apache' }, body: `clone ${idx} saw ${(fr.body as { path: string }).path}` } });
        traps.push(f);
        void broker.attachPort('trap', idx, 'http', f.path);
        opened.push(idx);
        return idx;
      },
      onSessionClose: (instance, idx) => {
        closed.push(idx);
        broker.detachClone(instance, idx);
      },
    });
    try {
      const [ex] = await broker.listenExposures();
      const a = new Agent({ keepAlive: true, maxSockets: 1 });
      const b = new Agent({ keepAlive: true, maxSockets: 1 });
      expect(await get(ex.bound_port, '/admin', a)).toEqual({ status: 200, body: 'clone 0 saw /admin' });
      expect(await get(ex.bound_port, '/etc/passwd', b)).toEqual({ status: 200, body: 'clone 1 saw /etc/passwd' });
      // The same connection keeps its clone.
      expect(await get(ex.bound_port, '/again', a)).toEqual({ status: 200, body: 'clone 0 saw /again' });
      a.destroy();
      b.destroy();
      const t0 = Date.now();
      while (closed.length < 2 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20));
      expect(opened).toEqual([0, 1]);
      expect(closed.sort()).toEqual([0, 1]);
    } finally {
      await broker.close();
      for (const f of traps) await f.close();
      cleanup();
    }
  });
});
