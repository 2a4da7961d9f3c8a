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
//   this module reads and writes the guests' ports, routes, and records what
//   they refuse (`violation`, one record per refusal). Sessions (sessions.ts)
//   and exposures (exposures.ts) are modules of their own, which reach the
//   broker through the small host interfaces they declare.

import { EventEmitter } from 'node:events';
import { createConnection } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ChannelInvariants, Plan, PlanChannel, PlanExposure, PlanOperation } from '@mcl/plan';
import type { LinkStatus } from '@mcl/plan/backend';
import { compileSchemas, type CompiledSchemas } from './schema';
import { admitNotify, admitReply, admitRequest, incompleteOrder, refuseFromProvider, refuseNotifySize, type Budget, type OpRt } from './admit';
import { decimalDigits, encode, encodePlain, encodePlainBytes, envelope, frameId, parseLine, plainLine, receivedBody, snippet, type Envelope } from './frames';
import { LineSplitter, TokenBucket } from './lines';
import { Counters, wireBytes, type CounterTotals } from './counters';
import { Exposures } from './exposures';
import { Egresses } from './egress';
import { exposureId, HTTP_SCHEMAS } from './http';
import { isStreamProtocol } from './streams';
import { Sessions } from './sessions';
import { Factories, factoryOf, type FactoryRt } from './factories';
import { byPort, byRequester, CallList, DROP_WATER, PortConn, type Answer, type ChannelRt, type InstanceRt, type Offence, type Pending, type Requester, type Session } from './state';
import type { BrokerCheckpoint, BrokerLogEntry, BrokerOptions, ChannelCounters, ExposureInfo, PortStatus, PortTarget, Violation } from './types';

/** Bytes a frame line may hold beyond `max_message_bytes` for its envelope (`t`, `op`, `id`). */
export const ENVELOPE_ALLOWANCE = 1024;
/** Line limit on a port that has no channel: everything on it is refused anyway. */
const UNWIRED_LINE_LIMIT = 64 * 1024;
/** Above this many bytes queued to a destination, the sending socket is paused until the destination drains. */
const HIGH_WATER = 256 * 1024;
/**
 * Each sender's violation budget: a token bucket of PENALTY_BURST violations refilled at
 * PENALTY_PER_SECOND. At the first violation over it the sender's socket is paused for
 * PENALTY_PAUSE_MS and no further line of what it already sent is looked at meanwhile.
 */
const PENALTY_BURST = 64;
const PENALTY_PER_SECOND = 640;
const PENALTY_PAUSE_MS = 50;
/**
 * Lines of what a penalised sender sent that one turn of the event loop checks when its pause
 * ends (see checkHeld). After a pause of 50 ms the budget has some 32 refusals to spend (and a
 * sibling flooding valid calls as many admitted calls as its rate gave meanwhile): checked in
 * one stretch, at 5 to 30 us a frame, that held every other channel's frame arriving meanwhile
 * for half a millisecond or more.
 */
const HELD_SLICE = 4;
/** Most a batch holds back for one destination before writing it (see Broker.write). */
const OUTBOX_FLUSH = 64 * 1024;
/**
 * From this many characters of re-encoded body on, a call or send from a guest is written as
 * bytes (encodePlainBytes) rather than as a string: below it, the few pieces' copies cost more
 * than the heap copy of a short frame saves.
 */
const BYTES_BODY_MIN = 2048;
/** Longest violation detail kept and sent back in a `denied` frame. */
const MAX_DETAIL = 400;

export const DEFAULT_INVARIANTS: ChannelInvariants = {
  max_message_bytes: 1024 * 1024,
  rate: null,
  timeout_ms: 30_000,
  max_inflight: 64,
  order: null,
};

/** What a batch writes to one destination when it ends. */
interface Outgoing {
  s: Duplex;
  /** The frames so far, concatenated (after those in `bufs`). */
  text: string;
  /** Frames written as bytes, and the text that came before them, in order; null while there are none. */
  bufs: Buffer[] | null;
  /** Bytes in `bufs`. */
  bufBytes: number;
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

/** Most a moving clone's port holds of frames for it (see Broker.holdClone). */
export const MAX_HELD_BYTES = 4 * 1024 * 1024;

/** Frames held for one port of a moving clone. */
interface HeldFrames {
  /** Whole frames as the broker would have written them: text, or bytes for a large body written as bytes. */
  lines: (string | Buffer)[];
  bytes: number;
}

/** Queues a line for a held port; false (the frame is dropped, a call fails as unavailable) past `limit` bytes. */
function holdLine(h: HeldFrames, line: string | Buffer, limit: number): boolean {
  const n = wireBytes(line);
  if (h.bytes + n > limit) return false;
  h.lines.push(line);
  h.bytes += n;
  return true;
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
  /** Channels by `<instance>.<port>` of their requiring end (for a late-bound port, its initial candidate). */
  private readonly byRequirePort = new Map<string, ChannelRt>();
  /** Every candidate channel of a late-bound required port (spec/factories.md), by `<instance>.<port>`, in plan order. */
  private readonly candidates = new Map<string, ChannelRt[]>();
  /** Channels (and exposures) by `<instance>.<port>` of their providing end. */
  private readonly byProvidePort = new Map<string, ChannelRt[]>();
  private readonly exposureChannels = new Map<number, ChannelRt>();
  /** Counters of violations on ports with no channel, by `<instance>.<port>`. */
  private readonly portCounters = new Map<string, Counters>();
  private readonly recent: Violation[] = [];
  private recentStart = 0;
  private readonly logBudget = new Map<string, { windowStart: number; count: number; suppressed: number }>();
  private readonly sessions: Sessions;
  private readonly exposures: Exposures;
  private readonly egresses: Egresses;
  private closed = false;
  private batching = false;
  /** Frames for the ports of clones being moved (holdClone), written when the move ends. */
  private readonly cloneHolds = new Map<PortConn, HeldFrames>();
  /** Ports of a moving clone whose old stream is closing, with what to call when it closed (moveClone). */
  private readonly moving = new Map<PortConn, () => void>();
  /** When hold() stopped relaying (performance.now()), or null. */
  private heldAt: number | null = null;
  private readonly senders = new WeakMap<Duplex, Sender>();
  /**
   * Frames written during the current batch, one entry per destination: the
   * text is written in one `write` when the batch ends (see batch()).
   */
  private outbox: Outgoing[] = [];
  /** Created instances of the plan (mode `created`) with their factory, by instance id. */
  private readonly factoryRts = new Map<string, FactoryRt>();
  private readonly factories = new Factories();
  /** How to reach the providers of channels whose provider runs on another host (setRemoteProviders). */
  private remoteOpen: ((channel: string, clone: number) => Duplex | string) | null = null;
  /** Streams to remote providers, by channel id and requester clone. */
  private readonly remoteConns = new Map<string, PortConn>();
  /** The links to other hosts, for status (link.ts registers them). */
  private linkStatusOf: (() => LinkStatus[]) | null = null;

  constructor(plan: Plan, options: BrokerOptions = {}) {
    super();
    this.plan = plan;
    this.opts = options;
    this.sessions = new Sessions({
      options,
      events: this,
      violation: (o) => this.violation(o),
      log: (e) => this.log(e),
      pickClone: (inst, port) => this.pickClone(inst, port),
      failPending: (conn, why) => this.failPending(conn, why),
    });
    this.exposures = new Exposures({
      plan,
      options,
      sessions: this.sessions,
      exposureChannel: (hostPort) => this.exposureChannels.get(hostPort),
      closed: () => this.closed,
      violation: (o) => this.violation(o),
      log: (e) => this.log(e),
      guard: (what, fn) => this.guard(what, fn),
      batch: (fn) => this.batch(fn),
      write: (s, line) => this.write(s, line),
      budget: (ch, clone) => this.budget(ch, clone),
      addSender: (stream, splitter) => this.addSender(stream, splitter),
      endOrder: (req, why) => this.endOrder(req, why),
      fromRequester: (req, frame, conn) => this.fromRequester(req, frame, conn),
      forwardCall: (req, op, bodyJson, respond) => this.forwardCall(req, op, bodyJson, respond),
    });
    this.egresses = new Egresses({
      violation: (o) => this.violation(o),
      log: (e) => this.log(e),
      closed: () => this.closed,
      backpressure: (req, source) => {
        const conn = this.instances.get(req.name)?.clones.get(req.clone)?.get(req.port);
        if (conn) this.backpressure(conn, source);
      },
    });
    // The HTTP schemas are a fallback for plans that do not carry them; the plan's own win.
    const schemas = { ...HTTP_SCHEMAS, ...plan.schemas };
    this.schemas = compileSchemas(schemas);
    for (const p of this.schemas.problems) this.log({ level: 'error', message: `schema: ${p}` });
    for (const inst of plan.instances) {
      const f = factoryOf(inst, schemas);
      if (f) this.factoryRts.set(inst.id, f);
    }

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
      const requireKey = `${ch.from.instance}.${ch.from.port}`;
      if (ch.candidate) pushMap(this.candidates, requireKey, rt);
      // A late-bound port starts on its initial candidate; the others wait for a `rebind`.
      if (!ch.candidate || ch.candidate.initial) this.byRequirePort.set(requireKey, rt);
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
    // An egress is the channel of its required port; the broker itself is its provider (egress.ts).
    for (const eg of plan.egresses ?? []) {
      const requirer = this.instances.get(eg.instance);
      const key = `${eg.instance}.${eg.port}`;
      if (!requirer || this.byRequirePort.has(key)) {
        this.log({ level: 'error', message: `egress ${eg.name} names ${key}, which is not a free required port of the plan; it carries nothing` });
        continue;
      }
      const id = `egress:${eg.name}`;
      const rt = this.makeChannel(id, null, null, requirer, eg.port, requirer, eg.ops, eg.invariants);
      this.channels.set(id, rt);
      this.byRequirePort.set(key, rt);
      this.egresses.add(eg, rt);
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
      (c, line, bytes, raw, rawStart) => this.onLineGuarded(c, line, bytes, raw, rawStart),
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
      // A requester of a provider on another host is announced there now (it gets notifications from then on).
      if (channels[0].remote) this.remoteProvider(conn.requester);
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
    if (conn.requester) this.egresses.dropRequester(conn.requester);
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
      if (conn.requester.session) this.sessions.end(conn.requester.session);
      if (conn.requester.channel.remote) this.closeRemote(conn.requester.channel, cloneIndex);
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
    this.creatorGone(instanceId, cloneIndex);
    for (const s of [...inst.sessions]) {
      if (s.clone !== cloneIndex) continue;
      // A session that owns its clone ends with it. A sticky session (a
      // connection or requester spread over replicas) only forgets the clone
      // and picks another on its next call: a replaced or restarted clone
      // must not strand a kept-alive HTTP connection.
      if (s.owned || s.opening) {
        if (s.requester.session === s) this.endOrder(s.requester, `its clone ${instanceId}[${cloneIndex}] went away`);
        this.sessions.end(s);
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
    return this.exposures.listen();
  }

  /** Counters of every channel and exposure (sorted by id), then of unwired ports (`port:<instance>.<port>`). */
  counters(): ChannelCounters[] {
    const out = [...this.channels.values()]
      .map((c) => {
        const k = c.counters.snapshot(c.id);
        const connections = this.exposures.connectionStats(c.id) ?? this.egresses.connectionStats(c);
        if (connections) k.connections = connections;
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

  /**
   * Marks `channels` as carried to another host (spec/broker.md, "Links between hosts"): their
   * requesters' frames are checked here as usual, and what is admitted goes to the stream `open`
   * gives for the channel and requester clone (a string when the other host cannot be reached, which
   * fails the call at once). What comes back on that stream is checked as a provider's frames are.
   * The stream is opened on the first frame and again after it closes; closing it fails the calls
   * outstanding on it.
   */
  setRemoteProviders(channels: string[], open: (channel: string, clone: number) => Duplex | string): void {
    this.remoteOpen = open;
    for (const id of channels) {
      const ch = this.channels.get(id);
      if (ch && ch.plan) ch.remote = true;
    }
  }

  /**
   * Opens the stream to the remote provider for every requester clone of a remote channel that has
   * none (a link came up): the other host learns of each requester clone, so that notifications
   * reach it before it sends anything.
   */
  openRemoteRequesters(): void {
    for (const ch of this.channels.values()) {
      if (!ch.remote) continue;
      for (const r of ch.requesters) if (r.alive && r.write) this.remoteProvider(r);
    }
  }

  /** Registers where the state of the links to other hosts comes from (link.ts). */
  setLinkStatus(fn: () => LinkStatus[]): void {
    this.linkStatusOf = fn;
  }

  /** The links to other hosts (none on a deployment on one host). */
  linkStatus(): LinkStatus[] {
    return this.linkStatusOf?.() ?? [];
  }

  /** The stream to the remote provider of a requester's channel, opened when it has none. */
  private remoteProvider(req: Requester): [PortConn | null, string] {
    const ch = req.channel;
    const key = `${ch.id}\u0000${req.clone}`;
    const have = this.remoteConns.get(key);
    if (have?.stream) return [have, ''];
    const s = this.remoteOpen ? this.remoteOpen(ch.id, req.clone) : 'no link to the provider\'s host is configured';
    if (typeof s === 'string') return [null, s];
    const port = ch.provider.ports.get(ch.providerPort)!;
    const conn = new PortConn(ch.provider, req.clone, port, [ch], s, ch.lineLimit, (c, line, bytes, raw, rawStart) => this.onLineGuarded(c, line, bytes, raw, rawStart), (c, bytes) => this.onOversize(c, bytes), 0);
    conn.remote = true;
    this.remoteConns.set(key, conn);
    this.useStream(conn, s);
    return [conn, ''];
  }

  /** Closes the stream to a remote provider for one requester clone (the clone went away). */
  private closeRemote(ch: ChannelRt, clone: number): void {
    const key = `${ch.id}\u0000${clone}`;
    const conn = this.remoteConns.get(key);
    if (!conn) return;
    this.remoteConns.delete(key);
    conn.attached = false;
    const stream = conn.stream;
    this.dropStream(conn, 'the requester went away');
    stream?.destroy();
  }

  // -------------------------------------------------------------------------
  // Checkpoints (spec/checkpoint.md)

  /**
   * Stops relaying for a checkpoint: no stream is read and no call times out
   * until `resume()`. Frames are relayed whole or not at all (a received chunk
   * is processed in one go), so what is not relayed yet is either unread in a
   * socket or the unfinished line of a port, which `checkpointState()` records.
   */
  hold(): void {
    if (this.heldAt !== null) return;
    this.heldAt = performance.now();
    for (const inst of this.instances.values()) for (const ports of inst.clones.values()) for (const conn of ports.values()) conn.stream?.pause();
    this.exposures.pause();
    for (const ch of this.channels.values()) {
      if (ch.timer) clearTimeout(ch.timer);
      ch.timer = null;
    }
  }

  /** Relays again after `hold()`; call deadlines move on by the time held. */
  resume(): void {
    if (this.heldAt === null) return;
    const held = performance.now() - this.heldAt;
    this.heldAt = null;
    for (const ch of this.channels.values()) {
      for (const p of ch.pending) p.deadline += held;
      if (ch.pending.size > 0 && !ch.timer) this.armTimer(ch);
    }
    for (const inst of this.instances.values()) {
      for (const ports of inst.clones.values()) {
        for (const conn of ports.values()) {
          const s = conn.stream;
          const sender = s ? this.senders.get(s) : undefined;
          if (s && (!sender || (!sender.penalised && sender.waitingOn === 0))) s.resume();
        }
      }
    }
    this.exposures.resume();
  }

  // -------------------------------------------------------------------------
  // Live migration of one clone (spec/hosts.md, "Live migration")

  /**
   * Holds what the broker writes to one clone's ports: from now on frames for
   * it wait here, in order and bounded (maxHeldBytes per port; past that a
   * call fails as unavailable), until moveClone delivers them to its new place
   * or releaseClone to where it was. Frames the clone sends are still read.
   */
  holdClone(instanceId: string, cloneIndex: number): void {
    for (const conn of this.instances.get(instanceId)?.clones.get(cloneIndex)?.values() ?? []) {
      if (!this.cloneHolds.has(conn)) this.cloneHolds.set(conn, { lines: [], bytes: 0 });
    }
  }

  /** Bytes the broker wrote to a clone's ports that are still in its own write queues (not yet in the sockets). */
  cloneQueued(instanceId: string, cloneIndex: number): number {
    let n = 0;
    for (const conn of this.instances.get(instanceId)?.clones.get(cloneIndex)?.values() ?? []) if (conn.stream) n += this.queued(conn.stream);
    return n;
  }

  /**
   * Moves a held clone's ports to new targets (its QEMU on the destination):
   * waits until each port's old stream has closed (the old QEMU was killed,
   * and everything it wrote has been relayed), connects the new target, keeps
   * the port's calls, unfinished line and protocol order, and writes the held
   * frames there in order. Rejects after `timeoutMs` when a stream did not
   * close or connect; the clone stays held then (releaseClone).
   */
  async moveClone(instanceId: string, cloneIndex: number, targets: Record<string, PortTarget>, timeoutMs = 10_000): Promise<void> {
    const conns = [...(this.instances.get(instanceId)?.clones.get(cloneIndex)?.values() ?? [])];
    const missing = conns.filter((c) => !(c.port.name in targets)).map((c) => c.port.name);
    if (missing.length > 0) throw new Error(`moveClone: no new target for port ${missing.join(', ')} of ${instanceId}[${cloneIndex}]`);
    const deadline = (what: string) => new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`moveClone: ${what} within ${timeoutMs} ms`)), timeoutMs).unref?.());
    await Promise.race([
      Promise.all(
        conns.map(
          (conn) =>
            new Promise<void>((resolve) => {
              this.moving.set(conn, resolve);
              if (!conn.stream || conn.stream.destroyed) resolve();
            }),
        ),
      ),
      deadline('the old streams did not close'),
    ]);
    for (const conn of conns) {
      if (conn.reconnectTimer) clearTimeout(conn.reconnectTimer);
      conn.reconnectTimer = null;
      conn.target = targets[conn.port.name];
    }
    await Promise.race([
      Promise.all(
        conns.map((conn) => {
          const connected = new Promise<void>((resolve) => conn.connectWaiters.push(() => resolve()));
          if (isDialled(conn.target)) this.connect(conn);
          else this.useStream(conn, conn.target as Duplex);
          return connected;
        }),
      ),
      deadline('the new ports did not connect'),
    ]);
    for (const conn of conns) this.moving.delete(conn);
    this.releaseClone(instanceId, cloneIndex);
  }

  /** Ends a clone's hold: the held frames are written, in order, to its ports as they are now. */
  releaseClone(instanceId: string, cloneIndex: number): void {
    for (const conn of this.instances.get(instanceId)?.clones.get(cloneIndex)?.values() ?? []) {
      const h = this.cloneHolds.get(conn);
      if (!h) continue;
      this.cloneHolds.delete(conn);
      this.moving.delete(conn);
      const s = conn.stream;
      if (s && !s.destroyed && h.lines.length > 0) s.write(Buffer.concat(h.lines.map((l) => (typeof l === 'string' ? Buffer.from(l) : l))));
    }
  }

  /**
   * The per-channel state a checkpoint keeps (while held): counters, and per
   * guest port its protocol order state, the unfinished line it sent, and for
   * provide ports the calls it owes an answer with the requester each answer
   * goes to. Calls from exposure clients are recorded as expired: their TCP
   * connections are not part of a checkpoint, and a late reply to one is
   * counted, not taken for an attack.
   */
  checkpointState(): BrokerCheckpoint {
    const now = this.heldAt ?? performance.now();
    const ports: BrokerCheckpoint['ports'] = [];
    for (const inst of this.instances.values()) {
      for (const [clone, conns] of inst.clones) {
        for (const conn of conns.values()) {
          const req = conn.requester;
          const calls = conn.pending.values();
          const pending = calls
            .filter((p) => p.origId !== undefined && p.requester.channel.exposure === null)
            .map((p) => ({
              id: p.pid,
              channel: p.channel.id,
              op: p.op.name,
              requester: { instance: p.requester.name, clone: p.requester.clone, port: p.requester.port },
              requester_id: p.origId!,
              remaining_ms: Math.max(0, Math.round(p.deadline - now)),
            }));
          const expired = [...conn.expired, ...calls.filter((p) => p.requester.channel.exposure !== null).map((p) => p.pid)];
          ports.push({
            instance: inst.plan.id,
            clone,
            port: conn.port.name,
            partial_line: conn.splitter.partialBytes().toString('base64'),
            ...(req ? { order_state: req.orderState, order_moved: req.orderMoved } : {}),
            ...(conn.port.direction === 'provide' ? { next_id: conn.nextId, pending, expired } : {}),
          });
        }
      }
    }
    const counters: Record<string, CounterTotals> = {};
    for (const ch of this.channels.values()) counters[ch.id] = ch.counters.totals();
    for (const [k, c] of this.portCounters) counters[`port:${k}`] = c.totals();
    return { format: 1, counters, ports, next_session: this.sessions.nextSessionId };
  }

  /**
   * Continues from a checkpoint's state: call it once the restored clones'
   * ports are attached and connected, before the clones run. Entries that name
   * a port, channel or operation this broker does not have are reported in
   * the result and skipped.
   */
  restoreState(state: BrokerCheckpoint): string[] {
    const problems: string[] = [];
    for (const [id, totals] of Object.entries(state.counters ?? {})) {
      const ch = this.channels.get(id);
      if (ch) ch.counters.loadTotals(totals);
      else if (id.startsWith('port:')) {
        const c = new Counters();
        c.loadTotals(totals);
        this.portCounters.set(id.slice(5), c);
      } else problems.push(`channel ${id} is not in the plan`);
    }
    if (Number.isSafeInteger(state.next_session)) this.sessions.continueFrom(state.next_session);
    const connOf = (instance: string, clone: number, port: string) => this.instances.get(instance)?.clones.get(clone)?.get(port);
    const now = performance.now();
    for (const p of state.ports ?? []) {
      const conn = connOf(p.instance, p.clone, p.port);
      if (!conn) {
        problems.push(`port ${p.instance}[${p.clone}].${p.port} is not attached`);
        continue;
      }
      if (conn.requester && Number.isSafeInteger(p.order_state)) {
        conn.requester.orderState = p.order_state!;
        conn.requester.orderMoved = !!p.order_moved;
      }
      const partial = Buffer.from(p.partial_line ?? '', 'base64');
      if (partial.length > 0) conn.splitter.push(partial);
      if (conn.port.direction !== 'provide') continue;
      if (Number.isSafeInteger(p.next_id) && p.next_id! > conn.nextId) conn.nextId = p.next_id!;
      for (const id of p.expired ?? []) if (Number.isSafeInteger(id)) conn.expired.add(id);
      for (const c of p.pending ?? []) {
        const ch = this.channels.get(c.channel);
        const op = ch?.ops.get(c.op);
        const req = connOf(c.requester.instance, c.requester.clone, c.requester.port)?.requester;
        if (!ch || !op || !req || req.channel !== ch) {
          problems.push(`call ${c.id} on ${c.channel} cannot be matched to its requester`);
          continue;
        }
        const pending: Pending = {
          pid: c.id,
          channel: ch,
          op,
          provider: conn,
          requester: req,
          deadline: now + Math.max(0, c.remaining_ms),
          sentAt: now,
          respond: null,
          origId: c.requester_id,
          prev: null,
          next: null,
          list: null,
          budget: undefined,
        };
        conn.pending.set(pending);
        ch.pending.add(pending);
        req.budget.inflight++;
        req.outstanding++;
        if (!ch.timer && this.heldAt === null) this.armTimer(ch);
      }
    }
    return problems;
  }

  /** Closes every stream and listener and fails outstanding calls. Sessions still open are ended (onSessionClose is called). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const listeners = this.exposures.close();
    this.egresses.close();
    for (const inst of this.instances.values()) {
      for (const clone of [...inst.clones.keys()]) this.detachClone(inst.plan.id, clone);
      for (const s of [...inst.sessions]) this.sessions.end(s);
    }
    for (const ch of this.channels.values()) {
      if (ch.timer) clearTimeout(ch.timer);
      ch.timer = null;
    }
    for (const conn of [...this.remoteConns.values()]) this.closeRemote(conn.channels[0], conn.clone);
    this.emit('close');
    await listeners;
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
      const json = JSON.stringify(op.name);
      opMap.set(op.name, {
        name: op.name,
        kind: op.kind,
        input: this.schemas.get(op.input),
        output: op.kind === 'call' && op.output ? this.schemas.get(op.output) : null,
        json,
        jsonBytes: Buffer.byteLength(json, 'utf8'),
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
      pending: new CallList(),
      timer: null,
      counters: new Counters(),
      requesters: new Set(),
      lineLimit: inv.max_message_bytes + ENVELOPE_ALLOWANCE,
      stream: exposure !== null && isStreamProtocol(exposure.protocol),
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
    const target = conn.target as string | { host: string; port: number; connectTimeoutMs?: number; greeting?: string };
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
      if (typeof target !== 'string' && target.greeting) sock.write(target.greeting);
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
    // A clone that moved to another QEMU (moveClone) goes on with its unfinished line and its protocol order.
    const moved = this.moving.has(conn);
    conn.stream = stream;
    if (!moved) conn.splitter.reset();
    this.addSender(stream, conn.splitter);
    if (conn.requester && moved) conn.requester.pausable = stream;
    else if (conn.requester) {
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
      // The old QEMU of a moving clone: everything it wrote was read (close comes after the last data); the
      // port keeps its calls and waits for the new stream (moveClone).
      const moved = this.moving.get(conn);
      if (moved) return moved();
      if (conn.requester) this.endOrder(conn.requester, 'the port disconnected');
      this.dropStream(conn, conn.remote ? 'the link to its host closed' : 'the port disconnected');
      if (conn.remote) return;
      this.emit('disconnected', { instance: conn.instance.plan.id, clone: conn.clone, port: conn.port.name });
      if (isDialled(conn.target)) this.scheduleReconnect(conn);
    });
    if (!conn.remote) this.emit('connected', { instance: conn.instance.plan.id, clone: conn.clone, port: conn.port.name });
    this.log({ level: 'debug', message: `port ${conn.key} connected`, instance: conn.instance.plan.id, clone: conn.clone, port: conn.port.name });
    for (const w of conn.connectWaiters.splice(0)) w();
  }

  /** Forgets a port's stream; calls it was serving fail now rather than at their timeout. */
  private dropStream(conn: PortConn, why: string): void {
    conn.stream = null;
    conn.splitter.reset();
    this.releaseSources(conn);
    for (const p of conn.pending.values()) {
      this.settle(p);
      p.channel.counters.errors++;
      // At most once: the caller has its answer. A reply the guest still writes reaches the port's next
      // connection (a KubeVirt guest's FIFO keeps it); it is counted as late, like one after a timeout.
      this.rememberExpired(conn, p.pid);
      answer(p, { ok: false, error: `the provider ${conn.instance.plan.id} went away (${why})`, kind: 'unavailable' });
    }
    conn.pending.clear();
  }

  /** Remembers a call id answered without its reply (bounded), so that the reply, if it comes, is a late one. */
  private rememberExpired(conn: PortConn, pid: number): void {
    conn.expired.add(pid);
    if (conn.expired.size > 4096) conn.expired.delete(conn.expired.values().next().value as number);
  }

  /**
   * Runs `fn` (the processing of one received chunk) with what it writes held
   * back, so that the frames of one chunk leave in one write per destination
   * rather than one system call (or one writev entry) per frame.
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
      this.flushOutbox();
    }
  }

  /**
   * Writes what the batch held back, one write per destination. The list is
   * taken first: a stream that delivers data within its write starts a batch
   * of its own, which must not write these frames a second time.
   */
  private flushOutbox(): void {
    const out = this.outbox;
    if (out.length === 0) return;
    this.outbox = [];
    for (let i = 0; i < out.length; i++) writeOut(out[i]);
  }

  /**
   * Writes `line` to `s`; inside a batch it is appended to what the batch
   * writes to `s` at its end (in order: nothing else writes to a stream of the
   * broker meanwhile). What a batch holds back for one stream is bounded: past
   * OUTBOX_FLUSH bytes it is written at once, so that the write-queue checks
   * (`queued`) of whoever reads only `writableLength` are off by at most that.
   */
  private write(s: Duplex, line: string | Buffer): void {
    if (!this.batching) {
      s.write(line);
      return;
    }
    const o = this.outgoing(s);
    if (typeof line === 'string') {
      o.text += line;
    } else {
      // The text held so far goes first, as bytes, so that the frames stay in order.
      o.bufs ??= [];
      if (o.text.length > 0) {
        const t = Buffer.from(o.text, 'utf8');
        o.bufs.push(t);
        o.bufBytes += t.length;
        o.text = '';
      }
      o.bufs.push(line);
      o.bufBytes += line.length;
    }
    if (o.text.length + o.bufBytes > OUTBOX_FLUSH) writeOut(o);
  }

  /** What the current batch holds back for `s` (a new, empty entry when nothing yet). */
  private outgoing(s: Duplex): Outgoing {
    const out = this.outbox;
    for (let i = out.length - 1; i >= 0; i--) if (out[i].s === s) return out[i];
    const o: Outgoing = { s, text: '', bufs: null, bufBytes: 0 };
    out.push(o);
    return o;
  }

  /** Bytes waiting to be sent to `s` (UTF-16 units for what the current batch holds back): its write queue and the batch's text. */
  private queued(s: Duplex): number {
    let n = s.writableLength;
    const out = this.outbox;
    for (let i = 0; i < out.length; i++) if (out[i].s === s) n += out[i].text.length + out[i].bufBytes;
    return n;
  }

  /** Writes a line to a port; false when it was dropped (no stream, or a droppable notice to a full peer). */
  private writeTo(conn: PortConn, line: string | Buffer, droppable: boolean): boolean {
    if (this.cloneHolds.size !== 0) {
      const h = this.cloneHolds.get(conn);
      if (h) return holdLine(h, line, this.opts.maxHeldBytes ?? MAX_HELD_BYTES);
    }
    const s = conn.stream;
    if (!s || s.destroyed) return false;
    if (droppable && this.queued(s) > DROP_WATER) return false;
    this.write(s, line);
    return true;
  }

  /**
   * Writes the frame `head + body + "}\n"` to a port (a call or send to a provider), as writeTo
   * does; answers its bytes on the wire, or -1 when it was dropped. Inside a batch a body given as
   * bytes goes into the batch's list as it is, after the head, and is copied once, when the batch
   * is written, rather than into a frame of its own first: such a body may be a view of the chunk
   * being read (receivedBody), which stays as it is until the batch ends (the batch is the
   * handling of that chunk).
   */
  private writeFrameTo(conn: PortConn, head: string, headBytes: number, body: string | Buffer): number {
    if (typeof body === 'string' || !this.batching || this.cloneHolds.size !== 0) {
      const line = frameWith(head, body);
      if (!this.writeTo(conn, line, false)) return -1;
      // Counted by its parts: the bytes of the whole text would make the engine flatten it first (a copy).
      return typeof body === 'string' ? headBytes + Buffer.byteLength(body, 'utf8') + 2 : line.length;
    }
    const s = conn.stream;
    if (!s || s.destroyed) return -1;
    const o = this.outgoing(s);
    // The text held so far and the head go first, as bytes; the closing brace and newline start the text that follows.
    // A body is therefore never alone in `bufs`, and writeOut always copies it (Buffer.concat).
    const t = Buffer.from(o.text + head, 'utf8');
    (o.bufs ??= []).push(t, body);
    o.bufBytes += t.length + body.length;
    o.text = '}\n';
    if (o.text.length + o.bufBytes > OUTBOX_FLUSH) writeOut(o);
    return headBytes + body.length + 2;
  }

  /** Pauses `source` until `dest` drains, when `dest` holds too much. */
  private backpressure(dest: PortConn, source: Duplex | null): void {
    if (!source || !dest.stream || this.queued(dest.stream) <= HIGH_WATER) return;
    // Paused again even when it already waits on `dest`: a byte stream's throttle (streams.ts) resumes its socket when its
    // time is paid, whether or not the destination drained meanwhile.
    source.pause();
    if (!dest.pausedSources.has(source)) {
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

  private onLine(conn: PortConn, line: string, bytes: number, raw: Buffer, rawStart: number): void {
    const inst = conn.instance.plan.id;
    // Whether the line has no escape: the parse's shortcut and the body's reuse of the line both ask.
    const plain = plainLine(line);
    let frame: unknown;
    // JSON.parse's error is not looked at, only that it threw: without a stack trace to capture, refusing a line
    // that is not JSON (junk, the commonest flood) costs half as much. The limit is restored on both ways out.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      frame = parseLine(line, raw, rawStart, bytes, plain);
    } catch {
      Error.stackTraceLimit = limit;
      const ch = conn.channels.length === 1 ? conn.channels[0] : null;
      // A provider's broken reply usually still names the call it answers: fail that call now
      // rather than leave its requester waiting for the timeout.
      const m = conn.port.direction === 'provide' ? /"id":\s*(\d+)/.exec(line) : null;
      const p = m ? conn.pending.get(Number(m[1])) : undefined;
      this.violation({ ...byPort(conn, p ? p.channel : ch), kind: 'malformed', detail: `not JSON: ${snippet(line)}`, id: p ? p.pid : null });
      if (p) {
        this.settle(p);
        p.channel.counters.errors++;
        answer(p, { ok: false, error: `the provider's reply to ${p.op.name} was refused: it is not JSON`, kind: 'denied' });
      }
      return;
    }
    Error.stackTraceLimit = limit;
    if (conn.port.direction === 'require') {
      const req = conn.requester;
      if (!req) {
        this.violation({ ...byPort(conn, null), kind: 'unwired', detail: `port ${conn.port.name} of ${inst} has no channel in the plan: nothing it sends is delivered`, id: frameId(frame) });
        return;
      }
      this.fromRequester(req, frame, conn, plain, line, bytes, raw, rawStart);
    } else {
      this.fromProvider(conn, frame, bytes, plain, line);
    }
  }

  /** A frame from a requiring side (a guest's require port or a line-JSON exposure client). */
  private fromRequester(
    req: Requester,
    frame: unknown,
    conn: PortConn | null,
    plain = false,
    /** A guest's frame: its line, and the line's bytes `raw[rawStart, rawStart + bytes)` (valid during this call). */
    line?: string,
    bytes = 0,
    raw?: Buffer,
    rawStart = 0,
  ): void {
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
    if (t === 'rebind') {
      this.rebind(req, conn, env);
      return;
    }
    // A factory port: create, destroy and list are answered here; calls and sends name the created instance.
    const fac = this.factoryRts.get(ch.provider.plan.id);
    const factory = fac && fac.created.created_by!.instance === req.name && fac.created.created_by!.port === req.port ? fac : undefined;
    if (t === 'create' || t === 'destroy' || t === 'list') {
      if (!factory) {
        this.violation({ ...byRequester(req, conn), kind: 'factory_handle', detail: `port ${req.port} of ${req.name} is not a factory port: ${t} is refused`, id: env.id });
        return;
      }
      this.factoryFrame(req, conn, factory, env);
      return;
    }
    if (factory && (env.to === undefined || !this.factories.owns(factory, { instance: req.name, clone: req.clone }, env.to))) {
      const detail = env.to === undefined ? `a ${t} on factory port ${req.port} needs "to", the handle of a created instance` : `${req.name}[${req.clone}] has no created instance ${env.to} of ${ch.provider.plan.id}`;
      this.violation({ ...byRequester(req, conn), kind: 'factory_handle', detail, id: env.id });
      return;
    }
    if (!factory && env.to !== undefined) {
      this.violation({ ...byRequester(req, conn), kind: 'malformed', detail: `"to" names a created instance: port ${req.port} of ${req.name} is not a factory port`, id: env.id });
      return;
    }
    const a = admitRequest(ch, req.budget, req.orderState, env, undefined, plain, line);
    if (!a.ok) {
      this.violation({ ...byRequester(req, conn), kind: a.kind, detail: a.detail, id: env.id });
      return;
    }
    const { op, bodyJson } = a;
    if (a.orderState !== null) {
      req.orderState = a.orderState;
      req.orderMoved = true;
    }
    // An egress's frames leave the deployment: the broker opens the connection or sends the request itself.
    if (this.egresses.has(ch)) {
      // The frame's body is already parsed and checked: the egress reads it as it is, not its JSON text again.
      if (t === 'call') this.egresses.call(req, op, env.body, answerTo(req, env.id!), env.id);
      else this.egresses.send(req, op, env.body);
      return;
    }
    // A large body of a line without a backslash goes on as bytes, the same bytes as its text (see BYTES_BODY_MIN):
    // the bytes it came in when the peer sent it in that very form (receivedBody), else encoded again.
    let body: string | Buffer = bodyJson;
    if (plain && bodyJson.length >= BYTES_BODY_MIN) {
      body = (raw && line !== undefined ? receivedBody(bodyJson, line, raw, rawStart, bytes) : null) ?? encodePlainBytes(env.body) ?? bodyJson;
    }
    if (t === 'call') {
      this.forwardCall(req, op, body, null, env.id!, env.to);
    } else {
      this.forwardSend(req, op, body, env.to);
    }
  }

  /**
   * `rebind` on a late-bound required port (spec/factories.md): the requester's channel moves to
   * the candidate named by `candidate` (`instance`, or `instance.port` when an instance provides
   * several candidates). Only the plan's candidates can be named, so the set of channels stays the
   * one the compiler checked. Calls in flight on the previous channel are answered as usual; the
   * requester's session and order state end with the previous channel.
   */
  private rebind(req: Requester, conn: PortConn | null, env: Envelope): void {
    const list = this.candidates.get(`${req.name}.${req.port}`);
    const name = env.candidate!;
    if (!list) {
      this.violation({ ...byRequester(req, conn), kind: 'rebind', detail: `port ${req.port} of ${req.name} has no candidates to switch between: it is not late-bound`, id: env.id });
      return;
    }
    const matches = list.filter((c) => c.provider.plan.id === name || `${c.provider.plan.id}.${c.providerPort}` === name);
    if (matches.length !== 1) {
      const names = list.map((c) => `${c.provider.plan.id}.${c.providerPort}`).join(', ');
      const why = matches.length ? `names more than one candidate (write instance.port)` : 'is not a candidate';
      this.violation({ ...byRequester(req, conn), kind: 'rebind', detail: `${JSON.stringify(name.slice(0, 64))} ${why} of port ${req.port} of ${req.name}; its candidates are ${names}`, id: env.id });
      return;
    }
    const next = matches[0];
    const prev = req.channel;
    if (next !== prev) {
      this.endOrder(req, 'the port was bound to another candidate');
      if (req.session) this.sessions.end(req.session);
      req.session = null;
      prev.requesters.delete(req);
      // Calls still outstanding on the previous channel give their place back to its budget, not the new one.
      for (const p of prev.pending) if (p.requester === req) p.budget = req.budget;
      prev.budgets.delete(req.clone);
      req.channel = next;
      req.budget = this.budget(next, req.clone);
      next.requesters.add(req);
      if (conn) conn.channels[0] = next;
      this.log({ level: 'info', message: `${req.name}[${req.clone}].${req.port} rebound from ${prev.id} to ${next.id}`, instance: req.name, clone: req.clone, channel: next.id });
    }
    req.write?.(`{"t":"rebound","id":${JSON.stringify(env.id)},"candidate":${JSON.stringify(`${next.provider.plan.id}.${next.providerPort}`)}}\n`, false);
  }

  /** `create`, `destroy` or `list` on a factory port (spec/factories.md). */
  private factoryFrame(req: Requester, conn: PortConn | null, f: FactoryRt, env: Envelope): void {
    this.factories.frame(
      {
        options: this.opts,
        deny: (kind, detail, id) => this.violation({ ...byRequester(req, conn), kind, detail, id }),
        answer: (line) => void req.write?.(line, false),
        log: (level, message, instance, clone) => this.log({ level, message, instance, clone }),
      },
      f,
      { instance: req.name, clone: req.clone },
      env,
    );
  }

  /**
   * A creator clone is gone (destroyed, or restarted with its memory lost): the
   * instances it created are destroyed with it, unless their factory is
   * detached. `detachClone` calls it; a supervisor that restarts a creator
   * clone in place calls it too. Returns the destroyed clones by instance.
   */
  creatorGone(instanceId: string, cloneIndex: number): Record<string, number[]> {
    const out: Record<string, number[]> = {};
    for (const f of this.factoryRts.values()) {
      if (f.created.created_by?.instance !== instanceId) continue;
      const gone = this.factories.creatorGone({ options: this.opts, log: (level, message, instance, clone) => this.log({ level, message, instance, clone }) }, [f], { instance: instanceId, clone: cloneIndex });
      if (gone.length) out[f.created.id] = gone;
    }
    return out;
  }

  /**
   * A created clone is gone without its creator asking: an apply replaced or removed its
   * instance (the supervisor calls this before stopping it). The creator clone forgets it (it no
   * longer counts against the bound, and calls naming it are refused) and is told, on its factory
   * port, with `{"t":"gone","handle":H,"reason":"..."}`, so it can create another. Returns whether
   * a creator owned it.
   */
  createdGone(instanceId: string, cloneIndex: number, reason: string): boolean {
    const f = this.factoryRts.get(instanceId);
    const by = f?.created.created_by;
    const owner = f && this.factories.gone(f, cloneIndex);
    if (!f || !by || !owner) return false;
    this.log({ level: 'info', message: `${instanceId}[${cloneIndex}] is gone (${reason}); ${owner.instance}[${owner.clone}] is told`, instance: instanceId, clone: cloneIndex });
    const conn = this.instances.get(owner.instance)?.clones.get(owner.clone)?.get(by.port);
    if (conn) this.writeTo(conn, `{"t":"gone","handle":${cloneIndex},"reason":${JSON.stringify(reason.slice(0, 256))}}\n`, true);
    return true;
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
    if (req.channel.remote) {
      // Sessions of a provider on another host are its host's: ending this clone's stream ends the
      // session there (and fails what was outstanding on it), and the next frame starts a new one.
      this.endOrder(req, t === 'close' ? 'closed by a close frame' : 'a new session was opened');
      this.closeRemote(req.channel, req.clone);
      if (t === 'open') this.remoteProvider(req);
      req.write?.(t === 'close' ? `{"t":"closed"${idPart}}\n` : `{"t":"opened"${idPart},"session":0}\n`, true);
      return;
    }
    if (t === 'close') {
      this.endOrder(req, 'closed by a close frame');
      if (req.session) this.sessions.end(req.session);
      req.session = null;
      req.write?.(`{"t":"closed"${idPart}}\n`, true);
      return;
    }
    this.endOrder(req, 'a new session was opened');
    if (req.session) this.sessions.end(req.session);
    const s = this.sessions.open(req, 'open frame');
    if (!s) return;
    this.sessions.when(s, () => {
      // A sticky session without a clone yet is fine (its calls pick one); a refused or failed one is not.
      if (s.closed) req.write?.(`{"t":"error"${idPart},"error":"no clone of ${req.channel.provider.plan.id} could be given to this session"}\n`, true);
      else req.write?.(`{"t":"opened"${idPart},"session":${s.id}}\n`, true);
    });
  }

  /** A frame from a provide port. */
  private fromProvider(conn: PortConn, frame: unknown, bytes: number, plain = false, line?: string): void {
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
      this.notify(conn, env.op!, env.body, plain);
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
      answer(p, { ok: false, error: env.error!, kind: 'error' });
      return;
    }
    const a = admitReply(p.op, ch.inv, env.body, plain, line);
    if (!a.ok) {
      this.settle(p);
      this.violation({ ...byPort(conn, ch), kind: a.kind, detail: a.detail, id: env.id });
      ch.counters.errors++;
      answer(p, { ok: false, error: a.error, kind: 'denied' });
      return;
    }
    const { bodyJson } = a;
    this.settle(p);
    ch.counters.replies++;
    ch.counters.latency(performance.now() - p.sentAt);
    ch.counters.bytes_to_requirer += bytes + 1;
    // A guest's call is answered without an Answer object: the frame is written as answerFrame writes it.
    if (p.respond) p.respond({ ok: true, body: env.body, bodyJson });
    else writeGuest(p.requester, replyFrame(p.origId!, bodyJson));
  }

  /** A notify from a provider goes to the requesters of every channel on that port that carries it. */
  private notify(conn: PortConn, opName: string, body: unknown, plain = false): void {
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
      if (bodyJson === null) bodyJson = plain ? encodePlain(body) : encode(body);
      if (bodyJson === null) return;
      const big = refuseNotifySize(ch.inv, bodyJson);
      if (big) {
        this.violation({ ...byPort(conn, ch), kind: big.kind, detail: big.detail });
        continue;
      }
      // On the channel from a factory port, a created clone notifies only its creator, and the frame
      // names the sender by its handle (`from`), so the creator tells its instances apart.
      const creator = this.creatorOf(ch, conn.clone);
      if (creator === null) {
        this.violation({ ...byPort(conn, ch), kind: 'factory_handle', detail: `${inst}[${conn.clone}] has no creator (it was destroyed): its notification ${opName} is not delivered` });
        continue;
      }
      const line = creator ? `{"t":"notify","op":${op.json},"from":${conn.clone},"body":${bodyJson}}\n` : `{"t":"notify","op":${op.json},"body":${bodyJson}}\n`;
      const perSession = ch.provider.plan.mode === 'per_session';
      // A byte stream's notification is for the one connection it names.
      const streamConn = ch.stream ? (body as { conn?: unknown }).conn : undefined;
      for (const r of ch.requesters) {
        if (!r.alive) continue;
        if (r.stream) {
          if (r.stream.conn === streamConn && r.stream.deliver(opName, body)) ch.counters.frames_to_requirer++;
          continue;
        }
        if (!r.write) continue;
        if (creator && (r.name !== creator.instance || r.clone !== creator.clone)) continue;
        if (conn.remote) {
          // The other host sends a remote provider's notification once per requester clone, already
          // limited to that requester's session there.
          if (r.clone !== conn.clone || r.name !== ch.requirer?.plan.id) continue;
        } else {
          // A session-bound clone speaks only to its session; other providers speak to every requester.
          if (perSession && r.session?.clone !== conn.clone) continue;
          if (ch.provider.sessionClones.has(conn.clone) && r.session?.clone !== conn.clone) continue;
        }
        if (r.write(line, true)) {
          ch.counters.frames_to_requirer++;
          ch.counters.bytes_to_requirer += wireBytes(line);
        }
      }
    }
    if (!carried) {
      const only = conn.channels.length === 1 ? conn.channels[0] : null;
      this.violation({ ...byPort(conn, only), kind: 'unknown_op', detail: `notify ${JSON.stringify(opName)} is not carried by any channel of this port` });
    }
  }

  /**
   * For a channel from a factory port to its created instance: the creator clone that owns created
   * clone `clone`, or null when none does (it was destroyed). Undefined for every other channel.
   */
  private creatorOf(ch: ChannelRt, clone: number): { instance: string; clone: number } | null | undefined {
    const f = this.factoryRts.get(ch.provider.plan.id);
    const by = f?.created.created_by;
    if (!f || !by || ch.plan?.from.instance !== by.instance || ch.plan.from.port !== by.port) return undefined;
    return this.factories.ownerOf(f, clone) ?? null;
  }

  // -------------------------------------------------------------------------
  // Routing

  /**
   * Sends a checked call to a provider clone; exactly one answer goes to `respond`, or, when it
   * is null (a guest's call), to the requester under `origId`.
   */
  private forwardCall(req: Requester, op: OpRt, bodyJson: string | Buffer, respond: ((a: Answer) => void) | null, origId?: number | string, to?: number): void {
    const ch = req.channel;
    ch.counters.calls++;
    // The common case, one connected clone of a provider on this host and no session, is decided
    // here, without the closure that withProvider's other cases need.
    const direct = to === undefined ? this.directProvider(req) : null;
    if (direct !== null) {
      this.callProvider(req, ch, op, bodyJson, respond, origId, direct);
      return;
    }
    // A body taken from the received bytes is a view of them: the call may wait for a session's clone.
    const body = owned(bodyJson);
    this.withProvider(req, to, (conn) => this.callProvider(req, ch, op, body, respond, origId, conn));
  }

  /**
   * Writes a call to the provider port `conn` and records it as outstanding (forwardCall); `conn` is
   * why there is none when it is a string, and the call is answered as unavailable.
   */
  private callProvider(req: Requester, ch: ChannelRt, op: OpRt, bodyJson: string | Buffer, respond: ((a: Answer) => void) | null, origId: number | string | undefined, conn: PortConn | string): void {
    if (typeof conn === 'string') {
      ch.counters.errors++;
      answerReq(req, respond, origId, { ok: false, error: conn, kind: 'unavailable' });
      return;
    }
    const pid = conn.nextId++;
    const now = performance.now();
    const n = this.writeFrameTo(conn, `${CALL_HEAD[0]}${op.json}${CALL_HEAD[1]}${pid}${CALL_HEAD[2]}`, CALL_HEAD_BYTES + op.jsonBytes + decimalDigits(pid), bodyJson);
    if (n < 0) {
      ch.counters.errors++;
      answerReq(req, respond, origId, { ok: false, error: `the provider ${conn.instance.plan.id} is not connected`, kind: 'unavailable' });
      return;
    }
    const p: Pending = { pid, channel: ch, op, provider: conn, requester: req, deadline: now + ch.inv.timeout_ms, sentAt: now, respond, origId, prev: null, next: null, list: null, budget: undefined };
    conn.pending.set(p);
    ch.pending.add(p);
    req.budget.inflight++;
    req.outstanding++;
    if (!ch.timer) this.armTimer(ch);
    ch.counters.frames_to_provider++;
    ch.counters.bytes_to_provider += n;
    this.backpressure(conn, req.pausable);
  }

  private forwardSend(req: Requester, op: OpRt, bodyJson: string | Buffer, to?: number): void {
    const ch = req.channel;
    const direct = to === undefined ? this.directProvider(req) : null;
    if (direct !== null) {
      this.sendProvider(req, ch, op, bodyJson, direct);
      return;
    }
    const body = owned(bodyJson);
    this.withProvider(req, to, (conn) => this.sendProvider(req, ch, op, body, conn));
  }

  /** Writes a send to the provider port `conn` (forwardSend); `conn` is why there is none when it is a string, and the send is dropped. */
  private sendProvider(req: Requester, ch: ChannelRt, op: OpRt, bodyJson: string | Buffer, conn: PortConn | string): void {
    if (typeof conn === 'string') {
      this.log({ level: 'debug', message: `send ${op.name} on ${ch.id} dropped: ${conn}`, channel: ch.id });
      return;
    }
    const n = this.writeFrameTo(conn, `${SEND_HEAD[0]}${op.json}${SEND_HEAD[1]}`, SEND_HEAD_BYTES + op.jsonBytes, bodyJson);
    if (n >= 0) {
      ch.counters.frames_to_provider++;
      ch.counters.bytes_to_provider += n;
      this.backpressure(conn, req.pausable);
    }
  }

  /**
   * Finds the provider port for a requester's next frame, or why there is none (a string): the
   * created clone a factory port's frame names, else the remote provider, else directProvider's
   * choice, else (the frame needs a session) its session's clone, opening a session first for a
   * per_session provider. Calls `use` synchronously when no session has to be opened.
   */
  private withProvider(req: Requester, to: number | undefined, use: (conn: PortConn | string) => void): void {
    const ch = req.channel;
    const inst = ch.provider;
    if (to !== undefined) {
      // A factory port's frame goes to the created clone it names (checked to be the creator's own).
      const c = inst.clones.get(to)?.get(ch.providerPort);
      use(c?.stream ? c : `the created instance ${inst.plan.id}[${to}] is not connected on port ${ch.providerPort}`);
      return;
    }
    // A provider on another host: its broker there picks the clone (and opens its sessions).
    if (ch.remote) {
      const [c, why] = this.remoteProvider(req);
      use(c ?? why);
      return;
    }
    // A guest's session that ended (its clone died, or max_sessions refused it) gives way to a new one;
    // an exposure connection's session is the connection, so it stays ended.
    if (req.session?.closed && !req.session.opening && !req.connectionSession) req.session = null;
    const direct = this.directProvider(req);
    if (direct !== null) {
      use(direct);
      return;
    }
    // directProvider declined, so the frame has a session, or the provider is per_session and opens one for it.
    const s = req.session ?? this.sessions.open(req, 'first call')!;
    if (s.clone === null && s.opening) {
      // Frames wait, in order, for the session's clone; as many as calls may be in flight.
      if (s.waiters.length >= ch.inv.max_inflight) {
        use(`${s.waiters.length} frames are already waiting for the session's clone of ${inst.plan.id}`);
        return;
      }
      this.sessions.when(s, () => this.useSessionClone(req, s, use));
      return;
    }
    this.useSessionClone(req, s, use);
  }

  private useSessionClone(req: Requester, s: Session, use: (conn: PortConn | string) => void): void {
    const inst = req.channel.provider;
    if (s.closed) {
      use(`no clone of ${inst.plan.id} is available for this session`);
      return;
    }
    const conn = s.clone === null ? undefined : inst.clones.get(s.clone)?.get(req.channel.providerPort);
    if (conn?.stream) {
      use(conn);
      return;
    }
    if (s.owned) {
      use(`the session's clone ${inst.plan.id}[${s.clone}] is gone`);
      return;
    }
    // A sticky session (not given its own clone) picks again when it has none or its clone went away.
    const c = this.pickConn(inst, req.channel.providerPort);
    if (typeof c !== 'string') s.clone = c.clone;
    use(c);
  }

  /**
   * The provider port for a requester's next frame when that needs no session and no other host:
   * pickConn's choice among the provider's clones (the connection, or why there is none), decided at
   * once, so that the caller needs no closure and no copy of the body; null when the frame needs a
   * session or another host, and the caller asks withProvider (which asks this first too).
   */
  private directProvider(req: Requester): PortConn | string | null {
    const ch = req.channel;
    const inst = ch.provider;
    if (ch.remote || req.session !== null || (inst.plan.mode === 'per_session' && this.opts.onSessionOpen !== undefined)) return null;
    return this.pickConn(inst, ch.providerPort);
  }

  /** A connected clone of `inst` on `port` not bound to a session (pickConn's choice), or null and why there is none. */
  private pickClone(inst: InstanceRt, port: string): [PortConn | null, string] {
    const c = this.pickConn(inst, port);
    return typeof c === 'string' ? [null, c] : [c, ''];
  }

  /**
   * A connected clone of `inst` on `port` not bound to a session: the only one, or the next in turn (by clone number) of
   * several; else why there is none. It runs for every call, so it allocates nothing in the common case of one connected
   * clone: the clones are visited by value (a port's connection knows its clone's index), not as [index, ports] entries.
   */
  private pickConn(inst: InstanceRt, port: string): PortConn | string {
    let first: PortConn | null = null;
    let candidates: PortConn[] | null = null;
    for (const ports of inst.clones.values()) {
      const c = ports.get(port);
      if (!c || !c.stream || inst.sessionClones.has(c.clone)) continue;
      if (first === null) first = c;
      else (candidates ??= [first]).push(c);
    }
    if (first === null) return `no clone of ${inst.plan.id} is attached and connected on port ${port}`;
    if (candidates === null) return first;
    candidates.sort((a, b) => a.clone - b.clone);
    const c = candidates[inst.rr % candidates.length];
    inst.rr = (inst.rr + 1) % 1_000_000_007;
    return c;
  }

  private failPending(conn: PortConn, why: string): void {
    for (const p of conn.pending.values()) {
      this.settle(p);
      p.channel.counters.errors++;
      answer(p, { ok: false, error: why, kind: 'unavailable' });
    }
  }

  // -------------------------------------------------------------------------
  // Timeouts

  /** Removes a call from the outstanding tables (it was answered, failed or timed out). */
  private settle(p: Pending): void {
    p.provider.pending.delete(p.pid);
    if (p.channel.pending.delete(p)) {
      (p.budget ?? p.requester.budget).inflight--;
      p.requester.outstanding--;
    }
  }

  private armTimer(ch: ChannelRt): void {
    const first = ch.pending.first();
    if (!first) return;
    const wait = Math.max(0, first.deadline - performance.now());
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
      answer(p, { ok: false, error: `timeout: ${p.op.name} got no reply within ${ch.inv.timeout_ms} ms`, kind: 'timeout' });
    }
    if (ch.pending.size > 0) this.armTimer(ch);
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
      this.checkHeld(stream, sender);
    }, PENALTY_PAUSE_MS);
    t.unref?.();
  }

  /**
   * Checks the next HELD_SLICE lines a sender's splitter held while it was penalised, and lets the
   * event loop turn (its other sockets are read) before the next ones; once nothing is held, reads the
   * sender again. A violation among them over the budget pauses the sender again, and its timer goes on.
   */
  private checkHeld(stream: Duplex, sender: Sender): void {
    if (stream.destroyed || this.senders.get(stream) !== sender || sender.penalised) return;
    this.batch(() => this.guard('held frames', () => sender.splitter.release(HELD_SLICE)));
    if (sender.penalised) return;
    if (sender.splitter.onHold) {
      setImmediate(() => this.checkHeld(stream, sender));
      return;
    }
    if (sender.waitingOn === 0) stream.resume();
  }

  /** `guard` for a port's frame, without building its label (or a closure) unless the handling throws. */
  private onLineGuarded(conn: PortConn, line: string, bytes: number, raw: Buffer, rawStart: number): void {
    try {
      this.onLine(conn, line, bytes, raw, rawStart);
    } catch (e) {
      this.log({ level: 'error', message: `internal error handling frame from ${conn.key}: ${(e as Error)?.stack ?? String(e)}` });
    }
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

/**
 * The constant parts of the head of a call the broker writes to a provider (`{"t":"call","op":OP,"id":ID,"body":`)
 * and of a send (`{"t":"send","op":OP,"body":`), and their bytes (ASCII): a frame's size on the wire is counted from
 * its parts, without the engine flattening the head to count it.
 */
const CALL_HEAD = ['{"t":"call","op":', ',"id":', ',"body":'] as const;
const CALL_HEAD_BYTES = CALL_HEAD.reduce((n, p) => n + p.length, 0);
const SEND_HEAD = ['{"t":"send","op":', ',"body":'] as const;
const SEND_HEAD_BYTES = SEND_HEAD.reduce((n, p) => n + p.length, 0);

/** The frame `head` + body + `}` and a newline: text for a body in text, bytes (one buffer) for a body in bytes. */
function frameWith(head: string, body: string | Buffer): string | Buffer {
  if (typeof body === 'string') return `${head}${body}}\n`;
  const h = Buffer.byteLength(head, 'utf8');
  const out = Buffer.allocUnsafe(h + body.length + 2);
  out.write(head, 0, 'utf8');
  body.copy(out, h);
  out[h + body.length] = 0x7d; // }
  out[h + body.length + 1] = 0x0a; // newline
  return out;
}

/** A body that stays valid after the current chunk: a copy of one given as bytes (possibly a view of what was received). */
function owned(body: string | Buffer): string | Buffer {
  return typeof body === 'string' ? body : Buffer.from(body);
}

/** Writes what a batch held back for one destination, in order, in one write, and empties it. */
function writeOut(o: Outgoing): void {
  if (o.bufs) {
    if (o.text.length > 0) {
      const t = Buffer.from(o.text, 'utf8');
      o.bufs.push(t);
      o.bufBytes += t.length;
    }
    if (!o.s.destroyed) o.s.write(o.bufs.length === 1 ? o.bufs[0] : Buffer.concat(o.bufs, o.bufBytes));
  } else if (o.text.length > 0 && !o.s.destroyed) {
    o.s.write(o.text);
  }
  o.text = '';
  o.bufs = null;
  o.bufBytes = 0;
}

/** Sends a call's answer to the guest requester that made it, under the requester's own id. */
function answerTo(req: Requester, origId: number | string): (a: Answer) => void {
  return (answer) => answerGuest(req, origId, answer);
}

/** Writes an answer to a guest requester under its own id for the call. */
function answerGuest(req: Requester, origId: number | string, a: Answer): void {
  writeGuest(req, answerFrame(origId, a));
}

/** Writes an answer's frame to a guest requester that is still there, and counts it. */
function writeGuest(req: Requester, frame: string): void {
  if (req.alive && req.write && req.write(frame, false)) req.channel.counters.frames_to_requirer++;
}

/** Gives a call its answer: to `respond`, or, when it is null (a guest's call), to the requester under `origId`. */
function answerReq(req: Requester, respond: ((a: Answer) => void) | null, origId: number | string | undefined, a: Answer): void {
  if (respond) respond(a);
  else answerGuest(req, origId!, a);
}

/** Gives an outstanding call its answer (see answerReq). */
function answer(p: Pending, a: Answer): void {
  answerReq(p.requester, p.respond, p.origId, a);
}

function answerFrame(id: number | string, a: Answer): string {
  if (a.ok) return replyFrame(id, a.bodyJson);
  return `{"t":"error","id":${idJson(id)},"error":${JSON.stringify(a.error)}}\n`;
}

function replyFrame(id: number | string, bodyJson: string): string {
  return `{"t":"reply","id":${idJson(id)},"body":${bodyJson}}\n`;
}

/** A requester's id for a call as it is written in a frame. */
function idJson(id: number | string): string {
  return typeof id === 'number' ? String(id) : JSON.stringify(id);
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
