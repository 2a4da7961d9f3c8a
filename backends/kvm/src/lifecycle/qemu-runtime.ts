// The real GuestRuntime: images, templates and copy-on-write clones from the
// VM substrate (../vm). Each clone gets its sockets, pid file and console log
// in the directory the supervisor gives it, so a later supervisor can find and
// reap it by its pid file.
//
// Forks go through a ClonePool per template when the request names a spare
// directory: QEMU processes started ahead of time wait there (one
// subdirectory with a pid file each, which a later supervisor reaps like a
// clone's), and a fork only renames one's sockets to the clone's directory
// and loads the state. The pool is filled after the first fork of a template
// and refilled after every fork; `release()` kills what waits. The pool forks
// its processes from a zygote of the template where it can (../vm/zygote.ts),
// so the clones share QEMU's relocated pages; with MCL_POOL_SIZE=0 nothing
// waits but clones are still forked from the zygote.

import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { paramEnv, paramEnvName, type Plan, type PlanInstance } from '@mcl/plan';
import { processStartTime } from '@mcl/plan/state-store';
import { buildImage, ClonePool, ensureTemplate, forkClone, probeAccelerator, zygoteEnabled } from '../vm/index';
import type { AccelName, BuiltImage, Clone, Template } from '../vm/index';
import type { EventSink } from './events';
import type { MigrationMode } from '@mcl/plan/backend';
import type { CloneCheckpointFiles, CloneCheckpointing, CloneHandle, CloneRequest, ExitInfo, GuestProbe, GuestRuntime, HelperProcess, IncomingHandle, RestoreRequest } from './guest-runtime';
import { startIncoming } from '../vm/migrate';
import { receivePages } from '../vm/migrate-pages';
import { captureRam, PAGE_SIZE, parseRamFile, restoreClone, saveDeviceState, templateBuildId, writeRamFile, fileDigest } from '../vm/checkpoint';

export interface VmRuntimeOptions {
  cacheDir?: string;
  /** Bound for a template's cold boot; default 120 s (TCG on a busy host is slow). */
  bootTimeoutMs?: number;
  /**
   * QEMU processes kept started per template for the next forks; default
   * `$MCL_POOL_SIZE`, else 1. 0 starts each clone's process when it is
   * forked (from the template's zygote, unless MCL_QEMU_ZYGOTE=0).
   */
  poolSize?: number;
  /** Diagnostics (a pooled process that failed to start). */
  log?: (line: string) => void;
}

function defaultPoolSize(): number {
  const n = Number(process.env.MCL_POOL_SIZE);
  return process.env.MCL_POOL_SIZE !== undefined && Number.isInteger(n) && n >= 0 ? n : 1;
}

export class QemuRuntime implements GuestRuntime {
  private accel: AccelName | null = null;
  private readonly images = new Map<string, Promise<BuiltImage>>();
  private readonly templates = new Map<string, Template>();
  /** By template key; each pool's processes live in the spare directory it was created for. */
  private readonly pools = new Map<string, ClonePool>();
  private plan: Plan | null = null;
  /** Template build ids by state file (see templateBuild). */
  private readonly builds = new Map<string, string>();

  constructor(private readonly opts: VmRuntimeOptions = {}) {}

  async accelerator(): Promise<{ name: string; note?: string }> {
    const p = await probeAccelerator({ cacheDir: this.opts.cacheDir });
    this.accel = p.accel;
    return p.accel === 'kvm' ? { name: 'kvm' } : { name: 'tcg', note: p.reason };
  }

  async prepare(plan: Plan, templateIds: readonly string[], emit: EventSink): Promise<void> {
    this.plan = plan;
    // Processes waiting for a template the new plan no longer has would wait forever.
    const keys = new Set(plan.templates.map((t) => templateKey(plan, t.id)));
    const unused = [...this.pools.keys()].filter((k) => !keys.has(k));
    const closing = unused.map((k) => this.pools.get(k)!.close());
    for (const k of unused) this.pools.delete(k);
    await Promise.all(closing);
    for (const id of templateIds) {
      const t = plan.templates.find((x) => x.id === id);
      if (!t) throw new Error(`the plan has no template ${id}`);
      const key = templateKey(plan, id);
      if (this.templates.has(key)) continue;
      const img = plan.images.find((i) => i.name === t.image);
      if (!img) throw new Error(`the plan has no image ${t.image} (used by template ${id})`);
      let built = this.images.get(img.digest);
      if (!built) {
        emit({ type: 'image', image: img.name, action: 'start', message: `building image ${img.name}` });
        built = buildImage({ name: img.name, kernel: img.kernel, modules: img.modules, files: img.files }, { cacheDir: this.opts.cacheDir });
        this.images.set(img.digest, built);
        built.catch(() => this.images.delete(img.digest));
      }
      const image = await built;
      emit({ type: 'image', image: img.name, action: image.cached ? 'cached' : 'built', elapsed_ms: image.elapsedMs, message: `image ${img.name} ${image.cached ? 'cached' : `built in ${image.elapsedMs} ms`}` });
      emit({ type: 'template', template: id, action: 'start', message: `template ${id}` });
      const tpl = await ensureTemplate(
        { id, image, memoryBytes: t.memory_bytes, vcpus: t.vcpus, portSlots: t.port_slots, ...(this.accel ? { accel: this.accel } : {}) },
        { cacheDir: this.opts.cacheDir, bootTimeoutMs: this.opts.bootTimeoutMs ?? 120_000 },
      );
      this.templates.set(key, tpl);
      emit({
        type: 'template',
        template: id,
        action: tpl.cached ? 'cached' : 'booted',
        elapsed_ms: tpl.bootMs,
        message: tpl.cached ? `template ${id} cached` : `template ${id} booted in ${tpl.bootMs} ms and saved in ${tpl.saveMs} ms`,
      });
    }
  }

  async fork(req: CloneRequest): Promise<CloneHandle> {
    const plan = this.plan;
    if (!plan) throw new Error('fork before prepare');
    let tpl = this.templates.get(templateKey(plan, req.instance.template));
    if (!tpl) {
      await this.prepare(plan, [req.instance.template], () => undefined);
      tpl = this.templates.get(templateKey(plan, req.instance.template))!;
    }
    const { options, portSockets, consoleLog } = cloneOptions(req);
    const pool = req.spareDir ? this.poolFor(templateKey(plan, req.instance.template), tpl, req.spareDir) : null;
    const clone = pool ? await pool.take(options) : await forkClone(tpl, options);
    const identify = () =>
      clone.sendIdentity(
        { instanceId: req.instance.id, clone: req.index, ports: req.instance.ports.map((p) => ({ name: p.name, slot: p.slot })), program: programFor(req.instance, req.index) },
        req.readyTimeoutMs,
      );
    try {
      if (!req.paused) await identify();
    } catch (e) {
      await clone.kill();
      throw e;
    }
    return new VmClone(clone, portSockets, consoleLog, identify);
  }

  templateBuild(plan: Plan, templateId: string): { key: string; build: string } | null {
    const tpl = this.templates.get(templateKey(plan, templateId));
    if (!tpl) return null;
    let build = this.builds.get(tpl.statePath);
    if (!build) {
      build = templateBuildId(tpl);
      this.builds.set(tpl.statePath, build);
    }
    return { key: tpl.key, build };
  }

  async restore(req: RestoreRequest): Promise<CloneHandle> {
    const plan = this.plan;
    const tpl = plan && this.templates.get(templateKey(plan, req.instance.template));
    if (!tpl) throw new Error(`restore of ${req.instance.id} before its template ${req.instance.template} was prepared`);
    const { options, portSockets, consoleLog } = cloneOptions(req);
    const ram = await parseRamFile(req.ram, req.ramName, tpl.spec.memoryBytes / PAGE_SIZE);
    // QEMU reads the device state from a file: the verified bytes go into the clone's own directory, which this
    // process created, rather than QEMU reading the checkpoint directory after the check.
    const devFile = join(req.dir, 'restore.dev');
    writeFileSync(devFile, req.deviceState, { mode: 0o600, flag: 'wx' });
    const clone = await restoreClone(tpl, options, devFile, ram);
    // The guest program runs already (it is part of the restored guest): continuing is all there is to do.
    return new VmClone(clone, portSockets, consoleLog, async () => undefined);
  }

  async incoming(req: CloneRequest, mode: MigrationMode, incomingSocket: string): Promise<IncomingHandle> {
    const plan = this.plan;
    const tpl = plan && this.templates.get(templateKey(plan, req.instance.template));
    if (!tpl) throw new Error(`a moving clone of ${req.instance.id} before its template ${req.instance.template} was prepared`);
    const { options, portSockets, consoleLog } = cloneOptions(req);
    // The guest program runs already (it moves with the guest): continuing is all its handle's resume does.
    const noIdentity = async () => undefined;
    let live: VmClone | null = null;
    // Once the guest runs, its handle knows more of its exit (the program's status).
    const exitOf = (x: { code: number | null; signal: string | null }) => (live ? live.exited : { code: x.code, signal: x.signal });
    if (mode === 'precopy') {
      const d = await startIncoming(tpl, options, incomingSocket);
      return {
        pid: d.q.pid,
        portSockets,
        loaded: d.loaded,
        exited: d.q.exited.then(exitOf),
        finish: async () => (live = new VmClone(await d.finish(), portSockets, consoleLog, noIdentity)),
        kill: () => (live ? live.stop() : d.abort()),
      };
    }
    const r = await receivePages(tpl, options, incomingSocket);
    return {
      pid: r.q.pid,
      portSockets,
      loaded: r.loaded.then(() => undefined),
      exited: r.q.exited.then(exitOf),
      finish: async () => {
        const c = await r.loaded;
        await c.resume();
        return (live = new VmClone(c, portSockets, consoleLog, noIdentity));
      },
      kill: async () => {
        r.close();
        r.q.kill('SIGKILL');
        await r.q.exited;
      },
    };
  }

  /** The zygote and the waiting processes of every pool. */
  async helpers(): Promise<HelperProcess[]> {
    const out: HelperProcess[] = [];
    for (const pool of this.pools.values()) {
      const template = pool.template.spec.id;
      const zygote = await pool.zygotePid();
      if (zygote !== null) out.push({ role: 'zygote', template, pid: zygote });
      for (const pid of pool.pids()) out.push({ role: 'waiting', template, pid });
    }
    return out;
  }

  /** Kills the QEMU processes waiting in the pools. Later forks start new pools. */
  async release(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close()));
  }

  private poolFor(key: string, tpl: Template, dir: string): ClonePool | null {
    const size = this.opts.poolSize ?? defaultPoolSize();
    // A pool of size 0 still forks its clones from the template's zygote.
    if (size <= 0 && !zygoteEnabled()) return null;
    let pool = this.pools.get(key);
    // A template rebuilt under the same key (its files were gone) needs processes started from the new files.
    if (pool && (pool.template !== tpl || pool.dir !== dir)) {
      void pool.close();
      pool = undefined;
    }
    if (!pool) {
      pool = new ClonePool(tpl, { dir, size, cacheDir: this.opts.cacheDir, onError: (e) => this.opts.log?.(`template ${tpl.id}: ${e.message}`) });
      this.pools.set(key, pool);
    }
    return pool;
  }
}

/** The clone options of a fork or restore request: sockets, logs and pid file in the clone's directory. */
function cloneOptions(req: CloneRequest) {
  const slots = Math.max(0, ...req.instance.ports.map((p) => p.slot));
  const dataPortSockets: (string | null)[] = Array.from({ length: slots }, () => null);
  const portSockets: Record<string, string> = {};
  for (const p of req.instance.ports) {
    const path = join(req.dir, `p${p.slot}.sock`);
    dataPortSockets[p.slot - 1] = path;
    portSockets[p.name] = path;
  }
  const consoleLog = join(req.dir, 'console.log');
  const options = {
    name: `${req.instance.id}#${req.index}`,
    controlSocket: join(req.dir, 'ctl.sock'),
    qmpSocket: join(req.dir, 'qmp.sock'),
    dataPortSockets,
    logFile: consoleLog,
    consoleSocket: join(req.dir, 'con.sock'),
    ...(req.consoleHeader ? { consoleHeader: req.consoleHeader } : {}),
    pidFile: join(req.dir, 'qemu.pid'),
    readyTimeoutMs: req.readyTimeoutMs,
    paused: !!req.paused,
  };
  return { options, portSockets, consoleLog };
}

/** Template files are shared by id; two plans may use the same id for the same spec. */
function templateKey(plan: Plan, id: string): string {
  const t = plan.templates.find((x) => x.id === id);
  const img = plan.images.find((i) => i.name === t?.image);
  return `${id}:${img?.digest ?? ''}`;
}

/**
 * The program with the instance's parameters in its environment, so a guest
 * script reads `$MCL_PARAM_<name>` (canonical JSON for non-string values, as
 * the compiler and a created instance write it: `paramEnv`), and its
 * instance id and clone index in `$MCL_INSTANCE` and `$MCL_CLONE`. The plan's
 * own env wins on a clash.
 */
export function programFor(inst: PlanInstance, clone = 0): PlanInstance['program'] {
  const env: Record<string, string> = { MCL_INSTANCE: inst.id, MCL_CLONE: String(clone) };
  for (const [k, v] of Object.entries(inst.params)) env[paramEnvName(k)] = paramEnv(v);
  return { ...inst.program, env: { ...env, ...inst.program.env } };
}

class VmClone implements CloneHandle {
  readonly pid: number;
  readonly startTime: number | null;
  readonly exited: Promise<ExitInfo>;
  private programCode: number | undefined;

  /** The QEMU clone itself, for moving it to another host (migrate-out.ts). */
  get migratable(): Clone {
    return this.clone;
  }

  constructor(
    private readonly clone: Clone,
    readonly portSockets: Record<string, string>,
    readonly consoleLog: string,
    private readonly identify: () => Promise<unknown>,
  ) {
    this.pid = clone.pid;
    this.startTime = processStartTime(clone.pid);
    // The program ending ends the clone: its exit status drives the restart policy. A program that ends at
    // once may have been reported before this handle exists (with the reply to its start): that counts too.
    const ended = (e: { status: number }) => {
      if (this.programCode !== undefined) return;
      this.programCode = e.status;
      void clone.kill();
    };
    clone.control.on('exit', ended);
    if (clone.control.programExit) ended(clone.control.programExit);
    this.exited = clone.exited.then((x) => ({
      code: x.code,
      signal: x.signal,
      ...(this.programCode !== undefined ? { program_code: this.programCode } : {}),
      ...(x.zygoteDied ? { helper: 'its QEMU zygote died' } : {}),
    }));
  }

  async resume(): Promise<void> {
    await this.clone.resume();
    await this.identify();
  }

  async stop(): Promise<void> {
    await this.clone.kill();
  }

  async probe(timeoutMs: number): Promise<GuestProbe> {
    // Both asked at once, each bounded: a hung QEMU answers neither, a hung guest only QMP.
    const [st, ping] = await Promise.all([
      this.clone.qmp.execute<{ status?: unknown }>('query-status', undefined, timeoutMs).catch(() => null),
      this.clone.control.closed ? null : this.clone.control.ping(timeoutMs).catch(() => null),
    ]);
    return { vcpu: typeof st?.status === 'string' ? st.status : null, agent_ms: typeof ping === 'number' ? ping : null };
  }

  readonly checkpoint: CloneCheckpointing = {
    pause: async () => {
      await this.clone.qmp.execute('stop');
    },
    capture: async (dir: string, name: string) => {
      const dev = join(dir, `${name}.dev`);
      const [ram] = await Promise.all([captureRam(this.clone.pid, this.clone.template), saveDeviceState(this.clone.qmp, dev)]);
      const template = this.clone.template;
      return async (): Promise<CloneCheckpointFiles> => {
        const r = await writeRamFile(join(dir, `${name}.ram`), ram, template);
        const d = await fileDigest(dev);
        return { device_state: { file: `${name}.dev`, ...d }, ram: { file: `${name}.ram`, sha256: r.sha256, bytes: r.bytes, pages: r.pages } };
      };
    },
    cont: async () => {
      await this.clone.qmp.execute('cont');
    },
  };
}
