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
  /**
   * With an ElaborationCache: where each system's subtree lies in `instances` and `channels`, those
   * taken over whole (`reused`) in flat order, the others where their subtree ends. The plan body
   * takes a taken-over subtree's objects over as a block (plan/body-cache.ts).
   */
  pieces?: FlatPiece[];
}

/** One system's subtree in a Flat: its piece (by identity) and where its instances and channels start. */
export interface FlatPiece {
  piece: Piece;
  prefix: string;
  reused: boolean;
  instances: number;
  channels: number;
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

/**
 * The flat parts of one system's subtree, as elaborating it at a prefix gives
 * them (`exports` as entries, in the order they are recorded).
 */
/** Export entries in the order elaboration records them: `<prefix>.<export>` and the leaf instance port it names. */
export type ExportEntries = [string, { instance: string; port: string }][];

export interface Piece {
  instances: FlatInstance[];
  channels: FlatChannel[];
  exposures: FlatExposure[];
  egresses: FlatEgress[];
  rules: ScopedRule[];
  exports: ExportEntries;
  /**
   * The backend for which the capability check found nothing in this subtree
   * (target/select.ts): taken over with the piece, the subtree is not checked
   * again for that backend.
   */
  clean?: string;
  /**
   * The export entries of the instance the subtree is the system of (`<prefix>.<export>`), as its
   * parent records them: a function of the system and the prefix, as the piece is, so a parent
   * elaborated again takes them over with the piece instead of following every export again.
   */
  outer?: ExportEntries;
}

/**
 * What one elaboration may take over from the previous compile's (used by
 * the IncrementalCompiler, see incremental.ts). A system's subtree flattened
 * at a prefix is a function of the checked system and the prefix: a checked
 * system is taken over with its module only when every module it depends on
 * is taken over too, so the same system object has the same nested systems,
 * components and connections, and its subtree is taken over whole (with the
 * very same flat objects, which the plan body then finds unchanged). Each
 * compile keeps only the subtrees it used.
 */
export class ElaborationCache {
  private pieces = new Map<SystemInfo, Map<string, Piece>>();
  private next = new Map<SystemInfo, Map<string, Piece>>();
  /** Subtrees taken over and flattened by the last elaboration, for tests and the benchmark. */
  readonly stats = { reused: 0, built: 0 };
  /**
   * The last elaboration's export entries and the `exports` object made of them, by root system:
   * an elaboration whose entries are the same, in the same order, returns that object again instead
   * of a new one of thousands of keys, and the policy checks, which compare their input with the
   * last one's, find it unchanged by identity. By root, as a workspace without `deploy` elaborates
   * each of its roots in turn.
   */
  readonly lastExports = new Map<string, { entries: ExportEntries; object: Flat['exports'] }>();

  get(sys: SystemInfo, prefix: string): Piece | undefined {
    const p = this.pieces.get(sys)?.get(prefix);
    if (p) {
      this.keep(sys, prefix, p);
      this.stats.reused++;
    }
    return p;
  }

  /** The piece the last compile kept for a system at a prefix, without taking it over. */
  peek(sys: SystemInfo, prefix: string): Piece | undefined {
    return this.pieces.get(sys)?.get(prefix);
  }

  keep(sys: SystemInfo, prefix: string, p: Piece): void {
    let byPrefix = this.next.get(sys);
    if (!byPrefix) this.next.set(sys, (byPrefix = new Map()));
    byPrefix.set(prefix, p);
  }

  /** Starts a compile: what the last one kept becomes what this one may take over. */
  begin(): void {
    if (this.next.size) this.pieces = this.next;
    this.next = new Map();
    this.stats.reused = 0;
    this.stats.built = 0;
  }
}

/**
 * The largest list appended with one `push` call: its elements are passed as arguments, which live on
 * the stack, so a longer one (the root's piece at 50,000 lines holds tens of thousands) is appended
 * in slices of this many.
 */
const APPEND_CHUNK = 8192;

/**
 * Appends a kept piece's list to a flat list as a block: one `push` of all its elements copies them
 * in the engine's own loop, instead of a call per element (556 pieces per edit at 50,000 lines).
 */
export function append<T>(to: T[], from: readonly T[]): void {
  const n = from.length;
  if (n === 0) return;
  if (n <= APPEND_CHUNK) {
    to.push(...from);
    return;
  }
  for (let i = 0; i < n; i += APPEND_CHUNK) to.push(...from.slice(i, i + APPEND_CHUNK));
}

/** Whether two lists of export entries name the same ports in the same order (kept pieces' entries are the very same tuples). */
function sameExports(a: ExportEntries, b: ExportEntries): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x !== y && (x[0] !== y[0] || x[1].instance !== y[1].instance || x[1].port !== y[1].port)) return false;
  }
  return true;
}

export function elaborate(root: SystemInfo, cache?: ElaborationCache): Flat {
  const out: Flat = { instances: [], channels: [], exposures: [], egresses: [], rules: [], exports: {} };
  const pieces: FlatPiece[] = [];
  const exports: ExportEntries = [];
  // Explicit work list instead of recursion: nesting depth is bounded only by the sources. A system's
  // subtree is flattened contiguously (its nested systems are pushed on top of the list), so an entry
  // `end` pushed below them marks where it ends: there its parts are kept for the next compile.
  type Work = { sys: SystemInfo; prefix: string; outer?: ExportEntries; end?: undefined } | { end: { sys: SystemInfo; prefix: string; from: number[]; outer?: ExportEntries } };
  const work: Work[] = [{ sys: root, prefix: '' }];
  const lengths = () => [out.instances.length, out.channels.length, out.exposures.length, out.egresses.length, out.rules.length, exports.length];
  while (work.length) {
    const w = work.pop()!;
    if (w.end) {
      if (cache) {
        const [i, c, x, e, r, k] = w.end.from;
        const piece: Piece = {
          instances: out.instances.slice(i),
          channels: out.channels.slice(c),
          exposures: out.exposures.slice(x),
          egresses: out.egresses.slice(e),
          rules: out.rules.slice(r),
          exports: exports.slice(k),
          outer: w.end.outer,
        };
        cache.keep(w.end.sys, w.end.prefix, piece);
        pieces.push({ piece, prefix: w.end.prefix, reused: false, instances: i, channels: c });
        cache.stats.built++;
      }
      continue;
    }
    const { sys, prefix } = w;
    const kept = cache?.get(sys, prefix);
    if (kept) {
      pieces.push({ piece: kept, prefix, reused: true, instances: out.instances.length, channels: out.channels.length });
      append(out.instances, kept.instances);
      append(out.channels, kept.channels);
      append(out.exposures, kept.exposures);
      append(out.egresses, kept.egresses);
      append(out.rules, kept.rules);
      append(exports, kept.exports);
      continue;
    }
    if (cache) work.push({ end: { sys, prefix, from: lengths(), outer: w.outer } });
    const m = sys.entry.module;
    for (const inst of sys.instances.values()) {
      const id = join(prefix, inst.name);
      if (inst.comp) {
        out.instances.push({ id, inst, comp: inst.comp, module: m });
        for (const p of inst.comp.ports) {
          if (p.expose) out.exposures.push({ hostPort: p.expose.port, instance: id, port: p, file: inst.comp.entry.module.file, span: p.expose.span, attrs: p.expose.attrs });
        }
      } else if (inst.sys) {
        // The entries depend on the nested system and the instance id only, as its piece does.
        let outer = cache?.peek(inst.sys, id)?.outer;
        if (!outer) {
          outer = [];
          for (const name of inst.sys.exports.keys()) {
            const l = leaf(inst, prefix, name);
            if (l) outer.push([`${id}.${name}`, { instance: l.instance, port: l.port.name }]);
          }
        }
        append(exports, outer);
        work.push({ sys: inst.sys, prefix: id, outer });
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
  const last = cache?.lastExports.get(root.entry.qname);
  if (last && sameExports(last.entries, exports)) out.exports = last.object;
  else for (const [k, v] of exports) out.exports[k] = v;
  cache?.lastExports.set(root.entry.qname, { entries: exports, object: out.exports });
  if (cache) out.pieces = pieces;
  return out;
}
