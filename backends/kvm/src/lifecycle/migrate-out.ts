// The home host's side of moving a running clone to another host of the
// deployment (spec/hosts.md, "Live migration"): the supervisor's `migrate`
// control command. The clone's QEMU moves to the destination, which keeps it
// (lifecycle/kept.ts); its channels stay in this host's broker, whose port
// targets become local unix sockets each carried over a pinned TLS
// connection to the kept clone's endpoint (`port NAME`). Afterwards the
// supervisor holds a RemoteClone for it: its exit comes from the `watch`
// connection, stop() is a `stop` request, and its pid is no process here.

import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { MigrateOutResult, MigrationMode } from '@mcl/plan/backend';
import { LineSplitter } from '@mcl/broker/lines';
import { dialMigration, migrateClone, MigrationError, pinnedConnect, type MigrationIdentity } from '../vm/migrate';
import { movePages } from '../vm/migrate-pages';
import { BackendFailure } from './errors';
import type { BrokerLike, CloneHandle, ExitInfo } from './guest-runtime';
import type { EventSink } from './events';
import { cloneMigrationBroker } from './migrate';

/** What the home supervisor is asked (control request `migrate`). */
export interface MigrateRequest {
  instance: string;
  clone: number;
  to: { target: string; host: string; port: number; cert: string };
  mode: MigrationMode;
}

/** How long the home host goes on without news of a moved clone (no `watch` connection) before it takes it for gone and restarts it here. */
export const REMOTE_SILENCE_MS = 60_000;
/** How often the home host asks a moved clone's host for its memory and CPU time. */
const USAGE_EVERY_MS = 5_000;
/** Longest line a kept clone's host may send on `watch` or as an answer. */
const ANSWER_LINE_BYTES = 4096;
/** How long a request (`finish`, `stop`, `build`) may take to be answered. */
const REQUEST_MS = 60_000;

/** Sends one request line to the kept clone's endpoint and resolves with its one-line answer. */
export function request(identity: MigrationIdentity, to: { host: string; port: number }, line: string, timeoutMs = REQUEST_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    const t = pinnedConnect(identity, to, line);
    let answer = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new Error(`no answer to ${line} within ${timeoutMs} ms`)), timeoutMs);
    const fail = (e: Error) => {
      clearTimeout(timer);
      t.destroy();
      reject(e);
    };
    t.on('data', (d: Buffer) => {
      answer = Buffer.concat([answer, d]);
      const nl = answer.indexOf(0x0a);
      if (nl >= 0) {
        clearTimeout(timer);
        t.destroy();
        resolve(answer.subarray(0, nl).toString('utf8'));
      } else if (answer.length > ANSWER_LINE_BYTES) fail(new Error(`an answer to ${line} of more than ${ANSWER_LINE_BYTES} bytes`));
    });
    t.on('error', fail);
    t.on('close', () => fail(new Error(`the destination closed the connection without answering ${line}`)));
  });
}

/**
 * The `watch` connection to a kept clone: `loaded` settles with the incoming
 * state's arrival, `exited` with the kept QEMU's exit, or once the
 * destination has not been reachable for `silenceMs` (it stops the clone
 * itself after the same time without a watch). Reconnects while the clone runs.
 */
export class RemoteWatch {
  readonly loaded: Promise<void>;
  readonly exited: Promise<ExitInfo>;
  usage: { rss_bytes?: number; pss_bytes?: number; private_bytes?: number; cpu_ms?: number } = {};
  remotePid: number | null = null;
  private onLoaded!: () => void;
  private onFailed!: (e: Error) => void;
  private onExit!: (i: ExitInfo) => void;
  private sock: TLSSocket | null = null;
  private closed = false;
  private isLoaded = false;
  private lastSeen = Date.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly identity: MigrationIdentity,
    private readonly to: { host: string; port: number },
    private readonly silenceMs = REMOTE_SILENCE_MS,
  ) {
    this.loaded = new Promise((res, rej) => {
      this.onLoaded = res;
      this.onFailed = rej;
    });
    this.loaded.catch(() => undefined);
    this.exited = new Promise((r) => (this.onExit = r));
    this.connect();
    this.timer = setInterval(() => {
      if (this.closed) return;
      // Silence counts whether or not a connection is open: a connection to a host that is gone can stay open
      // for a long time, while a live one answers each `usage` within seconds.
      if (Date.now() - this.lastSeen > this.silenceMs) {
        this.finish({ code: null, signal: null, helper: `its host did not answer for ${Math.round(this.silenceMs / 1000)} s` });
      } else if (this.sock && !this.sock.destroyed) this.sock.write('usage\n');
      else this.connect();
    }, Math.min(USAGE_EVERY_MS, this.silenceMs / 4));
    this.timer.unref();
  }

  private connect(): void {
    if (this.closed) return;
    const t = pinnedConnect(this.identity, this.to, 'watch');
    this.sock = t;
    const lines = new LineSplitter(ANSWER_LINE_BYTES, {
      line: (text) => this.onLine(text),
      oversize: () => t.destroy(),
    });
    t.on('secureConnect', () => (this.lastSeen = Date.now()));
    t.on('data', (d: Buffer) => {
      this.lastSeen = Date.now();
      lines.push(d);
    });
    t.on('error', () => undefined);
    t.on('close', () => {
      if (this.sock === t) this.sock = null;
      // Before the state arrived, a dropped watch is a failed move: the clone goes on at home.
      if (!this.isLoaded) this.onFailed(new MigrationError('the connection to the destination dropped before the clone\'s state arrived'));
    });
  }

  private onLine(text: string): void {
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    if (!m || typeof m !== 'object') return;
    if (m.loaded === true) {
      this.isLoaded = true;
      this.onLoaded();
    } else if (typeof m.failed === 'string') this.onFailed(new MigrationError(`the destination could not load the clone: ${m.failed.slice(0, 500)}`));
    else if (typeof m.running === 'number' && Number.isInteger(m.running)) this.remotePid = m.running;
    else if (m.exit && typeof m.exit === 'object') {
      const e = m.exit as Record<string, unknown>;
      this.onFailed(new MigrationError('the destination QEMU exited'));
      this.finish({
        code: typeof e.code === 'number' && Number.isInteger(e.code) ? e.code : null,
        signal: typeof e.signal === 'string' ? e.signal.slice(0, 16) : null,
        ...(typeof e.program_code === 'number' && Number.isInteger(e.program_code) ? { program_code: e.program_code } : {}),
      });
    } else if (m.usage && typeof m.usage === 'object') {
      const u = m.usage as Record<string, unknown>;
      const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);
      this.usage = { rss_bytes: num(u.rss_bytes), pss_bytes: num(u.pss_bytes), private_bytes: num(u.private_bytes), cpu_ms: num(u.cpu_ms) };
    }
  }

  private finish(info: ExitInfo): void {
    this.close();
    this.onExit(info);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.sock?.destroy();
  }
}

/** A clone that runs on another host: what the home supervisor holds for it after the move. */
export class RemoteClone implements CloneHandle {
  /** Never a process of this host: NaN makes process.kill throw and /proc/NaN absent, should a guard be missed. */
  readonly pid = NaN;
  readonly startTime = null;
  readonly exited: Promise<ExitInfo>;
  readonly remote: { target: string; at: string; pid: number | null };

  constructor(
    private readonly watch: RemoteWatch,
    private readonly identity: MigrationIdentity,
    private readonly to: { target: string; host: string; port: number },
    readonly portSockets: Record<string, string>,
    readonly consoleLog: string,
    private readonly relays: { close(): void }[],
    at: string,
  ) {
    this.remote = { target: to.target, at, pid: watch.remotePid };
    this.exited = watch.exited.then((info) => {
      for (const r of relays) r.close();
      return info;
    });
  }

  async resume(): Promise<void> {}

  async stop(): Promise<void> {
    await request(this.identity, this.to, 'stop', 10_000).catch(() => undefined);
    this.watch.close();
    for (const r of this.relays) r.close();
  }

  memory(): { rss_bytes: number; pss_bytes: number; private_bytes: number } | undefined {
    const u = this.watch.usage;
    return u.rss_bytes === undefined ? undefined : { rss_bytes: u.rss_bytes, pss_bytes: u.pss_bytes ?? 0, private_bytes: u.private_bytes ?? 0 };
  }

  cpuMs(): number | undefined {
    return this.watch.usage.cpu_ms;
  }
}

export interface MoveOutArgs {
  instance: string;
  clone: number;
  handle: CloneHandle;
  /** A directory of this clone's move (the relays' sockets), under the run directory. */
  dir: string;
  /** This host's link identity (its target name, key and certificate). */
  self: { name: string; key: string; cert: string };
  req: MigrateRequest;
  broker: BrokerLike;
  /** This host's template build of the clone, for a move by pages. */
  templateBuild: { key: string; build: string } | null;
  emit: EventSink;
}

/**
 * Moves the running clone `handle` to the kept clone endpoint `req.to`;
 * resolves with the handle of the moved clone and the figures. On failure
 * the clone runs on here, its held frames released, the destination's kept
 * clone stopped, and the error says so.
 */
export async function moveOut(a: MoveOutArgs): Promise<{ remote: RemoteClone; result: MigrateOutResult }> {
  const { req, handle } = a;
  const t0 = performance.now();
  const source = handle.migratable;
  if (!source) throw new BackendFailure('failure', 'this runtime cannot move clones to another host');
  const b = a.broker;
  if (!b.holdClone || !b.cloneQueued || !b.moveClone || !b.releaseClone) throw new BackendFailure('failure', 'this broker cannot move a clone\'s channels');
  const sockets: Record<string, string> = {};
  for (const [name, t] of Object.entries(handle.portSockets)) {
    if (typeof t !== 'string') throw new BackendFailure('failure', `port ${name} of ${req.instance}[${req.clone}] is not a unix socket; it cannot be moved`);
    sockets[name] = t;
  }
  const identity: MigrationIdentity = { key: a.self.key, cert: a.self.cert, peerCert: req.to.cert };
  const to = { host: req.to.host, port: req.to.port };
  const step = (message: string, data?: Record<string, unknown>) => a.emit({ type: 'phase', phase: 'migrate', instance: req.instance, clone: req.clone, message, ...(data ? { data: data as never } : {}) });
  if (req.mode === 'pages') {
    // The pages only fit the very template boot they were forked from: the destination must have the same one.
    const theirs = await request(identity, to, 'build', 10_000).catch((e: Error) => `error ${e.message}`);
    let b2: { key?: unknown; build?: unknown } | null;
    try {
      b2 = JSON.parse(theirs) as { key?: unknown; build?: unknown } | null;
    } catch {
      b2 = null;
    }
    const ours = a.templateBuild;
    if (!ours || !b2 || b2.key !== ours.key || b2.build !== ours.build) {
      await request(identity, to, 'stop', 10_000).catch(() => undefined);
      throw new BackendFailure('failure', `the destination ${req.to.target} does not hold the very template boot of ${req.instance}[${req.clone}] (${!b2 ? 'it did not say which' : b2.key !== ours?.key ? 'another template' : 'another boot of it'}), so a move by its own pages cannot work; nothing was moved`, 'use the default mode (precopy), which sends the whole RAM');
    }
  }
  rmSync(a.dir, { recursive: true, force: true });
  mkdirSync(a.dir, { recursive: true, mode: 0o700 });
  const watch = new RemoteWatch(identity, to);
  const relays: { close(): void }[] = [];
  let tunnel: Awaited<ReturnType<typeof dialMigration>> | null = null;
  try {
    const tunnelSocket = join(a.dir, 'mig.sock');
    tunnel = await dialMigration(identity, tunnelSocket, to, 'migrate');
    // Each port's new target: a local socket whose connections cross to the kept clone's port (`port NAME`);
    // the broker dials it as it dials a QEMU socket, and dials it again when a connection drops.
    const targets: Record<string, string> = {};
    let i = 0;
    for (const name of Object.keys(sockets).sort()) {
      const path = join(a.dir, `p${++i}.sock`);
      relays.push(await dialMigration(identity, path, to, `port ${name}`));
      targets[name] = path;
    }
    const mb = cloneMigrationBroker(b as Parameters<typeof cloneMigrationBroker>[0], req.instance, req.clone, sockets, targets);
    const finish = async () => {
      const answer = await request(identity, to, 'finish');
      const m = /^ok (\d+)$/.exec(answer);
      if (!m) throw new MigrationError(`the destination did not continue the clone: ${answer.slice(0, 500)}`);
      watch.remotePid = Number(m[1]);
    };
    const abort = async () => {
      await request(identity, to, 'stop', 10_000).catch(() => undefined);
    };
    step(`moving ${req.instance}[${req.clone}] to ${req.to.target} (${req.mode})`);
    let report: { guestDowntimeMs: number; holdMs: number; wireBytes: number; sourcePrivateBytes: number; attempts: number };
    if (req.mode === 'pages') {
      const dest = { loaded: watch.loaded.then(() => ({ resume: finish, kill: abort })) };
      dest.loaded.catch(() => undefined);
      ({ report } = await movePages(source, { socket: tunnelSocket, bytes: tunnel.bytes }, dest, mb));
    } else {
      ({ report } = await migrateClone(source, { loaded: watch.loaded, finish, abort }, { socket: tunnelSocket, bytes: tunnel.bytes, failed: tunnel.failed }, mb, (line) => step(line)));
    }
    const r = { downtime_ms: report.guestDowntimeMs, hold_ms: Math.round(report.holdMs), bytes_sent: report.wireBytes, source_private_bytes: report.sourcePrivateBytes, attempts: report.attempts };
    tunnel.close();
    const at = new Date().toISOString();
    const remote = new RemoteClone(watch, identity, req.to, targets, handle.consoleLog, relays, at);
    const result: MigrateOutResult = {
      instance: req.instance,
      clone: req.clone,
      from: a.self.name,
      to: req.to.target,
      mode: req.mode,
      total_ms: Math.round(performance.now() - t0),
      ...r,
    };
    step(`${req.instance}[${req.clone}] runs on ${req.to.target}: guest stopped ${r.downtime_ms} ms, traffic held ${r.hold_ms} ms, ${r.bytes_sent} bytes sent`, { ...result });
    return { remote, result };
  } catch (e) {
    tunnel?.close();
    for (const rl of relays) rl.close();
    watch.close();
    await request(identity, to, 'stop', 10_000).catch(() => undefined);
    if (e instanceof BackendFailure) throw e;
    const msg = String((e as Error)?.message ?? e);
    throw new BackendFailure(
      'failure',
      /goes on running on the source/.test(msg) ? msg : `the move of ${req.instance}[${req.clone}] to ${req.to.target} failed: ${msg}; the clone goes on running on the source`,
      (e as MigrationError).hint ?? 'check the destination host and the link between the hosts, then migrate again',
    );
  }
}
