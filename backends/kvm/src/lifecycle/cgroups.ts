// The plan's limits, enforced on the host: each clone's QEMU process in a
// cgroup with its vCPU and memory limits, under a parent cgroup per system
// with a `budget vcpus` / `budget memory`, under one cgroup per deployment.
//
//   <controller>/<the supervisor's own cgroup>/mcl-<token>/        the deployment (the root system's budget)
//     a/                                                             system `a` (its budget, when it has one)
//       job.0/                                                       clone 0 of instance `a.job`
//
// cgroup v2 where the host has it with the cpu and memory controllers
// delegated (`cpu.max`, `memory.max`), else the v1 `cpu` and `memory`
// hierarchies (`cpu.cfs_quota_us`, `memory.limit_in_bytes`). The cgroups are
// made under the supervisor's own cgroup (as a service manager delegates
// them), never elsewhere. A clone's memory limit is its guest memory plus
// QEMU's own overhead (QEMU_OVERHEAD_BYTES); a CPU limit is a quota of
// `vcpus` x the period. When no cgroup can be made, apply goes on and warns
// that limits are not enforced (`mclc doctor` says why).

import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { knownInstance, type Plan, type PlanInstance } from '@mcl/plan';

/** QEMU's memory beyond the guest's RAM (its code, device state, buffers), allowed on top of each clone's limit. */
export const QEMU_OVERHEAD_BYTES = 96 * 1024 * 1024;
/** Overrides QEMU_OVERHEAD_BYTES (in the environment of the apply that starts the supervisor), 0 to 4 GiB. */
export const QEMU_OVERHEAD_ENV = 'MCL_QEMU_OVERHEAD_BYTES';

function overhead(): number {
  const v = process.env[QEMU_OVERHEAD_ENV];
  const n = Number(v);
  return v && Number.isInteger(n) && n >= 0 && n <= 4 * 1024 ** 3 ? n : QEMU_OVERHEAD_BYTES;
}
const CPU_PERIOD_US = 100_000;

export interface CgroupSupport {
  version: 'v2' | 'v1' | 'none';
  /** The directories the deployment's cgroups are made under, per controller (v2: one for both). */
  cpu: string | null;
  memory: string | null;
  /** What is missing, when limits cannot be enforced (or only some). */
  missing: string[];
}

function writable(dir: string): boolean {
  try {
    const probe = join(dir, `mcl-probe-${process.pid}`);
    mkdirSync(probe);
    rmdirSync(probe);
    return true;
  } catch {
    return false;
  }
}

/** The supervisor's own cgroup per v1 controller and for v2 (`0::/path`), from /proc/self/cgroup. */
function ownCgroups(text: string): { v1: Map<string, string>; v2: string | null } {
  const v1 = new Map<string, string>();
  let v2: string | null = null;
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '0' && m[2] === '') v2 = m[3];
    for (const c of m[2].split(',')) if (c) v1.set(c, m[3]);
  }
  return { v1, v2 };
}

/** The mount points of cgroup file systems, from /proc/self/mounts. */
function cgroupMounts(text: string): { v2: string[]; v1: Map<string, string> } {
  const v2: string[] = [];
  const v1 = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [, mnt, type, opts] = line.split(' ');
    if (type === 'cgroup2') v2.push(mnt);
    else if (type === 'cgroup') for (const o of (opts ?? '').split(',')) if (o === 'cpu' || o === 'memory') v1.set(o, mnt);
  }
  return { v2, v1 };
}

/** A cgroup path under a mount, without a trailing slash. */
const under = (mnt: string, path: string | null | undefined) => join(mnt, path ?? '/').replace(/(.)\/+$/, '$1');

/** What this host offers: v2 with cpu and memory, else v1 cpu and memory, each only where we may make cgroups. */
export function detectCgroups(read: (p: string) => string = (p) => readFileSync(p, 'utf8'), canWrite: (d: string) => boolean = writable): CgroupSupport {
  let mounts: ReturnType<typeof cgroupMounts>;
  let own: ReturnType<typeof ownCgroups>;
  try {
    mounts = cgroupMounts(read('/proc/self/mounts'));
    own = ownCgroups(read('/proc/self/cgroup'));
  } catch (e) {
    return { version: 'none', cpu: null, memory: null, missing: [`cannot read /proc/self/mounts or /proc/self/cgroup: ${(e as Error).message}`] };
  }
  const missing: string[] = [];
  for (const mnt of mounts.v2) {
    const dir = under(mnt, own.v2);
    let controllers: string[] = [];
    try {
      controllers = read(join(dir, 'cgroup.controllers')).trim().split(/\s+/);
    } catch {
      continue;
    }
    if (controllers.includes('cpu') && controllers.includes('memory') && canWrite(dir)) return { version: 'v2', cpu: dir, memory: dir, missing: [] };
    missing.push(`cgroup v2 at ${mnt} has ${controllers.filter(Boolean).length ? `only the ${controllers.filter(Boolean).join(', ')} controller(s)` : 'no controllers'} here (cpu and memory are needed)`);
  }
  const v1dir = (c: 'cpu' | 'memory') => {
    const mnt = mounts.v1.get(c);
    if (!mnt) {
      missing.push(`no cgroup v1 ${c} hierarchy is mounted`);
      return null;
    }
    const dir = under(mnt, own.v1.get(c));
    if (!canWrite(dir)) {
      missing.push(`cannot make cgroups in ${dir} (run as root, or have the service manager delegate it)`);
      return null;
    }
    return dir;
  };
  const cpu = v1dir('cpu');
  const memory = v1dir('memory');
  return { version: cpu || memory ? 'v1' : 'none', cpu, memory, missing };
}

/** The system path of an instance (`a.b.job` -> `a/b`) and its leaf (`job`). */
function split(id: string): { systems: string[]; leaf: string } {
  const parts = id.split('.');
  return { systems: parts.slice(0, -1), leaf: parts[parts.length - 1] };
}

/** A cgroup name from a plan identifier: the ids are plain names already; anything else is replaced. */
const safe = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64) || '_';

export interface CgroupLimits {
  cpu_quota_us: number | null;
  memory_bytes: number | null;
}

/** The limits of every cgroup of a plan, by path below the deployment's cgroup ('' for the deployment itself). */
export function planLimits(plan: Plan): Map<string, CgroupLimits> {
  const out = new Map<string, CgroupLimits>();
  const clonesUnder = (scope: string) =>
    plan.instances
      .filter((i) => scope === '' || i.id.startsWith(`${scope}.`))
      .reduce((n, i) => n + (i.mode === 'per_session' ? Math.max(i.replicas, i.max_sessions ?? 1) : Math.max(1, i.replicas)), 0);
  for (const r of plan.policies?.rules ?? []) {
    if (r.kind !== 'budget') continue;
    const key = r.scope.split('.').filter(Boolean).map(safe).join('/');
    const l = out.get(key) ?? { cpu_quota_us: null, memory_bytes: null };
    if (r.resource === 'vcpus') l.cpu_quota_us = Math.max(1000, Math.round(r.value * CPU_PERIOD_US));
    else l.memory_bytes = r.value + overhead() * clonesUnder(r.scope);
    out.set(key, l);
  }
  return out;
}

export function cloneLimits(i: PlanInstance): CgroupLimits {
  return { cpu_quota_us: Math.max(1000, Math.round(i.vcpus * CPU_PERIOD_US)), memory_bytes: i.memory_bytes + overhead() };
}

/**
 * The deployment's cgroups. Every write is to a path below the deployment's
 * own directory; a failure is reported to `log` and never stops a fork.
 */
export class Cgroups {
  private plan: Plan | null = null;

  constructor(
    readonly support: CgroupSupport,
    /** The deployment's directory name (`mcl-<first 12 hex of the token>`). */
    private readonly name: string,
    private readonly log: (s: string) => void,
  ) {}

  get enforced(): boolean {
    return this.support.version !== 'none';
  }

  private base(ctrl: 'cpu' | 'memory'): string | null {
    const d = this.support[ctrl];
    return d ? join(d, this.name) : null;
  }

  private write(dir: string, file: string, value: string): void {
    try {
      writeFileSync(join(dir, file), value);
    } catch (e) {
      this.log(`cgroup: writing ${value.trim()} to ${join(dir, file)} failed: ${(e as Error).message}`);
    }
  }

  private limit(ctrl: 'cpu' | 'memory', dir: string, l: CgroupLimits): void {
    const v2 = this.support.version === 'v2';
    if (ctrl === 'cpu' && l.cpu_quota_us !== null) {
      if (v2) this.write(dir, 'cpu.max', `${l.cpu_quota_us} ${CPU_PERIOD_US}\n`);
      else {
        this.write(dir, 'cpu.cfs_period_us', `${CPU_PERIOD_US}\n`);
        this.write(dir, 'cpu.cfs_quota_us', `${l.cpu_quota_us}\n`);
      }
    }
    if (ctrl === 'memory' && l.memory_bytes !== null) {
      if (v2) {
        this.write(dir, 'memory.max', `${l.memory_bytes}\n`);
        this.write(dir, 'memory.swap.max', '0\n');
      } else this.write(dir, 'memory.limit_in_bytes', `${l.memory_bytes}\n`);
    }
  }

  /** Makes (or updates) the deployment's and the systems' cgroups with the plan's budgets. */
  apply(plan: Plan): void {
    this.plan = plan;
    const budgets = planLimits(plan);
    for (const ctrl of ['cpu', 'memory'] as const) {
      const base = this.base(ctrl);
      if (!base) continue;
      if (ctrl === 'cpu' || this.support.version === 'v1') this.mkdir(base, ctrl);
      for (const [key, l] of budgets) {
        const dir = key ? join(base, key) : base;
        this.mkdir(dir, ctrl);
        this.limit(ctrl, dir, l);
      }
    }
  }

  private mkdir(dir: string, ctrl: 'cpu' | 'memory'): void {
    if (existsSync(dir)) return;
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      this.log(`cgroup: cannot make ${dir}: ${(e as Error).message}`);
      return;
    }
    // v2: the controllers must be enabled for the children of every level.
    if (this.support.version === 'v2') this.write(dir, 'cgroup.subtree_control', '+cpu +memory\n');
    else if (ctrl === 'memory') this.write(dir, 'memory.use_hierarchy', '1\n');
  }

  /** The cgroup directory of a clone, per controller. */
  cloneDirs(instance: string, clone: number): { cpu: string | null; memory: string | null } {
    const { systems, leaf } = split(instance);
    const rel = [...systems.map(safe), `${safe(leaf)}.${clone}`].join('/');
    const at = (ctrl: 'cpu' | 'memory') => {
      const b = this.base(ctrl);
      return b ? join(b, rel) : null;
    };
    return { cpu: at('cpu'), memory: at('memory') };
  }

  /**
   * Puts a clone's QEMU process into its cgroups, with its limits; returns the directories used. The
   * instance is one of the plan's own, or one placed on another host whose clone was moved here
   * (`remote_instances`: a kept clone, spec/hosts.md), which gets the same limits as at home.
   */
  place(instance: string, clone: number, pid: number): string[] {
    const inst = this.plan && knownInstance(this.plan, instance);
    if (!inst || !this.enforced) return [];
    const dirs = this.cloneDirs(instance, clone);
    const used: string[] = [];
    const seen = new Set<string>();
    for (const ctrl of ['cpu', 'memory'] as const) {
      const dir = dirs[ctrl];
      if (!dir) continue;
      if (!seen.has(dir)) {
        this.mkdir(dir, ctrl);
        seen.add(dir);
      }
      // v1: the pages QEMU already touched move with it, so the limit counts them.
      if (ctrl === 'memory' && this.support.version === 'v1') this.write(dir, 'memory.move_charge_at_immigrate', '3\n');
      this.limit(ctrl, dir, cloneLimits(inst));
      this.write(dir, 'cgroup.procs', `${pid}\n`);
      used.push(dir);
    }
    return [...new Set(used)];
  }

  /** Whether the kernel's OOM killer acted in a clone's memory cgroup. */
  oomKilled(instance: string, clone: number): boolean {
    const dir = this.cloneDirs(instance, clone).memory;
    if (!dir) return false;
    try {
      if (this.support.version === 'v2') return /^oom_kill [1-9]/m.test(readFileSync(join(dir, 'memory.events'), 'utf8'));
      return /^oom_kill [1-9]/m.test(readFileSync(join(dir, 'memory.oom_control'), 'utf8'));
    } catch {
      return false;
    }
  }

  /** The memory limit of a clone's cgroup in bytes, when it has one. */
  memoryLimit(instance: string, clone: number): number | null {
    const dir = this.cloneDirs(instance, clone).memory;
    if (!dir) return null;
    try {
      const v = readFileSync(join(dir, this.support.version === 'v2' ? 'memory.max' : 'memory.limit_in_bytes'), 'utf8').trim();
      return /^\d+$/.test(v) ? Number(v) : null;
    } catch {
      return null;
    }
  }

  /** Removes a clone's cgroups once its process is gone (a cgroup with processes cannot be removed). */
  release(instance: string, clone: number): void {
    const dirs = this.cloneDirs(instance, clone);
    for (const d of new Set([dirs.cpu, dirs.memory])) if (d) removeTree(d);
  }

  /**
   * Removes every cgroup of the deployment, waiting up to `waitMs` for the
   * processes in them to be gone (a killed QEMU leaves its cgroup only once
   * it has been reaped, and nothing removes the cgroups after the supervisor).
   */
  async releaseAll(waitMs = 3_000): Promise<void> {
    const bases = (['cpu', 'memory'] as const).map((c) => this.base(c)).filter((b): b is string => b !== null);
    const end = Date.now() + waitMs;
    for (;;) {
      for (const b of bases) removeTree(b);
      if (!bases.some((b) => existsSync(b)) || Date.now() > end) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** The name of a deployment's cgroup, from its token. */
export function cgroupName(token: string): string {
  return `mcl-${token.slice(0, 12)}`;
}

/** rmdir of a cgroup tree, deepest first (cgroup directories hold only control files, which rmdir ignores). */
function removeTree(dir: string): void {
  try {
    if (!statSync(dir).isDirectory()) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeTree(join(dir, e.name));
    rmdirSync(dir);
  } catch {
    // Still in use (a process not yet gone), or already removed.
  }
}
