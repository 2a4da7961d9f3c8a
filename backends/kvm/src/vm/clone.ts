// Copy-on-write clones of a template.
//
// A clone is a QEMU process with the template's exact machine and device
// layout whose RAM is a private (MAP_PRIVATE) mapping of the template's RAM
// file and whose device state streams in from the template's state file
// (`-incoming` with x-ignore-shared). Pages are copied only when the clone
// writes them, so idle clones share almost all guest memory.
//
// After the state is loaded QEMU continues the guest, which wakes up inside
// the agent's read loop. The host connects to the control port and repeats a
// nonce'd hello until the agent answers (see ControlChannel.handshake).

import { existsSync } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { execa } from 'execa';
import { ConsoleLog } from './console-log';
import { ControlChannel } from './control';
import { readMemory } from './memory';
import { guestRamKsmOff, launchCommand, qemuArgs, requireQemu } from './qemu';
import { QmpClient } from './qmp';
import { layoutOf } from './template';
import { CHILD_SETUP_FAILURES, type Zygote, type ZygoteChild } from './zygote';
import type { Clone, CloneExit, CloneOptions, GuestIdentity, Template } from './types';

/**
 * Loads the template's device state into a QEMU started with `-incoming
 * defer`, reading it from `fd`, the state file the clone inherited. The
 * template was stopped when saved, so the clone stays paused after loading
 * until `cont` (see run).
 */
export async function loadState(qmp: QmpClient, fd: number | string, timeoutMs: number): Promise<void> {
  // With the `events` capability QEMU reports the end of the incoming migration as a MIGRATION event,
  // which is sooner than a query-migrate poll would notice it.
  const done = qmp.waitEvent('MIGRATION', (e) => ['completed', 'failed', 'cancelled'].includes(String(e.data?.status)), timeoutMs);
  done.catch(() => undefined);
  // QMP runs commands in order, so both go out at once.
  await Promise.all([
    qmp.execute('migrate-set-capabilities', {
      capabilities: [
        { capability: 'x-ignore-shared', state: true },
        { capability: 'events', state: true },
      ],
    }),
    // A string is a migration URI (a moved clone's device state: `exec:cat FILE`).
    qmp.execute('migrate-incoming', { uri: typeof fd === 'number' ? `fd:${fd}` : fd }),
  ]);
  const status = String((await done).data?.status);
  if (status !== 'completed') {
    const st = await qmp.execute<{ 'error-desc'?: string }>('query-migrate').catch(() => ({}) as { 'error-desc'?: string });
    throw new CloneError(`loading the template state failed: ${st['error-desc'] ?? status}`, 'rebuild the template (its files may be damaged)');
  }
  // Where QEMU is mergeable as a whole, guest RAM leaves KSM before the guest first runs (see
  // guestRamKsmOff). After the load rather than before it: sent first, the madvise made the load
  // about 30 ms slower; here it adds about 4 ms.
  await Promise.all(guestRamKsmOff().map((c) => qmp.execute(c.execute, c.arguments)));
}

/**
 * Continues a loaded clone and resolves with the agent's answer to the
 * handshake. The first `hello` goes out with `cont` rather than after its
 * reply: QEMU passes it to the guest once the guest runs, so the answer does
 * not wait for a round trip of `cont` on top of the guest's own wake-up.
 */
async function run(qmp: QmpClient, control: ControlChannel, timeoutMs: number): Promise<void> {
  await Promise.all([qmp.execute('cont'), control.handshake(timeoutMs)]);
}

export class CloneError extends Error {
  /** The CLI's error kind: an expected failure, shown without a stack trace. */
  readonly kind = 'failure' as const;
  constructor(message: string, readonly hint?: string) {
    super(message);
    this.name = 'CloneError';
  }
}

/** Where a clone's QEMU listens and writes, as given on its command line. */
export interface QemuPaths {
  /** `-name`. */
  name: string;
  controlSocket: string;
  qmpSocket: string;
  /** Per data slot (index 0 is slot 1): a socket path, or null for a sink. */
  dataPortSockets: (string | null)[];
  logFile: string;
  /** The console's socket (see console-log.ts); without it QEMU writes the console to `logFile` itself. */
  consoleSocket?: string;
  pidFile?: string;
}

/**
 * A clone's QEMU process before its state is loaded: started with the
 * template's layout and `-incoming defer`, the host connected to its QMP and
 * control sockets. No guest code has run in it yet.
 */
export interface StartedQemu {
  pid: number;
  qmp: QmpClient;
  control: ControlChannel;
  /** ms from spawning QEMU until both connections were up. */
  startMs: number;
  /** QEMU is killed when the thread that started it ends (see LaunchOptions.dieWithParent). */
  dieWithParent: boolean;
  /** Resolves when QEMU exits. Never rejects. */
  exited: Promise<CloneExit>;
  /** How QEMU exited, once it has. */
  exit(): CloneExit | null;
  /** Sends a signal to QEMU (nothing once it exited). */
  kill(signal?: NodeJS.Signals): void;
  /** The first 16 KiB QEMU wrote to stderr. */
  stderr(): string;
  /**
   * The template's device state is loaded already (a pool loads it while the
   * process waits, see preloadState); the guest is still paused, so no guest
   * code has run.
   */
  loaded?: boolean;
}

/**
 * Loads the template's state into a started QEMU ahead of its take, leaving
 * the guest paused: the take then only continues it. Loading runs no guest
 * code (the state is the template's, the same for every clone, and RAM is not
 * part of it), so the process can still become any clone.
 */
export async function preloadState(q: StartedQemu, timeoutMs: number): Promise<void> {
  await loadState(q.qmp, 3, timeoutMs);
  q.loaded = true;
}

/** Checks that `template` can be forked into a clone with `dataPorts` data port sockets. */
export function checkForkable(template: Template, name: string, dataPorts: number): void {
  if (dataPorts > template.spec.portSlots) {
    throw new CloneError(
      `clone ${name}: ${dataPorts} data port sockets but template ${template.id} has ${template.spec.portSlots} slots`,
      'use a template with enough port slots',
    );
  }
  if (!existsSync(template.memPath) || !existsSync(template.statePath)) {
    throw new CloneError(
      `clone ${name}: the files of template ${template.id} are gone (${template.memPath})`,
      'the template was pruned or the host rebooted: call ensureTemplate again for a fresh one',
    );
  }
}

/** The tail of QEMU's stderr and of the console log, for an error message. */
async function failureDetail(stderr: string, logFile: string): Promise<string> {
  const log = await readTail(logFile, 16_384);
  return (stderr + log).split('\n').filter(Boolean).slice(-10).join('\n');
}

/** The last `bytes` bytes of a file ('' when it cannot be read): a log is never read whole. */
async function readTail(file: string, bytes: number): Promise<string> {
  try {
    const f = await open(file, 'r');
    try {
      const { size } = await f.stat();
      const n = Math.min(size, bytes);
      const buf = Buffer.alloc(n);
      await f.read(buf, 0, n, size - n);
      return buf.toString('utf8');
    } finally {
      await f.close();
    }
  } catch {
    return '';
  }
}

/** The console socket of a clone: as given, else beside the control socket. */
export function consoleSocketOf(options: Pick<CloneOptions, 'consoleSocket' | 'controlSocket'>): string {
  return options.consoleSocket ?? `${options.controlSocket}.con`;
}

/** A QEMU process as started, before the host connected to it. */
interface QemuProcess {
  pid: number;
  dieWithParent: boolean;
  exited: Promise<CloneExit>;
  exit(): CloneExit | null;
  kill(signal: NodeJS.Signals): void;
  stderr(): string;
}

/**
 * Starts QEMU for a clone of `template` with `-incoming defer`, the template's
 * state file inherited as fd 3, and connects to its QMP and control sockets.
 * On failure QEMU is killed and the promise rejects with the tail of its
 * stderr and console log.
 */
export async function startQemu(
  template: Template,
  paths: QemuPaths,
  options: {
    timeoutMs: number;
    signal?: AbortSignal;
    paused?: boolean;
    dieWithParent?: boolean;
    /** Load this device state (a checkpoint's, written by xen-save-devices-state) instead of the template's. */
    deviceStatePath?: string;
  },
): Promise<StartedQemu> {
  const qemu = requireQemu();
  // Stale sockets from a previous process at the same path would make QEMU fail to listen.
  for (const p of [paths.controlSocket, paths.qmpSocket, paths.consoleSocket, ...paths.dataPortSockets]) if (p) await unlink(p).catch(() => undefined);
  const args = qemuArgs(layoutOf(template, true), {
    name: paths.name,
    shareMemory: false,
    controlSocket: paths.controlSocket,
    dataPortSockets: paths.dataPortSockets,
    logFile: paths.logFile,
    consoleSocket: paths.consoleSocket,
    qmpSocket: paths.qmpSocket,
    pidFile: paths.pidFile,
    incomingStatePath: options.deviceStatePath ?? template.statePath,
    paused: options.paused,
    deviceStateOnly: options.deviceStatePath !== undefined,
  });
  const start = Date.now();
  const launch = launchCommand(qemu, args, undefined, { dieWithParent: options.dieWithParent });
  // The device state reaches QEMU as an inherited descriptor (fd 3), which spares a shell and cat per clone
  // (`exec:cat`). Our copy is closed once the child has its own.
  // execa hands a descriptor number in `stdio` to child_process.spawn as it is; its types list numbers
  // only for the three standard streams, hence the cast.
  const state = await open(options.deviceStatePath ?? template.statePath, 'r');
  const stdio = ['ignore', 'ignore', 'pipe', state.fd] as unknown as ['ignore', 'ignore', 'pipe', 'inherit'];
  const proc = execa(launch.file, launch.args, { reject: false, stdio });
  await state.close();
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 16_384) stderr += d.toString();
  });
  let exit: CloneExit | null = null;
  const exited: Promise<CloneExit> = proc.then((r) => {
    exit = { code: r.exitCode ?? null, signal: r.signal ?? null };
    return exit;
  });
  const pid = proc.pid;
  if (pid === undefined) {
    await exited;
    throw new CloneError(`clone ${paths.name}: QEMU did not start: ${stderr.trim()}`, 'run `mclc doctor`');
  }
  const q: QemuProcess = {
    pid,
    dieWithParent: launch.dieWithParent,
    exited,
    exit: () => exit,
    kill: (signal) => {
      if (!exit) proc.kill(signal);
    },
    stderr: () => stderr,
  };
  return connectQemu(q, paths, options, start);
}

/**
 * Forks a clone's QEMU from the template's zygote into `dir` and connects to
 * it, as startQemu does. `paths` must be the paths the zygote's command line
 * names, in `dir`. QEMU's own messages go to the console log (`paths.logFile`).
 */
export async function startQemuFromZygote(
  zygote: Zygote,
  dir: string,
  paths: QemuPaths,
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<StartedQemu> {
  const start = Date.now();
  let child: ZygoteChild;
  try {
    child = await zygote.spawn(dir);
  } catch (err) {
    throw new CloneError(`clone ${paths.name}: ${(err as Error).message}`, 'set MCL_QEMU_ZYGOTE=0 to start QEMU directly');
  }
  // The child's stderr goes to the console log; a child that failed before QEMU ran is explained here.
  const setupFailure = () => {
    const reason = CHILD_SETUP_FAILURES[child.exit()?.code ?? -1];
    return reason ? `the zygote's child exited before QEMU ran: ${reason}\n` : '';
  };
  const q: QemuProcess = { ...child, dieWithParent: true, stderr: setupFailure };
  return connectQemu(q, paths, options, start);
}

/** Connects to a started QEMU's QMP and control sockets; kills it on failure. */
async function connectQemu(
  q: QemuProcess,
  paths: QemuPaths,
  options: { timeoutMs: number; signal?: AbortSignal },
  start: number,
): Promise<StartedQemu> {
  const died = q.exited.then(async (e) => {
    const detail = await failureDetail(q.stderr(), paths.logFile);
    throw new CloneError(`clone ${paths.name}: QEMU exited while starting (${e.signal ?? `exit code ${e.code}`})${detail ? `\n${detail}` : ''}`, `see ${paths.logFile}`);
  });
  died.catch(() => undefined);
  let qmp: QmpClient | undefined;
  let control: ControlChannel | undefined;
  const qmpP = QmpClient.connect(paths.qmpSocket, { timeoutMs: options.timeoutMs, signal: options.signal }).then((c) => (qmp = c));
  const controlP = ControlChannel.connect(paths.controlSocket, options.timeoutMs, options.signal).then((c) => (control = c));
  try {
    await Promise.race([Promise.all([qmpP, controlP]), died]);
  } catch (err) {
    // A connection that completes after the failure is closed too.
    void qmpP.then((c) => c.close(), () => undefined);
    void controlP.then((c) => c.close(), () => undefined);
    q.kill('SIGKILL');
    await q.exited;
    if (err instanceof CloneError) throw err;
    const detail = await failureDetail(q.stderr(), paths.logFile);
    throw new CloneError(`clone ${paths.name}: ${(err as Error).message}${detail ? `\n${detail}` : ''}`, `see ${paths.logFile}`);
  }
  const qm = qmp!;
  const c = control!;
  q.exited.then(() => {
    qm.close();
    c.close();
  });
  return {
    pid: q.pid,
    qmp: qm,
    control: c,
    startMs: Date.now() - start,
    dieWithParent: q.dieWithParent,
    exited: q.exited,
    exit: q.exit,
    kill: (signal: NodeJS.Signals = 'SIGKILL') => q.kill(signal),
    stderr: q.stderr,
  };
}

/**
 * Makes a clone of a started QEMU: loads the template state, continues the
 * guest (unless `options.paused`) and waits for the agent's answer to the
 * handshake. `startedAt` is when the fork began (readyMs counts from it) and
 * `connectMs` the part of it spent before the state load. On failure QEMU is
 * killed and the promise rejects.
 */
export async function readyClone(
  template: Template,
  q: StartedQemu,
  options: CloneOptions,
  timing: { startedAt: number; connectMs: number; pooled: boolean },
  /** Runs before the state is loaded, while no guest code can run: a restore writes the checkpoint's pages into guest RAM here. */
  beforeLoad?: () => Promise<void>,
): Promise<Clone> {
  const readyTimeoutMs = options.readyTimeoutMs ?? 20_000;
  const died = q.exited.then(async (e) => {
    const detail = await failureDetail(q.stderr(), options.logFile);
    throw new CloneError(`clone ${options.name}: QEMU exited while starting (${e.signal ?? `exit code ${e.code}`})${detail ? `\n${detail}` : ''}`, `see ${options.logFile}`);
  });
  died.catch(() => undefined);
  const phases = { connectMs: timing.connectMs, loadMs: 0, handshakeMs: 0 };
  const loadStart = Date.now();
  // The console is read from before the guest first runs, so none of its output is lost (see console-log.ts).
  let console: ConsoleLog | undefined;
  const consoleP = ConsoleLog.connect(consoleSocketOf(options), options.logFile, {
    limits: options.consoleLimits,
    header: options.consoleHeader,
    timeoutMs: readyTimeoutMs,
    signal: options.signal,
  }).then((c) => (console = c));
  consoleP.catch(() => undefined);
  try {
    if (beforeLoad) await Promise.race([beforeLoad(), died]);
    await Promise.race([Promise.all([q.loaded ? undefined : loadState(q.qmp, 3, readyTimeoutMs), consoleP]), died]);
    phases.loadMs = Date.now() - loadStart;
    if (!options.paused) await Promise.race([run(q.qmp, q.control, Math.max(1_000, readyTimeoutMs - (Date.now() - timing.startedAt))), died]);
  } catch (err) {
    q.qmp.close();
    q.control.close();
    void consoleP.then((c) => c.close(), () => undefined);
    q.kill('SIGKILL');
    await q.exited;
    if (err instanceof CloneError) throw err;
    const detail = await failureDetail(q.stderr(), options.logFile);
    throw new CloneError(`clone ${options.name}: ${(err as Error).message}${detail ? `\n${detail}` : ''}`, `see ${options.logFile}`);
  }
  const readyMs = Date.now() - timing.startedAt;
  phases.handshakeMs = readyMs - phases.connectMs - phases.loadMs;
  const { qmp, control, pid } = q;
  // QEMU closes the socket when it exits: what it wrote last (a program's last lines before it ended) may
  // still wait in the socket while the reader pauses between reads, so it is read to the end, then closed.
  void q.exited.then(() => console?.drainAndClose());
  return {
    name: options.name,
    pid,
    template,
    qmp,
    control,
    readyMs,
    phases,
    pooled: timing.pooled,
    sendIdentity: (identity: GuestIdentity, timeoutMs?: number) => control.sendIdentity(identity, timeoutMs),
    async resume() {
      await run(qmp, control, readyTimeoutMs);
    },
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      const done = q.exit();
      if (done) return done;
      q.kill(signal);
      return q.exited;
    },
    exited: q.exited,
    memory: () => readMemory(pid),
  };
}

/** The sockets and files a clone's QEMU process is started with (a fork's, a restore's). */
export function qemuPaths(options: CloneOptions): QemuPaths {
  return {
    name: options.name,
    controlSocket: options.controlSocket,
    qmpSocket: options.qmpSocket ?? `${options.controlSocket}.qmp`,
    dataPortSockets: options.dataPortSockets,
    logFile: options.logFile,
    consoleSocket: consoleSocketOf(options),
    pidFile: options.pidFile,
  };
}

/**
 * Starts a clone of `template` and resolves once its agent answered on the
 * control port. On failure the QEMU process is killed and the promise rejects
 * with the tail of QEMU's stderr and the console log. (`ClonePool.take` does
 * the same with a QEMU process started ahead of time.)
 */
export async function forkClone(template: Template, options: CloneOptions): Promise<Clone> {
  checkForkable(template, options.name, options.dataPortSockets.length);
  const startedAt = Date.now();
  const readyTimeoutMs = options.readyTimeoutMs ?? 20_000;
  const q = await startQemu(
    template,
    qemuPaths(options),
    { timeoutMs: readyTimeoutMs, signal: options.signal, paused: options.paused },
  );
  return readyClone(template, q, options, { startedAt, connectMs: Date.now() - startedAt, pooled: false });
}
