// The lifecycle commands (apply, destroy, status, logs, doctor, and the hidden
// __supervise) delegate to a backend of the table in ../backends.ts through
// the contract in plan/src/backend.ts: `apply` to the plan's target backend,
// `destroy`, `status` and `logs` to the backend that made the deployment,
// `doctor` to every backend.

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { crossHostChannels, diffPlan, digestMismatches, planPart, staleReason, type Plan } from '@mcl/plan';
import { recheckPlan } from '@mcl/compiler';
import { nativeSha256 } from '@mcl/compiler/node-host';
import { isBackendError, type BackendErrorKind, type BackendEvent, type ApplyResult, type BackendOptions, type DestroyResult, type DoctorCheck, type LogLine, type StatusReport } from '@mcl/plan/backend';
import { BACKENDS, DEFAULT_BACKEND, backendRow, deploymentBackend, loadBackend, type BackendRow } from '../backends';
import type { Context } from '../context';
import { CliError, ExitCode, type ExitCodeValue } from '../exit';
import { formatBytes, plural } from '../io';
import { displayPath } from '../files';
import { defaultStatePath, readPlanDocument, readStateFile } from '../plan-file';
import { verifyPlanSignature } from '../signing';
import { lifecycleRoot } from '../workspace';

export interface LifecycleOptions {
  root?: string;
  state?: string;
  lockTimeout?: string;
  json?: boolean;
  verbose?: boolean;
  namespace?: string;
  context?: string;
  /** The deployment is on this host, reached over SSH (`--host ssh://...`), not on this machine. */
  host?: string;
}

/** Parses `500ms`, `30s`, `2min`, `1h` or a bare number of seconds into milliseconds. */
export function parseDuration(text: string, option: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|min|m|h)?$/.exec(text.trim());
  if (!m) throw new CliError(`${option} ${JSON.stringify(text)} is not a duration`, ExitCode.Invalid, 'Write it like 500ms, 30s, 2min or 1h.');
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const factor = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'h' ? 3_600_000 : 60_000;
  return Math.round(n * factor);
}

/**
 * The command that starts the supervisor: this very program, however it was
 * started, naming the backend (`mclc --backend NAME __supervise DIR`) unless
 * it is the default one.
 */
export function supervisorCommand(row: BackendRow = DEFAULT_BACKEND): string[] {
  const backend = row === DEFAULT_BACKEND ? [] : ['--backend', row.name];
  return [process.execPath, ...process.execArgv, resolve(process.argv[1] ?? ''), ...backend];
}

/** An AbortSignal fired by the first SIGINT or SIGTERM; a second one exits at once. */
export function interruptSignal(ctx: Context): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    ctx.err(`\nmclc: ${sig} received; stopping at the next safe point (press Ctrl-C again to quit at once)\n`);
    controller.abort(new Error(`interrupted by ${sig}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** The workspace and state file of the deployment on this machine that `o` names (`--root`, `--state`). */
export function deploymentPaths(ctx: Context, o: LifecycleOptions): { workspace: string; stateFile: string } {
  const workspace = lifecycleRoot(o.root, ctx.cwd);
  return { workspace, stateFile: o.state ? resolve(ctx.cwd, o.state) : defaultStatePath(workspace) };
}

export function backendOptions(ctx: Context, o: LifecycleOptions, signal: AbortSignal, row: BackendRow): BackendOptions {
  return {
    ...deploymentPaths(ctx, o),
    lockTimeoutMs: o.lockTimeout ? parseDuration(o.lockTimeout, '--lock-timeout') : 0,
    supervisorCommand: supervisorCommand(row),
    signal,
    automation: ctx.automation,
    ...(o.namespace !== undefined || o.context !== undefined ? { cluster: { namespace: o.namespace, context: o.context } } : {}),
  };
}

/** The backend that made the deployment `o` names (the default one when nothing is deployed there). */
export function deployedWith(ctx: Context, o: LifecycleOptions): BackendRow {
  // A namespace names a deployment in a cluster, whatever the workspace's state says.
  if (o.namespace !== undefined) return backendRow('kubevirt', '--namespace names a deployment of');
  return deploymentBackend(deploymentPaths(ctx, o).stateFile);
}

/** Every kind of the contract has its exit code (a kind added there is a type error here until it has one). */
const EXIT_FOR_KIND: Record<BackendErrorKind, ExitCodeValue> = { failure: ExitCode.BackendFailure, stale: ExitCode.StaleOrLocked, locked: ExitCode.StaleOrLocked, usage: ExitCode.Invalid };

/** Runs a backend call, turning its failures into exit codes and messages. */
export async function guarded<T = ExitCodeValue>(ctx: Context, json: boolean, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof CliError) throw e;
    if (isBackendError(e)) {
      if (json) ctx.out(JSON.stringify({ type: 'error', kind: e.kind, message: e.message, hint: e.hint ?? null }) + '\n');
      throw new CliError(e.message, EXIT_FOR_KIND[e.kind], e.hint);
    }
    // Anything else from the backend is still a backend failure, not a crash of mclc.
    const err = e as Error;
    if (json) ctx.out(JSON.stringify({ type: 'error', kind: 'failure', message: String(err?.message ?? err) }) + '\n');
    const detail = ctx.env.MCL_DEBUG && err?.stack ? `\n${err.stack}` : '';
    throw new CliError(
      `the backend failed: ${err?.message ?? String(e)}${detail}`,
      ExitCode.BackendFailure,
      'Run `mclc doctor` to check the host; set MCL_DEBUG=1 for details.',
    );
  }
}

/**
 * Runs a command's backend call: `body` gets the command's backend options with a signal that the first
 * Ctrl-C or SIGTERM aborts (interruptSignal), and its errors are reported as `guarded` reports them. The
 * signal handlers are removed when it ends, however it ends.
 */
export async function withBackend<T = ExitCodeValue>(
  ctx: Context,
  o: LifecycleOptions,
  row: BackendRow,
  json: boolean,
  body: (opts: BackendOptions) => Promise<T>,
): Promise<T> {
  const interrupt = interruptSignal(ctx);
  try {
    const opts = backendOptions(ctx, o, interrupt.signal, row);
    return await guarded(ctx, json, () => body(opts));
  } finally {
    interrupt.dispose();
  }
}

export function eventPrinter(ctx: Context, o: LifecycleOptions): (ev: BackendEvent) => void {
  const s = ctx.errStyle;
  return (ev) => {
    if (o.json) {
      ctx.out(JSON.stringify({ '@timestamp': new Date().toISOString(), ...ev }) + '\n');
      return;
    }
    if (ev.type === 'debug' && !o.verbose) return;
    const subject = ev.instance
      ? `${ev.instance}${ev.clone !== undefined ? `#${ev.clone}` : ''}`
      : (ev.channel ?? ev.template ?? ev.image ?? (ev.host_port !== undefined ? `tcp ${ev.host_port}` : undefined));
    const prefix = subject ? `${s.bold(subject)}: ` : '';
    const text = ev.type === 'warning' ? `${s.yellow('warning')}: ${ev.message}` : ev.type === 'phase' ? s.dim(ev.message) : ev.message;
    ctx.err(`${prefix}${text}\n`);
  };
}

/**
 * Everything `apply` checks about a plan before a backend sees it: its
 * signature when a verifying key is given, every digest against what it
 * covers, and the policy checks run again over the plan's own instances,
 * channels and exposures (a plan's digests can be recomputed after an edit,
 * its checks cannot be made to pass). Throws what does not hold.
 */
export function verifyPlan(ctx: Context, plan: Plan, text: string, path: string, verifyKey: string | undefined): void {
  const shown = displayPath(ctx.cwd, path);
  if (verifyKey) verifyPlanSignature(text, path, resolve(ctx.cwd, verifyKey), ctx.cwd);
  const list = (items: string[]) => items.slice(0, 10).map((p) => `\n  ${p}`).join('') + (items.length > 10 ? `\n  ... and ${items.length - 10} more` : '');
  const digests = digestMismatches(plan, nativeSha256);
  if (digests.length) {
    const what = digests[0] === 'digests.plan does not match the plan' && digests.length === 1 ? 'the plan digest does not match its contents' : "the plan's digests do not match its contents";
    throw new CliError(`${shown}: ${what}; the file was changed after planning:${list(digests)}`, ExitCode.Invalid, 'Plan again with `mclc plan --out FILE`; plan files must not be edited.');
  }
  const problems = recheckPlan(plan);
  if (problems.length) {
    throw new CliError(
      `${shown}: the plan's policy checks do not hold for its own instances, channels and exposures; it was edited after planning:${list(problems)}`,
      plan.policies ? ExitCode.PolicyViolated : ExitCode.Invalid,
      'Plan again from the reviewed sources with `mclc plan --out FILE` and apply that plan.',
    );
  }
}

type ApplyOptions = LifecycleOptions & { replace?: string[]; readyTimeout?: string; metrics?: string | true; hostSide?: boolean; part?: string };

export async function applyCommand(ctx: Context, planFile: string, o: ApplyOptions & { verifyKey?: string }): Promise<ExitCodeValue> {
  const path = resolve(ctx.cwd, planFile);
  const document = readPlanDocument(path, ctx.cwd);
  verifyPlan(ctx, document.plan, document.text, path, o.verifyKey ?? (ctx.env.MCL_PLAN_VERIFY_KEY || undefined));
  // A plan over several targets: each host applies its target's part (spec/hosts.md, "Plans over several hosts").
  if (document.plan.targets && o.part === undefined) return applyParts(ctx, document, o);
  return applyVerified(ctx, document, o);
}

/**
 * Applies a plan read and verified once by `applyCommand` (its part `o.part`, when given): each
 * target of a plan over several targets comes here with the same document, which is neither
 * read nor verified again.
 */
async function applyVerified(ctx: Context, document: { plan: Plan; text: string }, o: ApplyOptions): Promise<ExitCodeValue> {
  const text = document.text;
  let plan = document.plan;
  if (o.part !== undefined) {
    const part = planPart(plan, o.part, nativeSha256);
    if (!part) throw new CliError(`the plan has no target \`${o.part}\``, ExitCode.Invalid, `Its targets are ${(plan.targets ?? [plan.target]).map((t) => t.name).join(', ')}.`);
    plan = part;
  }
  // A target on another host: that host's mclc applies it (and verifies it again) under its own lock.
  if (plan.target.host !== undefined && !o.hostSide) return (await import('./remote-lifecycle')).remoteApply(ctx, document.plan, text, o);
  const row = backendRow(plan.target.backend, 'the plan targets');
  const backend = await loadBackend(row);
  const interrupt = interruptSignal(ctx);
  try {
    const opts = backendOptions(ctx, o, interrupt.signal, row);
    // The deployment's state lives in the workspace; a plan applied from elsewhere starts a second deployment.
    const sources = plan.sources.filter((src) => !src.path.startsWith('std:'));
    if (!o.hostSide && sources.length && !sources.some((src) => existsSync(join(opts.workspace, src.path)))) {
      ctx.err(
        `${ctx.errStyle.yellow('warning')}: none of the plan's sources (${sources[0].path}${sources.length > 1 ? ', ...' : ''}) is under ${displayPath(ctx.cwd, opts.workspace)}; ` +
          `the deployment and its state are kept there. Pass --root with the workspace the plan was made from.\n`,
      );
    }
    if (!o.json || o.hostSide) {
      // The workspace's state counts only for a deployment of the plan's backend: a kubevirt plan
      // applied where a local KVM deployment runs is checked against the cluster's state instead.
      const local = readStateFile(opts.stateFile, ctx.cwd, false) ?? null;
      const state = local && local.backend === plan.target.backend ? local : null;
      // A stale plan is refused before its changes are shown: they are computed against a state the
      // plan was not made for, so "No changes" there would be wrong. The backend decides again under
      // its lock, where the state cannot change underneath.
      const stale = staleReason(plan, state);
      if (stale) throw new CliError(stale.message, ExitCode.StaleOrLocked, stale.hint);
      const summary = diffPlan(state, plan).summary;
      // On a host, the client prints the summary as a local apply does (remote-lifecycle.ts).
      if (o.hostSide) ctx.out(JSON.stringify({ type: 'changes', summary }) + '\n');
      else ctx.err(`Applying ${plan.system} to ${displayPath(ctx.cwd, opts.workspace)}: ${summary}\n`);
    }
    return await guarded(ctx, !!o.json, async () => {
      const result = await backend.apply(
        plan,
        {
          ...opts,
          replace: o.replace ?? [],
          readyTimeoutMs: o.readyTimeout ? parseDuration(o.readyTimeout, '--ready-timeout') : 60_000,
          // `--metrics` alone: the backend's default address.
          ...(o.metrics !== undefined ? { metrics: o.metrics === true ? '' : o.metrics } : {}),
        },
        eventPrinter(ctx, o),
      );
      printApplyResult(ctx, o, result);
      return ExitCode.Ok;
    });
  } finally {
    interrupt.dispose();
  }
}

/**
 * Applies a plan over several targets: each target's part on its host (over SSH for a target with
 * `host`, here for the one without), in deploy order, each host verifying the whole plan and
 * applying its part under its own lock. When channels cross hosts, every host with an end of one
 * first makes (or keeps) its link identity and gets its link configuration (links.ts), so that
 * its broker's links come up with the part.
 */
async function applyParts(ctx: Context, document: { plan: Plan; text: string }, o: ApplyOptions): Promise<ExitCodeValue> {
  const plan = document.plan;
  if (crossHostChannels(plan).length) await (await import('./links')).prepareLinks(ctx, plan, o);
  for (const t of plan.targets ?? []) {
    if (!o.json) ctx.err(ctx.errStyle.bold(`Target ${t.name}${t.host ? ` (${t.host})` : ''}:\n`));
    const code = await applyVerified(ctx, document, { ...o, part: t.name });
    if (code !== ExitCode.Ok) return code;
  }
  return ExitCode.Ok;
}

/** What `apply` prints when it is done (the same whether the deployment is on this host or another). */
export function printApplyResult(ctx: Context, o: { json?: boolean }, result: ApplyResult): void {
  if (o.json) {
    ctx.out(JSON.stringify({ '@timestamp': new Date().toISOString(), type: 'result', ...result, state: { lineage: result.state.lineage, serial: result.state.serial } }) + '\n');
  } else {
    const s = ctx.outStyle;
    const lines = [
      s.green(s.bold('Apply complete:')) +
        ` ${result.created.length} created, ${result.replaced.length} replaced, ${result.deleted.length} destroyed, ${result.unchanged.length} unchanged` +
        ` in ${(result.elapsed_ms / 1000).toFixed(1)}s (accelerator ${result.accelerator.name}).`,
    ];
    if (result.accelerator.note) lines.push(`  ${result.accelerator.note}`);
    for (const e of result.exposures) lines.push(`  exposed: tcp ${e.host_port} -> ${e.instance}.${e.port}`);
    lines.push(`  state serial ${result.state.serial}; see \`mclc status\`.`);
    ctx.out(lines.join('\n') + '\n');
  }
}

export async function destroyCommand(ctx: Context, o: LifecycleOptions): Promise<ExitCodeValue> {
  if (o.host !== undefined) return (await import('./remote-lifecycle')).remoteDestroy(ctx, o);
  const row = deployedWith(ctx, o);
  const backend = await loadBackend(row);
  return withBackend(ctx, o, row, !!o.json, async (opts) => {
    printDestroyResult(ctx, o, await backend.destroy(opts, eventPrinter(ctx, o)));
    return ExitCode.Ok;
  });
}

/** What `destroy` prints when it is done. */
export function printDestroyResult(ctx: Context, o: { json?: boolean }, result: DestroyResult): void {
  if (o.json) ctx.out(JSON.stringify({ '@timestamp': new Date().toISOString(), type: 'result', ...result, state: result.state && { lineage: result.state.lineage, serial: result.state.serial } }) + '\n');
  else if (result.state === null && result.destroyed.length === 0) ctx.out('Nothing is deployed; nothing to destroy.\n');
  else ctx.out(`${ctx.outStyle.bold('Destroy complete:')} ${plural(result.destroyed.length, 'instance')} stopped in ${(result.elapsed_ms / 1000).toFixed(1)}s.\n`);
}

/** A clone as the human output names it (`coord#0`), from the report's `coord[0]`. */
function cloneName(ref: string): string {
  return ref.replace(/\[(\d+)\]$/, '#$1');
}

export function renderStatus(r: StatusReport, ctx: Context): string {
  const s = ctx.outStyle;
  const warnings = (r.warnings ?? []).map((w) => s.yellow(`warning: ${w.message}`) + (w.hint ? `\n  hint: ${w.hint}` : '') + '\n').join('');
  if (!r.deployed) return `${warnings}Nothing is deployed.\n`;
  const lines: string[] = [];
  if (warnings) lines.push(warnings);
  const restarted = r.supervisor.restarts ? `, restarted ${r.supervisor.restarts} time(s)` : '';
  const sup = r.supervisor.running ? s.green(`running (pid ${r.supervisor.pid ?? '?'}${restarted})`) : s.red('not running');
  lines.push(`${s.bold(r.system ?? '?')}  serial ${r.serial}  supervisor ${sup}${r.accelerator ? `  accelerator ${r.accelerator.name}` : ''}`);
  if (r.metrics) lines.push(`  metrics ${r.metrics.url}`);
  if (r.accelerator?.note) lines.push(s.dim(`  ${r.accelerator.note}`));
  lines.push('', s.bold('Instances:'));
  for (const i of r.instances) {
    const health = i.health === 'healthy' ? s.green(i.health) : i.health === 'degraded' ? s.yellow(i.health) : s.red(i.health);
    lines.push(`  ${s.bold(i.id)} (${i.component}, ${i.mode}${i.created_by ? ` by ${i.created_by}` : ''}${i.label ? `, ${i.label}` : ''}) ${health}`);
    for (const c of i.clones) {
      const mem = c.rss_bytes !== undefined ? ` rss ${formatBytes(c.rss_bytes)} pss ${formatBytes(c.pss_bytes ?? 0)} private ${formatBytes(c.private_bytes ?? 0)}` : '';
      const cpu = c.cpu_ms !== undefined ? ` cpu ${(c.cpu_ms / 1000).toFixed(2)}s` : '';
      const extra = [
        c.created_by ? `created by ${cloneName(c.created_by)}` : '',
        c.restarts ? `${plural(c.restarts, 'restart')}` : '',
        c.session ? `session ${c.session}` : '',
        c.last_exit ? `last exit: ${c.last_exit}` : '',
        c.last_error ? `restart failed: ${c.last_error}` : '',
        c.next_restart_in_ms !== undefined ? `next attempt in ${(c.next_restart_in_ms / 1000).toFixed(1)}s` : '',
        c.not_restarted ? `not restarted: ${c.not_restarted}` : '',
      ]
        .filter(Boolean)
        .join(', ');
      // A clone moved to another host runs there: its pid and memory are that host's, so say where instead.
      const place = c.moved_to ? ` ${s.cyan(`on ${c.moved_to.target}, moved by mclc migrate ${c.moved_to.at}`)}` : '';
      lines.push(`    #${c.index} ${c.state}${place}${c.pid && !c.moved_to ? ` pid ${c.pid}` : ''}${mem}${cpu}${extra ? `  (${extra})` : ''}`);
      // Seen from outside the guest: only what needs attention is spelled out.
      const h = c.health;
      if (h && h.verdict !== 'ok' && h.verdict !== 'unknown' && h.verdict !== 'paused') {
        lines.push(s.red(`      health: ${h.verdict.replace(/_/g, ' ')}: ${h.detail}`));
        if (h.console_tail?.length) lines.push(s.dim('      last console lines:'), ...h.console_tail.map((l) => s.dim(`        ${l}`)));
      }
    }
  }
  lines.push('', s.bold('Channels:'));
  for (const c of r.channels) {
    const v = c.violations ? s.red(`${plural(c.violations, 'violation')}`) : '0 violations';
    lines.push(`  ${c.id} (${c.protocol}): ${c.frames_forward}/${c.frames_backward} frames, ${formatBytes(c.bytes_forward)}/${formatBytes(c.bytes_backward)}, ${v}`);
    for (const x of c.recent_violations) {
      const who = x.instance ? `${x.instance}${x.clone !== undefined ? `#${x.clone}` : ''} ` : '';
      lines.push(s.red(`    ${x.time} ${who}${x.kind}: ${x.detail}`));
    }
  }
  if (r.unwired_violations.length) {
    lines.push('', s.bold('Denied writes to unwired ports:'));
    for (const x of r.unwired_violations) lines.push(s.red(`  ${x.time} ${x.instance ?? '?'}${x.clone !== undefined ? `#${x.clone}` : ''} ${x.kind}: ${x.detail}`));
  }
  if (r.exposures.length) {
    lines.push('', s.bold('Exposures:'));
    for (const e of r.exposures) {
      lines.push(`  tcp ${e.host_port} -> ${e.instance}.${e.port}: ${e.listening ? 'listening' : s.red('not listening')}, ${e.connections_open} open, ${e.connections_total} total`);
    }
  }
  if (r.links?.length) lines.push('', s.bold('Links:'), ...renderLinks(r.links, s));
  if (r.kept?.length) {
    // Clones of this deployment that other hosts moved here: their QEMU runs here, their home's broker serves their channels.
    lines.push('', s.bold('Kept here (moved from other hosts by mclc migrate):'));
    for (const k of r.kept) lines.push(`  ${s.bold(`${k.instance}#${k.clone}`)} from ${k.from}: ${k.state === 'running' ? s.green(k.state) : k.state === 'exited' ? s.red(k.state) : k.state} pid ${k.pid}`);
  }
  if (r.egresses?.length) {
    lines.push('', s.bold('Egresses:'));
    for (const e of r.egresses) {
      const refused = e.connections_refused ? s.red(`, ${e.connections_refused} refused`) : '';
      const v = e.violations ? s.red(`, ${plural(e.violations, 'violation')}`) : '';
      lines.push(`  ${e.name}: ${e.instance}.${e.port} -> ${e.destination}: ${e.connections_open} open, ${e.connections_total} total${refused}${e.timed_out ? `, ${e.timed_out} timed out` : ''}${v}`);
    }
  }
  const t = r.totals;
  lines.push('', `${plural(t.clones, 'clone')}: rss ${formatBytes(t.rss_bytes)}, pss ${formatBytes(t.pss_bytes)}, private ${formatBytes(t.private_bytes)}`);
  if (r.helpers?.length) {
    // Zygotes hold pages their clones share, and PSS charges each process its share: the clones' PSS plus
    // these is what the deployment costs the host.
    const sum = (k: 'rss_bytes' | 'pss_bytes' | 'private_bytes') => r.helpers!.reduce((n, h) => n + (h[k] ?? 0), 0);
    const count = (role: string, one: string, many: string) => {
      const n = r.helpers!.filter((h) => h.role === role).length;
      return n ? plural(n, one, many) : '';
    };
    const what = [count('zygote', 'zygote', 'zygotes'), count('waiting', 'process started ahead', 'processes started ahead')].filter(Boolean).join(', ');
    lines.push(`${what}: rss ${formatBytes(sum('rss_bytes'))}, pss ${formatBytes(sum('pss_bytes'))}, private ${formatBytes(sum('private_bytes'))}`);
  }
  return lines.join('\n') + '\n';
}

export async function statusCommand(ctx: Context, o: LifecycleOptions): Promise<ExitCodeValue> {
  if (o.host !== undefined) return (await import('./remote-lifecycle')).remoteStatus(ctx, o);
  const row = deployedWith(ctx, o);
  const backend = await loadBackend(row);
  return withBackend(ctx, o, row, !!o.json, async (opts) => {
    const report = await backend.status(opts);
    ctx.out(o.json ? JSON.stringify({ format_version: '1.0', ...report }, null, 2) + '\n' : renderStatus(report, ctx));
    return ExitCode.Ok;
  });
}

export async function logsCommand(
  ctx: Context,
  instance: string,
  o: LifecycleOptions & { follow?: boolean; tail?: string; clone?: string },
): Promise<ExitCodeValue> {
  const intOpt = (v: string | undefined, name: string) => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new CliError(`${name} ${JSON.stringify(v)} is not a non-negative integer`);
    return Number(v);
  };
  const tail = intOpt(o.tail, '--tail');
  const clone = intOpt(o.clone, '--clone');
  if (o.host !== undefined) return (await import('./remote-lifecycle')).remoteLogs(ctx, instance, o);
  const row = deployedWith(ctx, o);
  const backend = await loadBackend(row);
  return withBackend(ctx, o, row, !!o.json, async (opts) => {
    const s = ctx.outStyle;
    await backend.logs(instance, { ...opts, follow: !!o.follow, tail, clone }, (line: LogLine) => {
      if (o.json) ctx.out(JSON.stringify(line) + '\n');
      else ctx.out(`${s.dim(`${line.instance}#${line.clone} ${line.stream === 'console' ? 'console' : 'program'} |`)} ${line.text.replace(/\n$/, '')}\n`);
    });
    return ExitCode.Ok;
  });
}

export async function doctorCommand(ctx: Context, o: { json?: boolean; host?: string }): Promise<ExitCodeValue> {
  const backends = o.host !== undefined ? [] : await Promise.all(BACKENDS.map(loadBackend));
  return guarded(ctx, !!o.json, async () => {
    const checks: DoctorCheck[] = [];
    // Another host's checks are its own mclc's, run there.
    if (o.host !== undefined) checks.push(...((await (await import('./remote-lifecycle')).remoteDoctor(ctx, o.host)).checks as DoctorCheck[]));
    for (const backend of backends) checks.push(...(await backend.doctor()).checks);
    const report = { checks };
    const failed = report.checks.some((c) => c.status === 'fail');
    if (o.json) ctx.out(JSON.stringify({ format_version: '1.0', ok: !failed, ...report }, null, 2) + '\n');
    else {
      const s = ctx.outStyle;
      const lines = report.checks.map((c) => {
        const mark = c.status === 'ok' ? s.green('ok  ') : c.status === 'warn' ? s.yellow('warn') : s.red('FAIL');
        return `${mark} ${c.id}: ${c.summary}${c.hint && c.status !== 'ok' ? `\n       hint: ${c.hint}` : ''}`;
      });
      lines.push('', failed ? s.red('This host cannot run deployments until the failures above are fixed.') : s.green('This host can run deployments.'));
      ctx.out(lines.join('\n') + '\n');
    }
    return failed ? ExitCode.BackendFailure : ExitCode.Ok;
  });
}

export async function superviseCommand(dir: string, backendName?: string): Promise<ExitCodeValue> {
  const backend = await loadBackend(backendName === undefined ? DEFAULT_BACKEND : backendRow(backendName, '__supervise was asked for'));
  await backend.runSupervisor(resolve(dir));
  return ExitCode.Ok;
}

/**
 * The links to the deployment's other hosts: state, bytes each way, the ping's
 * round trip, what was refused, and the channels each carries.
 */
export function renderLinks(links: NonNullable<StatusReport['links']>, s: Context['outStyle']): string[] {
  const out: string[] = [];
  for (const l of links) {
    const state = l.state === 'up' ? s.green('up') : s.red('down');
    const since = new Date(l.since).toISOString();
    const latency = l.latency_ms === null ? 'no ping answered yet' : `ping ${l.latency_ms.toFixed(2)} ms (p50 ${l.latency_p50_ms?.toFixed(2)}, p99 ${l.latency_p99_ms?.toFixed(2)})`;
    out.push(`  ${s.bold(l.peer)} ${l.address}: ${state} since ${since}, ${formatBytes(l.bytes_out)} out / ${formatBytes(l.bytes_in)} in, ${latency}, ${plural(l.connects, 'connect')}`);
    const refused = Object.entries(l.refused).filter(([, n]) => (n ?? 0) > 0);
    if (refused.length) out.push(s.red(`    refused: ${refused.map(([k, n]) => `${k} ${n}`).join(', ')}`));
    if (l.channels.length) out.push(s.dim(`    carries ${l.channels.join(', ')}`));
  }
  return out;
}
