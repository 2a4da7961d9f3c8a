// Questions about the composition that several features ask: what an instance
// instantiates, its effective settings, the ports of a component and the
// operations of a port's protocol. Names are always resolved through the
// compiler's references; this module only reads the tree around them.

import type { SymbolInfo } from '@mcl/compiler';
import type { ComponentDecl, InstanceDecl, SystemDecl } from '@mcl/language';
import type { Snapshot } from './analysis';
import { exprText, findComponent, findNamed, findSystem } from './ast-util';

export interface ResolvedParam {
  name: string;
  value?: string;
  /** Where the value comes from. */
  origin: 'override' | 'default' | 'unset';
  sensitive: boolean;
  type: string;
}

export interface ResolvedInstance {
  instance: InstanceDecl;
  component?: SymbolInfo;
  decl?: ComponentDecl | SystemDecl;
  mode: 'single' | 'replicas' | 'per_session';
  replicas?: number;
  pool?: number;
  maxSessions?: number;
  memoryBytes?: number;
  vcpus?: number;
  params: ResolvedParam[];
}

/** The component (or nested system) symbol an instance instantiates. */
export function instanceTarget(s: Snapshot, file: string, inst: InstanceDecl): SymbolInfo | undefined {
  if (inst.component.parts.length === 0) return undefined;
  const sym = s.refs.resolveSpan(file, inst.component.span);
  return sym && (sym.kind === 'component' || sym.kind === 'system') ? sym : undefined;
}

export function resolveInstance(s: Snapshot, file: string, inst: InstanceDecl): ResolvedInstance {
  const out: ResolvedInstance = { instance: inst, mode: 'single', params: [] };
  const target = instanceTarget(s, file, inst);
  out.component = target;
  const text = s.text(file);
  const overrides = new Map<string, string | undefined>();
  const applySetting = (m: InstanceDecl['settings'][number] | ComponentDecl['members'][number], t: string | undefined): void => {
    switch (m.kind) {
      case 'InstancesMember':
        out.mode = m.mode;
        out.replicas = m.mode === 'replicas' && m.count?.kind === 'Int' ? m.count.value : undefined;
        out.pool = m.pool?.kind === 'Int' ? m.pool.value : undefined;
        out.maxSessions = m.max?.kind === 'Int' ? m.max.value : undefined;
        break;
      case 'MemoryMember':
        if (m.value.kind === 'Size') out.memoryBytes = m.value.bytes;
        break;
      case 'VcpusMember':
        if (m.value.kind === 'Int') out.vcpus = m.value.value;
        break;
      case 'ParamOverride':
        overrides.set(m.name.name, exprText(t, m.value));
        break;
      default:
        break;
    }
  };
  if (target) {
    const declFile = s.program.files.get(target.file);
    const decl = target.kind === 'component' ? findComponent(declFile, target.nameSpan) : findSystem(declFile, target.nameSpan);
    out.decl = decl;
    if (decl?.kind === 'ComponentDecl') {
      const declText = s.text(target.file);
      for (const m of decl.members) applySetting(m, declText);
      for (const m of decl.members) {
        if (m.kind !== 'ParamDecl') continue;
        out.params.push({
          name: m.name.name,
          value: exprText(declText, m.default),
          origin: m.default ? 'default' : 'unset',
          sensitive: m.sensitive,
          type: declText ? declText.slice(m.type.span.start, m.type.span.end).replace(/\s+/g, ' ') : '',
        });
      }
    }
  }
  for (const m of inst.settings) applySetting(m, text);
  for (const p of out.params) {
    if (overrides.has(p.name)) {
      p.value = overrides.get(p.name);
      p.origin = 'override';
    }
  }
  return out;
}

/** Ports of a component, or exported ports of a system, in declaration order. */
export function portsOf(s: Snapshot, owner: SymbolInfo): SymbolInfo[] {
  const kinds = owner.kind === 'system' ? ['export'] : ['port'];
  return s.refs
    .children(owner.id)
    .filter((c) => kinds.includes(c.kind))
    .sort((a, b) => a.nameSpan.start - b.nameSpan.start);
}

/** The protocol of a port or an exported port. */
export function protocolOf(s: Snapshot, port: SymbolInfo, depth = 0): SymbolInfo | undefined {
  if (depth > 16) return undefined;
  const file = s.program.files.get(port.file);
  if (port.kind === 'port') {
    const decl = findNamed(file, 'PortDecl', port.nameSpan);
    if (!decl) return undefined;
    const sym = s.refs.resolveSpan(port.file, decl.protocol.span);
    return sym?.kind === 'protocol' ? sym : undefined;
  }
  if (port.kind === 'export') {
    const decl = findNamed(file, 'ExportDecl', port.nameSpan);
    if (!decl) return undefined;
    const inner = s.refs.resolveSpan(port.file, decl.port.port.span);
    return inner ? protocolOf(s, inner, depth + 1) : undefined;
  }
  return undefined;
}

export function operationsOf(s: Snapshot, protocol: SymbolInfo): SymbolInfo[] {
  return s.refs
    .children(protocol.id)
    .filter((c) => c.kind === 'operation')
    .sort((a, b) => a.nameSpan.start - b.nameSpan.start);
}

/**
 * The module path a symbol was declared in, for messages (`std.http`,
 * `shop.types`): the compiler's module symbol of its file, which is relative to
 * the project root.
 */
export function moduleOf(s: Snapshot, sym: SymbolInfo): string {
  const mod = s.refs.declarationsIn(sym.file).find((d) => d.kind === 'module');
  if (mod) return mod.qualifiedName;
  if (sym.file.startsWith('std:')) return 'std.' + sym.file.slice(4);
  return sym.file.replace(/\.mcl$/, '').split('/').join('.');
}
