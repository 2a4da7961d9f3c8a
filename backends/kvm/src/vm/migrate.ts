// Live migration of one clone (spec/hosts.md, "Live migration").
//
// The destination is a QEMU process started from the same template (same
// content hash, so the same machine and device layout and the same RAM file)
// with `-incoming defer -S`; the source's QEMU sends its state with QEMU's
// precopy migration: RAM while the guest runs, then the pages it dirtied
// meanwhile, then, with the guest stopped, the rest and the device state.
//
// The stream never travels in the clear or unauthenticated: the source QEMU
// writes it to a unix socket of the source host, which is carried over one TLS
// connection to the destination host, where it reaches a unix socket the
// destination QEMU listens on. Both ends present a certificate made for the
// deployment (a host's link identity) and accept only the other's pinned one,
// as the link between brokers does (spec/hosts.md, "Links between hosts").
//
// `pause-before-switchover` stops the migration once the source guest is
// stopped and before its device state leaves: the caller's `switchover` hook
// runs there (the broker holds the clone's traffic and checks that nothing it
// wrote to the clone is still unread by QEMU); a hook that refuses cancels the
// migration and QEMU continues the source guest.
//
// Pages equal to the template's: QEMU 7.2's x-ignore-shared skips only RAM
// blocks mapped shared, and a clone's RAM is a private mapping of the
// template's file, so precopy sends every page of guest RAM. Zero pages travel
// as a flag only (QEMU's `duplicate` count); the other template pages travel
// whole, which the report shows (bytes against the clone's private memory).

import { unlink } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { qemuPaths, readyClone, startQemu, type StartedQemu } from './clone';
import type { QmpClient, QmpEvent } from './qmp';
import type { Clone, CloneOptions, Template } from './types';

/** A host's key and certificate (PEM), and the certificate of the other host, pinned. */
export interface MigrationIdentity {
  key: string;
  cert: string;
  /** The other host's certificate: the only one accepted. */
  peerCert: string;
}

/** What a migration moved and how long it took. */
export interface MigrationReport {
  /** From `migrate` to completion, ms (QEMU's `total-time`). */
  totalMs: number;
  /** The time the guest was stopped, ms (QEMU's `downtime`). */
  guestDowntimeMs: number;
  /** Bytes QEMU sent for RAM (`ram.transferred`). */
  ramBytes: number;
  /** Pages sent whole (`ram.normal`) and as a zero flag only (`ram.duplicate`). */
  normalPages: number;
  zeroPages: number;
  /** Bytes that crossed the TLS connection (RAM, device state, framing). */
  wireBytes: number;
  /** The source clone's private memory when the migration began (what a migration sending only the clone's own pages would move). */
  sourcePrivateBytes: number;
  /** Attempts QEMU made (a refused switchover cancels one and starts another). */
  attempts: number;
}

export class MigrationError extends Error {
  readonly kind = 'failure' as const;
  constructor(message: string, readonly hint?: string) {
    super(message);
    this.name = 'MigrationError';
  }
}

const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;

/** How long a TLS handshake between the hosts may take. */
const HANDSHAKE_TIMEOUT_MS = 5_000;

/**
 * A TLS 1.3 server of this host's `identity` that requires a client
 * certificate and hands `onPeer` only connections presenting the pinned
 * `identity.peerCert` (checked in the handshake and again by fingerprint);
 * the rest is refused and logged. Both the migration stream's listener and
 * the destination's endpoint of a kept clone (lifecycle/kept.ts) are made here.
 */
export function pinnedServer(identity: MigrationIdentity, onPeer: (sock: tls.TLSSocket) => void, log: (s: string) => void = () => undefined): tls.Server {
  const pinned = fingerprint(identity.peerCert);
  const server = tls.createServer(
    {
      key: identity.key,
      cert: identity.cert,
      ca: [identity.peerCert],
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    },
    (sock) => {
      if (sock.getPeerCertificate()?.fingerprint256 !== pinned) {
        log('migration: refused a connection (not the pinned certificate)');
        sock.destroy();
        return;
      }
      onPeer(sock);
    },
  );
  server.on('tlsClientError', (e) => log(`migration: refused a TLS handshake: ${e.message}`));
  return server;
}

/**
 * A TLS 1.3 connection to the other host `to` with this host's `identity`,
 * accepting only the pinned `identity.peerCert`, whatever name or address it
 * answers on. `firstLine`, when given, is written first (what the connection
 * is for, at a kept clone's endpoint).
 */
export function pinnedConnect(identity: MigrationIdentity, to: { host: string; port: number }, firstLine?: string): tls.TLSSocket {
  const pinned = fingerprint(identity.peerCert);
  const t = tls.connect({
    host: to.host,
    port: to.port,
    key: identity.key,
    cert: identity.cert,
    ca: [identity.peerCert],
    minVersion: 'TLSv1.3',
    checkServerIdentity: (_h, cert) => (cert.fingerprint256 === pinned ? undefined : new Error('the destination presented a certificate that is not the pinned one')),
  });
  const timer = setTimeout(() => t.destroy(new Error(`no TLS handshake with ${to.host}:${to.port} within ${HANDSHAKE_TIMEOUT_MS} ms`)), HANDSHAKE_TIMEOUT_MS);
  timer.unref?.();
  t.once('secureConnect', () => {
    clearTimeout(timer);
    if (firstLine !== undefined) t.write(firstLine + '\n');
  });
  t.once('close', () => clearTimeout(timer));
  return t;
}

/**
 * The destination end of the stream: a TLS listener that accepts one
 * connection presenting `identity.peerCert` and pipes it into the unix socket
 * `qemuSocket` (where the destination QEMU listens). Anything else is refused
 * before a byte reaches QEMU.
 */
export async function listenMigration(
  identity: MigrationIdentity,
  qemuSocket: string,
  listen: { host: string; port: number },
  log: (s: string) => void = () => undefined,
): Promise<{ port: number; bytes(): number; connected: Promise<void>; close(): void }> {
  let bytes = 0;
  let taken = false;
  let onConnected!: () => void;
  const connected = new Promise<void>((r) => (onConnected = r));
  const server = pinnedServer(
    identity,
    (sock) => {
      if (taken) {
        log('migration: refused a connection (a stream is already being received)');
        sock.destroy();
        return;
      }
      taken = true;
      server.close();
      sock.on('data', (d: Buffer) => (bytes += d.length));
      pipeUnix(sock, qemuSocket);
      onConnected();
    },
    log,
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    bytes: () => bytes,
    connected,
    close: () => server.close(),
  };
}

/** Pipes `sock` both ways into the unix socket `path`; each ends with the other. Returns the unix side. */
export function pipeUnix(sock: net.Socket, path: string, onConnect?: () => void): net.Socket {
  const q = net.createConnection(path);
  if (onConnect) q.once('connect', onConnect);
  sock.pipe(q);
  q.pipe(sock);
  const end = () => {
    sock.destroy();
    q.destroy();
  };
  sock.on('error', end);
  q.on('error', end);
  sock.on('close', end);
  q.on('close', end);
  return q;
}

/**
 * The source end: a unix socket `localSocket` for the source QEMU's
 * `migrate`, each connection to it carried over a new TLS connection to the
 * destination, which must present `identity.peerCert`. With `firstLine`,
 * each connection begins with that line (what it is for, at a kept clone's
 * endpoint: `migrate`, `port NAME`).
 */
export async function dialMigration(
  identity: MigrationIdentity,
  localSocket: string,
  to: { host: string; port: number },
  firstLine?: string,
): Promise<{ bytes(): number; close(): void; failed: Promise<Error> }> {
  await unlink(localSocket).catch(() => undefined);
  let bytes = 0;
  let onFailed!: (e: Error) => void;
  const failed = new Promise<Error>((r) => (onFailed = r));
  const open = new Set<net.Socket>();
  const server = net.createServer((q) => {
    open.add(q);
    const t = pinnedConnect(identity, to, firstLine);
    open.add(t);
    t.once('secureConnect', () => {
      q.on('data', (d: Buffer) => (bytes += d.length));
      q.pipe(t);
      t.pipe(q);
    });
    const end = (e?: Error) => {
      if (e) onFailed(e);
      q.destroy();
      t.destroy();
      open.delete(q);
      open.delete(t);
    };
    t.on('error', end);
    q.on('error', end);
    t.on('close', () => end());
    q.on('close', () => end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(localSocket, () => resolve());
  });
  return {
    bytes: () => bytes,
    failed,
    close: () => {
      server.close();
      for (const s of open) s.destroy();
      void unlink(localSocket).catch(() => undefined);
    },
  };
}

/** The destination QEMU, waiting for the stream on `incomingSocket`. */
export interface IncomingClone {
  q: StartedQemu;
  /** Resolves when the incoming migration completed; rejects when it failed or QEMU died. */
  loaded: Promise<void>;
  /** Continues the guest (after the caller attached its ports) and returns the clone. */
  finish(): Promise<Clone>;
  /** Kills the destination QEMU (a failed or cancelled migration). */
  abort(): Promise<void>;
}

/**
 * Starts the destination: a QEMU of `template`, paused, listening for the
 * incoming stream on the unix socket `incomingSocket`.
 */
export async function startIncoming(template: Template, options: CloneOptions, incomingSocket: string): Promise<IncomingClone> {
  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  await unlink(incomingSocket).catch(() => undefined);
  const q = await startQemu(template, qemuPaths(options), { timeoutMs, signal: options.signal, paused: true, dieWithParent: true });
  const done = q.qmp.waitEvent('MIGRATION', (e) => ['completed', 'failed', 'cancelled'].includes(String(e.data?.status)), 24 * 3600_000);
  done.catch(() => undefined);
  try {
    // x-ignore-shared as the source has it (its clone loaded the template's state with it): QEMU checks that
    // both ends agree, and it changes the stream's RAM headers.
    await q.qmp.execute('migrate-set-capabilities', {
      capabilities: [
        { capability: 'x-ignore-shared', state: true },
        { capability: 'events', state: true },
      ],
    });
    await q.qmp.execute('migrate-incoming', { uri: `unix:${incomingSocket}` });
  } catch (e) {
    q.kill('SIGKILL');
    await q.exited;
    throw new MigrationError(`the destination QEMU did not accept an incoming migration: ${(e as Error).message}`);
  }
  const died = q.exited.then((e) => {
    throw new MigrationError(`the destination QEMU exited (${e.signal ?? `exit code ${e.code}`}) ${q.stderr().trim().split('\n').slice(-3).join(' ')}`);
  });
  died.catch(() => undefined);
  const loaded = Promise.race([
    done.then((e) => {
      if (e.data?.status !== 'completed') throw new MigrationError(`the incoming migration ${String(e.data?.status)}`);
    }),
    died,
  ]);
  loaded.catch(() => undefined);
  return {
    q,
    loaded,
    async finish() {
      q.loaded = true;
      // The agent is in the middle of its work: a hello on the control port (readyClone's handshake) is answered
      // like any other, and the guest goes on where the source stopped.
      // Its time to ready counts from here: the wait for the stream is the migration's, reported apart.
      return readyClone(template, q, { ...options, paused: false }, { startedAt: Date.now(), connectMs: 0, pooled: false });
    },
    async abort() {
      q.kill('SIGKILL');
      await q.exited;
    },
  };
}

interface MigrateStats {
  status?: string;
  'total-time'?: number;
  downtime?: number;
  ram?: { transferred?: number; normal?: number; duplicate?: number; remaining?: number; mbps?: number };
  'error-desc'?: string;
}

/**
 * Migrates the running clone `source` to the destination behind `uri` (a
 * `unix:` socket that dialMigration carries). `switchover` runs with the
 * source guest stopped, before the device state is sent; resolving false
 * cancels this attempt (the source guest continues) and, up to `attempts`
 * times, starts another. Resolves once the destination has everything; the
 * source QEMU is then stopped, and the caller kills it. Rejects with the
 * source guest running when the migration failed (destination gone, stream
 * cut), after QEMU cancelled it.
 */
export async function migrateOut(
  source: Clone,
  uri: string,
  options: {
    switchover?: () => Promise<boolean>;
    attempts?: number;
    timeoutMs?: number;
    /** Stops waiting when it resolves (the destination died, the tunnel failed): the migration is cancelled. */
    abort?: Promise<Error>;
    /** Also called for each MIGRATION status change ("setup", "active", "pre-switchover", ...). */
    progress?: (status: string, stats: MigrateStats) => void;
    /**
     * Called once, while the guest still runs, when what is left to send falls
     * under nearlyDoneBytes (close to where QEMU stops the guest): the broker
     * holds the clone's traffic from here, so that the guest has read what was
     * sent to it by the time QEMU stops it.
     */
    nearlyDone?: () => void;
  } = {},
): Promise<Omit<MigrationReport, 'wireBytes' | 'sourcePrivateBytes'>> {
  const qmp = source.qmp;
  const maxAttempts = options.attempts ?? 3;
  const timeoutMs = options.timeoutMs ?? 300_000;
  // auto-converge: a guest that dirties memory faster than the stream carries it is slowed down step by
  // step until the rest fits in the allowed downtime, so a busy clone's migration ends.
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [
      { capability: 'events', state: true },
      { capability: 'pause-before-switchover', state: true },
      { capability: 'auto-converge', state: true },
    ],
  });
  for (let attempt = 1; ; attempt++) {
    const outcome = await oneAttempt(qmp, uri, options, timeoutMs);
    if (outcome.kind === 'completed') {
      const s = outcome.stats;
      return {
        // As for the downtime below: QEMU's figure may be missing from the reply (it was, with the downtime, in a test run).
        totalMs: Math.max(s['total-time'] ?? 0, Math.round(outcome.tookMs)),
        // QEMU's figure, in whole milliseconds, may be missing from the reply, and a move once reported 0: the
        // guest was stopped at least from QEMU's pre-switchover event to the completion, so never less than that.
        guestDowntimeMs: Math.max(s.downtime ?? 0, Math.ceil(outcome.pausedMs)),
        ramBytes: s.ram?.transferred ?? 0,
        normalPages: s.ram?.normal ?? 0,
        zeroPages: s.ram?.duplicate ?? 0,
        attempts: attempt,
      };
    }
    if (outcome.kind === 'failed' || attempt >= maxAttempts) {
      throw new MigrationError(
        outcome.kind === 'failed' ? `the migration failed: ${outcome.why}; the clone goes on running on the source` : `the switchover was refused ${attempt} times; the clone goes on running on the source`,
        'check the destination host and the link, then migrate again',
      );
    }
  }
}

/** What is left to send (bytes) below which the clone's traffic is held ahead of the switchover, at least (see migrateOut). */
export const NEARLY_DONE_BYTES = 8 * 1024 * 1024;
/** QEMU's default downtime limit (`downtime-limit`, ms), which migrateOut leaves as it is. */
const DOWNTIME_LIMIT_MS = 300;

/**
 * When to hold: QEMU stops the guest once what is left fits in its downtime
 * limit at the rate it measured (`mbps`); holding at twice that leaves the
 * guest a last iteration to read what was sent to it.
 */
export function nearlyDoneBytes(mbps: number): number {
  return Math.max(NEARLY_DONE_BYTES, 2 * ((mbps * 1e6) / 8) * (DOWNTIME_LIMIT_MS / 1000));
}

/**
 * `pausedMs`: from QEMU's word that it stopped the guest before the switchover (pre-switchover) to its completion, as
 * seen here; `tookMs`: from the `migrate` command to the completion.
 */
type Attempt = { kind: 'completed'; stats: MigrateStats; pausedMs: number; tookMs: number } | { kind: 'refused' } | { kind: 'failed'; why: string };

async function oneAttempt(
  qmp: QmpClient,
  uri: string,
  options: { switchover?: () => Promise<boolean>; abort?: Promise<Error>; progress?: (status: string, stats: MigrateStats) => void; nearlyDone?: () => void },
  timeoutMs: number,
): Promise<Attempt> {
  let near = false;
  const events: QmpEvent[] = [];
  let wake: (() => void) | null = null;
  const onEvent = (e: QmpEvent) => {
    if (e.event !== 'MIGRATION') return;
    events.push(e);
    wake?.();
  };
  qmp.on('event', onEvent);
  let aborted: Error | null = null;
  void options.abort?.then((e) => {
    aborted = e;
    wake?.();
  });
  const deadline = Date.now() + timeoutMs;
  let refused = false;
  let pausedAt: number | undefined;
  const startedAt = performance.now();
  try {
    await qmp.execute('migrate', { uri });
    for (;;) {
      const e = events.shift();
      if (!e) {
        if (aborted) {
          await qmp.execute('migrate_cancel').catch(() => undefined);
          const why = (aborted as Error).message;
          aborted = null;
          await waitEnd(qmp, events, () => new Promise<void>((r) => (wake = r)));
          return { kind: 'failed', why };
        }
        if (Date.now() > deadline) {
          await qmp.execute('migrate_cancel').catch(() => undefined);
          return { kind: 'failed', why: `not done within ${timeoutMs} ms` };
        }
        if (options.nearlyDone && !near) {
          const st = await qmp.execute<MigrateStats>('query-migrate').catch(() => ({}) as MigrateStats);
          if (st.status === 'active' && (st.ram?.remaining ?? Infinity) < nearlyDoneBytes(st.ram?.mbps ?? 0)) {
            near = true;
            options.nearlyDone();
          }
        }
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, options.nearlyDone && !near ? 20 : 1000).unref?.();
        });
        wake = null;
        continue;
      }
      const status = String(e.data?.status);
      options.progress?.(status, {});
      if (status === 'pre-switchover') {
        pausedAt = performance.now();
        const ok = options.switchover ? await options.switchover().catch(() => false) : true;
        if (ok) await qmp.execute('migrate-continue', { state: 'pre-switchover' });
        else {
          refused = true;
          await qmp.execute('migrate_cancel');
        }
      } else if (status === 'completed') {
        const stats = await qmp.execute<MigrateStats>('query-migrate');
        const now = performance.now();
        return { kind: 'completed', stats, pausedMs: pausedAt === undefined ? 0 : now - pausedAt, tookMs: now - startedAt };
      } else if (status === 'failed' || status === 'cancelled') {
        if (refused) {
          // QEMU continues the source guest after a cancelled migration; the next attempt waits until it runs.
          await waitRunning(qmp);
          return { kind: 'refused' };
        }
        const st = await qmp.execute<MigrateStats>('query-migrate').catch(() => ({}) as MigrateStats);
        await waitRunning(qmp);
        return { kind: 'failed', why: st['error-desc'] ?? status };
      }
    }
  } finally {
    qmp.off('event', onEvent);
  }
}

/** Waits for the end of a cancelled migration (failed or cancelled), bounded. */
async function waitEnd(qmp: QmpClient, events: QmpEvent[], next: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const e = events.shift();
    if (e && ['failed', 'cancelled', 'completed'].includes(String(e.data?.status))) break;
    if (Date.now() > deadline) break;
    if (!e) await Promise.race([next(), new Promise((r) => setTimeout(r, 200))]);
  }
  await waitRunning(qmp);
}

/** Waits (bounded) until QEMU runs the guest again after a cancelled migration. */
async function waitRunning(qmp: QmpClient): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const st = await qmp.execute<{ running: boolean; status: string }>('query-status').catch(() => null);
    if (!st || st.running) return;
    if (st.status === 'paused' || st.status === 'postmigrate') {
      await qmp.execute('cont').catch(() => undefined);
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** What migrateClone needs of the broker serving the clone's ports (see Broker.holdClone). */
export interface MigrationBroker {
  /** Stops writing to the clone's ports: new frames wait, bounded and in order. */
  hold(): void;
  /** True when nothing the broker wrote to the clone is still unread by the source QEMU. */
  drained(): Promise<boolean>;
  /**
   * Moves the clone's ports to the destination's sockets once the source's
   * streams ended (it is called before the source QEMU is killed), then
   * releases the held frames there.
   */
  move(): Promise<void>;
  /** Releases the held frames to the source (a failed migration). */
  release(): void;
}

/**
 * Moves a running clone to a destination QEMU on this host or another:
 * `destination` is what startIncoming returned there, reached through the
 * tunnel whose source end is `tunnelSocket`. With `broker`, the clone's
 * traffic is held from the switchover to the release (the report's
 * `holdMs`). On failure the destination is aborted and the clone runs on at
 * the source, its held frames released to it.
 */
export async function migrateClone<C = Clone>(
  source: Clone,
  destination: { loaded: Promise<void>; finish(): Promise<C>; abort(): Promise<void> },
  tunnel: { socket: string; bytes(): number; failed: Promise<Error> },
  broker?: MigrationBroker,
  progress: (line: string) => void = () => undefined,
): Promise<{ clone: C; report: MigrationReport & { holdMs: number } }> {
  const sourcePrivateBytes = (await source.memory().catch(() => null))?.private ?? 0;
  let heldAt = 0;
  let held = false;
  const destGone = destination.loaded.then(
    () => new Promise<Error>(() => undefined),
    (e: Error) => e,
  );
  const abort = Promise.race([tunnel.failed, destGone]);
  let r: Omit<MigrationReport, 'wireBytes' | 'sourcePrivateBytes'>;
  try {
    const hold = () => {
      if (!broker || held) return;
      broker.hold();
      held = true;
      heldAt = performance.now();
    };
    r = await migrateOut(source, `unix:${tunnel.socket}`, {
      abort,
      progress: (s) => progress(`migration ${s}`),
      nearlyDone: hold,
      switchover: async () => {
        if (!broker) return true;
        hold();
        const ok = await broker.drained();
        if (!ok) progress('the clone has not read everything sent to it yet: cancelling this attempt, the next one follows');
        return ok;
      },
    });
    await destination.loaded;
  } catch (e) {
    await destination.abort();
    if (held) broker!.release();
    throw e;
  }
  // The destination has the whole state: the source must never run again. The move starts first, so that
  // the end of the source's streams is taken for the move and not for a provider that went away.
  const moved = broker?.move();
  await source.kill();
  await moved;
  const clone = await destination.finish();
  const holdMs = held ? performance.now() - heldAt : 0;
  return { clone, report: { ...r, wireBytes: tunnel.bytes(), sourcePrivateBytes, holdMs } };
}

/**
 * Bytes written to the unix sockets listening at `paths` that their owner
 * (QEMU) has not read yet: the receive queues of the accepted connections, as
 * `ss` (iproute2) reports them. A frame still there when QEMU stops the guest
 * would stay behind with the source.
 */
export async function unreadBytes(paths: string[]): Promise<number> {
  const { execa } = await import('execa');
  const r = await execa('ss', ['-xnH', 'state', 'established'], { reject: false, timeout: 5_000, maxBuffer: 16 * 1024 * 1024 });
  if (r.exitCode !== 0) throw new MigrationError(`ss failed: ${r.stderr.trim()}`, 'install iproute2');
  const want = new Set(paths);
  let n = 0;
  for (const line of r.stdout.split('\n')) {
    // Netid Recv-Q Send-Q Local-path Local-inode Peer Peer-inode (the state column is left out with a state filter).
    const f = line.trim().split(/\s+/);
    if (f.length >= 5 && f[0] === 'u_str' && want.has(f[3])) n += Number(f[1]) || 0;
  }
  return n;
}
