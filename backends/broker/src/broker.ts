// The channel broker: relays line-JSON frames between the ports a plan wires
// together and refuses every frame that breaks a channel's invariants.
//
// Design:
// - One PortConn per attached (instance, clone, port). It owns the stream, a
//   bounded line splitter, and for a provide port the table of calls forwarded
//   to it (broker-assigned ids, so requesters never see each other's ids).
// - One ChannelRt per plan channel and per exposure: compiled operations,
//   token bucket, outstanding calls in deadline order (a channel has one
//   timeout, so insertion order is deadline order and one timer per channel
//   suffices), counters.
// - A Requester is whatever sends calls on a channel: a guest's require port,
//   a TCP client of a line-JSON exposure, or an HTTP connection. A call's
//   answer goes back through `respond`, so routing a reply never depends on
//   the kind of requester.
// - Nothing is shared between channels but the event loop: a refused frame is
//   dropped after cheap checks, and backpressure pauses only the socket that
//   sends to a full destination.
// - Whether a frame is admitted is decided by the pure functions of admit.ts;
//   this module reads and writes the sockets, routes, and records what they
//   refuse (`violation`, one record per refusal).

import { DEFAULT_EXPOSURE_HOST } from './ports';
import { EventEmitter } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createConnection, createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ChannelInvariants, Plan, PlanChannel, PlanExposure, PlanInstance, PlanOperation, PlanPort } from '@mcl/plan';
import { compileSchemas, type CompiledSchemas } from './schema';
import { admitNotify, admitReply, admitRequest, incompleteOrder, refuseFromProvider, refuseNotifySize, type Budget, type ChannelRules, type OpRt } from './admit';
import { encode, envelope, frameId, prefixBody, snippet } from './frames';
import { LineSplitter, TokenBucket } from './lines';
import { ConnectionTable, DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from './connections';
import { Counters } from './counters';
import {
  exposureId,
  HTTP_MAX_BODY,
  HTTP_SCHEMAS,
  isHttpProtocol,
  readBody,
  toRequestMessage,
  writeBrokerError,
  writeResponseMessage,
} from './http';
import type {
  BrokerLogEntry,
  BrokerOptions,
  ChannelCounters,
  ExposureInfo,
  PortStatus,
  PortTarget,
  Violation,
  ViolationKind,
} from './types';

/** Bytes a frame line may hold beyond `max_message_bytes` for its envelope (`t`, `op`, `id`). */
export const ENVELOPE_ALLOWANCE = 1024;
/** Line limit on a port that has no channel: everything on it is refused anyway. */
const UNWIRED_LINE_LIMIT = 64 * 1024;
/** Above this many bytes queued to a destination, the sending socket is paused until the destination drains. */
const HIGH_WATER = 256 * 1024;
/** Above this many bytes queued to a peer, notices to it (denied, notify) are dropped rather than queued. */
const DROP_WATER = 4 * 1024 * 1024;
/**
 * Each sender's violation budget: a token bucket of PENALTY_BURST violations refilled at
 * PENALTY_PER_SECOND. At the first violation over it the sender's socket is paused for
 * PENALTY_PAUSE_MS and no further line of what it already sent is looked at meanwhile.
 */
const PENALTY_BURST = 64;
const PENALTY_PER_SECOND = 640;
const PENALTY_PAUSE_MS = 50;
/** How long an HTTP request (head and body) may take to arrive, at least; the head alone has the shorter header timeout. */
const REQUEST_TIMEOUT_MS = 60_000;
/** Longest violation detail kept and sent back in a `denied` frame. */
const MAX_DETAIL = 400;

export const DEFAULT_INVARIANTS: ChannelInvariants = {
  max_message_bytes: 1024 * 1024,
  rate: null,
  timeout_ms: 30_000,
  max_inflight: 64,
  order: null,
};

/** A call forwarded to a provider and not yet answered. */
interface Pending {
  /** The id the provider sees. */
  pid: number;
  channel: ChannelRt;
  op: OpRt;
  provider: PortConn;
  requester: Requester;
  deadline: number;
  sentAt: number;
  respond: (answer: Answer) => void;
}

/** A socket whose lines the broker reads, with its violation budget. */
interface Sender {
  budget: TokenBucket;
  splitter: LineSplitter;
  /** Paused for breaking the rules too often. */
  penalised: boolean;
  /** Destinations this sender waits on to drain (backpressure). */
  waitingOn: number;
}

type Answer = { ok: true; body: unknown; bodyJson: string } | { ok: false; error: string; kind: 'error' | 'timeout' | 'unavailable' | 'denied' };

/** A channel or exposure at run time; its rules are what the decisions (admit.ts) read. */
interface ChannelRt extends ChannelRules {
  id: string;
  plan: PlanChannel | null;
  exposure: PlanExposure | null;
  provider: InstanceRt;
  providerPort: string;
  /** The requiring instance, or null for an exposure. */
  requirer: InstanceRt | null;
  /** Budgets by clone of the requiring side (exposures: one, under clone 0). */
  budgets: Map<number, Budget>;
  pending: Set<Pending>;
  timer: NodeJS.Timeout | null;
  counters: Counters;
  requesters: Set<Requester>;
  lineLimit: number;
}

interface Session {
  id: number;
  instance: InstanceRt;
  clone: number | null;
  opening: Promise<number | null> | null;
  /** Actions waiting for the session's clone. */
  waiters: ((clone: number | null) => void)[];
  closed: boolean;
  /** Whether onSessionClose must be called (the hook gave this session its clone). */
  owned: boolean;
  /** The requester the session was opened for. */
  requester: Requester;
}

/** Whatever sends calls and sends on a channel. */
interface Requester {
  name: string;
  clone: number;
  port: string;
  channel: ChannelRt;
  /** This requester's clone's share of the channel's rate and max_inflight. */
  budget: Budget;
  /** Its own calls outstanding (an exposure connection with some is busy: never shed or closed as idle). */
  outstanding: number;
  session: Session | null;
  orderState: number;
  /** Whether a frame moved the order automaton since it was last reset (a session that sent nothing ordered is not checked when it ends). */
  orderMoved: boolean;
  alive: boolean;
  /** Writes a frame line to the requester (stream requesters only). */
  write: ((line: string, droppable: boolean) => boolean) | null;
  /** The socket to pause when the destination is full. */
  pausable: Duplex | null;
  /** Whether the session is the whole connection (exposures) rather than opened by frames. */
  connectionSession: boolean;
}

interface InstanceRt {
  plan: PlanInstance;
  ports: Map<string, PlanPort>;
  clones: Map<number, Map<string, PortConn>>;
  rr: number;
  sessions: Set<Session>;
  /** Clones bound to a session: not used for other traffic. */
  sessionClones: Set<number>;
}

/**
 * One refused frame (or a session that ended out of order), as the places
 * that find it describe it: who sent it, on which channel, what was wrong,
 * and whom to tell.
 */
interface Offence {
  /** The sender: its instance (`tcp:<port>` for a client of an exposure), clone and port. */
  instance: string;
  clone: number;
  port: string;
  /** The channel or exposure it was refused on; null when the port has none. */
  channel: ChannelRt | null;
  kind: ViolationKind;
  detail: string;
  /** The refused frame's id, echoed in the `denied` notice. */
  id?: number | string | null;
  /** The requester that sent it: it gets the notice and is slowed down. */
  requester?: Requester;
  /** Else the port that sent it. */
  conn?: PortConn | null;
  /** False when no frame was refused (a session ended out of order): nothing is sent and nobody slowed down. */
  notify?: boolean;
}

/** The sender of an offence by a requester (through its port `conn`, if a guest's). */
function byRequester(req: Requester, conn: PortConn | null = null): Pick<Offence, 'instance' | 'clone' | 'port' | 'channel' | 'requester' | 'conn'> {
  return { instance: req.name, clone: req.clone, port: req.port, channel: req.channel, requester: req, conn };
}

/** The sender of an offence by a port, refused on `channel`. */
function byPort(conn: PortConn, channel: ChannelRt | null): Pick<Offence, 'instance' | 'clone' | 'port' | 'channel' | 'conn'> {
  return { instance: conn.instance.plan.id, clone: conn.clone, port: conn.port.name, channel, conn };
}

class PortConn {
  stream: Duplex | null = null;
  attached = true;
  splitter: LineSplitter;
  reconnectTimer: NodeJS.Timeout | null = null;
  reconnectDelay: number;
  /** Provide port: calls forwarded to it, by provider id. */
  pending = new Map<number, Pending>();
  /** Provide port: ids recently failed by timeout, so a late reply is not taken for an attack. */
  expired = new Set<number>();
  nextId = 1;
  /** Require port: the requester this port is. */
  requester: Requester | null = null;
  /** Sockets paused because this port's stream is full. */
  pausedSources = new Set<Duplex>();
  connectWaiters: (() => void)[] = [];

  constructor(
    readonly instance: InstanceRt,
    readonly clone: number,
    readonly port: PlanPort,
    /** Provide port: its channels (and exposure); require port: its channel, if wired. */
    readonly channels: ChannelRt[],
    readonly target: PortTarget,
    lineLimit: number,
    onLine: (conn: PortConn, line: string, bytes: number) => void,
    onOversize: (conn: PortConn, bytes: number) => void,
    baseDelay: number,
  ) {
    this.reconnectDelay = baseDelay;
    this.splitter = new LineSplitter(lineLimit, {
      line: (text, bytes) => onLine(this, text, bytes),
      oversize: (bytes) => onOversize(this, bytes),
    });
  }

  get key(): string {
    return `${this.instance.plan.id}[${this.clone}].${this.port.name}`;
  }
}

/**
 * The broker of one deployment.
 *
 * Socket roles: for a `string` target the VM side listens (QEMU
 * `-chardev socket,path=P,server=on,wait=off`) and the broker connects, and
 * reconnects with backoff while the port stays attached. A `Duplex` target is
 * used as it is and not reconnected.
 */
export class Broker extends EventEmitter {
  readonly plan: Plan;
  private readonly opts: BrokerOptions;
  private readonly schemas: CompiledSchemas;
  private readonly instances = new Map<string, InstanceRt>();
  private readonly channels = new Map<string, ChannelRt>();
  /** Channels by `<instance>.<port>` of their requiring end. */
  private readonly byRequirePort = new Map<string, ChannelRt>();
  /** Channels (and exposures) by `<instance>.<port>` of their providing end. */
  private readonly byProvidePort = new Map<string, ChannelRt[]>();
  private readonly exposureChannels = new Map<number, ChannelRt>();
  /** Counters of violations on ports with no channel, by `<instance>.<port>`. */
  private readonly portCounters = new Map<string, Counters>();
  private readonly recent: Violation[] = [];
  private recentStart = 0;
  private readonly logBudget = new Map<string, { windowStart: number; count: number; suppressed: number }>();
  private readonly servers: (HttpServer | TcpServer)[] = [];
  private readonly tcpSockets = new Set<Socket>();
  /** Each exposure's connections, by exposure id. */
  private readonly connTables = new Map<string, ConnectionTable>();
  private readonly limits: ConnectionLimits;
  private sweepTimer: NodeJS.Timeout | null = null;
  private nextSession = 1;
  private closed = false;
  private batching = false;
  private listening: Promise<ExposureInfo[]> | null = null;
  /** The exposures listening, by planned host port. */
  private readonly openExposures = new Map<number, ExposureInfo>();
  private readonly senders = new WeakMap<Duplex, Sender>();
  private readonly corked: Duplex[] = [];

  constructor(plan: Plan, options: BrokerOptions = {}) {
    super();
    this.plan = plan;
    this.opts = options;
    this.limits = { ...DEFAULT_CONNECTION_LIMITS, ...options.exposureLimits };
    // The HTTP schemas are a fallback for plans that do not carry them; the plan's own win.
    this.schemas = compileSchemas({ ...HTTP_SCHEMAS, ...plan.schemas });
    for (const p of this.schemas.problems) this.log({ level: 'error', message: `schema: ${p}` });

    for (const inst of plan.instances) {
      this.instances.set(inst.id, {
        plan: inst,
        ports: new Map(inst.ports.map((p) => [p.name, p])),
        clones: new Map(),
        rr: 0,
        sessions: new Set(),
        sessionClones: new Set(),
      });
    }
    for (const ch of plan.channels) {
      const provider = this.instances.get(ch.to.instance);
      const requirer = this.instances.get(ch.from.instance);
      if (!provider || !requirer) {
        this.log({ level: 'error', message: `channel ${ch.id} names an instance that is not in the plan; it carries nothing`, channel: ch.id });
        continue;
      }
      const rt = this.makeChannel(ch.id, ch, null, provider, ch.to.port, requirer, ch.ops, ch.invariants);
      this.channels.set(ch.id, rt);
      this.byRequirePort.set(`${ch.from.instance}.${ch.from.port}`, rt);
      pushMap(this.byProvidePort, `${ch.to.instance}.${ch.to.port}`, rt);
    }
    for (const ex of plan.exposures) {
      const provider = this.instances.get(ex.instance);
      if (!provider) {
        this.log({ level: 'error', message: `exposure on ${ex.host_port} names instance ${ex.instance}, which is not in the plan` });
        continue;
      }
      const ops = this.exposureOps(ex);
      const id = exposureId(ex);
      const rt = this.makeChannel(id, null, ex, provider, ex.port, null, ops, exposureInvariants(ex));
      this.channels.set(id, rt);
      this.exposureChannels.set(ex.host_port, rt);
      pushMap(this.byProvidePort, `${ex.instance}.${ex.port}`, rt);
    }
  }

  // -------------------------------------------------------------------------
  // Public API

  /**
   * Attaches the host end of one data port of one clone.
   *
   * Frames from the port are checked against its channel (a port with no
   * channel in the plan has every frame refused). Call it again for the same
   * (instance, clone, port) to replace the target. Resolves true once the
   * stream is connected, false if the port is detached (or the broker closed)
   * before that. Throws when the instance or port is not in the plan.
   */
  attachPort(instanceId: string, cloneIndex: number, portName: string, target: PortTarget): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    const inst = this.instances.get(instanceId);
    if (!inst) throw new Error(`attachPort: instance ${JSON.stringify(instanceId)} is not in the plan`);
    const port = inst.ports.get(portName);
    if (!port) {
      const known = [...inst.ports.keys()].join(', ') || 'none';
      throw new Error(`attachPort: instance ${instanceId} has no port ${JSON.stringify(portName)} (ports: ${known})`);
    }
    this.detachPort(instanceId, cloneIndex, portName);
    const key = `${instanceId}.${portName}`;
    let channels: ChannelRt[];
    let lineLimit: number;
    if (port.direction === 'require') {
      const ch = this.byRequirePort.get(key);
      channels = ch ? [ch] : [];
      lineLimit = ch ? ch.lineLimit : UNWIRED_LINE_LIMIT;
    } else {
      channels = this.byProvidePort.get(key) ?? [];
      lineLimit = channels.length ? Math.max(...channels.map((c) => c.lineLimit)) : UNWIRED_LINE_LIMIT;
    }
    const conn = new PortConn(
      inst,
      cloneIndex,
      port,
      channels,
      target,
      lineLimit,
      (c, line, bytes) => this.guard(`frame from ${c.key}`, () => this.onLine(c, line, bytes)),
      (c, bytes) => this.onOversize(c, bytes),
      this.opts.reconnectDelayMs ?? 50,
    );
    if (port.direction === 'require' && channels.length === 1) {
      conn.requester = {
        name: instanceId,
        clone: cloneIndex,
        port: portName,
        channel: channels[0],
        budget: this.budget(channels[0], cloneIndex),
        outstanding: 0,
        session: null,
        orderState: 0,
        orderMoved: false,
        alive: true,
        write: (line, droppable) => this.writeTo(conn, line, droppable),
        pausable: null,
        connectionSession: false,
      };
      channels[0].requesters.add(conn.requester);
    }
    let clone = inst.clones.get(cloneIndex);
    if (!clone) {
      clone = new Map();
      inst.clones.set(cloneIndex, clone);
    }
    clone.set(portName, conn);
    const connected = new Promise<boolean>((resolve) => {
      conn.connectWaiters.push(() => resolve(conn.attached && conn.stream !== null));
    });
    if (isDialled(target)) this.connect(conn);
    else this.useStream(conn, target as Duplex);
    return connected;
  }

  /** Detaches one port of one clone: its stream is closed and calls waiting on it fail. */
  detachPort(instanceId: string, cloneIndex: number, portName: string): void {
    const inst = this.instances.get(instanceId);
    const conn = inst?.clones.get(cloneIndex)?.get(portName);
    if (!inst || !conn) return;
    if (conn.requester) this.endOrder(conn.requester, 'the port was detached');
    inst.clones.get(cloneIndex)!.delete(portName);
    if (inst.clones.get(cloneIndex)!.size === 0) inst.clones.delete(cloneIndex);
    conn.attached = false;
    if (conn.reconnectTimer) clearTimeout(conn.reconnectTimer);
    conn.reconnectTimer = null;
    const stream = conn.stream;
    this.dropStream(conn, 'the port was detached');
    stream?.destroy();
    for (const w of conn.connectWaiters.splice(0)) w();
    if (conn.requester) {
      conn.requester.alive = false;
      conn.requester.channel.requesters.delete(conn.requester);
      // Calls still outstanding keep their budget object; a clone attached again starts afresh.
      conn.requester.channel.budgets.delete(cloneIndex);
      if (conn.requester.session) this.endSession(conn.requester.session);
    }
  }

  /**
   * Detaches every port of a clone (it died, or was replaced or disposed).
   * Calls it was serving fail at once with an error to their requesters; a
   * session bound to it ends (onSessionClose is called for it).
   */
  detachClone(instanceId: string, cloneIndex: number): void {
    const inst = this.instances.get(instanceId);
    const clone = inst?.clones.get(cloneIndex);
    if (!inst) return;
    if (clone) for (const port of [...clone.keys()]) this.detachPort(instanceId, cloneIndex, port);
    for (const s of [...inst.sessions]) {
      if (s.clone !== cloneIndex) continue;
      // A session that owns its clone ends with it. A sticky session (a
      // connection or requester spread over replicas) only forgets the clone
      // and picks another on its next call: a replaced or restarted clone
      // must not strand a kept-alive HTTP connection.
      if (s.owned || s.opening) {
        if (s.requester.session === s) this.endOrder(s.requester, `its clone ${instanceId}[${cloneIndex}] went away`);
        this.endSession(s);
      } else s.clone = null;
    }
  }

  /** Clone indexes with at least one port attached. */
  clones(instanceId: string): number[] {
    return [...(this.instances.get(instanceId)?.clones.keys() ?? [])].sort((a, b) => a - b);
  }

  /** Every attached port, with whether its stream is connected. */
  ports(): PortStatus[] {
    const out: PortStatus[] = [];
    for (const inst of this.instances.values()) {
      for (const [clone, ports] of inst.clones) {
        for (const conn of ports.values()) {
          let pending = conn.pending.size;
          if (conn.requester) for (const c of conn.requester.channel.pending) if (c.requester === conn.requester) pending++;
          out.push({ instance: inst.plan.id, clone, port: conn.port.name, connected: conn.stream !== null, pending });
        }
      }
    }
    return out.sort((a, b) => (a.instance + a.port).localeCompare(b.instance + b.port) || a.clone - b.clone);
  }

  /**
   * Opens a host TCP listener for every exposure of the plan (127.0.0.1 unless
   * `exposureHost` says otherwise). A port whose protocol is std.http.Http
   * speaks HTTP/1.1; any other speaks line-JSON frames, one session per TCP
   * connection. Rejects if a port cannot be bound: the listeners already
   * opened stay open (close() closes them), and calling again retries only the
   * exposures that are not listening yet (the port may have been freed since).
   */
  listenExposures(): Promise<ExposureInfo[]> {
    // Listening twice would bind every port twice: a second call gets the first one's result,
    // unless that one failed.
    this.listening ??= this.listenAll().catch((e: unknown) => {
      this.listening = null;
      throw e;
    });
    return this.listening;
  }

  private async listenAll(): Promise<ExposureInfo[]> {
    const host = this.opts.exposureHost ?? DEFAULT_EXPOSURE_HOST;
    for (const ex of this.plan.exposures) {
      const ch = this.exposureChannels.get(ex.host_port);
      if (!ch || this.openExposures.has(ex.host_port)) continue;
      if (this.closed) throw new Error(`cannot listen for exposure ${ch.id}: the broker is closed`);
      const http = isHttpProtocol(ex.protocol);
      // Each connection holds a requester (and maybe a session): the table bounds how many one exposure keeps.
      const table = this.connectionTable(ch, http);
      const server = http ? this.httpServer(ch, table) : this.frameServer(ch, table);
      const want = this.opts.mapHostPort ? this.opts.mapHostPort(ex.host_port) : ex.host_port;
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(want, host, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } catch (e) {
        // The server never listened; nothing to close. A later call tries this port again.
        throw new Error(`cannot listen on ${host}:${want} for exposure ${ch.id}: ${(e as Error).message}`);
      }
      if (this.closed) {
        // close() ran while this port was being bound and could not see the server.
        server.close();
        throw new Error(`cannot listen for exposure ${ch.id}: the broker is closed`);
      }
      this.servers.push(server);
      const addr = server.address();
      const bound = typeof addr === 'object' && addr ? addr.port : want;
      this.log({ level: 'info', message: `exposure ${ch.id} listening on ${host}:${bound} (${http ? 'http' : 'frames'})`, channel: ch.id });
      this.openExposures.set(ex.host_port, { id: ch.id, host_port: ex.host_port, bound_port: bound, address: host, instance: ex.instance, port: ex.port, mode: http ? 'http' : 'frames' });
    }
    return this.plan.exposures.flatMap((ex) => this.openExposures.get(ex.host_port) ?? []);
  }

  /** Counters of every channel and exposure (sorted by id), then of unwired ports (`port:<instance>.<port>`). */
  counters(): ChannelCounters[] {
    const out = [...this.channels.values()]
      .map((c) => {
        const k = c.counters.snapshot(c.id);
        const table = this.connTables.get(c.id);
        if (table) k.connections = table.stats();
        return k;
      })
      .sort((a, b) => a.channel.localeCompare(b.channel));
    const ports = [...this.portCounters.entries()].sort((a, b) => a[0].localeCompare(b[0]));
    for (const [k, c] of ports) out.push(c.snapshot(`port:${k}`));
    return out;
  }

  /** The most recent violations, oldest first. */
  violations(): Violation[] {
    return [...this.recent.slice(this.recentStart), ...this.recent.slice(0, this.recentStart)];
  }

  /** Closes every stream and listener and fails outstanding calls. Sessions still open are ended (onSessionClose is called). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    const waits = this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const s of this.tcpSockets) s.destroy();
    for (const s of this.servers) if ('closeAllConnections' in s) (s as HttpServer).closeAllConnections();
    for (const inst of this.instances.values()) {
      for (const clone of [...inst.clones.keys()]) this.detachClone(inst.plan.id, clone);
      for (const s of [...inst.sessions]) this.endSession(s);
    }
    for (const ch of this.channels.values()) {
      if (ch.timer) clearTimeout(ch.timer);
      ch.timer = null;
    }
    await Promise.all(waits);
  }

  // -------------------------------------------------------------------------
  // Setup helpers

  private makeChannel(
    id: string,
    plan: PlanChannel | null,
    exposure: PlanExposure | null,
    provider: InstanceRt,
    providerPort: string,
    requirer: InstanceRt | null,
    ops: PlanOperation[],
    inv: ChannelInvariants,
  ): ChannelRt {
    const opMap = new Map<string, OpRt>();
    for (const op of ops) {
      opMap.set(op.name, {
        name: op.name,
        kind: op.kind,
        input: this.schemas.get(op.input),
        output: op.kind === 'call' && op.output ? this.schemas.get(op.output) : null,
        json: JSON.stringify(op.name),
      });
    }
    return {
      id,
      plan,
      exposure,
      provider,
      providerPort,
      requirer,
      ops: opMap,
      inv,
      provides: `${provider.plan.id}.${providerPort}`,
      budgets: new Map(),
      order: inv.order,
      pending: new Set(),
      timer: null,
      counters: new Counters(),
      requesters: new Set(),
      lineLimit: inv.max_message_bytes + ENVELOPE_ALLOWANCE,
    };
  }

  /** The budget of one clone of a channel's requiring side. */
  private budget(ch: ChannelRt, clone: number): Budget {
    let b = ch.budgets.get(clone);
    if (!b) {
      const rate = ch.inv.rate;
      b = { bucket: rate ? new TokenBucket(rate.per_second, Math.max(1, rate.burst)) : null, inflight: 0 };
      ch.budgets.set(clone, b);
    }
    return b;
  }

  /**
   * The operations of an exposed port: the plan's (every operation of the
   * protocol, with its schemas and order in the exposure's invariants). A plan
   * that does not carry them (from an mclc before exposures did) gets every
   * frame refused, and says so, rather than a guess that would check less.
   */
  private exposureOps(ex: PlanExposure): PlanOperation[] {
    if (Array.isArray(ex.ops) && ex.invariants) return ex.ops;
    this.log({
      level: 'warn',
      message: `exposure ${exposureId(ex)}: the plan does not carry the operations and invariants of protocol ${ex.protocol}, so every request on it is refused`,
    });
    return [];
  }

  // -------------------------------------------------------------------------
  // Streams

  private connect(conn: PortConn): void {
    if (!conn.attached || this.closed) return;
    const target = conn.target as string | { host: string; port: number; connectTimeoutMs?: number };
    const sock = typeof target === 'string' ? createConnection(target) : createConnection({ host: target.host, port: target.port });
    let opened = false;
    const dialTimer =
      typeof target === 'string' ? null : setTimeout(() => sock.destroy(new Error('connect timed out')), target.connectTimeoutMs ?? 5000);
    dialTimer?.unref?.();
    sock.once('connect', () => {
      opened = true;
      if (dialTimer) clearTimeout(dialTimer);
      if (!conn.attached || this.closed) {
        sock.destroy();
        return;
      }
      conn.reconnectDelay = this.opts.reconnectDelayMs ?? 50;
      this.useStream(conn, sock);
    });
    sock.on('error', () => {
      // Connection refused or reset: the close handler below retries.
    });
    sock.once('close', () => {
      if (dialTimer) clearTimeout(dialTimer);
      if (!opened) this.scheduleReconnect(conn);
    });
  }

  private scheduleReconnect(conn: PortConn): void {
    if (!conn.attached || this.closed || conn.reconnectTimer) return;
    const delay = conn.reconnectDelay;
    conn.reconnectDelay = Math.min(2000, delay * 2);
    conn.reconnectTimer = setTimeout(() => {
      conn.reconnectTimer = null;
      this.connect(conn);
    }, delay);
    conn.reconnectTimer.unref?.();
  }

  private useStream(conn: PortConn, stream: Duplex): void {
    conn.stream = stream;
    conn.splitter.reset();
    this.addSender(stream, conn.splitter);
    if (conn.requester) {
      conn.requester.pausable = stream;
      // A new connection is a new session (the old one was checked when its stream closed).
      this.endOrder(conn.requester, 'the port reconnected');
    }
    stream.on('data', (chunk: Buffer | string) => {
      if (conn.stream !== stream) return;
      this.batch(() => conn.splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
    });
    stream.on('drain', () => this.releaseSources(conn));
    stream.on('error', () => {
      // Reported through close.
    });
    stream.once('close', () => {
      if (conn.stream !== stream) return;
      if (conn.requester) this.endOrder(conn.requester, 'the port disconnected');
      this.dropStream(conn, 'the port disconnected');
      this.emit('disconnected', { instance: conn.instance.plan.id, clone: conn.clone, port: conn.port.name });
      if (isDialled(conn.target)) this.scheduleReconnect(conn);
    });
    this.emit('connected', { instance: conn.instance.plan.id, clone: conn.clone, port: conn.port.name });
    this.log({ level: 'debug', message: `port ${conn.key} connected`, instance: conn.instance.plan.id, clone: conn.clone, port: conn.port.name });
    for (const w of conn.connectWaiters.splice(0)) w();
  }

  /** Forgets a port's stream; calls it was serving fail now rather than at their timeout. */
  private dropStream(conn: PortConn, why: string): void {
    conn.stream = null;
    conn.splitter.reset();
    this.releaseSources(conn);
    for (const p of [...conn.pending.values()]) {
      this.settle(p);
      p.channel.counters.errors++;
      p.respond({ ok: false, error: `the provider ${conn.instance.plan.id} went away (${why})`, kind: 'unavailable' });
    }
    conn.pending.clear();
  }

  /**
   * Runs `fn` (the processing of one received chunk) with the streams it writes
   * to corked, so that the frames of one chunk leave in one write per destination
   * rather than one system call per frame.
   */
  private batch(fn: () => void): void {
    if (this.batching) {
      fn();
      return;
    }
    this.batching = true;
    try {
      fn();
    } finally {
      this.batching = false;
      const corked = this.corked;
      for (let i = 0; i < corked.length; i++) corked[i].uncork();
      corked.length = 0;
    }
  }

  /** Writes through `s`, corking it for the rest of the current batch. */
  private write(s: Duplex, line: string): void {
    if (this.batching && s.writableCorked === 0) {
      s.cork();
      this.corked.push(s);
    }
    s.write(line);
  }

  /** Writes a line to a port; false when it was dropped (no stream, or a droppable notice to a full peer). */
  private writeTo(conn: PortConn, line: string, droppable: boolean): boolean {
    const s = conn.stream;
    if (!s || s.destroyed) return false;
    if (droppable && s.writableLength > DROP_WATER) return false;
    this.write(s, line);
    return true;
  }

  /** Pauses `source` until `dest` drains, when `dest` holds too much. */
  private backpressure(dest: PortConn, source: Duplex | null): void {
    if (!source || !dest.stream) return;
    if (dest.stream.writableLength > HIGH_WATER && !dest.pausedSources.has(source)) {
      source.pause();
      dest.pausedSources.add(source);
      const sender = this.senders.get(source);
      if (sender) sender.waitingOn++;
    }
  }

  /** `dest` drained or went away: the sockets that waited on it read again, unless they wait on more or are penalised. */
  private releaseSources(dest: PortConn): void {
    for (const s of dest.pausedSources) {
      const sender = this.senders.get(s);
      if (!sender) {
        s.resume();
        continue;
      }
      sender.waitingOn = Math.max(0, sender.waitingOn - 1);
      if (sender.waitingOn === 0 && !sender.penalised) s.resume();
    }
    dest.pausedSources.clear();
  }

  /** Registers a socket whose lines are checked, so that its violations are budgeted. */
  private addSender(stream: Duplex, splitter: LineSplitter): void {
    this.senders.set(stream, { budget: new TokenBucket(PENALTY_PER_SECOND, PENALTY_BURST), splitter, penalised: false, waitingOn: 0 });
  }

  // -------------------------------------------------------------------------
  // Frames from guests

  private onOversize(conn: PortConn, bytes: number): void {
    const ch = conn.channels.length === 1 ? conn.channels[0] : null;
    this.violation({ ...byPort(conn, ch), kind: 'oversize', detail: `a line of more than ${conn.splitter.limit} bytes (${bytes} seen); the rest of the line is discarded` });
  }

  private onLine(conn: PortConn, line: string, bytes: number): void {
    const inst = conn.instance.plan.id;
    let frame: unknown;
    try {
      frame = JSON.parse(line);
    } catch {
      const ch = conn.channels.length === 1 ? conn.channels[0] : null;
      // A provider's broken reply usually still names the call it answers: fail that call now
      // rather than leave its requester waiting for the timeout.
      const m = conn.port.direction === 'provide' ? /"id":\s*(\d+)/.exec(line) : null;
      const p = m ? conn.pending.get(Number(m[1])) : undefined;
      this.violation({ ...byPort(conn, p ? p.channel : ch), kind: 'malformed', detail: `not JSON: ${snippet(line)}`, id: p ? p.pid : null });
      if (p) {
        this.settle(p);
        p.channel.counters.errors++;
        p.respond({ ok: false, error: `the provider's reply to ${p.op.name} was refused: it is not JSON`, kind: 'denied' });
      }
      return;
    }
    if (conn.port.direction === 'require') {
      const req = conn.requester;
      if (!req) {
        this.violation({ ...byPort(conn, null), kind: 'unwired', detail: `port ${conn.port.name} of ${inst} has no channel in the plan: nothing it sends is delivered`, id: frameId(frame) });
        return;
      }
      this.fromRequester(req, frame, conn);
    } else {
      this.fromProvider(conn, frame, bytes);
    }
  }

  /** A frame from a requiring side (a guest's require port or a line-JSON exposure client). */
  private fromRequester(req: Requester, frame: unknown, conn: PortConn | null): void {
    const ch = req.channel;
    const env = envelope(frame);
    if (typeof env === 'string') {
      this.violation({ ...byRequester(req, conn), kind: 'malformed', detail: env, id: frameId(frame) });
      return;
    }
    const { t } = env;
    if (t === 'open' || t === 'close') {
      this.sessionFrame(req, t, env.id);
      return;
    }
    const a = admitRequest(ch, req.budget, req.orderState, env);
    if (!a.ok) {
      this.violation({ ...byRequester(req, conn), kind: a.kind, detail: a.detail, id: env.id });
      return;
    }
    const { op, bodyJson } = a;
    if (a.orderState !== null) {
      req.orderState = a.orderState;
      req.orderMoved = true;
    }
    if (t === 'call') {
      const origId = env.id!;
      const reqRef = req;
      this.forwardCall(req, op, bodyJson, (answer) => {
        if (!reqRef.alive || !reqRef.write) return;
        if (reqRef.write(answerFrame(origId, answer), false)) ch.counters.frames_to_requirer++;
      });
    } else {
      this.forwardSend(req, op, bodyJson);
    }
  }

  /**
   * The requester's session ends (a close or open frame, its connection or
   * port went away, its session's clone went away): the order automaton goes
   * back to state 0, and a session that stops in a state that is not
   * accepting is counted as an `order_incomplete` violation of the channel.
   * Nothing is sent to the requester (no frame of its was refused). A session
   * that moved the automaton by no frame is not checked, so an idle port that
   * reconnects is never reported; neither are sessions ended by close() (the
   * deployment is going away or being rewired).
   */
  private endOrder(req: Requester, why: string): void {
    const state = req.orderState;
    const moved = req.orderMoved;
    req.orderState = 0;
    req.orderMoved = false;
    const order = req.channel.order;
    if (!order || !moved || this.closed) return;
    const detail = incompleteOrder(order, state, why);
    if (detail !== null) this.violation({ ...byRequester(req), kind: 'order_incomplete', detail, notify: false });
  }

  /** Explicit session frames: `{"t":"open"}` and `{"t":"close"}`. */
  private sessionFrame(req: Requester, t: 'open' | 'close', id: number | string | undefined): void {
    const idPart = id === undefined ? '' : `,"id":${JSON.stringify(id)}`;
    if (t === 'close') {
      this.endOrder(req, 'closed by a close frame');
      if (req.session) this.endSession(req.session);
      req.session = null;
      req.write?.(`{"t":"closed"${idPart}}\n`, true);
      return;
    }
    this.endOrder(req, 'a new session was opened');
    if (req.session) this.endSession(req.session);
    const s = this.openSession(req, 'open frame');
    if (!s) return;
    this.whenSession(s, () => {
      // A sticky session without a clone yet is fine (its calls pick one); a refused or failed one is not.
      if (s.closed) req.write?.(`{"t":"error"${idPart},"error":"no clone of ${req.channel.provider.plan.id} could be given to this session"}\n`, true);
      else req.write?.(`{"t":"opened"${idPart},"session":${s.id}}\n`, true);
    });
  }

  /** A frame from a provide port. */
  private fromProvider(conn: PortConn, frame: unknown, bytes: number): void {
    const inst = conn.instance.plan.id;
    const env = envelope(frame);
    const only = conn.channels.length === 1 ? conn.channels[0] : null;
    if (typeof env === 'string') {
      this.violation({ ...byPort(conn, only), kind: 'malformed', detail: env, id: frameId(frame) });
      return;
    }
    if (conn.channels.length === 0) {
      this.violation({ ...byPort(conn, null), kind: 'unwired', detail: `port ${conn.port.name} of ${inst} has no channel in the plan: nothing it sends is delivered`, id: env.id });
      return;
    }
    const { t } = env;
    const wrongWay = refuseFromProvider(env, conn.port.name);
    if (wrongWay) {
      this.violation({ ...byPort(conn, only), kind: wrongWay.kind, detail: wrongWay.detail, id: env.id });
      return;
    }
    if (t === 'notify') {
      this.notify(conn, env.op!, env.body);
      return;
    }
    // reply or error
    const pid = typeof env.id === 'number' ? env.id : NaN;
    const p = conn.pending.get(pid);
    if (!p) {
      if (conn.expired.has(pid)) {
        conn.expired.delete(pid);
        if (only) only.counters.late_replies++;
        else for (const c of conn.channels) { c.counters.late_replies++; break; }
        return;
      }
      this.violation({ ...byPort(conn, only), kind: 'unsolicited', detail: `${t} with id ${JSON.stringify(env.id)} answers no outstanding call`, id: env.id });
      return;
    }
    const ch = p.channel;
    if (t === 'error') {
      this.settle(p);
      ch.counters.errors++;
      ch.counters.latency(performance.now() - p.sentAt);
      p.respond({ ok: false, error: env.error!, kind: 'error' });
      return;
    }
    const a = admitReply(p.op, ch.inv, env.body);
    if (!a.ok) {
      this.settle(p);
      this.violation({ ...byPort(conn, ch), kind: a.kind, detail: a.detail, id: env.id });
      ch.counters.errors++;
      p.respond({ ok: false, error: a.error, kind: 'denied' });
      return;
    }
    const { bodyJson } = a;
    this.settle(p);
    ch.counters.replies++;
    ch.counters.latency(performance.now() - p.sentAt);
    ch.counters.bytes_to_requirer += bytes + 1;
    p.respond({ ok: true, body: env.body, bodyJson });
  }

  /** A notify from a provider goes to the requesters of every channel on that port that carries it. */
  private notify(conn: PortConn, opName: string, body: unknown): void {
    const inst = conn.instance.plan.id;
    let carried = false;
    let bodyJson: string | null = null;
    for (const ch of conn.channels) {
      const a = admitNotify(ch, opName, body);
      if (a === 'absent') continue;
      if (!a.ok) {
        this.violation({ ...byPort(conn, ch), kind: a.kind, detail: a.detail });
        return;
      }
      const { op } = a;
      carried = true;
      if (bodyJson === null) bodyJson = encode(body);
      if (bodyJson === null) return;
      const big = refuseNotifySize(ch.inv, bodyJson);
      if (big) {
        this.violation({ ...byPort(conn, ch), kind: big.kind, detail: big.detail });
        continue;
      }
      const line = `{"t":"notify","op":${op.json},"body":${bodyJson}}\n`;
      const perSession = ch.provider.plan.mode === 'per_session';
      for (const r of ch.requesters) {
        if (!r.alive || !r.write) continue;
        // A session-bound clone speaks only to its session; other providers speak to every requester.
        if (perSession && r.session?.clone !== conn.clone) continue;
        if (ch.provider.sessionClones.has(conn.clone) && r.session?.clone !== conn.clone) continue;
        if (r.write(line, true)) {
          ch.counters.frames_to_requirer++;
          ch.counters.bytes_to_requirer += line.length;
        }
      }
    }
    if (!carried) {
      const only = conn.channels.length === 1 ? conn.channels[0] : null;
      this.violation({ ...byPort(conn, only), kind: 'unknown_op', detail: `notify ${JSON.stringify(opName)} is not carried by any channel of this port` });
    }
  }

  // -------------------------------------------------------------------------
  // Routing

  /** Sends a checked call to a provider clone; `respond` gets exactly one answer. */
  private forwardCall(req: Requester, op: OpRt, bodyJson: string, respond: (a: Answer) => void): void {
    const ch = req.channel;
    ch.counters.calls++;
    this.withProvider(req, (conn, reason) => {
      if (!conn) {
        ch.counters.errors++;
        respond({ ok: false, error: reason, kind: 'unavailable' });
        return;
      }
      const pid = conn.nextId++;
      const now = performance.now();
      const p: Pending = { pid, channel: ch, op, provider: conn, requester: req, deadline: now + ch.inv.timeout_ms, sentAt: now, respond };
      const line = `{"t":"call","op":${op.json},"id":${pid},"body":${bodyJson}}\n`;
      if (!this.writeTo(conn, line, false)) {
        ch.counters.errors++;
        respond({ ok: false, error: `the provider ${conn.instance.plan.id} is not connected`, kind: 'unavailable' });
        return;
      }
      conn.pending.set(pid, p);
      ch.pending.add(p);
      req.budget.inflight++;
      req.outstanding++;
      if (!ch.timer) this.armTimer(ch);
      ch.counters.frames_to_provider++;
      ch.counters.bytes_to_provider += line.length;
      this.backpressure(conn, req.pausable);
    });
  }

  private forwardSend(req: Requester, op: OpRt, bodyJson: string): void {
    const ch = req.channel;
    this.withProvider(req, (conn, reason) => {
      if (!conn) {
        this.log({ level: 'debug', message: `send ${op.name} on ${ch.id} dropped: ${reason}`, channel: ch.id });
        return;
      }
      const line = `{"t":"send","op":${op.json},"body":${bodyJson}}\n`;
      if (this.writeTo(conn, line, false)) {
        ch.counters.frames_to_provider++;
        ch.counters.bytes_to_provider += line.length;
        this.backpressure(conn, req.pausable);
      }
    });
  }

  /**
   * Finds the provider port for a requester's next frame: its session's clone,
   * else (per_session providers) a new session, else round-robin over the
   * connected clones not bound to a session. Calls `use` synchronously when no
   * session has to be opened.
   */
  private withProvider(req: Requester, use: (conn: PortConn | null, reason: string) => void): void {
    const ch = req.channel;
    const inst = ch.provider;
    const perSession = inst.plan.mode === 'per_session' && this.opts.onSessionOpen !== undefined;
    // A guest's session that ended (its clone died, or max_sessions refused it) gives way to a new one;
    // an exposure connection's session is the connection, so it stays ended.
    if (req.session?.closed && !req.session.opening && !req.connectionSession) req.session = null;
    if (!req.session && perSession) this.openSession(req, 'first call');
    const s = req.session;
    if (s) {
      if (s.clone === null && s.opening) {
        // Frames wait, in order, for the session's clone; as many as calls may be in flight.
        if (s.waiters.length >= ch.inv.max_inflight) {
          use(null, `${s.waiters.length} frames are already waiting for the session's clone of ${inst.plan.id}`);
          return;
        }
        this.whenSession(s, () => this.useSessionClone(req, s, use));
        return;
      }
      this.useSessionClone(req, s, use);
      return;
    }
    use(...this.pickClone(inst, ch.providerPort));
  }

  private useSessionClone(req: Requester, s: Session, use: (conn: PortConn | null, reason: string) => void): void {
    const inst = req.channel.provider;
    if (s.closed) {
      use(null, `no clone of ${inst.plan.id} is available for this session`);
      return;
    }
    const conn = s.clone === null ? undefined : inst.clones.get(s.clone)?.get(req.channel.providerPort);
    if (conn?.stream) {
      use(conn, '');
      return;
    }
    if (s.owned) {
      use(null, `the session's clone ${inst.plan.id}[${s.clone}] is gone`);
      return;
    }
    // A sticky session (not given its own clone) picks again when it has none or its clone went away.
    const [c, why] = this.pickClone(inst, req.channel.providerPort);
    if (c) s.clone = c.clone;
    use(c, why);
  }

  private pickClone(inst: InstanceRt, port: string): [PortConn | null, string] {
    const candidates: PortConn[] = [];
    for (const [idx, ports] of inst.clones) {
      if (inst.sessionClones.has(idx)) continue;
      const c = ports.get(port);
      if (c && c.stream) candidates.push(c);
    }
    if (candidates.length === 0) return [null, `no clone of ${inst.plan.id} is attached and connected on port ${port}`];
    if (candidates.length === 1) return [candidates[0], ''];
    candidates.sort((a, b) => a.clone - b.clone);
    const c = candidates[inst.rr % candidates.length];
    inst.rr = (inst.rr + 1) % 1_000_000_007;
    return [c, ''];
  }

  // -------------------------------------------------------------------------
  // Sessions

  /**
   * Starts a session for a requester. For per_session providers with a hook
   * the hook gives the session its own clone; otherwise the session sticks to
   * a clone picked now (replicas) and re-picks if that clone goes away.
   */
  private openSession(req: Requester, via: string): Session | null {
    const inst = req.channel.provider;
    const s: Session = { id: this.nextSession++, instance: inst, clone: null, opening: null, waiters: [], closed: false, owned: false, requester: req };
    const hook = this.opts.onSessionOpen;
    if (inst.plan.mode === 'per_session' && hook) {
      const max = inst.plan.max_sessions;
      const live = [...inst.sessions].filter((x) => !x.closed).length;
      if (max !== undefined && live >= max) {
        this.violation({ ...byRequester(req), kind: 'sessions', detail: `${inst.plan.id} already has ${live} sessions, its max_sessions` });
        s.closed = true;
        req.session = s;
        return s;
      }
      inst.sessions.add(s);
      req.session = s;
      s.opening = (async () => {
        let idx: number;
        try {
          idx = await hook(inst.plan.id);
        } catch (e) {
          this.log({ level: 'error', message: `session for ${inst.plan.id} refused: ${(e as Error).message}`, instance: inst.plan.id });
          return null;
        }
        s.owned = true;
        s.clone = idx;
        inst.sessionClones.add(idx);
        if (s.closed) return idx; // The requester left while the clone was being made; released below.
        const ok = await this.waitConnected(inst, idx, req.channel.providerPort, this.opts.sessionConnectTimeoutMs ?? 30_000);
        if (!ok) this.log({ level: 'warn', message: `session clone ${inst.plan.id}[${idx}] did not connect port ${req.channel.providerPort} in time`, instance: inst.plan.id, clone: idx });
        this.emit('session-open', { instance: inst.plan.id, clone: idx, session: s.id, via });
        this.log({ level: 'info', message: `session ${s.id} of ${inst.plan.id} opened on clone ${idx} (${via})`, instance: inst.plan.id, clone: idx });
        return idx;
      })();
      void s.opening.then((idx) => {
        s.opening = null;
        if (idx === null) s.closed = true;
        // The requester may have left while the clone was being made or connected: give the clone back.
        if (s.closed) this.releaseSession(s);
        for (const w of s.waiters.splice(0)) w(s.closed ? null : idx);
      });
      return s;
    }
    // Sticky session over replicas or a single instance.
    const [conn] = this.pickClone(inst, req.channel.providerPort);
    s.clone = conn ? conn.clone : null;
    inst.sessions.add(s);
    req.session = s;
    return s;
  }

  private whenSession(s: Session, fn: (clone: number | null) => void): void {
    if (s.opening) s.waiters.push(fn);
    else fn(s.closed ? null : s.clone);
  }

  private endSession(s: Session): void {
    if (s.closed && !s.opening) {
      s.instance.sessions.delete(s);
      return;
    }
    s.closed = true;
    if (s.opening) return; // Released when the hook resolves.
    this.releaseSession(s);
  }

  private releaseSession(s: Session): void {
    const inst = s.instance;
    inst.sessions.delete(s);
    if (!s.owned || s.clone === null) return;
    const idx = s.clone;
    s.owned = false;
    inst.sessionClones.delete(idx);
    // Fail what is still outstanding on that clone: its answers would have nowhere to go.
    const ports = inst.clones.get(idx);
    if (ports) for (const conn of ports.values()) this.failPending(conn, 'the session ended');
    this.emit('session-close', { instance: inst.plan.id, clone: idx, session: s.id });
    this.log({ level: 'info', message: `session ${s.id} of ${inst.plan.id} on clone ${idx} closed`, instance: inst.plan.id, clone: idx });
    const hook = this.opts.onSessionClose;
    if (hook) {
      Promise.resolve()
        .then(() => hook(inst.plan.id, idx))
        .catch((e) => this.log({ level: 'error', message: `onSessionClose(${inst.plan.id}, ${idx}) failed: ${(e as Error).message}`, instance: inst.plan.id, clone: idx }));
    }
  }

  private failPending(conn: PortConn, why: string): void {
    for (const p of [...conn.pending.values()]) {
      this.settle(p);
      p.channel.counters.errors++;
      p.respond({ ok: false, error: why, kind: 'unavailable' });
    }
  }

  private waitConnected(inst: InstanceRt, clone: number, port: string, ms: number): Promise<boolean> {
    const conn = inst.clones.get(clone)?.get(port);
    if (conn?.stream) return Promise.resolve(true);
    return new Promise((resolve) => {
      const onConnected = (e: { instance: string; clone: number; port: string }) => {
        if (e.instance === inst.plan.id && e.clone === clone && e.port === port) done(true);
      };
      const timer = setTimeout(() => done(false), ms);
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.off('connected', onConnected);
        resolve(ok);
      };
      this.on('connected', onConnected);
    });
  }

  // -------------------------------------------------------------------------
  // Timeouts

  /** Removes a call from the outstanding tables (it was answered, failed or timed out). */
  private settle(p: Pending): void {
    p.provider.pending.delete(p.pid);
    if (p.channel.pending.delete(p)) {
      p.requester.budget.inflight--;
      p.requester.outstanding--;
    }
  }

  private armTimer(ch: ChannelRt): void {
    const first = ch.pending.values().next();
    if (first.done) return;
    const wait = Math.max(0, first.value.deadline - performance.now());
    ch.timer = setTimeout(() => this.expire(ch), wait + 1);
    ch.timer.unref?.();
  }

  private expire(ch: ChannelRt): void {
    ch.timer = null;
    const now = performance.now();
    for (const p of ch.pending) {
      if (p.deadline > now) break;
      this.settle(p);
      ch.counters.timeouts++;
      ch.counters.errors++;
      const exp = p.provider.expired;
      exp.add(p.pid);
      if (exp.size > 4096) exp.delete(exp.values().next().value as number);
      p.respond({ ok: false, error: `timeout: ${p.op.name} got no reply within ${ch.inv.timeout_ms} ms`, kind: 'timeout' });
    }
    if (ch.pending.size > 0) this.armTimer(ch);
  }

  // -------------------------------------------------------------------------
  // Exposures

  private newTcpRequester(ch: ChannelRt, sock: Socket, name: string): Requester {
    return {
      name,
      clone: 0,
      port: ch.providerPort,
      channel: ch,
      budget: this.budget(ch, 0),
      outstanding: 0,
      session: null,
      orderState: 0,
      orderMoved: false,
      alive: true,
      write: (line, droppable) => {
        if (sock.destroyed) return false;
        if (droppable && sock.writableLength > DROP_WATER) return false;
        this.write(sock, line);
        return true;
      },
      pausable: sock,
      connectionSession: true,
    };
  }

  /**
   * The connection table of an exposure, and the timer that closes the
   * exposures' idle and half-sent connections (one for the broker, started
   * with the first exposure).
   */
  private connectionTable(ch: ChannelRt, http: boolean): ConnectionTable {
    let table = this.connTables.get(ch.id);
    if (table) return table;
    let lastLog = -Infinity;
    let unlogged = 0;
    table = new ConnectionTable(this.limits, http, (what, peer, why) => {
      // A flood of connections must not become a flood of log lines: one a second, with a count of the rest.
      const now = performance.now();
      if (now - lastLog < 1000) {
        unlogged++;
        return;
      }
      const more = unlogged > 0 ? ` (and ${unlogged} more connections shed, refused or timed out in the last second)` : '';
      lastLog = now;
      unlogged = 0;
      const verb = what === 'shed' ? 'shed a connection of' : what === 'refused' ? 'refused a connection from' : 'closed a connection of';
      this.log({ level: what === 'timed_out' ? 'info' : 'warn', message: `exposure ${ch.id}: ${verb} ${peer}: ${why}${more}`, channel: ch.id });
    });
    this.connTables.set(ch.id, table);
    if (!this.sweepTimer) {
      this.sweepTimer = setInterval(() => {
        for (const t of this.connTables.values()) t.sweep();
      }, this.sweepEvery());
      this.sweepTimer.unref?.();
    }
    return table;
  }

  /** How often timeouts of connections are looked at: a quarter of the shortest, within 10 ms..1 s. */
  private sweepEvery(): number {
    const l = this.limits;
    return Math.max(10, Math.min(1000, Math.floor(Math.min(l.headerTimeoutMs, l.idleTimeoutMs) / 4)));
  }

  private frameServer(ch: ChannelRt, table: ConnectionTable): TcpServer {
    return createTcpServer((sock) => {
      let splitter: LineSplitter | null = null;
      let current: Requester | null = null;
      // Busy: a call outstanding, or frames waiting for the session's clone.
      const admitted = table.admit(sock, {
        busy: () => current !== null && (current.outstanding > 0 || (current.session !== null && current.session.opening !== null)),
        unfinishedSince: () => splitter?.unfinishedSince ?? null,
      });
      if (!admitted) return;
      this.tcpSockets.add(sock);
      const name = `tcp:${ch.exposure!.host_port}`;
      const req = this.newTcpRequester(ch, sock, name);
      current = req;
      ch.requesters.add(req);
      this.openSession(req, `tcp ${sock.remoteAddress}:${sock.remotePort}`);
      splitter = new LineSplitter(ch.lineLimit, {
        line: (text, bytes) => this.guard(`frame from ${name}`, () => {
          let frame: unknown;
          try {
            frame = JSON.parse(text);
          } catch {
            this.violation({ ...byRequester(req), kind: 'malformed', detail: `not JSON: ${snippet(text)}` });
            return;
          }
          const env = envelope(frame);
          if (typeof env !== 'string' && (env.t === 'open' || env.t === 'close')) {
            // The connection is the session: open/close frames are acknowledged and change nothing.
            req.write!(`{"t":"${env.t === 'open' ? 'opened' : 'closed'}"${env.id === undefined ? '' : `,"id":${JSON.stringify(env.id)}`}}\n`, true);
            return;
          }
          this.fromRequester(req, frame, null);
        }),
        oversize: (bytes) => this.violation({ ...byRequester(req), kind: 'oversize', detail: `a line of more than ${ch.lineLimit} bytes (${bytes} seen); the rest is discarded` }),
      });
      this.addSender(sock, splitter);
      const lines = splitter;
      sock.on('data', (chunk: Buffer) => this.batch(() => lines.push(chunk)));
      sock.on('error', () => {});
      sock.once('close', () => {
        table.remove(sock);
        this.tcpSockets.delete(sock);
        this.endOrder(req, 'the connection closed');
        req.alive = false;
        ch.requesters.delete(req);
        if (req.session) this.endSession(req.session);
      });
    });
  }

  private httpServer(ch: ChannelRt, table: ConnectionTable): HttpServer {
    const op = ch.ops.get('request');
    const l = this.limits;
    const options = {
      // node:http closes a connection whose request head is unfinished after headersTimeout (408), and one whose
      // request (body included) takes longer than requestTimeout; the table closes those that send nothing.
      headersTimeout: l.headerTimeoutMs,
      requestTimeout: Math.max(REQUEST_TIMEOUT_MS, l.headerTimeoutMs),
      keepAliveTimeout: 5_000,
      connectionsCheckingInterval: this.sweepEvery(),
    };
    // Requests in progress per connection, from the request to the end of its response: such a connection is busy.
    const inProgress = new WeakMap<Socket, number>();
    // Bytes read up to the last request head or response; more means a request head has begun since.
    const heads = new WeakMap<Socket, { mark: number; since: number | null }>();
    const headDone = (sock: Socket) => heads.set(sock, { mark: sock.bytesRead, since: null });
    const headSince = (sock: Socket): number | null => {
      const h = heads.get(sock);
      if (!h || sock.bytesRead <= h.mark) return null;
      h.since ??= performance.now();
      return h.since;
    };
    const server = createHttpServer(options, (hreq, hres) => {
      const sock = hreq.socket;
      inProgress.set(sock, (inProgress.get(sock) ?? 0) + 1);
      headDone(sock);
      hres.once('close', () => {
        inProgress.set(sock, (inProgress.get(sock) ?? 1) - 1);
        headDone(sock);
        table.touch(sock);
      });
      handle(hreq, hres).catch((e: unknown) => {
        this.log({ level: 'error', message: `internal error on exposure ${ch.id}: ${(e as Error)?.stack ?? String(e)}`, channel: ch.id });
        writeBrokerError(hres, 500, 'internal broker error');
      });
    });
    const handle = async (hreq: IncomingMessage, hres: ServerResponse): Promise<void> => {
      const sock = hreq.socket;
      let req = httpRequesters.get(sock);
      if (!req) {
        req = this.newTcpRequester(ch, sock, `tcp:${ch.exposure!.host_port}`);
        req.write = null;
        req.pausable = null;
        httpRequesters.set(sock, req);
        ch.requesters.add(req);
        this.openSession(req, `http ${sock.remoteAddress}:${sock.remotePort}`);
        const r = req;
        sock.once('close', () => {
          r.alive = false;
          ch.requesters.delete(r);
          if (r.session) this.endSession(r.session);
        });
      }
      const r = req;
      const name = r.name;
      if (!op || op.kind !== 'call') {
        writeBrokerError(hres, 502, `the exposed port ${ch.providerPort} does not carry a request call`);
        return;
      }
      const body = await readBody(hreq, HTTP_MAX_BODY);
      if (body === null) {
        this.violation({ ...byRequester(r), kind: 'oversize', detail: `HTTP request body over ${HTTP_MAX_BODY} bytes` });
        writeBrokerError(hres, 413, `request body over ${HTTP_MAX_BODY} bytes`);
        return;
      }
      if (r.budget.bucket && !r.budget.bucket.take()) {
        this.violation({ ...byRequester(r), kind: 'rate', detail: `over the exposure's rate` });
        writeBrokerError(hres, 429, 'too many requests');
        return;
      }
      const msg = toRequestMessage(hreq, body);
      const err = op.input(msg);
      if (err !== undefined) {
        this.violation({ ...byRequester(r), kind: 'schema', detail: `request: ${prefixBody(err)}` });
        writeBrokerError(hres, 400, `request refused: ${prefixBody(err)}`);
        return;
      }
      const bodyJson = JSON.stringify(msg);
      if (Buffer.byteLength(bodyJson) > ch.inv.max_message_bytes) {
        this.violation({ ...byRequester(r), kind: 'oversize', detail: `request of ${Buffer.byteLength(bodyJson)} bytes is over ${ch.inv.max_message_bytes}` });
        writeBrokerError(hres, 413, `request over ${ch.inv.max_message_bytes} bytes`);
        return;
      }
      if (r.budget.inflight >= ch.inv.max_inflight) {
        this.violation({ ...byRequester(r), kind: 'inflight', detail: `${r.budget.inflight} requests outstanding` });
        writeBrokerError(hres, 503, 'too many requests in flight');
        return;
      }
      this.forwardCall(r, op, bodyJson, (answer) => {
        if (hres.writableEnded || hres.destroyed) return;
        if (answer.ok) {
          if (!writeResponseMessage(hres, answer.body as { status: number; headers: Record<string, string>; body?: string })) {
            writeBrokerError(hres, 502, 'the provider answered with headers HTTP cannot carry');
          } else ch.counters.frames_to_requirer++;
          return;
        }
        writeBrokerError(hres, answer.kind === 'timeout' ? 504 : 502, answer.error);
      });
    };
    const httpRequesters = new WeakMap<Socket, Requester>();
    server.on('connection', (sock: Socket) => {
      headDone(sock);
      if (!table.admit(sock, { busy: () => (inProgress.get(sock) ?? 0) > 0, unfinishedSince: () => headSince(sock) })) return;
      this.tcpSockets.add(sock);
      sock.once('close', () => {
        table.remove(sock);
        this.tcpSockets.delete(sock);
      });
    });
    server.on('clientError', (e: NodeJS.ErrnoException, sock) => {
      if (e.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        // A request head or body that did not arrive in time: a slow or stalled client, not a refused frame.
        table.timedOut(sock as Socket, `did not finish a request head within ${l.headerTimeoutMs} ms or a request within ${options.requestTimeout} ms`);
        if (sock.writable) sock.end('HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        else sock.destroy();
        return;
      }
      this.violation({ instance: `tcp:${ch.exposure!.host_port}`, clone: 0, port: ch.providerPort, channel: ch, kind: 'malformed', detail: 'not a valid HTTP/1.1 request' });
      if (sock.writable) sock.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      else sock.destroy();
    });
    return server;
  }

  // -------------------------------------------------------------------------
  // Violations and logging

  private violation(o: Offence): void {
    const { instance, clone, port, channel: ch, kind, id, requester, conn = null, notify = true } = o;
    let detail = o.detail;
    // Details quote what the peer sent (field names, map keys): keep them short, since they are stored and echoed.
    if (detail.length > MAX_DETAIL) detail = detail.slice(0, MAX_DETAIL) + '...';
    const v: Violation = { time: Date.now(), instance, clone, port, channel: ch ? ch.id : null, kind, detail };
    let counters: Counters;
    if (ch) counters = ch.counters;
    else {
      const key = `${instance}.${port}`;
      counters = this.portCounters.get(key) ?? new Counters();
      this.portCounters.set(key, counters);
    }
    counters.violations[kind] = (counters.violations[kind] ?? 0) + 1;
    counters.violations_total++;
    const max = this.opts.violationHistory ?? 1000;
    if (this.recent.length < max) this.recent.push(v);
    else {
      this.recent[this.recentStart] = v;
      this.recentStart = (this.recentStart + 1) % max;
    }
    if (notify) {
      // Tell the sender why, unless it is not reading (then the notice is dropped).
      const idPart = id === undefined || id === null ? '' : `,"id":${JSON.stringify(id)}`;
      const notice = `{"t":"denied"${idPart},"kind":"${kind}","reason":${JSON.stringify(detail)}}\n`;
      if (requester?.write) requester.write(notice, true);
      else if (conn) this.writeTo(conn, notice, true);
      this.penalise(requester?.pausable ?? conn?.stream ?? null);
    }
    this.emit('violation', v);
    this.logViolation(v);
  }

  /**
   * A sender that keeps breaking the rules is read more slowly: each violation
   * takes a token of its budget (PENALTY_BURST, refilled at PENALTY_PER_SECOND),
   * and at the first one over it its socket is paused for PENALTY_PAUSE_MS and
   * the rest of what it already sent is held unread until then. This bounds the
   * frames of a flood the broker checks (and so the time it takes from the
   * other channels); only the flooder's own traffic waits.
   */
  private penalise(stream: Duplex | null): void {
    if (!stream) return;
    const sender = this.senders.get(stream);
    if (!sender || sender.penalised || sender.budget.take()) return;
    sender.penalised = true;
    stream.pause();
    sender.splitter.hold();
    const t = setTimeout(() => {
      sender.penalised = false;
      if (stream.destroyed || this.senders.get(stream) !== sender) return;
      // The held lines are checked now; a violation among them over the budget pauses the sender again.
      this.batch(() => this.guard('held frames', () => sender.splitter.release()));
      if (!sender.penalised && sender.waitingOn === 0) stream.resume();
    }, PENALTY_PAUSE_MS);
    t.unref?.();
  }

  /**
   * Runs the handling of one frame so that a bug in it costs that frame, not
   * the supervisor process that hosts the broker and every guest's channels.
   */
  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.log({ level: 'error', message: `internal error handling ${what}: ${(e as Error)?.stack ?? String(e)}` });
    }
  }

  /** Logs violations with at most 10 lines per second per (channel, kind); the rest are summarised. */
  private logViolation(v: Violation): void {
    if (!this.opts.log && this.listenerCount('log') === 0) return;
    const key = `${v.channel ?? v.instance + '.' + v.port}\u0000${v.kind}`;
    const now = Date.now();
    let b = this.logBudget.get(key);
    if (!b) {
      b = { windowStart: now, count: 0, suppressed: 0 };
      this.logBudget.set(key, b);
    }
    if (now - b.windowStart >= 1000) {
      if (b.suppressed > 0) {
        this.log({ level: 'warn', message: `${b.suppressed} more ${v.kind} violations on ${v.channel ?? v.instance + '.' + v.port} were not logged`, instance: v.instance, channel: v.channel ?? undefined });
      }
      b.windowStart = now;
      b.count = 0;
      b.suppressed = 0;
    }
    if (b.count >= 10) {
      b.suppressed++;
      return;
    }
    b.count++;
    this.log({
      level: 'warn',
      message: `denied ${v.kind} from ${v.instance}[${v.clone}].${v.port}${v.channel ? ` on ${v.channel}` : ''}: ${v.detail}`,
      instance: v.instance,
      clone: v.clone,
      port: v.port,
      channel: v.channel ?? undefined,
    });
  }

  private log(e: BrokerLogEntry): void {
    this.opts.log?.(e);
    if (this.listenerCount('log') > 0) this.emit('log', e);
  }
}

// ---------------------------------------------------------------------------
// Frames the broker writes

function answerFrame(id: number | string, a: Answer): string {
  const idJson = typeof id === 'number' ? String(id) : JSON.stringify(id);
  if (a.ok) return `{"t":"reply","id":${idJson},"body":${a.bodyJson}}\n`;
  return `{"t":"error","id":${idJson},"error":${JSON.stringify(a.error)}}\n`;
}

function exposureInvariants(ex: PlanExposure): ChannelInvariants {
  return ex.invariants ?? DEFAULT_INVARIANTS;
}

function pushMap<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const a = m.get(k);
  if (a) a.push(v);
  else m.set(k, [v]);
}

// The decisions' module owns the order completion; tests and callers import it from here too.
export { completion } from './admit';

/** A target the broker dials (and redials after a drop): a socket path or a TCP address, not a stream it was handed. */
function isDialled(t: PortTarget): t is string | { host: string; port: number; connectTimeoutMs?: number } {
  if (typeof t === 'string') return true;
  const o = t as { host?: unknown; port?: unknown; pipe?: unknown };
  return typeof o.host === 'string' && typeof o.port === 'number' && typeof o.pipe !== 'function';
}
