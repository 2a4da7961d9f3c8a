// Building the plan from the elaborated system: templates, instances,
// channels, exposures and message schemas; then the policy checker's checks
// and resource estimate, the digests, and canonical ordering everywhere so
// the same sources give byte-identical plans.

import type { Span } from '@mcl/language';
import { Codes } from '@mcl/language';
import {
  planFormatVersion,
  canonicalJson,
  imageDigest,
  instanceDigest,
  instanceJsonWithDigest,
  invariantsDigest,
  paramEnv,
  paramEnvName,
  planDigest,
  sourcesDigest,
  vouchCanonical,
  type JsonValue,
  type MessageSchema,
  type Plan,
  type PlanChannel,
  type PlanEgress,
  type PlanExposure,
  type PlanFile,
  type PlanImage,
  type PlanInstance,
  type PlanOperation,
  type PlanPolicies,
  type PlanPort,
  type PlanTarget,
  type PlanTemplate,
} from '@mcl/plan';
import type { CompileOptions } from '../api';
import { Ctx, related, type DeclEntry } from '../context';
import type { ComponentInfo, Components, LabelInfo, TargetInfo } from '../compose/components';
import type { Flat, FlatChannel, FlatEgress, FlatExposure, FlatInstance, FlatPiece, Piece } from '../compose/elaborate';
import { DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_MESSAGE, DEFAULT_TIMEOUT_MS } from '../compose/systems';
import type { PolicyInput, PolicyResult, SourceRef } from '../policy/types';
import type { ProtocolInfo } from '../types/protocols';
import type { Types } from '../types/message-types';
import { compileOrder } from '../types/dfa';
import { buildProgram, programFileText, type ProgramSpec } from './program';
import type { BlockData, BlockRecord, BlockSource, BodyCache, CachedInstance } from './body-cache';
import { relativeToRoot } from '../resolve/load';

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function memoryTag(bytes: number): string {
  const GiB = 1024 * 1024 * 1024;
  const MiB = 1024 * 1024;
  if (bytes % GiB === 0) return `${bytes / GiB}g`;
  if (bytes % MiB === 0) return `${bytes / MiB}m`;
  return `${bytes}b`;
}

export { paramEnv };

/**
 * What the body derives from one flat channel or instance alone, made once per flat object: an
 * incremental compile's elaboration hands the subtrees an edit did not touch over as the very same
 * flat objects (ElaborationCache in compose/elaborate.ts), so these are not made again on every
 * compile, and the keys stay the same strings, whose hashes the maps keep, instead of new ones
 * hashed again.
 */
const channelFacts = new WeakMap<FlatChannel, { fromKey: string; toKey: string; origin: SourceRef }>();
const templateKeys = new WeakMap<FlatInstance, { image: string; key: string }>();

function factsOf(fc: FlatChannel): { fromKey: string; toKey: string; origin: SourceRef } {
  let f = channelFacts.get(fc);
  if (f === undefined) {
    f = { fromKey: `${fc.from.instance}\u0000${fc.from.port}`, toKey: `${fc.to.instance}\u0000${fc.to.port}`, origin: { file: fc.module.file, span: fc.conn.decl.span } };
    channelFacts.set(fc, f);
  }
  return f;
}

/** The channels of every port without any: one frozen array, as nothing modifies a plan instance once it is built. */
const NO_CHANNELS: string[] = Object.freeze([]) as unknown as string[];

/** Every empty list of a component's program (argv, files, sensitive names): one frozen array, as NO_CHANNELS. */
const NO_ITEMS: never[] = Object.freeze([]) as unknown as never[];

/**
 * A list of a component's program, frozen (nothing modifies a plan instance once it is built), or
 * NO_ITEMS when it is empty. Only lists that have elements are frozen here, and they are always built
 * by pushing objects or strings (or as a literal of strings), so every array this freezes has the
 * same elements kind: an empty array literal has another, and freezing both kinds at one place made
 * V8 throw the optimised code of the plan body's programs away (twice per server start).
 */
function frozenList<T>(list: T[]): T[] {
  return list.length === 0 ? NO_ITEMS : (Object.freeze(list) as T[]);
}

/**
 * A port of a plan instance, its keys in canonical (sorted) order. A port neither exposed nor
 * leaving through an egress (nearly all of them) is one object literal: a plan of 10,000 instances
 * has some 30,000 ports, and spreading the optional keys in cost two more objects for each and a
 * copy of its properties.
 */
function planPort(
  p: ComponentInfo['ports'][number],
  k: string,
  portChannels: Map<string, string[]>,
  exposedOn: Map<string, number>,
  egressOn: Map<string, string>,
  factoryProtocol: { get(k: string): string | undefined },
): PlanPort {
  const channels = portChannels.get(k)?.sort(byString) ?? NO_CHANNELS;
  const protocol = p.protocol?.entry.qname ?? (p.factory ? factoryProtocol.get(k) : undefined) ?? '';
  const eg = egressOn.get(k);
  const exp = exposedOn.get(k);
  if (eg === undefined && exp === undefined) return { channels, direction: p.direction, name: p.name, protocol, slot: p.slot };
  return {
    channels,
    direction: p.direction,
    ...(eg !== undefined ? { egress: eg } : {}),
    ...(exp !== undefined ? { exposed_on: exp } : {}),
    name: p.name,
    protocol,
    slot: p.slot,
  };
}

/** The key of an instance's template: its image, memory and vCPUs. */
function templateKeyOf(fi: FlatInstance, image: string): string {
  const k = templateKeys.get(fi);
  if (k !== undefined && k.image === image) return k.key;
  const key = `${image}\u0000${fi.inst.memory}\u0000${fi.inst.vcpus}`;
  templateKeys.set(fi, { image, key });
  return key;
}

export interface Body {
  /** Canonical JSON of each instance (with its digest), by id: reused for the plan digest. */
  instanceJson: Map<string, string>;
  target: PlanTarget;
  /** A deploy to several targets: all of them, in deploy order (see Plan.targets). */
  targets?: PlanTarget[];
  images: PlanImage[];
  templates: PlanTemplate[];
  instances: PlanInstance[];
  channels: PlanChannel[];
  exposures: PlanExposure[];
  egresses: PlanEgress[];
  schemas: Record<string, MessageSchema>;
  origins: PolicyInput['origins'];
}

export class PlanBuilder {
  private readonly programs = new Map<ComponentInfo, ProgramSpec & { sensitive: string[] }>();
  private readonly orders = new Map<string, PlanChannel['invariants']['order']>();
  private readonly envNames = new Map<string, string>();
  /** Operations and order automaton per protocol and allow-list (see operations()). */
  private readonly channelOps = new Map<ProtocolInfo, Map<string, { ops: PlanOperation[]; order: PlanChannel['invariants']['order'] }>>();

  constructor(
    private readonly ctx: Ctx,
    private readonly types: Types,
    private readonly components: Components,
    /** What the previous compile's bodies built, to take over what did not change (body-cache.ts). */
    private readonly cache?: BodyCache,
  ) {}

  /** Applies `options.exclude`: drops instances (an id or a nested system's prefix) and the channels touching them. */
  exclude(flat: Flat, exclude: readonly string[] | undefined, anchor: SourceRef): Flat {
    if (!exclude || exclude.length === 0) return flat;
    const ids = new Set(flat.instances.map((i) => i.id));
    const gone = (id: string) => exclude.some((x) => id === x || id.startsWith(x + '.'));
    for (const x of [...exclude].sort()) {
      if (!flat.instances.some((i) => i.id === x || i.id.startsWith(x + '.'))) {
        this.ctx.report(Codes.ExcludedInstanceMissing, `there is no instance \`${x}\` to exclude`, anchor.file, anchor.span, {
          hint: `instance ids are dotted paths from the root system, e.g. ${[...ids].sort().slice(0, 3).map((i) => `\`${i}\``).join(', ')}`,
        });
      }
    }
    const channels = flat.channels.filter((c) => {
      if (!gone(c.from.instance) && !gone(c.to.instance)) return true;
      this.ctx.report(Codes.ChannelDroppedByExclusion, `channel \`${c.id}\` is left out because it touches an excluded instance`, c.module.file, c.conn.decl.span, {
        hint: 'the instance on its other side loses this connection in the plan',
      });
      return false;
    });
    return {
      instances: flat.instances.filter((i) => !gone(i.id)),
      channels,
      exposures: flat.exposures.filter((x) => !gone(x.instance)),
      egresses: flat.egresses.filter((x) => !gone(x.instance)),
      rules: flat.rules,
      exports: flat.exports,
    };
  }

  /** A component's program (files sorted by guest path) and sensitive parameter names, built once per component. */
  private program(c: ComponentInfo): ProgramSpec & { sensitive: string[] } {
    // With a cache, a program kept for the next compile is found there, and only one that reported
    // something goes into this builder's own map: one map of every component per compile, not two.
    let p = this.cache ? this.cache.keptProgram(c)?.spec : undefined;
    if (!p) p = this.programs.get(c);
    if (!p) {
      const kept = this.cache?.program(c);
      if (kept && this.sameReads(kept.reads)) {
        this.cache!.keepProgram(c, kept);
        return kept.spec;
      } else {
        const reads: [string, string][] = [];
        const reported = this.ctx.diagnostics.length;
        const built = buildProgram(this.ctx, c.entry.module, c.program, reads);
        built.files.sort((a, b) => byString(a.path, b.path));
        // Its argv, files (their keys in canonical order) and sensitive names go into every instance of
        // the component as they are: nothing modifies a plan instance once it is built (placement and
        // redaction make new objects), so its instances share them instead of a copy each.
        // Built field by field, not spread from `built` with a new array of every parameter: once per
        // component, 10,000 times for a plan of 10,000 components.
        // Frozen, so that code which did modify one instance's program in place would fail at once
        // instead of changing every instance of the component.
        const files: PlanFile[] = [];
        for (const f of built.files) files.push(Object.freeze({ content: f.content, mode: f.mode, path: f.path }));
        const sensitive: string[] = [];
        for (const x of c.params.values()) if (x.sensitive) sensitive.push(x.name);
        p = { argv: frozenList(built.argv), env: built.env, files: frozenList(files), sensitive: frozenList(sensitive.sort()) };
        // A program that reported something is built again next time, so that it reports it again.
        if (this.ctx.diagnostics.length === reported && this.cache) {
          this.cache.keepProgram(c, { spec: p, reads });
          return p;
        }
      }
      this.programs.set(c, p);
    }
    return p;
  }

  /** Whether the workspace files a kept program read still have the text it was built from. */
  private sameReads(reads: readonly [string, string][]): boolean {
    for (let i = 0; i < reads.length; i++) if (programFileText(this.ctx, reads[i][0]) !== reads[i][1]) return false;
    return true;
  }

  /**
   * Whether the programs a block's instances were built with are still its components' programs
   * (a program is built again when a file it reads changed). Every component is asked, also after
   * one that differs, as building a program reports its problems, in order.
   */
  private samePrograms(programs: BlockData['programs']): boolean {
    let same = true;
    // An index rather than for-of: asked of every block on every compile, where until V8 optimises it
    // for-of makes an iterator result per element.
    for (let i = 0; i < programs.length; i++) if (this.program(programs[i][0]) !== programs[i][1]) same = false;
    return same;
  }

  /** The environment variable of parameter `name`, made once per name rather than once per instance. */
  private envName(name: string): string {
    let n = this.envNames.get(name);
    if (n === undefined) {
      n = paramEnvName(name);
      this.envNames.set(name, n);
    }
    return n;
  }

  private order(proto: ProtocolInfo, ops: string[]): PlanChannel['invariants']['order'] {
    if (!proto.order) return null;
    const key = `${proto.entry.qname}\u0000${ops.join(',')}`;
    let o = this.orders.get(key);
    if (o === undefined) {
      o = compileOrder(proto.order, ops) ?? null;
      this.orders.set(key, o);
    }
    return o;
  }

  /**
   * Builds the plan body; `digests` false leaves instance digests empty (checking only: nobody reads them).
   * `place`, for a deploy to several targets, is given the instances before their digests are
   * computed and returns the target of each (an instance placed elsewhere is a different instance).
   * `reportOnly` is for a composition whose plan and policy checks are not reached (an error
   * elsewhere already stops them): the body then only reports what building it would report (images,
   * exposures, programs) and leaves out the channels, templates, instances and schemas nobody reads; what the
   * cache holds is kept for the next compile. Not with `place`, whose placement reports too. With a cache
   * that holds no body for it yet (the language server's first build, which usually meets a file
   * being edited), the body is built whole all the same, so that the first compiles after it take
   * its objects over instead of building them all (it reports the same either way).
   */
  body(flat: Flat, target: TargetInfo, digests = true, place?: (instances: readonly PlanInstance[], templates: readonly PlanTemplate[], origins: PolicyInput['origins']) => Map<string, string>, reportOnly = false): Body {
    const ctx = this.ctx;
    const cache = this.cache;
    if (reportOnly && cache && !place && flat.pieces && !cache.state()) reportOnly = false;
    const indexKeys = this.types.sawIndexKey;
    // Subtrees taken over whole are taken over as blocks, and the last body's sorted lists and
    // origins updated, when nothing places the instances afterwards (body-cache.ts).
    const pieces = cache && !place && !reportOnly ? flat.pieces : undefined;
    const prior = pieces ? cache!.state() : undefined;
    const planTarget = planTargetOf(target);

    // Images.
    const images = new Map<string, { entry: DeclEntry; image: PlanImage }>();
    const addImage = (e: DeclEntry) => {
      if (images.has(e.name)) return;
      const info = this.components.image(e);
      const img: Omit<PlanImage, 'digest'> = { name: e.name, base: info.base, kernel: info.kernel, modules: info.modules, files: [] };
      images.set(e.name, { entry: e, image: { ...img, digest: imageDigest(img, this.ctx.sha256) } });
    };
    const imageOf = (fi: FlatInstance): string | undefined => {
      const e = fi.comp.image;
      if (!e) {
        ctx.report(Codes.InvalidComponentSetting, `\`${fi.comp.entry.name}\` has no image`, fi.comp.entry.module.file, fi.comp.entry.decl.name.span, {
          hint: 'add `image busybox` (the prelude declares it) or declare an image',
        });
        return undefined;
      }
      const name = e.name;
      const have = images.get(name);
      if (have && have.entry !== e) {
        ctx.report(Codes.DuplicateImageName, `two different images are named \`${name}\`: \`${have.entry.qname}\` and \`${e.qname}\``, e.module.file, e.decl.name.span, {
          hint: 'rename one of them: images are identified by name on the host',
          related: [related(have.entry.module.file, have.entry.decl.name.span, 'the other image')],
        });
        return name;
      }
      addImage(e);
      return name;
    };

    // What this body makes for each position of the flat lists it visits, kept as the source of the
    // blocks of its subtrees (body-cache.ts).
    const src: BlockSource = {
      pis: [],
      entries: [],
      instOrigins: [],
      labelOrigins: [],
      reported: new Set(),
      pcs: [],
      chOrigins: [],
      blocks: [],
      digests,
      indexKeys,
    };

    // Blocks: the subtrees elaboration took over whole, with the block the last bodies made of them.
    // `now` collects what reaches a block's ports from outside in this composition.
    type Cand = { at: FlatPiece; rec: BlockRecord; data: BlockData; ok: boolean; now: string[] };
    let cands: Cand[] = [];
    let rootBlock: Cand | undefined;
    const byPrefix = new Map<string, Cand>();
    for (const p of pieces ?? []) {
      if (!p.reused) continue;
      const rec = cache!.block(p.piece);
      const data = rec && blockData(p.piece, rec);
      if (!rec || !data || data.digests !== digests || data.indexKeys !== indexKeys) continue;
      const c: Cand = { at: p, rec, data, ok: true, now: [] };
      cands.push(c);
      if (p.prefix === '') rootBlock = c;
      else byPrefix.set(p.prefix, c);
    }
    /** The block an instance id lies in: its prefix names the block's subtree. */
    const blockOf = (id: string): Cand | undefined => {
      if (rootBlock) return rootBlock;
      if (byPrefix.size === 0) return undefined;
      for (let i = id.indexOf('.'); i >= 0; i = id.indexOf('.', i + 1)) {
        const c = byPrefix.get(id.slice(0, i));
        if (c) return c;
      }
      return undefined;
    };
    /** Calls `fn` for each position of the flat list outside the blocks taken over, with the block it lies in if any. */
    const visit = (kind: 'instances' | 'channels', fn: (i: number, b: Cand | undefined) => void) => {
      let at = 0;
      for (const b of cands) {
        const start = b.at[kind];
        const end = start + b.at.piece[kind].length;
        for (; at < start; at++) fn(at, undefined);
        if (!b.ok) for (; at < end; at++) fn(at, b);
        at = end;
      }
      for (const total = flat[kind].length; at < total; at++) fn(at, undefined);
    };
    if (cands.length) {
      // An object built outside the blocks with the id of one inside, or two images of one name, and
      // everything is built as a whole composition is: which one counts depends on their order.
      let clash = false;
      const named = new Map<string, DeclEntry>();
      const see = (e: DeclEntry | undefined) => {
        if (!e) return;
        const h = named.get(e.name);
        if (h === undefined) named.set(e.name, e);
        else if (h !== e) clash = true;
      };
      for (const c of cands) each(c.data.images, see);
      visit('instances', (i) => {
        const fi = flat.instances[i];
        see(fi.comp.image);
        if (blockOf(fi.id)) clash = true;
      });
      const seenIds = new Set<string>();
      visit('channels', (i) => {
        const fc = flat.channels[i];
        if (seenIds.has(fc.id)) return;
        seenIds.add(fc.id);
        const a = blockOf(fc.from.instance);
        const b = blockOf(fc.to.instance);
        if (a?.data.channelIds.has(fc.id) || b?.data.channelIds.has(fc.id)) clash = true;
        const f = factsOf(fc);
        a?.now.push(`c${f.fromKey}\u0001${fc.id}`);
        b?.now.push(`c${f.toKey}\u0001${fc.id}`);
      });
      if (clash) {
        cands = [];
        rootBlock = undefined;
        byPrefix.clear();
      }
      // A component's program built again (a file it reads changed) changes its instances.
      for (const c of cands) if (!this.samePrograms(c.data.programs)) c.ok = false;
    }

    // Channels first: ports list their channel ids.
    const portChannels = new Map<string, string[]>();
    // A factory port has no protocol of its own: it takes that of its channel to the created instances.
    // The map is built on the first such port (most compositions have none).
    let factoryProtocols: Map<string, string> | undefined;
    const factoryProtocol = {
      get(k: string): string | undefined {
        if (!factoryProtocols) {
          factoryProtocols = new Map();
          for (const fc of flat.channels) factoryProtocols.set(`${fc.from.instance}\u0000${fc.from.port}`, fc.conn.protocol.entry.qname);
        }
        return factoryProtocols.get(k);
      },
    };
    const addPortChannel = (k: string, id: string) => {
      const l = portChannels.get(k);
      if (l) l.push(id);
      else portChannels.set(k, [id]);
    };

    // The origins: those of instances, channels and labels are the last body's, updated, when it left them.
    const keptOrigins = prior && cands.some((c) => c.ok) ? prior.origins : { instances: {}, channels: {}, labels: {} };
    const origins: PolicyInput['origins'] = { instances: keptOrigins.instances, channels: keptOrigins.channels, exposures: {}, labels: keptOrigins.labels };
    origins.target = { file: target.entry.module.file, span: target.entry.decl.name.span };

    const protocolsUsed = new Set<ProtocolInfo>();

    // Exposures.
    const exposures: PlanExposure[] = [];
    const hostPorts = new Map<number, { file: string; span: Span }>();
    const exposedOn = new Map<string, number>();
    for (const x of flat.exposures) {
      const prev = hostPorts.get(x.hostPort);
      if (prev) {
        ctx.report(Codes.HostPortExposedTwice, `host port ${x.hostPort} is exposed twice`, x.file, x.span, {
          hint: 'give each exposure its own host port',
          related: [related(prev.file, prev.span, 'first exposed here')],
        });
        continue;
      }
      hostPorts.set(x.hostPort, { file: x.file, span: x.span });
      const k = `${x.instance}\u0000${x.port.name}`;
      if (exposedOn.has(k)) {
        ctx.report(Codes.HostPortExposedTwice, `\`${x.instance}.${x.port.name}\` is exposed on two host ports`, x.file, x.span, { hint: 'expose a port once' });
        continue;
      }
      exposedOn.set(k, x.hostPort);
      exposures.push(this.exposure(x, protocolsUsed));
      origins.exposures[String(x.hostPort)] = { file: x.file, span: x.span };
    }
    exposures.sort((a, b) => a.host_port - b.host_port);

    // Egresses.
    // Lists the body sorts are built by pushing onto an empty array, not made by `map`, whose result
    // has another elements kind in optimised code than in the interpreter: sorting both kinds at one
    // place threw the plan body's optimised code away again and again in the first edits.
    const egresses: PlanEgress[] = [];
    for (const x of flat.egresses) egresses.push(this.egress(x, protocolsUsed));
    egresses.sort((a, b) => byString(a.name, b.name));
    for (const x of flat.egresses) (origins.egresses ??= {})[x.name] = { file: x.file, span: x.egress.span };
    const egressOn = new Map(flat.egresses.map((x) => [`${x.instance}\u0000${x.port.name}`, x.name]));

    // A block whose ports are reached from outside as they were when it was made is still what
    // building it would give (its own channels, exposures and egresses are the same objects).
    if (cands.length) {
      const instanceOfKey = (k: string) => k.slice(0, k.indexOf('\u0000'));
      for (const [k, port] of exposedOn) blockOf(instanceOfKey(k))?.now.push(`x${k}\u0001${port}`);
      for (const [k, name] of egressOn) blockOf(instanceOfKey(k))?.now.push(`e${k}\u0001${name}`);
      for (const c of cands) {
        if (!c.ok) continue;
        if (c.now.sort().join('\u0002') !== c.data.outside) c.ok = false;
        else if (c.data.factory.some(([k, proto]) => (factoryProtocol.get(k) ?? '') !== proto)) c.ok = false;
      }
    }

    // Templates: one per (image, memory, vcpus); port slots cover the instance with the most ports.
    const tmpl = new Map<string, { image: string; memory: number; vcpus: number; slots: number; count: number }>();
    /** Counts `count` instances with up to `slots` port slots into the template of `key`. */
    const addTemplate = (key: string, add: { image: string; memory: number; vcpus: number; slots: number; count: number }) => {
      const t = tmpl.get(key);
      if (!t) tmpl.set(key, add);
      else {
        t.slots = Math.max(t.slots, add.slots);
        t.count += add.count;
      }
    };
    // The template key of each instance, by its place in `flat.instances`. A body that only reports
    // needs no templates: of this loop, only what `imageOf` reports.
    // Filled at once, so that storing the keys does not change the array's elements kind (and with
    // it the map the optimised plan body expects) on the first store.
    const instTemplateKey: (string | undefined)[] = new Array<string | undefined>(flat.instances.length).fill(undefined);
    visit('instances', (i) => {
      const fi = flat.instances[i];
      const reported = ctx.diagnostics.length;
      const image = imageOf(fi);
      if (ctx.diagnostics.length !== reported) src.reported.add(i);
      if (image === undefined || reportOnly) return;
      const key = templateKeyOf(fi, image);
      instTemplateKey[i] = key;
      addTemplate(key, { image, memory: fi.inst.memory, vcpus: fi.inst.vcpus, slots: fi.comp.ports.length + 1, count: 1 });
    });
    for (const c of cands) {
      if (!c.ok) continue;
      each(c.data.images, addImage);
      addTemplates(c.data.templates, addTemplate);
    }
    const templateId = new Map<string, string>();
    const templates: PlanTemplate[] = [];
    for (const [key, t] of tmpl) {
      const id = `${t.image}-${memoryTag(t.memory)}-${t.vcpus}c-${t.slots}p`;
      templateId.set(key, id);
      templates.push({ id, image: t.image, memory_bytes: t.memory, vcpus: t.vcpus, port_slots: t.slots, instance_count: t.count });
    }
    templates.sort((a, b) => byString(a.id, b.id));
    // A block whose templates now have other ids (another instance has more ports) is built again;
    // its share of the templates, added above, is the same either way.
    for (const c of cands) if (c.ok && !sameTemplateIds(c.data.templates, templateId)) c.ok = false;

    // Channels.
    const channelIds = new Set<string>();
    // Building a channel reports nothing.
    if (reportOnly) this.cache?.carryOver();
    else {
      visit('channels', (i, b) => {
        const fc = flat.channels[i];
        if (channelIds.has(fc.id)) return;
        channelIds.add(fc.id);
        const pc = this.channel(fc, protocolsUsed, b?.data.pcs[i - b.at.channels]);
        src.pcs[i] = pc;
        const facts = factsOf(fc);
        src.chOrigins[i] = facts.origin;
        addPortChannel(facts.fromKey, fc.id);
        addPortChannel(facts.toKey, fc.id);
      });
      for (const c of cands) if (c.ok) each(c.data.protocols, (p) => protocolsUsed.add(p));
    }

    // Instances.
    // Named types the run-time parameters of created instances refer to: their schemas go into `schemas` too.
    const paramRefs = new Set<DeclEntry>();
    const instanceJson = new Map<string, string>();
    visit('instances', (i, b) => {
      const fi = flat.instances[i];
      const { inst, comp } = fi;
      // Of an instance, only its component's program reports anything.
      if (reportOnly) {
        this.program(comp);
        return;
      }
      // The label's origin is the same whether the instance is taken over or built.
      if (inst.labelSpan) {
        const labelFile = inst.labelSpan === comp.labelSpan ? comp.entry.module.file : fi.module.file;
        src.labelOrigins[i] = { file: labelFile, span: inst.labelSpan };
      }
      const prog = this.program(comp);
      // An instance of a block whose templates were checked above has no key yet.
      const key = instTemplateKey[i] ?? (b && comp.image ? templateKeyOf(fi, comp.image.name) : '');
      const template = templateId.get(key) ?? '';
      const kept = this.cache?.instance(fi.id) ?? b?.data.entries[i - b.at.instances];
      if (
        kept &&
        !place &&
        kept.inst === inst &&
        kept.comp === comp &&
        kept.module === fi.module &&
        kept.prog === prog &&
        kept.template === template &&
        kept.digests === digests &&
        kept.indexKeys === indexKeys &&
        this.samePorts(kept.pi, kept.portKeys, comp, portChannels, exposedOn, egressOn, factoryProtocol)
      ) {
        this.cache!.keepInstance(fi.id, kept, true);
        if (kept.json !== undefined) instanceJson.set(fi.id, kept.json);
        src.pis[i] = kept.pi;
        src.entries[i] = kept;
        src.instOrigins[i] = kept.origin;
        return;
      }
      // Every object below is built with its keys in canonical (sorted) order, so the plain native
      // serializer already gives canonical JSON; a test checks this stays true. Parameter values are
      // sorted by the type checker; index-like keys (which engines enumerate first) take the slow path.
      const envVars: [string, string][] = [];
      for (const k of Object.keys(prog.env)) envVars.push([k, prog.env[k]]);
      const params: Record<string, JsonValue> = {};
      for (const name of Object.keys(inst.params).sort()) {
        params[name] = inst.params[name];
        envVars.push([this.envName(name), paramEnv(inst.params[name])]);
      }
      envVars.sort((a, b) => byString(a[0], b[0]));
      const env: Record<string, string> = {};
      for (const [k, v] of envVars) env[k] = v;
      // The key of each port in the maps above, made once for all of them (and for the cache).
      const portKeys = comp.ports.map((p) => `${fi.id}\u0000${p.name}`);
      // `digest` has its place in key order from the start, undefined (which JSON leaves out) until it
      // is computed over the rest: the instance needs no second copy, and the plan file's writer finds
      // it in canonical order and writes it without copying it (prettyJson).
      const pi: PlanInstance = {
        component: comp.entry.qname,
        ...(inst.mode.creator && inst.mode.factory
          ? {
              created_by: {
                detached: inst.mode.factory.detached,
                // The creator is declared in the same system as the created instance: same id prefix.
                instance: fi.id.slice(0, fi.id.length - inst.name.length) + inst.mode.creator.instance,
                max: inst.mode.factory.max,
                params: Object.fromEntries(
                  [...inst.mode.factory.params].sort().flatMap((n) => {
                    const p = comp.params.get(n);
                    return p ? [[n, this.types.schema(p.type, paramRefs)]] : [];
                  }),
                ),
                port: inst.mode.creator.port,
              },
            }
          : {}),
        declassifies: comp.declassifies.map((d) => (d.ports ? { from: d.from, ports: [...d.ports], to: d.to } : { from: d.from, to: d.to })),
        digest: undefined as unknown as string,
        id: fi.id,
        ...(inst.label !== undefined ? { label: inst.label } : {}),
        ...(inst.mode.factory ? { max_instances: inst.mode.factory.total } : {}),
        ...(inst.mode.max_sessions !== undefined ? { max_sessions: inst.mode.max_sessions } : {}),
        memory_bytes: inst.memory,
        mode: inst.mode.mode,
        params,
        ports: comp.ports.map((p, j) => planPort(p, portKeys[j], portChannels, exposedOn, egressOn, factoryProtocol)),
        // The program's argv and files and the sensitive names are the component's, shared by its instances.
        program: { argv: prog.argv, env, files: prog.files },
        replicas: inst.mode.replicas,
        restart: { max_retries: inst.restart.max_retries, policy: inst.restart.policy },
        sensitive_params: prog.sensitive,
        template,
        vcpus: inst.vcpus,
      };
      // With several targets the digest also covers the placement, which is decided over every
      // instance below: the instance is digested there, and not kept for the next compile.
      let withDigest: string | undefined;
      if (digests && !place) {
        withDigest = this.digest(pi);
        instanceJson.set(fi.id, withDigest);
      } else if (!digests) pi.digest = '';
      const origin = { file: fi.module.file, span: inst.decl.span };
      src.pis[i] = pi;
      src.instOrigins[i] = origin;
      // A created instance's parameter schemas add named types to the plan's schemas as they are
      // built: it is built every time, so that they are added every time.
      if (this.cache && !pi.created_by && !place) {
        const entry: CachedInstance = { inst, comp, module: fi.module, prog, template, digests, indexKeys, pi, json: withDigest, origin, portKeys };
        this.cache.keepInstance(fi.id, entry, false);
        src.entries[i] = entry;
      }
    });

    // The sorted lists and the origins: the last body's, less the entries this one does not take
    // over as they were, with the rest merged in (body-cache.ts). What is dropped is dropped first:
    // its id may come back.
    const valid = new Set<BlockData>();
    for (const c of cands) if (c.ok) valid.add(c.data);
    const from = prior && keptOrigins === prior.origins ? prior : undefined;
    const ki = keepOwned(from?.instances, from?.instanceOwners, valid, (pi) => {
      delete origins.instances[pi.id];
      delete origins.labels[pi.id];
    });
    const kc = keepOwned(from?.channels, from?.channelOwners, valid, (pc) => void delete origins.channels[pc.id]);
    const addedInstances: [PlanInstance, BlockData | undefined][] = [];
    const addedChannels: [PlanChannel, BlockData | undefined][] = [];
    for (const c of cands) {
      if (!c.ok) continue;
      const d = c.data;
      cache!.reusedBlock(d.pis.length + d.pcs.length);
      takeOverBlock(d, digests ? instanceJson : undefined, ki.present.has(d) ? undefined : addedInstances, kc.present.has(d) ? undefined : addedChannels, origins);
    }
    visit('instances', (i) => {
      const pi = src.pis[i];
      const label = src.labelOrigins[i];
      if (label) origins.labels[flat.instances[i].id] = label;
      if (!pi) return;
      addedInstances.push([pi, undefined]);
      origins.instances[pi.id] = src.instOrigins[i]!;
    });
    visit('channels', (i) => {
      const pc = src.pcs[i];
      if (!pc) return;
      addedChannels.push([pc, undefined]);
      origins.channels[pc.id] = src.chOrigins[i]!;
    });
    const mi = mergeSorted(ki, addedInstances);
    const mc = mergeSorted(kc, addedChannels);
    const instances = mi.list;
    const channels = mc.list;
    if (pieces) {
      // Each subtree's block for the next compile: the one taken over, or one made from this body.
      const taken = new Map<Piece, BlockRecord>();
      for (const c of cands) {
        if (!c.ok) continue;
        taken.set(c.at.piece, c.rec);
        src.blocks.push({ instances: c.at.instances, channels: c.at.channels, data: c.data });
      }
      // The first body of a cache makes the blocks of the root's subsystems now rather than when the
      // next compile first takes them over, and lists its objects in the sorted lists it keeps as those
      // blocks' (as if it had taken them over): the next compile would otherwise make every block and
      // sort every object again, and an edit after the language server's first build would cost several
      // times what it costs later on. Deeper subtrees' and the root's blocks are made when taken over.
      const first = prior ? undefined : new Map<object, BlockData>();
      for (const p of pieces) {
        let rec = taken.get(p.piece);
        if (!rec) {
          rec = { src, instances: p.instances, channels: p.channels };
          if (first && p.prefix !== '' && !p.prefix.includes('.')) {
            const d = blockData(p.piece, rec);
            if (d) {
              each(d.pis, (pi) => void first.set(pi, d));
              each(d.pcs, (pc) => void first.set(pc, d));
            }
          }
        }
        cache!.keepBlock(p.piece, rec);
      }
      const instanceOwners = first ? ownersOf(instances, first) : mi.owners;
      const channelOwners = first ? ownersOf(channels, first) : mc.owners;
      cache!.keepState({ instances, instanceOwners, channels, channelOwners, origins: { instances: origins.instances, channels: origins.channels, labels: origins.labels } });
    } else if (cache && !reportOnly) cache.keepState(undefined);
    const placed = place?.(instances, templates, origins);
    for (let i = 0; placed && i < instances.length; i++) {
      let pi = instances[i];
      const where = placed?.get(pi.id);
      if (where !== undefined) {
        // `target` takes its place in key order, so the fast serialiser below stays canonical.
        pi = instances[i] = Object.fromEntries(Object.entries({ ...pi, target: where }).sort(([a], [b]) => byString(a, b))) as unknown as PlanInstance;
      }
      if (digests) instanceJson.set(pi.id, this.digest(pi));
      else pi.digest = '';
    }

    // Schemas of every operation the channels carry, and the named types they refer to. A message
    // schema is built from checked types and reports nothing, and only the plan reads them: without
    // a plan (`digests` false: checking only) they are left out, and those the cache holds are kept.
    const schemas: Record<string, MessageSchema> = {};
    const pending = new Set<DeclEntry>();
    if (digests && !reportOnly) {
      for (const p of protocolsUsed) {
        for (const [name, s] of p.inline) schemas[name] = s;
        for (const r of p.refs) pending.add(r);
      }
      for (const r of paramRefs) pending.add(r);
    } else if (!reportOnly) this.cache?.carrySchemas();
    const done = new Set<DeclEntry>();
    while (pending.size) {
      const [e] = pending;
      pending.delete(e);
      if (done.has(e)) continue;
      done.add(e);
      let s = this.cache?.schema(e);
      if (!s) {
        const refs = new Set<DeclEntry>();
        s = { schema: this.types.schema(this.types.body(e), refs), refs: [...refs] };
        this.cache?.keepSchema(e, s);
      }
      schemas[e.qname] = s.schema;
      for (const r of s.refs) if (!done.has(r)) pending.add(r);
    }
    const planImages: PlanImage[] = [];
    for (const x of images.values()) planImages.push(x.image);
    planImages.sort((a, b) => byString(a.name, b.name));
    const sortedSchemas: Record<string, MessageSchema> = {};
    for (const k of Object.keys(schemas).sort()) sortedSchemas[k] = schemas[k];

    return {
      target: planTarget,
      images: planImages,
      templates,
      instances,
      instanceJson,
      channels,
      exposures,
      egresses,
      schemas: sortedSchemas,
      origins,
    };
  }

  /**
   * Whether the engine's JSON.stringify of an instance is its canonical JSON: not once an index-like
   * key was seen (the native serialiser would put it first), nor for a created instance, whose
   * run-time parameter schemas are built in their own field order.
   */
  private nativeJsonIsCanonical(pi: PlanInstance): boolean {
    return !this.types.sawIndexKey && !pi.created_by;
  }

  /**
   * Sets the instance's digest and returns its canonical JSON with the digest, as the plan digest
   * reads it: the engine's JSON where that is canonical (`nativeJsonIsCanonical`), else the slower
   * canonical serialiser's.
   */
  private digest(pi: PlanInstance): string {
    const json = this.nativeJsonIsCanonical(pi) ? JSON.stringify(pi) : canonicalJson(pi);
    pi.digest = instanceDigest(pi, this.ctx.sha256, json);
    return instanceJsonWithDigest(json, pi.digest);
  }

  /** Whether a kept instance's ports are connected, exposed and typed as this composition's are. */
  private samePorts(pi: PlanInstance, keys: readonly string[], comp: ComponentInfo, portChannels: Map<string, string[]>, exposedOn: Map<string, number>, egressOn: Map<string, string>, factoryProtocol: { get(k: string): string | undefined }): boolean {
    const ports = comp.ports;
    if (pi.ports.length !== ports.length) return false;
    for (let i = 0; i < ports.length; i++) {
      const p = ports[i];
      const was = pi.ports[i];
      const k = keys[i];
      if (was.exposed_on !== exposedOn.get(k)) return false;
      // An egress is declared by a system, possibly an outer one the instance's module does not see.
      if (was.egress !== egressOn.get(k)) return false;
      if (p.factory && !p.protocol && was.protocol !== (factoryProtocol.get(k) ?? '')) return false;
      const now = portChannels.get(k);
      if (now === undefined) {
        if (was.channels.length !== 0) return false;
        continue;
      }
      if (now.length !== was.channels.length) return false;
      now.sort(byString);
      for (let j = 0; j < now.length; j++) if (now[j] !== was.channels[j]) return false;
    }
    return true;
  }

  /**
   * The operations a channel of `proto` carries (all, or those `allow` names)
   * and their order automaton, built once per protocol and allow-list: the
   * channels that share them share the (never modified) objects, which for
   * 9,800 channels of a few protocols saves as many arrays and sorts.
   */
  private operations(proto: ProtocolInfo, allow: string[] | undefined): { ops: PlanOperation[]; order: PlanChannel['invariants']['order'] } {
    let byAllow = this.channelOps.get(proto);
    if (byAllow === undefined) this.channelOps.set(proto, (byAllow = new Map()));
    // Operation names are identifiers, so a comma cannot occur in one; `*` stands for no allow-list.
    const key = allow ? [...allow].sort().join(',') : '*';
    let r = byAllow.get(key);
    if (r === undefined) {
      const allowed = allow ? new Set(allow) : undefined;
      const ops: PlanOperation[] = [...proto.ops.values()]
        .filter((o) => !allowed || allowed.has(o.name))
        .map((o) => (o.output !== undefined ? { input: o.input, kind: o.kind, name: o.name, output: o.output } : { input: o.input, kind: o.kind, name: o.name }))
        .sort((a, b) => byString(a.name, b.name));
      r = { ops, order: this.order(proto, ops.map((o) => o.name)) };
      byAllow.set(key, r);
    }
    return r;
  }

  /** A channel, with every object's keys in canonical (sorted) order so native serialisation is canonical. */
  private channel(fc: FlatChannel, used: Set<ProtocolInfo>, fromBlock?: PlanChannel): PlanChannel {
    const proto = fc.conn.protocol;
    used.add(proto);
    // The id names both ends: with the same checked `connect`, the channel is the same.
    const kept = this.cache?.channel(fc.id, fc.conn);
    if (kept) return kept;
    // A block's channel at the same place in the same subtree was built from the same `connect`.
    if (fromBlock && fromBlock.id === fc.id) {
      this.cache!.takeChannel(fc.id, fc.conn, fromBlock);
      return fromBlock;
    }
    const { ops, order } = this.operations(proto, fc.conn.allow);
    const inv = fc.conn.invariants;
    const pc: PlanChannel = {
      ...(fc.conn.candidate ? { candidate: { initial: fc.conn.candidate.initial } } : {}),
      ...(fc.conn.declassifies ? { declassifies: fc.conn.declassifies.map((d) => ({ from: d.from, to: d.to })) } : {}),
      from: { instance: fc.from.instance, port: fc.from.port },
      id: fc.id,
      invariants: {
        max_inflight: inv.max_inflight,
        max_message_bytes: inv.max_message_bytes,
        order,
        rate: inv.rate ? { burst: inv.rate.burst, per_second: inv.rate.per_second } : null,
        timeout_ms: inv.timeout_ms,
      },
      ops,
      protocol: proto.entry.qname,
      ...(fc.conn.query ? { query: true as const } : {}),
      to: { instance: fc.to.instance, port: fc.to.port },
    };
    this.cache?.keepChannel(fc.id, fc.conn, pc);
    return pc;
  }

  /**
   * An exposure carries what a channel carries (every operation of the
   * protocol, its message schemas, its order automaton and the default
   * invariants), so that the broker enforces an exposure of any protocol with
   * the same checks as a channel; keys in canonical (sorted) order.
   */
  private exposure(x: FlatExposure, used: Set<ProtocolInfo>): PlanExposure {
    const proto = x.port.protocol;
    if (proto) used.add(proto);
    const { ops, order } = proto ? this.operations(proto, x.attrs?.allow) : { ops: [], order: null };
    const inv = x.attrs?.invariants;
    const c = x.attrs?.connections;
    return {
      // Written only when the exposure sets a connection limit, so that other plans keep their bytes.
      ...(c
        ? {
            connections: {
              bytes_per_second: c.bytes_per_second,
              idle_timeout_ms: c.idle_timeout_ms,
              max: c.max,
              rate: c.rate ? { burst: c.rate.burst, per_second: c.rate.per_second } : undefined,
            },
          }
        : {}),
      host_port: x.hostPort,
      instance: x.instance,
      invariants: inv
        ? { max_inflight: inv.max_inflight, max_message_bytes: inv.max_message_bytes, order, rate: inv.rate ? { burst: inv.rate.burst, per_second: inv.rate.per_second } : null, timeout_ms: inv.timeout_ms }
        : { max_inflight: DEFAULT_MAX_INFLIGHT, max_message_bytes: DEFAULT_MAX_MESSAGE, order, rate: null, timeout_ms: DEFAULT_TIMEOUT_MS },
      ops,
      port: x.port.name,
      protocol: proto?.entry.qname ?? '',
      transport: 'tcp',
    };
  }

  /** An egress: the port's operations and invariants as an exposure carries them, and where its traffic goes. */
  private egress(x: FlatEgress, used: Set<ProtocolInfo>): PlanEgress {
    const ex = this.exposure({ hostPort: 0, instance: x.instance, port: x.port, file: x.file, span: x.egress.span, attrs: x.egress.attrs }, used);
    const d = x.egress.destination;
    return {
      ...(ex.connections ? { connections: ex.connections } : {}),
      destination: d.path !== undefined ? { host: d.host, path: d.path, port: d.port, scheme: d.scheme } : { host: d.host, port: d.port, scheme: d.scheme },
      instance: x.instance,
      invariants: ex.invariants,
      kind: x.egress.kind,
      ...(x.egress.label ? { label: x.egress.label } : {}),
      name: x.name,
      ops: ex.ops,
      port: x.port.name,
      protocol: ex.protocol,
    };
  }

  /** Assembles the final plan with digests. */
  assemble(body: Body, rootQname: string, policy: PolicyResult, policies: PlanPolicies, options: CompileOptions): Plan {
    // Sources are named relative to the root the compile resolved paths under, as a compile run from there names them.
    const root = this.ctx.root;
    const sources = [...this.ctx.program.texts.entries(), ...this.ctx.programFiles.entries()]
      .map(([path, text]) => ({ path: relativeToRoot(root, path) ?? path, sha256: this.ctx.sha256(text) }))
      .sort((a, b) => byString(a.path, b.path));
    const uniqueSources = sources.filter((s, i) => i === 0 || sources[i - 1].path !== s.path);
    const checks = [...policy.checks].sort((a, b) => byString(a.id, b.id));
    const plan: Plan = {
      format_version: planFormatVersion(body.target),
      mclc_version: options.mclcVersion,
      system: rootQname,
      target: body.target,
      ...(body.targets ? { targets: body.targets } : {}),
      digests: { sources: '', invariants: '', plan: '' },
      sources: uniqueSources,
      images: body.images,
      templates: body.templates,
      instances: body.instances,
      channels: body.channels,
      exposures: body.exposures,
      ...(body.egresses.length ? { egresses: body.egresses } : {}),
      schemas: body.schemas,
      checks,
      resources: policy.resources,
      policies,
      prior_state: options.priorState ? { lineage: options.priorState.lineage, serial: options.priorState.serial } : null,
      ...(body.targets
        ? {
            prior_states: Object.fromEntries(
              body.targets.map((t) => {
                const s = options.priorStates?.[t.name];
                return [t.name, s ? { lineage: s.lineage, serial: s.serial } : null];
              }),
            ),
          }
        : {}),
    };
    plan.digests.sources = sourcesDigest(uniqueSources, this.ctx.sha256);
    plan.digests.invariants = invariantsDigest(body.channels, body.exposures, checks, this.ctx.sha256, body.egresses);
    // Channels are built in canonical key order (operation names, the only user-chosen keys, are
    // identifiers), so the native serialiser gives their canonical JSON.
    const channels = body.channels.map((c) => JSON.stringify(c));
    // The plan file's writer may take as canonical what the digests were computed over: the channels'
    // native JSON, and the instances' when every one's was (`digest`).
    vouchCanonical(body.channels);
    if (body.instances.every((pi) => this.nativeJsonIsCanonical(pi))) vouchCanonical(body.instances);
    plan.digests.plan = planDigest(plan, this.ctx.sha256, { instances: body.instanceJson, channels });
    return plan;
  }
}

/** The block each object of a sorted list lies in (undefined: in none). */
function ownersOf(list: readonly object[], blocks: ReadonlyMap<object, BlockData>): (BlockData | undefined)[] {
  const owners: (BlockData | undefined)[] = [];
  for (let k = 0; k < list.length; k++) owners.push(blocks.get(list[k]));
  return owners;
}

/** Of the last body's sorted list, the entries of the blocks taken over again (the others are dropped). */
function keepOwned<T>(was: T[] | undefined, owners: (BlockData | undefined)[] | undefined, valid: ReadonlySet<BlockData>, drop: (t: T) => void): { list: T[]; owners: BlockData[]; present: Set<BlockData> } {
  const out = { list: [] as T[], owners: [] as BlockData[], present: new Set<BlockData>() };
  if (!was || !owners) return out;
  for (let k = 0; k < was.length; k++) {
    const o = owners[k];
    if (o !== undefined && valid.has(o)) {
      out.list.push(was[k]);
      out.owners.push(o);
      out.present.add(o);
    } else drop(was[k]);
  }
  return out;
}

// The body's passes over the blocks it takes over, each in a function of its own: the body is one
// large function, called once per compile, which V8 optimises only after many compiles and then
// takes long to compile (hundreds of milliseconds on a loaded machine). These loops run for every
// block (hundreds per compile at 50,000 lines) and, as small functions, are optimised after the
// first few compiles.

/** Calls `fn` for each element of `list`. */
function each<T>(list: readonly T[], fn: (t: T) => void): void {
  for (let i = 0; i < list.length; i++) fn(list[i]);
}

/** Counts a block's share of the templates into this body's. */
function addTemplates(templates: BlockData['templates'], add: (key: string, t: { image: string; memory: number; vcpus: number; slots: number; count: number }) => void): void {
  for (const [key, s] of templates) add(key, { image: s.image, memory: s.memory, vcpus: s.vcpus, slots: s.slots, count: s.count });
}

/** Whether a block's templates have the ids they had when it was made. */
function sameTemplateIds(templates: BlockData['templates'], templateId: ReadonlyMap<string, string>): boolean {
  for (const [key, s] of templates) if (templateId.get(key) !== s.id) return false;
  return true;
}

/**
 * Takes a block's instances and channels over: their JSON into `instanceJson` (when digests are
 * made), and, for a block the last sorted lists do not hold, the objects into `instances` and
 * `channels` (to be merged in) and their origins into `origins`.
 */
function takeOverBlock(
  d: BlockData,
  instanceJson: Map<string, string> | undefined,
  instances: [PlanInstance, BlockData | undefined][] | undefined,
  channels: [PlanChannel, BlockData | undefined][] | undefined,
  origins: PolicyInput['origins'],
): void {
  if (instanceJson) for (let j = 0; j < d.pis.length; j++) instanceJson.set(d.pis[j].id, d.json[j]!);
  if (instances) {
    for (let j = 0; j < d.pis.length; j++) {
      const id = d.pis[j].id;
      instances.push([d.pis[j], d]);
      origins.instances[id] = d.instOrigins[j];
      const label = d.labelOrigins[j];
      if (label) origins.labels[id] = label;
    }
  }
  if (channels) {
    for (let j = 0; j < d.pcs.length; j++) {
      channels.push([d.pcs[j], d]);
      origins.channels[d.pcs[j].id] = d.chOrigins[j];
    }
  }
}

/**
 * A sorted list kept, with `added` sorted and merged in: the order a full sort by id gives (ids
 * kept and added never coincide, and equal ids among those added keep their flat order).
 */
function mergeSorted<T extends { id: string }>(kept: { list: T[]; owners: BlockData[] }, added: [T, BlockData | undefined][]): { list: T[]; owners: (BlockData | undefined)[] } {
  added.sort((a, b) => byString(a[0].id, b[0].id));
  const list: T[] = [];
  const owners: (BlockData | undefined)[] = [];
  let i = 0;
  let j = 0;
  while (i < kept.list.length || j < added.length) {
    if (j < added.length && (i >= kept.list.length || byString(added[j][0].id, kept.list[i].id) < 0)) {
      list.push(added[j][0]);
      owners.push(added[j][1]);
      j++;
    } else {
      list.push(kept.list[i]);
      owners.push(kept.owners[i]);
      i++;
    }
  }
  return { list, owners };
}

/** A subtree's block, made from the body that built it the first time it is asked for (null: it cannot be one). */
function blockData(piece: Piece, rec: BlockRecord): BlockData | null {
  if (rec.data === undefined) {
    rec.data = makeBlock(piece, rec);
    rec.src = undefined;
  }
  return rec.data;
}

function makeBlock(piece: Piece, rec: BlockRecord): BlockData | null {
  const src = rec.src!;
  const pis: PlanInstance[] = [];
  const json: (string | undefined)[] = [];
  const entries: CachedInstance[] = [];
  const instOrigins: SourceRef[] = [];
  const labelOrigins: (SourceRef | undefined)[] = [];
  // Positions inside a block that body took over hold that block's objects.
  let b = 0;
  for (let k = 0; k < piece.instances.length; k++) {
    const pos = rec.instances + k;
    while (b < src.blocks.length && src.blocks[b].instances + src.blocks[b].data.pis.length <= pos) b++;
    const nb = src.blocks[b];
    if (nb !== undefined && nb.instances <= pos) {
      const j = pos - nb.instances;
      pis.push(nb.data.pis[j]);
      json.push(nb.data.json[j]);
      entries.push(nb.data.entries[j]);
      instOrigins.push(nb.data.instOrigins[j]);
      labelOrigins.push(nb.data.labelOrigins[j]);
      continue;
    }
    const pi = src.pis[pos];
    const e = src.entries[pos];
    const o = src.instOrigins[pos];
    // Not a block: an instance that reported its image, or is built on every compile (created instances).
    if (!pi || !e || !o || e.pi !== pi || src.reported.has(pos)) return null;
    pis.push(pi);
    json.push(e.json);
    entries.push(e);
    instOrigins.push(o);
    labelOrigins.push(src.labelOrigins[pos]);
  }
  const pcs: PlanChannel[] = [];
  const chOrigins: SourceRef[] = [];
  b = 0;
  for (let k = 0; k < piece.channels.length; k++) {
    const pos = rec.channels + k;
    while (b < src.blocks.length && src.blocks[b].channels + src.blocks[b].data.pcs.length <= pos) b++;
    const nb = src.blocks[b];
    let pc: PlanChannel | undefined;
    let o: SourceRef | undefined;
    if (nb !== undefined && nb.channels <= pos) {
      pc = nb.data.pcs[pos - nb.channels];
      o = nb.data.chOrigins[pos - nb.channels];
    } else {
      pc = src.pcs[pos];
      o = src.chOrigins[pos];
    }
    // Not a block: a channel left out for another of the same id.
    if (!pc || !o || pc.id !== piece.channels[k].id) return null;
    pcs.push(pc);
    chOrigins.push(o);
  }
  const channelIds = new Set(pcs.map((pc) => pc.id));
  if (channelIds.size !== pcs.length) return null;
  const internal = new Set<string>();
  const protocols = new Set<ProtocolInfo>();
  for (const fc of piece.channels) {
    const f = factsOf(fc);
    internal.add(`${f.fromKey}\u0001${fc.id}`);
    internal.add(`${f.toKey}\u0001${fc.id}`);
    protocols.add(fc.conn.protocol);
  }
  const programs = new Map<ComponentInfo, ProgramSpec>();
  const images = new Set<DeclEntry>();
  const templates: BlockData['templates'] = new Map();
  const outside: string[] = [];
  const factory: [string, string][] = [];
  for (let k = 0; k < piece.instances.length; k++) {
    const fi = piece.instances[k];
    const pi = pis[k];
    const e = entries[k];
    if (e.inst !== fi.inst || e.comp !== fi.comp) return null;
    const p = programs.get(fi.comp);
    if (p === undefined) programs.set(fi.comp, e.prog);
    else if (p !== e.prog) return null;
    const img = fi.comp.image;
    if (!img) return null;
    images.add(img);
    const key = templateKeyOf(fi, img.name);
    const slots = fi.comp.ports.length + 1;
    const t = templates.get(key);
    if (t) {
      if (t.id !== pi.template) return null;
      t.slots = Math.max(t.slots, slots);
      t.count++;
    } else templates.set(key, { image: img.name, memory: fi.inst.memory, vcpus: fi.inst.vcpus, slots, count: 1, id: pi.template });
    for (let q = 0; q < fi.comp.ports.length; q++) {
      const pk = e.portKeys[q];
      const port = pi.ports[q];
      for (const ch of port.channels) {
        const s = `${pk}\u0001${ch}`;
        if (!internal.has(s)) outside.push(`c${s}`);
      }
      if (port.exposed_on !== undefined) outside.push(`x${pk}\u0001${port.exposed_on}`);
      if (port.egress !== undefined) outside.push(`e${pk}\u0001${port.egress}`);
      const cp = fi.comp.ports[q];
      if (cp.factory && !cp.protocol) factory.push([pk, port.protocol]);
    }
  }
  return {
    pis,
    json,
    entries,
    instOrigins,
    labelOrigins,
    pcs,
    chOrigins,
    channelIds,
    programs: [...programs],
    images: [...images],
    protocols: [...protocols],
    templates,
    outside: outside.sort().join('\u0002'),
    factory,
    digests: src.digests,
    indexKeys: src.indexKeys,
  };
}

/** The plan's record of a target declaration. */
export function planTargetOf(target: TargetInfo): PlanTarget {
  const planTarget: PlanTarget = {
    name: target.entry.name,
    backend: target.backend,
    memory_bytes: target.memory_bytes,
    vcpus: target.vcpus,
    vcpu_overcommit: target.vcpu_overcommit,
  };
  if (target.namespace !== undefined) planTarget.namespace = target.namespace;
  if (target.context !== undefined) planTarget.context = target.context;
  if (target.registry !== undefined) planTarget.registry = target.registry;
  if (target.host !== undefined) planTarget.host = target.host;
  if (target.link !== undefined) planTarget.link = target.link;
  return planTarget;
}

export function labelOrder(labels: LabelInfo): PolicyInput['labels'] {
  const declaredAt: Record<string, SourceRef> = {};
  for (const name of [...labels.labels].sort()) {
    const at = labels.declaredAt.get(name)!;
    declaredAt[name] = { file: at.file, span: at.span };
  }
  return { labels: [...labels.labels].sort(), edges: labels.edges.map(([a, b]) => [a, b] as [string, string]), declaredAt };
}
