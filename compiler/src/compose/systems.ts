// Systems: instances, exports, wiring, exposures and policy blocks, checked
// once per declaration; then `elaborate` flattens the root system into
// instances with dotted ids and channels between component ports.

import type {
  ChannelAttr,
  ConnectDecl,
  ExportDecl,
  InstanceDecl,
  PolicyRule,
  PortRef,
  Span,
  SystemDecl,
} from '@mcl/language';
import { Codes } from '@mcl/language';
import type { ChannelInvariants, JsonValue, OrderAutomaton } from '@mcl/plan';
import type { InstanceParam, InstanceSettings } from '../api';
import { Ctx, related, textOf, type DeclEntry, type Module } from '../context';
import { resolveRef } from '../resolve/scope';
import type { ProtocolInfo } from '../types/protocols';
import type { Types } from '../types/message-types';
import { compileOrder } from '../types/dfa';
import { didYouMean } from '../util/suggest';
import {
  hostPort,
  memoryOf,
  modeOf,
  labelBelow,
  restartOf,
  useLabel,
  vcpusOf,
  type ComponentInfo,
  type Components,
  type ModeInfo,
  type PortInfo,
  type RestartInfo,
} from './components';

export const DEFAULT_MAX_MESSAGE = 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_INFLIGHT = 64;

/** A port as seen from the system that holds the instance: a component's port or a nested system's export. */
export interface SysPort {
  name: string;
  direction: 'provide' | 'require';
  protocol?: ProtocolInfo;
  optional: boolean;
  symbol: string;
}

export interface InstInfo {
  name: string;
  decl: InstanceDecl;
  symbol: string;
  comp?: ComponentInfo;
  sys?: SystemInfo;
  // Resolved settings (component instances only).
  memory: number;
  vcpus: number;
  mode: ModeInfo;
  restart: RestartInfo;
  label?: string;
  labelSpan?: Span;
  params: Record<string, JsonValue>;
}

export interface ExportInfo extends SysPort {
  decl: ExportDecl;
  inst: InstInfo;
  port: string;
}

export interface ConnInfo {
  decl: ConnectDecl;
  from: { inst: InstInfo; port: string };
  to: { inst: InstInfo; port: string };
  protocol: ProtocolInfo;
  invariants: Omit<ChannelInvariants, 'order'>;
  /** Operations the channel carries when `allow` restricts them. */
  allow?: string[];
}

export interface ExposeInfo {
  inst: InstInfo;
  port: string;
  hostPort: number;
  span: Span;
}

export interface SystemInfo {
  entry: DeclEntry;
  instances: Map<string, InstInfo>;
  exports: Map<string, ExportInfo>;
  connects: ConnInfo[];
  exposes: ExposeInfo[];
  rules: PolicyRule[];
  /** Systems this one instantiates (for root detection). */
  uses: Set<DeclEntry>;
}

export function portOf(inst: InstInfo, name: string): SysPort | undefined {
  if (inst.comp) {
    const p = inst.comp.portByName.get(name);
    return p && { name: p.name, direction: p.direction, protocol: p.protocol, optional: p.optional, symbol: p.symbol };
  }
  return inst.sys?.exports.get(name);
}

function portNames(inst: InstInfo): string[] {
  if (inst.comp) return inst.comp.ports.map((p) => p.name);
  return inst.sys ? [...inst.sys.exports.keys()] : [];
}

export class Systems {
  private readonly infos = new Map<DeclEntry, SystemInfo | undefined>();
  private readonly stack: DeclEntry[] = [];

  constructor(
    private readonly ctx: Ctx,
    private readonly types: Types,
    private readonly components: Components,
  ) {}

  /** Takes over an earlier compile's checked systems that `keep` accepts (incremental.ts). */
  adopt(prior: Systems, keep: (e: DeclEntry) => boolean): void {
    for (const [e, info] of prior.infos) if (keep(e)) this.infos.set(e, info);
  }

  checkAll(): void {
    for (const m of this.ctx.modules.values()) for (const e of m.decls.values()) if (e.kind === 'system') this.get(e);
  }

  /** All checked systems. */
  all(): SystemInfo[] {
    return [...this.infos.values()].filter((x): x is SystemInfo => !!x);
  }

  /** Checks a system declaration (once); undefined while it is being checked (recursion). */
  get(e: DeclEntry, at?: { m: Module; span: Span }): SystemInfo | undefined {
    if (this.infos.has(e)) return this.infos.get(e);
    const idx = this.stack.indexOf(e);
    if (idx >= 0) {
      const cyc = [...this.stack.slice(idx), e].map((x) => x.name).join(' -> ');
      if (at) {
        this.ctx.report(Codes.SystemContainsItself, `system \`${e.name}\` contains itself: ${cyc}`, at.m.file, at.span, {
          hint: 'a system cannot be an instance of itself, directly or through other systems; remove this instance',
        });
      }
      return undefined;
    }
    this.stack.push(e);
    const info = this.check(e);
    this.stack.pop();
    this.infos.set(e, info);
    return info;
  }

  private check(e: DeclEntry): SystemInfo {
    const d = e.decl as SystemDecl;
    const m = e.module;
    const info: SystemInfo = { entry: e, instances: new Map(), exports: new Map(), connects: [], exposes: [], rules: [], uses: new Set() };
    const members = new Map<string, Span>();

    // Instances first: every other member refers to them.
    for (const mem of d.members) {
      if (mem.kind !== 'InstanceDecl') continue;
      const name = mem.name.name;
      if (!name) continue;
      const prev = members.get(name);
      if (prev) {
        this.ctx.report(Codes.DuplicateMember, `instance \`${name}\` is declared twice in \`${e.name}\``, m.file, mem.name.span, {
          hint: 'rename one of the instances',
          related: [related(m.file, prev, 'first declared here')],
        });
        continue;
      }
      members.set(name, mem.name.span);
      const target = resolveRef(this.ctx, m, mem.component, ['component', 'system'], 'component or system');
      const symbol = this.ctx.declare('instance', m.file, `${e.name}.${name}`, mem.name, mem.span, `${e.qname}.${name}`, () => `${name} = ${target ? target.qname : textOf(m, mem.component.span)}`, mem.doc, e.symbol);
      const inst: InstInfo = {
        name,
        decl: mem,
        symbol,
        memory: 0,
        vcpus: 0,
        mode: { mode: 'single', replicas: 1 },
        restart: { policy: 'never', max_retries: 0 },
        params: {},
      };
      if (target?.kind === 'component') {
        inst.comp = this.components.component(target);
        this.settings(inst, m);
      } else if (target?.kind === 'system') {
        info.uses.add(target);
        inst.sys = this.get(target, { m, span: mem.component.span });
        for (const s of mem.settings) {
          this.ctx.report(Codes.SettingOnSystemInstance, `\`${name}\` is a system: settings and parameters apply to component instances`, m.file, s.span, {
            hint: `set them on the instances inside \`${target.name}\``,
          });
        }
      }
      info.instances.set(name, inst);
    }

    const resolveEnd = (ref: PortRef): { inst: InstInfo; port: SysPort } | undefined => {
      const iname = ref.instance.name;
      const pname = ref.port.name;
      if (!iname || !pname) return undefined;
      const inst = info.instances.get(iname);
      if (!inst) {
        this.ctx.report(Codes.UnknownInstance, `\`${e.name}\` has no instance \`${iname}\``, m.file, ref.instance.span, {
          hint: didYouMean(iname, info.instances.keys()) ?? `declare it: \`${iname} = SomeComponent\``,
        });
        return undefined;
      }
      this.ctx.reference(m.file, ref.instance.span, inst.symbol);
      if (!inst.comp && !inst.sys) return undefined;
      const port = portOf(inst, pname);
      if (!port) {
        const owner = inst.comp ? inst.comp.entry.name : inst.sys!.entry.name;
        this.ctx.report(Codes.UnknownPort, `\`${iname}\` (\`${owner}\`) has no port \`${pname}\``, m.file, ref.port.span, {
          hint: didYouMean(pname, portNames(inst)) ?? `its ports are ${portNames(inst).map((n) => `\`${n}\``).join(', ') || 'none'}${inst.sys ? ' (a system has only the ports it exports)' : ''}`,
        });
        return undefined;
      }
      this.ctx.reference(m.file, ref.port.span, port.symbol);
      return { inst, port };
    };

    // Exports.
    for (const mem of d.members) {
      if (mem.kind !== 'ExportDecl') continue;
      const name = mem.name.name;
      if (!name) continue;
      const end = resolveEnd(mem.port);
      const prev = info.exports.get(name);
      if (prev) {
        this.ctx.report(Codes.DuplicateMember, `\`${e.name}\` exports \`${name}\` twice`, m.file, mem.name.span, {
          hint: 'rename one of the exports',
          related: [related(m.file, prev.decl.name.span, 'first exported here')],
        });
        continue;
      }
      if (!end) continue;
      const symbol = this.ctx.declare('export', m.file, `${e.name}.${name}`, mem.name, mem.span, `${e.qname}.${name}`, () => `export ${name} = ${mem.port.instance.name}.${mem.port.port.name} (${end.port.direction} ${end.port.protocol?.entry.qname ?? '?'})`, undefined, e.symbol);
      this.ctx.protocolOf(symbol, end.port.protocol?.entry.symbol);
      info.exports.set(name, { name, direction: end.port.direction, protocol: end.port.protocol, optional: end.port.optional, symbol, decl: mem, inst: end.inst, port: end.port.name });
    }

    // Connections.
    const wired = new Map<string, ConnectDecl>();
    // Required ports named by a connection that failed a check: already reported, so not "unwired" as well.
    const attempted = new Set<string>();
    for (const mem of d.members) {
      if (mem.kind !== 'ConnectDecl') continue;
      const from = resolveEnd(mem.from);
      const to = resolveEnd(mem.to);
      for (const end of [from, to]) if (end && end.port.direction === 'require') attempted.add(`${end.inst.name}.${end.port.name}`);
      const attrs = this.attrs(mem, m, from?.port.protocol ?? to?.port.protocol);
      if (!from || !to) continue;
      const fromText = `${mem.from.instance.name}.${mem.from.port.name}`;
      const toText = `${mem.to.instance.name}.${mem.to.port.name}`;
      if (from.port.direction !== 'require' || to.port.direction !== 'provide') {
        if (from.port.direction === 'provide' && to.port.direction === 'require') {
          const fixed = `connect ${toText} -> ${fromText}`;
          this.ctx.report(Codes.WrongConnectionDirection, `\`connect\` goes from a required port to a provided port, but \`${fromText}\` is provided and \`${toText}\` is required`, m.file, { start: mem.from.span.start, end: mem.to.span.end }, {
            hint: `swapped? write \`${fixed}\``,
            fixes: [{
              title: `Swap to \`${fixed}\``,
              edits: [
                { file: m.file, span: mem.from.span, newText: textOf(m, mem.to.span) },
                { file: m.file, span: mem.to.span, newText: textOf(m, mem.from.span) },
              ],
            }],
          });
        } else if (from.port.direction === 'provide') {
          this.ctx.report(Codes.WrongConnectionDirection, `\`${fromText}\` is a provided port: a connection starts at a required port`, m.file, mem.from.span, {
            hint: `connect a port that \`require\`s ${from.port.protocol ? `\`${from.port.protocol.entry.name}\`` : 'the protocol'} to \`${fromText}\` instead`,
          });
        } else {
          this.ctx.report(Codes.WrongConnectionDirection, `\`${toText}\` is a required port: a connection ends at a provided port`, m.file, mem.to.span, {
            hint: `connect \`${fromText}\` to a port that \`provide\`s ${to.port.protocol ? `\`${to.port.protocol.entry.name}\`` : 'the protocol'}`,
          });
        }
        continue;
      }
      const fp = from.port.protocol;
      const tp = to.port.protocol;
      if (fp && tp && fp !== tp) {
        this.ctx.report(Codes.ProtocolMismatch, `protocol mismatch: \`${fromText}\` requires \`${fp.entry.qname}\` but \`${toText}\` provides \`${tp.entry.qname}\``, m.file, { start: mem.from.span.start, end: mem.to.span.end }, {
          hint: `connect \`${fromText}\` to a port that provides \`${fp.entry.name}\`, or change one of the ports' protocols`,
          related: [
            related(fp.entry.module.file, fp.entry.decl.name.span, `\`${fp.entry.qname}\` is declared here`),
            related(tp.entry.module.file, tp.entry.decl.name.span, `\`${tp.entry.qname}\` is declared here`),
          ],
        });
        continue;
      }
      const key = `${from.inst.name}.${from.port.name}`;
      const first = wired.get(key);
      if (first) {
        this.ctx.report(Codes.RequiredPortWiredTwice, `\`${key}\` is already connected: a required port has exactly one channel`, m.file, mem.from.span, {
          hint: 'remove one of the connections, or declare another required port for the second provider',
          related: [related(m.file, first.span, 'first connected here')],
        });
        continue;
      }
      wired.set(key, mem);
      if (!fp || !attrs) continue;
      info.connects.push({ decl: mem, from: { inst: from.inst, port: from.port.name }, to: { inst: to.inst, port: to.port.name }, protocol: fp, invariants: attrs.invariants, allow: attrs.allow });
    }

    // Exposures declared in the system.
    for (const mem of d.members) {
      if (mem.kind !== 'ExposeDecl') continue;
      const end = resolveEnd(mem.port);
      const hp = hostPort(this.ctx, m, mem.spec.port);
      if (!end) continue;
      if (end.port.direction === 'require') {
        this.ctx.report(Codes.RequiredPortExposed, `\`${mem.port.instance.name}.${mem.port.port.name}\` is a required port and cannot be exposed`, m.file, mem.port.span, {
          hint: 'only provided ports serve outside clients; expose a port declared with `provide`',
        });
        continue;
      }
      if (hp !== undefined) info.exposes.push({ inst: end.inst, port: end.port.name, hostPort: hp, span: mem.span });
    }

    // Policy rules are checked by the policy checker; here they only feed references for the editor.
    for (const mem of d.members) {
      if (mem.kind !== 'PolicyBlock') continue;
      for (const r of mem.rules) {
        info.rules.push(r);
        this.ruleReferences(r, info, m);
      }
    }

    // Exported required ports are wired by the enclosing system; wiring them here as well is a second channel.
    const exported = new Set<string>();
    for (const ex of info.exports.values()) {
      const key = `${ex.inst.name}.${ex.port}`;
      exported.add(key);
      if (ex.direction === 'require' && wired.has(key)) {
        this.ctx.report(Codes.RequiredPortWiredTwice, `\`${key}\` is connected inside \`${e.name}\` and also exported as \`${ex.name}\``, m.file, ex.decl.port.span, {
          hint: 'a required port has exactly one channel: remove the export or the inner connection',
          related: [related(m.file, wired.get(key)!.span, 'connected here')],
        });
      }
    }

    // Required ports nobody wired.
    for (const inst of info.instances.values()) {
      if (!inst.comp && !inst.sys) continue;
      const ports: SysPort[] = inst.comp
        ? inst.comp.ports.map((p) => ({ name: p.name, direction: p.direction, protocol: p.protocol, optional: p.optional, symbol: p.symbol }))
        : [...(inst.sys?.exports.values() ?? [])];
      for (const p of ports) {
        if (p.direction !== 'require' || p.optional) continue;
        const key = `${inst.name}.${p.name}`;
        if (wired.has(key) || exported.has(key) || attempted.has(key)) continue;
        this.unwired(info, d, m, inst, p);
      }
    }
    return info;
  }

  private unwired(info: SystemInfo, d: SystemDecl, m: Module, inst: InstInfo, p: SysPort): void {
    const key = `${inst.name}.${p.name}`;
    const candidates: string[] = [];
    if (p.protocol) {
      for (const other of info.instances.values()) {
        if (other === inst) continue;
        const ports = other.comp ? other.comp.ports : [...(other.sys?.exports.values() ?? [])];
        for (const q of ports as (PortInfo | ExportInfo)[]) {
          if (q.direction === 'provide' && q.protocol === p.protocol) candidates.push(`${other.name}.${q.name}`);
        }
      }
    }
    // A hint never proposes a connection that breaks one of the system's own rules.
    const broken = new Map<string, string>();
    for (const c of candidates) {
      const rule = this.connectBreaks(info, inst, info.instances.get(c.slice(0, c.indexOf('.')))!, p);
      if (rule) broken.set(c, rule);
    }
    if (broken.size > 0) candidates.splice(0, candidates.length, ...candidates.filter((c) => !broken.has(c)));
    const proto = p.protocol ? `\`${p.protocol.entry.qname}\`` : 'a protocol';
    const fixes = [];
    let hint: string;
    if (candidates.length === 0 && broken.size > 0) {
      const [c, rule] = [...broken][0];
      hint = `\`${c}\` provides ${proto}, but connecting it would break ${rule}; add an instance that provides ${proto} and connect it, or declare the port \`optional\``;
    } else if (candidates.length === 1) {
      const last = d.members[d.members.length - 1];
      const lineStart = m.text.lastIndexOf('\n', inst.decl.span.start - 1) + 1;
      const indent = /^[ \t]*/.exec(m.text.slice(lineStart, inst.decl.span.start))?.[0] ?? '  ';
      const line = `connect ${key} -> ${candidates[0]}`;
      fixes.push({ title: `Connect \`${key}\` to \`${candidates[0]}\``, edits: [{ file: m.file, span: { start: last.span.end, end: last.span.end }, newText: `\n${indent}${line}` }] });
      hint = `add \`${line}\``;
    } else if (candidates.length > 1) {
      hint = `connect it to one of ${candidates.map((c) => `\`${c}\``).join(', ')}, or declare the port \`optional\``;
    } else {
      hint = `add an instance that provides ${proto} and connect it, or declare the port \`optional\``;
    }
    this.ctx.report(Codes.RequiredPortNotWired, `\`${key}\` requires ${proto} but nothing is connected to it`, m.file, inst.decl.name.span, { hint, fixes });
  }

  /**
   * What `connect from.p -> to.q` would break (a rule of `info`, quoted),
   * judged conservatively from the system's own connections and labels: a
   * `no path` the new edge would complete, an `only from`/`only through` whose
   * target it enters from an unlisted instance, or a label order it would
   * violate (requests go up to the provider, responses and notifications back).
   */
  private connectBreaks(info: SystemInfo, from: InstInfo, to: InstInfo, p: SysPort): string | undefined {
    const text = (r: PolicyRule) => `\`${info.entry.module.text.slice(r.span.start, r.span.end).replace(/\s+/g, ' ')}\``;
    const next = new Map<string, string[]>();
    for (const c of info.connects) {
      const l = next.get(c.from.inst.name);
      if (l) l.push(c.to.inst.name);
      else next.set(c.from.inst.name, [c.to.inst.name]);
    }
    const reaches = (a: string, b: string): boolean => {
      const seen = new Set([a]);
      const todo = [a];
      while (todo.length) {
        const u = todo.pop()!;
        if (u === b) return true;
        for (const v of next.get(u) ?? []) if (!seen.has(v)) (seen.add(v), todo.push(v));
      }
      return false;
    };
    for (const r of info.rules) {
      if (r.kind === 'NoPathRule' && r.from.name !== 'outside' && reaches(r.from.name, from.name) && reaches(to.name, r.to.name)) return text(r);
      if (r.kind === 'OnlyRule' && r.target.name === to.name && !r.sources.some((x) => x.name === from.name)) return text(r);
    }
    const kinds = new Set([...(p.protocol?.ops.values() ?? [])].map((o) => o.kind));
    const labels = this.components.labels;
    // Whether data labelled `a` may enter an instance labelled `b` (unlabelled is the bottom).
    const fits = (a: string | undefined, b: string | undefined): boolean =>
      a === undefined || a === b || (b !== undefined ? labelBelow(labels, a, b) : !labels.edges.some(([, hi]) => hi === a));
    const up = kinds.has('call') || kinds.has('send');
    const down = kinds.has('call') || kinds.has('notify');
    if ((up && !fits(from.label, to.label)) || (down && !fits(to.label, from.label))) {
      const [lo, hi] = up && !fits(from.label, to.label) ? [to, from] : [from, to];
      return `the label order (data of \`${hi.name}\`, labelled ${hi.label}, would reach \`${lo.name}\`, ${lo.label === undefined ? 'unlabelled' : `labelled ${lo.label}`})`;
    }
    return undefined;
  }

  private ruleReferences(r: PolicyRule, info: SystemInfo, m: Module): void {
    const inst = (id: { name: string; span: Span }) => {
      const i = info.instances.get(id.name);
      if (i) this.ctx.reference(m.file, id.span, i.symbol);
      return i;
    };
    switch (r.kind) {
      case 'OnlyRule':
        inst(r.target);
        r.sources.forEach(inst);
        break;
      case 'NoPathRule':
        inst(r.from);
        inst(r.to);
        break;
      case 'NoFlowRule': {
        inst(r.to);
        const l = this.components.labels.declaredAt.get(r.label.name);
        if (l) this.ctx.reference(m.file, r.label.span, l.symbol);
        break;
      }
      case 'ExposedOnlyRule':
        for (const p of r.ports) {
          const i = inst(p.instance);
          const port = i && portOf(i, p.port.name);
          if (port) this.ctx.reference(m.file, p.port.span, port.symbol);
        }
        break;
      default:
        break;
    }
  }

  /** Resolves an instance's settings and parameter overrides against its component. */
  private settings(inst: InstInfo, m: Module): void {
    const comp = inst.comp!;
    inst.memory = comp.memory;
    inst.vcpus = comp.vcpus;
    inst.mode = comp.mode;
    inst.restart = comp.restart;
    inst.label = comp.label;
    inst.labelSpan = comp.labelSpan;
    const seen = new Map<string, Span>();
    const once = (key: string, span: Span, what: string) => {
      const prev = seen.get(key);
      if (prev) {
        this.ctx.report(Codes.SettingGivenTwice, `${what} is set twice for \`${inst.name}\``, m.file, span, { hint: 'keep one of them', related: [related(m.file, prev, 'first set here')] });
        return false;
      }
      seen.set(key, span);
      return true;
    };
    const given = new Set<string>();
    for (const s of inst.decl.settings) {
      switch (s.kind) {
        case 'ParamOverride': {
          const name = s.name.name;
          if (!name || !once(`param:${name}`, s.span, `\`${name}\``)) break;
          const p = comp.params.get(name);
          if (!p) {
            this.ctx.report(Codes.UnknownParameter, `\`${comp.entry.name}\` has no parameter \`${name}\``, m.file, s.name.span, {
              hint: didYouMean(name, comp.params.keys()) ?? (comp.params.size ? `its parameters are ${[...comp.params.keys()].map((n) => `\`${n}\``).join(', ')}` : `\`${comp.entry.name}\` declares no parameters`),
            });
            break;
          }
          given.add(name);
          this.ctx.reference(m.file, s.name.span, p.symbol);
          const v = this.types.value(s.value, p.type, m, `\`${name}\``);
          if (v !== undefined) inst.params[name] = v;
          break;
        }
        case 'InstancesMember': {
          if (!once('instances', s.span, 'the instance mode')) break;
          const v = modeOf(this.ctx, m, s);
          if (v) inst.mode = v;
          break;
        }
        case 'RestartMember': {
          if (!once('restart', s.span, '`restart`')) break;
          const v = restartOf(this.ctx, m, s);
          if (v) inst.restart = v;
          break;
        }
        case 'MemoryMember': {
          if (!once('memory', s.span, '`memory`')) break;
          const v = memoryOf(this.ctx, m, s.value);
          if (v !== undefined) inst.memory = v;
          break;
        }
        case 'VcpusMember': {
          if (!once('vcpus', s.span, '`vcpus`')) break;
          const v = vcpusOf(this.ctx, m, s.value);
          if (v !== undefined) inst.vcpus = v;
          break;
        }
        case 'LabelMember': {
          if (!once('label', s.span, '`label`')) break;
          inst.label = useLabel(this.ctx, this.components.labels, m, s.label);
          inst.labelSpan = s.span;
          break;
        }
      }
    }
    if (this.ctx.indexing) this.recordSettings(inst, m, given);
    for (const p of comp.params.values()) {
      if (given.has(p.name)) continue;
      if (p.default !== undefined) inst.params[p.name] = p.default;
      else if (!p.hasDefault) {
        this.ctx.report(Codes.RequiredParameterNotSet, `\`${inst.name}\` does not set the required parameter \`${p.name}\` of \`${comp.entry.name}\``, m.file, inst.decl.name.span, {
          hint: `set it: \`${inst.name} = ${comp.entry.name} { ${p.name} = ... }\`, or give the parameter a default`,
          related: [related(comp.entry.module.file, p.decl.name.span, 'declared here')],
        });
      }
    }
  }

  /** Keeps an instance's settings in effect in the Program, for the language server's hovers and hints. */
  private recordSettings(inst: InstInfo, m: Module, given: Set<string>): void {
    const comp = inst.comp!;
    const declFile = comp.entry.module.file;
    const overrides = new Map<string, Span>();
    for (const s of inst.decl.settings) if (s.kind === 'ParamOverride' && given.has(s.name.name) && !overrides.has(s.name.name)) overrides.set(s.name.name, s.value.span);
    const params: InstanceParam[] = [];
    for (const p of comp.params.values()) {
      const override = overrides.get(p.name);
      const param: InstanceParam = {
        name: p.name,
        origin: override ? 'override' : p.decl.default ? 'default' : 'unset',
        sensitive: p.sensitive,
        type: { file: declFile, span: p.decl.type.span },
      };
      if (override) param.value = { file: m.file, span: override };
      else if (p.decl.default && p.decl.default.kind !== 'MissingExpr') param.value = { file: declFile, span: p.decl.default.span };
      params.push(param);
    }
    const settings: InstanceSettings = { memory: inst.memory, vcpus: inst.vcpus, mode: inst.mode.mode, replicas: inst.mode.replicas, params };
    if (inst.mode.max_sessions !== undefined) settings.maxSessions = inst.mode.max_sessions;
    this.ctx.program.instances.set(inst.symbol, settings);
  }

  /**
   * The protocol's `order` restricted to the allowed operations must still let
   * every allowed operation through: `allow write, close` on `(open write*
   * close)*` would compile to an automaton that refuses every call. Reports
   * each allowed operation the restricted order can never reach (MCL0419),
   * with the operations the full order needs before it.
   */
  private checkAllowedOrder(protocol: ProtocolInfo, allow: string[], span: Span, m: Module): void {
    if (!protocol.order || allow.length === 0) return;
    const restricted = compileOrder(protocol.order, allow);
    if (!restricted) return;
    const usable = new Set<string>();
    for (const row of restricted.transitions) for (const op of Object.keys(row)) usable.add(op);
    const stuck = allow.filter((op) => !usable.has(op));
    if (stuck.length === 0) return;
    const full = compileOrder(protocol.order, [...protocol.ops.keys()]);
    const list = (ops: string[]) => ops.map((o) => `\`${o}\``).join(', ');
    for (const op of stuck) {
      const around = full ? opsAround(full, op) : { before: [], after: [] };
      const before = around.before.filter((o) => !allow.includes(o));
      const after = around.after.filter((o) => !allow.includes(o));
      const missing = [...new Set([...before, ...after])].sort();
      const why =
        before.length > 0
          ? `it needs ${list(before)} first, which \`allow\` leaves out`
          : after.length > 0
            ? `the order cannot finish after it without ${list(after)}, which \`allow\` leaves out`
            : 'no sequence of the allowed operations reaches it';
      this.ctx.report(Codes.AllowedOperationUnreachable, `the order of \`${protocol.entry.name}\` never lets \`${op}\` through on this channel: ${why}`, m.file, span, {
        hint: missing.length > 0 ? `add ${list(missing)} to \`allow\`, or remove \`${op}\` from it` : `remove \`${op}\` from \`allow\``,
        related: [related(protocol.entry.module.file, protocol.order.span, `the order of \`${protocol.entry.qname}\``)],
      });
    }
  }

  /** Channel attributes with defaults applied; undefined when one is invalid. */
  private attrs(c: ConnectDecl, m: Module, protocol: ProtocolInfo | undefined): { invariants: Omit<ChannelInvariants, 'order'>; allow?: string[] } | undefined {
    const inv: Omit<ChannelInvariants, 'order'> = { max_message_bytes: DEFAULT_MAX_MESSAGE, rate: null, timeout_ms: DEFAULT_TIMEOUT_MS, max_inflight: DEFAULT_MAX_INFLIGHT };
    let allow: string[] | undefined;
    let ok = true;
    const seen = new Map<string, Span>();
    const bad = (span: Span, msg: string, hint: string) => {
      ok = false;
      this.ctx.report(Codes.InvalidChannelAttribute, msg, m.file, span, { hint });
    };
    for (const a of c.attrs as ChannelAttr[]) {
      const prev = seen.get(a.kind);
      if (prev) {
        this.ctx.report(Codes.SettingGivenTwice, 'this channel attribute is set twice', m.file, a.span, { hint: 'keep one of them', related: [related(m.file, prev, 'first set here')] });
        ok = false;
        continue;
      }
      seen.set(a.kind, a.span);
      switch (a.kind) {
        case 'RateAttr': {
          if (a.rate.kind === 'MissingExpr') { ok = false; break; }
          if (!(a.rate.perSecond > 0)) { bad(a.rate.span, 'a rate must be above zero', 'write e.g. `rate 100/s`, or leave the rate out for no limit'); break; }
          let burst = Math.max(1, Math.ceil(a.rate.perSecond));
          if (a.burst && a.burst.kind !== 'MissingExpr') {
            if (a.burst.kind !== 'Int' || a.burst.value < 1 || !Number.isSafeInteger(a.burst.value)) { bad(a.burst.span, 'a burst must be a whole number of at least 1', 'write e.g. `burst 50`'); break; }
            burst = a.burst.value;
          }
          inv.rate = { per_second: a.rate.perSecond, burst };
          break;
        }
        case 'MaxMessageAttr':
          if (a.size.kind === 'MissingExpr') { ok = false; break; }
          if (a.size.bytes < 1 || a.size.bytes > 64 * 1024 * 1024) { bad(a.size.span, '`max_message` must be between 1B and 64MiB', 'write e.g. `max_message 64KiB`'); break; }
          inv.max_message_bytes = a.size.bytes;
          break;
        case 'TimeoutAttr':
          if (a.duration.kind === 'MissingExpr') { ok = false; break; }
          if (!(a.duration.ms >= 1) || !Number.isSafeInteger(a.duration.ms)) { bad(a.duration.span, 'a timeout must be at least 1ms', 'write e.g. `timeout 2s`'); break; }
          inv.timeout_ms = a.duration.ms;
          break;
        case 'MaxInflightAttr':
          if (a.count.kind === 'MissingExpr') { ok = false; break; }
          if (a.count.kind !== 'Int' || a.count.value < 1 || a.count.value > 65536) { bad(a.count.span, '`max_inflight` must be between 1 and 65536', 'write e.g. `max_inflight 8`'); break; }
          inv.max_inflight = a.count.value;
          break;
        case 'AllowAttr': {
          const ops = new Set<string>();
          for (const id of a.ops) {
            if (!id.name) continue;
            if (!protocol) { ops.add(id.name); continue; }
            const op = protocol.ops.get(id.name);
            if (!op) {
              ok = false;
              this.ctx.report(Codes.AllowedOperationNotInProtocol, `\`${id.name}\` is not an operation of \`${protocol.entry.qname}\``, m.file, id.span, {
                hint: didYouMean(id.name, protocol.ops.keys()) ?? `its operations are ${[...protocol.ops.keys()].map((n) => `\`${n}\``).join(', ') || 'none'}`,
              });
              continue;
            }
            this.ctx.reference(m.file, id.span, op.symbol);
            ops.add(id.name);
          }
          allow = [...ops].sort();
          if (ok && protocol) this.checkAllowedOrder(protocol, allow, a.span, m);
          break;
        }
      }
    }
    return ok ? { invariants: inv, allow } : undefined;
  }
}

/**
 * The operations on the shortest way (breadth-first, operations in name
 * order) through an order automaton from `from` to a state where `done` holds,
 * with the state reached; undefined when there is none.
 */
function shortestOps(order: OrderAutomaton, from: number, done: (state: number, row: Record<string, number>) => boolean): { ops: string[]; state: number } | undefined {
  const via = new Map<number, { from: number; op: string } | null>([[from, null]]);
  const queue = [from];
  for (let i = 0; i < queue.length; i++) {
    const at = queue[i];
    const row = order.transitions[at] ?? {};
    if (done(at, row)) {
      const ops: string[] = [];
      for (let step = via.get(at); step; step = via.get(step.from)) ops.unshift(step.op);
      return { ops, state: at };
    }
    for (const name of Object.keys(row).sort()) {
      const to = row[name];
      if (!via.has(to)) {
        via.set(to, { from: at, op: name });
        queue.push(to);
      }
    }
  }
  return undefined;
}

/**
 * What a channel must allow besides `op` for `op` ever to be used: the
 * operations the order needs before it, and those it needs after it to finish.
 */
function opsAround(order: OrderAutomaton, op: string): { before: string[]; after: string[] } {
  const has = (row: Record<string, number>, name: string) => Object.prototype.hasOwnProperty.call(row, name);
  const to = shortestOps(order, 0, (_, row) => has(row, op));
  if (!to) return { before: [], after: [] };
  const accepting = new Set(order.accepting);
  const finish = shortestOps(order, order.transitions[to.state][op], (state) => accepting.has(state));
  return { before: [...new Set(to.ops)], after: [...new Set(finish?.ops ?? [])] };
}
