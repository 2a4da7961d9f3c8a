// Egress: a required port whose traffic leaves the deployment for an address
// outside it (`egress` in a system, spec/broker.md "Egress"). Guests have no
// network device: the broker opens the outbound connections itself, after
// the frames that ask for them passed the checks of a channel (admit.ts), and
// enforces the egress's connection limits on them.
//
// - A byte-stream egress (std.tcp.Stream, seen from the requiring side): the
//   guest sends `opened {conn}` to open connection number `conn` (its own
//   choice) to the destination, `data {conn, data}` to write bytes, and
//   `closed {conn}` to end it; the destination's bytes come back as
//   `notify write {conn, data}`, its end (or a refusal, or the idle timeout)
//   as `notify close {conn}`.
// - An HTTP egress (std.http.Http, or a protocol that refines it): each
//   `request` call becomes one HTTP request to the destination, whose path
//   must lie under the destination's path; the response becomes the reply,
//   checked against the protocol's response type before the guest sees it.

import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createConnection, type Socket } from 'node:net';
import type { PlanEgress } from '@mcl/plan';
import type { OpRt } from './admit';
import type { ConnectionStats } from './connections';
import { wireBytes } from './counters';
import { TokenBucket } from './lines';
import { byRequester, type Answer, type ChannelRt, type Offence, type Requester } from './state';
import { chunkBytes, chunks, STREAM_CLIENT_WATER, Throttle } from './streams';
import type { BrokerLogEntry } from './types';

/** The largest HTTP response body read from a destination; a larger one is refused. */
export const EGRESS_MAX_RESPONSE = 1024 * 1024;
/** Bytes a guest may queue to a connection that is not open yet, or whose destination does not read. */
const EGRESS_WATER = STREAM_CLIENT_WATER;
/** How long opening a connection may take. */
const CONNECT_TIMEOUT_MS = 10_000;
/** Without an `idle_timeout`, a connection with no bytes either way for this long is closed. */
const DEFAULT_IDLE_MS = 300_000;
/** Headers the broker sets itself, or that describe the connection rather than the request. */
const HOP_BY_HOP = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'trailer', 'te', 'proxy-connection', 'expect']);

export interface EgressHost {
  violation(o: Offence): void;
  log(e: BrokerLogEntry): void;
  closed(): boolean;
  /** Pauses `source` until the requester's port drains, when that port holds too much (the broker's backpressure). */
  backpressure(req: Requester, source: Socket): void;
}

interface StreamConn {
  sock: Socket;
  req: Requester;
  conn: number;
  open: boolean;
  idle: NodeJS.Timeout | null;
  throttle: Throttle | null;
}

interface EgressRt {
  plan: PlanEgress;
  ch: ChannelRt;
  bucket: TokenBucket | null;
  /** Connections (streams) or requests (HTTP) open now. */
  open: number;
  stats: ConnectionStats;
  streams: Map<string, StreamConn>;
  /** HTTP requests in flight, so that close() can abort them. */
  requests: Set<{ destroy(): void }>;
}

/** Whether `path` lies under the destination's path `base` (a prefix ending at a segment boundary), without dot segments. */
export function pathAllowed(base: string, path: string): boolean {
  const p = path.split('?')[0];
  if (p.split('/').some((s) => s === '.' || s === '..' || /^(%2e|\.){1,2}$/i.test(s))) return false;
  if (base === '/' || p === base) return p.startsWith('/');
  const prefix = base.endsWith('/') ? base : `${base}/`;
  return p.startsWith(prefix);
}

export class Egresses {
  private readonly byChannel = new Map<ChannelRt, EgressRt>();

  constructor(private readonly host: EgressHost) {}

  /** Registers the channel of one egress. */
  add(plan: PlanEgress, ch: ChannelRt): void {
    const rate = plan.connections?.rate;
    this.byChannel.set(ch, {
      plan,
      ch,
      bucket: rate ? new TokenBucket(rate.per_second, Math.max(1, rate.burst)) : null,
      open: 0,
      stats: { open: 0, total: 0, shed: 0, refused: 0, timed_out: 0 },
      streams: new Map(),
      requests: new Set(),
    });
  }

  /** Whether a channel is an egress's. */
  has(ch: ChannelRt): boolean {
    return this.byChannel.has(ch);
  }

  connectionStats(ch: ChannelRt): ConnectionStats | undefined {
    const e = this.byChannel.get(ch);
    return e ? { ...e.stats, open: e.open } : undefined;
  }

  /** A new connection or request: within `max_connections` and `connection_rate`, or refused (and counted). */
  private admitConnection(e: EgressRt, req: Requester, id?: number | string): boolean {
    const c = e.plan.connections;
    let why: string | null = null;
    if (c?.max !== undefined && e.open >= c.max) why = `egress ${e.plan.name} has ${e.open} connections open, its max_connections`;
    else if (e.bucket && !e.bucket.take()) why = `egress ${e.plan.name} is over its connection_rate`;
    if (!why) {
      e.open++;
      e.stats.total++;
      return true;
    }
    e.stats.refused++;
    this.host.violation({ ...byRequester(req), kind: 'egress_limit', detail: why, id: id ?? null });
    return false;
  }

  /** A send admitted on a byte-stream egress: `opened`, `data` or `closed`. */
  send(req: Requester, op: OpRt, body: unknown): void {
    const e = this.byChannel.get(req.channel);
    if (!e) return;
    const conn = (body as { conn?: unknown } | null)?.conn;
    if (typeof conn !== 'number' || !Number.isSafeInteger(conn)) return; // the schema guarantees it
    const key = `${req.name}[${req.clone}]#${conn}`;
    const s = e.streams.get(key);
    const bad = (detail: string) => this.host.violation({ ...byRequester(req), kind: 'malformed', detail });
    if (op.name === 'opened') {
      if (s) return bad(`connection ${conn} of egress ${e.plan.name} is already open`);
      if (!this.admitConnection(e, req)) {
        this.notify(req, 'close', { conn });
        return;
      }
      this.open(e, req, conn, key);
    } else if (op.name === 'data') {
      if (!s) return bad(`data for connection ${conn} of egress ${e.plan.name}, which is not open`);
      const data = Buffer.from(String((body as { data?: unknown }).data ?? ''), 'base64');
      if (s.sock.writableLength + data.length > EGRESS_WATER) {
        this.host.log({ level: 'warn', message: `egress ${e.plan.name}: connection ${conn} closed, its destination does not read what ${req.name} sends`, channel: e.ch.id });
        s.sock.destroy();
        return;
      }
      this.touch(e, s);
      e.ch.counters.frames_to_provider++;
      e.ch.counters.bytes_to_provider += data.length;
      s.sock.write(data);
    } else if (op.name === 'closed') {
      if (s) s.sock.end();
    }
  }

  private open(e: EgressRt, req: Requester, conn: number, key: string): void {
    const d = e.plan.destination;
    const sock = createConnection({ host: d.host, port: d.port });
    const s: StreamConn = { sock, req, conn, open: false, idle: null, throttle: null };
    const bps = e.plan.connections?.bytes_per_second;
    if (bps) s.throttle = new Throttle(bps, sock, () => false);
    e.streams.set(key, s);
    const dial = setTimeout(() => sock.destroy(new Error('connect timed out')), CONNECT_TIMEOUT_MS);
    dial.unref?.();
    sock.once('connect', () => {
      clearTimeout(dial);
      s.open = true;
      this.touch(e, s);
    });
    const size = chunkBytes(e.ch.inv);
    sock.on('data', (data: Buffer) => {
      if (!req.alive) {
        sock.destroy();
        return;
      }
      s.throttle?.read(data.length);
      this.touch(e, s);
      for (const c of chunks(data, size)) this.notify(req, 'write', { conn, data: c });
      // The destination's bytes cannot be dropped: while the guest does not read them, the destination waits.
      this.host.backpressure(req, sock);
    });
    sock.on('error', (err) => this.host.log({ level: 'info', message: `egress ${e.plan.name}: connection ${conn} of ${req.name}[${req.clone}]: ${err.message}`, channel: e.ch.id }));
    sock.once('close', () => {
      clearTimeout(dial);
      if (s.idle) clearTimeout(s.idle);
      s.throttle?.stop();
      e.streams.delete(key);
      e.open--;
      if (req.alive && !this.host.closed()) this.notify(req, 'close', { conn });
    });
  }

  /** Restarts a connection's idle timer (`idle_timeout`, or the default). */
  private touch(e: EgressRt, s: StreamConn): void {
    // Called for every chunk either way: the timer is restarted in place rather than made anew.
    if (s.idle) {
      s.idle.refresh();
      return;
    }
    const ms = e.plan.connections?.idle_timeout_ms ?? DEFAULT_IDLE_MS;
    s.idle = setTimeout(() => {
      e.stats.timed_out++;
      s.sock.destroy();
    }, ms);
    s.idle.unref?.();
  }

  /** A notification to the guest that requires the egress's port. */
  private notify(req: Requester, op: 'write' | 'close', body: unknown): void {
    if (!req.alive || !req.write) return;
    const line = `{"t":"notify","op":"${op}","body":${JSON.stringify(body)}}\n`;
    // Bytes of a stream cannot be dropped: the write is not droppable; the destination's socket is paused instead (open()).
    if (req.write(line, false)) {
      req.channel.counters.frames_to_requirer++;
      req.channel.counters.bytes_to_requirer += wireBytes(line);
    }
  }

  /** A `request` call admitted on an HTTP egress; `respond` gets exactly one answer. */
  call(req: Requester, op: OpRt, body: unknown, respond: (a: Answer) => void, id?: number | string): void {
    const e = this.byChannel.get(req.channel);
    if (!e) return;
    const ch = e.ch;
    ch.counters.calls++;
    const msg = body as { method: string; path: string; headers: Record<string, string>; body?: string };
    const d = e.plan.destination;
    if (!pathAllowed(d.path ?? '/', msg.path)) {
      this.host.violation({ ...byRequester(req), kind: 'egress_path', detail: `${msg.method} ${msg.path.slice(0, 200)} is not under ${d.path ?? '/'}, the path of egress ${e.plan.name}`, id: id ?? null });
      return;
    }
    if (!this.admitConnection(e, req, id)) return;
    req.budget.inflight++;
    req.outstanding++;
    const started = performance.now();
    let done = false;
    const finish = (a: Answer) => {
      if (done) return;
      done = true;
      e.open--;
      req.budget.inflight--;
      req.outstanding--;
      if (a.ok) {
        ch.counters.replies++;
        ch.counters.latency(performance.now() - started);
      } else {
        ch.counters.errors++;
        if (a.kind === 'timeout') ch.counters.timeouts++;
      }
      respond(a);
    };
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(msg.headers)) if (!HOP_BY_HOP.has(k)) headers[k] = v;
    const sent = msg.body ?? '';
    headers['content-length'] = String(Buffer.byteLength(sent));
    const make = d.scheme === 'https' ? httpsRequest : httpRequest;
    const r = make({ host: d.host, port: d.port, method: msg.method, path: msg.path, headers, agent: false, timeout: ch.inv.timeout_ms });
    const handle = { destroy: () => r.destroy() };
    e.requests.add(handle);
    const timer = setTimeout(() => {
      finish({ ok: false, error: `egress ${e.plan.name}: no response within ${ch.inv.timeout_ms}ms`, kind: 'timeout' });
      r.destroy();
    }, ch.inv.timeout_ms);
    timer.unref?.();
    const end = () => {
      clearTimeout(timer);
      e.requests.delete(handle);
    };
    r.on('error', (err) => {
      end();
      finish({ ok: false, error: `egress ${e.plan.name}: ${err.message}`, kind: 'unavailable' });
    });
    r.on('response', (res: IncomingMessage) => {
      const limit = Math.min(EGRESS_MAX_RESPONSE, ch.inv.max_message_bytes);
      const parts: Buffer[] = [];
      let len = 0;
      res.on('data', (c: Buffer) => {
        len += c.length;
        if (len > limit) {
          end();
          r.destroy();
          this.host.violation({ ...byRequester(req), kind: 'egress_response', detail: `the response of ${e.plan.destination.host} to ${msg.method} ${msg.path.slice(0, 200)} is over ${limit} bytes`, notify: false });
          finish({ ok: false, error: `egress ${e.plan.name}: the response is over ${limit} bytes`, kind: 'denied' });
          return;
        }
        parts.push(c);
      });
      res.on('error', () => {
        end();
        finish({ ok: false, error: `egress ${e.plan.name}: the response broke off`, kind: 'unavailable' });
      });
      res.on('end', () => {
        end();
        if (done) return;
        const hs: Record<string, string> = {};
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
          const k = res.rawHeaders[i].toLowerCase();
          hs[k] = k in hs ? `${hs[k]}, ${res.rawHeaders[i + 1]}` : res.rawHeaders[i + 1];
        }
        const text = Buffer.concat(parts).toString('utf8');
        const reply: Record<string, unknown> = { status: res.statusCode ?? 0, headers: hs };
        if (text.length > 0) reply.body = text;
        // The outside world is not trusted either: its answer must be a value of the protocol's response type.
        const problem = op.output ? op.output(reply) : undefined;
        if (problem) {
          this.host.violation({ ...byRequester(req), kind: 'egress_response', detail: `the response of ${e.plan.destination.host} to ${msg.method} ${msg.path.slice(0, 200)}: ${problem}`, notify: false });
          finish({ ok: false, error: `egress ${e.plan.name}: the response was refused: ${problem}`, kind: 'denied' });
          return;
        }
        const json = JSON.stringify(reply);
        ch.counters.bytes_to_requirer += wireBytes(json);
        finish({ ok: true, body: reply, bodyJson: json });
      });
    });
    r.end(sent);
  }

  /** A requiring clone's port went away: its connections close. */
  dropRequester(req: Requester): void {
    for (const e of this.byChannel.values()) for (const s of e.streams.values()) if (s.req === req) s.sock.destroy();
  }

  close(): void {
    for (const e of this.byChannel.values()) {
      for (const s of e.streams.values()) s.sock.destroy();
      for (const r of e.requests) r.destroy();
    }
  }
}
