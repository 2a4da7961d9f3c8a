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
import { readFile, unlink } from 'node:fs/promises';
import { execa } from 'execa';
import { ControlChannel } from './control';
import { readMemory } from './memory';
import { qemuArgs, requireQemu, shQuote } from './qemu';
import { QmpClient } from './qmp';
import { layoutOf } from './template';
import type { Clone, CloneExit, CloneOptions, GuestIdentity, Template } from './types';

/**
 * Loads the template's device state into a QEMU started with `-incoming
 * defer`. The template was stopped when saved, so the clone stays paused after
 * loading; `cont` runs it unless the caller asked for a paused clone.
 */
async function loadState(qmp: QmpClient, statePath: string, run: boolean, timeoutMs: number): Promise<void> {
  await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: true }] });
  await qmp.execute('migrate-incoming', { uri: `exec:cat ${shQuote(statePath)}` });
  // QEMU 7.2 emits no MIGRATION event for the end of an incoming migration: poll (it takes a few ms).
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
    if (st.status === 'completed') break;
    if (st.status === 'failed' || st.status === 'cancelled' || Date.now() > deadline) {
      throw new CloneError(`loading the template state failed: ${st['error-desc'] ?? st.status}`, 'rebuild the template (its files may be damaged)');
    }
    await new Promise((r) => setTimeout(r, 2));
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
  const proc = execa(qemu, args, { reject: false, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' });
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
    await Promise.race([loadState(qmp, template.statePath, !options.paused, readyTimeoutMs), died]);
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
