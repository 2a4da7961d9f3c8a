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
import { open, readFile, unlink } from 'node:fs/promises';
import { execa } from 'execa';
import { ControlChannel } from './control';
import { readMemory } from './memory';
import { launchCommand, qemuArgs, requireQemu } from './qemu';
import { QmpClient } from './qmp';
import { layoutOf } from './template';
import type { Clone, CloneExit, CloneOptions, GuestIdentity, Template } from './types';

/**
 * Loads the template's device state into a QEMU started with `-incoming
 * defer`, reading it from `fd`, the state file the clone inherited. The
 * template was stopped when saved, so the clone stays paused after loading;
 * `cont` runs it unless the caller asked for a paused clone.
 */
async function loadState(qmp: QmpClient, fd: number, run: boolean, timeoutMs: number): Promise<void> {
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
    qmp.execute('migrate-incoming', { uri: `fd:${fd}` }),
  ]);
  const status = String((await done).data?.status);
  if (status !== 'completed') {
    const st = await qmp.execute<{ 'error-desc'?: string }>('query-migrate').catch(() => ({}) as { 'error-desc'?: string });
    throw new CloneError(`loading the template state failed: ${st['error-desc'] ?? status}`, 'rebuild the template (its files may be damaged)');
  }
  if (run) await qmp.execute('cont');
}

export class CloneError extends Error {
  /** The CLI's error kind: an expected failure, shown without a stack trace. */
  readonly kind = 'failure' as const;
  constructor(message: string, readonly hint?: string) {
    super(message);
    this.name = 'CloneError';
  }
}

/**
 * Starts a clone of `template` and resolves once its agent answered on the
 * control port. On failure the QEMU process is killed and the promise rejects
 * with the tail of QEMU's stderr and the console log.
 */
export async function forkClone(template: Template, options: CloneOptions): Promise<Clone> {
  const qemu = requireQemu();
  if (options.dataPortSockets.length > template.spec.portSlots) {
    throw new CloneError(
      `clone ${options.name}: ${options.dataPortSockets.length} data port sockets but template ${template.id} has ${template.spec.portSlots} slots`,
      'use a template with enough port slots',
    );
  }
  if (!existsSync(template.memPath) || !existsSync(template.statePath)) {
    throw new CloneError(
      `clone ${options.name}: the files of template ${template.id} are gone (${template.memPath})`,
      'the template was pruned or the host rebooted: call ensureTemplate again for a fresh one',
    );
  }
  const qmpSocket = options.qmpSocket ?? `${options.controlSocket}.qmp`;
  // Stale sockets from a previous process at the same path would make QEMU fail to listen.
  for (const p of [options.controlSocket, qmpSocket, ...options.dataPortSockets]) if (p) await unlink(p).catch(() => undefined);
  const args = qemuArgs(layoutOf(template, true), {
    name: options.name,
    shareMemory: false,
    controlSocket: options.controlSocket,
    dataPortSockets: options.dataPortSockets,
    logFile: options.logFile,
    qmpSocket,
    pidFile: options.pidFile,
    incomingStatePath: template.statePath,
    paused: options.paused,
  });
  const start = Date.now();
  const launch = launchCommand(qemu, args);
  // The device state reaches QEMU as an inherited descriptor (fd 3), which spares a shell and cat per clone
  // (`exec:cat`). Our copy is closed once the child has its own.
  // execa hands a descriptor number in `stdio` to child_process.spawn as it is; its types list numbers
  // only for the three standard streams, hence the cast.
  const state = await open(template.statePath, 'r');
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
    throw new CloneError(`clone ${options.name}: QEMU did not start: ${stderr.trim()}`, 'run `mclc doctor`');
  }
  const failure = async (what: string) => {
    const log = await readFile(options.logFile, 'utf8').catch(() => '');
    const detail = (stderr + log).split('\n').filter(Boolean).slice(-10).join('\n');
    return new CloneError(`clone ${options.name}: ${what}${detail ? `\n${detail}` : ''}`, `see ${options.logFile}`);
  };
  const died = exited.then(async (e) => {
    throw await failure(`QEMU exited while starting (${e.signal ?? `exit code ${e.code}`})`);
  });
  died.catch(() => undefined);

  let qmp: QmpClient | null = null;
  let control: ControlChannel | null = null;
  const phases = { connectMs: 0, loadMs: 0, handshakeMs: 0 };
  const readyTimeoutMs = options.readyTimeoutMs ?? 20_000;
  try {
    [qmp, control] = await Promise.race([
      Promise.all([
        QmpClient.connect(qmpSocket, { timeoutMs: readyTimeoutMs, signal: options.signal }),
        ControlChannel.connect(options.controlSocket, readyTimeoutMs, options.signal),
      ]),
      died,
    ]);
    phases.connectMs = Date.now() - start;
    await Promise.race([loadState(qmp, 3, !options.paused, readyTimeoutMs), died]);
    phases.loadMs = Date.now() - start - phases.connectMs;
    if (!options.paused) await Promise.race([control.handshake(Math.max(1_000, readyTimeoutMs - (Date.now() - start))), died]);
  } catch (err) {
    qmp?.close();
    control?.close();
    proc.kill('SIGKILL');
    await exited;
    throw err instanceof CloneError ? err : await failure((err as Error).message);
  }
  const readyMs = Date.now() - start;
  phases.handshakeMs = readyMs - phases.connectMs - phases.loadMs;
  const q = qmp;
  const c = control;
  exited.then(() => {
    q.close();
    c.close();
  });

  const clone: Clone = {
    name: options.name,
    pid,
    template,
    qmp: q,
    control: c,
    readyMs,
    phases,
    sendIdentity: (identity: GuestIdentity, timeoutMs?: number) => c.sendIdentity(identity, timeoutMs),
    async resume() {
      await q.execute('cont');
      await c.handshake(readyTimeoutMs);
    },
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (exit) return exit;
      proc.kill(signal);
      return exited;
    },
    exited,
    memory: () => readMemory(pid),
  };
  return clone;
}
