// The lifecycle commands as the CLI calls them (plan/src/backend.ts): apply,
// destroy, status, logs, doctor. They run in the `mclc` process, hold the
// state lock while they change the deployment, and talk to the deployment's
// supervisor over its control socket.

import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, rmSync, statSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { STATE_FORMAT_VERSION, type BackendName, type DeploymentState, type JsonValue, type Plan } from '@mcl/plan';
import { acquireLock, describeHolder, emptyState, readState, StateError, writeState, type StateLock } from '@mcl/plan/state-store';
import { callControl } from './control';
import { BackendFailure } from './errors';
import { staleReason } from '@mcl/plan';
import type {
  ApplyOptions,
  ApplyResult,
  BackendOptions,
  DestroyResult,
  EventSink,
  InstanceStatus,
  LogSink,
  LogsOptions,
  StatusReport,
} from './events';
import { killRecorded, LOG_FILE, readWatchdog, ROLE_ENV, SOCKET, supervisorAlive, WATCHDOG_ENV, watchdogAlive } from './daemon';
import { belongsToDeployment, DEPLOYMENT_ENV, ensureRunDir, findRunDir, killIfOurs, removeRunDir, RunDirError, type RunDir } from './rundir';
import { cloneDirBase, cloneIndexOfDir, type ApplySummary, type ProcessRecord } from './supervisor';
import { STATE_FILE_ENV, whoAmI } from './records';
import { appendAudit } from './audit';
import { Cgroups, cgroupName, detectCgroups } from './cgroups';

/**
 * What the KVM backend keeps in the state's backend_data. It is written for
 * people reading the state and never read back for paths or pids: the run
 * directory follows from the state file's location, and processes are
 * recognised by the deployment's token (rundir.ts). Only the accelerator is
 * read, for `status` without a supervisor.
 */
export interface KvmBackendData {
  run_dir: string;
  supervisor: { pid: number; start_time: number | null } | null;
  processes: ProcessRecord[];
  accelerator: { name: string; note?: string } | null;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Which backend runs these commands: its name (recorded in the state, checked
 * against it) and what it must remove beyond processes when the supervisor
 * cannot (Xen domains, found by the deployment's token). The KVM backend is
 * the default; the Xen backend passes its own (backends/xen/src/index.ts).
 */
export interface LifecycleBackend {
  name: BackendName;
  /** Called by destroy after the supervisor stopped or was killed; returns what it removed. */
  reap?(rd: RunDir): Promise<string[]>;
  /**
   * How long apply waits for a supervisor it started to answer, in ms
   * (default SUPERVISOR_START_MS). A backend whose supervisor runs where
   * starting a process is slow (Xen's dom0, itself a guest) says so here.
   */
  supervisorStartMs?: number;
  /**
   * How long `status` waits for the running supervisor to answer its ping, in
   * ms (default PING_TIMEOUT_MS). A supervisor in Xen's dom0 on a slow host
   * can take longer; one that does not answer in time is reported as such.
   */
  pingTimeoutMs?: number;
}

/** The KVM backend's bound on a supervisor's start: a watchdog node process starting a supervisor node process. */
export const SUPERVISOR_START_MS = 15_000;

const KVM: LifecycleBackend = { name: 'kvm' };

export async function lock(opts: BackendOptions, operation: string, onEvent: EventSink): Promise<StateLock> {
  try {
    return await acquireLock(opts.stateFile, {
      operation,
      timeoutMs: opts.lockTimeoutMs,
      onWait: (h) => onEvent({ type: 'phase', phase: 'lock', action: 'wait', message: `waiting for the state lock held by ${describeHolder(h)}` }),
    });
  } catch (e) {
    throw toBackendError(e);
  }
}

function toBackendError(e: unknown): unknown {
  if (e instanceof StateError) return new BackendFailure(e.code === 'locked' ? 'locked' : 'failure', e.message, e.hint);
  return e;
}

export function loadState(stateFile: string): DeploymentState | null {
  try {
    return readState(stateFile);
  } catch (e) {
    throw toBackendError(e);
  }
}

/** The accelerator recorded in the state, when it has the right shape (the only part of backend_data read back). */
function recordedAccelerator(state: DeploymentState | null): { name: string; note?: string } | undefined {
  const a = (state?.backend_data as { accelerator?: unknown } | undefined)?.accelerator as { name?: unknown; note?: unknown } | null | undefined;
  if (!a || typeof a !== 'object' || typeof a.name !== 'string') return undefined;
  return { name: a.name, ...(typeof a.note === 'string' ? { note: a.note } : {}) };
}

/**
 * Pings the deployment's supervisor: true when one answers on the socket of
 * its own run directory and the pid it gives carries the deployment's token.
 */
/** How long a supervisor has to answer a ping before it counts as not answering. */
const PING_TIMEOUT_MS = 5_000;

export async function ping(rd: RunDir, timeoutMs = PING_TIMEOUT_MS): Promise<boolean> {
  if (!existsSync(join(rd.dir, SOCKET))) return false;
  try {
    // A supervisor that is alive but frozen (stopped, or stuck) accepts the connection and never answers: without a
    // time limit every command would hang on it, destroy included, which can still kill it by its token.
    const r = await callControl<{ pid?: unknown }>(join(rd.dir, SOCKET), { op: 'ping' }, undefined, AbortSignal.timeout(timeoutMs));
    return typeof r?.pid === 'number' && belongsToDeployment(r.pid, null, rd.token);
  } catch {
    return false;
  }
}

/** The run directory a command that changes nothing may use, or null when this state has none of its own. */
function ownRunDir(stateFile: string): RunDir | null {
  const found = findRunDir(stateFile);
  return found.kind === 'ours' ? found : null;
}

const RUN_DIR_HINT =
  'the runtime directory must be a directory of yours, mode 0700, created by mclc for this state; remove what is named if no deployment of yours runs from it (a copied workspace gets its own runtime directory), or set XDG_RUNTIME_DIR to a private directory';

/** The run directory of a state file, created when missing; a place taken by something else is a failure naming it. */
export function runDirForApply(stateFile: string): RunDir {
  try {
    return ensureRunDir(stateFile);
  } catch (e) {
    if (e instanceof RunDirError) throw new BackendFailure('failure', e.message, RUN_DIR_HINT);
    throw e;
  }
}

/** Returns once a supervisor answers on the deployment's socket, starting one when none runs. */
export async function ensureSupervisor(rd: RunDir, command: string[], onEvent: EventSink, timeoutMs = SUPERVISOR_START_MS, stateFile?: string): Promise<void> {
  if (await ping(rd)) return;
  const deadline = Date.now() + timeoutMs;
  // A live watchdog is starting the supervisor again (or about to): a second one must not be started beside it.
  if (!supervisorAlive(rd) && !watchdogAlive(rd)) {
    onEvent({ type: 'phase', phase: 'supervisor', action: 'start', message: 'starting the supervisor' });
    const out = openSync(join(rd.dir, LOG_FILE), 'a', 0o600);
    // The token in its environment is inherited by everything it starts, which is how a later
    // command recognises the deployment's processes before it signals any of them.
    const child = spawn(command[0], [...command.slice(1), '__supervise', rd.dir], {
      detached: true,
      stdio: ['ignore', out, out],
      // By default it starts as the watchdog, which runs the supervisor and starts it again when it dies
      // (daemon.ts); MCL_SUPERVISOR_WATCHDOG=0 starts the supervisor alone.
      // The state file's place tells it where the audit trail and the ledger go (records.ts).
      env: {
        ...process.env,
        [DEPLOYMENT_ENV]: rd.token,
        [ROLE_ENV]: process.env[WATCHDOG_ENV] === '0' ? 'supervisor' : 'watchdog',
        ...(stateFile ? { [STATE_FILE_ENV]: stateFile } : {}),
      },
    });
    closeSync(out);
    child.unref();
  }
  while (Date.now() < deadline) {
    await sleep(100);
    if (await ping(rd)) {
      onEvent({ type: 'phase', phase: 'supervisor', action: 'done', message: 'supervisor running' });
      return;
    }
  }
  throw new BackendFailure('failure', `the supervisor did not answer on ${join(rd.dir, SOCKET)} within ${timeoutMs} ms`, `see ${join(rd.dir, LOG_FILE)}`);
}

/**
 * After a failed apply: a supervisor that runs no instance (a first apply
 * that failed, or one that removed everything) has nothing to supervise and
 * is stopped, so no idle process is left behind. Its log stays in the run
 * directory for the failure's hint.
 */
export async function stopIfIdle(rd: RunDir): Promise<void> {
  try {
    const live = await callControl<SupervisorStatus>(join(rd.dir, SOCKET), { op: 'status' });
    if (live.instances.length > 0) return;
    await callControl(join(rd.dir, SOCKET), { op: 'destroy', who: { ...whoAmI(), via: 'mclc apply (failed first apply)' } });
    // The watchdog too: while it is still exiting, the next apply would take it for one about to start a supervisor,
    // start none, and wait for a supervisor that never comes.
    for (let i = 0; i < 50 && (supervisorAlive(rd) || watchdogAlive(rd)); i++) await sleep(100);
  } catch {
    // The supervisor is gone already or does not answer; the next apply deals with it.
  }
}

export async function apply(plan: Plan, opts: ApplyOptions, onEvent: EventSink, backend: LifecycleBackend = KVM): Promise<ApplyResult> {
  const started = Date.now();
  onEvent({ type: 'phase', phase: 'lock', action: 'start', message: 'taking the state lock' });
  const l = await lock(opts, 'apply', onEvent);
  try {
    const prior = loadState(opts.stateFile);
    const stale = staleReason(plan, prior);
    if (stale) throw new BackendFailure('stale', stale.message, stale.hint);
    if (prior && prior.backend !== backend.name) {
      throw new BackendFailure('stale', `the state belongs to the ${prior.backend} backend`, 'destroy that deployment first or use another --state');
    }
    if (opts.signal.aborted) throw new BackendFailure('failure', 'interrupted before anything changed');
    const rd = runDirForApply(opts.stateFile);
    const dir = rd.dir;
    await ensureSupervisor(rd, opts.supervisorCommand, onEvent, backend.supervisorStartMs, opts.stateFile);
    let r: ApplySummary;
    try {
      r = await callControl<ApplySummary>(
        join(dir, SOCKET),
        { op: 'apply', plan, replace: opts.replace, readyTimeoutMs: opts.readyTimeoutMs, who: whoAmI(), ...(opts.metrics !== undefined ? { metrics: opts.metrics } : {}) },
        onEvent,
        opts.signal,
      );
    } catch (e) {
      // Interrupted, the supervisor finishes the apply; refused or failed, an idle supervisor is stopped.
      if (!opts.signal.aborted && e instanceof BackendFailure) await stopIfIdle(rd);
      throw e;
    }
    const changed = prior?.plan_digest !== plan.digests.plan || r.create.length + r.replace.length + r.delete.length > 0;
    const state = writeDeployedState(opts.stateFile, prior, plan, rd, { processes: r.processes, accelerator: r.accelerator, moved: r.moved }, changed, onEvent, backend.name);
    return {
      state,
      created: r.create,
      replaced: r.replace,
      deleted: r.delete,
      unchanged: r.keep,
      exposures: r.exposures,
      accelerator: r.accelerator,
      elapsed_ms: Date.now() - started,
    };
  } finally {
    l.release();
  }
}

/** Writes the state of a deployment that runs `plan` (after an apply or a restore); `changed` moves the serial on. */
export function writeDeployedState(
  stateFile: string,
  prior: DeploymentState | null,
  plan: Plan,
  rd: RunDir,
  live: { processes: ProcessRecord[]; accelerator: { name: string; note?: string } | null; moved?: DeploymentState['moved'] },
  changed: boolean,
  onEvent: EventSink,
  backendName: BackendName = 'kvm',
): DeploymentState {
  onEvent({ type: 'phase', phase: 'state', action: 'start', message: 'writing the state' });
  const base = prior ?? emptyState(backendName);
  const sup = supervisorAlive(rd);
  const data: KvmBackendData = {
    run_dir: rd.dir,
    supervisor: sup ? { pid: sup.pid, start_time: sup.start_time } : null,
    processes: live.processes,
    accelerator: live.accelerator,
  };
  const state: DeploymentState = {
    format_version: STATE_FORMAT_VERSION,
    lineage: base.lineage,
    serial: changed || !prior ? base.serial + 1 : base.serial,
    backend: backendName,
    plan_digest: plan.digests.plan,
    system: plan.system,
    instances: plan.instances,
    channels: plan.channels,
    exposures: plan.exposures,
    // The clones that still run on another host after this apply (kept instances keep their moved clones).
    ...(live.moved?.length ? { moved: live.moved } : {}),
    backend_data: data as unknown as JsonValue,
  };
  writeState(stateFile, state);
  onEvent({ type: 'phase', phase: 'state', action: 'done', message: `state serial ${state.serial}` });
  return state;
}

export async function destroy(opts: BackendOptions, onEvent: EventSink, backend: LifecycleBackend = KVM): Promise<DestroyResult> {
  const started = Date.now();
  const l = await lock(opts, 'destroy', onEvent);
  try {
    const prior = loadState(opts.stateFile);
    const found = findRunDir(opts.stateFile);
    let destroyed: string[] = [];
    if (found.kind === 'ours') {
      // The watchdog as it is now: it removes its record as it exits, so the record alone cannot say when it is gone.
      const wd = watchdogAlive(found);
      const watchdogRuns = () => watchdogAlive(found) !== null || (wd !== null && belongsToDeployment(wd.pid, wd.start_time, found.token));
      if (await ping(found)) {
        destroyed = await callControl<string[]>(join(found.dir, SOCKET), { op: 'destroy', who: whoAmI() }, onEvent, opts.signal);
        // The supervisor exits right after answering; wait so its files can go.
        for (let i = 0; i < 50 && supervisorAlive(found); i++) await sleep(100);
      } else {
        const killed = killRecorded(found);
        // No supervisor answers to write the trail, so this command does.
        appendAudit(opts.stateFile, 'destroy', { who: { ...whoAmI(), checked: true }, note: `the supervisor did not answer; ${killed.length} process(es) killed directly`, killed });
        if (killed.length) onEvent({ type: 'warning', message: `the supervisor did not answer; killed ${killed.length} process(es) directly` });
        destroyed = [...new Set((prior?.instances ?? []).map((i) => i.id))].sort();
      }
      // The watchdog exits when the supervisor stopped on purpose; one that has not is killed, never left behind.
      for (let i = 0; i < 20 && watchdogRuns(); i++) await sleep(100);
      if (supervisorAlive(found) || watchdogRuns()) {
        killRecorded(found);
        if (wd && belongsToDeployment(wd.pid, wd.start_time, found.token)) killIfOurs(wd.pid, wd.start_time, found.token);
        // SIGKILL is delivered asynchronously: wait until they are gone, so that destroy returns with nothing of the
        // deployment left running.
        for (let i = 0; i < 50 && (supervisorAlive(found) || watchdogRuns()); i++) await sleep(100);
      }
      // A supervisor that was killed could not remove its cgroups: they go with the deployment, once empty.
      await new Cgroups(detectCgroups(), cgroupName(found.token), () => undefined).releaseAll();
      const reaped = (await backend.reap?.(found)) ?? [];
      if (reaped.length) onEvent({ type: 'warning', message: `removed ${reaped.length} leftover(s) of the deployment: ${reaped.join(', ')}` });
      removeRunDir(found);
    } else if (prior && prior.instances.length > 0) {
      // Nothing of this state's own runs: the state may be a copy of another workspace's, whose
      // guests are that workspace's to stop.
      const where = found.kind === 'foreign' ? `${found.why}; it was left as it is` : 'no runtime directory of this state exists';
      onEvent({ type: 'warning', message: `the state records ${prior.instances.length} instance(s), but nothing of this state runs: ${where}` });
    }
    if (!prior) return { destroyed, state: null, elapsed_ms: Date.now() - started };
    const state: DeploymentState = {
      ...emptyState(backend.name, prior.lineage),
      serial: prior.serial + 1,
    };
    writeState(opts.stateFile, state);
    for (const id of destroyed) onEvent({ type: 'instance', instance: id, action: 'removed', message: 'destroyed' });
    return { destroyed, state, elapsed_ms: Date.now() - started };
  } finally {
    l.release();
  }
}

interface SupervisorStatus {
  pid: number;
  uptime_ms: number;
  /** How many times the watchdog restarted it; absent from a supervisor of an earlier version. */
  restarts?: number;
  plan_digest: string | null;
  /** Absent from a supervisor of an earlier version. */
  system?: string | null;
  accelerator?: { name: string; note?: string };
  instances: InstanceStatus[];
  channels: StatusReport['channels'];
  exposures: StatusReport['exposures'];
  /** Absent from a supervisor of an earlier version. */
  links?: StatusReport['links'];
  egresses?: StatusReport['egresses'];
  unwired_violations: StatusReport['unwired_violations'];
  /** Absent from a supervisor of an earlier version. */
  helpers?: StatusReport['helpers'];
  /** The metrics endpoint's URL, when it serves one. */
  metrics_url?: string | null;
  /** Clones other hosts moved here; absent from a supervisor of an earlier version. */
  kept?: StatusReport['kept'];
}

export async function status(opts: BackendOptions, backend: LifecycleBackend = KVM): Promise<StatusReport> {
  const st = loadState(opts.stateFile);
  const found = findRunDir(opts.stateFile);
  const rd = found.kind === 'ours' ? found : null;
  let live: SupervisorStatus | null = null;
  const pingMs = backend.pingTimeoutMs ?? PING_TIMEOUT_MS;
  const answered = rd ? await ping(rd, pingMs) : false;
  if (rd && answered) {
    try {
      live = await callControl<SupervisorStatus>(join(rd.dir, SOCKET), { op: 'status' });
    } catch {
      live = null;
    }
  }
  const warnings = unrecordedWarnings(st, live);
  // A supervisor that runs but did not answer in time (a loaded host): without this the report would read as if
  // nothing ran, with no clone listed.
  const silent = rd && !answered ? supervisorAlive(rd) : null;
  if (silent && rd) {
    warnings.push({
      message: `the supervisor (pid ${silent.pid}) runs but did not answer within ${pingMs} ms: its instances and channels are not shown`,
      hint: `run \`mclc status\` again; see ${join(rd.dir, LOG_FILE)}`,
    });
  }
  const gaveUp = rd && !live ? readWatchdog(rd.dir)?.gave_up : null;
  if (gaveUp && rd) warnings.push({ message: gaveUp, hint: `see ${join(rd.dir, LOG_FILE)}; run \`mclc apply\` again to start it` });
  if (found.kind === 'foreign' && st && st.instances.length > 0) {
    warnings.push({
      message: `the state records ${st.instances.length} instance(s), but nothing of this state runs: ${found.why}`,
      hint: 'a copied or unpacked workspace does not control the deployment it was copied from; remove what is named and apply to deploy from here',
    });
  }
  const instances: InstanceStatus[] =
    live?.instances ??
    (st?.instances ?? []).map((i) => ({ id: i.id, component: i.component, mode: i.mode, health: 'stopped' as const, ...(i.label ? { label: i.label } : {}), clones: [] }));
  const totals = { clones: 0, rss_bytes: 0, pss_bytes: 0, private_bytes: 0 };
  for (const i of instances) {
    for (const c of i.clones) {
      if (c.pid === undefined) continue;
      totals.clones++;
      totals.rss_bytes += c.rss_bytes ?? 0;
      totals.pss_bytes += c.pss_bytes ?? 0;
      totals.private_bytes += c.private_bytes ?? 0;
    }
  }
  const accelerator = live?.accelerator ?? recordedAccelerator(st);
  return {
    deployed: (!!st && st.instances.length > 0) || (live?.instances.length ?? 0) > 0,
    system: st?.system ?? live?.system ?? null,
    lineage: st?.lineage ?? null,
    serial: st?.serial ?? null,
    plan_digest: st?.plan_digest ?? null,
    supervisor: live ? { running: true, pid: live.pid, uptime_ms: live.uptime_ms, ...(live.restarts ? { restarts: live.restarts } : {}) } : { running: false },
    ...(accelerator ? { accelerator } : {}),
    instances,
    channels: live?.channels ?? [],
    exposures: live?.exposures ?? (st?.exposures ?? []).map((e) => ({ host_port: e.host_port, instance: e.instance, port: e.port, listening: false, connections_total: 0, connections_open: 0 })),
    ...(live?.links?.length ? { links: live.links } : {}),
    ...(live?.egresses?.length ? { egresses: live.egresses } : {}),
    unwired_violations: live?.unwired_violations ?? [],
    ...(typeof live?.metrics_url === 'string' ? { metrics: { url: live.metrics_url } } : {}),
    totals,
    ...(live?.helpers?.length ? { helpers: live.helpers } : {}),
    ...(live?.kept?.length ? { kept: live.kept } : {}),
    ...(warnings.length ? { warnings } : {}),
  };
}

/**
 * What `status` must point out when the live supervisor runs another
 * deployment than the state records: an apply was interrupted after the
 * supervisor converged (the state is written last), or the state file was
 * removed. Applying the same plan again only converges and records it.
 */
function unrecordedWarnings(st: DeploymentState | null, live: SupervisorStatus | null): { message: string; hint?: string }[] {
  if (!live || live.plan_digest === null || live.plan_digest === (st?.plan_digest ?? null)) return [];
  const what = `${live.system ?? 'a system'} (plan ${live.plan_digest.slice(0, 12)}, ${live.instances.length} instance(s))`;
  const message = st?.plan_digest
    ? `the supervisor runs ${what}, but the state records plan ${st.plan_digest.slice(0, 12)}: an apply was interrupted after the supervisor converged`
    : st
      ? `the supervisor runs ${what}, which the state does not record: an apply was interrupted after the supervisor converged`
      : `the supervisor runs ${what}, but there is no state file: an apply was interrupted, or the state was removed`;
  return [{ message, hint: 'run `mclc apply` again with the same plan to record it in the state (nothing is restarted), or `mclc destroy` to stop it' }];
}

export async function logs(instanceId: string, opts: LogsOptions, onLine: LogSink): Promise<void> {
  const st = loadState(opts.stateFile);
  if (!st || !st.instances.some((i) => i.id === instanceId)) {
    throw new BackendFailure('usage', `no instance ${instanceId} in the deployment`, `instances: ${(st?.instances ?? []).map((i) => i.id).join(', ') || 'none (nothing is deployed)'}`);
  }
  const rd = ownRunDir(opts.stateFile);
  const clonesDir = rd ? join(rd.dir, 'clones') : null;
  const clones = (): { clone: number; dir: string }[] => {
    if (!clonesDir || !existsSync(clonesDir)) return [];
    return readdirSync(clonesDir)
      .map((d) => ({ clone: cloneIndexOfDir(instanceId, d), dir: join(clonesDir, d) }))
      .filter((f): f is { clone: number; dir: string } => f.clone !== null)
      .filter((f) => opts.clone === undefined || f.clone === opts.clone)
      .sort((a, b) => a.clone - b.clone);
  };
  // Every file is read in bounded chunks and never whole: a guest decides what its console holds. With
  // --tail only the last lines are kept while reading.
  const emit = (clone: number, text: string) => onLine({ instance: instanceId, clone, stream: 'console', text: text.replace(/\r$/, '') });
  const followed = new Map<number, { ino: number; offset: number; partial: string }>();
  for (const c of clones()) {
    const kept: string[] = [];
    const push = (text: string) => {
      if (opts.tail === undefined) return emit(c.clone, text);
      if (opts.tail === 0) return;
      kept.push(text);
      if (kept.length > opts.tail) kept.shift();
    };
    // The rotated files (older output, and earlier runs of a restarted clone) first, oldest first.
    const rotated = readdirSync(c.dir)
      .map((f) => /^console\.log\.(\d+)$/.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => b - a);
    for (const n of rotated) readLogLines(join(c.dir, `console.log.${n}`), 0, '', push, true);
    const cur = readLogLines(join(c.dir, 'console.log'), 0, '', push, !opts.follow);
    for (const text of kept) emit(c.clone, text);
    if (cur) followed.set(c.clone, cur);
  }
  if (!opts.follow) return;
  while (!opts.signal.aborted) {
    await sleep(250);
    for (const c of clones()) {
      const path = join(c.dir, 'console.log');
      const at = followed.get(c.clone);
      const out = (text: string) => emit(c.clone, text);
      let ino: number;
      try {
        ino = statSync(path).ino;
      } catch {
        continue;
      }
      if (at && at.ino !== ino) {
        // Rotated (or the clone restarted): the rest of the old file is now console.log.1.
        const old = join(c.dir, 'console.log.1');
        try {
          if (statSync(old).ino === at.ino) readLogLines(old, at.offset, at.partial, out, true);
        } catch {
          // Already rotated further or removed: that part is gone.
        }
      }
      const from = at && at.ino === ino ? at : { offset: 0, partial: '' };
      const next = readLogLines(path, from.offset, from.partial, out, false);
      if (next) followed.set(c.clone, next);
    }
  }
}

/**
 * Reads the lines of a log file from `offset` in chunks of 64 KiB, passing
 * each complete line to `onLine` (a line longer than a chunk is passed in
 * pieces). `partial` is the unfinished line carried from an earlier read.
 * Returns where to continue (the inode, the offset and the unfinished line),
 * or null when the file cannot be read; with `flush` the unfinished line is
 * passed on too.
 */
function readLogLines(path: string, offset: number, partial: string, onLine: (text: string) => void, flush: boolean): { ino: number; offset: number; partial: string } | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const ino = fstatSync(fd).ino;
    const buf = Buffer.alloc(65_536);
    // A character split between two chunks is decoded whole.
    const text = new StringDecoder('utf8');
    let off = offset;
    let rest = partial;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, off);
      if (n <= 0) break;
      off += n;
      const lines = (rest + text.write(buf.subarray(0, n))).split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) onLine(l);
      if (rest.length >= buf.length) {
        onLine(rest);
        rest = '';
      }
    }
    if (flush && rest) {
      onLine(rest);
      rest = '';
    }
    return { ino, offset: off, partial: rest };
  } finally {
    closeSync(fd);
  }
}
