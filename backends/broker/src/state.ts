// The broker's run-time records, shared by the broker (broker.ts), its
// sessions (sessions.ts) and its exposures (exposures.ts): a plan channel or
// exposure at run time, an attached port, whoever sends calls on a channel, a
// session, a call in flight, and an offence (one refused frame).

import type { Duplex } from 'node:stream';
import type { PlanChannel, PlanExposure, PlanInstance, PlanPort } from '@mcl/plan';
import type { Budget, ChannelRules, OpRt } from './admit';
import type { Counters } from './counters';
import { LineSplitter } from './lines';
import type { PortTarget, ViolationKind } from './types';

/** Above this many bytes queued to a peer, notices to it (denied, notify) are dropped rather than queued. */
export const DROP_WATER = 4 * 1024 * 1024;

/** A call forwarded to a provider and not yet answered. */
export interface Pending {
  /** The id the provider sees. */
  pid: number;
  channel: ChannelRt;
  op: OpRt;
  provider: PortConn;
  requester: Requester;
  deadline: number;
  sentAt: number;
  /**
   * Where the answer goes; null for a guest's call, whose answer is written to
   * `requester` under `origId` (no closure per call on the common path).
   */
  respond: ((answer: Answer) => void) | null;
  /** The requester's own id for the call (the id its answer carries; kept for a checkpoint). */
  origId?: number | string;
  /** Its neighbours in its channel's list of outstanding calls (CallList), and that list while it is in it. */
  prev: Pending | null;
  next: Pending | null;
  list: CallList | null;
  /**
   * The budget the call was counted in, when it is not the requester's current one: a `rebind`
   * gives the requester the new channel's budget, and a call still outstanding on the previous
   * channel gives back its place in the previous one.
   */
  budget?: Budget;
}

/**
 * A channel's outstanding calls in the order they were made, which is deadline order (a channel has
 * one timeout). A list threaded through the calls themselves: adding and removing a call allocates
 * nothing, where a Set's table is copied again every few dozen calls and, being alive, is promoted
 * out of the young generation each time. Iteration is a Set's: a call removed meanwhile and not yet
 * reached is skipped, and a removed call keeps its `next`, so iterating on from it stays in order.
 */
export class CallList implements Iterable<Pending> {
  private head: Pending | null = null;
  private tail: Pending | null = null;
  size = 0;

  add(p: Pending): void {
    if (p.list === this) return;
    p.list = this;
    p.prev = this.tail;
    p.next = null;
    if (this.tail) this.tail.next = p;
    else this.head = p;
    this.tail = p;
    this.size++;
  }

  /** Removes `p`; false when it was not in the list. */
  delete(p: Pending): boolean {
    if (p.list !== this) return false;
    if (p.prev) p.prev.next = p.next;
    else this.head = p.next;
    if (p.next) p.next.prev = p.prev;
    else this.tail = p.prev;
    p.list = null;
    p.prev = null;
    this.size--;
    return true;
  }

  /** The oldest call, or undefined. */
  first(): Pending | undefined {
    return this.head ?? undefined;
  }

  *[Symbol.iterator](): Iterator<Pending> {
    let p = this.head;
    while (p) {
      yield p;
      // Removed meanwhile: its `next` still leads on; skip the calls removed since.
      let n: Pending | null = p.next;
      while (n && n.list !== this) n = n.next;
      p = n;
    }
  }
}

/** Increasing id; an id that is NaN (only a checkpoint could give one) goes last, so that the order is total. */
function byPid(a: Pending, b: Pending): number {
  const d = a.pid - b.pid;
  if (d === d) return d;
  return Number.isNaN(a.pid) ? (Number.isNaN(b.pid) ? 0 : 1) : Number.isNaN(b.pid) ? -1 : 0;
}

/** The largest a CallTable's slot array grows (entries); past it, colliding ids go to its spill map. */
const CALL_TABLE_MAX_SLOTS = 1 << 14;

/**
 * A provide port's outstanding calls by the id the broker gave each (`pid`). The ids are handed out
 * in increasing order (PortConn.nextId), so the ids outstanding at once lie in a window and
 * `id & mask` finds each its own slot in an array: adding and removing a call allocates nothing,
 * where a Map's table is rebuilt every few dozen calls as deleted entries pile up (about 100 bytes a
 * call) and, being alive, promoted out of the young generation. When a new id's slot is taken (the
 * window has grown wider than the array: an old call is still unanswered), the array doubles, which
 * keeps every other id in a slot of its own; at CALL_TABLE_MAX_SLOTS, and for an id that is not a
 * safe integer (a checkpoint's), the call goes to a Map instead. It answers what a Map keyed by
 * `pid` answers; `values` lists the calls by increasing id, which is the order they were made.
 */
export class CallTable {
  private slots: (Pending | undefined)[] = new Array<Pending | undefined>(16).fill(undefined);
  private mask = 15;
  private spill: Map<number, Pending> | null = null;
  size = 0;

  get(id: number): Pending | undefined {
    const p = this.slots[id & this.mask];
    if (p !== undefined && p.pid === id) return p;
    return this.spill === null ? undefined : this.spill.get(id);
  }

  /** Adds `p` under its `pid`, replacing a call of the same id as a Map's `set` would. */
  set(p: Pending): void {
    const id = p.pid;
    if (this.spill !== null && this.spill.has(id)) {
      this.spill.set(id, p);
      return;
    }
    if (Number.isSafeInteger(id)) {
      for (;;) {
        const i = id & this.mask;
        const q = this.slots[i];
        if (q === undefined || q.pid === id) {
          this.slots[i] = p;
          if (q === undefined) this.size++;
          return;
        }
        if (this.slots.length >= CALL_TABLE_MAX_SLOTS) break;
        this.grow();
      }
    }
    (this.spill ??= new Map()).set(id, p);
    this.size++;
  }

  /** Removes the call of id `id`; false when there is none. */
  delete(id: number): boolean {
    const i = id & this.mask;
    const p = this.slots[i];
    if (p !== undefined && p.pid === id) {
      this.slots[i] = undefined;
      this.size--;
      return true;
    }
    if (this.spill !== null && this.spill.delete(id)) {
      this.size--;
      return true;
    }
    return false;
  }

  /** The calls, by increasing id (a copy: the table may be changed while it is gone through). */
  values(): Pending[] {
    const out: Pending[] = [];
    if (this.size === 0) return out;
    for (const p of this.slots) if (p !== undefined) out.push(p);
    if (this.spill !== null) for (const p of this.spill.values()) out.push(p);
    return out.sort(byPid);
  }

  clear(): void {
    this.slots = new Array<Pending | undefined>(16).fill(undefined);
    this.mask = 15;
    this.spill = null;
    this.size = 0;
  }

  /**
   * Doubles the array. Ids in different slots under the old mask differ in its bits, so they are in
   * different slots under the new one too.
   */
  private grow(): void {
    const slots = new Array<Pending | undefined>(this.slots.length * 2).fill(undefined);
    const mask = slots.length - 1;
    for (const p of this.slots) if (p !== undefined) slots[p.pid & mask] = p;
    this.slots = slots;
    this.mask = mask;
  }
}

export type Answer = { ok: true; body: unknown; bodyJson: string } | { ok: false; error: string; kind: 'error' | 'timeout' | 'unavailable' | 'denied' };

/** A channel or exposure at run time; its rules are what the decisions (admit.ts) read. */
export interface ChannelRt extends ChannelRules {
  id: string;
  plan: PlanChannel | null;
  exposure: PlanExposure | null;
  provider: InstanceRt;
  providerPort: string;
  /** The requiring instance, or null for an exposure. */
  requirer: InstanceRt | null;
  /** Budgets by clone of the requiring side (exposures: one, under clone 0). */
  budgets: Map<number, Budget>;
  pending: CallList;
  timer: NodeJS.Timeout | null;
  counters: Counters;
  requesters: Set<Requester>;
  lineLimit: number;
  /** Whether it is a byte-stream exposure (std.tcp.Stream): notifications go to the connection they name. */
  stream: boolean;
  /** Whether its provider runs on another host: calls and sends go over the link (link.ts, setRemoteProviders). */
  remote?: boolean;
}

export interface Session {
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
export interface Requester {
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
  /**
   * A byte-stream exposure's connection: the provider's notifications carry the connection's number
   * in `conn`, and only those of its own number reach it, as bytes (`deliver`), not as frames.
   */
  stream?: { conn: number; deliver(op: string, body: unknown): boolean };
}

export interface InstanceRt {
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
export interface Offence {
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
export function byRequester(req: Requester, conn: PortConn | null = null): Pick<Offence, 'instance' | 'clone' | 'port' | 'channel' | 'requester' | 'conn'> {
  return { instance: req.name, clone: req.clone, port: req.port, channel: req.channel, requester: req, conn };
}

/** The sender of an offence by a port, refused on `channel`. */
export function byPort(conn: PortConn, channel: ChannelRt | null): Pick<Offence, 'instance' | 'clone' | 'port' | 'channel' | 'conn'> {
  return { instance: conn.instance.plan.id, clone: conn.clone, port: conn.port.name, channel, conn };
}

export class PortConn {
  stream: Duplex | null = null;
  attached = true;
  splitter: LineSplitter;
  reconnectTimer: NodeJS.Timeout | null = null;
  reconnectDelay: number;
  /** Provide port: calls forwarded to it, by provider id. */
  pending = new CallTable();
  /** Provide port: ids recently failed by timeout, so a late reply is not taken for an attack. */
  expired = new Set<number>();
  nextId = 1;
  /** Require port: the requester this port is. */
  requester: Requester | null = null;
  /** Sockets paused because this port's stream is full. */
  pausedSources = new Set<Duplex>();
  connectWaiters: (() => void)[] = [];
  /**
   * A provider on another host, reached over the link for one requester clone (its `clone` is the
   * requester's): its notifications go to that requester clone only, since the other host sends them
   * once per requester clone.
   */
  remote = false;

  constructor(
    readonly instance: InstanceRt,
    readonly clone: number,
    readonly port: PlanPort,
    /** Provide port: its channels (and exposure); require port: its channel, if wired. */
    readonly channels: ChannelRt[],
    /** Where the port is reached; a moved clone's ports get their new place (Broker.moveClone). */
    public target: PortTarget,
    lineLimit: number,
    onLine: (conn: PortConn, line: string, bytes: number, raw: Buffer, rawStart: number) => void,
    onOversize: (conn: PortConn, bytes: number) => void,
    baseDelay: number,
  ) {
    this.reconnectDelay = baseDelay;
    this.splitter = new LineSplitter(lineLimit, {
      line: (text, bytes, raw, rawStart) => onLine(this, text, bytes, raw, rawStart),
      oversize: (bytes) => onOversize(this, bytes),
    });
  }

  get key(): string {
    return `${this.instance.plan.id}[${this.clone}].${this.port.name}`;
  }
}
