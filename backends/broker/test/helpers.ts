// Test fixtures: a small plan and fake guest ports.
//
// A FakePort plays the VM side of one virtio-serial port: it listens on a unix
// socket (as QEMU's `server=on,wait=off` chardev does) and the broker connects
// to it.

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough, Writable } from 'node:stream';
import { HTTP_OPS } from '../src/http';
import { Broker } from '../src/index';
import type { ChannelInvariants, MessageSchema, OrderAutomaton, Plan, PlanChannel, PlanExposure, PlanInstance, PlanOperation, PlanPort } from '@mcl/plan';

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'mcl-broker-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const KV_OPS: PlanOperation[] = [
  { name: 'changed', kind: 'notify', input: 't.Changed' },
  { name: 'get', kind: 'call', input: 't.Lookup', output: 't.Found' },
  { name: 'log', kind: 'send', input: 't.Line' },
  { name: 'put', kind: 'call', input: 't.Entry', output: 't.Ack' },
];

export const SESSION_OPS: PlanOperation[] = [
  { name: 'login', kind: 'call', input: 't.Lookup', output: 't.Ack' },
  { name: 'logout', kind: 'call', input: 't.Lookup', output: 't.Ack' },
  { name: 'query', kind: 'call', input: 't.Lookup', output: 't.Found' },
];

export const SCHEMAS: Record<string, MessageSchema> = {
  't.Key': { kind: 'string', min_len: 1, max_len: 64, pattern: '[a-z0-9]+' },
  't.Lookup': { kind: 'record', fields: [{ name: 'key', optional: false, type: { kind: 'ref', name: 't.Key' } }] },
  't.Entry': {
    kind: 'record',
    fields: [
      { name: 'key', optional: false, type: { kind: 'ref', name: 't.Key' } },
      { name: 'value', optional: false, type: { kind: 'string', max_len: 4096 } },
    ],
  },
  't.Found': {
    kind: 'union',
    variants: [
      { name: 'hit', type: { kind: 'ref', name: 't.Entry' } },
      { name: 'miss' },
    ],
  },
  't.Ack': { kind: 'record', fields: [{ name: 'ok', optional: false, type: { kind: 'bool' } }] },
  't.Line': { kind: 'record', fields: [{ name: 'message', optional: false, type: { kind: 'string', max_len: 256 } }] },
  't.Changed': { kind: 'record', fields: [{ name: 'key', optional: false, type: { kind: 'ref', name: 't.Key' } }] },
};

function port(name: string, direction: 'provide' | 'require', protocol: string, slot: number, channels: string[], exposed_on?: number): PlanPort {
  const p: PlanPort = { name, direction, protocol, slot, channels };
  if (exposed_on !== undefined) p.exposed_on = exposed_on;
  return p;
}

function instance(id: string, mode: PlanInstance['mode'], replicas: number, ports: PlanPort[], max_sessions?: number): PlanInstance {
  const i: PlanInstance = {
    id,
    component: `t.${id}`,
    template: 'busybox-128m-1c-4p',
    memory_bytes: 128 << 20,
    vcpus: 1,
    mode,
    replicas,
    restart: { policy: 'always', max_retries: 0 },
    declassifies: [],
    params: {},
    sensitive_params: [],
    program: { argv: ['/bin/sh'], env: {}, files: [] },
    ports,
    digest: 'x',
  };
  if (max_sessions !== undefined) i.max_sessions = max_sessions;
  return i;
}

export function inv(over: Partial<ChannelInvariants> = {}): ChannelInvariants {
  return { max_message_bytes: 1024, rate: null, timeout_ms: 2000, max_inflight: 8, order: null, ...over };
}

/** An exposure's invariants as the compiler writes them: the channel defaults (spec/plan.md). */
export function exposureInv(over: Partial<ChannelInvariants> = {}): ChannelInvariants {
  return { max_message_bytes: 1024 * 1024, rate: null, timeout_ms: 30_000, max_inflight: 64, order: null, ...over };
}

function channel(from: string, fromPort: string, to: string, toPort: string, protocol: string, ops: PlanOperation[], invariants: ChannelInvariants): PlanChannel {
  return { id: `${from}.${fromPort}->${to}.${toPort}`, from: { instance: from, port: fromPort }, to: { instance: to, port: toPort }, protocol, ops, invariants };
}

/**
 * The test system:
 * - client.kv -> db.kv (Kv: get, put, log, changed), 1 KiB, timeout 300 ms, max_inflight 4
 * - flood.kv -> db.kv, rate 20/s burst 5
 * - client.sess -> ordered.api (login (query)* logout)
 * - client.rep -> rep.kv (replicas 3)
 * - client.ps -> ps.kv (per_session, max 2)
 * - client.loose: a require port with no channel
 * - web.http exposed on 18080 (std.http.Http), db.kv exposed on 18081 (frames)
 */
export function testPlan(): Plan {
  const order: OrderAutomaton = {
    transitions: [{ login: 1 }, { query: 1, logout: 2 }, {}],
    accepting: [0, 2],
  };
  const channels = [
    channel('client', 'kv', 'db', 'kv', 't.Kv', KV_OPS, inv({ timeout_ms: 300, max_inflight: 4 })),
    channel('flood', 'kv', 'db', 'kv', 't.Kv', KV_OPS, inv({ rate: { per_second: 20, burst: 5 } })),
    channel('client', 'sess', 'ordered', 'api', 't.Session', SESSION_OPS, inv({ order })),
    channel('client', 'rep', 'rep', 'kv', 't.Kv', KV_OPS, inv()),
    channel('client', 'ps', 'ps', 'kv', 't.Kv', KV_OPS, inv()),
  ].sort((a, b) => a.id.localeCompare(b.id));
  const chOf = (inst: string, p: string) => channels.filter((c) => (c.from.instance === inst && c.from.port === p) || (c.to.instance === inst && c.to.port === p)).map((c) => c.id);
  const instances = [
    instance('client', 'single', 1, [
      port('kv', 'require', 't.Kv', 1, chOf('client', 'kv')),
      port('sess', 'require', 't.Session', 2, chOf('client', 'sess')),
      port('rep', 'require', 't.Kv', 3, chOf('client', 'rep')),
      port('ps', 'require', 't.Kv', 4, chOf('client', 'ps')),
      port('loose', 'require', 't.Kv', 5, []),
    ]),
    instance('flood', 'single', 1, [port('kv', 'require', 't.Kv', 1, chOf('flood', 'kv'))]),
    instance('db', 'single', 1, [port('kv', 'provide', 't.Kv', 1, chOf('db', 'kv'), 18081)]),
    instance('ordered', 'single', 1, [port('api', 'provide', 't.Session', 1, chOf('ordered', 'api'))]),
    instance('rep', 'replicas', 3, [port('kv', 'provide', 't.Kv', 1, chOf('rep', 'kv'))]),
    instance('ps', 'per_session', 1, [port('kv', 'provide', 't.Kv', 1, chOf('ps', 'kv'))], 2),
    instance('web', 'single', 1, [port('http', 'provide', 'std.http.Http', 1, [], 18080)]),
  ].sort((a, b) => a.id.localeCompare(b.id));
  const exposures: PlanExposure[] = [
    { host_port: 18080, transport: 'tcp', instance: 'web', port: 'http', protocol: 'std.http.Http', ops: HTTP_OPS, invariants: exposureInv() },
    { host_port: 18081, transport: 'tcp', instance: 'db', port: 'kv', protocol: 't.Kv', ops: KV_OPS, invariants: exposureInv() },
  ];
  return {
    format_version: '1.0',
    mclc_version: '0.1.0',
    system: 't.Test',
    target: { name: 'local', backend: 'kvm', memory_bytes: 4 << 30, vcpus: 2, vcpu_overcommit: 4 },
    digests: { sources: '', invariants: '', plan: '' },
    sources: [],
    images: [],
    templates: [],
    instances,
    channels,
    exposures,
    schemas: SCHEMAS,
    checks: [],
    resources: { template_memory_bytes: 0, estimated_private_bytes: 0, estimated_total_bytes: 0, worst_case_bytes: 0, committed_vcpus: 0 },
    prior_state: null,
  };
}

/** The VM side of one port: listens on a unix socket and exchanges lines with the broker. */
export class FakePort {
  readonly path: string;
  private server: Server;
  socket: Socket | null = null;
  private buf = '';
  private queue: string[] = [];
  private waiters: ((line: string) => void)[] = [];
  private connWaiters: (() => void)[] = [];
  /** When set, answers every call frame itself. */
  handler: ((frame: Record<string, unknown>) => unknown) | null = null;
  /** TCP ports only: the first line of every connection (a KubeVirt guest's `auth <token>`), kept apart from the frames. */
  readonly greetings: string[] = [];
  private greeted = true;

  private constructor(path: string) {
    this.path = path;
    this.server = createServer((s) => {
      this.socket?.destroy();
      this.socket = s;
      this.greeted = this.path !== 'tcp';
      s.setEncoding('utf8');
      s.on('data', (d: string) => this.onData(d));
      s.on('error', () => {});
      for (const w of this.connWaiters.splice(0)) w();
    });
  }

  static async listen(path: string): Promise<FakePort> {
    const p = new FakePort(path);
    await new Promise<void>((resolve) => p.server.listen(path, resolve));
    return p;
  }

  /** A port on TCP, as a KubeVirt guest listens on the pod network: 127.0.0.1 on a free port (`tcpPort`). */
  static async listenTcp(): Promise<FakePort> {
    const p = new FakePort('tcp');
    await new Promise<void>((resolve) => p.server.listen(0, '127.0.0.1', resolve));
    return p;
  }

  /** The TCP port of a port made by listenTcp. */
  get tcpPort(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  private onData(d: string): void {
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (!this.greeted) {
        this.greeted = true;
        this.greetings.push(line);
        continue;
      }
      if (this.handler) {
        const f = JSON.parse(line) as Record<string, unknown>;
        if (f.t === 'call') {
          const out = this.handler(f);
          if (out !== undefined) this.send(out);
          continue;
        }
      }
      const w = this.waiters.shift();
      if (w) w(line);
      else this.queue.push(line);
    }
  }

  connected(): Promise<void> {
    if (this.socket) return Promise.resolve();
    return new Promise((resolve) => this.connWaiters.push(resolve));
  }

  send(frame: unknown): void {
    this.raw(JSON.stringify(frame) + '\n');
  }

  raw(text: string | Buffer): void {
    if (!this.socket) throw new Error(`no broker connection on ${this.path}`);
    this.socket.write(text);
  }

  /** The next line from the broker, parsed. */
  async next(timeoutMs = 2000): Promise<Record<string, unknown>> {
    const line = await this.nextLine(timeoutMs);
    return JSON.parse(line) as Record<string, unknown>;
  }

  nextLine(timeoutMs = 2000): Promise<string> {
    const q = this.queue.shift();
    if (q !== undefined) return Promise.resolve(q);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no line from the broker on ${this.path} within ${timeoutMs} ms`));
      }, timeoutMs);
      const w = (line: string) => {
        clearTimeout(t);
        resolve(line);
      };
      this.waiters.push(w);
    });
  }

  /** Whether nothing arrives within `ms`. */
  async silent(ms = 100): Promise<boolean> {
    if (this.queue.length) return false;
    try {
      await this.nextLine(ms).then((l) => this.queue.unshift(l));
      return false;
    } catch {
      return true;
    }
  }

  /** Drops the current broker connection (a clone that died). */
  dropConnection(): void {
    this.socket?.destroy();
    this.socket = null;
  }

  async close(): Promise<void> {
    this.socket?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A kv provider: `get` answers miss or the value put before. */
export function kvHandler(store = new Map<string, string>(), tag?: string): (f: Record<string, unknown>) => unknown {
  return (f) => {
    const body = f.body as Record<string, string>;
    if (f.op === 'put') {
      store.set(body.key, body.value);
      return { t: 'reply', id: f.id, body: { ok: true } };
    }
    if (f.op === 'get') {
      const v = store.get(body.key);
      const found = v === undefined ? { miss: null } : { hit: { key: body.key, value: tag ? `${tag}:${v}` : v } };
      return { t: 'reply', id: f.id, body: found };
    }
    return { t: 'reply', id: f.id, body: { ok: true } };
  };
}

/**
 * The test system with a factory: coord.workers creates instances of w (Kv on
 * port kv), at most 2 per creator clone, choosing `job` (string 1..8) and
 * `size` (int 1..10).
 */
export function farmPlan(detached = false): Plan {
  const plan = testPlan();
  const base = plan.instances.find((i) => i.id === 'db')!;
  const coord: PlanInstance = { ...base, id: 'coord', component: 't.Coord', ports: [{ name: 'workers', direction: 'require', protocol: 't.Kv', slot: 1, channels: ['coord.workers->w.kv'] }] };
  const w: PlanInstance = {
    ...base,
    id: 'w',
    component: 't.Worker',
    mode: 'created',
    replicas: 0,
    max_instances: 2,
    created_by: { instance: 'coord', port: 'workers', max: 2, params: { job: { kind: 'string', min_len: 1, max_len: 8 }, size: { kind: 'int', min: 1, max: 10 } }, detached },
    ports: [{ name: 'kv', direction: 'provide', protocol: 't.Kv', slot: 1, channels: ['coord.workers->w.kv'] }],
  };
  plan.instances.push(coord, w);
  plan.channels.push({ id: 'coord.workers->w.kv', from: { instance: 'coord', port: 'workers' }, to: { instance: 'w', port: 'kv' }, protocol: 't.Kv', ops: KV_OPS, invariants: inv() });
  return plan;
}

/** The test plan with `app.db` late-bound to `db.kv` (initial) and `rep.kv`. */
export function lateBoundPlan(): Plan {
  const plan = testPlan();
  const base = plan.instances.find((i) => i.id === 'client')!;
  const kv = plan.channels.find((c) => c.id === 'client.kv->db.kv')!;
  const cand = (to: string, initial: boolean): PlanChannel => ({ ...kv, id: `app.db->${to}.kv`, from: { instance: 'app', port: 'db' }, to: { instance: to, port: 'kv' }, invariants: inv(), candidate: { initial } });
  plan.channels.push(cand('db', true), cand('rep', false));
  plan.instances.push({ ...base, id: 'app', ports: [{ name: 'db', direction: 'require', protocol: 't.Kv', slot: 1, channels: ['app.db->db.kv', 'app.db->rep.kv'] }] });
  for (const i of plan.instances) if (i.id === 'db' || i.id === 'rep') i.ports[0] = { ...i.ports[0], channels: [...i.ports[0].channels, `app.db->${i.id}.kv`] };
  return plan;
}

/** A port whose broker side records every write the broker makes to it, as bytes. */
export function recordingPort(): { brokerSide: Duplex; toBroker: PassThrough; writes: Buffer[] } {
  const toBroker = new PassThrough();
  const writes: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      writes.push(Buffer.from(chunk));
      cb();
    },
  });
  return { brokerSide: Duplex.from({ readable: toBroker, writable: sink }), toBroker, writes };
}

/** Lets the streams and the broker's handlers run a few turns of the event loop. */
export const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

/**
 * A broker over the test plan whose requester `client` and provider `db` are recording ports, with room for bodies of
 * 4 KiB on the channel between them (client.rep -> rep.kv).
 */
export async function largeBodyPorts(): Promise<{ broker: Broker; client: ReturnType<typeof recordingPort>; db: ReturnType<typeof recordingPort> }> {
  const plan = testPlan();
  plan.channels.find((c) => c.id === 'client.rep->rep.kv')!.invariants.max_message_bytes = 64 * 1024;
  const broker = new Broker(plan);
  const client = recordingPort();
  const db = recordingPort();
  void broker.attachPort('rep', 0, 'kv', db.brokerSide);
  void broker.attachPort('client', 0, 'rep', client.brokerSide);
  await settle();
  return { broker, client, db };
}
