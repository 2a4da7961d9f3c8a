// Connections of exposures, with real sockets on loopback: a full exposure
// sheds its quietest idle connection instead of locking new clients out, one
// peer address holds only its share, and idle or half-sent connections are
// closed after their timeouts.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { Broker } from '../src/index';
import type { ConnectionLimits } from '../src/connections';
import { peerKey } from '../src/connections';
import { FakePort, kvHandler, tempDir, testPlan } from './helpers';

let dir: string;
let cleanup: () => void;
let broker: Broker;
const fakes: FakePort[] = [];
const clients: Socket[] = [];
let httpPort: number;
let framesPort: number;

async function start(limits: Partial<ConnectionLimits>): Promise<void> {
  broker = new Broker(testPlan(), { mapHostPort: () => 0, exposureLimits: limits, reconnectDelayMs: 10 });
  const exposures = await broker.listenExposures();
  httpPort = exposures.find((e) => e.mode === 'http')!.bound_port;
  framesPort = exposures.find((e) => e.mode === 'frames')!.bound_port;
}

async function fake(instance: string, port: string): Promise<FakePort> {
  const p = await FakePort.listen(join(dir, `${instance}.0.${port}.sock`));
  fakes.push(p);
  void broker.attachPort(instance, 0, port, p.path);
  await p.connected();
  return p;
}

/** A TCP client, from `localAddress` (another loopback address is another peer). */
function client(port: number, localAddress = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', localAddress }, () => resolve(s));
    s.on('error', reject);
    s.setEncoding('utf8');
    clients.push(s);
  });
}

function closed(s: Socket, ms = 3000): Promise<boolean> {
  if (s.destroyed || s.readyState === 'closed') return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    s.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
    // The broker's close reaches us as end of stream.
    s.resume();
  });
}

/** Sends one line-JSON call and resolves with the answer line (or null when the connection closes first). */
function frameCall(s: Socket, id: number): Promise<string | null> {
  return new Promise((resolve) => {
    let buf = '';
    const onData = (d: string) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i >= 0) {
        s.off('data', onData);
        resolve(buf.slice(0, i));
      }
    };
    s.on('data', onData);
    s.once('close', () => resolve(null));
    s.write(`{"t":"call","op":"get","id":${id},"body":{"key":"k"}}\n`);
  });
}

function httpGet(): Promise<number> {
  return new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port: httpPort, path: '/', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    r.on('error', reject);
    r.end();
  });
}

const connections = (id: string) => broker.counters().find((c) => c.channel === id)!.connections!;
const FRAMES = 'tcp:18081->db.kv';
const HTTP = 'tcp:18080->web.http';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeEach(() => {
  ({ dir, cleanup } = tempDir());
});

afterEach(async () => {
  for (const s of clients.splice(0)) s.destroy();
  await broker.close();
  for (const f of fakes.splice(0)) await f.close();
  cleanup();
});

describe('a full exposure', () => {
  it('still serves a new client after 1024 idle connections, with the default limits', async () => {
    await start({});
    const db = await fake('db', 'kv');
    db.handler = kvHandler();
    const idle: Promise<Socket>[] = [];
    for (let i = 0; i < 1024; i++) idle.push(client(framesPort));
    await Promise.all(idle);
    // Connected on the client side is not yet accepted by the broker: wait until it took them all.
    for (let t = 0; t < 100 && connections(FRAMES).total < 1024; t++) await sleep(50);
    // They all come from 127.0.0.1, one peer, which holds at most 512: past that it gave up its oldest.
    expect(connections(FRAMES)).toMatchObject({ open: 512, total: 1024, shed: 512, refused: 0 });
    const fresh = await client(framesPort);
    expect(await frameCall(fresh, 1)).toBe('{"t":"reply","id":1,"body":{"miss":null}}');
    expect(connections(FRAMES)).toMatchObject({ open: 512, shed: 513, refused: 0 });
  });

  it('sheds its quietest idle connection rather than lock a new line-JSON client out', async () => {
    await start({ maxConnections: 8 });
    const db = await fake('db', 'kv');
    db.handler = kvHandler();
    const idle: Socket[] = [];
    for (let i = 0; i < 8; i++) idle.push(await client(framesPort));
    await sleep(50);
    expect(connections(FRAMES)).toMatchObject({ open: 8, total: 8 });
    const fresh = await client(framesPort);
    expect(await frameCall(fresh, 1)).toBe('{"t":"reply","id":1,"body":{"miss":null}}');
    // The oldest idle one made room.
    expect(await closed(idle[0])).toBe(true);
    expect(connections(FRAMES)).toMatchObject({ open: 8, total: 9, shed: 1, refused: 0 });
  });

  it('sheds an idle HTTP connection rather than lock a new HTTP client out', async () => {
    await start({ maxConnections: 4 });
    const web = await fake('web', 'http');
    web.handler = (f) => ({ t: 'reply', id: f.id, body: { status: 200, headers: {} } });
    for (let i = 0; i < 4; i++) await client(httpPort);
    await sleep(50);
    expect(await httpGet()).toBe(200);
    expect(connections(HTTP)).toMatchObject({ shed: 1, refused: 0 });
  });

  it('never sheds a connection with a call outstanding, and refuses the new one when all are busy', async () => {
    await start({ maxConnections: 3 });
    const db = await fake('db', 'kv');
    const busy: Promise<string | null>[] = [];
    const socks: Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const s = await client(framesPort);
      socks.push(s);
      busy.push(frameCall(s, i));
    }
    const calls = [await db.next(), await db.next(), await db.next()];
    const late = await client(framesPort);
    expect(await closed(late)).toBe(true);
    expect(connections(FRAMES)).toMatchObject({ open: 3, shed: 0, refused: 1 });
    // The busy ones still get their answers.
    for (const c of calls) db.send({ t: 'reply', id: c.id, body: { miss: null } });
    expect(await Promise.all(busy)).toEqual([0, 1, 2].map((i) => `{"t":"reply","id":${i},"body":{"miss":null}}`));
  });
});

describe('per peer', () => {
  it('makes a peer at its limit give up its own idle connection, not another peer\'s', async () => {
    await start({ maxPerPeer: 2, maxConnections: 10 });
    const other = await client(framesPort, '127.0.0.3');
    const mine = [await client(framesPort, '127.0.0.2'), await client(framesPort, '127.0.0.2')];
    await sleep(50);
    await client(framesPort, '127.0.0.2');
    expect(await closed(mine[0])).toBe(true);
    expect(await closed(other, 200)).toBe(false);
    expect(connections(FRAMES)).toMatchObject({ open: 3, shed: 1 });
  });

  it('refuses a peer whose connections are all busy while another peer still gets in', async () => {
    await start({ maxPerPeer: 2, maxConnections: 10 });
    const db = await fake('db', 'kv');
    db.handler = null;
    for (let i = 0; i < 2; i++) void frameCall(await client(framesPort, '127.0.0.2'), i);
    await db.next();
    await db.next();
    const third = await client(framesPort, '127.0.0.2');
    expect(await closed(third)).toBe(true);
    const other = await client(framesPort, '127.0.0.3');
    expect(await closed(other, 200)).toBe(false);
    expect(connections(FRAMES)).toMatchObject({ open: 3, refused: 1 });
  });

  it('counts an IPv4 address mapped into IPv6 as the IPv4 address', () => {
    expect(peerKey('::ffff:127.0.0.2')).toBe('127.0.0.2');
    expect(peerKey('::1')).toBe('::1');
    expect(peerKey(undefined)).toBe('?');
  });
});

describe('timeouts', () => {
  it('closes a line-JSON connection that leaves a frame unfinished, and one that stays idle', async () => {
    await start({ headerTimeoutMs: 200, idleTimeoutMs: 500 });
    const half = await client(framesPort);
    half.write('{"t":"call","op":"get",');
    const idle = await client(framesPort);
    const t0 = performance.now();
    expect(await closed(half)).toBe(true);
    const halfAfter = performance.now() - t0;
    expect(await closed(idle)).toBe(true);
    const idleAfter = performance.now() - t0;
    expect(halfAfter).toBeGreaterThanOrEqual(150);
    expect(halfAfter).toBeLessThan(450);
    expect(idleAfter).toBeGreaterThanOrEqual(450);
    expect(connections(FRAMES)).toMatchObject({ open: 0, timed_out: 2 });
  });

  it('keeps a line-JSON connection that waits for an answer past the idle timeout', async () => {
    await start({ headerTimeoutMs: 100, idleTimeoutMs: 200 });
    const db = await fake('db', 'kv');
    const s = await client(framesPort);
    const answer = frameCall(s, 1);
    const call = await db.next();
    await sleep(500);
    db.send({ t: 'reply', id: call.id, body: { miss: null } });
    expect(await answer).toBe('{"t":"reply","id":1,"body":{"miss":null}}');
  });

  it('closes an HTTP connection that sends nothing, and one whose request head never ends', async () => {
    await start({ headerTimeoutMs: 200 });
    const silent = await client(httpPort);
    const half = await client(httpPort);
    half.write('GET / HTTP/1.1\r\nhost: x\r\n');
    let answer = '';
    half.on('data', (d: string) => (answer += d));
    expect(await closed(silent)).toBe(true);
    expect(await closed(half)).toBe(true);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(connections(HTTP)).toMatchObject({ open: 0, timed_out: 2 });
    // A timed-out request is not a refused frame.
    expect(broker.counters().find((c) => c.channel === HTTP)!.violations_total).toBe(0);
  });
});
