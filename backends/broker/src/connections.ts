// The TCP connections of one exposure: how many it holds, how many one peer
// may hold, and when a connection that does nothing is closed.
//
// A full table must not lock clients out: a new connection that finds the
// exposure (or its peer's share) full closes the connection that has been
// quiet the longest and has nothing outstanding, and is refused only when
// every connection it could replace is busy. Connections that send nothing,
// or start a request or a frame and never finish it, are closed after a
// timeout, so idle or half-sent connections cannot pile up either.

import type { Socket } from 'node:net';
import type { ExposureConnections } from '@mcl/plan';
import { TokenBucket } from './lines';

export interface ConnectionLimits {
  /** Connections one exposure holds at once. */
  maxConnections: number;
  /** Connections one peer address holds at once on one exposure. */
  maxPerPeer: number;
  /**
   * How long a started HTTP request head or frame line may take to finish, and how long an HTTP
   * connection may stay open without a request in progress and without sending anything.
   */
  headerTimeoutMs: number;
  /** How long a line-JSON connection may stay with no call outstanding and no bytes either way. */
  idleTimeoutMs: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxConnections: 1024,
  // Half the table: one peer can never take every connection, even before shedding.
  maxPerPeer: 512,
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
};

/** Figures of one exposure's connections since the broker started. */
export interface ConnectionStats {
  /** Connections open now. */
  open: number;
  /** Connections accepted (shed or closed ones included; refused ones not). */
  total: number;
  /** Quiet connections closed to make room for a new one. */
  shed: number;
  /** New connections closed on arrival: the table was full of busy connections. */
  refused: number;
  /** Connections closed for sending nothing, or for not finishing a request or frame, in time. */
  timed_out: number;
}

export interface Tracked {
  readonly sock: Socket;
  readonly peer: string;
  /** Order of arrival, to break ties between connections quiet for as long. */
  readonly seq: number;
  /** Last time (performance.now()) bytes moved either way, as far as seen. */
  lastActive: number;
  bytesSeen: number;
}

export interface ConnectionHooks {
  /** Whether the connection has a call outstanding or a request in progress: it is never shed or closed for idleness. */
  busy(): boolean;
  /** When its unfinished message began (performance.now()), or null when there is none. */
  unfinishedSince(): number | null;
}

/** A peer's address as one key: an IPv4 address mapped into IPv6 counts as the IPv4 address. */
export function peerKey(address: string | undefined): string {
  if (!address) return '?';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export class ConnectionTable {
  private readonly conns = new Map<Socket, Tracked & { hooks: ConnectionHooks }>();
  private readonly perPeer = new Map<string, number>();
  private seq = 0;
  private readonly counts = { total: 0, shed: 0, refused: 0, timed_out: 0 };
  /** New connections of an exposure whose plan sets `connections.rate`. */
  private readonly arrivals: TokenBucket | null;

  constructor(
    readonly limits: ConnectionLimits,
    /** HTTP connections are idle after headerTimeoutMs; line-JSON ones after idleTimeoutMs. */
    private readonly http: boolean,
    /** Told why a connection was shed, refused or timed out. */
    private readonly report: (what: 'shed' | 'refused' | 'timed_out', peer: string, why: string) => void,
    /**
     * The limits the plan declares for this exposure. A declared maximum is a promise to the
     * guest behind it (an SSH server sized for 50 sessions): one connection more is refused,
     * never made room for by shedding another, as the broker's own table limits do.
     */
    readonly declared: ExposureConnections = {},
  ) {
    this.arrivals = declared.rate ? new TokenBucket(declared.rate.per_second, declared.rate.burst) : null;
  }

  /**
   * Admits a new connection, shedding the quietest idle one when the exposure
   * or the peer is at its limit; destroys the new one and returns false when
   * there is nothing to shed.
   */
  admit(sock: Socket, hooks: ConnectionHooks, now = performance.now()): boolean {
    const peer = peerKey(sock.remoteAddress);
    const declaredMax = this.declared.max;
    const refusal =
      this.arrivals && !this.arrivals.take(now)
        ? `over the exposure's connection_rate of ${this.declared.rate!.per_second}/s (burst ${this.declared.rate!.burst})`
        : declaredMax !== undefined && this.conns.size >= declaredMax
          ? `the exposure's max_connections of ${declaredMax} are open`
          : null;
    if (refusal !== null) {
      this.counts.refused++;
      this.report('refused', peer, refusal);
      sock.destroy();
      return false;
    }
    const peerFull = (this.perPeer.get(peer) ?? 0) >= this.limits.maxPerPeer;
    const full = this.conns.size >= this.limits.maxConnections;
    if (peerFull || full) {
      // At the peer's limit, the peer makes room among its own connections; else anyone's quietest goes.
      const victim = this.quietest(peerFull ? peer : null, now);
      if (!victim) {
        this.counts.refused++;
        this.report('refused', peer, peerFull ? `the peer already holds ${this.limits.maxPerPeer} busy connections` : `all ${this.limits.maxConnections} connections are busy`);
        sock.destroy();
        return false;
      }
      this.counts.shed++;
      this.report('shed', victim.peer, `closed, quiet for ${Math.round(now - victim.lastActive)} ms, to make room for a new connection${peerFull ? ' of the same peer' : ''}`);
      this.remove(victim.sock);
      victim.sock.destroy();
    }
    this.conns.set(sock, { sock, peer, seq: this.seq++, lastActive: now, bytesSeen: 0, hooks });
    this.perPeer.set(peer, (this.perPeer.get(peer) ?? 0) + 1);
    this.counts.total++;
    return true;
  }

  /** Forgets a connection (it closed). Safe to call more than once. */
  remove(sock: Socket): void {
    const c = this.conns.get(sock);
    if (!c) return;
    this.conns.delete(sock);
    const n = (this.perPeer.get(c.peer) ?? 1) - 1;
    if (n <= 0) this.perPeer.delete(c.peer);
    else this.perPeer.set(c.peer, n);
  }

  /** Marks a connection as active now (it sent or was sent something). */
  touch(sock: Socket, now = performance.now()): void {
    const c = this.conns.get(sock);
    if (c) c.lastActive = now;
  }

  /** Closes the connections that were idle, or did not finish what they started, for too long. */
  sweep(now = performance.now()): void {
    const idleLimit = this.declared.idle_timeout_ms ?? (this.http ? this.limits.headerTimeoutMs : this.limits.idleTimeoutMs);
    for (const c of [...this.conns.values()]) {
      this.refresh(c, now);
      if (c.hooks.busy()) continue;
      const since = c.hooks.unfinishedSince();
      let why: string | null = null;
      if (since !== null) {
        // node:http answers an unfinished request head itself (408) at the header timeout; this is its fallback.
        const limit = this.http ? 2 * this.limits.headerTimeoutMs : this.limits.headerTimeoutMs;
        if (now - since > limit) why = `did not finish a ${this.http ? 'request head' : 'frame'} within ${limit} ms`;
      } else if (now - c.lastActive > idleLimit) why = `idle for ${idleLimit} ms`;
      if (why === null) continue;
      this.counts.timed_out++;
      this.report('timed_out', c.peer, why);
      this.remove(c.sock);
      c.sock.destroy();
    }
  }

  /** Counts a connection closed for a timeout noticed elsewhere (node:http's header and request timeouts). */
  timedOut(sock: Socket, why: string): void {
    const c = this.conns.get(sock);
    if (!c) return;
    this.counts.timed_out++;
    this.report('timed_out', c.peer, why);
    this.remove(sock);
  }

  stats(): ConnectionStats {
    return { open: this.conns.size, ...this.counts };
  }

  /** Takes bytes that moved since the last look as activity. */
  private refresh(c: Tracked, now: number): void {
    const bytes = c.sock.bytesRead + c.sock.bytesWritten;
    if (bytes !== c.bytesSeen) {
      c.bytesSeen = bytes;
      c.lastActive = now;
    }
  }

  /** The connection (of `peer`, or of anyone) quiet the longest with nothing outstanding, or null. */
  private quietest(peer: string | null, now: number): Tracked | null {
    let best: Tracked | null = null;
    for (const c of this.conns.values()) {
      if (peer !== null && c.peer !== peer) continue;
      if (c.hooks.busy()) continue;
      this.refresh(c, now);
      if (!best || c.lastActive < best.lastActive || (c.lastActive === best.lastActive && c.seq < best.seq)) best = c;
    }
    return best;
  }
}
