// The wiring graph of a plan in Graphviz DOT: one node per instance (inside a
// cluster per nested system), one edge per channel from the requiring to the
// providing side labelled with the protocol and its limits, and an `outside`
// node with an edge to every exposed port. The output is deterministic (the
// plan is sorted), so it can be compared byte for byte.

import type { Plan, PlanInstance } from '@mcl/plan';

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

  const lines: string[] = [];
  lines.push(`digraph ${q(plan.system)} {`);
  lines.push(`  graph [rankdir=LR, fontname="Helvetica", label=${q(`${plan.system} (target ${plan.target.name})`)}, labelloc=t];`);
  lines.push('  node [shape=box, style=rounded, fontname="Helvetica"];');
  lines.push('  edge [fontname="Helvetica", fontsize=10];');
  if (plan.exposures.length) lines.push('  "outside" [label="outside", shape=ellipse, style=dashed];');

  const emit = (c: Cluster, indent: string) => {
    for (const inst of c.instances) {
      const attrs = [`label=${q(nodeLabel(inst))}`, `tooltip=${q(inst.id)}`];
      if (inst.mode !== 'single') attrs.push('peripheries=2');
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
    const attrs = [
      `label=${q(label.join('\n'))}`,
      `tooltip=${q(ch.id)}`,
      `taillabel=${q(ch.from.port)}`,
      `headlabel=${q(ch.to.port)}`,
      `labelfontsize=8`,
    ];
    lines.push(`  ${q(ch.from.instance)} -> ${q(ch.to.instance)} [${attrs.join(', ')}];`);
  }
  for (const e of plan.exposures) {
    lines.push(`  "outside" -> ${q(e.instance)} [label=${q(`${e.transport} ${e.host_port}\n${e.protocol}`)}, headlabel=${q(e.port)}, labelfontsize=8, style=dashed];`);
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
