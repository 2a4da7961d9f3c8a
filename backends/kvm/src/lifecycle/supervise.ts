// The supervisor process (`mclc __supervise DIR`): one per deployment, started
// detached by `apply`, owning the QEMU processes and the broker.
//
// Node has no parent-death signal, so QEMU processes outlive a supervisor
// that is killed. Every process is therefore recorded twice: QEMU writes its
// own pid file into the clone's directory as it starts, and the supervisor
// keeps `processes.json` (pid and start time) up to date. A supervisor that
// starts kills whatever an earlier one left behind before doing anything
// else, so no orphan survives a crash and the next apply starts clean.

import { appendFileSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:net';
import type { Plan } from '@mcl/plan';
import { processStartTime, writeFileAtomic } from '@mcl/plan/state-store';
import { belongsToDeployment, DEPLOYMENT_ENV, findRunDir, inspectRunDir, killIfOurs, type RunDir } from './rundir';
import { BackendFailure } from './errors';
import { serveControl, type ControlRequest } from './control';
import { Supervisor, type ProcessRecord } from './supervisor';
import type { BrokerFactory, GuestRuntime } from './runtime';

export const SOCKET = 'supervisor.sock';
export const PID_FILE = 'supervisor.json';
export const PROCESSES_FILE = 'processes.json';
export const LOG_FILE = 'supervisor.log';
/** How often the supervisor checks that its run directory and socket are still there. */
const RUN_DIR_WATCH_MS = 2_000;
/** Above this size the supervisor's log is moved to supervisor.log.1 and begun anew. */
const MAX_LOG_BYTES = 16 * 1024 * 1024;

export interface SupervisorIdentity {
  pid: number;
  start_time: number | null;
  started_at: string;
}

/** Where the run directory of a state file is (or would be created); see rundir.ts. */
export function runDirFor(stateFile: string): string {
  return findRunDir(stateFile).dir;
}

export function readSupervisorIdentity(dir: string): SupervisorIdentity | null {
  try {
    const v = JSON.parse(readFileSync(join(dir, PID_FILE), 'utf8')) as SupervisorIdentity;
    return v && typeof v === 'object' && Number.isInteger(v.pid) ? v : null;
  } catch {
    return null;
  }
}

/** The deployment's live supervisor: the one its pid file names, if that process carries the deployment's token. */
export function supervisorAlive(rd: RunDir): SupervisorIdentity | null {
  const id = readSupervisorIdentity(rd.dir);
  return id && belongsToDeployment(id.pid, typeof id.start_time === 'number' ? id.start_time : null, rd.token) ? id : null;
}

/** Whether a process's command line names QEMU (what the reaper is after; the supervisor carries the token too). */
function isQemu(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('qemu');
  } catch {
    return false;
  }
}

/**
 * Kills every QEMU process an earlier supervisor of this deployment left
 * behind: those in processes.json and those whose pid file is in a clone
 * directory, each only after its environment showed the deployment's token.
 * Returns the pids killed.
 */
export function reapOrphans(rd: RunDir, alreadyKilled: readonly number[] = []): number[] {
  const { dir } = rd;
  const killed: number[] = [];
  const candidates: { pid: number; start_time: number | null }[] = [];
  try {
    const recorded = JSON.parse(readFileSync(join(dir, PROCESSES_FILE), 'utf8')) as unknown;
    if (Array.isArray(recorded)) {
      for (const r of recorded as Partial<ProcessRecord>[]) {
        if (r && typeof r.pid === 'number') candidates.push({ pid: r.pid, start_time: typeof r.start_time === 'number' ? r.start_time : null });
      }
    }
  } catch {
    // No record: nothing ran, or it was never written.
  }
  const clones = join(dir, 'clones');
  if (existsSync(clones)) {
    for (const d of readdirSync(clones)) {
      try {
        const pid = Number(readFileSync(join(clones, d, 'qemu.pid'), 'utf8').trim());
        if (pid > 0) candidates.push({ pid, start_time: null });
      } catch {
        // The clone never got as far as starting QEMU.
      }
    }
  }
  for (const c of candidates) {
    if (killed.includes(c.pid) || alreadyKilled.includes(c.pid) || !isQemu(c.pid)) continue;
    if (killIfOurs(c.pid, c.start_time, rd.token)) killed.push(c.pid);
  }
  return killed;
}

export interface RunSupervisorOptions {
  runtime?: GuestRuntime;
  brokerFactory?: BrokerFactory;
  /** Exit the process when done (the CLI entry); tests keep it. Default true. */
  exitProcess?: boolean;
}

export async function runSupervisor(dir: string, opts: RunSupervisorOptions = {}): Promise<void> {
  // `apply` creates the run directory and starts the supervisor with the directory's token in its
  // environment; a directory that is not a deployment's own, or a token that does not match, is refused
  // before anything is written or killed there.
  const found = inspectRunDir(dir);
  if (found.kind !== 'ours' || process.env[DEPLOYMENT_ENV] !== found.token) {
    const why = found.kind === 'foreign' ? found.why : found.kind === 'none' ? `${dir} does not exist` : `${DEPLOYMENT_ENV} does not carry the token of ${dir}`;
    process.stderr.write(`mclc __supervise: refusing ${dir}: ${why}\n`);
    return;
  }
  const rd: RunDir = found;
  const logPath = join(dir, LOG_FILE);
  let logged = 0;
  const log = (s: string) => {
    try {
      // A flooding guest makes the broker report every refused frame: keep the log bounded.
      if (++logged % 1000 === 0 && statSync(logPath).size > MAX_LOG_BYTES) renameSync(logPath, `${logPath}.1`);
      appendFileSync(logPath, `${new Date().toISOString()} ${s}\n`);
    } catch {
      // Logging must never take the supervisor down.
    }
  };
  const other = supervisorAlive(rd);
  if (other && other.pid !== process.pid) {
    log(`another supervisor (pid ${other.pid}) owns ${dir}; exiting`);
    return;
  }
  const me: SupervisorIdentity = { pid: process.pid, start_time: processStartTime(process.pid), started_at: new Date().toISOString() };
  writeFileAtomic(dir, PID_FILE, JSON.stringify(me) + '\n');
  const reaped = reapOrphans(rd);
  if (reaped.length) log(`killed ${reaped.length} QEMU process(es) left by an earlier supervisor: ${reaped.join(', ')}`);
  rmSync(join(dir, 'clones'), { recursive: true, force: true });
  writeFileAtomic(dir, PROCESSES_FILE, '[]\n');

  const runtime = opts.runtime ?? new (await import('./vm-runtime')).VmRuntime();
  const brokerFactory = opts.brokerFactory ?? (await defaultBrokerFactory(log));
  const sup = new Supervisor({
    runtime,
    brokerFactory,
    runDir: dir,
    log,
    // Written only while the run directory is still this deployment's: writing would otherwise create it
    // anew (writeFileAtomic makes missing directories), without its owner record and open to others.
    onProcessesChanged: (procs) => {
      if (inspectRunDir(dir).kind === 'ours') writeFileAtomic(dir, PROCESSES_FILE, JSON.stringify(procs, null, 1) + '\n');
    },
  });

  const sockPath = join(dir, SOCKET);
  try {
    unlinkSync(sockPath);
  } catch {
    // No stale socket.
  }
  let server: Server;
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  let stopping = false;
  const stop = async (why: string) => {
    // A signal, a destroy and the loss of the run directory can each ask; the first one stops.
    if (stopping) return;
    stopping = true;
    log(`stopping: ${why}`);
    server.close();
    await sup.shutdown();
    try {
      unlinkSync(join(dir, PID_FILE));
    } catch {
      // Already gone.
    }
    finish();
  };
  const startedAt = Date.now();
  server = serveControl(
    sockPath,
    async (req: ControlRequest, emit) => {
      switch (req.op) {
        case 'ping':
          return { pid: process.pid, uptime_ms: Date.now() - startedAt };
        case 'apply':
          return sup.apply(req.plan as Plan, { replace: req.replace, readyTimeoutMs: req.readyTimeoutMs }, emit);
        case 'destroy': {
          const ids = await sup.destroy(emit);
          // Exit once the answer is on its way.
          setTimeout(() => void stop('destroyed'), 50);
          return ids;
        }
        case 'status':
          return {
            pid: process.pid,
            uptime_ms: Date.now() - startedAt,
            plan_digest: sup.planDigest,
            system: sup.planSystem,
            accelerator: sup.accelerator(),
            instances: sup.instanceStatus(),
            channels: sup.channelStatus(),
            exposures: sup.exposureStatus(),
            unwired_violations: sup.unwiredViolations(),
            helpers: await sup.helperStatus(),
          };
        case 'logs': {
          const files = sup.logFiles(req.instance);
          if (!files) throw new BackendFailure('usage', `instance ${req.instance} is not running`, 'see `mclc status` for the instances');
          return files;
        }
        default:
          throw new BackendFailure('failure', `unknown control request ${(req as { op: string }).op}`);
      }
    },
    log,
  );
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  // Without its run directory (removed by hand, by a cleaner of /tmp, or with $XDG_RUNTIME_DIR at logout) no
  // command can reach or recognise this deployment again, and a new apply would start a second one beside
  // it: the deployment stops instead of running on out of reach.
  const watch = setInterval(() => {
    const now = inspectRunDir(dir);
    if (now.kind !== 'ours' || now.token !== rd.token || !existsSync(sockPath)) {
      clearInterval(watch);
      void stop(`the run directory ${dir} or its socket is gone`);
    }
  }, RUN_DIR_WATCH_MS);
  watch.unref();
  log(`supervisor ${process.pid} listening on ${sockPath}`);
  await finished;
  clearInterval(watch);
  if (opts.exitProcess !== false) setTimeout(() => process.exit(0), 100).unref();
}

async function defaultBrokerFactory(log: (s: string) => void): Promise<BrokerFactory> {
  const { Broker } = await import('@mcl/broker');
  return (plan, hooks) => {
    const b = new Broker(plan, {
      log: (e) => {
        if (e.level !== 'debug') log(`broker ${e.level}: ${e.message}`);
      },
      onSessionOpen: hooks.onSessionOpen,
      onSessionClose: hooks.onSessionClose,
    });
    b.on('violation', hooks.onViolation);
    return b;
  };
}

/**
 * Used by destroy when the supervisor cannot be reached: stops the
 * deployment's supervisor and QEMU processes directly, each only after its
 * environment showed the deployment's token.
 */
export function killRecorded(rd: RunDir): number[] {
  const killed: number[] = [];
  const sup = supervisorAlive(rd);
  if (sup && killIfOurs(sup.pid, sup.start_time, rd.token)) killed.push(sup.pid);
  killed.push(...reapOrphans(rd, killed));
  return killed;
}

export function writeJson(path: string, v: unknown): void {
  writeFileSync(path, JSON.stringify(v, null, 2) + '\n');
}
