// Questions about the composition that several features ask: what an instance
// instantiates, its effective settings (the compiler's), the ports of a component and the
// operations of a port's protocol. Names are always resolved through the
// compiler's references; this module only reads the tree around them.

import type { SymbolInfo } from '@mcl/compiler';
import type { ComponentDecl, InstanceDecl, SystemDecl } from '@mcl/language';
import type { Snapshot } from './analysis';
import { findComponent, findSystem } from './ast-util';

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
  mode: 'single' | 'replicas' | 'per_session' | 'created';
  replicas?: number;
  pool?: number;
  maxSessions?: number;
  /** For a created instance: its creator's factory port (`c.workers`) and the factory's bound. */
  createdBy?: { port: string; max: number };
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

/**
 * An instance with its settings in effect, as the compiler resolved them
 * (`Program.instances`); only the texts of values and types are read here,
 * from where the compiler says they are written.
 */
export function resolveInstance(s: Snapshot, file: string, inst: InstanceDecl): ResolvedInstance {
  const out: ResolvedInstance = { instance: inst, mode: 'single', params: [] };
  const target = instanceTarget(s, file, inst);
  out.component = target;
  if (target) {
    const declFile = s.program.files.get(target.file);
    out.decl = target.kind === 'component' ? findComponent(declFile, target.nameSpan) : findSystem(declFile, target.nameSpan);
  }
  const symbol = s.refs.symbolAt(file, inst.name.span.start)?.symbol;
  const settings = symbol ? s.program.instances.get(symbol.id) : undefined;
  if (!settings) return out;
  out.mode = settings.mode;
  if (settings.mode === 'replicas') out.replicas = settings.replicas;
  if (settings.mode === 'per_session') {
    out.pool = settings.replicas;
    out.maxSessions = settings.maxSessions;
  }
  if (settings.createdBy) out.createdBy = { ...settings.createdBy };
  out.memoryBytes = settings.memory;
  out.vcpus = settings.vcpus;
  out.params = settings.params.map((p) => ({
    name: p.name,
    value: p.value ? clip(s.text(p.value.file)?.slice(p.value.span.start, p.value.span.end)) : undefined,
    origin: p.origin,
    sensitive: p.sensitive,
    type: s.text(p.type.file)?.slice(p.type.span.start, p.type.span.end).replace(/\s+/g, ' ') ?? '',
  }));
  return out;
}

/** A value as written, on one line and at most 60 characters. */
function clip(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const line = raw.replace(/\s+/g, ' ').trim();
  return line.length > 60 ? line.slice(0, 57) + '...' : line;
}

/** Ports of a component, or exported ports of a system, in declaration order. */
export function portsOf(s: Snapshot, owner: SymbolInfo): SymbolInfo[] {
  const kinds = owner.kind === 'system' ? ['export'] : ['port'];
  return s.refs
    .children(owner.id)
    .filter((c) => kinds.includes(c.kind))
    .sort((a, b) => a.nameSpan.start - b.nameSpan.start);
}

/** The protocol of a port or an exported port, as the compiler resolved it (`SymbolInfo.protocol`). */
export function protocolOf(s: Snapshot, port: SymbolInfo): SymbolInfo | undefined {
  const sym = port.protocol === undefined ? undefined : s.program.symbols.get(port.protocol);
  return sym?.kind === 'protocol' ? sym : undefined;
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
