// The supervisor process (`mclc __supervise DIR`): one per deployment, started
// detached by `apply`, owning the QEMU processes and the broker.
//
// Node has no parent-death signal, so QEMU processes outlive a supervisor
// that is killed. Every process is therefore recorded twice: QEMU writes its
// own pid file into the clone's directory as it starts, and the supervisor
// keeps `processes.json` (pid and start time) up to date. A supervisor that
// starts kills whatever an earlier one left behind before doing anything
// else, so no orphan survives a crash and the next apply starts clean.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, closeSync, constants, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:net';
import { brokerPlan, digestMismatches, validatePlan, type Plan } from '@mcl/plan';
import { processStartTime, writeFileAtomic } from '@mcl/plan/state-store';
import { belongsToDeployment, DEPLOYMENT_ENV, findRunDir, readSmallJson, inspectRunDir, killIfOurs, type RunDir } from './rundir';
import { BackendFailure } from './errors';
import { serveControl, type ControlRequest } from './control';
import { Supervisor, type ProcessRecord } from './supervisor';
import { moveOut } from './migrate-out';
import { forgetMoved } from './migrate-commands';
import type { BrokerFactory, GuestRuntime } from './guest-runtime';
import { openRecorder, requestWho, STATE_FILE_ENV } from './records';
import type { MetricsEndpoint } from './metrics';
import { HealthMonitor } from './health';
import { linkConfigDigest, readLinkIdentity, startLinks } from './links';
import { KeptClones } from './kept';
import { Cgroups, cgroupName, detectCgroups } from './cgroups';

export const SOCKET = 'supervisor.sock';
export const PID_FILE = 'supervisor.json';
export const PROCESSES_FILE = 'processes.json';
export const LOG_FILE = 'supervisor.log';
/** The plan the supervisor applied last (0600: it holds the sensitive parameters), re-applied by a restarted supervisor. */
export const APPLIED_PLAN_FILE = 'applied-plan.json';
/** The address the metrics endpoint was asked to serve on (metrics.ts), for a supervisor started again. */
export const METRICS_FILE = 'metrics.json';
/** The watchdog's pid, start time, restart count and, once it gave up, why. */
export const WATCHDOG_FILE = 'watchdog.json';
/** Which part the `__supervise` process plays: `watchdog` (restarts the supervisor) or the supervisor itself. */
export const ROLE_ENV = 'MCL_SUPERVISOR_ROLE';
/** How many times the watchdog restarted the supervisor: set in a restarted supervisor's environment. */
export const RESTARTS_ENV = 'MCL_SUPERVISOR_RESTARTS';
/** `0` in the environment of `apply` starts the supervisor without a watchdog (e.g. when a service manager restarts it). */
export const WATCHDOG_ENV = 'MCL_SUPERVISOR_WATCHDOG';
/** The watchdog restarts a supervisor that died at most this many times within the window, then gives up. */
export const RESTART_LIMIT = { count: 5, windowMs: 60_000 };
/** How long the watchdog waits before it starts the supervisor again. */
const RESTART_DELAY_MS = 500;
/** A plan file larger than this is not one the supervisor wrote (plans are sent over the control socket whole). */
const MAX_APPLIED_PLAN_BYTES = 64 * 1024 * 1024;
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

/** The supervisor's log (supervisor.log in the run directory), bounded; used by the watchdog too. */
function supervisorLog(dir: string): (s: string) => void {
  const logPath = join(dir, LOG_FILE);
  let logged = 0;
  return (s: string) => {
    try {
      // A flooding guest makes the broker report every refused frame: keep the log bounded.
      if (++logged % 1000 === 0 && statSync(logPath).size > MAX_LOG_BYTES) renameSync(logPath, `${logPath}.1`);
      appendFileSync(logPath, `${new Date().toISOString()} ${s}\n`);
    } catch {
      // Logging must never take the supervisor down.
    }
  };
}

/**
 * Whether the watchdog may start the supervisor once more, given the times
 * (ms) of its earlier restarts: at most `limit.count` within `limit.windowMs`,
 * so a supervisor that dies as soon as it starts is not restarted forever.
 */
export function restartAllowed(history: readonly number[], now: number, limit = RESTART_LIMIT): boolean {
  return history.filter((t) => now - t < limit.windowMs).length < limit.count;
}

export interface WatchdogRecord {
  pid: number;
  start_time: number | null;
  restarts: number;
  /** Why the watchdog stopped restarting the supervisor, or null while it still does. */
  gave_up: string | null;
}

/** The watchdog's record, when it has the right shape (it only says what the watchdog did; pids in it are candidates). */
export function readWatchdog(dir: string): WatchdogRecord | null {
  const v = readSmallJson(join(dir, WATCHDOG_FILE), 4096) as Partial<WatchdogRecord> | null;
  if (!v || typeof v !== 'object' || !Number.isInteger(v.pid) || !Number.isInteger(v.restarts)) return null;
  return {
    pid: v.pid!,
    start_time: typeof v.start_time === 'number' ? v.start_time : null,
    restarts: v.restarts!,
    gave_up: typeof v.gave_up === 'string' ? v.gave_up.slice(0, 1000) : null,
  };
}

/** The deployment's live watchdog: the one its record names, if that process carries the deployment's token. */
export function watchdogAlive(rd: RunDir): WatchdogRecord | null {
  const w = readWatchdog(rd.dir);
  return w && belongsToDeployment(w.pid, w.start_time, rd.token) ? w : null;
}

const nodeSha256 = (text: string | readonly string[]) => {
  const h = createHash('sha256');
  for (const t of typeof text === 'string' ? [text] : text) h.update(t);
  return h.digest('hex');
};

interface AppliedPlan {
  plan: Plan;
  ready_timeout_ms: number;
}

/** Keeps the plan just applied (and how it was applied) in the run directory, for a restarted supervisor. */
function writeAppliedPlan(rd: RunDir, applied: AppliedPlan): void {
  // Written only while the run directory is still this deployment's (writeFileAtomic would create it anew).
  if (inspectRunDir(rd.dir).kind === 'ours') writeFileAtomic(rd.dir, APPLIED_PLAN_FILE, JSON.stringify(applied) + '\n');
}

/**
 * The plan the supervisor applied last, or why it cannot be used. The file
 * is the supervisor's own, in a directory only this user can write, but it
 * is read like any other input: bounded, not through a link, validated as a
 * plan and its digests checked against its contents.
 */
export function readAppliedPlan(dir: string): AppliedPlan | { error: string } | null {
  const path = join(dir, APPLIED_PLAN_FILE);
  if (!existsSync(path)) return null;
  const v = readSmallJson(path, MAX_APPLIED_PLAN_BYTES) as Partial<AppliedPlan> | null;
  if (!v || typeof v !== 'object') return { error: `${path} is not a JSON object of at most ${MAX_APPLIED_PLAN_BYTES} bytes` };
  const { plan, errors } = validatePlan(v.plan);
  if (!plan) return { error: `${path} does not hold a valid plan: ${errors.slice(0, 3).map((e) => `${e.path}: ${e.message}`).join('; ')}` };
  const wrong = digestMismatches(plan, nodeSha256);
  if (wrong.length) return { error: `${path}: ${wrong.slice(0, 3).join('; ')}` };
  const ms = v.ready_timeout_ms;
  return { plan, ready_timeout_ms: typeof ms === 'number' && Number.isInteger(ms) && ms > 0 && ms <= 3_600_000 ? ms : 60_000 };
}

/**
 * The watchdog (`__supervise DIR` with MCL_SUPERVISOR_ROLE=watchdog, started
 * by `apply`): starts the supervisor as its child and starts it again when it
 * dies by a signal or a non-zero exit, at most RESTART_LIMIT.count times in
 * RESTART_LIMIT.windowMs. A supervisor that exits 0 stopped on purpose
 * (destroy, SIGTERM, its run directory gone), and so does the watchdog then.
 * It carries the deployment's token like every process of the deployment,
 * so destroy finds and kills it the same way.
 */
async function runWatchdog(rd: RunDir, log: (s: string) => void): Promise<void> {
  const { dir, token } = rd;
  const me = { pid: process.pid, start_time: processStartTime(process.pid) };
  const record = (restarts: number, gaveUp: string | null) => {
    if (inspectRunDir(dir).kind === 'ours') writeFileAtomic(dir, WATCHDOG_FILE, JSON.stringify({ ...me, restarts, gave_up: gaveUp }) + '\n');
  };
  const history: number[] = [];
  let restarts = 0;
  let child: ReturnType<typeof spawn> | null = null;
  // A SIGTERM is passed on: the supervisor then stops its deployment and exits 0, and the watchdog with it.
  // Between two starts there is no supervisor to pass it to, and the watchdog just stops.
  let stopping = false;
  const onStop = () => {
    stopping = true;
    if (child) child.kill('SIGTERM');
    else process.exit(0);
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  record(0, null);
  log(`watchdog ${process.pid} starting the supervisor`);
  for (;;) {
    child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      stdio: 'inherit',
      env: { ...process.env, [ROLE_ENV]: 'supervisor', [RESTARTS_ENV]: String(restarts), [DEPLOYMENT_ENV]: token },
    });
    const pid = child.pid;
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((res) => {
      child!.once('exit', (c, s) => res([c, s]));
      child!.once('error', () => res([null, null]));
    });
    child = null;
    const now = inspectRunDir(dir);
    if (now.kind !== 'ours' || now.token !== token) return process.exit(0);
    if (code === 0 || stopping) {
      try {
        unlinkSync(join(dir, WATCHDOG_FILE));
      } catch {
        // Already gone.
      }
      return process.exit(0);
    }
    const how = signal ? `killed by ${signal}` : code === null ? 'could not be started' : `exited with status ${code}`;
    if (!restartAllowed(history, Date.now())) {
      const why = `the supervisor died ${RESTART_LIMIT.count + 1} times within ${RESTART_LIMIT.windowMs / 1000} s (last: pid ${pid ?? '?'} ${how}); not restarting it`;
      log(`watchdog: ${why}`);
      record(restarts, why);
      return process.exit(1);
    }
    history.push(Date.now());
    restarts++;
    log(`watchdog: the supervisor (pid ${pid ?? '?'}) ${how}; starting it again (restart ${restarts})`);
    record(restarts, null);
    await new Promise((r) => setTimeout(r, RESTART_DELAY_MS));
  }
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
  const log = supervisorLog(dir);
  if (process.env[ROLE_ENV] === 'watchdog') return runWatchdog(rd, log);
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

  const runtime: GuestRuntime = opts.runtime ?? new (await import('./qemu-runtime')).QemuRuntime();
  try {
    const leftovers = (await runtime.reapOrphans?.()) ?? [];
    if (leftovers.length) log(`removed what an earlier supervisor left behind: ${leftovers.join(', ')}`);
  } catch (e) {
    log(`could not look for what an earlier supervisor left behind: ${(e as Error).message}`);
  }
  const brokerFactory = opts.brokerFactory ?? (await defaultBrokerFactory(log, dir));
  // The audit trail and the ledger, beside the state file (records.ts); they sample the supervisor made below.
  let supRef: Supervisor | null = null;
  const recorder = openRecorder(
    process.env[STATE_FILE_ENV],
    { plan: () => supRef?.appliedPlan ?? null, clones: () => supRef?.processes() ?? [], channels: () => supRef?.channelStatus() ?? [] },
    log,
  );
  // The metrics endpoint (and prom-client) is loaded only once an apply asks for it: most deployments never do.
  let metrics: MetricsEndpoint | null = null;
  const metricsFor = async (address: string | null) => {
    const m = await import('./metrics');
    metrics ??= new m.MetricsEndpoint(() => supRef, () => recorder.ledger);
    return m.metricsAddressFor(metrics, dir, METRICS_FILE, address);
  };
  // The plan's limits on the host (cgroups.ts): each clone's QEMU in a cgroup under its system's.
  const cgroups = new Cgroups(detectCgroups(), cgroupName(rd.token), log);
  /** Clones the kernel killed for going over their memory limit, with the limit, for status. */
  const oomKilled = new Map<string, number | null>();
  const sup = new Supervisor({
    // A new link configuration (a peer destroyed and made again, with a new key) takes a new broker and links.
    wiringExtra: () => linkConfigDigest(join(dir, 'link.json')),
    onRecord: (r) => {
      if (r.event === 'fork') {
        oomKilled.delete(`${r.instance}#${r.clone}`);
        cgroups.place(r.instance, r.clone, r.pid);
      } else if (r.event === 'exit' && r.pid !== null) {
        if (cgroups.oomKilled(r.instance, r.clone)) {
          const limit = cgroups.memoryLimit(r.instance, r.clone);
          oomKilled.set(`${r.instance}#${r.clone}`, limit);
          log(`${r.instance}[${r.clone}] was killed by the kernel for going over its memory limit (${limit ?? '?'} bytes)`);
          recorder.record('oom_killed', { instance: r.instance, clone: r.clone, pid: r.pid, memory_limit_bytes: limit });
        }
        cgroups.release(r.instance, r.clone);
      } else if (r.event === 'stop' || r.event === 'moved') {
        // The process is gone shortly after; a cgroup is removed only once it is empty.
        setTimeout(() => cgroups.release(r.instance, r.clone), 2_000).unref();
      }
      // A moved clone's exit on the other host ends the move: the state no longer records it as moved.
      if (r.event === 'exit' && r.pid === null && process.env[STATE_FILE_ENV]) {
        void forgetMoved(process.env[STATE_FILE_ENV], r.instance, r.clone).catch((e: unknown) => log(`cannot update the state's moved clones: ${(e as Error).message}`));
      }
      recorder.onRecord(r);
      metrics?.onRecord(r);
    },
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
  supRef = sup;
  // Clones other hosts of the deployment moved here (`mclc migrate`), kept for them (kept.ts).
  const kept = new KeptClones({
    runtime,
    runDir: dir,
    plan: () => sup.appliedPlan,
    identity: (name) => readLinkIdentity(dir, name),
    log,
    record: (event, fields) => {
      // A kept clone's QEMU gets the limits its instance has at home (cgroups.ts), and gives its cgroups back when it
      // ends: `kept_exit` is recorded once for every kept QEMU, however it ended (a stop is followed by its exit).
      const instance = String(fields.instance);
      const clone = Number(fields.clone);
      if (event === 'kept' && typeof fields.pid === 'number') cgroups.place(instance, clone, fields.pid);
      else if (event === 'kept_exit') setTimeout(() => cgroups.release(instance, clone), 2_000).unref();
      recorder.record(event, fields);
    },
  });
  // Each clone's health from outside its guest (QMP, the agent's ping, the console), for `status`.
  const health = new HealthMonitor(sup, Date.now, (instance, clone) => {
    const key = `${instance}#${clone}`;
    if (!oomKilled.has(key)) return null;
    const limit = oomKilled.get(key);
    return `the kernel killed it for going over its memory limit${limit ? ` (${Math.round(limit / 1048576)} MiB with QEMU's overhead)` : ''}`;
  });
  health.start();

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
    health.stop();
    await kept.stopAll();
    await sup.shutdown();
    await cgroups.releaseAll();
    await metrics?.close();
    recorder.record('supervisor_stop', { pid: process.pid, why });
    recorder.close();
    try {
      unlinkSync(join(dir, PID_FILE));
    } catch {
      // Already gone.
    }
    finish();
  };
  const startedAt = Date.now();
  const restarts = Math.max(0, Math.min(Number(process.env[RESTARTS_ENV] ?? 0) || 0, 1_000_000));
  server = serveControl(
    sockPath,
    async (req: ControlRequest, emit) => {
      switch (req.op) {
        case 'ping':
          return { pid: process.pid, uptime_ms: Date.now() - startedAt };
        case 'apply': {
          const p = req.plan as Plan;
          const asked = { who: requestWho(req.who), plan_digest: p?.digests?.plan ?? null, system: p?.system ?? null, replace: req.replace };
          recorder.record('apply', asked);
          let r: Awaited<ReturnType<Supervisor['apply']>>;
          try {
            // The endpoint first: an address that cannot be used fails the apply before anything changes.
            if (req.metrics !== undefined) await metricsFor(req.metrics);
            cgroups.apply(p);
            if (!cgroups.enforced) {
              emit({ type: 'warning', message: `memory and vCPU limits are not enforced on this host: ${cgroups.support.missing.join('; ')}`, data: { cgroups: 'none' } });
            }
            r = await sup.apply(p, { replace: req.replace, readyTimeoutMs: req.readyTimeoutMs }, emit);
          } catch (e) {
            recorder.record('apply_failed', { ...asked, error: String((e as Error)?.message ?? e).slice(0, 1000) });
            throw e;
          }
          recorder.record('apply_done', { ...asked, created: r.create, replaced: r.replace, deleted: r.delete, kept: r.keep });
          // Kept only once applied: a restarted supervisor brings back what ran, not what failed.
          writeAppliedPlan(rd, { plan: req.plan as Plan, ready_timeout_ms: req.readyTimeoutMs });
          return r;
        }
        case 'destroy': {
          // Removed first: a supervisor that dies while destroying must not be brought back with it.
          rmSync(join(dir, APPLIED_PLAN_FILE), { force: true });
          recorder.record('destroy', { who: requestWho(req.who), plan_digest: sup.planDigest });
          const ids = await sup.destroy(emit);
          await kept.stopAll();
          recorder.record('destroy_done', { stopped: ids });
          // Exit once the answer is on its way.
          setTimeout(() => void stop('destroyed'), 50);
          return ids;
        }
        case 'status':
          return {
            pid: process.pid,
            uptime_ms: Date.now() - startedAt,
            restarts,
            plan_digest: sup.planDigest,
            system: sup.planSystem,
            accelerator: sup.accelerator(),
            instances: health.annotate(sup.instanceStatus()),
            channels: sup.channelStatus(),
            exposures: sup.exposureStatus(),
            links: sup.linkStatus(),
            egresses: sup.egressStatus(),
            unwired_violations: sup.unwiredViolations(),
            helpers: await sup.helperStatus(),
            kept: kept.status(),
            metrics_url: metrics?.url ?? null,
          };
        case 'logs': {
          const files = sup.logFiles(req.instance);
          if (!files) throw new BackendFailure('usage', `instance ${req.instance} is not running`, 'see `mclc status` for the instances');
          return files;
        }
        case 'checkpoint':
          return sup.checkpoint({ dir: req.dir, instances: req.instances }, emit);
        case 'restore': {
          const { plan, ...r } = await sup.restore({ dir: req.dir, readyTimeoutMs: req.readyTimeoutMs }, emit);
          // As after an apply: a restarted supervisor brings this plan back (forked afresh).
          writeAppliedPlan(rd, { plan, ready_timeout_ms: req.readyTimeoutMs });
          return { ...r, plan };
        }
        case 'keep':
          return sup.exclusive(() => kept.keep(req, emit));
        case 'migrate': {
          const self = readLinkIdentity(dir);
          if (typeof self === 'string') throw new BackendFailure('failure', `this host has no link identity to move a clone with: ${self}`, 'run `mclc migrate` again: it makes the identity first');
          const asked = { who: requestWho(req.who), instance: req.instance, clone: req.clone, from: self.name, to: req.to.target, mode: req.mode };
          const plan = sup.appliedPlan;
          const inst = plan?.instances.find((i) => i.id === req.instance);
          try {
            const r = await sup.migrate({ instance: req.instance, clone: req.clone, to: req.to.target }, (handle, broker, moveDir) =>
              moveOut({
                instance: req.instance,
                clone: req.clone,
                handle,
                dir: moveDir,
                self,
                req,
                broker,
                templateBuild: plan && inst ? (runtime.templateBuild?.(plan, inst.template) ?? null) : null,
                emit,
              }),
            );
            recorder.record('migrate', { ...asked, outcome: 'moved', downtime_ms: r.downtime_ms, hold_ms: r.hold_ms, bytes_sent: r.bytes_sent, total_ms: r.total_ms, attempts: r.attempts });
            return { ...r, at: new Date().toISOString() };
          } catch (e) {
            recorder.record('migrate', { ...asked, outcome: 'failed', error: String((e as Error)?.message ?? e).slice(0, 1000) });
            throw e;
          }
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
  recorder.record('supervisor_start', { pid: process.pid, restarts, ...(reaped.length ? { reaped } : {}) });
  // A supervisor started again serves its metrics where its predecessor did.
  if (restarts > 0 && existsSync(join(dir, METRICS_FILE))) await metricsFor(null).catch((e: unknown) => log(`metrics: ${(e as Error).message}`));
  if (restarts > 0) reapplyLast(rd, sup, log, recorder.record);
  await finished;
  clearInterval(watch);
  if (opts.exitProcess !== false) setTimeout(() => process.exit(0), 100).unref();
}

/**
 * A supervisor restarted by the watchdog applies the plan its predecessor
 * applied last, at once: the QEMU processes died with the predecessor (or
 * were reaped above), so every instance is forked again. Applies are
 * serialised, so an `apply` arriving meanwhile waits for this one.
 */
function reapplyLast(rd: RunDir, sup: Supervisor, log: (s: string) => void, record: (event: string, fields?: Record<string, unknown>) => void): void {
  const last = readAppliedPlan(rd.dir);
  if (!last) return log('restarted with no applied plan: nothing to bring back');
  if ('error' in last) return log(`restarted, but the last applied plan is not used: ${last.error}`);
  log(`restarted: applying the last applied plan ${last.plan.digests.plan.slice(0, 12)} again`);
  record('apply', { who: { via: 'watchdog', pid: process.pid }, plan_digest: last.plan.digests.plan, system: last.plan.system, replace: [] });
  sup
    .apply(last.plan, { replace: [], readyTimeoutMs: last.ready_timeout_ms }, (e) => {
      if (e.type === 'instance' || e.type === 'warning') log(`re-apply: ${e.type} ${e.instance ? `${e.instance} ` : ''}${e.message}`);
    })
    .then(
      (r) => log(`re-apply done: ${r.create.length} instance(s) forked again`),
      (e: unknown) => log(`re-apply failed: ${(e as Error).message}`),
    );
}

async function defaultBrokerFactory(log: (s: string) => void, runDir: string): Promise<BrokerFactory> {
  const { Broker } = await import('@mcl/broker');
  return (plan, hooks) => {
    // A host's part of a plan over several hosts: the broker also knows the instances at the far
    // ends of the channels that cross to other hosts (`remote_instances`), which never run here.
    const b = new Broker(brokerPlan(plan), {
      log: (e) => {
        if (e.level !== 'debug') log(`broker ${e.level}: ${e.message}`);
      },
      onSessionOpen: hooks.onSessionOpen,
      onSessionClose: hooks.onSessionClose,
      ...(hooks.onCreate ? { onCreate: hooks.onCreate } : {}),
      ...(hooks.onDestroy ? { onDestroy: hooks.onDestroy } : {}),
    });
    b.on('violation', hooks.onViolation);
    // A plan over several hosts: the channels that cross to another host go over the links the
    // deployment's link.json describes (spec/hosts.md). The links close with the broker.
    void startLinks(b, plan, runDir, log);
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
  // The watchdog first, or it would start the supervisor again.
  const w = watchdogAlive(rd);
  if (w && killIfOurs(w.pid, w.start_time, rd.token)) killed.push(w.pid);
  const sup = supervisorAlive(rd);
  if (sup && killIfOurs(sup.pid, sup.start_time, rd.token)) killed.push(sup.pid);
  killed.push(...reapOrphans(rd, killed));
  return killed;
}
