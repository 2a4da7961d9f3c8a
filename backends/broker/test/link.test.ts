import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { Links, parseLinkConfig } from '../src/link';
import { Broker } from '../src/broker';
import { FakePort, kvHandler, tempDir } from './helpers';
import { channelsBetween } from '@mcl/plan';
import { identities, linkedPair, twoHostPlan, type Pair } from './link-helpers';

let dir: string;
let cleanup: () => void;
let pair: Pair;
const ports: FakePort[] = [];

async function fake(broker: Broker, instance: string, clone: number, port: string): Promise<FakePort> {
  const p = await FakePort.listen(join(dir, `${instance}.${clone}.${port}.${ports.length}.sock`));
  ports.push(p);
  void broker.attachPort(instance, clone, port, p.path);
  await p.connected();
  return p;
}

function counter(broker: Broker, id: string) {
  return broker.counters().find((x) => x.channel === id)!;
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The link's private parts a compromised host would control: its end of the streams and its raw frames. */
type Raw = {
  openToProvider(channel: string, clone: number): import('node:stream').Duplex | string;
  send(p: unknown, type: number, channel: number, clone: number, payload: Buffer): boolean;
  peers: Map<string, { socket: import('node:tls').TLSSocket | null; seqOut: number }>;
};

const CH = 'client.kv->db.kv';

beforeEach(async () => {
  ({ dir, cleanup } = tempDir());
  pair = await linkedPair(twoHostPlan(), { pingIntervalMs: 50, reconnectMinMs: 20, reconnectMaxMs: 100 });
});

afterEach(async () => {
  await pair.close();
  for (const p of ports.splice(0)) await p.close();
  cleanup();
});

describe('the link between two hosts', () => {
  it('carries a call from a requester on one host to its provider on the other, checked on both', async () => {
    const db = await fake(pair.brokerB, 'db', 0, 'kv');
    db.handler = kvHandler();
    const client = await fake(pair.brokerA, 'client', 0, 'kv');
    client.send({ t: 'call', op: 'put', id: 'p1', body: { key: 'k', value: 'v' } });
    expect(await client.next()).toEqual({ t: 'reply', id: 'p1', body: { ok: true } });
    client.send({ t: 'call', op: 'get', id: 2, body: { key: 'k' } });
    expect(await client.next()).toEqual({ t: 'reply', id: 2, body: { hit: { key: 'k', value: 'v' } } });
    // Both brokers counted the calls on the same channel.
    expect(counter(pair.brokerA, CH).calls).toBe(2);
    expect(counter(pair.brokerB, CH).calls).toBe(2);
    expect(counter(pair.brokerB, CH).replies).toBe(2);
    // A notification crosses once to each requester clone.
    db.send({ t: 'notify', op: 'changed', body: { key: 'k' } });
    expect(await client.next()).toEqual({ t: 'notify', op: 'changed', body: { key: 'k' } });
    expect(await client.silent(150)).toBe(true);
    await until(() => pair.linksA.status()[0].latency_ms !== null);
    const [s] = pair.linksA.status();
    expect(s).toMatchObject({ peer: 'b', state: 'up', connects: 1, channels: ['client.kv->db.kv', 'flood.kv->db.kv'] });
    expect(s.bytes_out).toBeGreaterThan(0);
    expect(s.bytes_in).toBeGreaterThan(0);
    expect(s.latency_p50_ms).not.toBeNull();
    expect(pair.linksB.status()[0]).toMatchObject({ peer: 'a', state: 'up', address: '(listening)' });
    // The broker reports its links (the supervisor's status reads them there).
    expect(pair.brokerA.linkStatus().map((l) => [l.peer, l.state])).toEqual([['b', 'up']]);
  });

  it('refuses on the requirer\'s host what breaks the channel, before it reaches the link', async () => {
    const db = await fake(pair.brokerB, 'db', 0, 'kv');
    db.handler = kvHandler();
    const client = await fake(pair.brokerA, 'client', 0, 'kv');
    client.send({ t: 'call', op: 'get', id: 1, body: { key: 'NOT valid' } });
    expect(await client.next()).toMatchObject({ t: 'denied', id: 1, kind: 'schema' });
    expect(counter(pair.brokerA, CH).violations.schema).toBe(1);
    expect(counter(pair.brokerB, CH).calls).toBe(0);
  });

  it('denies a forged frame that skipped the requirer\'s checks (a compromised host) on the provider\'s host, and counts it', async () => {
    const db = await fake(pair.brokerB, 'db', 0, 'kv');
    db.handler = kvHandler();
    const raw = pair.linksA as unknown as Raw;
    const s = raw.openToProvider(CH, 0);
    if (typeof s === 'string') throw new Error(s);
    const got: string[] = [];
    s.on('data', (d: Buffer) => got.push(d.toString()));
    // A body the schema refuses, and a reply (wrong direction), written straight onto the link.
    s.write('{"t":"call","op":"get","id":5,"body":{"key":"NOT valid"}}\n{"t":"reply","id":9,"body":{"ok":true}}\nnot a frame\n');
    await until(() => got.join('').includes('"id":5'));
    const answer = JSON.parse(got.join('').split('\n')[0]) as Record<string, unknown>;
    expect(answer).toMatchObject({ t: 'error', id: 5 });
    expect(String(answer.error)).toContain('refused by the broker of b: schema');
    const k = counter(pair.brokerB, CH);
    expect(k.violations.schema).toBe(1);
    await until(() => counter(pair.brokerB, CH).violations.direction === 1 && counter(pair.brokerB, CH).violations.malformed === 1);
    expect(counter(pair.brokerB, CH).calls).toBe(0);
    // The refusal without an id is reported to the requirer's host, not fed to its broker.
    await until(() => (pair.linksA.status()[0].refused.peer_denied ?? 0) >= 1);
    s.destroy();
  });

  it('refuses frames for channels that do not cross these hosts that way, and a replayed frame number', async () => {
    const raw = pair.linksA as unknown as Raw;
    const p = raw.peers.get('b')!;
    // A frame names its channel by its place among the channels between the two hosts.
    const between = channelsBetween(pair.brokerA.plan, 'a', 'b');
    const local = between.length;
    const crossing = between.findIndex((c) => c.id === CH);
    raw.send(p, 2, local, 0, Buffer.from('{"t":"call","op":"login","id":1,"body":{"key":"x"}}\n'));
    // The right channel, the wrong way: answers to a provider.
    raw.send(p, 3, crossing, 0, Buffer.from('{"t":"reply","id":1,"body":{"ok":true}}\n'));
    await until(() => (pair.linksB.status()[0].refused.forged ?? 0) === 2);
    expect(pair.linksB.status()[0].state).toBe('up');
    // A frame whose number was used already: the link is closed, and comes back.
    const h = Buffer.alloc(17);
    h.writeUInt8(5, 0);
    h.writeUInt32BE(1, 1);
    h.writeUInt32BE(8, 13);
    p.socket!.write(Buffer.concat([h, Buffer.alloc(8)]));
    await until(() => (pair.linksB.status()[0].refused.sequence ?? 0) === 1);
    await until(() => pair.linksA.status()[0].connects === 2 && pair.linksA.status()[0].state === 'up');
  });

  it('refuses a peer with a key that is not pinned, and plain TCP, on the listener', async () => {
    const id = identities();
    // The impostor claims to be host a, with a key of its own.
    const sock = tlsConnect({ host: '127.0.0.1', port: pair.port, key: id.evil.key, cert: id.evil.cert, ca: [id.b.cert], checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' });
    const outcome = await new Promise<string>((resolve) => {
      sock.on('data', () => resolve('data'));
      sock.on('error', (e) => resolve(`error: ${e.message}`));
      sock.on('close', () => resolve('closed'));
    });
    expect(outcome).not.toBe('data');
    await until(() => (pair.linksB.listenerRefused.handshake ?? 0) >= 1);
    const plain = netConnect(pair.port, '127.0.0.1');
    plain.on('error', () => {});
    plain.write('{"t":"call","op":"get","id":1,"body":{"key":"k"}}\n');
    await until(() => (pair.linksB.listenerRefused.handshake ?? 0) >= 2);
    plain.destroy();
    expect(pair.linksB.status()[0]).toMatchObject({ state: 'up', connects: 1 });
  });

  it('refuses, on the dialling side, a listener whose certificate is not the pinned one', async () => {
    const id = identities();
    const evil = new Links(new Broker(twoHostPlan()), { self: { ...id.evil, name: 'b' }, peers: [{ name: 'a', cert: id.a.cert, host: '', port: 0 }] });
    const { port } = await evil.start();
    const dialler = new Links(new Broker(twoHostPlan()), { self: id.a, peers: [{ name: 'b', cert: id.b.cert, host: '127.0.0.1', port: port! }], reconnectMinMs: 20 });
    await dialler.start();
    await until(() => (dialler.status()[0].refused.handshake ?? 0) >= 1);
    expect(dialler.status()[0].state).toBe('down');
    await dialler.close();
    await evil.close();
  });

  it('fails the calls in flight when the link drops, reports it down, and recovers', async () => {
    const db = await fake(pair.brokerB, 'db', 0, 'kv');
    const client = await fake(pair.brokerA, 'client', 0, 'kv');
    // The provider holds the call: it is in flight across the link when the link drops.
    client.send({ t: 'call', op: 'get', id: 1, body: { key: 'k' } });
    await db.next();
    const down = new Promise<void>((r) => pair.linksA.once('down', () => r()));
    pair.linksA.drop('b');
    await down;
    expect(pair.linksA.status()[0].state).toBe('down');
    // At once, not at the channel's 300 ms timeout.
    const answer = await client.next(200);
    expect(answer).toMatchObject({ t: 'error', id: 1 });
    expect(String(answer.error)).toContain('the link to its host closed');
    // While it is down a call fails at once, saying why.
    client.send({ t: 'call', op: 'get', id: 2, body: { key: 'k' } });
    const fail = await client.next(1000);
    if (pair.linksA.status()[0].state === 'down') expect(String(fail.error)).toContain('link to b');
    await pair.linksA.whenUp('b');
    db.handler = kvHandler();
    client.send({ t: 'call', op: 'get', id: 3, body: { key: 'k' } });
    expect(await client.next()).toEqual({ t: 'reply', id: 3, body: { miss: null } });
    expect(pair.linksA.status()[0].connects).toBe(2);
    // The provider's host forgot the remote requester of the old link: no call of it is answered twice.
    expect(counter(pair.brokerA, CH).calls).toBe(3);
  });

  it('sends a notification to each requester clone on the other host once, including one that has sent nothing', async () => {
    const db = await fake(pair.brokerB, 'db', 0, 'kv');
    db.handler = kvHandler();
    const c0 = await fake(pair.brokerA, 'client', 0, 'kv');
    const c1 = await fake(pair.brokerA, 'client', 1, 'kv');
    c0.send({ t: 'call', op: 'put', id: 1, body: { key: 'k', value: 'v' } });
    expect(await c0.next()).toEqual({ t: 'reply', id: 1, body: { ok: true } });
    // Both clones are known on the provider's host (announced when they attached).
    await until(() => pair.brokerB.ports().filter((p) => p.instance === 'client').length === 2);
    db.send({ t: 'notify', op: 'changed', body: { key: 'k' } });
    expect(await c0.next()).toEqual({ t: 'notify', op: 'changed', body: { key: 'k' } });
    expect(await c1.next()).toEqual({ t: 'notify', op: 'changed', body: { key: 'k' } });
    expect(await c0.silent(150)).toBe(true);
    expect(await c1.silent(10)).toBe(true);
  });

  it('ends the session on the provider\'s host when the requester opens a new one or closes it', async () => {
    const db = await fake(pair.brokerB, 'db', 0, 'kv');
    const client = await fake(pair.brokerA, 'client', 0, 'kv');
    client.send({ t: 'call', op: 'get', id: 1, body: { key: 'k' } });
    await db.next();
    // A new session: the call outstanding in the old one fails, and the answer says so at once.
    client.send({ t: 'open', id: 'o' });
    const answers = [await client.next(), await client.next()];
    expect(answers).toContainEqual({ t: 'opened', id: 'o', session: 0 });
    expect(answers.find((a) => a.t === 'error')).toMatchObject({ id: 1 });
    db.handler = kvHandler();
    client.send({ t: 'call', op: 'get', id: 2, body: { key: 'k' } });
    expect(await client.next()).toEqual({ t: 'reply', id: 2, body: { miss: null } });
    client.send({ t: 'close' });
    expect(await client.next()).toEqual({ t: 'closed' });
  });

  it('keeps each requester clone\'s rate budget on the provider\'s host', async () => {
    const db = await fake(pair.brokerB, 'db', 0, 'kv');
    db.handler = kvHandler();
    const flood = await fake(pair.brokerA, 'flood', 0, 'kv');
    // flood.kv->db.kv allows 20/s with a burst of 5: the requirer's host refuses the sixth.
    for (let i = 0; i < 8; i++) flood.send({ t: 'call', op: 'get', id: i, body: { key: 'k' } });
    const answers = [];
    for (let i = 0; i < 8; i++) answers.push(await flood.next());
    expect(answers.filter((a) => a.t === 'denied' && a.kind === 'rate').length).toBeGreaterThanOrEqual(2);
    expect(counter(pair.brokerB, 'flood.kv->db.kv').violations.rate ?? 0).toBe(0);
  });
});

describe('the link configuration (link.json)', () => {
  it('takes a checked configuration and names the first fault of a bad one', () => {
    const id = identities();
    const good = { self: id.a, peers: [{ name: 'b', cert: id.b.cert, host: '10.0.0.2', port: 7400 }], listen: { host: '10.0.0.1', port: 7400 } };
    expect(parseLinkConfig(good)).toEqual(good);
    expect(parseLinkConfig([])).toBe('the link configuration is not a JSON object');
    expect(parseLinkConfig({ ...good, peers: [] })).toBe('`peers` must list 1 to 256 hosts');
    expect(parseLinkConfig({ ...good, peers: [{ ...good.peers[0], cert: 'not a certificate' }] })).toBe('peers[0].cert, the certificate is not a certificate');
    expect(parseLinkConfig({ ...good, peers: [{ ...good.peers[0], port: 70000 }] })).toBe('peers[0] needs a host and a port (0..65535)');
    expect(parseLinkConfig({ ...good, listen: { host: '', port: 1 } })).toBe('`listen` needs a host and a port (0..65535)');
    expect(parseLinkConfig({ ...good, self: { name: 'a', key: id.a.key } })).toBe("`self.cert`, this host's certificate is not a PEM text");
  });
});

describe('the link between two hosts that each hold only their part of the plan', () => {
  it('agrees in the greeting, carries a call both brokers check, and refuses a peer whose part gives a crossing channel another type', async () => {
    const parts = await linkedPair(twoHostPlan(), { pingIntervalMs: 50 }, { parts: true });
    try {
      // Host a's broker knows db only as the far end of its channels; host b's knows client and flood so.
      expect(parts.brokerA.plan.remote_instances?.map((i) => i.id)).toEqual(['db']);
      expect(parts.brokerB.plan.remote_instances?.map((i) => i.id).sort()).toEqual(['client', 'flood']);
      const db = await fake(parts.brokerB, 'db', 0, 'kv');
      db.handler = kvHandler();
      const client = await fake(parts.brokerA, 'client', 0, 'kv');
      client.send({ t: 'call', op: 'put', id: 'p1', body: { key: 'k', value: 'v' } });
      expect(await client.next()).toEqual({ t: 'reply', id: 'p1', body: { ok: true } });
      client.send({ t: 'call', op: 'get', id: 2, body: { key: 'NOT valid' } });
      expect(await client.next()).toMatchObject({ t: 'denied', id: 2, kind: 'schema' });
      expect(counter(parts.brokerA, CH).calls).toBe(1);
      expect(counter(parts.brokerB, CH).calls).toBe(1);
      expect(parts.linksA.status()[0]).toMatchObject({ peer: 'b', state: 'up', channels: ['client.kv->db.kv', 'flood.kv->db.kv'] });
    } finally {
      for (const p of ports.splice(0)) await p.close();
      await parts.close();
    }
    // Host b applied a plan where the crossing channel's request has another schema: host a refuses its greeting.
    const changed = twoHostPlan();
    const op = changed.channels.find((c) => c.id === CH)!.ops[0];
    changed.schemas = { ...changed.schemas, [op.input]: { kind: 'string', max_len: 1 } };
    const id = identities();
    const { Links: L } = await import('../src/link');
    const { hostView } = await import('./link-helpers');
    const bB = new Broker(hostView(changed, 'b'));
    const bA = new Broker(hostView(twoHostPlan(), 'a'));
    const lB = new L(bB, { self: id.b, peers: [{ name: 'a', cert: id.a.cert, host: '', port: 0 }], listen: { host: '127.0.0.1', port: 0 } });
    const { port } = await lB.start();
    const lA = new L(bA, { self: id.a, peers: [{ name: 'b', cert: id.b.cert, host: '127.0.0.1', port: port! }], reconnectMinMs: 20 });
    try {
      await lA.start();
      await until(() => (lA.status()[0].refused.greeting ?? 0) + (lB.status()[0].refused.greeting ?? 0) >= 1);
      expect(lA.status()[0].state).toBe('down');
    } finally {
      await lA.close();
      await lB.close();
      await bA.close();
      await bB.close();
    }
  });
});
