// Flattens the root system into the deployed graph: one entry per component
// instance (ids are dotted paths from the root), channels between component
// ports (nested systems' exports resolved to the inner port), exposures, and
// the policy rules with the instance-id prefix of the system that wrote them.

import type { Span } from '@mcl/language';
import type { Module } from '../context';
import type { ScopedRule } from '../policy/types';
import type { ComponentInfo, PortInfo } from './components';
import type { ConnInfo, EgressInfo, ExposeAttrs, InstInfo, SystemInfo } from './systems';

export interface FlatInstance {
  id: string;
  inst: InstInfo;
  comp: ComponentInfo;
  /** Module of the system that declared the instance. */
  module: Module;
}

export interface FlatChannel {
  id: string;
  from: { instance: string; port: string };
  to: { instance: string; port: string };
  conn: ConnInfo;
  module: Module;
}

export interface FlatExposure {
  hostPort: number;
  instance: string;
  port: PortInfo;
  file: string;
  span: Span;
  /** Its attribute block's values, when it has one. */
  attrs?: ExposeAttrs;
}

/** An egress with its scoped name and the component port behind it. */
export interface FlatEgress {
  /** The egress's name with the instance-id prefix of its system (`mail`, `shop.mail`). */
  name: string;
  instance: string;
  port: PortInfo;
  egress: EgressInfo;
  file: string;
}

export interface Flat {
  instances: FlatInstance[];
  channels: FlatChannel[];
  exposures: FlatExposure[];
  egresses: FlatEgress[];
  rules: ScopedRule[];
  /**
   * The component port behind every export of every nested system, by
   * `<system instance id>.<export name>`: policy rules name a subsystem's
   * ports by export, as `connect` and `expose` do.
   */
  exports: Record<string, { instance: string; port: string }>;
}

function join(prefix: string, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}

/** The component port behind a port of an instance, following nested systems' exports. */
function leaf(inst: InstInfo, prefix: string, port: string): { instance: string; port: PortInfo } | undefined {
  let cur = inst;
  let id = join(prefix, inst.name);
  let name = port;
  for (let depth = 0; depth < 1000; depth++) {
    if (cur.comp) {
      const p = cur.comp.portByName.get(name);
      return p && { instance: id, port: p };
    }
    const ex = cur.sys?.exports.get(name);
    if (!ex) return undefined;
    cur = ex.inst;
    id = join(id, ex.inst.name);
    name = ex.port;
  }
  return undefined;
}

export function elaborate(root: SystemInfo): Flat {
  const out: Flat = { instances: [], channels: [], exposures: [], egresses: [], rules: [], exports: {} };
  // Explicit work list instead of recursion: nesting depth is bounded only by the sources.
  const work: { sys: SystemInfo; prefix: string }[] = [{ sys: root, prefix: '' }];
  while (work.length) {
    const { sys, prefix } = work.pop()!;
    const m = sys.entry.module;
    for (const inst of sys.instances.values()) {
      const id = join(prefix, inst.name);
      if (inst.comp) {
        out.instances.push({ id, inst, comp: inst.comp, module: m });
        for (const p of inst.comp.ports) {
          if (p.expose) out.exposures.push({ hostPort: p.expose.port, instance: id, port: p, file: inst.comp.entry.module.file, span: p.expose.span, attrs: p.expose.attrs });
        }
      } else if (inst.sys) {
        for (const name of inst.sys.exports.keys()) {
          const l = leaf(inst, prefix, name);
          if (l) out.exports[`${id}.${name}`] = { instance: l.instance, port: l.port.name };
        }
        work.push({ sys: inst.sys, prefix: id });
      }
    }
    for (const c of sys.connects) {
      const from = leaf(c.from.inst, prefix, c.from.port);
      const to = leaf(c.to.inst, prefix, c.to.port);
      if (!from || !to) continue;
      out.channels.push({
        id: `${from.instance}.${from.port.name}->${to.instance}.${to.port.name}`,
        from: { instance: from.instance, port: from.port.name },
        to: { instance: to.instance, port: to.port.name },
        conn: c,
        module: m,
      });
    }
    for (const x of sys.exposes) {
      const l = leaf(x.inst, prefix, x.port);
      if (l) out.exposures.push({ hostPort: x.hostPort, instance: l.instance, port: l.port, file: m.file, span: x.span, attrs: x.attrs });
    }
    for (const x of sys.egresses) {
      const l = leaf(x.inst, prefix, x.port);
      if (l) out.egresses.push({ name: join(prefix, x.name), instance: l.instance, port: l.port, egress: x, file: m.file });
    }
    for (const r of sys.rules) out.rules.push({ rule: r, file: m.file, scope: prefix });
  }
  return out;
}
