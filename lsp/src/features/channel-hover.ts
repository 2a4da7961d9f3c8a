// Hover over a `connect` line: the channel as the plan has it, with every
// attribute resolved (defaults included) and the operations it carries. The
// plan is built on demand, once per build and project, and only exists when
// the project has no errors; otherwise the hover says so.

import type { Plan, PlanChannel } from '@mcl/plan';
import type { ConnectDecl } from '@mcl/language';
import type { Snapshot } from '../analysis';
import { formatSize } from '../ast-util';
import type { ServerContext } from '../service';

const plans = new WeakMap<Snapshot, Map<string, Plan | null>>();

function planOf(s: Snapshot, c: ServerContext, file: string): Plan | null {
  const project = c.analyzer.projectOf(file);
  if (!project) return null;
  let byRoot = plans.get(s);
  if (!byRoot) plans.set(s, (byRoot = new Map()));
  if (!byRoot.has(project.root)) {
    const { result } = c.analyzer.compileProject(project, { emitPlan: true });
    byRoot.set(project.root, result.plan && !result.diagnostics.some((d) => d.severity === 'error') ? result.plan : null);
  }
  return byRoot.get(project.root) ?? null;
}

/** The plan's channels for a `connect` (several when its system is instantiated more than once). */
function channelsOf(plan: Plan, connect: ConnectDecl): PlanChannel[] {
  const from = `${connect.from.instance.name}.${connect.from.port.name}`;
  const to = `${connect.to.instance.name}.${connect.to.port.name}`;
  const ends = (endpoint: { instance: string; port: string }, written: string) =>
    `${endpoint.instance}.${endpoint.port}` === written || `${endpoint.instance}.${endpoint.port}`.endsWith('.' + written);
  return plan.channels.filter((ch) => ends(ch.from, from) && ends(ch.to, to));
}

function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}min`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

export function describeChannel(s: Snapshot, c: ServerContext, file: string, connect: ConnectDecl): string {
  const plan = planOf(s, c, file);
  if (!plan) return 'The resolved channel is shown once the project has no errors.';
  const channels = channelsOf(plan, connect);
  if (channels.length === 0) return 'This channel is not part of the plan (its system is not deployed).';
  const ch = channels[0];
  const inv = ch.invariants;
  const lines = [
    `channel ${ch.id}`,
    `  protocol ${ch.protocol}`,
    `  allow ${ch.ops.map((o) => o.name).join(', ')}`,
    `  max_message ${formatSize(inv.max_message_bytes)}`,
    `  timeout ${formatDuration(inv.timeout_ms)}`,
    `  max_inflight ${inv.max_inflight}`,
    inv.rate ? `  rate ${inv.rate.per_second}/s burst ${inv.rate.burst}` : '  rate unlimited',
  ];
  if (inv.order) lines.push(`  order: enforced (${inv.order.transitions.length} states)`);
  if (ch.query) lines.push('  query (requests carry none of the requiring side\'s data)');
  // A late binding: the port's candidates, the one it starts on first.
  if (ch.candidate) {
    const port = plan.instances.find((i) => i.id === ch.from.instance)?.ports.find((p) => p.name === ch.from.port);
    const cands = plan.channels.filter((x) => x.candidate && port?.channels.includes(x.id));
    lines.push(`  candidates ${cands.map((x) => `${x.to.instance}.${x.to.port}${x.candidate!.initial ? ' (initial)' : ''}`).join(' | ')}`);
  }
  for (const d of ch.declassifies ?? []) lines.push(`  declassifies ${d.from} -> ${d.to}`);
  const more = channels.length > 1 ? `\n\nThe system is instantiated ${channels.length} times; this is \`${ch.id}\`.` : '';
  return '```mcl\n' + lines.join('\n') + '\n```' + more;
}
