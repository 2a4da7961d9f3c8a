// Clones another host of the deployment moved here with `mclc migrate`
// (spec/hosts.md, "Live migration"): the destination's supervisor keeps each
// one's QEMU, while the clone's home host (the source) keeps its channels in
// its own broker. The home host reaches the kept clone through one endpoint
// per kept clone: a TLS 1.3 listener of this host's link identity that
// requires a client certificate and accepts only the home host's pinned one
// (vm/migrate.ts's pinnedServer, shared with the migration tunnel).
//
// Each accepted connection's first line (at most KEEP_LINE_BYTES, within
// KEEP_LINE_MS) says what it is for:
//   migrate      the migration stream, piped into the incoming QEMU (accepted once);
//   port NAME    piped into the kept QEMU's socket of data port NAME (the home broker's relay);
//   finish       continue the guest once every data port is connected, answer `ok PID` or `error ...`;
//   watch        this host reports, one JSON line each: `{"loaded":true}`, `{"failed":why}`,
//                `{"running":pid}`, `{"exit":{code,signal,program_code}}`, and `{"usage":{...}}`
//                for each `usage` line the home host writes;
//   build        answer the template's build (`{"key","build"}`), for a move by pages;
//   stop         kill the kept QEMU, answer `ok`.
// Anything else closes the connection. A kept clone whose home host has had
// no `watch` connection open and answering for KEEP_WATCH_GRACE_MS is stopped and recorded:
// the home host is gone, or the link has been down that long, and the home
// host restarts the clone itself after the same time without news.

import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type net from 'node:net';
import { knownInstance, type Plan } from '@mcl/plan';
import type { MigrateInOptions, StatusReport } from '@mcl/plan/backend';
import { LineSplitter } from '@mcl/broker/lines';
import { pinnedServer, pipeUnix, type MigrationIdentity } from '../vm/migrate';
import { BackendFailure } from './errors';
import type { CloneHandle, ExitInfo, GuestRuntime, IncomingHandle } from './guest-runtime';
import type { EventSink } from './events';
import { processCpuMs, processMemory } from './procfs';
import { cloneDirBase } from './supervisor';

/** The longest first line of a connection to a kept clone's endpoint, and how long it may take to arrive. */
export const KEEP_LINE_BYTES = 256;
export const KEEP_LINE_MS = 5_000;
/** How long a kept clone runs on without a `watch` connection from its home host before it is stopped. */
export const KEEP_WATCH_GRACE_MS = 60_000;
/** Connections open at once on one kept clone's endpoint (a port each, the stream, watch, a request or two). */
export const KEEP_MAX_CONNECTIONS = 32;
/** Longest line the home host may write on a `watch` connection. */
const WATCH_LINE_BYTES = 1024;
/** How long `finish` waits for the home broker to connect every data port before it continues the guest. */
const PORTS_CONNECT_MS = 10_000;

/** What the home host asks of this host's supervisor (control request `keep`): the backend contract's request (`target` names this host's link identity), with the bound on the clone's start. */
export type KeepRequest = Pick<MigrateInOptions, 'instance' | 'clone' | 'target' | 'from' | 'listen' | 'mode'> & { readyTimeoutMs: number };

export type KeptStatus = NonNullable<StatusReport['kept']>[number];

interface Kept {
  instance: string;
  clone: number;
  from: string;
  state: KeptStatus['state'];
  incoming: IncomingHandle;
  live: CloneHandle | null;
  server: net.Server;
  watchers: Set<net.Socket>;
  lastWatchAt: number;
  migrateTaken: boolean;
  connectedPorts: Set<string>;
  finishing: Promise<CloneHandle> | null;
  exit: ExitInfo | null;
  loaded: 'pending' | 'loaded' | string;
  timer: NodeJS.Timeout;
  dir: string;
}

export interface KeptClonesOptions {
  runtime: GuestRuntime;
  runDir: string;
  /** The plan applied here. */
  plan: () => Plan | null;
  /** This host's link identity for target `name` (its key and certificate), or why there is none. */
  identity: (name: string) => { key: string; cert: string } | string;
  log: (s: string) => void;
  /** Audit records (`kept`, `kept_stopped`, `kept_exit`). */
  record: (event: string, fields: Record<string, unknown>) => void;
  watchGraceMs?: number;
}

/** Reads the first line of `sock` (bounded in size and time); resolves null when it is too long, late or missing. */
export function readFirstLine(sock: net.Socket, maxBytes = KEEP_LINE_BYTES, timeoutMs = KEEP_LINE_MS): Promise<string | null> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const done = (line: string | null, rest?: Buffer) => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('close', onClose);
      sock.pause();
      if (rest && rest.length) sock.unshift(rest);
      resolve(line);
    };
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const nl = buf.indexOf(0x0a);
      if (nl >= 0 && nl <= maxBytes) return done(buf.subarray(0, nl).toString('utf8'), buf.subarray(nl + 1));
      if (nl > maxBytes || buf.length > maxBytes) done(null);
    };
    const onClose = () => done(null);
    const timer = setTimeout(() => done(null), timeoutMs);
    sock.on('data', onData);
    sock.on('close', onClose);
  });
}

/** The `watch` line that reports a kept QEMU's exit, the same to a watcher connected before or after it. */
function exitMessage(info: ExitInfo): { exit: { code: number | null; signal: string | null; program_code?: number } } {
  return { exit: { code: info.code, signal: info.signal, ...(info.program_code !== undefined ? { program_code: info.program_code } : {}) } };
}

/** The clones this host keeps for other hosts of the deployment. */
export class KeptClones {
  private readonly kept = new Map<string, Kept>();
  private readonly grace: number;

  constructor(private readonly o: KeptClonesOptions) {
    this.grace = o.watchGraceMs ?? KEEP_WATCH_GRACE_MS;
  }

  /**
   * Starts the paused incoming QEMU of clone `clone` of `instance` (its
   * template built here first when missing) and its endpoint; resolves with
   * the port the endpoint listens on.
   */
  async keep(req: KeepRequest, emit: EventSink): Promise<{ port: number; template_built: boolean; template_ms: number; pid: number }> {
    const plan = this.o.plan();
    if (!plan) throw new BackendFailure('stale', 'nothing is applied on this host: it cannot take a clone of the deployment', 'apply the plan on this host first');
    const inst = knownInstance(plan, req.instance);
    if (!inst) throw new BackendFailure('usage', `the plan applied here has no instance ${req.instance}`, 'name an instance as `mclc status` shows it on the source host');
    if (!plan.templates.some((t) => t.id === inst.template)) {
      throw new BackendFailure('stale', `the plan applied here has no template ${inst.template} (of ${req.instance}), so its clone cannot run here`, 'move the clone to a host whose part of the plan runs an instance of the same template');
    }
    if (!this.o.runtime.incoming) throw new BackendFailure('failure', 'this runtime cannot take a moving clone');
    const key = `${req.instance}#${req.clone}`;
    const old = this.kept.get(key);
    if (old && old.state !== 'exited') throw new BackendFailure('failure', `${req.instance}[${req.clone}] is kept here already (${old.state}), moved from ${old.from}`, 'stop it first (destroy the move on its home host), or move another clone');
    if (old) this.forget(old);
    const id = this.o.identity(req.target);
    if (typeof id === 'string') throw new BackendFailure('failure', `this host has no link identity for ${req.target}: ${id}`, 'apply the plan again: apply makes it');
    const t0 = Date.now();
    let built = false;
    await this.o.runtime.prepare(plan, [inst.template], (e) => {
      if (e.type === 'template' && e.action === 'booted') built = true;
      emit(e);
    });
    const templateMs = Date.now() - t0;
    // The kept clone's directory is derived from what this supervisor owns, never from the request: under the
    // run directory's clones/, where a later supervisor reaps its QEMU by its pid file.
    const dir = join(this.o.runDir, 'clones', `${cloneDirBase(req.instance)}.${req.clone}.k`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const incoming = await this.o.runtime.incoming({ instance: inst, index: req.clone, dir, readyTimeoutMs: req.readyTimeoutMs }, req.mode, join(dir, 'in.sock'));
    const k: Kept = {
      instance: req.instance,
      clone: req.clone,
      from: req.from.target,
      state: 'incoming',
      incoming,
      live: null,
      server: null as unknown as net.Server,
      watchers: new Set(),
      lastWatchAt: Date.now(),
      migrateTaken: false,
      connectedPorts: new Set(),
      finishing: null,
      exit: null,
      loaded: 'pending',
      timer: null as unknown as NodeJS.Timeout,
      dir,
    };
    const identity: MigrationIdentity = { key: id.key, cert: id.cert, peerCert: req.from.cert };
    k.server = pinnedServer(identity, (sock) => void this.serve(k, sock), (s) => this.o.log(`kept ${key}: ${s}`));
    k.server.maxConnections = KEEP_MAX_CONNECTIONS;
    try {
      await new Promise<void>((resolve, reject) => {
        k.server.once('error', reject);
        k.server.listen(req.listen.port, req.listen.host, () => resolve());
      });
    } catch (e) {
      await incoming.kill();
      throw new BackendFailure('failure', `cannot listen on ${req.listen.host}:${req.listen.port} for the moving clone: ${(e as Error).message}`, 'choose another address or port');
    }
    this.kept.set(key, k);
    incoming.loaded.then(
      () => {
        k.loaded = 'loaded';
        this.tell(k, { loaded: true });
      },
      (e: Error) => {
        k.loaded = e.message || 'the incoming migration failed';
        this.tell(k, { failed: k.loaded });
      },
    );
    incoming.exited.then((info) => this.exited(k, info));
    k.timer = setInterval(() => {
      // A watch that is open but silent (its host gone, the connection not yet timed out) counts as none: a live
      // home host writes `usage` every few seconds.
      if (k.state === 'exited' || Date.now() - k.lastWatchAt < this.grace) return;
      const why = `its home host (${k.from}) had no watch connection open and answering for ${Math.round(this.grace / 1000)} s`;
      this.o.log(`kept ${key}: stopping it: ${why}`);
      this.o.record('kept_stopped', { instance: k.instance, clone: k.clone, from: k.from, why });
      void this.stopOne(k);
    }, Math.min(5_000, Math.max(100, this.grace / 4)));
    k.timer.unref();
    const port = (k.server.address() as net.AddressInfo).port;
    this.o.record('kept', { instance: req.instance, clone: req.clone, from: req.from.target, mode: req.mode, port, pid: incoming.pid });
    this.o.log(`kept ${key}: incoming from ${req.from.target} on ${req.listen.host}:${port} (QEMU pid ${incoming.pid})`);
    return { port, template_built: built, template_ms: templateMs, pid: incoming.pid };
  }

  /** The kept clones, for `status`. */
  status(): KeptStatus[] {
    return [...this.kept.values()]
      .sort((a, b) => a.instance.localeCompare(b.instance) || a.clone - b.clone)
      .map((k) => ({ instance: k.instance, clone: k.clone, from: k.from, pid: k.live?.pid ?? k.incoming.pid, state: k.state }));
  }

  /** Stops every kept clone (destroy, the supervisor stopping). */
  async stopAll(): Promise<void> {
    await Promise.all([...this.kept.values()].map((k) => this.stopOne(k)));
    for (const k of [...this.kept.values()]) this.forget(k);
  }

  private async stopOne(k: Kept): Promise<void> {
    k.server.close();
    if (k.live) await k.live.stop();
    else await k.incoming.kill();
  }

  private forget(k: Kept): void {
    clearInterval(k.timer);
    k.server.close();
    for (const w of k.watchers) w.destroy();
    this.kept.delete(`${k.instance}#${k.clone}`);
  }

  private exited(k: Kept, info: ExitInfo): void {
    k.state = 'exited';
    k.exit = info;
    k.server.close();
    clearInterval(k.timer);
    this.tell(k, exitMessage(info));
    for (const w of k.watchers) w.end();
    this.o.record('kept_exit', { instance: k.instance, clone: k.clone, from: k.from, code: info.code, signal: info.signal });
    this.o.log(`kept ${k.instance}#${k.clone}: QEMU exited (${info.signal ?? `code ${info.code}`})`);
  }

  private tell(k: Kept, msg: Record<string, unknown>): void {
    const line = JSON.stringify(msg) + '\n';
    for (const w of k.watchers) if (!w.destroyed) w.write(line);
  }

  /** One connection from the home host: its first line says what it is for. */
  private async serve(k: Kept, sock: net.Socket): Promise<void> {
    sock.on('error', () => undefined);
    const line = await readFirstLine(sock);
    const refuse = (why: string) => {
      this.o.log(`kept ${k.instance}#${k.clone}: refused a connection: ${why}`);
      sock.destroy();
    };
    if (line === null) return refuse(`no first line of at most ${KEEP_LINE_BYTES} bytes within ${KEEP_LINE_MS} ms`);
    if (k.state === 'exited' && line !== 'watch') return refuse('the kept clone has exited');
    const port = /^port ([A-Za-z_][A-Za-z0-9_]{0,63})$/.exec(line);
    if (line === 'migrate') {
      if (k.migrateTaken) return refuse('a migration stream was received already');
      k.migrateTaken = true;
      sock.resume();
      pipeUnix(sock, join(k.dir, 'in.sock'));
    } else if (port) {
      const path = Object.hasOwn(k.incoming.portSockets, port[1]) ? k.incoming.portSockets[port[1]] : undefined;
      if (typeof path !== 'string') return refuse(`no data port ${port[1]}`);
      sock.resume();
      const name = port[1];
      const q = pipeUnix(sock, path, () => k.connectedPorts.add(name));
      q.once('close', () => k.connectedPorts.delete(name));
    } else if (line === 'finish') {
      k.finishing ??= this.finish(k);
      k.finishing.then(
        (c) => sock.end(`ok ${c.pid}\n`),
        (e: Error) => sock.end(`error ${String(e.message).replace(/\n/g, ' ').slice(0, 500)}\n`),
      );
    } else if (line === 'watch') {
      k.watchers.add(sock);
      k.lastWatchAt = Date.now();
      sock.on('close', () => {
        k.watchers.delete(sock);
        k.lastWatchAt = Date.now();
      });
      if (k.loaded === 'loaded') sock.write(JSON.stringify({ loaded: true }) + '\n');
      else if (k.loaded !== 'pending') sock.write(JSON.stringify({ failed: k.loaded }) + '\n');
      if (k.live) sock.write(JSON.stringify({ running: k.live.pid }) + '\n');
      if (k.exit) return void sock.end(JSON.stringify(exitMessage(k.exit)) + '\n');
      const lines = new LineSplitter(WATCH_LINE_BYTES, {
        line: (text) => {
          k.lastWatchAt = Date.now();
          if (text !== 'usage') return;
          const pid = k.live?.pid ?? k.incoming.pid;
          const mem = processMemory(pid);
          const cpu = processCpuMs(pid);
          sock.write(JSON.stringify({ usage: { ...(mem ?? {}), ...(cpu !== undefined ? { cpu_ms: cpu } : {}) } }) + '\n');
        },
        oversize: () => sock.destroy(),
      });
      sock.on('data', (d: Buffer) => lines.push(d));
      sock.resume();
    } else if (line === 'build') {
      const plan = this.o.plan();
      const inst = plan && knownInstance(plan, k.instance);
      const b = plan && inst ? (this.o.runtime.templateBuild?.(plan, inst.template) ?? null) : null;
      sock.end(JSON.stringify(b) + '\n');
    } else if (line === 'stop') {
      this.o.record('kept_stopped', { instance: k.instance, clone: k.clone, from: k.from, why: 'its home host asked' });
      await this.stopOne(k);
      sock.end('ok\n');
    } else refuse(`unknown first line ${JSON.stringify(line.slice(0, 64))}`);
  }

  /** Continues the kept guest once the home broker is connected to every data port (a port without its host end reads end-of-file in the guest). */
  private async finish(k: Kept): Promise<CloneHandle> {
    const names = Object.keys(k.incoming.portSockets);
    const until = Date.now() + PORTS_CONNECT_MS;
    while (names.some((n) => !k.connectedPorts.has(n))) {
      if (Date.now() > until) throw new Error(`the home host did not connect data port(s) ${names.filter((n) => !k.connectedPorts.has(n)).join(', ')} within ${PORTS_CONNECT_MS} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const c = await k.incoming.finish();
    k.live = c;
    k.state = 'running';
    this.tell(k, { running: c.pid });
    return c;
  }
}
