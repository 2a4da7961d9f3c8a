// `mclc migrate INSTANCE[.CLONE] --to TARGET`: moves one running clone of a
// deployment placed on several hosts to another of its targets (spec/hosts.md,
// "Live migration"). The plan that was applied (`--plan FILE`) says the
// targets, their hosts and capacity, and where each instance is placed; each
// target's deployment is found as `apply` finds it (over SSH for a target with
// `host`, the workspace here for the one without) and its state read, so that
// everything is checked before any host is asked to change anything. Then:
//
//   1. the source host's link identity (the certificate of the key that stays
//      there, made or kept as `apply` does for the links),
//   2. `migrate-in` on the destination: a paused QEMU waiting for the clone,
//      listening on the destination's address and accepting only that
//      certificate; it answers with its port and its own certificate,
//   3. `migrate-out` on the source: the move itself, its progress streamed
//      back as events, its figures as the result.
//
// Both run through the same remote runner as every other command over several
// hosts (remote-lifecycle.ts), or this machine's backend for the target
// without `host` (links.ts, localBackendStep).

import { instanceTargets, knownInstance, planPart, type DeploymentState, type Plan, type PlanInstance, type PlanTarget } from '@mcl/plan';
import { LINK_MAX_PEM, MIGRATION_MODES, type BackendEvent, type MigrateInResult, type MigrateOutResult, type MigrationMode } from '@mcl/plan/backend';
import { cloneCount, privateEstimate } from '@mcl/compiler';
import { nativeSha256 } from '@mcl/compiler/node-host';
import { resolve } from 'node:path';
import { backendRow, loadBackend } from '../backends';
import type { Context } from '../context';
import { CliError, ExitCode, type ExitCodeValue } from '../exit';
import { formatBytes } from '../io';
import { readPlanDocument, readStateFile } from '../plan-file';
import { movedClones } from '../plan-render';
import { deploymentPaths, eventPrinter, verifyPlan, type LifecycleOptions } from './lifecycle';
import { linkAddress, localBackendStep, onTarget } from './links';

export interface MigrateOptions extends LifecycleOptions {
  to?: string;
  plan?: string;
  mode?: string;
}

/** What `mclc migrate` prints as its result: the source's figures and the destination's template build. */
export interface MigrateSummary extends MigrateOutResult {
  template_built: boolean;
  template_ms: number;
  /** From the first check to the end, ms (what the user waited). */
  elapsed_ms: number;
  /** Of which: reading the plan and the targets' states and checking them, and getting the destination ready (its template, its waiting QEMU), ms. */
  check_ms: number;
  prepare_ms: number;
}

/** A clone as messages name it (`db#0`), as status and apply name clones. */
const cloneName = (instance: string, clone: number) => `${instance}#${clone}`;

/** `target node1 (ssh://...)` or `target node1 (this machine)`, as apply's link steps name a host. */
function where(t: PlanTarget): string {
  return `target ${t.name}${t.host ? ` (${t.host})` : ' (this machine)'}`;
}

function listed(items: string[], max = 20): string {
  return items.slice(0, max).join(', ') + (items.length > max ? `, ... (${items.length - max} more)` : '');
}

/**
 * The instance and clone an argument names: an instance id (`db`, `shop.db`), optionally followed by
 * `.N`, `#N` or `[N]` for its clone. Instance ids are dotted paths, so `shop.1` is the instance
 * `shop.1` when the plan has one, and clone 1 of `shop` otherwise.
 */
export function parseCloneRef(ref: string, plan: Plan): { instance: PlanInstance; clone: number | undefined } {
  const byId = new Map(plan.instances.map((i) => [i.id, i]));
  const exact = byId.get(ref);
  if (exact) return { instance: exact, clone: undefined };
  const m = /^(.+?)(?:\.|#|\[)(\d{1,6})\]?$/.exec(ref);
  const closed = m && (ref.endsWith(']') === ref.includes('['));
  if (m && closed && byId.has(m[1])) return { instance: byId.get(m[1])!, clone: Number(m[2]) };
  const ids = plan.instances.map((i) => i.id);
  throw new CliError(
    `the plan has no instance \`${m && closed ? m[1] : ref}\``,
    ExitCode.Invalid,
    `Its instances are ${listed(ids)}. Name a clone as INSTANCE.N (e.g. ${ids[0] ?? 'db'}.0).`,
  );
}

/** The clone to move: the one named, or 0 when the instance has one clone; otherwise the user must say which. */
export function chooseClone(inst: PlanInstance, clone: number | undefined): number {
  const dynamic = inst.mode === 'per_session' || inst.mode === 'created';
  const n = cloneCount(inst);
  const known = Array.from({ length: Math.min(n, 50) }, (_, i) => `${inst.id}.${i}`);
  if (clone === undefined) {
    if (!dynamic && n === 1) return 0;
    throw new CliError(
      `${inst.id} has ${dynamic ? `clones made at run time (${inst.mode.replace('_', '-')}, up to ${n})` : `${n} clones`}: say which one to move`,
      ExitCode.Invalid,
      dynamic ? `Name one as ${inst.id}.N; \`mclc status\` lists the clones that run.` : `Name one of ${listed(known)}.`,
    );
  }
  if (!dynamic && clone >= n) {
    throw new CliError(`${inst.id} has no clone ${clone}`, ExitCode.Invalid, `Its clones are ${listed(known)}.`);
  }
  return clone;
}

/** A target's deployment state: over SSH for a target with `host`, the workspace's state file for the one without. */
async function targetState(ctx: Context, t: PlanTarget, o: MigrateOptions): Promise<DeploymentState | undefined> {
  try {
    if (t.host !== undefined) return await (await import('./remote-lifecycle')).remoteState(ctx, t.host);
    return readStateFile(deploymentPaths(ctx, { ...o, host: undefined }).stateFile, ctx.cwd, false);
  } catch (e) {
    if (e instanceof CliError) throw new CliError(`cannot read the state of ${where(t)}: ${e.message}`, e.code, e.hint);
    throw e;
  }
}

/** The memory and vCPUs a target has room for beside what runs there (the placement's estimate, spec/policy.md). */
export interface Room {
  memory: { capacity: number; used: number; needed: number };
  vcpus: { capacity: number; used: number; needed: number };
}

/**
 * What moving one clone of `inst` to `dest` takes, and what `dest` already carries: the instances
 * the plan places there and the clones moved there, less the clones moved away from it, estimated
 * as the placement estimates them (each template once, each clone its private share).
 */
export function roomOn(plan: Plan, dest: PlanTarget, inst: PlanInstance, moved: { instance: string; clone: number; from: string; to: string }[]): Room {
  const where = instanceTargets(plan);
  const byId = new Map(plan.instances.map((i) => [i.id, i]));
  const templateBytes = new Map(plan.templates.map((t) => [t.id, t.memory_bytes]));
  const templates = new Set<string>();
  let memory = 0;
  let vcpus = 0;
  const add = (i: PlanInstance, clones: number) => {
    if (!templates.has(i.template)) {
      templates.add(i.template);
      memory += templateBytes.get(i.template) ?? i.memory_bytes;
    }
    memory += clones * privateEstimate(i.memory_bytes);
    vcpus += clones * Math.max(1, i.vcpus);
  };
  for (const i of plan.instances) if (where.get(i.id) === dest.name) add(i, cloneCount(i));
  for (const m of moved) {
    const i = byId.get(m.instance);
    if (!i) continue;
    if (m.to === dest.name) add(i, 1);
    if (m.from === dest.name) {
      memory -= privateEstimate(i.memory_bytes);
      vcpus -= Math.max(1, i.vcpus);
    }
  }
  const needed = (templates.has(inst.template) ? 0 : (templateBytes.get(inst.template) ?? inst.memory_bytes)) + privateEstimate(inst.memory_bytes);
  return {
    memory: { capacity: dest.memory_bytes, used: memory, needed },
    vcpus: { capacity: dest.vcpus * (dest.vcpu_overcommit || 1), used: vcpus, needed: Math.max(1, inst.vcpus) },
  };
}

/** The refusal when the destination has no room, saying what is used and what is free; undefined when it fits. */
export function roomError(dest: PlanTarget, clone: string, r: Room): CliError | undefined {
  const lacks: string[] = [];
  const freeMem = Math.max(0, r.memory.capacity - r.memory.used);
  const freeCpu = Math.max(0, r.vcpus.capacity - r.vcpus.used);
  if (r.memory.needed > freeMem) lacks.push(`memory: ${clone} needs ${formatBytes(r.memory.needed)}, ${formatBytes(r.memory.used)} of ${formatBytes(r.memory.capacity)} is used, ${formatBytes(freeMem)} free`);
  if (r.vcpus.needed > freeCpu) lacks.push(`vCPUs: ${clone} needs ${r.vcpus.needed}, ${r.vcpus.used} of ${r.vcpus.capacity} (vcpus x overcommit) are committed, ${freeCpu} free`);
  if (!lacks.length) return undefined;
  return new CliError(
    `${where(dest)} has no room for ${clone}: ${lacks.join('; ')}`,
    ExitCode.Invalid,
    `Move it to a target with room, or give target ${dest.name} more memory or vCPUs in the sources, plan and apply.`,
  );
}

/** Everything checked before any host is asked to change anything. */
export interface MigrationPlan {
  plan: Plan;
  instance: PlanInstance;
  clone: number;
  from: PlanTarget;
  to: PlanTarget;
  mode: MigrationMode;
  /** The address the source dials to reach the destination (the host of its target address, as the link uses it). */
  address: string;
  /** The digest of the destination's part of the plan, which its state records. */
  toDigest: string;
}

/** Reads the plan, the states of the targets, and refuses what cannot be moved, with what to do instead. */
export async function checkMigration(ctx: Context, ref: string, o: MigrateOptions): Promise<MigrationPlan> {
  if (!o.to) throw new CliError('mclc migrate needs --to TARGET: the target to move the clone to', ExitCode.Invalid, 'e.g. `mclc migrate db --to node2 --plan shop.plan`.');
  const mode = (o.mode ?? 'precopy') as MigrationMode;
  if (!(MIGRATION_MODES as readonly string[]).includes(mode)) throw new CliError(`--mode ${JSON.stringify(o.mode)} is not a way to move a clone`, ExitCode.Invalid, 'Use --mode precopy (QEMU\'s live migration, the default) or --mode pages (only the pages that differ from the template).');
  if (!o.plan) {
    throw new CliError(
      'mclc migrate needs the plan that was applied (--plan FILE): it says the targets, their hosts and where each instance is placed',
      ExitCode.Invalid,
      'Pass the file `mclc apply` applied, e.g. `mclc migrate db --to node2 --plan shop.plan`.',
    );
  }
  const path = resolve(ctx.cwd, o.plan);
  const document = readPlanDocument(path, ctx.cwd);
  verifyPlan(ctx, document.plan, document.text, path, undefined);
  const plan = document.plan;
  if (!plan.targets || plan.targets.length < 2) {
    throw new CliError(
      `the plan deploys ${plan.system} to one target (${plan.target.name}): there is no other host to move a clone to`,
      ExitCode.Invalid,
      'Deploy the system to several targets (`deploy S to [node1, node2]`, spec/hosts.md) to move clones between them.',
    );
  }
  const { instance, clone: asked } = parseCloneRef(ref, plan);
  const clone = chooseClone(instance, asked);
  const name = cloneName(instance.id, clone);
  const to = plan.targets.find((t) => t.name === o.to);
  if (!to) throw new CliError(`\`${o.to}\` is not a target of the deployment`, ExitCode.Invalid, `Its targets are ${plan.targets.map((t) => `${t.name}${t.host ? ` (${t.host})` : ''}`).join(', ')}.`);
  const from = plan.targets.find((t) => t.name === instanceTargets(plan).get(instance.id))!;
  // The backend of the deployment must be able to move clones at all: said before any host is reached.
  const row = backendRow(plan.target.backend, 'the plan targets');
  const backend = await loadBackend(row);
  if (!backend.migrateIn || !backend.migrateOut) {
    throw new CliError(
      `the ${row.title} backend cannot move a running clone to another host`,
      ExitCode.BackendFailure,
      `Live migration is built for the KVM backend (spec/hosts.md, "Live migration"); with ${row.title}, place the instance on ${to.name} in the sources, plan and apply (the instance is replaced there).`,
    );
  }
  if (from.name === to.name) throw new CliError(`${name} already runs on ${to.name}`, ExitCode.Invalid, `The plan places ${instance.id} on ${from.name}; name another target: ${plan.targets.filter((t) => t.name !== from.name).map((t) => t.name).join(', ')}.`);
  // The destination must be reachable by the source's link, as the link dials its peers.
  const address = linkAddress(to);
  if (address === undefined) throw new CliError(`target ${to.name} runs on the machine mclc runs on, which has no address that target ${from.name} could send the clone to`, ExitCode.Invalid, `Give target ${to.name} a host (\`host "ssh://..."\`) or a link address (\`link "10.0.5.2:7411"\`), or move the clone to a target that has one.`);
  // The destination runs the clone from its own part of the plan: the part must know the instance (an end of one of
  // its cross-host channels) and hold its template (an instance of the same template runs there).
  // Each part is cut and digested once: for a large plan that is the costly step of these checks.
  const parts = new Map([from, to].map((t) => [t.name, planPart(plan, t.name, nativeSha256)!]));
  const destPart = parts.get(to.name)!;
  const knows = knownInstance(destPart, instance.id) !== undefined;
  const hasTemplate = destPart.templates.some((t) => t.id === instance.template);
  if (!knows || !hasTemplate) {
    throw new CliError(
      `target ${to.name} cannot run ${name}: its part of the plan ${!knows ? `has no channel to ${instance.id}` : ''}${!knows && !hasTemplate ? ' and ' : ''}${!hasTemplate ? `runs no instance of its template ${instance.template}` : ''}`,
      ExitCode.Invalid,
      `A clone moves to a target where one of its channels ends and an instance of the same template runs (spec/hosts.md, "Live migration"); ${
        plan.targets.filter((t) => t.name !== from.name && t.name !== to.name).length ? 'move it to such a target, or ' : ''
      }place such an instance on ${to.name} in the sources, plan and apply.`,
    );
  }
  // Each target's state: the deployed plan must be this one, and the clone must not have moved already.
  const states = new Map<string, DeploymentState | undefined>();
  for (const t of plan.targets) states.set(t.name, await targetState(ctx, t, o));
  for (const t of [from, to]) {
    const st = states.get(t.name);
    const part = parts.get(t.name)!;
    if (!st || st.plan_digest === null) {
      throw new CliError(`nothing of this plan is deployed on ${where(t)}`, ExitCode.StaleOrLocked, `Apply the plan first: \`mclc apply ${o.plan}\`.`);
    }
    if (st.plan_digest !== part.digests.plan) {
      throw new CliError(
        `${where(t)} runs another plan than ${o.plan} (its part ${st.plan_digest.slice(0, 12)}, this plan's ${part.digests.plan.slice(0, 12)})`,
        ExitCode.StaleOrLocked,
        'Pass the plan that was applied last, or plan and apply again before moving clones.',
      );
    }
  }
  const moved = movedClones(states);
  const already = moved.find((m) => m.instance === instance.id && m.clone === clone);
  if (already) {
    if (already.to === to.name) throw new CliError(`${name} already runs on ${to.name} (moved by mclc migrate at ${already.at})`, ExitCode.Invalid, `See \`mclc status\` of ${where(from)}.`);
    throw new CliError(
      `${name} was moved to ${already.to} already (at ${already.at}); a clone is moved from its home target (${from.name}) only`,
      ExitCode.Invalid,
      `Bring it home first with \`mclc apply ${o.plan} --replace ${instance.id}\` (it starts again on ${from.name}), then move it.`,
    );
  }
  const refusal = roomError(to, name, roomOn(plan, to, instance, moved));
  if (refusal) throw refusal;
  return { plan, instance, clone, from, to, mode, address, toDigest: destPart.digests.plan };
}

/** A step's backend is not refused again on a host: checkMigration said before any host was reached whether it can move clones. */
const noRefusal = (): undefined => undefined;

export async function migrateCommand(ctx: Context, ref: string, o: MigrateOptions): Promise<ExitCodeValue> {
  const started = Date.now();
  try {
    return await migrate(ctx, ref, o, started);
  } catch (e) {
    // In --json mode the failure is a line too, as the other lifecycle commands print theirs.
    if (o.json && e instanceof CliError) ctx.out(JSON.stringify({ type: 'error', message: e.message, hint: e.hint ?? null }) + '\n');
    throw e;
  }
}

async function migrate(ctx: Context, ref: string, o: MigrateOptions, started: number): Promise<ExitCodeValue> {
  const m = await checkMigration(ctx, ref, o);
  const checked = Date.now();
  const { instance, clone, from, to, mode } = m;
  const name = cloneName(instance.id, clone);
  const s = ctx.errStyle;
  const say = (text: string) => {
    if (!o.json) ctx.err(`${s.bold(name)}: ${text}\n`);
  };
  const printer = eventPrinter(ctx, o);
  const onEvent = (ev: BackendEvent) => printer(ev);
  say(`moving from ${from.name} to ${to.name} (${mode})`);
  // 1. The source's link certificate: the only one the destination will accept.
  const cert = await onTarget(
    ctx,
    from,
    o,
    `cannot get the link identity of ${where(from)}; nothing was moved, ${name} runs on ${from.name}`,
    (r) => r.remoteLinkIdentity(ctx, from.host!, from.backend, from.name, o.lockTimeout),
    (b, opts) => b.linkIdentity!(opts, from.name).then((x) => x.cert),
    noRefusal,
  );
  // 2. The destination: the template built there if needed, a paused QEMU waiting for the clone.
  say(`preparing ${to.name} to receive it (its template is built there first when it is not cached)`);
  const preparing = Date.now();
  // The destination checks the digest against its own state, which records its part of the plan (both parts were
  // checked against the one plan above).
  const inOpts = { planDigest: m.toDigest, instance: instance.id, clone, target: to.name, from: { target: from.name, cert }, listen: { host: m.address, port: 0 }, mode };
  const ready: MigrateInResult = await onTarget(
    ctx,
    to,
    o,
    `cannot prepare ${where(to)} to receive ${name}; nothing was moved, it runs on ${from.name}`,
    (r) => r.remoteMigrateIn(ctx, to.host!, to.backend, inOpts, { lockTimeout: o.lockTimeout, onEvent }),
    (b, opts) => b.migrateIn!({ ...opts, ...inOpts }, onEvent),
    noRefusal,
  );
  const prepareMs = Date.now() - preparing;
  if (ready.template_built) say(`template built on ${to.name} in ${(ready.template_ms / 1000).toFixed(1)}s`);
  say(`${to.name} listens on ${m.address}:${ready.port}; moving`);
  // 3. The move, driven by the source's supervisor.
  const outOpts = { instance: instance.id, clone, to: { target: to.name, host: m.address, port: ready.port, cert: ready.cert }, mode };
  const result: MigrateOutResult = await onTarget(
    ctx,
    from,
    o,
    `moving ${name} from ${where(from)} to ${to.name} failed; ${name} still runs on ${from.name}`,
    (r) => r.remoteMigrateOut(ctx, from.host!, from.backend, outOpts, { lockTimeout: o.lockTimeout, onEvent }),
    (b, opts) => b.migrateOut!({ ...opts, ...outOpts }, onEvent),
    noRefusal,
  );
  printMigrateResult(ctx, o, { ...result, template_built: ready.template_built, template_ms: ready.template_ms, elapsed_ms: Date.now() - started, check_ms: checked - started, prepare_ms: prepareMs }, from);
  return ExitCode.Ok;
}

/** What `migrate` prints when the clone runs at its new place. */
export function printMigrateResult(ctx: Context, o: { json?: boolean }, r: MigrateSummary, from: PlanTarget): void {
  if (o.json) {
    ctx.out(JSON.stringify({ '@timestamp': new Date().toISOString(), type: 'result', ...r }) + '\n');
    return;
  }
  const s = ctx.outStyle;
  const sec = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
  ctx.out(
    `${s.green(s.bold('Migration complete:'))} ${cloneName(r.instance, r.clone)} runs on ${r.to} (moved from ${r.from}, ${r.mode}) in ${sec(r.total_ms)}` +
      `${r.attempts > 1 ? ` after ${r.attempts} attempts` : ''}.\n` +
      `  downtime ${sec(r.downtime_ms)} (guest stopped), traffic held ${sec(r.hold_ms)}; no frame lost or delivered twice.\n` +
      `  sent ${formatBytes(r.bytes_sent)} between the hosts for ${formatBytes(r.source_private_bytes)} of private memory on ${r.from}.\n` +
      (r.template_built ? `  the template was built on ${r.to} first (${sec(r.template_ms)}).\n` : '') +
      `  its channels stay with ${r.from}'s broker; see \`mclc status${from.host ? ` --host ${from.host}` : ''}\`; the next \`mclc plan\` shows the move as drift.\n` +
      `  took ${sec(r.elapsed_ms)} in all (checks ${sec(r.check_ms)}, the destination ready in ${sec(r.prepare_ms)}).\n`,
  );
}

/** The bounded options of `mclc __host migrate-in|migrate-out`: the host checks what the client sends. */
function hostOption(opts: Record<string, string | boolean | string[]>, key: string, pattern: RegExp | readonly string[], what: string): string {
  const v = opts[key];
  if (typeof v !== 'string' || !(pattern instanceof RegExp ? pattern.test(v) : pattern.includes(v))) throw new CliError(`the client sent no valid ${what} (${key})`, ExitCode.Invalid);
  return v;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,200}$/;
const NUMBER = /^\d{1,6}$/;

/** A certificate from the client's standard input: JSON `{"cert": PEM}`, bounded. */
function certFrom(stdin: string): string {
  let v: unknown;
  try {
    v = JSON.parse(stdin);
  } catch {
    throw new CliError('the certificate sent is not JSON', ExitCode.Invalid);
  }
  const cert = (v as { cert?: unknown } | null)?.cert;
  if (typeof cert !== 'string' || cert.length > LINK_MAX_PEM || !cert.includes('-----BEGIN CERTIFICATE-----')) throw new CliError('the client sent no certificate', ExitCode.Invalid);
  return cert;
}

/** The longest standard input of `migrate-in`/`migrate-out`: one certificate in JSON. */
export const MAX_MIGRATE_STDIN = LINK_MAX_PEM * 2 + 1024;

/**
 * The host side of a step (`mclc __host migrate-in|migrate-out`): the options checked, this
 * host's backend asked, its events printed as JSON lines as they arrive, then its result.
 */
export async function hostMigrateStep(
  ctx: Context,
  command: 'migrate-in' | 'migrate-out',
  opts: Record<string, string | boolean | string[]>,
  stdin: string,
  base: LifecycleOptions,
): Promise<ExitCodeValue> {
  const backend = typeof opts.backend === 'string' ? opts.backend : 'kvm';
  const mode = hostOption(opts, 'mode', MIGRATION_MODES, 'mode') as MigrationMode;
  const instance = hostOption(opts, 'instance', NAME, 'instance');
  const clone = Number(hostOption(opts, 'clone', NUMBER, 'clone'));
  const cert = certFrom(stdin);
  const printer = eventPrinter(ctx, { json: true });
  const refuse = (b: Awaited<ReturnType<typeof loadBackend>>, row: { title: string }) =>
    (command === 'migrate-in' ? !b.migrateIn : !b.migrateOut) ? new CliError(`the ${row.title} backend cannot move a running clone to another host`, ExitCode.BackendFailure) : undefined;
  const ADDRESS = /^[A-Za-z0-9.:_-]{1,255}$/;
  // Every option is checked before the backend is loaded or asked anything.
  if (command === 'migrate-in') {
    const port = Number(hostOption(opts, 'port', NUMBER, 'port'));
    if (port > 65535) throw new CliError('the client sent a port out of range', ExitCode.Invalid);
    const inOpts = {
      planDigest: hostOption(opts, 'planDigest', /^[0-9a-f]{64}$/, 'plan digest'),
      instance,
      clone,
      target: hostOption(opts, 'target', NAME, 'target'),
      from: { target: hostOption(opts, 'from', NAME, 'source target'), cert },
      listen: { host: hostOption(opts, 'listen', ADDRESS, 'listen address'), port },
      mode,
    };
    const r = await localBackendStep(ctx, backend, base, refuse, (b, o) => b.migrateIn!({ ...o, ...inOpts }, printer));
    ctx.out(JSON.stringify({ type: 'migrate-in', port: r.port, cert: r.cert, template_built: r.template_built, template_ms: r.template_ms }) + '\n');
    return ExitCode.Ok;
  }
  const port = Number(hostOption(opts, 'port', NUMBER, 'port'));
  if (port < 1 || port > 65535) throw new CliError('the client sent a port out of range', ExitCode.Invalid);
  const to = { target: hostOption(opts, 'to', NAME, 'destination target'), host: hostOption(opts, 'host', ADDRESS, 'destination address'), port, cert };
  const r = await localBackendStep(ctx, backend, base, refuse, (b, o) => b.migrateOut!({ ...o, instance, clone, to, mode }, printer));
  ctx.out(JSON.stringify({ '@timestamp': new Date().toISOString(), type: 'result', ...r }) + '\n');
  return ExitCode.Ok;
}
