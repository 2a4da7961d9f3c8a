// QEMU zygotes: one QEMU process per template, stopped before QEMU's own code
// runs, that forks the processes of that template's clones (host/zygote.c).
//
// Every QEMU process relocates QEMU and its ~50 libraries at load time, which
// leaves about 3 MiB of pointers in private copies of their pages (RELRO data:
// libcapstone's tables, QEMU's type and device tables), plus the .data pages
// the loader touched: 4.5 MiB of the 15 MiB an idle clone holds privately,
// identical in every clone. A process forked after relocation shares those
// pages with its siblings for good. The zygote is that process: a library
// preloaded into QEMU (LD_PRELOAD) whose constructor runs after relocation and
// before QEMU's own constructors (which start threads), and which forks a
// child on request; the child returns from the constructor and runs QEMU's
// main with the zygote's command line, in a directory of its own.
//
// So the command line is the template's clone command line with relative
// paths (`ctl.sock`, `qmp.sock`, `p<i>.sock`, `console.log`, `qemu.pid`), and
// the directory a child is forked into decides where they are. ClonePool
// forks its processes this way and renames their files to a clone's paths,
// as it does with processes it starts directly.
//
// Trade-off: the children of one zygote share its address-space layout (ASLR
// is applied at exec), as Android's zygote children do. The stack-protector
// canary, also chosen at exec, each child replaces with one of its own
// (x86-64; see host/zygote.c). Guest RAM is unaffected: each clone still maps
// the template RAM file privately. `MCL_QEMU_ZYGOTE=0` turns zygotes off.
//
// Lifetime: the zygote runs with a parent-death signal (it dies with the
// thread that started it, as pooled processes do) and gives each child one
// towards itself, so no child outlives it; `close()` ends its input, after
// which it forks no more and exits when its last child has ended.

import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { constants } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { buildC, CBuildError } from './cc';
import { mclHome } from './paths';
import { launchCommand } from './qemu';
import type { CloneExit } from './types';

export class ZygoteError extends Error {
  readonly kind = 'failure' as const;
  constructor(message: string, readonly hint?: string) {
    super(message);
    this.name = 'ZygoteError';
  }
}

/** Whether zygotes are in use: not with `MCL_QEMU_ZYGOTE=0`. */
export function zygoteEnabled(): boolean {
  return process.env.MCL_QEMU_ZYGOTE !== '0';
}

/** The zygote library's C source. */
export function zygoteSource(): string {
  return path.join(mclHome(), 'backends', 'kvm', 'host', 'zygote.c');
}

/**
 * Builds the zygote library with the host's C compiler, or returns the one
 * already built (`<cache>/zygote/<key>/mcl-zygote.so`, see cc.ts). Rejects
 * with a ZygoteError naming what is missing.
 */
export function buildZygoteLib(options: { cacheDir?: string } = {}): Promise<string> {
  const src = zygoteSource();
  return buildC({ name: 'mcl-zygote.so', source: src, flags: ['-std=gnu11', '-O2', '-Wall', '-fno-stack-protector', '-shared', '-fPIC'], subdir: 'zygote' }, options).catch((e: unknown) => {
    if (!(e instanceof CBuildError)) throw e;
    if (e.what === 'no-compiler') throw new ZygoteError('no C compiler (cc) to build the QEMU zygote', 'install one: apt-get install gcc libc6-dev (backends/kvm/scripts/install-deps.sh)');
    if (e.what === 'no-source') throw new ZygoteError(`the zygote source ${src} is missing`, 'set MCL_HOME to the mcl installation');
    throw new ZygoteError(e.message.replace('building mcl-zygote.so failed', 'building the QEMU zygote failed'), 'install gcc and libc6-dev, or set MCL_QEMU_ZYGOTE=0');
  });
}

/** Exit codes of a zygote's child that could not be set up, before QEMU ran (host/zygote.c). */
export const CHILD_SETUP_FAILURES: Readonly<Record<number, string>> = {
  124: 'no random bytes for its stack canary',
  125: 'the zygote was gone when it started',
  126: 'it could not enter its directory',
  127: 'it could not open its console log, /dev/null or the template state file',
};

/** A process a zygote forked. */
export interface ZygoteChild {
  pid: number;
  /** Resolves when the process ends. Never rejects. */
  exited: Promise<CloneExit>;
  /** How it ended, once it has. */
  exit(): CloneExit | null;
  /** Sends a signal (nothing once it ended). */
  kill(signal?: NodeJS.Signals): void;
}

export interface ZygoteStartOptions {
  /** The QEMU binary. */
  qemu: string;
  /** QEMU's command line; relative paths in it are relative to each child's directory. */
  args: string[];
  /** The device state file each child gets open as fd 3. */
  statePath: string;
  /** The zygote's working directory (created; removed when it exits). */
  dir: string;
  /** The library from buildZygoteLib. */
  lib: string;
  /** Bound for the zygote to report ready; default 20 s. */
  timeoutMs?: number;
}

const signalNames = new Map<number, string>(Object.entries(constants.signals).map(([name, n]) => [n, name]));

/**
 * Whether a process still runs. A zombie does not: an orphaned child of a
 * dead zygote waits for init to reap it, which some container inits never do.
 */
function processRuns(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

interface Live {
  child: ZygoteChild;
  settle(e: CloneExit): void;
}

export class Zygote {
  private readonly pending: { resolve: (child: ZygoteChild) => void; reject: (e: Error) => void }[] = [];
  private readonly live = new Map<number, Live>();
  private ended = false;
  private stderrText = '';
  /** Resolves when the zygote process has exited. */
  readonly exited: Promise<void>;

  private constructor(
    private readonly proc: ReturnType<typeof execa>,
    readonly pid: number,
    readonly dir: string,
  ) {
    this.exited = Promise.resolve(proc).then(() => this.onEnd());
  }

  /** Whether the zygote can still fork. */
  get alive(): boolean {
    return !this.ended;
  }

  /** Processes it forked that have not ended. */
  get children(): number {
    return this.live.size;
  }

  /**
   * Starts a zygote and resolves once it serves. Rejects (and kills it) when
   * it cannot: no parent-death signal available (perl missing), the library
   * not loaded, QEMU already threaded, or no answer within the timeout.
   */
  static async start(options: ZygoteStartOptions): Promise<Zygote> {
    const launch = launchCommand(options.qemu, options.args, undefined, { dieWithParent: true });
    if (!launch.dieWithParent) {
      throw new ZygoteError('a QEMU zygote needs a parent-death signal, which mcl sets through perl', 'install perl, or set MCL_QEMU_ZYGOTE=0');
    }
    await mkdir(options.dir, { recursive: true });
    const proc = execa(launch.file, launch.args, {
      cwd: options.dir,
      env: { LD_PRELOAD: options.lib, MCL_ZYGOTE: realpathSync(options.qemu), MCL_ZYGOTE_STATE: options.statePath },
      stdio: ['pipe', 'pipe', 'pipe'],
      buffer: false,
      reject: false,
    });
    if (proc.pid === undefined) {
      await Promise.resolve(proc);
      throw new ZygoteError('the QEMU zygote did not start');
    }
    const z = new Zygote(proc, proc.pid, options.dir);
    proc.stderr?.on('data', (d: Buffer) => {
      if (z.stderrText.length < 16_384) z.stderrText += d.toString();
    });
    const lines = createInterface({ input: proc.stdout! });
    const timeoutMs = options.timeoutMs ?? 20_000;
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new ZygoteError(`the QEMU zygote did not report ready within ${timeoutMs} ms${z.detail()}`)), timeoutMs);
      lines.once('line', (line) => {
        clearTimeout(timer);
        if (line === `ready ${proc.pid}`) resolve();
        else reject(new ZygoteError(`the QEMU zygote could not start: ${line.replace(/^error /, '')}${z.detail()}`));
      });
      z.exited.then(() => {
        clearTimeout(timer);
        reject(new ZygoteError(`the QEMU zygote exited while starting${z.detail()}`));
      });
      // QEMU that runs without the library (it was not preloaded into it) creates its files in the zygote's
      // directory and never answers: their appearance ends the wait.
      const watch = setInterval(() => {
        if (['qmp.sock', 'qemu.pid'].some((f) => existsSync(path.join(options.dir, f)))) {
          clearTimeout(timer);
          reject(new ZygoteError(`QEMU started without the zygote library (is ${options.qemu} a wrapper that clears LD_PRELOAD?)${z.detail()}`));
        }
      }, 50);
      const stop = () => clearInterval(watch);
      lines.once('line', stop);
      z.exited.then(stop);
      // The dynamic linker reports a library it cannot preload on stderr and runs QEMU without it; that
      // QEMU would never answer, so the first complaint ends the wait.
      proc.stderr?.on('data', (d: Buffer) => {
        if (/ld\.so|cannot be preloaded/.test(d.toString())) {
          clearTimeout(timer);
          reject(new ZygoteError(`the QEMU zygote could not load its library${z.detail()}`));
        }
      });
    });
    try {
      await ready;
    } catch (err) {
      proc.kill('SIGKILL');
      await z.exited;
      throw err;
    }
    lines.on('line', (line) => z.onLine(line));
    return z;
  }

  private detail(): string {
    const text = this.stderrText.trim();
    return text ? `:\n${text.split('\n').slice(-10).join('\n')}` : '';
  }

  /**
   * Forks a QEMU process into `dir` (which must exist): its relative paths
   * resolve there, and its stdout and stderr are appended to
   * `<dir>/console.log`.
   */
  spawn(dir: string): Promise<ZygoteChild> {
    if (this.ended) return Promise.reject(new ZygoteError('the QEMU zygote has exited'));
    if (/[\n\0]/.test(dir) || !path.isAbsolute(dir)) return Promise.reject(new ZygoteError(`not a directory a zygote can fork into: ${JSON.stringify(dir)}`));
    // The child itself is handed over, not its pid: a child that exits at once is reported (and dropped from
    // `live`) before a continuation that looked it up by pid would run.
    const child = new Promise<ZygoteChild>((resolve, reject) => this.pending.push({ resolve, reject }));
    this.proc.stdin!.write(`fork ${dir}\n`);
    return child;
  }

  /** Forks no more; the zygote exits once every child it forked has ended. */
  close(): void {
    if (!this.ended) this.proc.stdin!.end();
  }

  /** Kills the zygote, and with it (parent-death signal) every child it forked. */
  kill(): void {
    if (!this.ended) this.proc.kill('SIGKILL');
  }

  private onLine(line: string): void {
    const [word, a, b, c] = line.split(' ');
    if (word === 'forked') {
      const pid = Number(a);
      let exit: CloneExit | null = null;
      let settle!: (e: CloneExit) => void;
      const exited = new Promise<CloneExit>((resolve) => {
        settle = (e) => {
          if (exit) return;
          exit = e;
          this.live.delete(pid);
          resolve(e);
        };
      });
      const child: ZygoteChild = {
        pid,
        exited,
        exit: () => exit,
        kill: (signal: NodeJS.Signals = 'SIGKILL') => {
          if (exit) return;
          try {
            process.kill(pid, signal);
          } catch {
            // Already gone; the zygote reports its end.
          }
        },
      };
      this.live.set(pid, { child, settle });
      this.pending.shift()?.resolve(child);
    } else if (word === 'error') {
      this.pending.shift()?.reject(new ZygoteError(`the QEMU zygote could not fork: ${line.slice(6)}`));
    } else if (word === 'exit') {
      const code = Number(b);
      const signal = Number(c);
      this.live.get(Number(a))?.settle(code >= 0 ? { code, signal: null } : { code: null, signal: signalNames.get(signal) ?? `SIG${signal}` });
    }
  }

  private async onEnd(): Promise<void> {
    this.ended = true;
    for (const p of this.pending.splice(0)) p.reject(new ZygoteError(`the QEMU zygote exited${this.detail()}`));
    // The children die with the zygote (parent-death signal); each is reported once it is gone.
    const left = [...this.live.entries()];
    const deadline = Date.now() + 5_000;
    while (left.some(([pid]) => processRuns(pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    // A zygote asked to close exits only once its children have ended, so a child still here was taken down by the
    // zygote's death (a crash, or a kill from outside): its owner forks it again without blaming the guest.
    for (const [, l] of left) l.settle({ code: null, signal: 'SIGKILL', zygoteDied: true });
    await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
