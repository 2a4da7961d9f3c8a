// Code lenses: above each system, how many instances (and guest VMs) and
// channels it has; above each instance, its VMs and its channels in and out;
// and a "Show plan" lens where a plan can be made (on `deploy`, or on the
// systems of a file that has no `deploy`).
//
// The counts are plain text (a lens whose command is empty is shown but does
// nothing). "Show plan" runs the client command `mcl.showPlan` with the
// document's URI: the VS Code extension implements it (it asks the server's
// `mcl/plan` request and opens the plan); a client without that command can
// leave it out or show it inert, as lenses are advisory.

import type { InstanceDecl, SystemDecl } from '@mcl/language';
import type { CodeLens } from 'vscode-languageserver';
import type { Snapshot } from '../analysis';
import { toRange } from '../convert';
import { resolveInstance } from '../model';
import type { ServerContext } from '../service';

/** The client command behind "Show plan", with the document's URI as its argument. */
export const SHOW_PLAN_COMMAND = 'mcl.showPlan';

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export function codeLenses(s: Snapshot, c: ServerContext, file: string): CodeLens[] {
  const ast = s.program.files.get(file);
  const lines = s.lines(file);
  if (!ast || !lines) return [];
  const uri = c.paths.toUri(file);
  const out: CodeLens[] = [];
  const info = (span: { start: number; end: number }, title: string): void => {
    out.push({ range: toRange(lines, { start: span.start, end: span.start }), command: { title, command: '' } });
  };
  const showPlan = (span: { start: number; end: number }): void => {
    out.push({ range: toRange(lines, { start: span.start, end: span.start }), command: { title: 'Show plan', command: SHOW_PLAN_COMMAND, arguments: [uri] } });
  };
  const hasDeploy = ast.decls.some((d) => d.kind === 'DeployDecl');
  for (const d of ast.decls) {
    if (d.kind === 'DeployDecl') showPlan(d.span);
    if (d.kind !== 'SystemDecl') continue;
    info(d.span, systemSummary(s, file, d));
    if (!hasDeploy) showPlan(d.span);
    for (const m of d.members) if (m.kind === 'InstanceDecl') info(m.span, instanceSummary(s, file, d, m));
  }
  return out;
}

/** Guest VMs an instance starts with (replicas, or the ready pool of a per-session component); undefined for a nested system. */
function vmsOf(s: Snapshot, file: string, inst: InstanceDecl): { vms?: number; perSession: boolean } {
  const r = resolveInstance(s, file, inst);
  if (r.component?.kind === 'system' || !r.component) return { perSession: false };
  if (r.mode === 'replicas') return { vms: r.replicas ?? 1, perSession: false };
  if (r.mode === 'per_session') return { vms: r.pool ?? 0, perSession: true };
  // Created instances start with none: their creator forks them at run time.
  if (r.mode === 'created') return { vms: 0, perSession: false };
  return { vms: 1, perSession: false };
}

function systemSummary(s: Snapshot, file: string, sys: SystemDecl): string {
  const instances = sys.members.filter((m): m is InstanceDecl => m.kind === 'InstanceDecl');
  const channels = sys.members.filter((m) => m.kind === 'ConnectDecl').length;
  let vms = 0;
  let known = true;
  let perSession = false;
  for (const inst of instances) {
    const v = vmsOf(s, file, inst);
    if (v.vms === undefined) known = false;
    else vms += v.vms;
    perSession ||= v.perSession;
  }
  const vmText = known ? ` (${plural(vms, 'VM')}${perSession ? ' at start, more per session' : ''})` : '';
  return `${plural(instances.length, 'instance')}${vmText} · ${plural(channels, 'channel')}`;
}

function instanceSummary(s: Snapshot, file: string, sys: SystemDecl, inst: InstanceDecl): string {
  const name = inst.name.name;
  let into = 0;
  let outOf = 0;
  for (const m of sys.members) {
    if (m.kind !== 'ConnectDecl') continue;
    if (m.to.instance.name === name) into++;
    if (m.from.instance.name === name) outOf++;
  }
  const v = vmsOf(s, file, inst);
  const parts: string[] = [];
  if (v.perSession) parts.push(`a VM per session${v.vms ? `, ${v.vms} ready` : ''}`);
  else if (v.vms !== undefined) parts.push(plural(v.vms, 'VM'));
  parts.push(into + outOf === 0 ? 'no channels' : `${plural(into + outOf, 'channel')} (${into} in, ${outOf} out)`);
  return parts.join(' · ');
}
