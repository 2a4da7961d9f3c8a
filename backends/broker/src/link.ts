// Links between hosts: a channel whose requiring and providing instances are
// placed on different hosts goes broker to broker over one mutually
// authenticated TLS connection per pair of hosts (spec/broker.md, "Links
// between hosts"; the security model is in spec/hosts.md).
//
// Design:
// - Every host runs a broker over its part of the plan (planPart and
//   brokerPlan of @mcl/plan: its own instances, every channel with an end
//   there, and the instances at the far ends as `remote_instances`), or over
//   the whole plan; either way it knows every port its channels join. On the requirer's host the
//   channel is marked remote (Broker.setRemoteProviders): the requester's
//   frames are checked there as on one host, and what is admitted is written
//   to a LinkStream standing for the provider, one per requester clone. On the
//   provider's host the same bytes come out of a LinkStream attached as that
//   requester clone's port (Broker.attachPort), so they are checked again by
//   the same code, on the same invariants, before any guest sees them. Answers
//   and notifications go back the same way and are checked by the
//   requirer's broker as a provider's frames. Nothing here judges a frame's
//   content: both ends use the broker's own checks.
// - The link itself only carries bytes of those streams, in frames with a
//   header (type, sequence number, channel index, clone, length). The channel
//   index is the channel's place among the channels between the two hosts,
//   sorted by id (channelsBetween of @mcl/plan), the same on both sides
//   whatever else each host's plan holds. The greeting carries the digest of
//   what both hosts must agree on (linkAgreement: those channels, their
//   schemas and where their ends run), so two parts of one plan agree and a
//   host running another plan is refused. A frame is
//   accepted only when its sequence number is the next one, its channel
//   crosses exactly these two hosts in the direction the frame says, and it
//   fits the bounds; anything else is refused and counted.
// - The host whose name sorts first dials; the other listens. Each side
//   pins the other's certificate (made for the deployment): the TLS handshake
//   fails for any other key, and the peer is identified by its certificate's
//   fingerprint, never by its address.
// - A link that drops fails what was in flight across it at once (the
//   streams close, and the broker answers each outstanding call with an
//   error); nothing is replayed, so nothing can be delivered twice. The
//   dialling side reconnects with backoff.

import { createHash, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { connect as tlsConnect, createServer as tlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { channelsBetween, instanceTargets, linkAgreement, type Plan, type PlanChannel } from '@mcl/plan';
import { LINK_MAX_PEM, type LinkStatus } from '@mcl/plan/backend';
import type { Broker } from './broker';
import type { BrokerLogEntry } from './types';

/** A host's own key and self-signed certificate for its links (PEM). */
export interface LinkIdentity {
  /** The target name of the host. */
  name: string;
  key: string;
  cert: string;
}

/** Another host of the deployment: its pinned certificate and where its link listens. */
export interface LinkPeer {
  name: string;
  cert: string;
  host: string;
  port: number;
}

export interface LinkOptions {
  self: LinkIdentity;
  peers: LinkPeer[];
  /** Where this host's link listener binds (needed when a peer's name sorts after this host's). Port 0 picks a free one. */
  listen?: { host: string; port: number };
  /** Interval of ping frames, in ms. Default 1000. */
  pingIntervalMs?: number;
  /** A link that receives nothing (not even a pong) for this long is closed. Default 3 pings' worth plus 1 s. */
  deadAfterMs?: number;
  /** First and last reconnect delays, in ms. Defaults 100 and 5000. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** How long a TLS handshake and the greeting may take, in ms. Default 5000. */
  handshakeTimeoutMs?: number;
  log?: (entry: BrokerLogEntry) => void;
}

/** Why the link refused something (counted per peer, and for the listener before a peer is known). */
export type LinkRefusal =
  /** A TLS handshake that failed: a wrong or missing certificate, plain TCP, anything that is not TLS 1.3. */
  | 'handshake'
  /** A certificate that verified but is not the one pinned for a peer that dials here. */
  | 'unknown_peer'
  /** The greeting names another host or another plan. */
  | 'greeting'
  /** A frame whose sequence number is not the next one (replayed, dropped or reordered). */
  | 'sequence'
  /** A frame for a channel that does not cross these two hosts in that direction, or of an unknown type. */
  | 'forged'
  /** A frame longer than the bound, or a stream whose unread bytes went over the bound. */
  | 'oversize'
  /** More requester clones over the link than the bound. */
  | 'streams'
  /** Bytes for a stream that is closed here (late, after the requester went away): dropped. */
  | 'stale'
  /** A frame the peer's broker refused (its `denied` notice). */
  | 'peer_denied';

/** What `status()` reports per peer; the type is the status report's (@mcl/plan/backend). */
export type { LinkStatus };

const T_HELLO = 1;
const T_TO_PROVIDER = 2;
const T_TO_REQUESTER = 3;
const T_DENIED = 4;
const T_PING = 5;
const T_PONG = 6;
const T_DETACH = 7;
const HEADER = 17;
/** Largest payload of one frame; a stream's longer writes are split (the broker's line splitter joins them). */
export const LINK_MAX_PAYLOAD = 64 * 1024;
/** Unread bytes a stream may hold on the receiving side before it is closed. */
const STREAM_READ_LIMIT = 8 * 1024 * 1024;
/** Bytes queued to a peer that does not read before the link is closed. */
const SOCKET_WRITE_LIMIT = 32 * 1024 * 1024;
/** Requester clones a link carries at once, per peer. */
const MAX_STREAMS = 4096;
const MAX_CLONE = 1 << 20;
const PROTOCOL = 1;

/**
 * Makes a host's link identity: a P-256 key and a self-signed certificate,
 * with Debian's `openssl` (Node can make keys but not certificates). Made at
 * apply time for each deployment and host; the certificate is what the other
 * hosts pin.
 */
export function makeLinkIdentity(name: string, days = 3650): LinkIdentity {
  const dir = mkdtempSync(join(tmpdir(), 'mcl-link-'));
  try {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    const cn = `mcl-link-${name}`.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 60);
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', String(days), '-subj', `/CN=${cn}`, '-keyout', key, '-out', cert],
      { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 },
    );
    return { name, key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The SHA-256 fingerprint of a PEM certificate, as node:tls reports a peer's (`AB:CD:...`). */
export function certFingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/** The host each instance is placed on (`instanceTargets` of @mcl/plan, as a record for the greeting's digest). */
export function planPlacement(plan: Plan): Record<string, string> {
  return Object.fromEntries(instanceTargets(plan));
}

/** One end of a channel's stream across the link; the broker reads and writes it as a port. */
class LinkStream extends Duplex {
  constructor(
    private readonly out: (chunk: Buffer, done: (err?: Error | null) => void) => void,
    private readonly gone: () => void,
  ) {
    super({ allowHalfOpen: false });
  }

  override _read(): void {
    // Data is pushed as it arrives from the link.
  }

  override _write(chunk: Buffer | string, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.out(typeof chunk === 'string' ? Buffer.from(chunk) : chunk, done);
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.gone();
    done(err);
  }

  /** Bytes from the link; false when the reader is so far behind that the stream was closed. */
  deliver(data: Buffer): boolean {
    if (this.readableLength + data.length > STREAM_READ_LIMIT) {
      this.destroy();
      return false;
    }
    this.push(data);
    return true;
  }
}

interface PeerRt {
  peer: LinkPeer;
  fingerprint: string;
  dials: boolean;
  socket: TLSSocket | null;
  /** The greeting went both ways. */
  up: boolean;
  greeted: boolean;
  since: number;
  seqOut: number;
  seqIn: number;
  rx: Buffer;
  status: { bytes_out: number; bytes_in: number; frames_out: number; frames_in: number; connects: number; refused: Partial<Record<LinkRefusal, number>> };
  rtts: number[];
  lastRtt: number | null;
  lastHeard: number;
  pingTimer: NodeJS.Timeout | null;
  reconnectTimer: NodeJS.Timeout | null;
  reconnectDelay: number;
  /** Requirer side: streams standing for the remote provider, by `<channel index>/<clone>`. */
  toProvider: Map<string, LinkStream>;
  /** Provider side: streams attached as the remote requester clones' ports, by `<channel index>/<clone>`. */
  asRequester: Map<string, { stream: LinkStream; ch: PlanChannel; clone: number }>;
  drainWaiters: (() => void)[];
  /** The channels between this host and the peer (channelsBetween): a frame names one by its index here. */
  list: PlanChannel[];
  index: Map<string, number>;
  /** The digest of what both hosts must agree on (linkAgreement), sent and compared in the greeting. */
  agreement: string;
  channels: string[];
}

/**
 * The links of one host's broker to the other hosts of its deployment. Start
 * it after the broker is made; it marks the broker's cross-host channels
 * remote and carries them.
 */
export class Links extends EventEmitter {
  private readonly broker: Broker;
  private readonly opts: LinkOptions;
  private readonly placement: Record<string, string>;
  private readonly peers = new Map<string, PeerRt>();
  private readonly byFingerprint = new Map<string, PeerRt>();
  /** The peer where the provider of each channel that leaves this host runs, by channel id. */
  private readonly providerPeer = new Map<string, PeerRt>();
  private server: TlsServer | null = null;
  private closed = false;
  private logWindow = 0;
  private logCount = 0;
  /** Refusals before a peer is known (handshakes that failed on the listener). */
  readonly listenerRefused: Partial<Record<LinkRefusal, number>> = {};

  constructor(broker: Broker, opts: LinkOptions) {
    super();
    this.broker = broker;
    this.opts = opts;
    const plan = broker.plan;
    this.placement = planPlacement(plan);
    const self = opts.self.name;
    for (const peer of opts.peers) {
      if (peer.name === self) continue;
      const list = channelsBetween(plan, self, peer.name);
      const rt: PeerRt = {
        peer,
        fingerprint: certFingerprint(peer.cert),
        dials: self < peer.name,
        socket: null,
        up: false,
        greeted: false,
        since: Date.now(),
        seqOut: 0,
        seqIn: 0,
        rx: Buffer.alloc(0),
        status: { bytes_out: 0, bytes_in: 0, frames_out: 0, frames_in: 0, connects: 0, refused: {} },
        rtts: [],
        lastRtt: null,
        lastHeard: 0,
        pingTimer: null,
        reconnectTimer: null,
        reconnectDelay: opts.reconnectMinMs ?? 100,
        toProvider: new Map(),
        asRequester: new Map(),
        drainWaiters: [],
        list,
        index: new Map(list.map((c, i) => [c.id, i])),
        // Both ends must carry the same channels between them, of the same types: the greeting compares this digest.
        agreement: createHash('sha256').update(linkAgreement(plan, self, peer.name)).digest('hex'),
        channels: list.map((c) => c.id),
      };
      this.peers.set(peer.name, rt);
      this.byFingerprint.set(rt.fingerprint, rt);
    }
    // The channels whose provider runs on a peer: the requester's frames go over the link.
    for (const p of this.peers.values()) for (const c of p.list) if (this.placement[c.from.instance] === self) this.providerPeer.set(c.id, p);
    const remote = [...this.providerPeer.keys()];
    broker.setRemoteProviders(remote, (channel, clone) => this.openToProvider(channel, clone));
    broker.setLinkStatus(() => this.status());
    // The links live as long as the broker they carry channels of.
    broker.once('close', () => void this.close());
  }

  /** Listens (when some peer dials here) and dials the peers this host dials. Resolves with the listening port, if any. */
  async start(): Promise<{ port: number | null }> {
    let port: number | null = null;
    if ([...this.peers.values()].some((p) => !p.dials)) {
      const l = this.opts.listen ?? { host: '127.0.0.1', port: 0 };
      port = await this.listen(l.host, l.port);
    }
    for (const p of this.peers.values()) if (p.dials) this.dial(p);
    return { port };
  }

  /** The state of the link to every peer. */
  status(): LinkStatus[] {
    return [...this.peers.values()]
      .map((p) => {
        const sorted = [...p.rtts].sort((a, b) => a - b);
        const q = (f: number) => (sorted.length ? round(sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))]) : null);
        return {
          peer: p.peer.name,
          address: p.dials ? `${p.peer.host}:${p.peer.port}` : '(listening)',
          state: p.up ? ('up' as const) : ('down' as const),
          since: p.since,
          ...p.status,
          refused: { ...p.status.refused },
          latency_ms: p.lastRtt === null ? null : round(p.lastRtt),
          latency_p50_ms: q(0.5),
          latency_p99_ms: q(0.99),
          channels: [...p.channels].sort(),
        };
      })
      .sort((a, b) => a.peer.localeCompare(b.peer));
  }

  /** Resolves once the link to `peer` is up (or rejects after `timeoutMs`). */
  whenUp(peer: string, timeoutMs = 10_000): Promise<void> {
    const p = this.peers.get(peer);
    if (!p) return Promise.reject(new Error(`no link to ${peer}`));
    if (p.up) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.off('up', on);
        reject(new Error(`the link to ${peer} did not come up within ${timeoutMs} ms`));
      }, timeoutMs);
      const on = (name: string) => {
        if (name !== peer) return;
        clearTimeout(t);
        this.off('up', on);
        resolve();
      };
      this.on('up', on);
    });
  }

  /** Closes the link to `peer` now (it is redialled as after any drop); for tests and operators. */
  drop(peer: string): void {
    this.peers.get(peer)?.socket?.destroy();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.peers.values()) {
      if (p.reconnectTimer) clearTimeout(p.reconnectTimer);
      p.reconnectTimer = null;
      p.socket?.destroy();
      this.down(p, 'the link was closed');
    }
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // -------------------------------------------------------------------------
  // Connections

  private tlsBase() {
    return { key: this.opts.self.key, cert: this.opts.self.cert, minVersion: 'TLSv1.3' as const, maxVersion: 'TLSv1.3' as const };
  }

  private listen(host: string, port: number): Promise<number> {
    const dialers = [...this.peers.values()].filter((p) => !p.dials);
    const server = tlsServer({
      ...this.tlsBase(),
      // Only the pinned certificates of the peers that dial here can complete a handshake.
      ca: dialers.map((p) => p.peer.cert),
      requestCert: true,
      rejectUnauthorized: true,
      handshakeTimeout: this.opts.handshakeTimeoutMs ?? 5000,
    });
    // A few handshakes at once per peer are plenty; more are someone else's.
    server.maxConnections = dialers.length * 4 + 8;
    server.on('tlsClientError', (err) => {
      this.listenerRefused.handshake = (this.listenerRefused.handshake ?? 0) + 1;
      this.log('warn', `link: refused a connection whose TLS handshake failed: ${err.message.slice(0, 200)}`);
    });
    server.on('secureConnection', (sock: TLSSocket) => {
      const fp = sock.getPeerCertificate()?.fingerprint256;
      const p = fp ? this.byFingerprint.get(fp) : undefined;
      if (!p || p.dials || this.closed) {
        this.listenerRefused.unknown_peer = (this.listenerRefused.unknown_peer ?? 0) + 1;
        this.log('warn', `link: refused a connection with a certificate pinned for no peer that dials this host (${fp ?? 'none'})`);
        sock.destroy();
        return;
      }
      // A new connection from the peer replaces the old one (it noticed the drop first): what was in
      // flight on the old one fails now, as on any drop.
      const old = p.socket;
      if (old) {
        p.socket = null;
        old.destroy();
        this.down(p, 'the peer connected again');
      }
      this.useSocket(p, sock);
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const a = server.address();
        resolve(typeof a === 'object' && a ? a.port : port);
      });
    });
  }

  private dial(p: PeerRt): void {
    if (this.closed || p.socket || p.reconnectTimer) return;
    const sock = tlsConnect({
      ...this.tlsBase(),
      host: p.peer.host,
      port: p.peer.port,
      ca: [p.peer.cert],
      servername: undefined,
      // The peer is its pinned certificate, whatever name or address it answers on.
      checkServerIdentity: (_host, cert) => (cert.fingerprint256 === p.fingerprint ? undefined : new Error(`the certificate of ${p.peer.name} is not the pinned one`)),
    });
    const timer = setTimeout(() => sock.destroy(new Error('handshake timed out')), this.opts.handshakeTimeoutMs ?? 5000);
    timer.unref?.();
    p.socket = sock;
    let secure = false;
    sock.once('secureConnect', () => {
      clearTimeout(timer);
      secure = true;
      if (sock.getPeerCertificate()?.fingerprint256 !== p.fingerprint) {
        this.refuse(p, 'unknown_peer', 'the peer presented a certificate that is not the pinned one');
        sock.destroy();
        return;
      }
      this.useSocket(p, sock);
    });
    sock.on('error', (err) => {
      if (!secure && !this.closed) {
        if (/certificate|handshake|alert|verify|self.signed/i.test(err.message)) this.refuse(p, 'handshake', `TLS handshake with ${p.peer.name} failed: ${err.message}`);
        this.log('debug', `link to ${p.peer.name}: ${err.message}`);
      }
    });
    sock.once('close', () => {
      clearTimeout(timer);
      if (!secure && p.socket === sock) {
        p.socket = null;
        this.scheduleDial(p);
      }
    });
  }

  private scheduleDial(p: PeerRt): void {
    if (this.closed || !p.dials || p.reconnectTimer) return;
    const delay = p.reconnectDelay;
    p.reconnectDelay = Math.min(this.opts.reconnectMaxMs ?? 5000, delay * 2);
    // Jitter keeps many links that dropped together from redialling in step.
    p.reconnectTimer = setTimeout(() => {
      p.reconnectTimer = null;
      this.dial(p);
    }, delay * (0.75 + Math.random() * 0.5));
    p.reconnectTimer.unref?.();
  }

  private useSocket(p: PeerRt, sock: TLSSocket): void {
    p.socket = sock;
    p.seqIn = 0;
    p.seqOut = 0;
    p.rx = Buffer.alloc(0);
    p.greeted = false;
    p.lastHeard = performance.now();
    const greetTimer = setTimeout(() => {
      if (!p.up && p.socket === sock) {
        this.refuse(p, 'greeting', `${p.peer.name} did not greet within the handshake timeout`);
        sock.destroy();
      }
    }, this.opts.handshakeTimeoutMs ?? 5000);
    greetTimer.unref?.();
    sock.on('data', (chunk: Buffer) => {
      if (p.socket !== sock) return;
      p.status.bytes_in += chunk.length;
      p.lastHeard = performance.now();
      this.receive(p, sock, chunk);
    });
    sock.on('drain', () => {
      for (const w of p.drainWaiters.splice(0)) w();
    });
    sock.on('error', (err) => this.log('debug', `link to ${p.peer.name}: ${err.message}`));
    sock.once('close', () => {
      clearTimeout(greetTimer);
      if (p.socket !== sock) return;
      p.socket = null;
      this.down(p, 'the connection closed');
      this.scheduleDial(p);
    });
    this.send(p, T_HELLO, 0, 0, Buffer.from(JSON.stringify({ protocol: PROTOCOL, name: this.opts.self.name, to: p.peer.name, plan: p.agreement })));
  }

  private down(p: PeerRt, why: string): void {
    if (p.pingTimer) clearInterval(p.pingTimer);
    p.pingTimer = null;
    for (const w of p.drainWaiters.splice(0)) w();
    const wasUp = p.up;
    p.up = false;
    if (wasUp) {
      p.since = Date.now();
      this.log('warn', `link to ${p.peer.name} is down: ${why}; calls in flight across it failed`);
      this.emit('down', p.peer.name);
    }
    // What was in flight fails now: the requirer side's streams close (the broker answers their calls with an
    // error), and the provider side forgets the remote requesters (their late answers are dropped).
    for (const s of [...p.toProvider.values()]) s.destroy();
    p.toProvider.clear();
    for (const [key, r] of [...p.asRequester]) {
      p.asRequester.delete(key);
      this.broker.detachPort(r.ch.from.instance, r.clone, r.ch.from.port);
      r.stream.destroy();
    }
  }

  private up(p: PeerRt): void {
    p.up = true;
    p.since = Date.now();
    p.status.connects++;
    p.reconnectDelay = this.opts.reconnectMinMs ?? 100;
    const every = this.opts.pingIntervalMs ?? 1000;
    const dead = this.opts.deadAfterMs ?? every * 3 + 1000;
    p.pingTimer = setInterval(() => {
      if (performance.now() - p.lastHeard > dead) {
        this.log('warn', `link to ${p.peer.name}: nothing heard for ${dead} ms`);
        p.socket?.destroy();
        return;
      }
      const b = Buffer.alloc(8);
      b.writeDoubleBE(performance.now());
      this.send(p, T_PING, 0, 0, b);
    }, every);
    p.pingTimer.unref?.();
    this.log('info', `link to ${p.peer.name} is up`);
    this.emit('up', p.peer.name);
    this.broker.openRemoteRequesters();
  }

  // -------------------------------------------------------------------------
  // Frames

  private send(p: PeerRt, type: number, channel: number, clone: number, payload: Buffer, done?: () => void): boolean {
    const sock = p.socket;
    if (!sock || sock.destroyed) return false;
    if (sock.writableLength > SOCKET_WRITE_LIMIT) {
      this.log('warn', `link to ${p.peer.name}: the peer reads nothing while ${sock.writableLength} bytes wait for it; closing the link`);
      sock.destroy();
      return false;
    }
    const h = Buffer.allocUnsafe(HEADER);
    h.writeUInt8(type, 0);
    h.writeUInt32BE(++p.seqOut >>> 0, 1);
    h.writeUInt32BE(channel, 5);
    h.writeUInt32BE(clone, 9);
    h.writeUInt32BE(payload.length, 13);
    const frame = Buffer.concat([h, payload]);
    p.status.bytes_out += frame.length;
    p.status.frames_out++;
    const ok = sock.write(frame);
    if (done) {
      if (ok) done();
      else p.drainWaiters.push(done);
    }
    return true;
  }

  private receive(p: PeerRt, sock: TLSSocket, chunk: Buffer): void {
    p.rx = p.rx.length ? Buffer.concat([p.rx, chunk]) : chunk;
    while (p.rx.length >= HEADER && p.socket === sock) {
      const type = p.rx.readUInt8(0);
      const seq = p.rx.readUInt32BE(1);
      const channel = p.rx.readUInt32BE(5);
      const clone = p.rx.readUInt32BE(9);
      const len = p.rx.readUInt32BE(13);
      if (len > LINK_MAX_PAYLOAD) {
        this.refuse(p, 'oversize', `a frame of ${len} bytes (at most ${LINK_MAX_PAYLOAD}); closing the link`);
        sock.destroy();
        return;
      }
      if (p.rx.length < HEADER + len) return;
      const payload = p.rx.subarray(HEADER, HEADER + len);
      p.rx = p.rx.subarray(HEADER + len);
      p.status.frames_in++;
      if (seq !== ((p.seqIn + 1) >>> 0)) {
        // TLS already refuses replayed or altered records; a wrong number here means the peer itself
        // sent a frame twice or skipped one, and the stream can no longer be trusted to be in order.
        this.refuse(p, 'sequence', `frame number ${seq} where ${p.seqIn + 1} was due; closing the link`);
        sock.destroy();
        return;
      }
      p.seqIn = seq;
      this.frame(p, sock, type, channel, clone, Buffer.from(payload));
    }
  }

  private frame(p: PeerRt, sock: TLSSocket, type: number, chIndex: number, clone: number, payload: Buffer): void {
    if (!p.greeted) {
      if (type !== T_HELLO) {
        this.refuse(p, 'greeting', `a frame of type ${type} before the greeting; closing the link`);
        sock.destroy();
        return;
      }
      let hello: { protocol?: unknown; name?: unknown; to?: unknown; plan?: unknown };
      try {
        hello = JSON.parse(payload.toString('utf8')) as typeof hello;
      } catch {
        hello = {};
      }
      if (hello.protocol !== PROTOCOL || hello.name !== p.peer.name || hello.to !== this.opts.self.name || hello.plan !== p.agreement) {
        const why =
          hello.plan !== p.agreement ? `it runs another plan or placement` : `it greets as ${JSON.stringify(hello.name)} to ${JSON.stringify(hello.to)} (protocol ${String(hello.protocol)})`;
        this.refuse(p, 'greeting', `the greeting of ${p.peer.name} does not match: ${why}; closing the link`);
        sock.destroy();
        return;
      }
      p.greeted = true;
      this.up(p);
      return;
    }
    switch (type) {
      case T_PING:
        this.send(p, T_PONG, 0, 0, payload);
        return;
      case T_PONG: {
        if (payload.length !== 8) return;
        const rtt = performance.now() - payload.readDoubleBE(0);
        if (!(rtt >= 0 && rtt < 600_000)) return;
        p.lastRtt = rtt;
        p.rtts.push(rtt);
        if (p.rtts.length > 64) p.rtts.shift();
        return;
      }
      case T_DENIED:
        this.refuse(p, 'peer_denied', `the broker of ${p.peer.name} refused a frame: ${payload.toString('utf8').slice(0, 300)}`);
        return;
      case T_TO_PROVIDER:
      case T_DETACH: {
        const ch = this.crossing(p, chIndex, clone, false);
        if (!ch) return;
        const key = `${chIndex}/${clone}`;
        if (type === T_DETACH) {
          const r = p.asRequester.get(key);
          if (r) {
            p.asRequester.delete(key);
            this.broker.detachPort(ch.from.instance, clone, ch.from.port);
          }
          return;
        }
        const r = p.asRequester.get(key) ?? this.attachRequester(p, ch, chIndex, clone);
        if (r && payload.length > 0 && !r.stream.deliver(payload)) this.refuse(p, 'oversize', `the broker here is more than ${STREAM_READ_LIMIT} bytes behind on ${ch.id} from ${ch.from.instance}[${clone}]; that stream was closed`);
        return;
      }
      case T_TO_REQUESTER: {
        const ch = this.crossing(p, chIndex, clone, true);
        if (!ch) return;
        const s = p.toProvider.get(`${chIndex}/${clone}`);
        if (!s) {
          p.status.refused.stale = (p.status.refused.stale ?? 0) + 1;
          return;
        }
        if (!s.deliver(payload)) this.refuse(p, 'oversize', `the broker here is more than ${STREAM_READ_LIMIT} bytes behind on ${ch.id}; that stream was closed`);
        return;
      }
      default:
        this.refuse(p, 'forged', `a frame of unknown type ${type}`);
    }
  }

  /**
   * The channel a data frame names, when it crosses exactly this host and the
   * peer in the frame's direction (`toRequester`: the requirer is here);
   * anything else is refused as forged.
   */
  private crossing(p: PeerRt, chIndex: number, clone: number, toRequester: boolean): PlanChannel | null {
    const ch = p.list[chIndex];
    const self = this.opts.self.name;
    const ok =
      ch !== undefined &&
      clone < MAX_CLONE &&
      (toRequester
        ? this.placement[ch.from.instance] === self && this.placement[ch.to.instance] === p.peer.name
        : this.placement[ch.to.instance] === self && this.placement[ch.from.instance] === p.peer.name);
    if (!ok) {
      const what = ch ? `channel ${ch.id}` : `channel number ${chIndex}`;
      this.refuse(p, 'forged', `${p.peer.name} sent a frame for ${what} (clone ${clone}) ${toRequester ? 'to a requester' : 'to a provider'} here, which is not a channel from ${toRequester ? `this host to ${p.peer.name}` : `${p.peer.name} to this host`}`);
      return null;
    }
    return ch;
  }

  /** Provider side: attaches a stream as the port of a requester clone on the peer. */
  private attachRequester(p: PeerRt, ch: PlanChannel, chIndex: number, clone: number): { stream: LinkStream; ch: PlanChannel; clone: number } | null {
    if (p.asRequester.size >= MAX_STREAMS) {
      this.refuse(p, 'streams', `${p.peer.name} opened more than ${MAX_STREAMS} requester streams`);
      return null;
    }
    const key = `${chIndex}/${clone}`;
    let entry: { stream: LinkStream; ch: PlanChannel; clone: number } | null = null;
    const stream = new LinkStream(
      (chunk, done) => this.fromProviderSide(p, chIndex, clone, chunk, done),
      () => {
        if (p.asRequester.get(key) === entry) p.asRequester.delete(key);
      },
    );
    entry = { stream, ch, clone };
    p.asRequester.set(key, entry);
    void this.broker.attachPort(ch.from.instance, clone, ch.from.port, stream);
    return entry;
  }

  /** Requirer side: the stream standing for the remote provider of `channel` for one requester clone. */
  private openToProvider(channel: string, clone: number): Duplex | string {
    const p = this.providerPeer.get(channel);
    const chIndex = p?.index.get(channel);
    const ch = chIndex === undefined ? undefined : p?.list[chIndex];
    if (!ch || !p || chIndex === undefined) return `no link carries ${channel}`;
    if (!p.up) return `the link to ${p.peer.name}, where ${ch.to.instance} runs, is down`;
    const key = `${chIndex}/${clone}`;
    p.toProvider.get(key)?.destroy();
    const stream: LinkStream = new LinkStream(
      (chunk, done) => this.fromRequirerSide(p, chIndex, clone, chunk, done),
      () => {
        if (p.toProvider.get(key) !== stream) return;
        p.toProvider.delete(key);
        // The requester clone went away: the other host forgets it (its session, its order state).
        if (p.up) this.send(p, T_DETACH, chIndex, clone, Buffer.alloc(0));
      },
    );
    p.toProvider.set(key, stream);
    // An empty frame announces the requester clone: the other host attaches it now.
    this.send(p, T_TO_PROVIDER, chIndex, clone, Buffer.alloc(0));
    return stream;
  }

  /**
   * What the requirer's broker writes towards the provider: frames it admitted, and `denied`
   * notices about the provider's answers, which are told to the other host rather than
   * fed to its broker as if a requester had sent them.
   */
  private fromRequirerSide(p: PeerRt, chIndex: number, clone: number, chunk: Buffer, done: (err?: Error | null) => void): void {
    this.sendData(p, T_TO_PROVIDER, chIndex, clone, chunk, done, (line) => {
      this.send(p, T_DENIED, chIndex, clone, Buffer.from(line));
      return null;
    });
  }

  /**
   * What the provider's broker writes towards a remote requester: answers and notifications,
   * and `denied` notices for its frames. A denial that names a call becomes that call's
   * error, so the requester's broker (which accepts only answers from a provider) still gives
   * the caller exactly one answer; one without an id is only reported.
   */
  private fromProviderSide(p: PeerRt, chIndex: number, clone: number, chunk: Buffer, done: (err?: Error | null) => void): void {
    this.sendData(p, T_TO_REQUESTER, chIndex, clone, chunk, done, (line) => {
      let f: { id?: unknown; kind?: unknown; reason?: unknown };
      try {
        f = JSON.parse(line) as typeof f;
      } catch {
        return null;
      }
      if (f.id === undefined) {
        this.send(p, T_DENIED, chIndex, clone, Buffer.from(line));
        return null;
      }
      const error = `refused by the broker of ${this.opts.self.name}: ${String(f.kind)}: ${String(f.reason)}`;
      return `{"t":"error","id":${JSON.stringify(f.id)},"error":${JSON.stringify(error)}}`;
    });
  }

  private sendData(p: PeerRt, type: number, chIndex: number, clone: number, chunk: Buffer, done: (err?: Error | null) => void, denied: (line: string) => string | null): void {
    if (!p.up) {
      done(new Error(`the link to ${p.peer.name} is down`));
      return;
    }
    let data = chunk;
    // The broker writes `denied` notices with `t` first; only a chunk that holds one is taken apart.
    if (chunk.includes('{"t":"denied"')) {
      const kept: string[] = [];
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        if (line.startsWith('{"t":"denied"')) {
          const instead = denied(line);
          if (instead !== null) kept.push(instead);
        } else kept.push(line);
      }
      data = Buffer.from(kept.length ? kept.join('\n') + '\n' : '');
    }
    let off = 0;
    while (off < data.length) {
      const part = data.subarray(off, off + LINK_MAX_PAYLOAD);
      off += part.length;
      const last = off >= data.length;
      if (!this.send(p, type, chIndex, clone, part, last ? () => done() : undefined)) {
        done(new Error(`the link to ${p.peer.name} is down`));
        return;
      }
    }
    if (data.length === 0) done();
  }

  private refuse(p: PeerRt, kind: LinkRefusal, detail: string): void {
    p.status.refused[kind] = (p.status.refused[kind] ?? 0) + 1;
    this.emit('refused', { peer: p.peer.name, kind, detail });
    // A peer that floods refusals costs at most 10 log lines a second; the counters keep the rest.
    const now = Date.now();
    if (now - this.logWindow >= 1000) {
      this.logWindow = now;
      this.logCount = 0;
    }
    if (this.logCount++ < 10) this.log('warn', `link to ${p.peer.name}: refused (${kind}): ${detail}`);
  }

  private log(level: BrokerLogEntry['level'], message: string): void {
    this.opts.log?.({ level, message });
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** The name of a deployment's link configuration in its run directory (spec/hosts.md, "Links between hosts"). */
export const LINK_CONFIG_FILE = 'link.json';

/**
 * Checks a link configuration read from disk (`link.json`: this host's identity,
 * the peers with their pinned certificates and addresses, where to listen).
 * Nothing on disk is trusted: every field is checked, and the first fault is
 * returned as a sentence.
 */
export function parseLinkConfig(value: unknown): Pick<LinkOptions, 'self' | 'peers' | 'listen'> | string {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const str = (v: unknown, max: number) => typeof v === 'string' && v.length > 0 && v.length <= max;
  const port = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 65535;
  const pem = (v: unknown, what: string): string | null => {
    if (!str(v, LINK_MAX_PEM)) return `${what} is not a PEM text`;
    try {
      if (what.endsWith('certificate')) certFingerprint(v as string);
    } catch {
      return `${what} is not a certificate`;
    }
    return null;
  };
  if (!isObj(value)) return 'the link configuration is not a JSON object';
  const self = value.self;
  if (!isObj(self) || !str(self.name, 128)) return '`self.name` is missing';
  const e = pem(self.key, '`self.key`') ?? pem(self.cert, '`self.cert`, this host\'s certificate');
  if (e) return e;
  if (!Array.isArray(value.peers) || value.peers.length === 0 || value.peers.length > 256) return '`peers` must list 1 to 256 hosts';
  const peers: LinkPeer[] = [];
  for (const [i, p] of value.peers.entries()) {
    if (!isObj(p) || !str(p.name, 128)) return `peers[${i}].name is missing`;
    const pe = pem(p.cert, `peers[${i}].cert, the certificate`);
    if (pe) return pe;
    if (typeof p.host !== 'string' || p.host.length > 255 || !port(p.port)) return `peers[${i}] needs a host and a port (0..65535)`;
    peers.push({ name: p.name as string, cert: p.cert as string, host: p.host, port: p.port as number });
  }
  let listen: LinkOptions['listen'];
  if (value.listen !== undefined) {
    const l = value.listen;
    if (!isObj(l) || !str(l.host, 255) || !port(l.port)) return '`listen` needs a host and a port (0..65535)';
    listen = { host: l.host as string, port: l.port as number };
  }
  return { self: { name: self.name as string, key: self.key as string, cert: self.cert as string }, peers, ...(listen ? { listen } : {}) };
}
