// Human-readable views of a plan: the concise diff that `mclc plan` prints
// and the full listing of `mclc show`. Neither prints parameter values of
// sensitive parameters (callers pass plans through `redactPlan`).

import type { DeploymentState, Plan, PlanChanges, PlanCheck, SecurityPosture } from '@mcl/plan';
import { canonicalJson, crossHostChannels } from '@mcl/plan';
import { formatBytes, plainStyle, plural, type Styler } from './io';

const SYMBOL: Record<string, string> = { create: '+', update: '~', replace: '-/+', delete: '-', 'no-op': ' ' };
const VERB: Record<string, string> = { create: 'create', update: 'rewire in place', replace: 'replace', delete: 'destroy', 'no-op': 'unchanged' };

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function colourFor(action: string, s: Styler): (t: string) => string {
  return action === 'create' ? s.green : action === 'delete' ? s.red : action === 'replace' || action === 'update' ? s.yellow : s.dim;
}

export function renderChanges(changes: PlanChanges, s: Styler = plainStyle, opts: { showUnchanged?: boolean } = {}): string[] {
  const lines: string[] = [];
  const shown = changes.instances.filter((c) => opts.showUnchanged || c.action !== 'no-op');
  if (shown.length) {
    lines.push(s.bold('Instances:'));
    const w = Math.max(...shown.map((c) => c.id.length));
    const cw = Math.max(...shown.map((c) => c.component.length));
    for (const c of shown) {
      const col = colourFor(c.action, s);
      const why = c.reasons.length && c.action !== 'create' && c.action !== 'delete' ? ` (${c.reasons.join(', ')})` : '';
      lines.push(`  ${col(pad(SYMBOL[c.action], 3))} ${pad(c.id, w)}  ${pad(c.component, cw)}  ${col(VERB[c.action])}${why}`);
    }
    const unchanged = changes.counts.no_op;
    if (!opts.showUnchanged && unchanged) lines.push(s.dim(`      (${plural(unchanged, 'instance')} unchanged)`));
  }
  const posture = renderPosture(changes.security, s);
  if (posture.length) {
    if (lines.length) lines.push('');
    lines.push(s.bold('Security posture:'), ...posture);
  }
  return lines;
}

export function renderPosture(p: SecurityPosture, s: Styler = plainStyle): string[] {
  const lines: string[] = [];
  for (const c of p.channels_added) lines.push(`  ${s.green('+')} channel ${c.from} -> ${c.to} (${c.protocol})`);
  for (const c of p.channels_removed) lines.push(`  ${s.red('-')} channel ${c.from} -> ${c.to} (${c.protocol})`);
  for (const c of p.channels_changed) {
    lines.push(`  ${s.yellow('~')} channel ${c.id}: ${c.fields.join(', ')} changed${c.loosened ? s.yellow(' (allows more than before)') : ''}`);
  }
  for (const e of p.exposures_added) lines.push(`  ${s.green('+')} exposure tcp ${e.host_port} -> ${e.instance}.${e.port} (${e.protocol})`);
  for (const e of p.exposures_removed) lines.push(`  ${s.red('-')} exposure tcp ${e.host_port} -> ${e.instance}.${e.port} (${e.protocol})`);
  for (const l of p.labels_changed) lines.push(`  ${s.yellow('~')} label of ${l.instance}: ${l.before ?? '(none)'} -> ${l.after ?? '(none)'}`);
  for (const d of p.declassifications_changed) {
    for (const a of d.added) lines.push(`  ${s.green('+')} ${d.instance} may declassify ${a.from} -> ${a.to}`);
    for (const r of d.removed) lines.push(`  ${s.red('-')} ${d.instance} may no longer declassify ${r.from} -> ${r.to}`);
  }
  return lines;
}

export function renderChecks(checks: readonly PlanCheck[], s: Styler = plainStyle, verbose = false): string[] {
  const pass = checks.filter((c) => c.status === 'pass').length;
  const warn = checks.filter((c) => c.status === 'warn');
  const fail = checks.filter((c) => c.status === 'fail');
  const lines = [`${s.bold('Checks:')} ${pass} passed, ${plural(warn.length, 'warning')}, ${fail.length} failed`];
  for (const c of checks) {
    if (c.status === 'pass' && !verbose) continue;
    const mark = c.status === 'pass' ? s.green('ok  ') : c.status === 'warn' ? s.yellow('warn') : s.red('FAIL');
    lines.push(`  ${mark} ${c.id}: ${c.summary}`);
    for (const step of c.counterexample ?? []) {
      const what = [step.instance && `instance ${step.instance}`, step.channel && `channel ${step.channel}`, step.note].filter(Boolean).join(', ');
      lines.push(`         ${s.dim('->')} ${what}`);
    }
  }
  return lines;
}

export function renderResources(plan: Plan, s: Styler = plainStyle): string[] {
  const r = plan.resources;
  const t = plan.target;
  return [
    `${s.bold('Resources:')} ${plural(plan.templates.length, 'template')} (${formatBytes(r.template_memory_bytes)} shared), ` +
      `estimated ${formatBytes(r.estimated_total_bytes)} of ${formatBytes(t.memory_bytes)} host memory ` +
      `(worst case ${formatBytes(r.worst_case_bytes)}), ${r.committed_vcpus} vCPUs committed of ${t.vcpus} x ${t.vcpu_overcommit}`,
  ];
}

/** For a plan over several targets: each target, its host and the instances placed on it. */
export function renderPlacement(plan: Plan, s: Styler = plainStyle): string[] {
  if (!plan.targets) return [];
  const lines = [s.bold('Placement:')];
  for (const t of plan.targets) {
    const ids = plan.instances.filter((i) => i.target === t.name).map((i) => i.id);
    lines.push(`  ${s.bold(t.name)} ${s.dim(`(${t.host ?? 'this machine'}, ${formatBytes(t.memory_bytes)}, ${plural(t.vcpus, 'vCPU')})`)}: ${ids.join(', ') || s.dim('nothing')}`);
  }
  const cross = crossHostChannels(plan);
  for (const c of cross) lines.push(`  ${s.yellow('between hosts:')} channel ${c.id}`);
  return lines;
}

/** The full listing of `mclc show`. */
export function renderPlan(plan: Plan, s: Styler = plainStyle): string {
  const out: string[] = [];
  out.push(`${s.bold('System')} ${plan.system} ${s.dim('on target')} ${plan.target.name} (${plan.target.backend})`);
  out.push(s.dim(`format ${plan.format_version}, mclc ${plan.mclc_version}, plan digest ${plan.digests.plan.slice(0, 12)}`));
  out.push(
    s.dim(plan.prior_state ? `planned against state ${plan.prior_state.lineage} serial ${plan.prior_state.serial}` : 'planned against no prior state'),
  );
  if (plan.targets) out.push('', ...renderPlacement(plan, s));
  out.push('', s.bold(`Instances (${plan.instances.length}):`));
  for (const i of plan.instances) {
    const mode = i.mode === 'single' ? '' : i.mode === 'replicas' ? ` x${i.replicas}` : ` per session (warm ${i.replicas}, max ${i.max_sessions ?? '?'})`;
    const label = i.label ? ` [${i.label}]` : '';
    out.push(`  ${s.bold(i.id)}: ${i.component}${mode}${label}  ${formatBytes(i.memory_bytes)}, ${plural(i.vcpus, 'vCPU')}, template ${i.template}, restart ${i.restart.policy}`);
    for (const p of i.ports) {
      const exp = p.exposed_on !== undefined ? `, exposed on tcp ${p.exposed_on}` : '';
      out.push(`      ${p.direction} ${p.name}: ${p.protocol} (slot ${p.slot}${exp})`);
    }
    const params = Object.keys(i.params).sort();
    if (params.length) out.push(`      params: ${params.map((k) => `${k}=${canonicalJson(i.params[k])}`).join(', ')}`);
    for (const d of i.declassifies) out.push(`      declassifies ${d.from} -> ${d.to}${d.ports ? ` on ${d.ports.join(', ')}` : ''}`);
  }
  out.push('', s.bold(`Channels (${plan.channels.length}):`));
  for (const c of plan.channels) {
    const inv = c.invariants;
    const rate = inv.rate ? `${inv.rate.per_second}/s burst ${inv.rate.burst}` : 'no rate limit';
    out.push(`  ${c.from.instance}.${c.from.port} -> ${c.to.instance}.${c.to.port}  ${c.protocol}`);
    out.push(
      s.dim(
        `      ops ${c.ops.map((o) => o.name).join(', ') || '(none)'}; max ${formatBytes(inv.max_message_bytes)}; ${rate}; timeout ${inv.timeout_ms}ms; ` +
          `inflight ${inv.max_inflight}${inv.order ? '; ordered' : ''}${c.query ? '; query' : ''}`,
      ),
    );
    for (const d of c.declassifies ?? []) out.push(s.dim(`      declassifies ${d.from} -> ${d.to}`));
  }
  out.push('', s.bold(`Exposures (${plan.exposures.length}):`));
  for (const e of plan.exposures) out.push(`  ${e.transport} ${e.host_port} -> ${e.instance}.${e.port} (${e.protocol})`);
  out.push('', ...renderChecks(plan.checks, s, true), '', ...renderResources(plan, s));
  return out.join('\n') + '\n';
}

/** A clone that `mclc migrate` moved from the target the plan places it on (its home) to another. */
export interface MovedClone {
  instance: string;
  clone: number;
  from: string;
  to: string;
  at: string;
}

/**
 * The clones the targets' states record as moved by `mclc migrate`: drift from the plan's
 * placement that the plan leaves where it is (applying it again does not move them back), shown
 * beside the changes rather than as one.
 */
export function movedClones(states: Map<string, DeploymentState | undefined>): MovedClone[] {
  return [...states].flatMap(([from, s]) => (s?.moved ?? []).map((m) => ({ instance: m.instance, clone: m.clone, from, to: m.to, at: m.at })));
}

/** The drift notes of `mclc plan`: `~ db[0] moved: node1 -> node2, by mclc migrate at TIME`. */
export function renderDrift(drift: readonly MovedClone[], s: Styler): string[] {
  if (!drift.length) return [];
  return [
    s.bold('Drift (left as it is; `mclc apply --replace INSTANCE` brings a clone home):'),
    ...drift.map((d) => `  ${s.yellow('~')} ${d.instance}[${d.clone}] moved: ${d.from} -> ${d.to}, by mclc migrate at ${d.at}`),
  ];
}
