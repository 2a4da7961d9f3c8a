// Components, images, targets and labels: the declarations a system is built
// from. Each is checked once, whatever the number of instances.

import type {
  ComponentDecl,
  Expr,
  Ident,
  ImageDecl,
  InstancesMember,
  ParamDecl,
  PortDecl,
  ProgramMember,
  Property,
  RestartMember,
  Span,
  TargetDecl,
} from '@mcl/language';
import { Codes } from '@mcl/language';
import type { BackendName, JsonValue } from '@mcl/plan';
import { parseHostAddress, parseLinkAddress } from '@mcl/plan/host';
import { CAPABILITIES } from '../target/capabilities';
import { Ctx, related, type DeclEntry, type Module } from '../context';
import type { ExposeAttrs } from './systems';
import { qnameText } from '../resolve/load';
import { lookupPlain, resolveRef } from '../resolve/scope';
import type { ProtocolInfo, Protocols } from '../types/protocols';
import { typeText, type RType, type Types } from '../types/message-types';
import { didYouMean } from '../util/suggest';

export const DEFAULT_MEMORY = 128 * 1024 * 1024;
export const DEFAULT_VCPUS = 1;
export const DEFAULT_POOL = 1;
export const DEFAULT_MAX_SESSIONS = 16;
export const DEFAULT_ON_FAILURE_RETRIES = 5;
export const MAX_REPLICAS = 1024;

export interface ParamInfo {
  name: string;
  decl: ParamDecl;
  type: RType;
  /** The default as JSON; undefined when there is none or it did not check. */
  default?: JsonValue;
  hasDefault: boolean;
  sensitive: boolean;
  symbol: string;
}

export interface PortInfo {
  name: string;
  direction: 'provide' | 'require';
  protocol?: ProtocolInfo;
  optional: boolean;
  expose?: { port: number; span: Span; attrs?: ExposeAttrs };
  decl: PortDecl;
  symbol: string;
  /** virtio-serial slot: 1 + declaration index (slot 0 is the control port). */
  slot: number;
  /** On a factory port: what it creates. Its `protocol` is then undefined (the system's connection gives it). */
  factory?: FactoryInfo;
}

/** `require workers: factory Worker { max 8; param job; detached }`, checked. */
export interface FactoryInfo {
  /** The created component; undefined when it did not resolve. */
  component?: DeclEntry;
  /** The most instances alive at once for one creator. */
  max: number;
  /** Parameters of the created component the creator chooses at run time. */
  params: string[];
  /** Created instances outlive their creator. */
  detached: boolean;
  span: Span;
}

export interface ModeInfo {
  mode: 'single' | 'replicas' | 'per_session' | 'created';
  replicas: number;
  max_sessions?: number;
  /** For `created by`: the factory port, as written (resolved by the system). */
  creator?: { instance: string; port: string; span: Span };
  /** For `created by`, once resolved: what the creator's factory port allows. */
  factory?: { max: number; total: number; params: string[]; detached: boolean };
}

export interface RestartInfo {
  policy: 'always' | 'on_failure' | 'never';
  max_retries: number;
}

/**
 * The name of element `i` of port array `name` in the plan, the broker and the
 * guest (`shards.2`, the device `/dev/mcl/shards.2`); the source writes it
 * `shards[2]`. A port name has no `.`, so no plain port can take it.
 */
export function portElementName(name: string, i: number): string {
  return `${name}.${i}`;
}

/** A port's name as the source writes it: `shards[2]` for the element `shards.2`, a plain port's name as it is. */
export function portSourceName(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? name : `${name.slice(0, dot)}[${name.slice(dot + 1)}]`;
}

export interface ComponentInfo {
  entry: DeclEntry;
  image?: DeclEntry;
  memory: number;
  vcpus: number;
  label?: string;
  labelSpan?: Span;
  /** `ports` limits a declassification to what leaves through those ports (absent: every port). */
  declassifies: { from: string; to: string; ports?: string[] }[];
  params: Map<string, ParamInfo>;
  ports: PortInfo[];
  portByName: Map<string, PortInfo>;
  /** Port arrays by name, with their lengths: element i is the port `<name>.<i>` of `ports` (portElementName). */
  arrays: Map<string, number>;
  mode: ModeInfo;
  restart: RestartInfo;
  program?: ProgramMember;
}

export interface ImageInfo {
  entry: DeclEntry;
  base: 'busybox-static';
  kernel: string;
  modules: string[];
}

export interface TargetInfo {
  entry: DeclEntry;
  backend: BackendName;
  memory_bytes: number;
  vcpus: number;
  vcpu_overcommit: number;
  /** kubevirt: the Kubernetes namespace (required there, refused elsewhere). */
  namespace?: string;
  /** kubevirt: the kubeconfig context; absent means the current one. */
  context?: string;
  /** kubevirt: the registry images are pulled from. */
  registry?: string;
  /** kvm, xen: the host the target deploys to over SSH (`ssh://...`); absent means the machine mclc runs on. */
  host?: string;
  /** kvm: where the target's link between hosts is reached (`host:port` or `:port`); absent means its SSH host's address and the default port. */
  link?: string;
}

/** The backends a target may name: the rows of the capability table, in its order. */
export const BACKEND_NAMES = Object.keys(CAPABILITIES) as BackendName[];
/** The settings only a kubevirt target has. */
const KUBE_PROPS = ['namespace', 'context', 'registry'];
/** Every property a target may have (completion offers them). */
export const TARGET_PROPERTIES: readonly string[] = ['backend', 'memory', 'vcpus', 'overcommit', 'host', 'link', ...KUBE_PROPS];
/** A container image repository without a tag: `host[:port]/path`, lower case. */
const REGISTRY_RE = /^[a-z0-9]+([._-][a-z0-9]+)*(\.[a-z0-9]+)*(:[0-9]{1,5})?(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*$/;
/** A Kubernetes namespace name: an RFC 1123 label. */
const NAMESPACE_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface LabelInfo {
  labels: Set<string>;
  edges: [string, string][];
  declaredAt: Map<string, { file: string; span: Span; symbol: string }>;
}

/** Collects the label order from every `labels` declaration (prelude first, then by file). */
export function collectLabels(ctx: Ctx): LabelInfo {
  const info: LabelInfo = { labels: new Set(), edges: [], declaredAt: new Map() };
  // forEach and an index rather than for-of over every module and declaration: this runs on every
  // compile (the language server's every edit), and until V8 optimises it for-of makes an iterator
  // result per element, collected inside the compile.
  const mods: Module[] = [];
  ctx.modules.forEach((m) => mods.push(m));
  mods.sort((a, b) => (a.path === 'std.prelude' ? -1 : b.path === 'std.prelude' ? 1 : a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  const edgeSet = new Set<string>();
  for (let i = 0; i < mods.length; i++) {
    const m = mods[i];
    const decls = m.ast.decls;
    for (let j = 0; j < decls.length; j++) {
      const d = decls[j];
      if (d.kind !== 'LabelsDecl') continue;
      for (const chain of d.chains) {
        let prev: string | undefined;
        for (const id of chain) {
          if (!id.name) continue;
          if (!info.declaredAt.has(id.name)) {
            const symbol = ctx.declare('label', m.file, id.name, id, id.span, id.name, () => `label ${id.name}`, d.doc);
            info.declaredAt.set(id.name, { file: m.file, span: id.span, symbol });
            info.labels.add(id.name);
          } else ctx.reference(m.file, id.span, info.declaredAt.get(id.name)!.symbol);
          if (prev !== undefined && prev !== id.name) {
            const k = `${prev}<${id.name}`;
            if (!edgeSet.has(k)) {
              edgeSet.add(k);
              info.edges.push([prev, id.name]);
            }
          }
          prev = id.name;
        }
      }
    }
  }
  return info;
}

/** Whether `low < high` follows from the declared `labels` chains (transitively). */
export function labelBelow(labels: LabelInfo, low: string, high: string): boolean {
  const seen = new Set<string>([low]);
  const todo = [low];
  while (todo.length) {
    const l = todo.pop()!;
    for (const [a, b] of labels.edges) {
      if (a !== l || seen.has(b)) continue;
      if (b === high) return true;
      seen.add(b);
      todo.push(b);
    }
  }
  return false;
}

/**
 * A declassification `from -> to` of a component or a channel, checked: both
 * labels known, and the step goes down the order or between incomparable
 * labels (MCL0418 otherwise); undefined when it is not valid.
 */
export function declassification(ctx: Ctx, labels: LabelInfo, m: Module, fromId: Ident, toId: Ident, span: Span): { from: string; to: string } | undefined {
  const from = useLabel(ctx, labels, m, fromId);
  const to = useLabel(ctx, labels, m, toId);
  if (!from || !to) return undefined;
  if (from === to) {
    ctx.report(Codes.InvalidDeclassification, `declassifying \`${from}\` to itself does nothing`, m.file, span, { hint: 'remove the line, or name a lower label' });
    return undefined;
  }
  if (labelBelow(labels, from, to)) {
    // Data may flow up the order without any declaration, so an upward line is a mistake
    // (usually the two labels swapped), not a declassification.
    ctx.report(Codes.InvalidDeclassification, `declassifying \`${from}\` to \`${to}\` raises it: \`${to}\` is above \`${from}\` in the label order`, m.file, span, {
      hint: `a declassification lowers a label: did you mean \`declassifies ${to} -> ${from}\`? Data flows up the order without one`,
    });
    return undefined;
  }
  return { from, to };
}

/** Resolves a label use; reports an unknown label with a suggestion. */
export function useLabel(ctx: Ctx, labels: LabelInfo, m: Module, id: Ident): string | undefined {
  if (!id.name) return undefined;
  const at = labels.declaredAt.get(id.name);
  if (!at) {
    ctx.report(Codes.UnknownLabel, `unknown label \`${id.name}\``, m.file, id.span, {
      hint: didYouMean(id.name, labels.labels) ?? `declare it: \`labels { public < ${id.name} }\``,
    });
    return undefined;
  }
  ctx.reference(m.file, id.span, at.symbol);
  return id.name;
}

function intOf(ctx: Ctx, m: Module, v: Expr | undefined, what: string, min: number, max: number): number | undefined {
  if (!v || v.kind === 'MissingExpr') return undefined;
  if (v.kind !== 'Int') {
    ctx.report(Codes.InvalidComponentSetting, `${what} must be a whole number`, m.file, v.span, { hint: `write a number from ${min} to ${max}` });
    return undefined;
  }
  if (v.value < min || v.value > max || !Number.isSafeInteger(v.value)) {
    ctx.report(Codes.InvalidComponentSetting, `${what} must be between ${min} and ${max}, not ${v.raw}`, m.file, v.span, { hint: `write a number from ${min} to ${max}` });
    return undefined;
  }
  return v.value;
}

export function memoryOf(ctx: Ctx, m: Module, v: Expr): number | undefined {
  if (v.kind === 'MissingExpr') return undefined;
  if (v.kind !== 'Size') {
    ctx.report(Codes.InvalidComponentSetting, 'memory must be a size such as `256MiB`', m.file, v.span, { hint: 'write a size with a unit: `128MiB`, `1GiB`' });
    return undefined;
  }
  if (v.bytes < 16 * 1024 * 1024 || v.bytes % (1024 * 1024) !== 0) {
    ctx.report(Codes.InvalidComponentSetting, `memory must be a whole number of MiB and at least 16MiB, not ${v.raw}`, m.file, v.span, { hint: 'write e.g. `128MiB`' });
    return undefined;
  }
  return v.bytes;
}

export function vcpusOf(ctx: Ctx, m: Module, v: Expr): number | undefined {
  return intOf(ctx, m, v, 'vcpus', 1, 64);
}

export function modeOf(ctx: Ctx, m: Module, im: InstancesMember, inSystem = false): ModeInfo | undefined {
  switch (im.mode) {
    case 'single':
      return { mode: 'single', replicas: 1 };
    case 'replicas': {
      const n = intOf(ctx, m, im.count, 'replicas', 1, MAX_REPLICAS);
      return n === undefined ? undefined : { mode: 'replicas', replicas: n };
    }
    case 'per_session': {
      const pool = im.pool ? intOf(ctx, m, im.pool, 'the warm pool', 0, MAX_REPLICAS) : DEFAULT_POOL;
      const max = im.max ? intOf(ctx, m, im.max, 'the session limit', 1, MAX_REPLICAS) : DEFAULT_MAX_SESSIONS;
      if (pool === undefined || max === undefined) return undefined;
      if (pool > max) {
        ctx.report(Codes.InvalidComponentSetting, `the warm pool (${pool}) is larger than the session limit (${max})`, m.file, im.span, { hint: `lower the pool or raise \`max\` to at least ${pool}` });
        return undefined;
      }
      return { mode: 'per_session', replicas: pool, max_sessions: max };
    }
    case 'created': {
      // Which factory creates the instances is a matter of the system; a component cannot say it.
      if (!inSystem) {
        ctx.report(Codes.InvalidCreatedInstance, '`created by` applies to an instance in a system, not to a component', m.file, im.span, {
          hint: 'write it on the instance: `w = Worker { created by coord.workers }`',
        });
        return undefined;
      }
      const c = im.creator;
      if (!c || !c.instance.name || !c.port.name) return undefined;
      return { mode: 'created', replicas: 0, creator: { instance: c.instance.name, port: c.port.name, span: c.span } };
    }
  }
}

export function restartOf(ctx: Ctx, m: Module, r: RestartMember): RestartInfo | undefined {
  if (r.policy === 'on_failure') {
    const n = r.maxRetries ? intOf(ctx, m, r.maxRetries, 'the retry limit', 0, 1_000_000) : DEFAULT_ON_FAILURE_RETRIES;
    return n === undefined ? undefined : { policy: 'on_failure', max_retries: n };
  }
  if (r.maxRetries && r.maxRetries.kind !== 'MissingExpr') {
    ctx.report(Codes.InvalidComponentSetting, `\`max\` applies only to \`restart on-failure\``, m.file, r.maxRetries.span, { hint: 'remove it, or write `restart on-failure max N`' });
  }
  return { policy: r.policy, max_retries: 0 };
}

export class Components {
  private readonly infos = new Map<DeclEntry, ComponentInfo>();
  private readonly images = new Map<DeclEntry, ImageInfo>();
  private readonly targets = new Map<DeclEntry, TargetInfo | undefined>();

  constructor(
    private readonly ctx: Ctx,
    private readonly types: Types,
    private readonly protocols: Protocols,
    readonly labels: LabelInfo,
  ) {}

  /** Takes over an earlier compile's checked components, images and targets that `keep` accepts (incremental.ts). */
  adopt(prior: Components, keep: (e: DeclEntry) => boolean): void {
    // forEach, not for-of: the language server runs this once per edit over every component of the workspace,
    // and for-of makes an iterator result and an entry array per entry until V8 optimises the function (the
    // first edits after the server starts), which are collected inside the compile.
    prior.infos.forEach((info, e) => {
      if (keep(e)) this.infos.set(e, info);
    });
    prior.images.forEach((info, e) => {
      if (keep(e)) this.images.set(e, info);
    });
    prior.targets.forEach((info, e) => {
      if (keep(e)) this.targets.set(e, info);
    });
  }

  /** The protocol declared as `qname` in a loaded module (`std.http.Http`), if any. */
  protocolNamed(qname: string): ProtocolInfo | undefined {
    const dot = qname.lastIndexOf('.');
    const e = this.ctx.modules.get(qname.slice(0, dot))?.decls.get(qname.slice(dot + 1));
    return e && e.kind === 'protocol' ? this.protocols.get(e) : undefined;
  }

  checkAll(): void {
    // forEach for the reason given in adopt.
    this.ctx.modules.forEach((m) =>
      m.decls.forEach((e) => {
        if (e.kind === 'component') this.component(e);
        else if (e.kind === 'image') this.image(e);
        else if (e.kind === 'target') this.target(e);
      }),
    );
  }

  /** Reports duplicate `memory`, `image`, ... members; returns true when this one is a repeat. */
  private once(seen: Map<string, Span>, key: string, span: Span, m: Module, what: string): boolean {
    const prev = seen.get(key);
    if (prev) {
      this.ctx.report(Codes.SettingGivenTwice, `${what} is set twice`, m.file, span, { hint: 'keep one of them', related: [related(m.file, prev, 'first set here')] });
      return true;
    }
    seen.set(key, span);
    return false;
  }

  /**
   * A factory port: the created component must resolve to a component, `max`
   * must be given (every check is made with that many instances), and the
   * parameters chosen at run time must be parameters of the created component.
   */
  private factoryPort(info: ComponentInfo, e: DeclEntry, mem: PortDecl, name: string): void {
    const m = e.module;
    const f = mem.factory!;
    const created = resolveRef(this.ctx, m, f.component, ['component'], 'component');
    const symbol = this.ctx.declare('port', m.file, `${e.name}.${name}`, mem.name, mem.span, `${e.qname}.${name}`, () => `require ${name}: factory ${created ? created.qname : qnameText(f.component)}`, mem.doc, e.symbol);
    const fi: FactoryInfo = { component: created, max: 0, params: [], detached: f.detached, span: f.span };
    if (mem.direction !== 'require') {
      this.ctx.report(Codes.InvalidFactory, `\`${name}\` cannot be a factory: a factory is a port the component requires`, m.file, mem.span, { hint: `write \`require ${name}: factory ...\`` });
      return;
    }
    if (mem.expose) {
      this.ctx.report(Codes.RequiredPortExposed, `required port \`${name}\` cannot be exposed`, m.file, mem.expose.span, { hint: 'a factory port creates instances; it serves no outside clients' });
      return;
    }
    if (!f.max || f.max.kind === 'MissingExpr') {
      if (!f.max) {
        this.ctx.report(Codes.InvalidFactory, `factory \`${name}\` has no bound: how many instances may it create?`, m.file, f.span, {
          hint: `add the most instances alive at once: \`factory ${qnameText(f.component)} { max 8 }\``,
        });
      }
    } else fi.max = intOf(this.ctx, m, f.max, 'the factory bound', 1, MAX_REPLICAS) ?? 0;
    if (created?.kind === 'component') {
      const target = this.component(created);
      const seen = new Set<string>();
      for (const p of f.params) {
        if (!p.name) continue;
        const param = target.params.get(p.name);
        if (!param) {
          this.ctx.report(Codes.UnknownParameter, `\`${created.name}\` has no parameter \`${p.name}\` to choose at creation`, m.file, p.span, {
            hint: didYouMean(p.name, target.params.keys()) ?? `its parameters are ${[...target.params.keys()].map((n) => `\`${n}\``).join(', ') || 'none'}`,
          });
          continue;
        }
        this.ctx.reference(m.file, p.span, param.symbol);
        if (seen.has(p.name)) {
          this.ctx.report(Codes.InvalidFactory, `parameter \`${p.name}\` is listed twice`, m.file, p.span, { hint: 'remove one of them' });
          continue;
        }
        seen.add(p.name);
        fi.params.push(p.name);
      }
    }
    const port: PortInfo = { name, direction: 'require', optional: mem.optional, decl: mem, symbol, slot: info.ports.length + 1, factory: fi };
    info.ports.push(port);
    info.portByName.set(name, port);
  }

  component(e: DeclEntry): ComponentInfo {
    let info = this.infos.get(e);
    if (info) return info;
    const d = e.decl as ComponentDecl;
    const m = e.module;
    info = {
      entry: e,
      memory: DEFAULT_MEMORY,
      vcpus: DEFAULT_VCPUS,
      declassifies: [],
      params: new Map(),
      ports: [],
      arrays: new Map(),
      portByName: new Map(),
      mode: { mode: 'single', replicas: 1 },
      restart: { policy: 'never', max_retries: 0 },
    };
    this.infos.set(e, info);
    const seen = new Map<string, Span>();
    const names = new Map<string, Span>();
    let imageSet = false;
    const portScoped: { d: { from: string; to: string }; ports: Ident[] }[] = [];
    for (const mem of d.members) {
      switch (mem.kind) {
        case 'ImageMember': {
          if (this.once(seen, 'image', mem.span, m, '`image`')) break;
          imageSet = true;
          info.image = resolveRef(this.ctx, m, mem.image, ['image'], 'image');
          break;
        }
        case 'MemoryMember': {
          if (this.once(seen, 'memory', mem.span, m, '`memory`')) break;
          const v = memoryOf(this.ctx, m, mem.value);
          if (v !== undefined) info.memory = v;
          break;
        }
        case 'VcpusMember': {
          if (this.once(seen, 'vcpus', mem.span, m, '`vcpus`')) break;
          const v = vcpusOf(this.ctx, m, mem.value);
          if (v !== undefined) info.vcpus = v;
          break;
        }
        case 'LabelMember': {
          if (this.once(seen, 'label', mem.span, m, '`label`')) break;
          info.label = useLabel(this.ctx, this.labels, m, mem.label);
          info.labelSpan = mem.span;
          break;
        }
        case 'DeclassifyMember': {
          const d = declassification(this.ctx, this.labels, m, mem.from, mem.to, mem.span);
          if (d) {
            if (mem.ports) portScoped.push({ d, ports: mem.ports });
            else info.declassifies.push(d);
          }
          break;
        }
        case 'ParamDecl': {
          const name = mem.name.name;
          if (!name) break;
          if (info.params.has(name)) {
            this.ctx.report(Codes.DuplicateParameter, `parameter \`${name}\` is declared twice`, m.file, mem.name.span, {
              hint: 'remove or rename one of them',
              related: [related(m.file, info.params.get(name)!.decl.name.span, 'first declared here')],
            });
            break;
          }
          const symbol = this.ctx.declare('param', m.file, `${e.name}.${name}`, mem.name, mem.span, `${e.qname}.${name}`, () => `param ${name}: ${typeText(mem.type, m)}${mem.sensitive ? ' sensitive' : ''}`, mem.doc, e.symbol);
          const type = this.types.check(mem.type, m, { path: `${e.name}.${name}`, container: symbol, qname: `${e.qname}.${name}` });
          const p: ParamInfo = { name, decl: mem, type, hasDefault: !!mem.default && mem.default.kind !== 'MissingExpr', sensitive: mem.sensitive, symbol };
          if (mem.default && mem.default.kind !== 'MissingExpr') {
            const v = this.types.value(mem.default, type, m, `the default of \`${name}\``);
            if (v !== undefined) p.default = v;
          }
          info.params.set(name, p);
          break;
        }
        case 'PortDecl': {
          const name = mem.name.name;
          if (!name) break;
          const prev = names.get(name);
          if (prev) {
            this.ctx.report(Codes.DuplicateMember, `port \`${name}\` is declared twice in \`${e.name}\``, m.file, mem.name.span, {
              hint: 'rename one of the ports',
              related: [related(m.file, prev, 'first declared here')],
            });
            break;
          }
          names.set(name, mem.name.span);
          if (mem.factory) {
            this.factoryPort(info, e, mem, name);
            break;
          }
          const pe = resolveRef(this.ctx, m, mem.protocol, ['protocol'], 'protocol');
          const dirWord = mem.expose ? 'expose' : mem.direction;
          const symbol = this.ctx.declare('port', m.file, `${e.name}.${name}`, mem.name, mem.span, `${e.qname}.${name}`, () => `${dirWord} ${name}: ${pe ? pe.qname : qnameText(mem.protocol)}${mem.count?.kind === 'Int' ? `[${mem.count.value}]` : ''}${mem.optional ? ' optional' : ''}`, mem.doc, e.symbol);
          this.ctx.protocolOf(symbol, pe?.symbol);
          if (mem.count) {
            // A port array: one port per element, each with its own slot, channel and checks.
            if (mem.direction === 'provide') {
              this.ctx.report(Codes.ProvidedPortArray, `provided port \`${name}\` cannot be an array`, m.file, mem.count.span, {
                hint: 'a provided port already serves every caller connected to it: remove the `[N]`',
              });
              break;
            }
            if (mem.count.kind !== 'Int') break;
            info.arrays.set(name, mem.count.value);
            for (let i = 0; i < mem.count.value; i++) {
              const element: PortInfo = { name: portElementName(name, i), direction: mem.direction, protocol: pe ? this.protocols.get(pe) : undefined, optional: mem.optional, decl: mem, symbol, slot: info.ports.length + 1 };
              info.ports.push(element);
              info.portByName.set(element.name, element);
            }
            break;
          }
          const port: PortInfo = {
            name,
            direction: mem.direction,
            protocol: pe ? this.protocols.get(pe) : undefined,
            optional: mem.optional,
            decl: mem,
            symbol,
            slot: info.ports.length + 1,
          };
          if (mem.expose) {
            const hp = hostPort(this.ctx, m, mem.expose.port);
            if (mem.direction === 'require') {
              this.ctx.report(Codes.RequiredPortExposed, `required port \`${name}\` cannot be exposed`, m.file, mem.expose.span, { hint: 'only provided ports serve outside clients; use `provide` or remove the exposure' });
            } else if (hp !== undefined) port.expose = { port: hp, span: mem.expose.span };
          }
          if (mem.optional && mem.direction === 'provide') {
            this.ctx.report(Codes.InvalidComponentSetting, '`optional` applies only to required ports', m.file, mem.span, { hint: 'remove `optional`' });
          }
          info.ports.push(port);
          info.portByName.set(name, port);
          break;
        }
        case 'InstancesMember': {
          if (this.once(seen, 'instances', mem.span, m, 'the instance mode')) break;
          const v = modeOf(this.ctx, m, mem);
          if (v) info.mode = v;
          break;
        }
        case 'RestartMember': {
          if (this.once(seen, 'restart', mem.span, m, '`restart`')) break;
          const v = restartOf(this.ctx, m, mem);
          if (v) info.restart = v;
          break;
        }
        case 'ProgramMember': {
          if (this.once(seen, 'program', mem.span, m, '`program`')) break;
          info.program = mem;
          break;
        }
      }
    }
    // Ports may be declared after the declassification that names them.
    for (const { d, ports } of portScoped) {
      const names: string[] = [];
      for (const id of ports) {
        if (!id.name) continue;
        const port = info.portByName.get(id.name);
        if (!port) {
          this.ctx.report(Codes.UnknownPort, `\`${e.name}\` has no port \`${id.name}\``, m.file, id.span, {
            hint: didYouMean(id.name, info.portByName.keys()) ?? `its ports are ${info.ports.map((p) => `\`${p.name}\``).join(', ') || 'none'}`,
          });
          continue;
        }
        this.ctx.reference(m.file, id.span, port.symbol);
        if (!names.includes(id.name)) names.push(id.name);
      }
      if (names.length > 0) info.declassifies.push({ ...d, ports: names.sort() });
    }
    if (!imageSet) {
      const r = lookupPlain(m, 'busybox');
      if (r.ok && r.entry.kind === 'image') info.image = r.entry;
    }
    return info;
  }

  image(e: DeclEntry): ImageInfo {
    let info = this.images.get(e);
    if (info) return info;
    const d = e.decl as ImageDecl;
    const m = e.module;
    info = { entry: e, base: 'busybox-static', kernel: 'debian-cloud', modules: [] };
    this.images.set(e, info);
    const seen = new Map<string, Span>();
    for (const p of d.props) {
      const key = p.key.name;
      if (!key) continue;
      if (this.once(seen, key, p.span, m, `\`${key}\``)) continue;
      const bad = (msg: string, hint: string) => this.ctx.report(Codes.InvalidImageProperty, msg, m.file, p.value.span, { hint });
      switch (key) {
        case 'base':
          if (p.value.kind !== 'String' || p.value.value !== 'busybox-static') bad('the only image base is "busybox-static"', 'write `base "busybox-static"`');
          break;
        case 'kernel':
          if (p.value.kind !== 'String' || !(p.value.value === 'debian-cloud' || p.value.value.startsWith('/'))) bad('`kernel` is "debian-cloud" or an absolute path on the host', 'write `kernel "debian-cloud"`');
          else info.kernel = p.value.value;
          break;
        case 'modules':
          if (p.value.kind !== 'List' || p.value.items.some((x) => x.kind !== 'String' || !/^[A-Za-z0-9_-]+$/.test(x.value))) bad('`modules` is a list of kernel module names', 'write `modules ["virtio_console"]`');
          else info.modules = p.value.items.map((x) => (x.kind === 'String' ? x.value : ''));
          break;
        default:
          this.ctx.report(Codes.InvalidImageProperty, `unknown image property \`${key}\``, m.file, p.key.span, { hint: didYouMean(key, ['base', 'kernel', 'modules']) ?? 'images have `base`, `kernel` and `modules`' });
      }
    }
    return info;
  }

  target(e: DeclEntry): TargetInfo | undefined {
    if (this.targets.has(e)) return this.targets.get(e);
    const d = e.decl as TargetDecl;
    const m = e.module;
    const info: TargetInfo = { entry: e, backend: 'kvm', memory_bytes: 0, vcpus: 0, vcpu_overcommit: 1 };
    let ok = true;
    const seen = new Map<string, Span>();
    const props = new Map<string, Property>();
    for (const p of d.props) {
      const key = p.key.name;
      if (!key) continue;
      if (this.once(seen, key, p.span, m, `\`${key}\``)) continue;
      props.set(key, p);
      const bad = (msg: string, hint: string) => {
        ok = false;
        this.ctx.report(Codes.InvalidTargetProperty, msg, m.file, p.value.span, { hint });
      };
      const v = p.value;
      switch (key) {
        case 'backend': {
          const name = v.kind === 'Ref' ? qnameText(v.name) : v.kind === 'String' ? v.value : '';
          if ((BACKEND_NAMES as readonly string[]).includes(name)) info.backend = name as BackendName;
          else bad(`unknown backend \`${name || exprKind(v)}\``, didYouMean(name, BACKEND_NAMES) ?? `the backends are ${BACKEND_NAMES.map((b) => `\`${b}\``).join(', ')}`);
          break;
        }
        case 'namespace':
          if (v.kind !== 'String' || !NAMESPACE_RE.test(v.value)) {
            bad('`namespace` must be a Kubernetes namespace name in quotes', 'write e.g. `namespace "shop"`: lower-case letters, digits and `-`, at most 63, starting and ending with a letter or digit');
          } else info.namespace = v.value;
          break;
        case 'context':
          if (v.kind !== 'String' || v.value.length === 0 || v.value.length > 253) bad('`context` must be the name of a kubeconfig context in quotes', 'write e.g. `context "prod-cluster"`, or leave it out to use the current context');
          else info.context = v.value;
          break;
        case 'registry':
          if (v.kind !== 'String' || v.value.length > 200 || !REGISTRY_RE.test(v.value)) bad('`registry` must be a container image repository in quotes, without a tag', 'write e.g. `registry "ghcr.io/acme/mcl"`');
          else info.registry = v.value;
          break;
        case 'host': {
          const parsed = v.kind === 'String' ? parseHostAddress(v.value) : undefined;
          if (!parsed?.ok) bad(`\`host\` must be an SSH address in quotes${parsed ? `: ${parsed.reason}` : ''}`, 'write e.g. `host "ssh://mcl@node1.example:22"` (a path after it names the workspace on the host)');
          else info.host = (v as { value: string }).value;
          break;
        }
        case 'link': {
          const parsed = v.kind === 'String' ? parseLinkAddress(v.value) : undefined;
          if (!parsed?.ok) bad(`\`link\` must be an address and port in quotes${parsed ? `: ${parsed.reason}` : ''}`, 'write e.g. `link "10.0.5.2:7411"` (what the other hosts dial, and the port this one listens on), or `link ":7412"` for the address of its `host`');
          else info.link = (v as { value: string }).value;
          break;
        }
        case 'memory':
          if (v.kind !== 'Size' || v.bytes <= 0) bad('`memory` must be a size such as `8GiB`', 'write the host memory available to guests, e.g. `memory 8GiB`');
          else info.memory_bytes = v.bytes;
          break;
        case 'vcpus':
          if (v.kind !== 'Int' || v.value < 1 || !Number.isSafeInteger(v.value)) bad('`vcpus` must be a whole number of at least 1', 'write e.g. `vcpus 4`');
          else info.vcpus = v.value;
          break;
        case 'overcommit':
          if ((v.kind !== 'Int' && v.kind !== 'Float') || !(v.value >= 1)) bad('`overcommit` must be a number of at least 1', 'write e.g. `overcommit 4`');
          else info.vcpu_overcommit = v.value;
          break;
        default:
          ok = false;
          this.ctx.report(Codes.InvalidTargetProperty, `unknown target property \`${key}\``, m.file, p.key.span, {
            hint: didYouMean(key, TARGET_PROPERTIES) ?? 'targets have `backend`, `memory`, `vcpus`, `overcommit`, `host`, `link`, and for kubevirt `namespace`, `context` and `registry`',
          });
      }
    }
    for (const req of ['memory', 'vcpus']) {
      if (!props.has(req)) {
        ok = false;
        this.ctx.report(Codes.InvalidTargetProperty, `target \`${e.name}\` does not say its ${req}`, m.file, d.name.span, { hint: req === 'memory' ? 'add `memory 8GiB` (the host memory guests may use)' : 'add `vcpus 4`' });
      }
    }
    // The Kubernetes settings belong to the kubevirt backend only: elsewhere they would be silently ignored.
    if (ok && info.backend === 'kubevirt' && !props.has('namespace')) {
      ok = false;
      this.ctx.report(Codes.InvalidTargetProperty, `target \`${e.name}\` uses backend \`kubevirt\` but does not say its namespace`, m.file, d.name.span, {
        hint: 'add `namespace "shop"`: the Kubernetes namespace the deployment lives in (one deployment per namespace)',
      });
    }
    if (ok && info.backend !== 'kubevirt') {
      for (const k of KUBE_PROPS) {
        const p = props.get(k);
        if (!p) continue;
        ok = false;
        this.ctx.report(Codes.InvalidTargetProperty, `\`${k}\` is a setting of backend \`kubevirt\`, not of \`${info.backend}\``, m.file, p.key.span, { hint: `remove \`${k}\`, or write \`backend kubevirt\`` });
      }
    }
    // A kubevirt target reaches its cluster through kubeconfig, not through a host of its own.
    const hostProp = props.get('host');
    if (ok && info.backend === 'kubevirt' && hostProp) {
      ok = false;
      this.ctx.report(Codes.InvalidTargetProperty, '`host` is a setting of backends `kvm` and `xen`, not of `kubevirt`', m.file, hostProp.key.span, {
        hint: 'remove `host`: a kubevirt target names its cluster with `context`',
      });
    }
    // Only the KVM backend carries channels between hosts: a link elsewhere would be silently ignored.
    const linkProp = props.get('link');
    if (ok && info.backend !== 'kvm' && linkProp) {
      ok = false;
      this.ctx.report(Codes.InvalidTargetProperty, `\`link\` is a setting of backend \`kvm\`, not of \`${info.backend}\``, m.file, linkProp.key.span, {
        hint: 'remove `link`: only kvm targets carry channels between hosts',
      });
    }
    this.targets.set(e, ok ? info : undefined);
    return ok ? info : undefined;
  }
}

function exprKind(e: Expr): string {
  return e.kind === 'MissingExpr' ? 'nothing' : e.kind.toLowerCase();
}

export function hostPort(ctx: Ctx, m: Module, v: Expr): number | undefined {
  if (v.kind === 'MissingExpr') return undefined;
  if (v.kind !== 'Int' || v.value < 1 || v.value > 65535) {
    ctx.report(Codes.InvalidHostPort, `host port must be between 1 and 65535${v.kind === 'Int' ? `, not ${v.raw}` : ''}`, m.file, v.span, { hint: 'write a TCP port number such as `8080`' });
    return undefined;
  }
  return v.value;
}
