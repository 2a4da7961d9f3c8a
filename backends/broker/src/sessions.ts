// Sessions: a requester's claim on a provider clone. For a per_session
// provider the supervisor's hook (onSessionOpen) forks a clone for each
// session, and the session gives it back (onSessionClose) when it ends; for
// replicas a session sticks to the clone picked for it and picks again when
// that clone goes away. The broker (broker.ts) opens and ends sessions as
// requesters come and go; this module keeps their life cycle.

import type { EventEmitter } from 'node:events';
import type { BrokerLogEntry, BrokerOptions } from './types';
import { byRequester, type InstanceRt, type Offence, type PortConn, type Requester, type Session } from './state';

/** What sessions need of the broker. */
export interface SessionHost {
  readonly options: Pick<BrokerOptions, 'onSessionOpen' | 'onSessionClose' | 'sessionConnectTimeoutMs'>;
  /** Where `session-open` and `session-close` are emitted, and `connected` is heard. */
  readonly events: EventEmitter;
  violation(o: Offence): void;
  log(e: BrokerLogEntry): void;
  /** A connected clone of `inst` on `port` not bound to a session, or null with the reason. */
  pickClone(inst: InstanceRt, port: string): [PortConn | null, string];
  /** Fails the calls outstanding on a port. */
  failPending(conn: PortConn, why: string): void;
}

export class Sessions {
  private nextId = 1;

  /** The id the next session gets (a checkpoint keeps it, so restored sessions' ids are not reused). */
  get nextSessionId(): number {
    return this.nextId;
  }

  /** Continues numbering sessions from a checkpoint's next id (never backwards). */
  continueFrom(next: number): void {
    if (next > this.nextId) this.nextId = next;
  }

  constructor(private readonly host: SessionHost) {}


  /**
   * Starts a session for a requester. For per_session providers with a hook
   * the hook gives the session its own clone; otherwise the session sticks to
   * a clone picked now (replicas) and re-picks if that clone goes away.
   */
  open(req: Requester, via: string): Session | null {
    const inst = req.channel.provider;
    const s: Session = { id: this.nextId++, instance: inst, clone: null, opening: null, waiters: [], closed: false, owned: false, requester: req };
    const hook = this.host.options.onSessionOpen;
    if (inst.plan.mode === 'per_session' && hook) {
      const max = inst.plan.max_sessions;
      const live = [...inst.sessions].filter((x) => !x.closed).length;
      if (max !== undefined && live >= max) {
        this.host.violation({ ...byRequester(req), kind: 'sessions', detail: `${inst.plan.id} already has ${live} sessions, its max_sessions` });
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
          this.host.log({ level: 'error', message: `session for ${inst.plan.id} refused: ${(e as Error).message}`, instance: inst.plan.id });
          return null;
        }
        s.owned = true;
        s.clone = idx;
        inst.sessionClones.add(idx);
        if (s.closed) return idx; // The requester left while the clone was being made; released below.
        const ok = await this.waitConnected(inst, idx, req.channel.providerPort, this.host.options.sessionConnectTimeoutMs ?? 30_000);
        if (!ok) this.host.log({ level: 'warn', message: `session clone ${inst.plan.id}[${idx}] did not connect port ${req.channel.providerPort} in time`, instance: inst.plan.id, clone: idx });
        this.host.events.emit('session-open', { instance: inst.plan.id, clone: idx, session: s.id, via });
        this.host.log({ level: 'info', message: `session ${s.id} of ${inst.plan.id} opened on clone ${idx} (${via})`, instance: inst.plan.id, clone: idx });
        return idx;
      })();
      void s.opening.then((idx) => {
        s.opening = null;
        if (idx === null) s.closed = true;
        // The requester may have left while the clone was being made or connected: give the clone back.
        if (s.closed) this.release(s);
        for (const w of s.waiters.splice(0)) w(s.closed ? null : idx);
      });
      return s;
    }
    // Sticky session over replicas or a single instance.
    const [conn] = this.host.pickClone(inst, req.channel.providerPort);
    s.clone = conn ? conn.clone : null;
    inst.sessions.add(s);
    req.session = s;
    return s;
  }

  /** Runs `fn` with the session's clone once it has one (now, unless the hook is still making it). */
  when(s: Session, fn: (clone: number | null) => void): void {
    if (s.opening) s.waiters.push(fn);
    else fn(s.closed ? null : s.clone);
  }

  /** Ends a session; a clone the hook gave it is given back (onSessionClose) once it is made. */
  end(s: Session): void {
    if (s.closed && !s.opening) {
      s.instance.sessions.delete(s);
      return;
    }
    s.closed = true;
    if (s.opening) return; // Released when the hook resolves.
    this.release(s);
  }

  private release(s: Session): void {
    const inst = s.instance;
    inst.sessions.delete(s);
    if (!s.owned || s.clone === null) return;
    const idx = s.clone;
    s.owned = false;
    inst.sessionClones.delete(idx);
    // Fail what is still outstanding on that clone: its answers would have nowhere to go.
    const ports = inst.clones.get(idx);
    if (ports) for (const conn of ports.values()) this.host.failPending(conn, 'the session ended');
    this.host.events.emit('session-close', { instance: inst.plan.id, clone: idx, session: s.id });
    this.host.log({ level: 'info', message: `session ${s.id} of ${inst.plan.id} on clone ${idx} closed`, instance: inst.plan.id, clone: idx });
    const hook = this.host.options.onSessionClose;
    if (hook) {
      Promise.resolve()
        .then(() => hook(inst.plan.id, idx))
        .catch((e) => this.host.log({ level: 'error', message: `onSessionClose(${inst.plan.id}, ${idx}) failed: ${(e as Error).message}`, instance: inst.plan.id, clone: idx }));
    }
  }

  /** Resolves true once the clone's port is connected, false after `ms`. */
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
        this.host.events.off('connected', onConnected);
        resolve(ok);
      };
      this.host.events.on('connected', onConnected);
    });
  }
}
