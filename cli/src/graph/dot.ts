// The wiring graph of a plan in Graphviz DOT: one node per instance (inside a
// cluster per nested system), one edge per channel from the requiring to the
// providing side labelled with the protocol and its limits, and an `outside`
// node with an edge to every exposed port. The output is deterministic (the
// plan is sorted), so it can be compared byte for byte.
//
// A plan drawn in spite of policy violations carries failing checks: every
// instance, channel and exposure in a failing check's counterexample is drawn
// red and bold, with the ids of the checks it breaks in its tooltip, so the
// picture shows where the policy fails and not only that it does.

import type { Plan, PlanExposure, PlanInstance } from '@mcl/plan';

const MARK = 'color=red, fontcolor=red, penwidth=2';

/** The ids of the failing checks that name each instance, channel and exposure. */
function failures(plan: Plan) {
  const instances = new Map<string, string[]>();
  const channels = new Map<string, string[]>();
  const exposures = new Map<PlanExposure, string[]>();
  const add = <K>(m: Map<K, string[]>, k: K, id: string) => {
    const l = m.get(k) ?? [];
    if (!l.includes(id)) l.push(id);
    m.set(k, l);
  };
  for (const check of plan.checks) {
    if (check.status !== 'fail') continue;
    for (const step of check.counterexample ?? []) {
      if (step.instance !== undefined) add(instances, step.instance, check.id);
      if (step.channel !== undefined) add(channels, step.channel, check.id);
      // An exposure appears in a counterexample only as a note naming its host port
      // ("web exposed on tcp 8080", "outside, through tcp 8080 -> web.http"); host
      // ports are unique in a plan, so the port identifies it.
      for (const x of plan.exposures) if (step.note !== undefined && new RegExp(`\\btcp ${x.host_port}\\b`).test(step.note)) add(exposures, x, check.id);
    }
  }
  return { instances, channels, exposures };
}

function failingTooltip(base: string, checks: string[] | undefined): string {
  return checks ? `${base}\nfails: ${checks.join(', ')}` : base;
}

function q(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

function nodeLabel(i: PlanInstance): string {
  const extra: string[] = [];
  if (i.label) extra.push(`[${i.label}]`);
  if (i.mode === 'replicas') extra.push(`x${i.replicas}`);
  if (i.mode === 'per_session') extra.push(`per session (max ${i.max_sessions ?? '?'})`);
  const last = i.id.split('.').pop()!;
  return [last, i.component, ...(extra.length ? [extra.join(' ')] : [])].join('\n');
}

interface Cluster {
  path: string;
  children: Map<string, Cluster>;
  instances: PlanInstance[];
}

export function planToDot(plan: Plan): string {
  const root: Cluster = { path: '', children: new Map(), instances: [] };
  for (const inst of plan.instances) {
    const parts = inst.id.split('.');
    let c = root;
    for (let k = 0; k < parts.length - 1; k++) {
      const path = parts.slice(0, k + 1).join('.');
      let next = c.children.get(path);
      if (!next) {
        next = { path, children: new Map(), instances: [] };
        c.children.set(path, next);
      }
      c = next;
    }
    c.instances.push(inst);
  }

  const failed = failures(plan);
  const lines: string[] = [];
  lines.push(`digraph ${q(plan.system)} {`);
  lines.push(`  graph [rankdir=LR, fontname="Helvetica", label=${q(`${plan.system} (target ${plan.target.name})`)}, labelloc=t];`);
  lines.push('  node [shape=box, style=rounded, fontname="Helvetica"];');
  lines.push('  edge [fontname="Helvetica", fontsize=10];');
  if (plan.exposures.length) lines.push('  "outside" [label="outside", shape=ellipse, style=dashed];');

  const emit = (c: Cluster, indent: string) => {
    for (const inst of c.instances) {
      const fails = failed.instances.get(inst.id);
      const attrs = [`label=${q(nodeLabel(inst))}`, `tooltip=${q(failingTooltip(inst.id, fails))}`];
      if (inst.mode !== 'single') attrs.push('peripheries=2');
      if (fails) attrs.push(MARK);
      lines.push(`${indent}${q(inst.id)} [${attrs.join(', ')}];`);
    }
    for (const child of [...c.children.values()].sort((a, b) => (a.path < b.path ? -1 : 1))) {
      lines.push(`${indent}subgraph ${q(`cluster_${child.path}`)} {`);
      lines.push(`${indent}  label=${q(child.path.split('.').pop()!)};`);
      lines.push(`${indent}  style=dashed;`);
      emit(child, indent + '  ');
      lines.push(`${indent}}`);
    }
  };
  emit(root, '  ');

  for (const ch of plan.channels) {
    const inv = ch.invariants;
    const label = [ch.protocol];
    if (inv.rate) label.push(`${inv.rate.per_second}/s`);
    if (inv.order) label.push('ordered');
    const fails = failed.channels.get(ch.id);
    const attrs = [
      `label=${q(label.join('\n'))}`,
      `tooltip=${q(failingTooltip(ch.id, fails))}`,
      `taillabel=${q(ch.from.port)}`,
      `headlabel=${q(ch.to.port)}`,
      `labelfontsize=8`,
    ];
    if (fails) attrs.push(MARK);
    lines.push(`  ${q(ch.from.instance)} -> ${q(ch.to.instance)} [${attrs.join(', ')}];`);
  }
  for (const e of plan.exposures) {
    const fails = failed.exposures.get(e);
    const mark = fails ? `, tooltip=${q(failingTooltip(`${e.instance}.${e.port}`, fails))}, ${MARK}` : '';
    lines.push(`  "outside" -> ${q(e.instance)} [label=${q(`${e.transport} ${e.host_port}\n${e.protocol}`)}, headlabel=${q(e.port)}, labelfontsize=8, style=dashed${mark}];`);
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

/** Renders DOT to SVG with Graphviz compiled to WebAssembly (no network, no system Graphviz). */
export async function dotToSvg(dot: string): Promise<string> {
  const viz = await import('@viz-js/viz');
  const instance = await viz.instance();
  return instance.renderString(dot, { format: 'svg', engine: 'dot' });
}
