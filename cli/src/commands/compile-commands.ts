// The commands that compile sources: validate, plan, graph; and show, which
// reads a plan file.

import { relative, resolve } from 'node:path';
import { diffPlan, instanceTargets, planDigest, prettyJson, prettyJsonParts, type DeploymentState, type Plan } from '@mcl/plan';
import { nativeSha256 } from '@mcl/compiler/node-host';
import { Codes, diagnosticInfos, type Diagnostic } from '@mcl/language';
import { compileWorkspace, exitCodeFor, type CompileOutcome } from '../compile';
import type { Context } from '../context';
import { CliError, ExitCode, type ExitCodeValue } from '../exit';
import { displayPath, writeAtomic } from '../files';
import { dotToSvg, planToDot } from '../graph/dot';
import { renderDiagnostics } from '../render/codeframe';
import { diagnosticsDocument } from '../render/json';
import { sarifDocument } from '../render/sarif';
import { defaultStatePath, readPlanFile, readStateFile } from '../plan-file';
import { checkExposurePorts } from '../ports';
import { movedClones, renderChanges, renderChecks, renderDrift, renderPlacement, renderPlan, renderResources, type MovedClone } from '../plan-render';
import { redactPlan } from '../redact';
import { signPlan, signaturePath } from '../signing';
import { timings } from '../timings';
import { MCLC_VERSION } from '../version';
import { absoluteSourcePath, findRepoRoot, resolveWorkspace, toPosix, type Workspace } from '../workspace';

/** 1.1 added `omitted` (the diagnostics left out by the limits of render/limits.ts). */
export const PLAN_JSON_FORMAT_VERSION = '1.1';

interface SourceOptions {
  root?: string;
  target?: string;
  system?: string;
  /** `--max-diagnostics`: a whole number, 0 for no limit (render/limits.ts). */
  maxDiagnostics?: string;
}

function maxDiagnosticsOf(o: SourceOptions): number | undefined {
  if (o.maxDiagnostics === undefined) return undefined;
  if (!/^\d{1,9}$/.test(o.maxDiagnostics)) {
    throw new CliError(`--max-diagnostics ${JSON.stringify(o.maxDiagnostics)} is not a whole number`, ExitCode.Invalid, 'Pass a number of diagnostics, or 0 to show them all.');
  }
  return Number(o.maxDiagnostics);
}

function displayPathFor(ctx: Context, out: CompileOutcome, ws: Workspace) {
  return (file: string) => relative(ctx.cwd, absoluteSourcePath(file, ws.root, out.stdlib)) || file;
}

function printDiagnostics(ctx: Context, diags: readonly Diagnostic[], out: CompileOutcome, ws: Workspace, countAlways: boolean, maxDiagnostics: number | undefined): void {
  if (!diags.length && !countAlways) return;
  ctx.err(
    renderDiagnostics(diags, {
      texts: out.texts,
      displayPath: displayPathFor(ctx, out, ws),
      style: ctx.errStyle,
      fileCount: ws.entries.length,
      maxDiagnostics,
    }),
  );
}

export async function validateCommand(ctx: Context, paths: string[], o: SourceOptions & { json?: boolean; format?: string; watch?: boolean }, signal?: AbortSignal): Promise<ExitCodeValue> {
  const format = o.json ? 'json' : (o.format ?? 'text');
  if (!['text', 'json', 'sarif'].includes(format)) {
    throw new CliError(`unknown --format ${JSON.stringify(format)}`, ExitCode.Invalid, 'Use --format text, json or sarif.');
  }
  const maxDiagnostics = maxDiagnosticsOf(o);
  if (o.watch) {
    if (format === 'sarif') throw new CliError('--watch prints a result per change, and SARIF is one document per run', ExitCode.Invalid, 'Use --watch with --format text or json (one JSON document per line), or run `mclc validate --format sarif` once.');
    return watchCommand(ctx, paths, o, format === 'json', maxDiagnostics, signal);
  }
  const ws = resolveWorkspace(paths, { root: o.root, cwd: ctx.cwd });
  const out = compileWorkspace({ workspace: ws, target: o.target, system: o.system, emitPlan: false });
  if (format === 'text') printDiagnostics(ctx, out.diagnostics, out, ws, true, maxDiagnostics);
  else if (format === 'json') ctx.out(JSON.stringify(diagnosticsDocument(out.diagnostics, { texts: out.texts, maxDiagnostics }), null, 2) + '\n');
  else {
    const repo = findRepoRoot(ws.root) ?? ctx.cwd;
    const artifactPath = (file: string) => toPosix(relative(repo, absoluteSourcePath(file, ws.root, out.stdlib)));
    const doc = sarifDocument(out.diagnostics, { texts: out.texts, artifactPath, rules: diagnosticInfos, toolVersion: MCLC_VERSION, maxDiagnostics });
    ctx.out(JSON.stringify(doc, null, 2) + '\n');
  }
  return exitCodeFor(out.diagnostics);
}

/**
 * `mclc validate --watch`: a check, then another after each change of the sources (watch.ts),
 * until interrupted (Ctrl-C, SIGTERM) or `signal` aborts; the exit code is the last check's.
 * Text: each round's diagnostics on standard error, then a line with the time, what was checked
 * again and what was taken over. JSON: one diagnostics document per line on standard output, with
 * the round's number, the files that changed and the same figures.
 */
async function watchCommand(ctx: Context, paths: string[], o: SourceOptions, json: boolean, maxDiagnostics: number | undefined, signal?: AbortSignal): Promise<ExitCodeValue> {
  const { watchSources } = await import('../watch');
  const s = ctx.errStyle;
  const clock = () => s.dim(`[${new Date().toTimeString().slice(0, 8)}]`);
  let stopping: AbortController | undefined;
  if (!signal) {
    stopping = new AbortController();
    signal = stopping.signal;
  }
  const stop = () => stopping?.abort();
  if (stopping) for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, stop);
  // The first check reads and checks everything: on a large workspace, seconds before its first line.
  if (!json) ctx.err(`${clock()} Checking the sources, then again after each change.\n`);
  try {
    const code = await watchSources(
      {
        paths,
        cwd: ctx.cwd,
        root: o.root,
        target: o.target,
        system: o.system,
        signal,
        onRound: (r) => {
          const modules = { checked: r.modules.checked, taken_over: r.modules.takenOver };
          if (json) {
            const doc = diagnosticsDocument(r.out.diagnostics, { texts: r.out.texts, maxDiagnostics });
            ctx.out(JSON.stringify({ ...doc, round: r.round, changed: r.changed, elapsed_ms: Math.round(r.elapsedMs * 10) / 10, modules }) + '\n');
            return;
          }
          if (r.round > 1) ctx.err(`${clock()} ${describeChange(r.changed)}\n`);
          printDiagnostics(ctx, r.out.diagnostics, r.out, r.workspace, true, maxDiagnostics);
          const again = r.round === 1 ? `checked in ${r.elapsedMs.toFixed(0)} ms` : `checked again in ${r.elapsedMs.toFixed(0)} ms: ${plural(modules.checked, 'module')} checked, ${modules.taken_over} taken over`;
          ctx.err(`${clock()} ${again}. Watching for changes (Ctrl-C stops).\n`);
        },
        onError: (e, round) => {
          if (json) ctx.out(JSON.stringify({ round, error: { message: e.message, ...(e.hint ? { hint: e.hint } : {}) } }) + '\n');
          else ctx.err(`${clock()} ${s.red(s.bold('error'))}: ${e.message}\n${e.hint ? `  ${s.green('hint')}: ${e.hint}\n` : ''}${clock()} Watching for changes (Ctrl-C stops).\n`);
        },
      },
    );
    return code as ExitCodeValue;
  } finally {
    if (stopping) for (const sig of ['SIGINT', 'SIGTERM'] as const) process.off(sig, stop);
  }
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

/** "a.mcl changed; checking again.", "a.mcl and 3 other files changed; checking again.". */
function describeChange(changed: string[]): string {
  if (changed.length === 0) return 'Checking again.';
  const rest = changed.length - 1;
  return `${changed[0]}${rest > 0 ? ` and ${plural(rest, 'other file')}` : ''} changed; checking again.`;
}

export interface PlanOptions extends SourceOptions {
  out?: string;
  signKey?: string;
  state?: string;
  json?: boolean;
  detailedExitcode?: boolean;
  exclude?: string[];
}

/**
 * The deployments on a plan's targets as one state to diff against: their instances (each with the
 * target it runs on), channels and exposures; undefined when none of them records a deployment.
 */
function unionState(states: Map<string, DeploymentState | undefined>): DeploymentState | undefined {
  const present = [...states].filter((e): e is [string, DeploymentState] => e[1] !== undefined);
  if (present.length === 0) return undefined;
  const [, first] = present[0];
  return {
    ...first,
    serial: Math.max(...present.map(([, s]) => s.serial)),
    instances: present.flatMap(([t, s]) => s.instances.map((i) => ({ ...i, target: i.target ?? t }))).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    // A channel between two hosts is recorded by both (each host's part holds it): once in the union.
    channels: [...new Map(present.flatMap(([, s]) => s.channels).map((c) => [c.id, c])).values()],
    exposures: present.flatMap(([, s]) => s.exposures),
  };
}

export async function planCommand(ctx: Context, paths: string[], o: PlanOptions): Promise<ExitCodeValue> {
  if (o.signKey && !o.out) throw new CliError('--sign-key signs the plan file, so it needs --out FILE', ExitCode.Invalid, 'Write the plan with `--out FILE --sign-key KEY`; the signature goes to FILE.sig.');
  const maxDiagnostics = maxDiagnosticsOf(o);
  const ws = resolveWorkspace(paths, { root: o.root, cwd: ctx.cwd });
  timings?.mark('workspace');
  // The state is read first so that the compiler records it as the plan's prior_state inside the
  // digest it computes anyway (recomputing the digest of a large plan here cost as much again). An
  // unreadable state is still reported after the sources' diagnostics, as a source error comes first.
  const statePath = o.state ? resolve(ctx.cwd, o.state) : defaultStatePath(ws.root);
  let state: ReturnType<typeof readStateFile> | undefined;
  let stateError: unknown;
  try {
    state = readStateFile(statePath, ctx.cwd, o.state !== undefined);
  } catch (e) {
    stateError = e;
  }
  const priorState = state ? { lineage: state.lineage, serial: state.serial } : null;
  timings?.mark('state');
  let out = compileWorkspace({ workspace: ws, target: o.target, system: o.system, exclude: o.exclude, emitPlan: true, priorState });
  // A target on another host keeps its state there: the plan is made against that state (and is stale
  // when it moves on), so it is fetched over ssh and the plan made again with it as the prior state.
  const remote = out.plan?.target.host !== undefined && !out.plan.targets && o.state === undefined ? out.plan.target.host : undefined;
  if (remote !== undefined && exitCodeFor(out.diagnostics) === ExitCode.Ok) {
    state = await (await import('./remote-lifecycle')).remoteState(ctx, remote);
    stateError = undefined;
    out = compileWorkspace({ workspace: ws, target: o.target, system: o.system, exclude: o.exclude, emitPlan: true, priorState: state ? { lineage: state.lineage, serial: state.serial } : null });
  }
  // A deploy to several targets: the state of each target's host, each recorded in the plan's
  // `prior_states`, and the union of their deployments to diff against (spec/hosts.md).
  const targets = out.plan?.targets;
  let hostsRead: string[] = [];
  let drift: MovedClone[] = [];
  if (targets && exitCodeFor(out.diagnostics) === ExitCode.Ok) {
    const states = new Map<string, NonNullable<typeof state> | undefined>();
    for (const t of targets) {
      if (t.host === undefined) {
        if (stateError !== undefined) throw stateError;
        states.set(t.name, state ?? undefined);
        continue;
      }
      states.set(t.name, await (await import('./remote-lifecycle')).remoteState(ctx, t.host));
    }
    hostsRead = targets.map((t) => t.host ?? shownPath(ctx, statePath));
    const priorStates = Object.fromEntries([...states].map(([n, s]) => [n, s ? { lineage: s.lineage, serial: s.serial } : null]));
    out = compileWorkspace({ workspace: ws, target: o.target, system: o.system, exclude: o.exclude, emitPlan: true, priorState: null, priorStates });
    state = unionState(states);
    drift = movedClones(states);
  }
  const code = exitCodeFor(out.diagnostics);
  const diagDoc = () => diagnosticsDocument(out.diagnostics, { texts: out.texts, maxDiagnostics });
  if (!o.json) printDiagnostics(ctx, out.diagnostics, out, ws, false, maxDiagnostics);
  if (code !== ExitCode.Ok || !out.plan) {
    if (o.json) {
      const d = diagDoc();
      ctx.out(JSON.stringify({ format_version: PLAN_JSON_FORMAT_VERSION, valid: false, ...countsOf(d), omitted: d.omitted, diagnostics: d.diagnostics }, null, 2) + '\n');
    }
    if (code === ExitCode.Ok) throw noPlanError(out, 'plan');
    return code;
  }
  if (stateError !== undefined) throw stateError;

  const plan: Plan = out.plan;
  const changes = diffPlan(state ?? null, plan);
  timings?.mark('diff');
  const stateWarnings: string[] = [];
  if (state?.system && state.system !== plan.system && state.instances.length) {
    stateWarnings.push(`the deployment runs system ${state.system}; this plan replaces it with ${plan.system}`);
  }
  if (state && state.backend !== plan.target.backend) {
    stateWarnings.push(`the deployment was made by the ${state.backend} backend; this plan targets ${plan.target.backend}`);
  }
  if (!o.json) for (const w of stateWarnings) ctx.err(`${ctx.errStyle.yellow('warning')}: ${w}\n`);
  // A warning, not an error: the port may be freed before apply, which fails if it is not.
  const portWarnings = await checkExposurePorts(plan, state);
  if (!o.json) for (const w of portWarnings) ctx.err(`${ctx.errStyle.yellow('warning')}: ${w.message}\n  hint: ${w.hint}\n`);
  timings?.mark('port checks');

  let planFile: string | null = null;
  if (o.out) {
    planFile = resolve(ctx.cwd, o.out);
    if (o.signKey) {
      const text = prettyJson(plan);
      timings?.mark('serialise plan');
      // Signed before anything is written, so a bad key leaves no unsigned plan behind.
      const signature = signPlan(text, resolve(ctx.cwd, o.signKey), ctx.cwd);
      writeAtomic(planFile, text, ctx.cwd);
      writeAtomic(signaturePath(planFile), signature, ctx.cwd);
      timings?.mark('write plan');
    } else {
      // Serialised piece by piece into the file: the text of a large plan never exists as one string.
      writeAtomic(planFile, (emit) => prettyJsonParts(plan, emit), ctx.cwd);
      timings?.mark('serialise+write plan');
    }
  }
  const shownPlanFile = planFile ? shownPath(ctx, planFile) : null;
  const shownState = state ? (remote !== undefined ? `${remote} (on the host)` : shownPath(ctx, statePath)) : null;

  if (o.json) {
    const shown = redactPlan(plan);
    const d = diagDoc();
    ctx.out(
      JSON.stringify(
        {
          format_version: PLAN_JSON_FORMAT_VERSION,
          valid: true,
          ...countsOf(d),
          system: plan.system,
          target: plan.target,
          ...(plan.targets ? { targets: plan.targets, placement: Object.fromEntries(instanceTargets(plan)), prior_states: plan.prior_states, states_read: hostsRead, drift } : {}),
          plan_file: shownPlanFile,
          plan_digest: plan.digests.plan,
          state_file: shownState,
          state_warnings: stateWarnings,
          port_warnings: portWarnings,
          prior_state: plan.prior_state,
          summary: changes.summary,
          has_changes: changes.has_changes,
          changes,
          checks: shown.checks,
          resources: shown.resources,
          omitted: d.omitted,
          diagnostics: d.diagnostics,
        },
        null,
        2,
      ) + '\n',
    );
  } else {
    const s = ctx.outStyle;
    const lines: string[] = [];
    lines.push(`${s.bold('Plan for')} ${plan.system} ${s.dim('on target')} ${plan.target.name} (${plan.target.backend})`);
    if (plan.targets) {
      lines.push(s.dim(state ? `compared with the deployments on ${hostsRead.join(', ')}` : `nothing is deployed yet on ${hostsRead.join(', ')}`));
      lines.push('', ...renderPlacement(plan, s));
    } else lines.push(s.dim(state ? `compared with the deployment in ${shownState} (serial ${state.serial})` : 'nothing is deployed yet'));
    lines.push('');
    const body = renderChanges(changes, s);
    if (body.length) lines.push(...body, '');
    const moved = renderDrift(drift, s);
    if (moved.length) lines.push(...moved, '');
    lines.push(...renderChecks(plan.checks, s), ...renderResources(plan, s), '');
    lines.push(s.bold(changes.summary));
    if (shownPlanFile) {
      const rootArg = relative(ctx.cwd, ws.root) ? ` --root ${shownPath(ctx, ws.root)}` : '';
      lines.push(`Saved the plan to ${shownPlanFile}. Apply it with: mclc apply ${shownPlanFile}${rootArg}`);
    }
    ctx.out(lines.join('\n') + '\n');
  }
  timings?.mark('report');
  if (o.detailedExitcode && changes.has_changes) return ExitCode.Changes;
  return ExitCode.Ok;
}

/**
 * Sources without errors that give no plan: a library module that declares no
 * system (MCL0606), which is normal for `validate` but leaves `plan` and
 * `graph` nothing to work on. A usage error, not a crash.
 */
function noPlanError(out: CompileOutcome, command: 'plan' | 'graph'): CliError {
  const nothing = out.diagnostics.find((d) => d.code === Codes.NothingToPlan.code);
  return new CliError(
    nothing ? `nothing to ${command}: the sources declare no system` : `nothing to ${command}: the sources gave no plan`,
    ExitCode.Invalid,
    'Pass the files that declare the system to deploy (with the modules they import), or declare a `system` that instantiates the components; `mclc validate` checks a library on its own.',
  );
}

function shownPath(ctx: Context, abs: string): string {
  return displayPath(ctx.cwd, abs);
}

function countsOf(d: { error_count: number; warning_count: number }) {
  return { error_count: d.error_count, warning_count: d.warning_count };
}

export async function showCommand(ctx: Context, planFile: string, o: { json?: boolean; flask?: boolean }): Promise<ExitCodeValue> {
  if (o.json && o.flask) throw new CliError('--json and --flask print different things', ExitCode.Invalid, 'Use one of them.');
  const path = resolve(ctx.cwd, planFile);
  const plan = readPlanFile(path, ctx.cwd);
  const digestOk = planDigest(plan, nativeSha256) === plan.digests.plan;
  if (!digestOk) ctx.err(`${ctx.errStyle.yellow('warning')}: the plan digest does not match its contents; the file was changed after planning\n`);
  if (o.flask) {
    // The module the Xen backend compiles with Xen's policy and loads on an XSM hypervisor; generated, not read.
    const { flaskModule } = await import('@mcl/backend-xen/flask');
    ctx.out(flaskModule(plan));
    return ExitCode.Ok;
  }
  const shown = redactPlan(plan);
  ctx.out(o.json ? prettyJson(shown) : renderPlan(shown, ctx.outStyle));
  return ExitCode.Ok;
}

export async function graphCommand(ctx: Context, paths: string[], o: SourceOptions & { format?: string; out?: string; exclude?: string[] }): Promise<ExitCodeValue> {
  const format = o.format ?? 'dot';
  if (format !== 'dot' && format !== 'svg') throw new CliError(`unknown --format ${JSON.stringify(format)}`, ExitCode.Invalid, 'Use --format dot or svg.');
  const maxDiagnostics = maxDiagnosticsOf(o);
  const ws = resolveWorkspace(paths, { root: o.root, cwd: ctx.cwd });
  // A composition that only breaks its policies is still drawn, with what breaks them marked:
  // that picture is what one needs to fix it. The exit code stays that of `validate` (3), so a
  // script cannot take the drawing for a passing check.
  const out = compileWorkspace({ workspace: ws, target: o.target, system: o.system, exclude: o.exclude, emitPlan: true, planDespiteViolations: true });
  printDiagnostics(ctx, out.diagnostics, out, ws, false, maxDiagnostics);
  const code = exitCodeFor(out.diagnostics);
  // The compiler builds the plan whenever every error is an MCL05xx; a malformed rule among
  // them (exit 1) is a source error, and is not drawn either.
  if (code !== ExitCode.Ok && code !== ExitCode.PolicyViolated) return code;
  if (!out.plan) {
    if (code !== ExitCode.Ok) return code;
    throw noPlanError(out, 'graph');
  }
  const dot = planToDot(out.plan);
  const text = format === 'svg' ? await dotToSvg(dot) : dot;
  if (o.out) writeAtomic(resolve(ctx.cwd, o.out), text, ctx.cwd);
  else ctx.out(text);
  return code;
}
