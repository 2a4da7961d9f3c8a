// The supervisor's logic: it owns the clones of one deployment and the broker
// that wires them, converges them to a plan, restarts crashed guests by their
// restart policy, and forks per-session clones on the broker's request.
//
// It runs in a long-lived process of its own (`runSupervisor`), so guests keep
// running after `mclc apply` returns. Everything here talks to QEMU and the
// broker only through `GuestRuntime` and `BrokerLike`, which tests fake.
//
// Reconciling is idempotent: `apply` compares the plan with what runs in this
// process (not with the state file), so a second apply after an interrupted
// one simply finishes the work. Applies are serialised.

import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { paramEnv, paramEnvName, type Plan, type PlanInstance } from '@mcl/plan';
import type { Violation } from '@mcl/broker';
import type { LinkStatus } from '@mcl/plan/backend';
import { diffInstances, startLayers, stopLayers, type InstanceDiff } from './diff';
import { BackendFailure } from './errors';
import type { BackendEvent, ChannelStatus, CheckpointResult, CloneState, EventSink, EgressStatus, ExposureStatus, HelperStatus, InstanceStatus, ViolationRecord } from './events';
import { DEFAULT_EXPOSURE_HOST as EXPOSURE_HOST, tryBind } from '@mcl/broker/ports';
import { processCpuMs, processMemory } from './procfs';
import { consoleLogLimits, rotateLogFiles } from '../vm/console-log';
import type { BrokerFactory, BrokerLike, CloneHandle, ExitInfo, GuestRuntime } from './guest-runtime';
import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_FORMAT_VERSION,
  takeCut,
  verifyCheckpoint,
  writeCheckpointFile,
  writeManifest,
  type CheckpointManifest,
  type RestoreSummary,
} from './checkpoint';

export interface SupervisorOptions {
  runtime: GuestRuntime;
  brokerFactory: BrokerFactory;
  /** Runtime directory of the deployment; each clone gets `<runDir>/clones/<instance>.<index>/`. */
  runDir: string;
  /** Called after every change of the set of running processes (the caller persists it). */
  onProcessesChanged?: (procs: ProcessRecord[]) => void;
  /** First restart delay in ms; doubles per consecutive restart up to `maxBackoffMs`. Default 250. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** A clone that ran this long resets its backoff. Default 30 000. */
  stableAfterMs?: number;
  /** Diagnostics of the supervisor itself. */
  log?: (line: string) => void;
  /**
   * Tries to bind an exposure's host TCP port for a moment; resolves with the
   * error code (`EADDRINUSE`, ...) or null when the port is free. Default:
   * `tryBind` on the broker's exposure host.
   */
  probePort?: (port: number) => Promise<string | null>;
  /**
   * Told of every clone's fork, exit, restart and stop and of every broker
   * denial, as they happen: the audit trail and the accounting ledger are
   * written from these (daemon.ts). Must not throw.
   */
  onRecord?: (r: SupervisorRecord) => void;
  /**
   * What the broker is built from besides the plan (the digest of the links' configuration,
   * links.ts): when it changed, an apply makes a new broker even for the same plan.
   */
  wiringExtra?: () => string;
}

/** What the supervisor did to a clone, or a frame the broker denied (for the audit trail and the ledger). */
export type SupervisorRecord =
  | { event: 'fork'; instance: string; clone: number; pid: number; paused: boolean; elapsed_ms: number; restart?: number; notes?: string[] }
  | { event: 'fork_failed'; instance: string; clone: number; error: string }
  | { event: 'exit'; instance: string; clone: number; pid: number | null; exit: string; ran_ms: number }
  /** The clone moved to another host (`mclc migrate`): `pid`, its QEMU here, is gone; it runs on `to`. */
  | { event: 'moved'; instance: string; clone: number; pid: number; to: string }
  | { event: 'restart'; instance: string; clone: number; restarts: number; counted: boolean; after: string }
  | { event: 'not_restarted'; instance: string; clone: number; why: string }
  | { event: 'stop'; instance: string; clone: number; pid: number | null }
  | { event: 'denial'; channel: string | null; kind: string; detail: string; instance?: string; clone?: number };

/** One QEMU process, as recorded in the runtime file and the state's backend_data. */
export interface ProcessRecord {
  instance: string;
  clone: number;
  pid: number;
  start_time: number | null;
  dir: string;
}

export interface ApplyRequest {
  replace: string[];
  readyTimeoutMs: number;
}

export interface ApplySummary extends InstanceDiff {
  accelerator: { name: string; note?: string };
  exposures: { host_port: number; instance: string; port: string }[];
  processes: ProcessRecord[];
  /** Clones that run on other hosts (moved there by `mclc migrate`), for the state's `moved`. */
  moved?: { instance: string; clone: number; to: string; at: string }[];
}

interface Clone {
  index: number;
  state: CloneState;
  handle?: CloneHandle;
  dir: string;
  restarts: number;
  /** Consecutive restarts without a stable run, for the backoff. */
  streak: number;
  startedAt?: number;
  lastExit?: string;
  /** Why the last restart attempt failed to fork, while the clone is down; cleared by a fork that works. */
  lastError?: string;
  /** When the scheduled restart runs (ms since the epoch), while one is scheduled. */
  nextAttemptAt?: number;
  /** Why the clone stays down: the restart policy does not restart this exit. */
  gaveUp?: string;
  session?: boolean;
  /** A clone created at run time by a factory port: its creator clone and the parameters it chose (kept across restarts). */
  created?: { creator: { instance: string; clone: number }; params: Record<string, unknown> };
  /** Set when we stop the clone ourselves, so its exit is not a crash. */
  stopping: boolean;
  /** While the clone moves to another host: its handle here, whose exit (the move kills it) is not a crash. */
  migratingFrom?: CloneHandle;
  /** The exit of `migratingFrom` during the move, handled as a crash if the move fails. */
  migrationExit?: ExitInfo;
  timer?: NodeJS.Timeout;
}

interface Instance {
  plan: PlanInstance;
  clones: Map<number, Clone>;
  nextIndex: number;
  /** Warm (paused) clones of a per-session instance. */
  warm: number[];
  readyTimeoutMs: number;
}

const MAX_RECENT = 20;
/** The console log files a clone's directory keeps across restarts. */
const CONSOLE_LOG_FILE = /^console\.log(\.\d+)?$/;
/** How long apply waits for the broker to connect to a new clone's ports. */
const CONNECT_TIMEOUT_MS = 10_000;

export class Supervisor {
  private readonly o: Required<Pick<SupervisorOptions, 'backoffMs' | 'maxBackoffMs' | 'stableAfterMs'>> & SupervisorOptions;
  private readonly instances = new Map<string, Instance>();
  private plan: Plan | null = null;
  private broker: BrokerLike | null = null;
  private brokerKey = '';
  private exposures: { host_port: number; instance: string; port: string }[] = [];
  /** Whether the current broker listens on every exposure of the plan (a failed listen is retried by the next apply). */
  private exposuresOpen = false;
  private queue: Promise<unknown> = Promise.resolve();
  private accel: { name: string; note?: string } | null = null;
  private closed = false;
  private readonly unwired: ViolationRecord[] = [];
  private readonly recentByChannel = new Map<string, ViolationRecord[]>();

  constructor(opts: SupervisorOptions) {
    this.o = { ...RESTART_BACKOFF, ...opts };
  }

  /** The applied plan's digest, or null before the first apply. */
  get planDigest(): string | null {
    return this.plan?.digests.plan ?? null;
  }

  /** The applied plan, or null before the first apply. */
  get appliedPlan(): Plan | null {
    return this.plan;
  }

  /** The applied plan's system, or null before the first apply. */
  get planSystem(): string | null {
    return this.plan?.system ?? null;
  }

  /** Converges to `plan`. Concurrent calls run one after the other. */
  apply(plan: Plan, req: ApplyRequest, emit: EventSink): Promise<ApplySummary> {
    return this.exclusive(() => this.doApply(plan, req, emit));
  }

  /** Stops every clone and the broker. */
  destroy(emit: EventSink): Promise<string[]> {
    return this.exclusive(() => this.doDestroy(emit));
  }

  /** Runs `body` after the applies, restores and moves queued before it, and before those queued after. */
  exclusive<T>(body: () => Promise<T>): Promise<T> {
    const run = this.queue.then(body);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Moves a running clone to another host (spec/hosts.md, "Live migration"), by `move` (migrate-out.ts's
   * moveOut, given the clone's handle and the broker); afterwards the clone's record holds the remote
   * handle `move` returns. Refuses what cannot move before anything changes.
   */
  migrate<R>(
    req: { instance: string; clone: number; to: string },
    move: (handle: CloneHandle, broker: BrokerLike, dir: string) => Promise<{ remote: CloneHandle; result: R }>,
  ): Promise<R> {
    return this.exclusive(async () => {
      const inst = this.instances.get(req.instance);
      if (!inst) throw new BackendFailure('usage', `no instance ${req.instance} runs on this host`, `instances here: ${[...this.instances.keys()].sort().join(', ') || 'none'}`);
      if (inst.plan.mode === 'per_session' || inst.plan.mode === 'created') {
        throw new BackendFailure('failure', `${req.instance} is a ${inst.plan.mode === 'per_session' ? 'per-session' : 'created'} instance: its clones belong to a session or a creator on this host and are not moved`, 'move a clone of a single or replicated instance');
      }
      const c = inst.clones.get(req.clone);
      if (!c) throw new BackendFailure('usage', `${req.instance} has no clone ${req.clone}`, `its clones: ${[...inst.clones.keys()].sort((a, b) => a - b).join(', ') || 'none'}`);
      if (c.handle?.remote) throw new BackendFailure('failure', `${req.instance}[${req.clone}] was moved to ${c.handle.remote.target} already`, 'a moved clone comes home when it is restarted; move another clone');
      if (c.state !== 'running' || !c.handle || !this.broker) throw new BackendFailure('failure', `${req.instance}[${req.clone}] is ${c.state}, not running; nothing was moved`, 'move it once it runs again (see `mclc status`)');
      const handle = c.handle;
      c.migratingFrom = handle;
      let moved: { remote: CloneHandle; result: R };
      try {
        moved = await move(handle, this.broker, `${c.dir}.m`);
      } catch (e) {
        c.migratingFrom = undefined;
        const exit = c.migrationExit;
        c.migrationExit = undefined;
        // The source died during the move (or after a move that did not finish): its restart policy applies.
        if (exit) this.onExit(inst, c, handle, exit);
        throw e;
      }
      c.migratingFrom = undefined;
      c.migrationExit = undefined;
      const remote = moved.remote;
      c.handle = remote;
      this.o.onRecord?.({ event: 'moved', instance: inst.plan.id, clone: c.index, pid: handle.pid, to: req.to });
      remote.exited.then((info) => this.onExit(inst, c, remote, info));
      this.changed();
      return moved.result;
    });
  }

  /** The clones that run on other hosts, for the state's `moved`. */
  moved(): { instance: string; clone: number; to: string; at: string }[] {
    const out: { instance: string; clone: number; to: string; at: string }[] = [];
    for (const [id, inst] of [...this.instances].sort(([a], [b]) => a.localeCompare(b))) {
      for (const c of [...inst.clones.values()].sort((a, b) => a.index - b.index)) {
        if (c.handle?.remote) out.push({ instance: id, clone: c.index, to: c.handle.remote.target, at: c.handle.remote.at });
      }
    }
    return out;
  }

  /** Takes a checkpoint of the deployment, or of the named instances, into `dir` (spec/checkpoint.md). */
  checkpoint(req: { dir: string; instances: string[] }, emit: EventSink): Promise<CheckpointResult> {
    return this.exclusive(() => this.doCheckpoint(req.dir, req.instances, emit));
  }

  /** Brings the deployment (or the checkpoint's instances) back from a checkpoint; refuses one that does not fit, changing nothing. */
  restore(req: { dir: string; readyTimeoutMs: number }, emit: EventSink): Promise<RestoreSummary & { plan: Plan; processes: ProcessRecord[] }> {
    return this.exclusive(() => this.doRestore(req.dir, req.readyTimeoutMs, emit));
  }

  private async doCheckpoint(dir: string, named: string[], emit: EventSink): Promise<CheckpointResult> {
    const started = Date.now();
    const plan = this.plan;
    const broker = this.broker;
    if (!plan || !broker) throw new BackendFailure('failure', 'nothing is deployed: there is nothing to checkpoint', 'apply a plan first');
    if (!broker.hold || !broker.checkpointState || !broker.resume) throw new BackendFailure('failure', 'this broker cannot take checkpoints');
    const unknown = named.filter((id) => !this.instances.has(id));
    if (unknown.length) throw new BackendFailure('usage', `not running: ${unknown.join(', ')}`, 'name instances as `mclc status` shows them');
    const ids = named.length ? [...new Set(named)].sort() : [...this.instances.keys()].sort();
    const clones: { inst: Instance; c: Clone }[] = [];
    for (const id of ids) {
      const inst = this.instances.get(id)!;
      for (const c of [...inst.clones.values()].sort((a, b) => a.index - b.index)) {
        // Warm clones of a per-session instance are template-fresh: a restore forks them again.
        if (inst.plan.mode === 'per_session' && !c.session) continue;
        if (c.session) throw new BackendFailure('failure', `${id} has a session open (clone ${c.index}); sessions are not part of a checkpoint`, 'take the checkpoint when its sessions have ended');
        if (c.state !== 'running' || !c.handle) throw new BackendFailure('failure', `${id} clone ${c.index} is ${c.state}, not running; nothing was saved`, 'take the checkpoint once it runs again (see `mclc status`)');
        if (c.handle.remote) throw new BackendFailure('failure', `${id} clone ${c.index} runs on ${c.handle.remote.target} (moved by mclc migrate); a checkpoint holds only clones that run on this host; nothing was saved`, 'take the checkpoint of the other instances, or once the clone runs here again');
        if (!c.handle.checkpoint) throw new BackendFailure('failure', 'this runtime cannot take checkpoints of its clones');
        clones.push({ inst, c });
      }
    }
    const templateIds = [...new Set(ids.map((id) => this.instances.get(id)!.plan.template))].sort();
    const templates = templateIds.map((id) => {
      const b = this.o.runtime.templateBuild?.(plan, id);
      if (!b) throw new BackendFailure('failure', `template ${id} is not known to the runtime; nothing was saved`, 'apply the plan again, then take the checkpoint');
      const t = plan.templates.find((x) => x.id === id)!;
      return { id, key: b.key, build: b.build, memory_bytes: t.memory_bytes };
    });
    emit({ type: 'phase', phase: 'checkpoint', action: 'start', message: `pausing ${clones.length} clone(s) and the broker` });
    const cut = await takeCut(
      clones.map(({ inst, c }) => ({ instance: inst.plan.id, index: c.index, checkpoint: c.handle!.checkpoint! })),
      { hold: () => broker.hold!(), checkpointState: () => broker.checkpointState!(), resume: () => broker.resume!() },
      dir,
    );
    emit({ type: 'phase', phase: 'checkpoint', action: 'resumed', elapsed_ms: cut.pauseMs, message: `every clone ran again after a pause of ${cut.pauseMs} ms` });
    const files = await Promise.all(cut.finish.map((f) => f()));
    const scope = named.length ? 'instances' : 'deployment';
    const chosen = new Set(ids);
    const brokerState = scope === 'deployment' ? cut.broker : { ...cut.broker, counters: {}, ports: cut.broker.ports.filter((p) => chosen.has(p.instance)) };
    const manifest: CheckpointManifest = {
      format: CHECKPOINT_FORMAT,
      format_version: CHECKPOINT_FORMAT_VERSION,
      created_at: new Date().toISOString(),
      scope,
      system: plan.system,
      plan_digest: plan.digests.plan,
      plan: writeCheckpointFile(dir, 'plan.json', JSON.stringify(plan)),
      broker: writeCheckpointFile(dir, 'broker.json', JSON.stringify(brokerState)),
      host: { accelerator: this.accel?.name ?? null, qemu: null },
      templates,
      instances: ids.map((id) => ({
        id,
        template: this.instances.get(id)!.plan.template,
        clones: clones.flatMap(({ inst, c }, i) => (inst.plan.id === id ? [{ index: c.index, ...files[i] }] : [])),
      })),
      pause_ms: cut.pauseMs,
    };
    writeManifest(dir, manifest);
    const ram = files.reduce((n, f) => n + f.ram.bytes, 0);
    const dev = files.reduce((n, f) => n + f.device_state.bytes, 0);
    emit({ type: 'phase', phase: 'checkpoint', action: 'done', elapsed_ms: Date.now() - started, message: `checkpoint of ${ids.length} instance(s) written to ${dir}` });
    return {
      dir,
      scope,
      plan_digest: plan.digests.plan,
      instances: ids,
      clones: clones.length,
      pause_ms: cut.pauseMs,
      elapsed_ms: Date.now() - started,
      bytes: ram + dev + manifest.plan.bytes + manifest.broker.bytes,
      ram_bytes: ram,
      device_state_bytes: dev,
    };
  }

  private async doRestore(dir: string, readyTimeoutMs: number, emit: EventSink): Promise<RestoreSummary & { plan: Plan; processes: ProcessRecord[] }> {
    const started = Date.now();
    // Everything is checked before anything changes.
    const cp = verifyCheckpoint(dir, { keepFiles: true });
    const { manifest: m, plan } = cp;
    if (this.plan && this.plan.digests.plan !== m.plan_digest) {
      throw new BackendFailure(
        'stale',
        `the checkpoint is of plan ${m.plan_digest.slice(0, 12)}, but this deployment runs plan ${this.plan.digests.plan.slice(0, 12)}; nothing was changed`,
        'destroy the deployment first to bring the checkpoint back as it was, or apply the checkpoint\'s plan',
      );
    }
    if (m.scope === 'instances' && !this.plan) {
      throw new BackendFailure('stale', 'the checkpoint holds only some instances and nothing is deployed to put them back into; nothing was changed', `apply the checkpoint's plan first (${m.plan.file} in the checkpoint)`);
    }
    if (!this.o.runtime.restore || !this.o.runtime.templateBuild) throw new BackendFailure('failure', 'this runtime cannot restore checkpoints');
    emit({ type: 'phase', phase: 'templates', action: 'start', message: `preparing ${m.templates.length} template(s)` });
    await this.o.runtime.prepare(plan, m.templates.map((t) => t.id), emit);
    for (const t of m.templates) {
      const b = this.o.runtime.templateBuild(plan, t.id);
      if (!b || b.key !== t.key || b.build !== t.build) {
        throw new BackendFailure(
          'stale',
          `template ${t.id} here is ${!b ? 'missing' : b.key !== t.key ? `another template (key ${b.key.slice(0, 12)}, the checkpoint's is ${t.key.slice(0, 12)})` : 'another boot of the same template (its RAM differs)'}; the checkpoint's pages only fit the template it was taken from; nothing was changed`,
          'restore on the host and template build the checkpoint was taken from (templates are rebuilt after a reboot or a change of QEMU, kernel or image)',
        );
      }
    }
    // Every clone is started paused beside what runs; only when all are up is anything replaced.
    emit({ type: 'phase', phase: 'restore', action: 'start', message: `starting ${m.instances.reduce((n, i) => n + i.clones.length, 0)} clone(s) from the checkpoint` });
    const t0 = Date.now();
    const byId = new Map(plan.instances.map((i) => [i.id, i]));
    const tag = randomBytes(4).toString('hex');
    const staged = m.instances.flatMap((i) => i.clones.map((c) => ({ id: i.id, index: c.index, files: c, dir: join(this.o.runDir, 'clones', restoredCloneDirName(i.id, c.index, tag)) })));
    const results = await Promise.allSettled(
      staged.map(async (s) => {
        mkdirSync(s.dir, { recursive: true });
        return this.o.runtime.restore!({
          instance: byId.get(s.id)!,
          index: s.index,
          dir: s.dir,
          readyTimeoutMs,
          deviceState: cp.files.get(s.files.device_state.file)!,
          ram: cp.files.get(s.files.ram.file)!,
          ramName: s.files.ram.file,
        });
      }),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
      for (const s of staged) rmSync(s.dir, { recursive: true, force: true });
      throw new BackendFailure('failure', `a clone could not be restored, so nothing was changed: ${(failed.reason as Error)?.message ?? failed.reason}`, 'see supervisor.log; take a new checkpoint if the files are damaged');
    }
    const handles = results.map((r) => (r as PromiseFulfilledResult<CloneHandle>).value);
    // Replace: the restored instances (all of them for a checkpoint of the deployment) stop, then the restored clones take their place.
    const ids = m.instances.map((i) => i.id);
    const replaced = m.scope === 'deployment' ? [...this.instances.keys()] : ids;
    for (const layer of stopLayers(replaced, this.plan?.channels ?? [])) await Promise.all(layer.map((id) => this.stopInstance(id)));
    if (m.scope === 'deployment') await this.replaceBroker(plan, brokerKey(plan) + (this.o.wiringExtra?.() ?? ''));
    this.plan = plan;
    const restored: { inst: Instance; c: Clone }[] = [];
    staged.forEach((s, k) => {
      let inst = this.instances.get(s.id);
      if (!inst) {
        inst = { plan: byId.get(s.id)!, clones: new Map(), nextIndex: 0, warm: [], readyTimeoutMs };
        this.instances.set(s.id, inst);
      }
      const c: Clone = { index: s.index, state: 'paused', dir: s.dir, restarts: 0, streak: 0, stopping: false, handle: handles[k], startedAt: Date.now() };
      inst.clones.set(s.index, c);
      inst.nextIndex = Math.max(inst.nextIndex, s.index + 1);
      const inst2 = inst;
      handles[k].exited.then((info) => this.onExit(inst2, c, handles[k], info));
      restored.push({ inst, c });
    });
    this.changed();
    await Promise.all(restored.map(({ inst, c }) => this.attach(inst.plan.id, c)));
    const warnings = [...(this.broker!.restoreState?.(cp.broker) ?? ['this broker cannot restore its state; its counters start from zero'])];
    for (const w of warnings) emit({ type: 'warning', message: `broker state: ${w}` });
    await Promise.all(
      restored.map(async ({ inst, c }) => {
        try {
          await c.handle!.resume();
          c.state = 'running';
        } catch (e) {
          // Past this point the deployment has been replaced: a guest that does not answer after it continued
          // is handled as a crashed clone (its restart policy forks it afresh), not by undoing the others.
          const why = `did not answer after it was restored: ${(e as Error).message}`;
          emit({ type: 'warning', instance: inst.plan.id, clone: c.index, message: why });
          warnings.push(`${inst.plan.id}[${c.index}] ${why}`);
          c.state = 'running';
          await c.handle!.stop();
        }
      }),
    );
    const restoreMs = Date.now() - t0;
    emit({ type: 'phase', phase: 'restore', action: 'done', elapsed_ms: restoreMs, message: `${restored.length} clone(s) running from the checkpoint` });
    // Instances with nothing in the checkpoint (per-session ones: their warm clones are fresh forks) start as an apply starts them.
    if (m.scope === 'deployment') {
      for (const p of plan.instances) if (!this.instances.has(p.id)) await this.startInstance(p, readyTimeoutMs, emit, 'create');
      await this.broker!.listenExposures();
      this.exposuresOpen = true;
      this.exposures = plan.exposures.map((e) => ({ host_port: e.host_port, instance: e.instance, port: e.port }));
    }
    this.changed();
    return { dir, plan, plan_digest: m.plan_digest, instances: ids, clones: restored.length, elapsed_ms: Date.now() - started, restore_ms: restoreMs, warnings, processes: this.processes() };
  }

  private async doApply(plan: Plan, req: ApplyRequest, emit: EventSink): Promise<ApplySummary> {
    if (this.closed) throw new BackendFailure('failure', 'the supervisor is shutting down', 'run apply again');
    const running = new Map([...this.instances].map(([id, i]) => [id, i.plan.digest]));
    const diff = diffInstances(running, plan.instances, req.replace);
    if (diff.unknown.length > 0) {
      throw new BackendFailure('usage', `--replace names instances that are not in the plan: ${diff.unknown.join(', ')}`, 'use instance ids as shown by `mclc show`');
    }
    const { unknown: _unknown, ...d } = diff;
    const started = Date.now();
    await this.checkExposurePorts(plan);
    emit({ type: 'phase', phase: 'accelerator', action: 'start', message: 'probing the accelerator' });
    this.accel ??= await this.o.runtime.accelerator();
    if (this.accel.note) emit({ type: 'warning', message: this.accel.note, data: { accelerator: this.accel.name } });
    emit({ type: 'phase', phase: 'accelerator', action: 'done', message: `guests run on ${this.accel.name}` });

    for (const id of d.keep) emit({ type: 'instance', instance: id, action: 'keep', message: 'unchanged, left running' });

    // Images and templates for what will be forked. Templates already booted are cached by the runtime.
    const byId = new Map(plan.instances.map((i) => [i.id, i]));
    const toStart = [...d.create, ...d.replace];
    const templates = [...new Set(toStart.map((id) => byId.get(id)!.template))].sort();
    if (templates.length > 0) {
      emit({ type: 'phase', phase: 'templates', action: 'start', message: `preparing ${templates.length} template(s)` });
      try {
        await this.o.runtime.prepare(plan, templates, emit);
      } catch (e) {
        if (e instanceof BackendFailure) throw e;
        throw new BackendFailure('failure', `preparing the images and templates failed: ${(e as Error).message}`, 'run `mclc doctor` to check QEMU, the kernel and busybox');
      }
      emit({ type: 'phase', phase: 'templates', action: 'done', message: 'templates ready' });
    }

    // Stop what goes away or is replaced: requirers before their providers.
    const oldChannels = this.plan?.channels ?? [];
    for (const layer of stopLayers([...d.delete, ...d.replace], oldChannels)) {
      await Promise.all(
        layer.map(async (id) => {
          const action = d.delete.includes(id) ? 'delete' : 'replace';
          emit({ type: 'instance', instance: id, action, message: action === 'delete' ? 'removed from the plan: stopping' : 'changed: stopping the old clones' });
          this.createdGone(id, action === 'delete' ? 'its instance was removed by an apply' : 'its instance was replaced by an apply');
          await this.stopInstance(id);
        }),
      );
    }

    // A new broker when the wiring changed; kept clones are attached to it again.
    const key = brokerKey(plan) + (this.o.wiringExtra?.() ?? '');
    const newBroker = this.broker === null || key !== this.brokerKey;
    if (newBroker) await this.replaceBroker(plan, key);
    this.plan = plan;
    for (const id of d.keep) {
      const inst = this.instances.get(id)!;
      inst.plan = byId.get(id)!;
      if (newBroker) await Promise.all([...inst.clones.values()].filter((c) => c.handle && c.state !== 'paused').map((c) => this.attach(id, c)));
    }

    // Start new and replaced instances: providers before requirers.
    emit({ type: 'phase', phase: 'instances', action: 'start', message: `starting ${toStart.length} instance(s)` });
    for (const layer of startLayers(toStart, plan.channels)) {
      await Promise.all(layer.map((id) => this.startInstance(byId.get(id)!, req.readyTimeoutMs, emit, d.create.includes(id) ? 'create' : 'replace')));
    }
    emit({ type: 'phase', phase: 'instances', action: 'done', message: 'instances ready' });

    if (!this.exposuresOpen) {
      emit({ type: 'phase', phase: 'exposures', action: 'start', message: `opening ${plan.exposures.length} exposure(s)` });
      try {
        await this.broker!.listenExposures();
      } catch (e) {
        // The instances run; the next apply of this plan opens what is still closed.
        throw new BackendFailure(
          'failure',
          (e as Error).message,
          'stop the program listening on that port, or choose another port in the source and plan again; then apply again',
        );
      }
      this.exposuresOpen = true;
      this.exposures = plan.exposures.map((e) => ({ host_port: e.host_port, instance: e.instance, port: e.port }));
      for (const e of this.exposures) {
        emit({ type: 'exposure', action: 'listening', host_port: e.host_port, instance: e.instance, message: `${EXPOSURE_HOST}:${e.host_port} -> ${e.instance}.${e.port}` });
      }
    }
    if (newBroker) {
      for (const c of plan.channels) emit({ type: 'channel', action: 'wired', channel: c.id, message: `${c.protocol} (${c.ops.map((o) => o.name).join(', ')})` });
    }
    this.changed();
    emit({ type: 'phase', phase: 'apply', action: 'done', elapsed_ms: Date.now() - started, message: 'converged' });
    return { ...d, accelerator: this.accel, exposures: this.exposures, processes: this.processes(), moved: this.moved() };
  }

  /**
   * Fails the apply before anything changes when an exposure's host port is
   * taken by another program. Ports of the plan applied last are left to
   * the broker (they are its own, and a new broker takes them over), so they
   * are not probed. A port can still be taken before the broker binds it;
   * that fails the apply after the instances started, and the next apply
   * (where every instance is kept) retries only the listen.
   */
  private async checkExposurePorts(plan: Plan): Promise<void> {
    const ours = new Set((this.plan?.exposures ?? []).map((e) => e.host_port));
    const probe = this.o.probePort ?? ((port: number) => tryBind(EXPOSURE_HOST, port));
    const checked = plan.exposures.filter((e) => !ours.has(e.host_port));
    const errors = await Promise.all(checked.map((e) => probe(e.host_port)));
    const taken = checked.map((e, i) => ({ e, error: errors[i] })).filter((x) => x.error !== null);
    if (!taken.length) return;
    const what = taken.map(({ e, error }) => `tcp ${e.host_port} (exposure ${e.instance}.${e.port}): ${error === 'EADDRINUSE' ? 'in use by another program' : error}`);
    throw new BackendFailure(
      'failure',
      `cannot listen on ${EXPOSURE_HOST} for ${taken.length === 1 ? 'an exposure' : `${taken.length} exposures`}; nothing was changed: ${what.join('; ')}`,
      `stop the program listening on ${taken.map(({ e }) => `${EXPOSURE_HOST}:${e.host_port}`).join(', ')}, or choose another port in the source and plan again`,
    );
  }

  private async doDestroy(emit: EventSink): Promise<string[]> {
    const ids = [...this.instances.keys()].sort();
    for (const layer of stopLayers(ids, this.plan?.channels ?? [])) {
      await Promise.all(
        layer.map(async (id) => {
          emit({ type: 'instance', instance: id, action: 'delete', message: 'stopping' });
          await this.stopInstance(id);
        }),
      );
    }
    if (this.broker) await this.broker.close();
    await this.o.runtime.release?.();
    this.broker = null;
    this.brokerKey = '';
    this.plan = null;
    this.exposures = [];
    this.exposuresOpen = false;
    this.changed();
    return ids;
  }

  /** Stops everything for good (the supervisor is exiting). */
  async shutdown(): Promise<void> {
    await this.destroy(() => undefined).catch(() => undefined);
    this.closed = true;
  }

  // -------------------------------------------------------------------------
  // Instances and clones

  private async startInstance(p: PlanInstance, readyTimeoutMs: number, emit: EventSink, action: 'create' | 'replace'): Promise<void> {
    const inst: Instance = { plan: p, clones: new Map(), nextIndex: 0, warm: [], readyTimeoutMs };
    this.instances.set(p.id, inst);
    emit({ type: 'instance', instance: p.id, action, message: action === 'create' ? 'creating' : 'replacing' });
    // A per-session instance starts only its warm pool; sessions fork the rest. A created one starts none.
    const count = p.mode === 'per_session' || p.mode === 'created' ? p.replicas : Math.max(1, p.replicas);
    const t0 = Date.now();
    const results = await Promise.allSettled(
      Array.from({ length: count }, async () => {
        const c = this.newClone(inst);
        await this.forkClone(inst, c, p.mode === 'per_session');
        for (const n of c.handle?.startNotes ?? []) emit({ type: 'warning', instance: p.id, clone: c.index, message: n });
        emit({ type: 'instance', instance: p.id, clone: c.index, action: 'ready', elapsed_ms: Date.now() - t0, message: `clone ${c.index} ${p.mode === 'per_session' ? 'warm (paused)' : 'ready'} (pid ${c.handle?.pid})` });
        if (p.mode === 'per_session') inst.warm.push(c.index);
      }),
    );
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0) {
      // Nothing half-started is kept: the next apply creates the instance afresh.
      await this.stopInstance(p.id);
      const why = String((failed[0].reason as Error)?.message ?? failed[0].reason);
      emit({ type: 'instance', instance: p.id, action: 'failed', message: why });
      throw new BackendFailure('failure', `instance ${p.id} did not start: ${why}`, `see \`mclc logs ${p.id}\` for the guest console`);
    }
  }

  private newClone(inst: Instance): Clone {
    const index = inst.nextIndex++;
    const c: Clone = { index, state: 'starting', dir: join(this.o.runDir, 'clones', `${cloneDirBase(inst.plan.id)}.${index}`), restarts: 0, streak: 0, stopping: false };
    inst.clones.set(index, c);
    return c;
  }

  private async forkClone(inst: Instance, c: Clone, paused: boolean, consoleHeader?: string): Promise<void> {
    // A restart keeps the earlier runs' consoles (why it died) as console.log.1, .2, ...: rotated by renames,
    // never read (a guest decides how large they are), within the same bound as the console log itself
    // (vm/console-log.ts). Everything else in the directory starts afresh.
    const log = join(c.dir, 'console.log');
    if (existsSync(log)) rotateLogFiles(log, consoleLogLimits().files);
    if (existsSync(c.dir)) {
      for (const f of readdirSync(c.dir)) if (!CONSOLE_LOG_FILE.test(f)) rmSync(join(c.dir, f), { recursive: true, force: true });
    }
    mkdirSync(c.dir, { recursive: true });
    c.state = 'starting';
    c.stopping = false;
    const forkStarted = Date.now();
    let handle: CloneHandle;
    try {
      // Processes the runtime starts ahead of time live beside the clone directories, where the reaper looks.
      const spareDir = join(this.o.runDir, 'clones');
      handle = await this.o.runtime.fork({
        instance: c.created ? withParams(inst.plan, c.created.params) : inst.plan,
        index: c.index,
        dir: c.dir,
        readyTimeoutMs: inst.readyTimeoutMs,
        paused,
        spareDir,
        ...(consoleHeader ? { consoleHeader } : {}),
      });
    } catch (e) {
      c.state = 'crashed';
      c.lastError = `fork failed: ${(e as Error).message}`;
      this.o.onRecord?.({ event: 'fork_failed', instance: inst.plan.id, clone: c.index, error: c.lastError.slice(0, 1000) });
      throw e;
    }
    c.handle = handle;
    const notes = handle.startNotes?.length ? [...handle.startNotes] : undefined;
    for (const n of notes ?? []) this.o.log?.(`${inst.plan.id}[${c.index}]: ${n}`);
    this.o.onRecord?.({ event: 'fork', instance: inst.plan.id, clone: c.index, pid: handle.pid, paused, elapsed_ms: Date.now() - forkStarted, ...(notes ? { notes } : {}) });
    c.startedAt = Date.now();
    c.state = paused ? 'paused' : 'running';
    handle.exited.then((info) => this.onExit(inst, c, handle, info));
    this.changed();
    if (!paused) await this.attach(inst.plan.id, c);
  }

  /** Attaches a clone's ports to the broker and waits until the broker is connected to them. */
  private async attach(id: string, c: Clone): Promise<void> {
    if (!this.broker || !c.handle) return;
    // Only ports the current plan declares: a kept clone never gains ports, and a port the plan dropped stays dark.
    const declared = new Set(this.instances.get(id)?.plan.ports.map((p) => p.name) ?? []);
    const ports = Object.keys(c.handle.portSockets).filter((p) => declared.has(p));
    const connected = ports.map((port) => this.broker!.attachPort(id, c.index, port, c.handle!.portSockets[port]));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean[]>((r) => (timer = setTimeout(() => r([false]), CONNECT_TIMEOUT_MS)));
    const ok = await Promise.race([Promise.all(connected.map((p) => p ?? true)), timeout]);
    clearTimeout(timer);
    if (!ok.every(Boolean)) this.o.log?.(`${id}[${c.index}]: the broker is not connected to every port after ${CONNECT_TIMEOUT_MS} ms; it keeps retrying`);
  }

  private async stopClone(inst: Instance, c: Clone): Promise<void> {
    c.stopping = true;
    if (c.timer) clearTimeout(c.timer);
    this.broker?.detachClone(inst.plan.id, c.index);
    this.o.onRecord?.({ event: 'stop', instance: inst.plan.id, clone: c.index, pid: c.handle && !c.handle.remote ? c.handle.pid : null });
    if (c.handle) await c.handle.stop();
    c.state = 'stopped';
    inst.clones.delete(c.index);
    rmSync(c.dir, { recursive: true, force: true });
  }

  /**
   * Closes the current broker and makes one for `plan` (whose wiring key is
   * `key`), with this supervisor's hooks; its exposures are opened afresh.
   * An apply and a restore of the whole deployment both go through here, so
   * the hooks a broker gets cannot differ between the two.
   */
  private async replaceBroker(plan: Plan, key: string): Promise<void> {
    if (this.broker) await this.broker.close();
    this.broker = this.o.brokerFactory(plan, {
      onSessionOpen: (id) => this.openSession(id),
      onSessionClose: (id, clone) => this.closeSession(id, clone),
      onCreate: (id, creator, params) => this.createInstance(id, creator, params),
      onDestroy: (id, clone) => this.closeSession(id, clone),
      onViolation: (v) => this.recordViolation(v),
    });
    this.brokerKey = key;
    this.exposuresOpen = false;
    this.exposures = [];
  }

  /**
   * Before an apply stops a created instance (replaced or removed), the broker forgets its clones
   * and tells each creator, whose handles would otherwise stay in its bound and name nothing;
   * the creators, kept running, create the new instances themselves (spec/factories.md).
   */
  private createdGone(id: string, reason: string): void {
    const inst = this.instances.get(id);
    if (!inst || inst.plan.mode !== 'created') return;
    for (const c of inst.clones.values()) if (c.created) this.broker?.createdGone?.(id, c.index, reason);
  }

  private async stopInstance(id: string): Promise<void> {
    const inst = this.instances.get(id);
    if (!inst) return;
    await Promise.all([...inst.clones.values()].map((c) => this.stopClone(inst, c)));
    this.instances.delete(id);
    this.changed();
  }

  /** A clone's QEMU exited. Unless we stopped it, apply the restart policy. */
  private onExit(inst: Instance, c: Clone, handle: CloneHandle, info: ExitInfo): void {
    if (c.migratingFrom === handle) {
      c.migrationExit = info;
      return;
    }
    if (c.handle !== handle || c.stopping || this.instances.get(inst.plan.id) !== inst) return;
    c.lastExit = describeExit(info);
    c.handle = undefined;
    c.state = 'crashed';
    this.broker?.detachClone(inst.plan.id, c.index);
    this.changed();
    const ranFor = Date.now() - (c.startedAt ?? Date.now());
    this.o.onRecord?.({ event: 'exit', instance: inst.plan.id, clone: c.index, pid: handle.remote ? null : handle.pid, exit: c.lastExit, ran_ms: ranFor });
    c.startedAt = undefined;
    if (ranFor >= this.o.stableAfterMs) c.streak = 0;
    if (c.session) {
      // A session clone that dies ends its session; the broker notices the closed ports.
      inst.clones.delete(c.index);
      return;
    }
    if (inst.plan.mode === 'per_session') {
      // A warm clone that died is replaced by a fresh warm one, not restarted in place.
      inst.clones.delete(c.index);
      inst.warm = inst.warm.filter((i) => i !== c.index);
      this.refillPool(inst);
      return;
    }
    if (info.helper) {
      // The clone did nothing wrong: a process of the runtime it depended on died (its zygote took every
      // clone of the template with it). It is forked again whatever its policy, `never` included, and
      // the restart is not counted against it; the backoff still applies, so a helper that keeps
      // dying cannot make the supervisor fork in a tight loop.
      this.o.log?.(`${inst.plan.id}[${c.index}] exited (${c.lastExit}); forked again, not counted against policy ${inst.plan.restart.policy}`);
      this.scheduleRestart(inst, c, false);
      return;
    }
    this.restartByPolicy(inst, c, exitFailed(info), c.lastExit);
  }

  /** Schedules a restart when the instance's policy allows one after an exit (or a failed restart). */
  private restartByPolicy(inst: Instance, c: Clone, failure: boolean, what: string): void {
    const { policy, max_retries } = inst.plan.restart;
    const allowed = restartAllowed(inst.plan.restart, failure, c.restarts);
    this.o.log?.(`${inst.plan.id}[${c.index}] ${what}; restart ${allowed ? 'scheduled' : 'not allowed'} by policy ${policy}`);
    if (allowed) return this.scheduleRestart(inst, c, true);
    c.gaveUp =
      policy === 'never'
        ? 'the restart policy is never'
        : policy === 'on_failure' && !failure
          ? 'it exited successfully and the restart policy is on-failure'
          : `${c.restarts} restart(s) reached the policy's limit (max ${max_retries})`;
    this.o.onRecord?.({ event: 'not_restarted', instance: inst.plan.id, clone: c.index, why: c.gaveUp });
    this.changed();
  }

  /**
   * Forks the clone again after the backoff: 250 ms doubling up to 10 s per
   * consecutive attempt (`streak`), whether the last attempt ended in an exit
   * or in a fork that failed. Only a clone that ran `stableAfterMs` resets it
   * (in onExit); a failed fork never does, so a restart that cannot succeed
   * (a template whose files are gone, a host out of memory) is retried every
   * 10 s rather than as fast as forks fail. `counted`: the restart counts
   * against the policy's retry limit.
   */
  private scheduleRestart(inst: Instance, c: Clone, counted: boolean): void {
    const delay = Math.min(this.o.backoffMs * 2 ** c.streak, this.o.maxBackoffMs);
    c.state = 'restarting';
    c.gaveUp = undefined;
    c.nextAttemptAt = Date.now() + delay;
    c.timer = setTimeout(() => {
      c.timer = undefined;
      c.nextAttemptAt = undefined;
      if (c.stopping || this.instances.get(inst.plan.id) !== inst) return;
      if (counted) c.restarts++;
      c.streak++;
      this.o.onRecord?.({ event: 'restart', instance: inst.plan.id, clone: c.index, restarts: c.restarts, counted, after: c.lastExit ?? 'unknown' });
      const header = `--- mcl: clone ${c.index} forked again${counted ? ` (restart ${c.restarts})` : ''} after: ${c.lastExit ?? 'unknown'} ---`;
      this.forkClone(inst, c, false, header).then(
        () => {
          c.lastError = undefined;
        },
        (e) => {
          if (c.stopping || this.instances.get(inst.plan.id) !== inst) return;
          // Bounded: a fork's error carries the tail of the console, which the guest writes.
          c.lastError = String((e as Error)?.message ?? e).slice(0, 2000);
          // A failed fork counts as another failure and is retried by the same policy, with a longer wait.
          this.restartByPolicy(inst, c, true, `restart failed: ${c.lastError}`);
        },
      );
    }, delay);
  }

  // -------------------------------------------------------------------------
  // Sessions (broker hooks)

  private async openSession(id: string): Promise<number> {
    const inst = this.instances.get(id);
    if (!inst) throw new Error(`no instance ${id}`);
    const max = inst.plan.max_sessions ?? Infinity;
    const active = [...inst.clones.values()].filter((c) => c.session).length;
    if (active >= max) throw new Error(`${id} has reached its limit of ${max} sessions`);
    let c: Clone;
    const warm = inst.warm.shift();
    if (warm !== undefined && inst.clones.get(warm)?.handle) {
      c = inst.clones.get(warm)!;
      await c.handle!.resume();
      c.state = 'running';
      await this.attach(id, c);
    } else {
      c = this.newClone(inst);
      await this.forkClone(inst, c, false);
    }
    c.session = true;
    this.changed();
    // Top the warm pool up again in the background.
    this.refillPool(inst);
    return c.index;
  }

  /**
   * Forks an instance a creator asked for on its factory port. The broker has
   * checked the bound and the parameters; the bound is checked again here,
   * since the plan's resources were computed with it.
   */
  private async createInstance(id: string, creator: { instance: string; clone: number }, params: Record<string, unknown>): Promise<number> {
    const inst = this.instances.get(id);
    const by = inst?.plan.created_by;
    if (!inst || !by) throw new Error(`${id} is not created by a factory`);
    const mine = [...inst.clones.values()].filter((c) => c.created?.creator.instance === creator.instance && c.created.creator.clone === creator.clone).length;
    if (mine >= by.max) throw new Error(`${creator.instance}[${creator.clone}] already has ${mine} instances of ${id}`);
    const c = this.newClone(inst);
    c.created = { creator, params };
    try {
      await this.forkClone(inst, c, false);
    } catch (e) {
      inst.clones.delete(c.index);
      throw e;
    }
    this.o.log?.(`${id}[${c.index}] created by ${creator.instance}[${creator.clone}]`);
    this.changed();
    return c.index;
  }

  private async closeSession(id: string, index: number): Promise<void> {
    const inst = this.instances.get(id);
    const c = inst?.clones.get(index);
    if (!inst || !c) return;
    await this.stopClone(inst, c);
    this.changed();
  }

  private refillPool(inst: Instance): void {
    const missing = inst.plan.replicas - inst.warm.length;
    for (let i = 0; i < missing; i++) {
      const c = this.newClone(inst);
      this.forkClone(inst, c, true)
        .then(() => {
          if (this.instances.get(inst.plan.id) === inst) inst.warm.push(c.index);
        })
        .catch((e) => {
          inst.clones.delete(c.index);
          this.o.log?.(`${inst.plan.id}: warm clone failed: ${(e as Error).message}`);
        });
    }
  }

  // -------------------------------------------------------------------------
  // Reporting

  private recordViolation(v: Violation): void {
    const rec: ViolationRecord = { time: new Date(v.time).toISOString(), kind: v.kind, detail: v.detail, instance: v.instance, clone: v.clone };
    this.o.onRecord?.({ event: 'denial', channel: v.channel, kind: v.kind, detail: v.detail.slice(0, 1000), ...(v.instance !== undefined ? { instance: v.instance } : {}), ...(v.clone !== undefined ? { clone: v.clone } : {}) });
    const list = v.channel === null ? this.unwired : (this.recentByChannel.get(v.channel) ?? []);
    list.push(rec);
    if (list.length > MAX_RECENT) list.shift();
    if (v.channel !== null) this.recentByChannel.set(v.channel, list);
  }

  processes(): ProcessRecord[] {
    const out: ProcessRecord[] = [];
    for (const [id, inst] of [...this.instances].sort(([a], [b]) => a.localeCompare(b))) {
      for (const c of inst.clones.values()) {
        // A clone on another host has no process here: it is never recorded for the reaper or the ledger.
        if (c.handle && !c.handle.remote) out.push({ instance: id, clone: c.index, pid: c.handle.pid, start_time: c.handle.startTime, dir: c.dir });
      }
    }
    return out;
  }

  private changed(): void {
    this.o.onProcessesChanged?.(this.processes());
  }

  /** The clones with a QEMU process, for probing their health from outside (health.ts). */
  liveClones(): { instance: string; clone: number; state: CloneState; handle: CloneHandle; console: string }[] {
    const out: { instance: string; clone: number; state: CloneState; handle: CloneHandle; console: string }[] = [];
    for (const [id, inst] of this.instances) for (const c of inst.clones.values()) if (c.handle && !c.handle.remote) out.push({ instance: id, clone: c.index, state: c.state, handle: c.handle, console: c.handle.consoleLog });
    return out;
  }

  /** Log files of an instance's clones, for `mclc logs`. */
  logFiles(id: string): { clone: number; console: string; program?: string }[] | undefined {
    const inst = this.instances.get(id);
    if (!inst) return undefined;
    return [...inst.clones.values()]
      .sort((a, b) => a.index - b.index)
      .map((c) => ({ clone: c.index, console: c.handle?.consoleLog ?? join(c.dir, 'console.log'), program: c.handle?.programLog }));
  }

  /** The runtime's processes besides the clones (zygotes, processes started ahead), with their memory. */
  async helperStatus(): Promise<HelperStatus[]> {
    const helpers = (await this.o.runtime.helpers?.()) ?? [];
    return helpers.map((h) => ({ ...h, ...(processMemory(h.pid) ?? {}) }));
  }

  instanceStatus(): InstanceStatus[] {
    const now = Date.now();
    return [...this.instances.values()]
      .sort((a, b) => a.plan.id.localeCompare(b.plan.id))
      .map((inst) => {
        const clones = [...inst.clones.values()]
          .sort((a, b) => a.index - b.index)
          .map((c) => {
            const remote = c.handle?.remote;
            // A moved clone's pid is its host's: never read here. Its memory and CPU time come from that host.
            const pid = remote ? undefined : c.handle?.pid;
            const mem = c.handle?.memory ? c.handle.memory() : pid ? processMemory(pid) : undefined;
            const cpu = c.handle?.cpuMs ? c.handle.cpuMs() : pid ? processCpuMs(pid) : undefined;
            return {
              index: c.index,
              state: c.state,
              ...(pid !== undefined ? { pid } : {}),
              restarts: c.restarts,
              ...(c.startedAt && c.handle ? { uptime_ms: now - c.startedAt } : {}),
              ...(mem ?? {}),
              ...(cpu !== undefined ? { cpu_ms: cpu } : {}),
              ...(c.session ? { session: String(c.index) } : {}),
              ...(c.created ? { created_by: `${c.created.creator.instance}[${c.created.creator.clone}]` } : {}),
              ...(remote ? { moved_to: { target: remote.target, at: remote.at } } : {}),
              ...(c.lastExit ? { last_exit: c.lastExit } : {}),
              ...(c.lastError && !c.handle ? { last_error: c.lastError } : {}),
              ...(c.nextAttemptAt !== undefined ? { next_restart_in_ms: Math.max(0, c.nextAttemptAt - now) } : {}),
              ...(c.gaveUp && !c.handle ? { not_restarted: c.gaveUp } : {}),
            };
          });
        const wanted = inst.plan.mode === 'per_session' || inst.plan.mode === 'created' ? inst.plan.replicas : Math.max(1, inst.plan.replicas);
        const up = clones.filter((c) => c.state === 'running' || c.state === 'paused').length;
        const restarting = clones.some((c) => c.state === 'restarting' || c.state === 'starting');
        const health: InstanceStatus['health'] =
          up >= wanted ? 'healthy' : up === 0 && !restarting && wanted > 0 ? 'failed' : 'degraded';
        return {
          id: inst.plan.id,
          component: inst.plan.component,
          mode: inst.plan.mode,
          ...(inst.plan.created_by ? { created_by: inst.plan.created_by.instance } : {}),
          health,
          ...(inst.plan.label ? { label: inst.plan.label } : {}),
          clones,
        };
      });
  }

  channelStatus(): ChannelStatus[] {
    if (!this.plan || !this.broker) return [];
    const counters = new Map(this.broker.counters().map((c) => [c.channel, c]));
    const ids = [...new Set([...this.plan.channels.map((c) => c.id), ...counters.keys()])].sort();
    const protocols = new Map(this.plan.channels.map((c) => [c.id, c.protocol]));
    for (const e of this.plan.exposures) protocols.set(`tcp:${e.host_port}->${e.instance}.${e.port}`, e.protocol);
    for (const e of this.plan.egresses ?? []) protocols.set(`egress:${e.name}`, e.protocol);
    return ids.map((id) => {
      const k = counters.get(id);
      return {
        id,
        protocol: protocols.get(id) ?? '',
        frames_forward: k?.frames_to_provider ?? 0,
        frames_backward: k?.frames_to_requirer ?? 0,
        bytes_forward: k?.bytes_to_provider ?? 0,
        bytes_backward: k?.bytes_to_requirer ?? 0,
        violations: k?.violations_total ?? 0,
        recent_violations: this.recentByChannel.get(id) ?? [],
      };
    });
  }

  exposureStatus(): ExposureStatus[] {
    const counters = new Map((this.broker?.counters() ?? []).map((c) => [c.channel, c]));
    return this.exposures.map((e) => {
      const k = counters.get(`tcp:${e.host_port}->${e.instance}.${e.port}`);
      return { ...e, listening: this.broker !== null, connections_total: k?.connections?.total ?? 0, connections_open: k?.connections?.open ?? 0 };
    });
  }

  /** The links to the deployment's other hosts (none on one host). */
  linkStatus(): LinkStatus[] {
    return this.broker?.linkStatus?.() ?? [];
  }

  /** The plan's egresses with the broker's counters of the connections it opened for them. */
  egressStatus(): EgressStatus[] {
    const counters = new Map((this.broker?.counters() ?? []).map((c) => [c.channel, c]));
    return (this.plan?.egresses ?? []).map((e) => {
      const k = counters.get(`egress:${e.name}`);
      const d = e.destination;
      return {
        name: e.name,
        instance: e.instance,
        port: e.port,
        destination: `${d.scheme}://${d.host.includes(':') ? `[${d.host}]` : d.host}:${d.port}${d.path ?? ''}`,
        connections_open: k?.connections?.open ?? 0,
        connections_total: k?.connections?.total ?? 0,
        connections_refused: k?.connections?.refused ?? 0,
        timed_out: k?.connections?.timed_out ?? 0,
        violations: k?.violations_total ?? 0,
      };
    });
  }

  unwiredViolations(): ViolationRecord[] {
    return [...this.unwired];
  }

  accelerator(): { name: string; note?: string } | undefined {
    return this.accel ?? undefined;
  }
}

/** What the broker is built from: when it is unchanged, the broker (and its counters) is kept. */
function brokerKey(plan: Plan): string {
  const key = [plan.channels, plan.exposures, plan.schemas, plan.instances.map((i) => [i.id, i.mode, i.ports, i.max_sessions ?? null])];
  // The far ends of channels to other hosts, and where they run, are the broker's and its links' too.
  if (plan.remote_instances?.length) key.push(plan.remote_instances.map((i) => [i.id, i.target ?? null, i.mode, i.ports, i.max_sessions ?? null]));
  return JSON.stringify(key);
}

/**
 * The directory name of an instance's clones (before `.<index>`): the id
 * itself, or for a long id a prefix and a hash, so that the unix sockets
 * inside stay under the 108-byte limit of a socket path.
 */
export function cloneDirBase(id: string): string {
  if (id.length <= 32) return id;
  return `${id.slice(0, 20)}~${createHash('sha256').update(id).digest('hex').slice(0, 8)}`;
}

/**
 * The clone index a directory under `clones/` holds for instance `id`:
 * `<base>.<index>` as forked, `<base>.<index>.r<tag>` as restored from a
 * checkpoint (started beside the clone it replaces); null for another's.
 */
export function cloneIndexOfDir(id: string, name: string): number | null {
  const base = cloneDirBase(id);
  if (!name.startsWith(base + '.')) return null;
  const m = /^(\d+)(?:\.r[0-9a-f]+)?$/.exec(name.slice(base.length + 1));
  return m ? Number(m[1]) : null;
}

/** The directory name of a clone restored from a checkpoint (see cloneIndexOfDir). */
export function restoredCloneDirName(id: string, index: number, tag: string): string {
  return `${cloneDirBase(id)}.${index}.r${tag}`;
}

/**
 * How an exit reads in `status`. When the guest agent reported the program's
 * exit status, that is what happened: QEMU is then killed by the supervisor
 * (the program ending ends the clone), so its own signal says nothing.
 */
export function describeExit(info: ExitInfo): string {
  const why = info.program_code !== undefined ? `program exited with status ${info.program_code}` : info.signal ? `killed by ${info.signal}` : `QEMU exit code ${info.code}`;
  return info.helper ? `${why}: ${info.helper}` : why;
}

/**
 * Whether an exit is a failure for `restart on-failure`: the program's own
 * status when the guest reported one, else QEMU ending by a signal or with a
 * non-zero code (the guest crashed, or was killed from outside).
 */
export function exitFailed(info: ExitInfo): boolean {
  if (info.program_code !== undefined) return info.program_code !== 0;
  return info.signal !== null || (info.code !== null && info.code !== 0);
}

export type { BackendEvent };

/**
 * The supervisor's default restart backoff (spec/lifecycle.md): 250 ms
 * doubling up to 10 s per consecutive restart, reset by 30 s of running.
 * Exported for the KubeVirt broker, which restarts a guest's program by the
 * same rule.
 */
export const RESTART_BACKOFF: Readonly<{ backoffMs: number; maxBackoffMs: number; stableAfterMs: number }> = { backoffMs: 250, maxBackoffMs: 10_000, stableAfterMs: 30_000 };

/**
 * Whether an instance's restart policy allows another restart after an exit
 * (`failure`: the exit was a failure), given the restarts counted so far:
 * `always` up to max_retries (0: without limit), `on_failure` only after a
 * failure and up to max_retries, `never` not at all.
 */
export function restartAllowed(restart: PlanInstance['restart'], failure: boolean, restarts: number): boolean {
  const { policy, max_retries } = restart;
  return policy === 'always' ? max_retries <= 0 || restarts < max_retries : policy === 'on_failure' ? failure && restarts < max_retries : false;
}

/** The plan of a created clone: the instance with the parameters its creator chose, in its parameters and program environment. */
function withParams(p: PlanInstance, params: Record<string, unknown>): PlanInstance {
  const env = { ...p.program.env };
  for (const [name, v] of Object.entries(params)) env[paramEnvName(name)] = paramEnv(v);
  return { ...p, params: { ...p.params, ...(params as PlanInstance['params']) }, program: { ...p.program, env } };
}
