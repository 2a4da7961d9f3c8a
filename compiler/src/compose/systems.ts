// Systems: instances, exports, wiring, exposures and policy blocks, checked
// once per declaration; then `elaborate` flattens the root system into
// instances with dotted ids and channels between component ports.

import type {
  ChannelAttr,
  ConnectDecl,
  EgressDecl,
  ExportDecl,
  Expr,
  Ident,
  InstanceDecl,
  PolicyRule,
  PortRef,
  Span,
  SystemDecl,
} from '@mcl/language';
import { Codes } from '@mcl/language';
import type { ChannelInvariants, ExposureConnections, JsonValue, OrderAutomaton, PlanEgressDestination } from '@mcl/plan';
import { egressKind, parseDestination } from './egress';
import type { InstanceParam, InstanceSettings } from '../api';
import { Ctx, related, textOf, type DeclEntry, type Module } from '../context';
import { resolveRef } from '../resolve/scope';
import type { ProtocolInfo } from '../types/protocols';
import type { Types } from '../types/message-types';
import { compileOrder } from '../types/dfa';
import { refinementProblem } from '../types/refine';
import { didYouMean } from '../util/suggest';
import { bindingKey, checkArg, declareParams, paramNamed, type Arg, type Binding, type SysParam } from './params';
import {
  portElementName,
  portSourceName,
  declassification,
  hostPort,
  memoryOf,
  modeOf,
  labelBelow,
  restartOf,
  useLabel,
  vcpusOf,
  type ComponentInfo,
  type Components,
  type FactoryInfo,
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
  /** A component's factory port (a system never exports one). */
  factory?: FactoryInfo;
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
  /** Parameters set on a created instance, until its factory's run-time parameters are known. */
  given?: Set<string>;
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
  /** The channel's own declassifications (`declassifies s -> t` among its attributes). */
  declassifies?: { from: string; to: string }[];
  /** `query`: its requests carry no data of the requiring side (spec/policy.md). */
  query?: true;
  /** One candidate of a late binding (`connect a.p -> x.q | y.q`); `initial` on the first, which the port is bound to at deploy. */
  candidate?: { initial: boolean };
}

export interface ExposeInfo {
  inst: InstInfo;
  port: string;
  hostPort: number;
  span: Span;
  attrs?: ExposeAttrs;
}

/** An exposure's attributes, when it has a block: a channel's, and limits on its connections. */
export interface ExposeAttrs {
  invariants: Omit<ChannelInvariants, 'order'>;
  allow?: string[];
  connections?: ExposureConnections;
  /** A channel's own declassifications (none on an exposure). */
  declassifies: { from: string; to: string }[];
  /** Where a channel says `query`. */
  query?: Span;
}

/** `egress name: inst.port -> "address" { ... }`, checked (egress.ts). */
export interface EgressInfo {
  name: string;
  inst: InstInfo;
  port: string;
  protocol: ProtocolInfo;
  kind: 'tcp' | 'http';
  destination: PlanEgressDestination;
  label?: string;
  attrs?: ExposeAttrs;
  span: Span;
}

export interface SystemInfo {
  entry: DeclEntry;
  instances: Map<string, InstInfo>;
  exports: Map<string, ExportInfo>;
  connects: ConnInfo[];
  exposes: ExposeInfo[];
  egresses: EgressInfo[];
  rules: PolicyRule[];
  /** Systems this one instantiates (for root detection). */
  uses: Set<DeclEntry>;
  /** The system's parameters, and the arguments this check of it was made with. */
  params: ReadonlyMap<string, SysParam>;
  binding: Binding;
  /** The instance each factory port creates, by `<creator>.<port>`. */
  created: Map<string, InstInfo>;
}

export function portOf(inst: InstInfo, name: string): SysPort | undefined {
  if (inst.comp) {
    const p = inst.comp.portByName.get(name);
    return p && { name: p.name, direction: p.direction, protocol: p.protocol, optional: p.optional, symbol: p.symbol, factory: p.factory };
  }
  return inst.sys?.exports.get(name);
}

/** A port reference as the source writes it: `r.shards[2]` (with the element a fan-out wires for `[*]`), `db.kv`. */
function refText(ref: PortRef, element?: number): string {
  const ix = ref.index ? `[${ref.index.value === '*' ? element ?? '*' : ref.index.value}]` : '';
  return `${ref.instance.name}.${ref.port.name}${ix}`;
}

function portNames(inst: InstInfo): string[] {
  if (inst.comp) return inst.comp.ports.map((p) => p.name);
  return inst.sys ? [...inst.sys.exports.keys()] : [];
}

export class Systems {
  /** Checked systems by declaration, then by their arguments (`bindingKey`): one check per distinct instantiation. */
  private readonly infos = new Map<DeclEntry, Map<string, SystemInfo | undefined>>();
  private readonly paramsOf = new Map<DeclEntry, Map<string, SysParam>>();
  /**
   * The maps of `infos` taken over from an earlier compile (`adopt`), which that compile's state
   * still holds: one is copied before this compile adds a check to it (`own`), so that the earlier
   * state stays as it was, for a compile made again from it (compile.ts) as for any other reader.
   */
  private readonly adopted = new Set<Map<string, SystemInfo | undefined>>();
  private readonly stack: DeclEntry[] = [];

  constructor(
    private readonly ctx: Ctx,
    private readonly types: Types,
    private readonly components: Components,
  ) {}

  /** Takes over an earlier compile's checked systems that `keep` accepts (incremental.ts). */
  adopt(prior: Systems, keep: (e: DeclEntry) => boolean): void {
    // forEach, not for-of: the language server runs this once per edit over every system of the workspace,
    // and for-of makes an iterator result and an entry array per entry until V8 optimises the function (the
    // first edits after the server starts), which are collected inside the compile.
    prior.infos.forEach((byArgs, e) => {
      if (!keep(e)) return;
      this.infos.set(e, byArgs);
      this.adopted.add(byArgs);
    });
    // A kept system's parameters were declared (and indexed) by the compile that checked it.
    prior.paramsOf.forEach((p, e) => {
      if (keep(e)) this.paramsOf.set(e, p);
    });
  }

  /** The checks made of a system declaration so far, by their arguments (`bindingKey`). */
  checked(e: DeclEntry): ReadonlyMap<string, SystemInfo | undefined> | undefined {
    return this.infos.get(e);
  }

  /**
   * Puts `info` in place of the check of `e` with the arguments `key`, as
   * incremental.ts does to a taken-over system whose instances it re-links
   * to the systems of a module checked again.
   */
  replace(e: DeclEntry, key: string, info: SystemInfo): void {
    this.own(e).set(key, info);
  }

  /** The map of `e`'s checks that this compile may add to: its own, made or copied (see `adopted`) when it has none yet. */
  private own(e: DeclEntry): Map<string, SystemInfo | undefined> {
    let byArgs = this.infos.get(e);
    if (!byArgs || this.adopted.has(byArgs)) {
      if (byArgs) this.adopted.delete(byArgs);
      byArgs = new Map(byArgs);
      this.infos.set(e, byArgs);
    }
    return byArgs;
  }

  checkAll(): void {
    // The attribute blocks of exposures declared in components, once per component (with its protocol known).
    for (const m of this.ctx.modules.values()) {
      // A reused module's components are the previous compile's, their exposures' attributes already checked.
      if (this.ctx.reused.has(m)) continue;
      for (const e of m.decls.values()) {
        if (e.kind !== 'component') continue;
        for (const p of this.components.component(e).ports) {
          const list = p.decl.expose?.attrs;
          if (p.expose && list) p.expose.attrs = this.attrs(list, m, p.protocol, 'exposure');
        }
      }
    }
    for (const m of this.ctx.modules.values()) {
      // A reused module's systems were checked with their defaults by the compile it comes from (this
      // same loop), and taken over with it (`adopt`): asking again would only find them.
      if (this.ctx.reused.has(m)) continue;
      for (const e of m.decls.values()) if (e.kind === 'system') this.get(e);
    }
  }

  /** All checked systems. */
  all(): SystemInfo[] {
    return [...this.infos.values()].flatMap((byArgs) => [...byArgs.values()]).filter((x): x is SystemInfo => !!x);
  }

  /** A system's parameters, declared once. */
  params(e: DeclEntry): Map<string, SysParam> {
    let p = this.paramsOf.get(e);
    if (!p) {
      p = declareParams(this.ctx, this.types, e);
      this.paramsOf.set(e, p);
      for (const x of p.values()) {
        const def = x.decl.default;
        if (def && def.kind !== 'MissingExpr') checkArg(this.ctx, this.types, this.components.labels, x, { expr: def, m: e.module });
      }
    }
    return p;
  }

  /** The arguments of an instantiation that gives none: every parameter's default. */
  defaults(e: DeclEntry): Map<string, Arg> {
    const b = new Map<string, Arg>();
    for (const p of this.params(e).values()) {
      const def = p.decl.default;
      if (def && def.kind !== 'MissingExpr') b.set(p.name, { expr: def, m: e.module });
    }
    return b;
  }

  /**
   * Checks a system declaration once per distinct set of arguments (its
   * defaults when none are given); undefined while it is being checked (recursion).
   */
  get(e: DeclEntry, at?: { m: Module; span: Span }, binding: Binding = this.defaults(e)): SystemInfo | undefined {
    const key = bindingKey(binding);
    const byArgs = this.infos.get(e);
    if (byArgs?.has(key)) return byArgs.get(key);
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
    const info = this.check(e, binding);
    this.stack.pop();
    this.own(e).set(key, info);
    return info;
  }

  /**
   * One target of a `connect` (the provided port, or one candidate of a late binding): its direction,
   * the factory rule and the protocols. Returns false when a check failed (reported here), null when
   * the connection stands but carries nothing to plan (its protocol or attributes are unknown), else
   * the connection.
   */
  private connection(
    mem: ConnectDecl,
    ref: PortRef,
    from: { inst: InstInfo; port: SysPort },
    to: { inst: InstInfo; port: SysPort },
    fromText: string,
    attrs: ExposeAttrs | undefined,
    info: SystemInfo,
    m: Module,
  ): ConnInfo | false | null {
    const toText = refText(ref);
    if (from.port.direction !== 'require' || to.port.direction !== 'provide') {
      if (from.port.direction === 'provide' && to.port.direction === 'require') {
        const fixed = `connect ${toText} -> ${fromText}`;
        this.ctx.report(Codes.WrongConnectionDirection, `\`connect\` goes from a required port to a provided port, but \`${fromText}\` is provided and \`${toText}\` is required`, m.file, { start: mem.from.span.start, end: ref.span.end }, {
          hint: `swapped? write \`${fixed}\``,
          fixes: mem.candidates?.length ? undefined : [{
            title: `Swap to \`${fixed}\``,
            edits: [
              { file: m.file, span: mem.from.span, newText: textOf(m, ref.span) },
              { file: m.file, span: ref.span, newText: textOf(m, mem.from.span) },
            ],
          }],
        });
      } else if (from.port.direction === 'provide') {
        this.ctx.report(Codes.WrongConnectionDirection, `\`${fromText}\` is a provided port: a connection starts at a required port`, m.file, mem.from.span, {
          hint: `connect a port that \`require\`s ${from.port.protocol ? `\`${from.port.protocol.entry.name}\`` : 'the protocol'} to \`${fromText}\` instead`,
        });
      } else {
        this.ctx.report(Codes.WrongConnectionDirection, `\`${toText}\` is a required port: a connection ends at a provided port`, m.file, ref.span, {
          hint: `connect \`${fromText}\` to a port that \`provide\`s ${to.port.protocol ? `\`${to.port.protocol.entry.name}\`` : 'the protocol'}`,
        });
      }
      return false;
    }
    const made = from.port.factory ? info.created.get(`${from.inst.name}.${from.port.name}`) : undefined;
    if (from.port.factory && made !== to.inst) {
      this.ctx.report(Codes.FactoryChannelElsewhere, `\`${fromText}\` is a factory port: its channels go to the instances it creates${made ? `, \`${made.name}\`` : ''}, not to \`${ref.instance.name}\``, m.file, ref.span, {
        hint: made ? `connect it to a provided port of \`${made.name}\`: \`connect ${fromText} -> ${made.name}.<port>\`` : `declare the created instance: \`w = ${from.port.factory.component?.name ?? 'Worker'} { created by ${fromText} }\``,
      });
      return false;
    }
    // A factory port takes the protocol of the created instance's port it is connected to.
    const fp = from.port.factory ? to.port.protocol : from.port.protocol;
    const tp = to.port.protocol;
    // A different protocol is fine when the required one refines the provided one (refine.ts); the channel carries the required one.
    const refinement = fp && tp && fp !== tp ? refinementProblem(this.types, fp, tp) : undefined;
    if (fp && tp && refinement !== undefined) {
      this.ctx.report(Codes.ProtocolMismatch, `protocol mismatch: \`${fromText}\` requires \`${fp.entry.qname}\` but \`${toText}\` provides \`${tp.entry.qname}\`, which it does not refine: ${refinement}`, m.file, { start: mem.from.span.start, end: ref.span.end }, {
        hint: `connect \`${fromText}\` to a port that provides \`${fp.entry.name}\`, or make \`${fp.entry.name}\` a refinement of \`${tp.entry.name}\` (a subset of its operations with the same message types and an order it accepts)`,
        related: [
          related(fp.entry.module.file, fp.entry.decl.name.span, `\`${fp.entry.qname}\` is declared here`),
          related(tp.entry.module.file, tp.entry.decl.name.span, `\`${tp.entry.qname}\` is declared here`),
        ],
      });
      return false;
    }
    if (!fp || !attrs) return null;
    return { decl: mem, from: { inst: from.inst, port: from.port.name }, to: { inst: to.inst, port: to.port.name }, protocol: fp, invariants: attrs.invariants, allow: attrs.allow, ...(attrs.declassifies.length ? { declassifies: attrs.declassifies } : {}), ...(attrs.query ? { query: true as const } : {}) };
  }

  /**
   * The rules of a late binding (`connect a.p -> x.q | y.q`) beyond those of each candidate: a
   * factory port's channel goes to the instances it creates and cannot switch, and no provided port
   * is named twice. Reports and returns false when one is broken.
   */
  private lateBindingOk(mem: ConnectDecl, from: { inst: InstInfo; port: SysPort }, m: Module): boolean {
    const fromText = `${mem.from.instance.name}.${mem.from.port.name}`;
    if (from.port.factory) {
      this.ctx.report(Codes.LateBoundFactory, `\`${fromText}\` is a factory port: its channel goes to the instances it creates and cannot switch between candidates`, m.file, { start: mem.candidates![0].span.start, end: mem.candidates![mem.candidates!.length - 1].span.end }, {
        hint: `remove the candidates after \`${mem.to.instance.name}.${mem.to.port.name}\``,
      });
      return false;
    }
    const seen = new Map<string, PortRef>();
    for (const ref of [mem.to, ...mem.candidates!]) {
      const k = `${ref.instance.name}.${ref.port.name}`;
      const prev = seen.get(k);
      if (prev) {
        this.ctx.report(Codes.DuplicateCandidate, `\`${k}\` is named twice among the candidates of \`${fromText}\``, m.file, ref.span, {
          hint: 'name each provided port once: the port is bound to the first, and may switch to any other',
          related: [related(m.file, prev.span, 'first named here')],
        });
        return false;
      }
      seen.set(k, ref);
    }
    return true;
  }

  /**
   * The argument an expression inside `info` stands for: a bare name of one of
   * its parameters is that parameter's argument (null when this check has no
   * usable value for it), anything else is itself.
   */
  private arg(info: SystemInfo, e: Expr, m: Module): Arg | null {
    const p = paramNamed(info.params, e);
    if (!p) return { expr: e, m };
    this.ctx.reference(m.file, e.span, p.symbol);
    return info.binding.get(p.name) ?? null;
  }

  /** The arguments a system instance gives the system it instantiates (`t = Tenant { tier = org_a }`). */
  private bind(info: SystemInfo, target: DeclEntry, mem: InstanceDecl, m: Module): Binding {
    const params = this.params(target);
    const out = new Map<string, Arg>();
    const given = new Map<string, Span>();
    for (const s of mem.settings) {
      if (s.kind !== 'ParamOverride') {
        this.ctx.report(Codes.SettingOnSystemInstance, `\`${mem.name.name}\` is a system: settings apply to component instances`, m.file, s.span, {
          hint: params.size ? `give it a parameter of \`${target.name}\` (${[...params.keys()].map((n) => `\`${n}\``).join(', ')}), or set the setting on the instances inside it` : `set them on the instances inside \`${target.name}\``,
        });
        continue;
      }
      const name = s.name.name;
      if (!name) continue;
      const prev = given.get(name);
      if (prev) {
        this.ctx.report(Codes.SettingGivenTwice, `\`${name}\` is set twice for \`${mem.name.name}\``, m.file, s.span, { hint: 'keep one of them', related: [related(m.file, prev, 'first set here')] });
        continue;
      }
      given.set(name, s.span);
      const p = params.get(name);
      if (!p) {
        this.ctx.report(Codes.UnknownParameter, `system \`${target.name}\` has no parameter \`${name}\``, m.file, s.name.span, {
          hint: didYouMean(name, params.keys()) ?? (params.size ? `its parameters are ${[...params.keys()].map((n) => `\`${n}\``).join(', ')}` : `\`${target.name}\` declares no parameters: settings and parameters apply to component instances`),
        });
        continue;
      }
      this.ctx.reference(m.file, s.name.span, p.symbol);
      const a = this.arg(info, s.value, m);
      if (a && checkArg(this.ctx, this.types, this.components.labels, p, a)) out.set(name, a);
    }
    for (const p of params.values()) {
      if (given.has(p.name)) continue;
      const def = p.decl.default;
      if (def && def.kind !== 'MissingExpr') out.set(p.name, { expr: def, m: target.module });
      else {
        this.ctx.report(Codes.RequiredParameterNotSet, `\`${mem.name.name}\` does not set the required parameter \`${p.name}\` of system \`${target.name}\``, m.file, mem.name.span, {
          hint: `set it: \`${mem.name.name} = ${target.name} { ${p.name} = ... }\`, or give the parameter a default`,
          related: [related(target.module.file, p.decl.name.span, 'declared here')],
        });
      }
    }
    return out;
  }

  private check(e: DeclEntry, binding: Binding): SystemInfo {
    const d = e.decl as SystemDecl;
    const m = e.module;
    const info: SystemInfo = { entry: e, instances: new Map(), exports: new Map(), connects: [], exposes: [], egresses: [], rules: [], uses: new Set(), params: this.params(e), binding, created: new Map() };
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
        this.settings(inst, m, info);
      } else if (target?.kind === 'system') {
        info.uses.add(target);
        inst.sys = this.get(target, { m, span: mem.component.span }, this.bind(info, target, mem, m));
      }
      info.instances.set(name, inst);
    }

    this.createdInstances(info, e, m);

    // `element_`: the element a fan-out wires now, for a ref written `[*]`.
    const resolveEnd = (ref: PortRef, element_?: number): { inst: InstInfo; port: SysPort } | undefined => {
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
      const element = this.arrayElement(inst, ref, element_, m);
      if (element === null) return undefined;
      const port = portOf(inst, element ?? pname);
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
      // Late binding (`connect a.p -> x.q | y.q`): every candidate is a channel of its own.
      if (mem.candidates?.length) {
        this.lateBound(info, m, mem, resolveEnd, wired, attempted);
        continue;
      }
      // A connect's attributes are checked once, however many channels it makes.
      let checked: { attrs: ReturnType<Systems['attrs']> } | undefined;
      const attrsOf = (p: ProtocolInfo | undefined) => (checked ??= { attrs: this.attrs(mem.attrs, m, p, 'channel', info) }).attrs;
      for (const [fromElement, toRef] of this.fanOut(info, mem, m)) this.connectOne(info, e, m, mem, resolveEnd, attrsOf, wired, attempted, fromElement, toRef);
      // A connect of a port array that names no valid element (or a list of the wrong length) was reported
      // once: its elements are not reported as unwired as well.
      const arrayInst = info.instances.get(mem.from.instance.name);
      const length = arrayInst?.comp?.arrays.get(mem.from.port.name);
      if (length !== undefined) {
        const ix = mem.from.index?.value;
        const fine = (typeof ix === 'number' && ix >= 0 && ix < length && !mem.fanout) || (ix === '*' && (mem.fanout?.length ?? -2) + 1 === length);
        if (!fine) for (let i = 0; i < length; i++) attempted.add(`${arrayInst!.name}.${portElementName(mem.from.port.name, i)}`);
      } else if (mem.from.index) attempted.add(`${mem.from.instance.name}.${mem.from.port.name}`);
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
      const attrs = mem.spec.attrs ? this.attrs(mem.spec.attrs, m, end.port.protocol, 'exposure', info) : undefined;
      if (hp !== undefined) info.exposes.push({ inst: end.inst, port: end.port.name, hostPort: hp, span: mem.span, attrs });
    }

    // Egresses: required ports whose traffic leaves the system (spec/syntax.md, "Egress").
    for (const mem of d.members) {
      if (mem.kind !== 'EgressDecl') continue;
      const end = resolveEnd(mem.port);
      if (end && end.port.direction === 'require') attempted.add(`${end.inst.name}.${end.port.name}`);
      this.egress(mem, m, info, members, wired, end);
    }

    // Policy rules are checked by the policy checker; here they only feed references for the editor.
    for (const mem of d.members) {
      if (mem.kind !== 'PolicyBlock') continue;
      for (const r of mem.rules) {
        this.ruleReferences(r, info, m);
        // A budget given by a parameter is this instantiation's argument; without one it cannot be checked here.
        if (r.kind === 'BudgetRule' && paramNamed(info.params, r.value)) {
          const a = this.arg(info, r.value, m);
          if (a) info.rules.push({ ...r, value: a.expr as typeof r.value });
          continue;
        }
        info.rules.push(r);
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
      // A component's ports are read as they are: a copy of each, for every instance of the workspace, was garbage at once.
      const ports: Iterable<SysPort> = inst.comp ? inst.comp.ports : (inst.sys?.exports.values() ?? []);
      for (const p of ports) {
        if (p.direction !== 'require' || p.optional) continue;
        const key = `${inst.name}.${p.name}`;
        if (wired.has(key) || exported.has(key) || attempted.has(key)) continue;
        if (p.factory && !info.created.has(key)) {
          const made = p.factory.component?.name ?? 'Worker';
          this.ctx.report(Codes.FactoryCreatesNothing, `\`${key}\` is a factory of \`${made}\` but no instance of this system is created by it`, m.file, inst.decl.name.span, {
            hint: `declare the instances it creates and connect it to them: \`w = ${made} { created by ${key} }\` and \`connect ${key} -> w.<port>\`, or declare the port \`optional\``,
          });
          continue;
        }
        this.unwired(info, d, m, inst, p);
      }
    }
    return info;
  }

  /**
   * Resolves every `created by c.port` instance to its creator's factory port:
   * the port must be a factory of the instance's component, each factory
   * creates one instance of the system, and a creator is not itself created
   * (its factory would be multiplied at run time by a bound nobody declared).
   * The instance then counts, for every check, as the factory's `max` clones
   * for each clone of its creator.
   */
  private createdInstances(info: SystemInfo, e: DeclEntry, m: Module): void {
    for (const inst of info.instances.values()) {
      const c = inst.mode.creator;
      if (inst.mode.mode !== 'created' || !c || !inst.comp) continue;
      const fail = (msg: string, hint: string) => {
        this.ctx.report(Codes.InvalidCreatedInstance, msg, m.file, c.span, { hint });
        inst.mode = { mode: 'single', replicas: 1 };
        inst.given = undefined;
      };
      const creator = info.instances.get(c.instance);
      if (!creator) {
        this.ctx.report(Codes.UnknownInstance, `\`${e.name}\` has no instance \`${c.instance}\``, m.file, c.span, { hint: didYouMean(c.instance, info.instances.keys()) ?? 'name the instance whose factory port creates this one' });
        inst.mode = { mode: 'single', replicas: 1 };
        continue;
      }
      this.ctx.reference(m.file, { start: c.span.start, end: c.span.start + c.instance.length }, creator.symbol);
      const port = creator.comp?.portByName.get(c.port);
      if (!port?.factory) {
        const factories = creator.comp?.ports.filter((p) => p.factory).map((p) => `\`${c.instance}.${p.name}\``) ?? [];
        fail(`\`${c.instance}.${c.port}\` is not a factory port`, factories.length ? `the factory ports of \`${c.instance}\` are ${factories.join(', ')}` : `declare one in its component: \`require ${c.port}: factory ${inst.comp.entry.name} { max 8 }\``);
        continue;
      }
      this.ctx.reference(m.file, { start: c.span.end - c.port.length, end: c.span.end }, port.symbol);
      const f = port.factory;
      if (f.component && f.component !== inst.comp.entry) {
        fail(`\`${c.instance}.${c.port}\` creates \`${f.component.qname}\`, not \`${inst.comp.entry.qname}\``, `write \`${inst.name} = ${f.component.name} { created by ${c.instance}.${c.port} }\``);
        continue;
      }
      if (creator.mode.mode === 'created') {
        fail(`\`${c.instance}\` is itself created at run time: a created instance's factories are not supported`, `declare \`${c.instance}\` as a static instance, or give this factory to a static one`);
        continue;
      }
      const key = `${c.instance}.${c.port}`;
      const prev = info.created.get(key);
      if (prev) {
        fail(`\`${key}\` already creates \`${prev.name}\`: a factory port creates the instances of one declaration`, `remove one of them; the factory's \`max\` bounds how many run`);
        continue;
      }
      info.created.set(key, inst);
      const creatorClones = creator.mode.mode === 'per_session' ? creator.mode.max_sessions ?? 1 : Math.max(1, creator.mode.replicas);
      inst.mode = { ...inst.mode, replicas: 0, factory: { max: f.max, total: f.max * creatorClones, params: f.params, detached: f.detached } };
      this.requiredParams(inst, m, inst.given ?? new Set(), f.params);
      inst.given = undefined;
      const settings = this.ctx.program.instances.get(inst.symbol);
      if (settings?.createdBy) settings.createdBy.max = f.max;
    }
  }

  private unwired(info: SystemInfo, d: SystemDecl, m: Module, inst: InstInfo, p: SysPort): void {
    const key = `${inst.name}.${portSourceName(p.name)}`;
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
   * target it enters from an unlisted instance, an `only to` whose subject it
   * leaves for an unlisted instance, or a label order it would
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
    const labels = this.components.labels;
    // The sender an `only to` rule constrains: the instance it names, or an instance labelled with (or above) the label it names.
    const sends = (r: PolicyRule & { kind: 'OnlyRule' }): boolean =>
      r.target.name === from.name ||
      (!info.instances.has(r.target.name) && from.label !== undefined && (from.label === r.target.name || labelBelow(labels, r.target.name, from.label)));
    for (const r of info.rules) {
      if (r.kind === 'NoPathRule' && r.from.name !== 'outside' && reaches(r.from.name, from.name) && reaches(to.name, r.to.name)) return text(r);
      if (r.kind === 'OnlyRule' && r.mode !== 'to' && r.target.name === to.name && !r.sources.some((x) => x.name === from.name)) return text(r);
      if (r.kind === 'OnlyRule' && r.mode === 'to' && sends(r) && !r.sources.some((x) => x.name === to.name)) return text(r);
    }
    const kinds = new Set([...(p.protocol?.ops.values() ?? [])].map((o) => o.kind));
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
    const inst = (id: Ident) => {
      if (!id.parts) {
        const i = info.instances.get(id.name);
        if (i) this.ctx.reference(m.file, id.span, i.symbol);
        return i;
      }
      // A path into nested systems: each segment refers to the instance it names, as far as they resolve.
      let sys: SystemInfo | undefined = info;
      let i: InstInfo | undefined;
      for (const part of id.parts) {
        i = sys?.instances.get(part.name);
        if (!i) return undefined;
        this.ctx.reference(m.file, part.span, i.symbol);
        sys = i.sys;
      }
      return i;
    };
    switch (r.kind) {
      case 'OnlyRule': {
        // The subject of `only to` may be a label (when no instance has its name).
        const l = inst(r.target) ? undefined : r.mode === 'to' ? this.components.labels.declaredAt.get(r.target.name) : undefined;
        if (l) this.ctx.reference(m.file, r.target.span, l.symbol);
        r.sources.forEach(inst);
        break;
      }
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

  /**
   * One egress: its name (unique among the system's instances and egresses), a required port that no
   * `connect` wires, a destination address (egress.ts), a protocol that can leave and fits the address's
   * scheme, and its block: an exposure's attributes plus `label`, the destination's label.
   */
  private egress(
    mem: EgressDecl,
    m: Module,
    info: SystemInfo,
    members: Map<string, Span>,
    wired: Map<string, ConnectDecl>,
    end: { inst: InstInfo; port: SysPort } | undefined,
  ): void {
    const name = mem.name.name;
    let ok = name !== '';
    const prev = name ? members.get(name) : undefined;
    if (prev) {
      ok = false;
      this.ctx.report(Codes.EgressNameTaken, `\`${name}\` is already the name of an instance or an egress of \`${info.entry.name}\``, m.file, mem.name.span, {
        hint: 'give the egress a name of its own: policy rules name it as they name instances',
        related: [related(m.file, prev, 'first declared here')],
      });
    } else if (name) members.set(name, mem.name.span);
    if (name) this.ctx.declare('egress', m.file, `${info.entry.name}.${name}`, mem.name, mem.span, `${info.entry.qname}.${name}`, () => `egress ${name}: ${mem.port.instance.name}.${mem.port.port.name} -> ${mem.destination.kind === 'String' ? JSON.stringify(mem.destination.value) : '?'}`, undefined, info.entry.symbol);
    let destination: PlanEgressDestination | undefined;
    if (mem.destination.kind === 'String') {
      const r = parseDestination(mem.destination.value);
      if (r.ok) destination = r.destination;
      else this.ctx.report(Codes.EgressDestinationInvalid, `invalid egress destination: ${r.problem}`, m.file, mem.destination.span, { hint: r.hint });
    }
    let label: string | undefined;
    const attrList: ChannelAttr[] = [];
    for (const a of mem.attrs) {
      if (a.kind !== 'LabelMember') { attrList.push(a); continue; }
      if (label !== undefined) {
        ok = false;
        this.ctx.report(Codes.SettingGivenTwice, 'this egress attribute is set twice', m.file, a.span, { hint: 'keep one of them' });
        continue;
      }
      label = useLabel(this.ctx, this.components.labels, m, a.label) ?? '';
      if (label === '') ok = false;
    }
    if (!end) return;
    const key = `${end.inst.name}.${end.port.name}`;
    if (end.port.direction !== 'require') {
      this.ctx.report(Codes.EgressFromProvidedPort, `\`${key}\` is a provided port: an egress carries the traffic of a required port`, m.file, mem.port.span, {
        hint: 'declare the port with `require` in the component; a provided port serves callers, and `expose` lets outside callers in',
      });
      return;
    }
    const first = wired.get(key) ?? info.egresses.find((x) => x.inst === end.inst && x.port === end.port.name);
    if (first) {
      this.ctx.report(Codes.RequiredPortWiredTwice, `\`${key}\` is already connected: a required port has exactly one channel or egress`, m.file, mem.port.span, {
        hint: 'remove one of them, or declare another required port for the second destination',
        related: [related(m.file, first.span, 'first connected here')],
      });
      return;
    }
    const proto = end.port.protocol;
    const attrs = this.attrs(attrList, m, proto, 'exposure', info);
    if (!proto || !destination) return;
    const kind = egressKind(this.types, proto, (q) => this.components.protocolNamed(q));
    if (!kind) {
      this.ctx.report(Codes.EgressProtocolUnsupported, `\`${key}\` has protocol \`${proto.entry.qname}\`, which cannot leave the system: an egress carries \`std.tcp.Stream\` bytes or \`std.http.Http\` requests`, m.file, mem.port.span, {
        hint: 'give the port `std.tcp.Stream` or `std.http.Http` (or a protocol that refines one of them), or talk to a component inside the system instead',
      });
      return;
    }
    if ((kind === 'tcp') !== (destination.scheme === 'tcp')) {
      const want = kind === 'tcp' ? '`tcp://host:port`' : '`http://` or `https://`';
      this.ctx.report(Codes.EgressSchemeMismatch, `\`${key}\` carries ${kind === 'tcp' ? 'a byte stream' : 'HTTP requests'}, but the destination is a \`${destination.scheme}\` address`, m.file, mem.destination.span, {
        hint: `write a ${want} address, or give the port ${kind === 'tcp' ? '`std.http.Http`' : '`std.tcp.Stream`'}`,
      });
      return;
    }
    if (!ok || (mem.attrs.length > 0 && attrList.length > 0 && !attrs)) return;
    info.egresses.push({ name, inst: end.inst, port: end.port.name, protocol: proto, kind, destination, ...(label ? { label } : {}), ...(attrs ? { attrs } : {}), span: mem.span });
  }

  /** Resolves an instance's settings and parameter overrides against its component. */
  private settings(inst: InstInfo, m: Module, info: SystemInfo): void {
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
          const a = this.arg(info, s.value, m);
          if (!a) break;
          const v = this.types.value(a.expr, p.type, a.m, `\`${name}\``);
          if (v !== undefined) inst.params[name] = v;
          break;
        }
        case 'InstancesMember': {
          if (!once('instances', s.span, 'the instance mode')) break;
          const a = s.count && this.arg(info, s.count, m);
          if (a === null) break;
          const v = a ? modeOf(this.ctx, a.m, { ...s, count: a.expr as typeof s.count }, true) : modeOf(this.ctx, m, s, true);
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
          const a = this.arg(info, s.value, m);
          if (!a) break;
          const v = memoryOf(this.ctx, a.m, a.expr);
          if (v !== undefined) inst.memory = v;
          break;
        }
        case 'VcpusMember': {
          if (!once('vcpus', s.span, '`vcpus`')) break;
          const a = this.arg(info, s.value, m);
          if (!a) break;
          const v = vcpusOf(this.ctx, a.m, a.expr);
          if (v !== undefined) inst.vcpus = v;
          break;
        }
        case 'LabelMember': {
          if (!once('label', s.span, '`label`')) break;
          // `label tier`, where `tier` is a label parameter of the system: the label this instantiation gives.
          const lp = info.params.get(s.label.name);
          if (lp?.kind === 'label') {
            this.ctx.reference(m.file, s.label.span, lp.symbol);
            const a = info.binding.get(lp.name);
            if (a?.expr.kind === 'Ref') inst.label = a.expr.name.parts[0].name;
          } else inst.label = useLabel(this.ctx, this.components.labels, m, s.label);
          inst.labelSpan = s.span;
          break;
        }
      }
    }
    if (this.ctx.indexing) this.recordSettings(inst, m, given);
    // The parameters of created instances may be chosen by their creator: checked once the factory is known.
    if (inst.mode.mode === 'created') {
      inst.given = given;
      return;
    }
    this.requiredParams(inst, m, given);
  }

  private requiredParams(inst: InstInfo, m: Module, given: Set<string>, chosen: readonly string[] = []): void {
    const comp = inst.comp!;
    for (const p of comp.params.values()) {
      if (given.has(p.name) || chosen.includes(p.name)) continue;
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
    if (inst.mode.creator) settings.createdBy = { port: `${inst.mode.creator.instance}.${inst.mode.creator.port}`, max: 0 };
    this.ctx.program.instances.set(inst.symbol, settings);
    this.ctx.addedInstances?.push([inst.symbol, settings]);
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

  /**
   * Channel (or exposure) attributes with defaults applied; undefined when one is invalid. Connection
   * limits belong to exposures only: a channel has no connections of its own to limit; declassification
   * and `query` describe what a channel carries between two instances, so they belong to channels only.
   * `info` is the system being checked, whose parameters a `rate` may name (absent in a component).
   */

  /**
   * The pairs a connect wires: (element of the left port array or undefined,
   * right-hand port). A plain connect is one pair; a fan-out
   * `connect r.shards[*] -> [a.kv, b.kv]` pairs element i with the i-th port of
   * the list, whose length must be the array's (MCL0147).
   */
  private fanOut(info: SystemInfo, mem: ConnectDecl, m: Module): [number | undefined, PortRef][] {
    // `[*]` without a list, or a list without `[*]`: the parser reported the form.
    if ((mem.from.index?.value === '*') !== !!mem.fanout) return [];
    if (!mem.fanout) return [[undefined, mem.to]];
    const list = [mem.to, ...mem.fanout];
    const inst = info.instances.get(mem.from.instance.name);
    const length = inst?.comp?.arrays.get(mem.from.port.name);
    if (length !== undefined && length !== list.length) {
      this.ctx.report(Codes.FanOutLength, `\`${mem.from.instance.name}.${mem.from.port.name}\` has ${length} elements but the list names ${list.length} ports`, m.file, { start: mem.to.span.start, end: list[list.length - 1].span.end }, {
        hint: `name one port per element, ${length} in all`,
      });
      return [];
    }
    // Not an array (or unknown): resolving the first pair reports it once.
    if (length === undefined) return [[0, mem.to]];
    return list.map((r, i) => [i, r]);
  }

  /**
   * The element a port reference names: `undefined` for a plain port, the
   * element's port name for `p[i]` (or `p[*]` with the fan-out's `element`),
   * or `null` after reporting a misuse (an index on a plain port, an index out
   * of range, an array without an index).
   */
  private arrayElement(inst: InstInfo, ref: PortRef, element: number | undefined, m: Module): string | undefined | null {
    const name = ref.port.name;
    const length = inst.comp?.arrays.get(name);
    const ix = ref.index;
    if (!ix) {
      if (length === undefined) return undefined;
      this.ctx.report(Codes.PortArrayElementNeeded, `\`${ref.instance.name}.${name}\` is a port array of ${length}: name an element`, m.file, ref.port.span, {
        hint: `write \`${ref.instance.name}.${name}[0]\` .. \`[${length - 1}]\`, or connect every element at once: \`connect ${ref.instance.name}.${name}[*] -> [a.p, b.p, ...]\``,
      });
      return null;
    }
    if (length === undefined) {
      if (!portOf(inst, name)) return undefined; // unknown port: reported by the caller
      this.ctx.report(Codes.NotAPortArray, `\`${ref.instance.name}.${name}\` is not a port array, so it has no elements`, m.file, ix.span, { hint: 'remove the index' });
      return null;
    }
    const i = ix.value === '*' ? element : ix.value;
    if (i === undefined) {
      this.ctx.report(Codes.FanOutForm, `\`[*]\` names every element, which only a fan-out connect wires`, m.file, ix.span, { hint: `name one element, \`${name}[0]\` .. \`[${length - 1}]\`` });
      return null;
    }
    if (i < 0) return null; // an invalid index, reported by the parser
    if (i >= length) {
      this.ctx.report(Codes.PortIndexOutOfRange, `\`${ref.instance.name}.${name}\` has ${length} elements, so there is no element ${i}`, m.file, ix.span, { hint: `use an index from 0 to ${length - 1}` });
      return null;
    }
    this.ctx.reference(m.file, ref.port.span, inst.comp!.portByName.get(portElementName(name, i))!.symbol);
    return portElementName(name, i);
  }

  /** Checks and records one channel of a `connect` (one element of a fan-out). */
  private connectOne(
    info: SystemInfo,
    e: DeclEntry,
    m: Module,
    mem: ConnectDecl,
    resolveEnd: (ref: PortRef, element?: number) => { inst: InstInfo; port: SysPort } | undefined,
    attrsOf: (p: ProtocolInfo | undefined) => ReturnType<Systems['attrs']>,
    wired: Map<string, ConnectDecl>,
    attempted: Set<string>,
    fromElement: number | undefined,
    toRef: PortRef,
  ): void {
    const from = resolveEnd(mem.from, fromElement);
    const to = resolveEnd(toRef);

    for (const end of [from, to]) if (end && end.port.direction === 'require') attempted.add(`${end.inst.name}.${end.port.name}`);
    const attrs = attrsOf(from?.port.protocol ?? to?.port.protocol);
    if (!from || !to) return;
    const fromText = refText(mem.from, fromElement);
    const made = this.connection(mem, toRef, from, to, fromText, attrs, info, m);
    if (made === false) return;
    if (!this.wireOnce(wired, from, mem, `${from.inst.name}.${portSourceName(from.port.name)}`, fromText, [toRef], m)) return;
    if (made) info.connects.push(made);
  }

  /**
   * Checks and records a late binding, `connect a.p -> x.q | y.q` (spec/factories.md): every
   * candidate is resolved and checked as a connection of its own, so the set of possible channels
   * stays static, and the channels are recorded together with the first one bound initially.
   */
  private lateBound(
    info: SystemInfo,
    m: Module,
    mem: ConnectDecl,
    resolveEnd: (ref: PortRef, element?: number) => { inst: InstInfo; port: SysPort } | undefined,
    wired: Map<string, ConnectDecl>,
    attempted: Set<string>,
  ): void {
    const candidates = mem.candidates!;
    if (mem.fanout || mem.from.index?.value === '*') {
      this.ctx.report(Codes.FanOutForm, 'a fan-out connects each element to one port: it cannot switch between candidates', m.file, { start: candidates[0].span.start, end: candidates[candidates.length - 1].span.end }, {
        hint: 'remove the candidates after `|`, or connect the elements one by one: `connect r.p[0] -> x.q | y.q`',
      });
      return;
    }
    const from = resolveEnd(mem.from);
    const targets = [mem.to, ...candidates];
    const tos = targets.map((t) => resolveEnd(t));
    for (const end of [from, ...tos]) if (end && end.port.direction === 'require') attempted.add(`${end.inst.name}.${end.port.name}`);
    const attrs = this.attrs(mem.attrs, m, from?.port.protocol ?? tos[0]?.port.protocol, 'channel', info);
    if (!from || tos.some((t) => !t)) return;
    if (!this.lateBindingOk(mem, from, m)) return;
    const fromText = refText(mem.from);
    const results = targets.map((ref, i) => this.connection(mem, ref, from, tos[i]!, fromText, attrs, info, m));
    if (results.includes(false)) return;
    if (!this.wireOnce(wired, from, mem, fromText, fromText, targets, m)) return;
    const made = results.filter((r): r is ConnInfo => r !== false && r !== null);
    if (made.length !== results.length) return;
    info.connects.push(...made.map((c, i) => ({ ...c, candidate: { initial: i === 0 } })));
  }

  /**
   * Records that `mem` wires the required port `from`, or reports that an earlier connect already
   * did (a required port has exactly one channel) and returns false. `subject` names the port in
   * the message; the hint offers a late binding over the earlier connect's ports and `targets`.
   */
  private wireOnce(wired: Map<string, ConnectDecl>, from: { inst: InstInfo; port: SysPort }, mem: ConnectDecl, subject: string, fromText: string, targets: PortRef[], m: Module): boolean {
    const key = `${from.inst.name}.${from.port.name}`;
    const first = wired.get(key);
    if (first) {
      this.ctx.report(Codes.RequiredPortWiredTwice, `\`${subject}\` is already connected: a required port has exactly one channel`, m.file, mem.from.span, {
        hint: `remove one of the connections, or declare another required port for the second provider, or let the port switch between them at run time: \`connect ${fromText} -> ${[first.to, ...(first.candidates ?? []), ...targets].map((t) => refText(t)).join(' | ')}\``,
        related: [related(m.file, first.span, 'first connected here')],
      });
      return false;
    }
    wired.set(key, mem);
    return true;
  }

  private attrs(list: ChannelAttr[], m: Module, protocol: ProtocolInfo | undefined, where: 'channel' | 'exposure', info?: SystemInfo): ExposeAttrs | undefined {
    const inv: Omit<ChannelInvariants, 'order'> = { max_message_bytes: DEFAULT_MAX_MESSAGE, rate: null, timeout_ms: DEFAULT_TIMEOUT_MS, max_inflight: DEFAULT_MAX_INFLIGHT };
    let allow: string[] | undefined;
    let connections: ExposureConnections | undefined;
    const declassifies: { from: string; to: string }[] = [];
    let query: Span | undefined;
    let ok = true;
    const seen = new Map<string, Span>();
    const bad = (span: Span, msg: string, hint: string) => {
      ok = false;
      this.ctx.report(Codes.InvalidChannelAttribute, msg, m.file, span, { hint });
    };
    for (const a of list) {
      if ((a.kind === 'DeclassifyAttr' || a.kind === 'QueryAttr') && where === 'exposure') {
        bad(a.span, `\`${a.kind === 'QueryAttr' ? 'query' : 'declassifies'}\` describes a channel between two instances, not an exposure`, 'declassify on the exposing component (`declassifies a -> b on port`), or remove it');
        continue;
      }
      if (a.kind === 'DeclassifyAttr') {
        // A channel may declassify several labels, like a component.
        const d = declassification(this.ctx, this.components.labels, m, a.from, a.to, a.span);
        if (d) declassifies.push(d);
        continue;
      }
      const key = a.kind === 'ConnectionAttr' ? a.name : a.kind;
      const prev = seen.get(key);
      if (prev) {
        this.ctx.report(Codes.SettingGivenTwice, `this ${where} attribute is set twice`, m.file, a.span, { hint: 'keep one of them', related: [related(m.file, prev, 'first set here')] });
        ok = false;
        continue;
      }
      seen.set(key, a.span);
      switch (a.kind) {
        case 'ConnectionAttr': {
          if (where === 'channel') {
            ok = false;
            this.ctx.report(Codes.ConnectionLimitOnChannel, `\`${a.name}\` limits the TCP connections of an exposure; a channel has none`, m.file, a.span, {
              hint: 'put it on the exposure (`expose p: P on tcp N { ... }`), or remove it',
            });
            break;
          }
          const v = a.value;
          if (v.kind === 'MissingExpr') { ok = false; break; }
          const c: ExposureConnections = (connections ??= {});
          if (a.name === 'max_connections') {
            if (v.kind !== 'Int' || v.value < 1 || v.value > 65536) { bad(v.span, '`max_connections` must be between 1 and 65536', 'write e.g. `max_connections 100`'); break; }
            c.max = v.value;
          } else if (a.name === 'connection_rate') {
            if (v.kind !== 'Rate' || !(v.perSecond > 0)) { bad(v.span, 'a connection rate must be above zero', 'write e.g. `connection_rate 10/s`, or leave it out for no limit'); break; }
            let burst = Math.max(1, Math.ceil(v.perSecond));
            if (a.burst && a.burst.kind !== 'MissingExpr') {
              if (a.burst.kind !== 'Int' || a.burst.value < 1 || !Number.isSafeInteger(a.burst.value)) { bad(a.burst.span, 'a burst must be a whole number of at least 1', 'write e.g. `burst 20`'); break; }
              burst = a.burst.value;
            }
            c.rate = { burst, per_second: v.perSecond };
          } else if (a.name === 'bandwidth') {
            if (v.kind !== 'Size' || v.bytes < 1) { bad(v.span, '`bandwidth` must be at least 1B a second', 'write e.g. `bandwidth 1MiB` (bytes a second from each client)'); break; }
            // node:http reads an HTTP exposure's sockets itself, so the broker cannot pace them byte by byte.
            if (protocol?.entry.qname === 'std.http.Http') { bad(a.span, '`bandwidth` paces byte streams and frame exposures, not HTTP', 'bound HTTP requests with `rate` and `max_message` instead'); break; }
            c.bytes_per_second = v.bytes;
          } else {
            if (v.kind !== 'Duration' || !(v.ms >= 1) || !Number.isSafeInteger(v.ms)) { bad(v.span, 'an idle timeout must be at least 1ms', 'write e.g. `idle_timeout 5min`'); break; }
            c.idle_timeout_ms = v.ms;
          }
          break;
        }
        case 'RateAttr': {
          // `rate r`: the rate this instantiation gives the system's parameter `r` (checked where it is written).
          const given = a.rate.kind === 'Ref' ? (info ? this.arg(info, a.rate, m) : undefined) : { expr: a.rate, m };
          if (a.rate.kind === 'Ref' && !info) { bad(a.rate.span, '`rate` here takes a rate such as `500/s`: only a system has parameters a rate may name', 'write a rate'); break; }
          if (!given || given.expr.kind === 'MissingExpr') { ok = false; break; }
          if (given.expr.kind !== 'Rate') {
            bad(a.rate.span, `\`rate\` takes a rate such as \`500/s\`, and \`${textOf(m, a.rate.span)}\` is not a rate parameter${info ? ` of \`${info.entry.name}\`` : ''}`, 'write a rate, or declare `param name: rate` in the system and give it where the system is instantiated');
            break;
          }
          const rate = given.expr;
          if (!(rate.perSecond > 0)) { bad(rate.span, 'a rate must be above zero', 'write e.g. `rate 100/s`, or leave the rate out for no limit'); break; }
          let burst = Math.max(1, Math.ceil(rate.perSecond));
          if (a.burst && a.burst.kind !== 'MissingExpr') {
            if (a.burst.kind !== 'Int' || a.burst.value < 1 || !Number.isSafeInteger(a.burst.value)) { bad(a.burst.span, 'a burst must be a whole number of at least 1', 'write e.g. `burst 50`'); break; }
            burst = a.burst.value;
          }
          inv.rate = { per_second: rate.perSecond, burst };
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
        case 'QueryAttr':
          query = a.span;
          break;
      }
    }
    if (query && protocol) {
      // A `send` is nothing but data from the requiring side: a channel that carries one cannot say its requests carry none.
      const sends = [...protocol.ops.values()].filter((op) => op.kind === 'send' && (!allow || allow.includes(op.name))).map((op) => `\`${op.name}\``);
      if (sends.length > 0) {
        bad(query, `\`query\` says the requests on this channel carry no data of the requiring side, but it carries ${sends.join(', ')}, which ${sends.length === 1 ? 'is a `send`' : 'are `send`s'}`, '`allow` only the `call`s this channel needs, or remove `query`');
      }
    }
    if (!ok) return undefined;
    return { invariants: inv, allow, declassifies, ...(query ? { query } : {}), ...(connections ? { connections } : {}) };
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
