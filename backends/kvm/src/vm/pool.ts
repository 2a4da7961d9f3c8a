// QEMU processes started ahead of time for the clones of one template.
//
// Starting QEMU (exec, dynamic linking, machine and device creation) is most
// of a fork's time under TCG. A pool keeps a few processes started exactly as
// forkClone starts a clone (the template's layout, `-incoming defer`, the
// state file inherited as fd 3, the template RAM file mapped copy-on-write)
// and connected to their QMP and control sockets, with the template's device
// state loaded (preloadState) but the guest never continued: no guest code has
// run in them, so they hold no identity, no secrets and no randomness, and any
// of them can become any clone.
//
// `take(options)` turns one into a clone: it renames the process's listening
// sockets (control, QMP, every data slot) and its console log and pid file to
// the paths in `options` (a bound unix socket keeps listening when its file
// is renamed, and a file QEMU has open keeps being written), unlinks the
// socket of every slot the clone does not use (nothing can connect to it any
// more), and then continues and handshakes exactly as forkClone does
// (readyClone); a process forked for a take that found none waiting loads the
// state there too. A replacement is started once the clone is
// ready. With no process waiting, take forks directly.
//
// Two differences from a direct fork remain visible: QEMU's `-name` is the
// pool's, and an unused slot is a socket nobody can reach rather than a sink
// (the guest sees the port closed, which the agent ignores).
//
// Pooled processes never outlive their owner: they are started with a
// parent-death signal (SIGKILL when the thread that started them ends, even by
// SIGKILL; see launchCommand), `close()` kills them, and each writes a pid
// file `<dir>/.pool-<id>/qemu.pid` for reaping by pid file where perl is
// missing. A taken process keeps the parent-death signal: the clone dies with
// its owner too. The pool directory must be on the file system of the clones'
// socket paths, since take renames; when a rename fails the pooled process is
// killed and the clone forked directly.
//
// Where it can, the pool forks its processes from a QEMU zygote of the
// template (zygote.ts) instead of starting QEMU: the processes then share the
// pages the dynamic linker relocated, about 4.5 MiB per clone, and start
// without exec and linking. With a zygote, a take with no process waiting
// forks one at once rather than starting QEMU for the clone, so every clone
// of the pool shares them. Where the zygote cannot be built or started (no C
// compiler, no perl), the failure is reported once through onError and QEMU
// is started directly.

import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, unlinkSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { checkForkable, CloneError, consoleSocketOf, forkClone, preloadState, readyClone, startQemu, startQemuFromZygote, type QemuPaths, type StartedQemu } from './clone';
import { qemuArgs, requireQemu } from './qemu';
import { layoutOf } from './template';
import type { Clone, CloneOptions, Template } from './types';
import { buildZygoteLib, Zygote, zygoteEnabled } from './zygote';

export interface ClonePoolOptions {
  /**
   * Directory for the pooled processes: each gets `<dir>/.pool-<id>/` with its
   * sockets, console log and pid file (`qemu.pid`). Created when missing. Must
   * be on the file system of the paths clones are given.
   */
  dir: string;
  /** Processes kept started and waiting; default 1. 0 makes take fork directly. */
  size?: number;
  /** Bound for starting one pooled QEMU and connecting to it; default 20 s. */
  startTimeoutMs?: number;
  /** A pooled process failed to start or died while waiting. The pool tries again on the next take. */
  onError?: (err: Error) => void;
  /** Fork processes from a zygote of the template (see above); default: unless `MCL_QEMU_ZYGOTE=0`. */
  zygote?: boolean;
  /** Cache directory for the zygote library (see cacheDir). */
  cacheDir?: string;
}

/** The names a pooled process's command line gives its files, relative to its directory. */
const FILES = {
  control: 'ctl.sock',
  qmp: 'qmp.sock',
  data: (slot: number) => `p${slot}.sock`,
  log: 'console.log',
  console: 'con.sock',
  pid: 'qemu.pid',
};

interface Pooled {
  q: StartedQemu;
  dir: string;
  paths: Omit<QemuPaths, 'pidFile' | 'dataPortSockets' | 'consoleSocket'> & { pidFile: string; dataPortSockets: string[]; consoleSocket: string };
}

export class ClonePool {
  readonly size: number;
  private readonly idle: Pooled[] = [];
  /** Processes being started, so close() can wait for them and kill them. */
  private readonly starting = new Set<Promise<Pooled | null>>();
  private closed = false;
  /** Set by a failure; the next take clears it and refills. */
  private failed = false;
  private lastDieWithParent: boolean | null = null;
  /** The zygote being started or serving; null when there is none (yet, or it cannot start). */
  private zygote: Promise<Zygote | null> | null = null;
  private zygoteFailed = false;

  constructor(
    readonly template: Template,
    private readonly options: ClonePoolOptions,
  ) {
    this.size = Math.max(0, Math.floor(options.size ?? 1));
  }

  /** The directory the pooled processes live in. */
  get dir(): string {
    return this.options.dir;
  }

  /** Processes started and waiting to be taken. */
  get available(): number {
    return this.idle.length;
  }

  /** Pids of the waiting processes. */
  pids(): number[] {
    return this.idle.map((p) => p.q.pid);
  }

  /** Whether the last pooled process started dies with its owner (null before any started). */
  get dieWithParent(): boolean | null {
    return this.lastDieWithParent;
  }

  /**
   * Starts processes until `size` are waiting or starting, and resolves once
   * every process being started is waiting (or failed, reported through
   * onError).
   */
  async fill(): Promise<void> {
    while (!this.closed && this.idle.length + this.starting.size < this.size) {
      const p = this.startOne();
      this.starting.add(p);
      p.finally(() => this.starting.delete(p)).catch(() => undefined);
    }
    await Promise.all([...this.starting]);
  }

  /**
   * A clone from a waiting process (or a direct fork when none waits). The
   * clone is what forkClone(template, options) returns, with `pooled: true`
   * when it came from the pool; readyMs then counts from this call.
   */
  async take(options: CloneOptions): Promise<Clone> {
    if (this.closed) throw new CloneError(`clone ${options.name}: the pool of template ${this.template.id} is closed`);
    checkForkable(this.template, options.name, options.dataPortSockets.length);
    const startedAt = Date.now();
    let p: Pooled | undefined;
    while ((p = this.idle.shift()) && p.q.exit()) {
      // Died while waiting (reported by its exit handler); try the next one.
    }
    try {
      // With a zygote, forking a process now is cheaper than starting QEMU, and the clone shares its relocated pages.
      if (!p && (await this.zygoteFor())) p = (await this.startOne(true)) ?? undefined;
      if (!p) return await forkClone(this.template, options);
      try {
        this.assign(p, options);
      } catch (err) {
        p.q.kill('SIGKILL');
        await p.q.exited;
        await rm(p.dir, { recursive: true, force: true }).catch(() => undefined);
        this.report(new CloneError(`pooled QEMU (pid ${p.q.pid}) could not become ${options.name}: ${(err as Error).message}`, 'the pool directory must be on the file system of the clone sockets'));
        return await forkClone(this.template, options);
      }
      return await readyClone(this.template, p.q, options, { startedAt, connectMs: Date.now() - startedAt, pooled: true });
    } finally {
      // The replacement starts once this clone is ready, so it does not compete with it for the CPU.
      this.failed = false;
      void this.fill();
    }
  }

  /** Kills every waiting process (and those still starting) and removes their directories. */
  async close(): Promise<void> {
    this.closed = true;
    const starting = [...this.starting];
    const idle = this.idle.splice(0);
    for (const p of idle) p.q.kill('SIGKILL');
    await Promise.all([...idle.map((p) => this.discard(p)), ...starting.map((s) => s.then((p) => p && this.discard(p)))]);
    // The zygote forks no more and exits once the clones taken from it have ended; with none left, now.
    const z = await this.zygote;
    z?.close();
    if (z && z.children === 0) await z.exited;
  }

  /** The pid of the zygote serving this pool, or null. */
  async zygotePid(): Promise<number | null> {
    const z = await this.zygote;
    return z?.alive ? z.pid : null;
  }

  /**
   * The template's zygote, started on first use; null when zygotes are off or
   * it cannot start (reported once). A zygote that died is started again.
   */
  private async zygoteFor(): Promise<Zygote | null> {
    const off = this.options.zygote === false || (this.options.zygote === undefined && !zygoteEnabled());
    if (off || this.zygoteFailed || this.closed) return null;
    const current = await this.zygote;
    if (current?.alive) return current;
    // None yet, or the last one died (killed from outside): start one. Concurrent callers share it.
    if (!this.zygote || current) this.zygote = this.startZygote();
    return this.zygote;
  }

  private async startZygote(): Promise<Zygote | null> {
    const slots = this.template.spec.portSlots;
    try {
      const lib = await buildZygoteLib({ cacheDir: this.options.cacheDir });
      const args = qemuArgs(layoutOf(this.template, true), {
        name: `pool:${this.template.id}`,
        shareMemory: false,
        controlSocket: FILES.control,
        dataPortSockets: Array.from({ length: slots }, (_, i) => FILES.data(i + 1)),
        logFile: FILES.log,
        consoleSocket: FILES.console,
        qmpSocket: FILES.qmp,
        pidFile: FILES.pid,
        incomingStatePath: this.template.statePath,
      });
      const dir = path.join(this.options.dir, `.zygote-${randomBytes(4).toString('hex')}`);
      return await Zygote.start({ qemu: requireQemu(), args, statePath: this.template.statePath, dir, lib, timeoutMs: this.options.startTimeoutMs });
    } catch (err) {
      this.zygoteFailed = true;
      const hint = (err as { hint?: string }).hint;
      this.options.onError?.(new CloneError(`template ${this.template.id}: no QEMU zygote, so clones start QEMU directly: ${(err as Error).message}`, hint));
      return null;
    }
  }

  private async discard(p: Pooled): Promise<void> {
    p.q.kill('SIGKILL');
    await p.q.exited;
    await rm(p.dir, { recursive: true, force: true }).catch(() => undefined);
  }

  private report(err: Error): void {
    this.failed = true;
    this.options.onError?.(err);
  }

  /**
   * Starts (or forks from the zygote) one process in a directory of its own.
   * `forTake`: for a take that found none waiting; the process is returned
   * rather than queued, and a failure only reported.
   */
  private async startOne(forTake = false): Promise<Pooled | null> {
    if (this.failed && !forTake) return null;
    const id = randomBytes(4).toString('hex');
    const dir = path.join(this.options.dir, `.pool-${id}`);
    const slots = this.template.spec.portSlots;
    const paths = {
      name: `pool:${this.template.id}`,
      controlSocket: path.join(dir, FILES.control),
      qmpSocket: path.join(dir, FILES.qmp),
      dataPortSockets: Array.from({ length: slots }, (_, i) => path.join(dir, FILES.data(i + 1))),
      logFile: path.join(dir, FILES.log),
      consoleSocket: path.join(dir, FILES.console),
      pidFile: path.join(dir, FILES.pid),
    };
    try {
      checkForkable(this.template, paths.name, 0);
      await mkdir(dir, { recursive: true });
      const timeoutMs = this.options.startTimeoutMs ?? 20_000;
      const zygote = await this.zygoteFor();
      const q = zygote
        ? await startQemuFromZygote(zygote, dir, paths, { timeoutMs })
        : await startQemu(this.template, paths, { timeoutMs, dieWithParent: true });
      this.lastDieWithParent = q.dieWithParent;
      const p: Pooled = { q, dir, paths };
      if (forTake) return p;
      // A process that waits gets the template's state loaded now, so that its take only continues the guest.
      try {
        await preloadState(q, timeoutMs);
      } catch (err) {
        q.kill('SIGKILL');
        await q.exited;
        throw err;
      }
      if (this.closed) {
        await this.discard(p);
        return null;
      }
      this.idle.push(p);
      q.exited.then((e) => {
        const i = this.idle.indexOf(p);
        if (i < 0) return;
        // Killed from outside while waiting.
        this.idle.splice(i, 1);
        void rm(dir, { recursive: true, force: true }).catch(() => undefined);
        this.report(new CloneError(`pooled QEMU (pid ${q.pid}) exited while waiting (${e.signal ?? `exit code ${e.code}`})`));
      });
      return p;
    } catch (err) {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      if (!this.closed) this.report(err as Error);
      return null;
    }
  }

  /**
   * Moves a pooled process's sockets and files to the clone's paths. The
   * calls are synchronous: each is a few microseconds in the kernel, less
   * than a round trip through libuv's thread pool, and they are the whole
   * of what a pooled fork adds before the state load.
   */
  private assign(p: Pooled, options: CloneOptions): void {
    // The pid file first: from here on the process is found where the clone's owner looks for it.
    if (options.pidFile) renameSync(p.paths.pidFile, options.pidFile);
    // QEMU's own messages, when a zygote's child wrote any (a QEMU started directly sends them to its owner).
    try {
      renameSync(p.paths.logFile, options.logFile);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    renameSync(p.paths.consoleSocket, consoleSocketOf(options));
    renameSync(p.paths.controlSocket, options.controlSocket);
    renameSync(p.paths.qmpSocket, options.qmpSocket ?? `${options.controlSocket}.qmp`);
    for (const [i, from] of p.paths.dataPortSockets.entries()) {
      const to = options.dataPortSockets[i] ?? null;
      // A slot the clone does not use must not be connectable: its socket file goes away.
      if (to) renameSync(from, to);
      else unlinkSync(from);
    }
    rmSync(p.dir, { recursive: true, force: true });
  }
}
