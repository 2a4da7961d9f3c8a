// The static resource estimate and the checks against the target host and the
// `budget` rules. spec/policy.md documents the model and where its constants
// come from.

import type { BudgetRule, Span } from '@mcl/language';
import { Codes } from '@mcl/language';
import type { PlanInstance, PlanResources, PlanTarget } from '@mcl/plan';
import { addCheck, relatedFor, report, targetRef, type Context, type Counterexample } from './context';
import { CAPABILITIES } from '../target/capabilities';
import { compareStrings } from './graph';
import type { ScopedRule } from './types';

const MiB = 1024 * 1024;

/**
 * Host memory of one QEMU process beyond its guest RAM (device model, page
 * tables, I/O buffers, the vhost and virtio-serial state), rounded up from the
 * resident size of an idle `qemu-system-x86_64 -machine q35,accel=kvm` on these
 * hosts (see spec/policy.md).
 */
export const VM_OVERHEAD_BYTES = 32 * MiB;

/** Share of guest memory an idle clone dirties after the fork (kernel and agent bookkeeping, the program's heap). */
export const IDLE_DIRTY_FRACTION = 0.1;

function count(value: number | undefined, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.floor(value) : fallback;
}

/**
 * How many clones of an instance can run at once: replicas at their count,
 * per-session instances at `max_sessions`, created instances at `max_instances`
 * (every factory at its bound).
 */
export function cloneCount(inst: PlanInstance): number {
  switch (inst.mode) {
    case 'created':
      return count(inst.max_instances, count(inst.created_by?.max, 1));
    case 'replicas':
      return count(inst.replicas, 1);
    case 'per_session':
      return count(inst.max_sessions, count(inst.replicas, 1));
    default:
      return 1;
  }
}

function memoryOf(inst: PlanInstance): number {
  return count(inst.memory_bytes, 0);
}

export function privateEstimate(memoryBytes: number): number {
  return Math.ceil(memoryBytes * IDLE_DIRTY_FRACTION) + VM_OVERHEAD_BYTES;
}

/** Resources of a set of instances: their templates once, plus every clone. */
export function estimate(ctx: Context, instances: readonly PlanInstance[]): PlanResources {
  const templates = new Map<string, number>();
  for (const t of ctx.input.templates ?? []) templates.set(t.id, count(t.memory_bytes, 0));
  const used = new Map<string, number>();
  let estimatedPrivate = 0;
  let fullyPrivate = 0;
  let vcpus = 0;
  for (const inst of instances) {
    const clones = cloneCount(inst);
    const mem = memoryOf(inst);
    // A template that the plan does not list still has a base image in memory of the instance's size.
    if (!used.has(inst.template)) used.set(inst.template, templates.get(inst.template) ?? mem);
    estimatedPrivate += clones * privateEstimate(mem);
    fullyPrivate += clones * (mem + VM_OVERHEAD_BYTES);
    vcpus += clones * count(inst.vcpus, 1);
  }
  let templateMemory = 0;
  for (const bytes of used.values()) templateMemory += bytes;
  // A backend whose clones share no pages (kubevirt) has no resident template
  // and every clone holds its whole memory: the estimate is the worst case.
  const backend = ctx.input.target?.backend;
  if (backend !== undefined && CAPABILITIES[backend]?.sharedMemory === false) {
    return { template_memory_bytes: 0, estimated_private_bytes: fullyPrivate, estimated_total_bytes: fullyPrivate, worst_case_bytes: fullyPrivate, committed_vcpus: vcpus };
  }
  return {
    template_memory_bytes: templateMemory,
    estimated_private_bytes: estimatedPrivate,
    estimated_total_bytes: templateMemory + estimatedPrivate,
    worst_case_bytes: templateMemory + fullyPrivate,
    committed_vcpus: vcpus,
  };
}

export function formatBytes(bytes: number): string {
  const units: [number, string][] = [
    [1024 ** 4, 'TiB'],
    [1024 ** 3, 'GiB'],
    [MiB, 'MiB'],
    [1024, 'KiB'],
  ];
  for (const [size, unit] of units) {
    if (bytes >= size) {
      const v = bytes / size;
      return `${Number.isInteger(v) ? v : v.toFixed(1)}${unit}`;
    }
  }
  return `${bytes}B`;
}

/** The instances that weigh most, as a counterexample: the first places to cut. */
function heaviest(instances: readonly PlanInstance[], weight: (i: PlanInstance) => number, describe: (i: PlanInstance) => string): Counterexample {
  // The first five in (weight descending, id ascending) order, kept by insertion into a list of at
  // most five while walking the instances once, instead of sorting all of them for five.
  const top: { i: PlanInstance; w: number }[] = [];
  const before = (i: PlanInstance, w: number, b: { i: PlanInstance; w: number }) => w > b.w || (w === b.w && compareStrings(i.id, b.i.id) < 0);
  for (const i of instances) {
    const w = weight(i);
    if (!(w > 0)) continue;
    if (top.length === 5 && !before(i, w, top[4])) continue;
    let k = top.length === 5 ? 4 : top.length;
    while (k > 0 && before(i, w, top[k - 1])) k--;
    top.splice(k, 0, { i, w });
    if (top.length > 5) top.pop();
  }
  return top.map(({ i }) => ({ instance: i.id, note: describe(i) }));
}

function memoryNote(i: PlanInstance): string {
  const clones = cloneCount(i);
  return `${clones} clone${clones === 1 ? '' : 's'} of ${formatBytes(memoryOf(i))}`;
}

function vcpuNote(i: PlanInstance): string {
  const clones = cloneCount(i);
  return `${clones} clone${clones === 1 ? '' : 's'} x ${count(i.vcpus, 1)} vCPU`;
}

/**
 * The target's capacity against the plan's estimate. A deploy to several targets is checked per
 * target over the instances placed there (check ids `resources:memory:NAME`), and the plan's
 * estimate is the sum of the targets' (each holds its own copy of the templates its instances use).
 */
export function checkTarget(ctx: Context): PlanResources {
  const targets = ctx.input.targets;
  if (!targets || targets.length < 2) return checkOneTarget(ctx, ctx.input.target, ctx.instances, '');
  const sum: PlanResources = { template_memory_bytes: 0, estimated_private_bytes: 0, estimated_total_bytes: 0, worst_case_bytes: 0, committed_vcpus: 0 };
  for (const t of targets) {
    const res = checkOneTarget(ctx, t, ctx.instances.filter((i) => i.target === t?.name), `:${t?.name}`);
    for (const k of Object.keys(sum) as (keyof PlanResources)[]) sum[k] += res[k];
  }
  return sum;
}

function checkOneTarget(ctx: Context, target: PlanTarget | undefined, instances: PlanInstance[], suffix: string): PlanResources {
  const res = estimate(ctx, instances);
  const hostMemory = count(target?.memory_bytes, 0);
  const name = target?.name ?? 'target';
  const on = target?.host ? ` on ${target.host}` : '';
  const where = targetRef(ctx);
  const figures = `estimated ${formatBytes(res.estimated_total_bytes)} (templates ${formatBytes(res.template_memory_bytes)} + private ${formatBytes(res.estimated_private_bytes)}), worst case ${formatBytes(res.worst_case_bytes)}, host ${formatBytes(hostMemory)}`;
  const memWeight = (i: PlanInstance): number => cloneCount(i) * memoryOf(i);
  if (res.estimated_total_bytes > hostMemory) {
    const steps = heaviest(instances, memWeight, memoryNote);
    addCheck(ctx, { id: `resources:memory${suffix}`, kind: 'resources', status: 'fail', summary: `Memory does not fit target \`${name}\`: ${figures}.`, counterexample: steps });
    report(ctx, {
      code: Codes.MemoryExceedsHost,
      message: `The plan needs an estimated ${formatBytes(res.estimated_total_bytes)} of memory, more than the ${formatBytes(hostMemory)} of target \`${name}\`${on}.`,
      file: where.file,
      span: where.span,
      hint: 'Lower the memory or the number of clones of the largest instances (listed below), or deploy to a larger target.',
      related: relatedFor(ctx, steps),
    });
  } else if (res.worst_case_bytes > hostMemory) {
    const steps = heaviest(instances, memWeight, memoryNote);
    addCheck(ctx, { id: `resources:memory${suffix}`, kind: 'resources', status: 'warn', summary: `Memory fits target \`${name}\` only while clones share most pages: ${figures}.`, counterexample: steps });
    report(ctx, {
      code: Codes.WorstCaseMemoryExceedsHost,
      message: `If every clone dirtied all its memory the plan would need ${formatBytes(res.worst_case_bytes)}, more than the ${formatBytes(hostMemory)} of target \`${name}\` (estimated use: ${formatBytes(res.estimated_total_bytes)}).`,
      file: where.file,
      span: where.span,
      hint: 'This is fine for mostly idle clones; lower memory or clone counts if the guests fill their memory.',
      related: relatedFor(ctx, steps),
    });
  } else {
    addCheck(ctx, { id: `resources:memory${suffix}`, kind: 'resources', status: 'pass', summary: `Memory fits target \`${name}\`: ${figures}.` });
  }
  const hostVcpus = count(target?.vcpus, 0);
  const overcommit = typeof target?.vcpu_overcommit === 'number' && target.vcpu_overcommit > 0 ? target.vcpu_overcommit : 1;
  const allowed = hostVcpus * overcommit;
  const vcpuFigures = `${res.committed_vcpus} committed, ${hostVcpus} on the host x overcommit ${overcommit} = ${allowed}`;
  if (res.committed_vcpus > allowed) {
    const steps = heaviest(instances, (i) => cloneCount(i) * count(i.vcpus, 1), vcpuNote);
    addCheck(ctx, { id: `resources:vcpus${suffix}`, kind: 'resources', status: 'fail', summary: `vCPUs exceed target \`${name}\`: ${vcpuFigures}.`, counterexample: steps });
    report(ctx, {
      code: Codes.VcpusExceedHost,
      message: `The plan commits ${res.committed_vcpus} vCPUs, more than the ${allowed} target \`${name}\`${on} allows (${hostVcpus} vCPUs x overcommit ${overcommit}).`,
      file: where.file,
      span: where.span,
      hint: 'Lower the vCPUs or the number of clones of the instances listed below, or raise the target\'s `overcommit`.',
      related: relatedFor(ctx, steps),
    });
  } else {
    addCheck(ctx, { id: `resources:vcpus${suffix}`, kind: 'resources', status: 'pass', summary: `vCPUs fit target \`${name}\`: ${vcpuFigures}.` });
  }
  return res;
}

/**
 * The instances at or below `scope` (the instance `scope` itself and every id
 * starting with `scope.`). `instances` is sorted by id, so they form one
 * contiguous run: ids starting with `scope.` sort between `scope.` and
 * `scope/` ('/' follows '.'), with `scope` itself just before. A binary search
 * finds the run, so a system with many `budget` rules does not rescan every
 * instance for each rule.
 */
export function instancesUnder(instances: readonly PlanInstance[], scope: string): PlanInstance[] {
  const lowerBound = (key: string): number => {
    let lo = 0;
    let hi = instances.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (instances[mid].id < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const prefix = `${scope}.`;
  const out: PlanInstance[] = [];
  for (let i = lowerBound(scope), end = lowerBound(`${scope}/`); i < end; i++) {
    const inst = instances[i];
    if (inst.id === scope || inst.id.startsWith(prefix)) out.push(inst);
  }
  return out;
}

export function checkBudget(ctx: Context, sr: ScopedRule, rule: BudgetRule): void {
  const id = `resources:budget:${rule.resource}${sr.scope === '' ? '' : `:${sr.scope}`}`;
  const system = sr.scope === '' ? 'the root system' : `\`${sr.scope}\``;
  // Widened so that a value of an unexpected kind from a recovering parser is handled too.
  const value = rule.value as { kind: string; span: Span; raw?: string };
  const wanted = rule.resource === 'memory' ? 'Size' : 'Int';
  if (value.kind !== wanted) {
    // A missing value was reported by the parser; a value of the wrong kind is reported here.
    if (value.kind !== 'MissingExpr') {
      report(ctx, {
        code: Codes.InvalidBudget,
        message:
          rule.resource === 'memory'
            ? `\`budget memory\` takes a size such as \`1GiB\`, not \`${value.raw ?? value.kind}\`.`
            : `\`budget vcpus\` takes a whole number of vCPUs, not \`${value.raw ?? value.kind}\`.`,
        file: sr.file,
        span: value.span,
        hint: rule.resource === 'memory' ? 'Write the size with its unit, e.g. `512MiB` or `2GiB`.' : 'Write a count such as `4`.',
      });
    }
    addCheck(ctx, { id, kind: 'resources', status: 'fail', summary: `The ${rule.resource} budget of ${system} has no valid value.` });
    return;
  }
  const literal = rule.value;
  const limit = literal.kind === 'Size' ? literal.bytes : literal.kind === 'Int' ? literal.value : 0;
  const members = sr.scope === '' ? ctx.instances : instancesUnder(ctx.instances, sr.scope);
  const res = estimate(ctx, members);
  if (rule.resource === 'memory') {
    const committed = members.reduce((sum, i) => sum + cloneCount(i) * memoryOf(i), 0);
    const figures = `${formatBytes(committed)} of guest memory committed (estimated host use ${formatBytes(res.estimated_total_bytes)}), budget ${formatBytes(limit)}`;
    if (committed <= limit) {
      addCheck(ctx, { id, kind: 'resources', status: 'pass', summary: `Memory of ${system} is within budget: ${figures}.` });
      return;
    }
    const steps = heaviest(members, (i) => cloneCount(i) * memoryOf(i), memoryNote);
    addCheck(ctx, { id, kind: 'resources', status: 'fail', summary: `Memory of ${system} exceeds its budget: ${figures}.`, counterexample: steps });
    report(ctx, {
      code: Codes.MemoryBudgetExceeded,
      message: `${system === 'the root system' ? 'The root system' : `System ${system}`} commits ${formatBytes(committed)} of guest memory, over its budget of ${formatBytes(limit)}.`,
      file: sr.file,
      span: rule.span,
      hint: 'Lower the memory or the clone counts of the instances listed below, or raise the budget.',
      related: relatedFor(ctx, steps),
    });
    return;
  }
  const figures = `${res.committed_vcpus} vCPUs committed, budget ${limit}`;
  if (res.committed_vcpus <= limit) {
    addCheck(ctx, { id, kind: 'resources', status: 'pass', summary: `vCPUs of ${system} are within budget: ${figures}.` });
    return;
  }
  const steps = heaviest(members, (i) => cloneCount(i) * count(i.vcpus, 1), vcpuNote);
  addCheck(ctx, { id, kind: 'resources', status: 'fail', summary: `vCPUs of ${system} exceed the budget: ${figures}.`, counterexample: steps });
  report(ctx, {
    code: Codes.VcpuBudgetExceeded,
    message: `${system === 'the root system' ? 'The root system' : `System ${system}`} commits ${res.committed_vcpus} vCPUs, over its budget of ${limit}.`,
    file: sr.file,
    span: rule.span,
    hint: 'Lower the vCPUs or the clone counts of the instances listed below, or raise the budget.',
    related: relatedFor(ctx, steps),
  });
}
