// Incremental analysis: what one compile may take over from the previous one.
//
// A compile runs the same stages over the whole workspace either way; what
// changes is how much of their work is already done. After the composition
// stage, a compile keeps its modules and the stages' memo tables (checked
// type bodies, protocols, components, images, targets and systems, keyed by
// declaration). The next compile takes over a module, with its declarations,
// bindings and every checked result of its declarations, when
//
//   - its parse is the same tree (the parse cache hands back the same tree
//     for the same text),
//   - the earlier compile reported nothing in its file up to composition
//     (a module with diagnostics is checked again, so every message and hint
//     is computed against the workspace as it is now), and
//   - every module it depends on, transitively (imports, qualified names and
//     the prelude), is taken over too: a result depends only on its module's
//     tree and its dependencies' results, and
//   - none of its systems was checked with an argument written in a module
//     checked again: checks are kept by where their arguments are written
//     (`bindingKey`), so such a check would stand for whatever is written
//     there now.
//
// One exception to the rule on dependencies: a module on which nothing
// depends, which names the modules checked again only as the systems of some of its
// instances (`s3 = mods.m3.Sys3`; no import, no other qualified name, and
// those instances named nowhere else in their system and given no
// arguments), is taken over too, and after composition its checked systems
// are re-linked to the new checks of those systems (copies whose instances
// point at them; the earlier ones are left as they were). Its checks read
// nothing else of them than whether a system of that name exists, its
// parameters (there must be none) and whether it exports a required port that
// is not optional (there must be none, as then it would have been reported
// unwired): where the new checks differ in any of these, or a system contains
// itself (which of its checks is left undefined depends on the order they
// are made in), the compile is made again with that module checked
// (`relinkSystems`). A workspace's root system holding every module's system
// is that case: an edit to one module no longer checks the root again.
//
// Loading takes an unchanged module as the earlier compile's object, which
// `reuseModules` replaces by a new one, with nothing declared, where it is
// not taken over (`freshModule`).
//
// Labels are global (their order is the workspace's), so an edit to a module
// that declares labels takes nothing over. Root selection always runs on the
// whole composition: it reads the checked results, taken over or not, and is
// not cached. Elaboration takes over the flattened subtree of each system
// that is a checked object taken over here (ElaborationCache in
// compose/elaborate.ts). The plan body takes each such subtree over as a
// block when what reaches it from outside is unchanged, and of the rest takes
// over the plan objects whose checked inputs are the very objects taken over
// here (plan/body-cache.ts); when an error already stops a root's plan and
// policy checks, it only reports what building it would report, and keeps
// what it could take over for the next compile. The policy checks of a root
// are taken over from its last run when their input is equal in everything
// they read and the locations its diagnostics read are the same
// (policy/reuse.ts); the input is compared object by object, mostly by
// identity, since the body hands over the objects it took over.
//
// The symbol index follows the same rule: the symbols, references and
// instance settings recorded up to composition in a taken-over module's file
// are taken from the earlier compile instead of being recorded again. The
// symbol map itself is taken over and updated in place (the symbols of the
// files checked again are removed from it), so that an edit's cost does not
// grow with the number of symbols in the workspace; the result of a compile
// therefore shares its symbol map with the next compile's. The instances'
// settings are taken over the same way (the map updated in place, less the
// entries of the files checked again). The references
// taken over are not copied either: they are joined into the result's list
// when it is first read (joinReferences). The result equals
// a full compile's (compiler/test/incremental.test.ts checks
// this over random edit sequences).

import type { CompileOptions, InstanceSettings, Program, Reference, SymbolInfo } from './api';
import { Codes, walk, type Ident, type SourceFile, type SystemDecl, type Visitor } from '@mcl/language';
import type { Ctx, DeclEntry, Module } from './context';
import { freshModule } from './resolve/load';
import type { Components } from './compose/components';
import type { InstInfo, SystemInfo, Systems } from './compose/systems';
import type { Protocols } from './types/protocols';
import type { Types } from './types/message-types';

/** What a compile leaves for the next one to take over. Opaque to callers. */
export interface IncrementalState {
  index: boolean;
  /** The folder module paths resolved under (`CompilerHost.moduleRoot`). */
  root: string;
  entries: string;
  /** Modules without diagnostics up to composition, by module path. */
  modules: Map<string, Module>;
  /** Paths of the modules that declare labels. */
  labelModules: string;
  types: Types;
  protocols: Protocols;
  components: Components;
  systems: Systems;
  /** The index as it was at the end of composition, by file. */
  symbols: Map<string, SymbolInfo[]>;
  /**
   * That compile's symbol map itself and its size at the end of composition.
   * The next compile takes the map over and updates it in place, removing
   * the symbols of the files it checks again, instead of copying every
   * symbol of the files it takes over into a new map (at 50,000 lines the
   * largest cost of an edit). Taken, and cleared, by that compile; a
   * compile's result therefore shares its symbol map with the next one.
   */
  liveSymbols: { map: Map<string, SymbolInfo>; size: number } | undefined;
  references: Map<string, Reference[]>;
  instances: Map<string, [string, InstanceSettings][]>;
  /** That compile's map of instance settings and its size at the end of composition, taken over as `liveSymbols` is. */
  liveInstances: { map: Map<string, InstanceSettings>; size: number } | undefined;
  /** How many modules this compile took over and how many it checked. */
  reused: number;
  checked: number;
  /** Of those taken over, how many were re-linked (`relinkSystems`); whether this compile was made again because one could not be. */
  relinked: number;
  remade: boolean;
}

/** The stages' memo tables at the end of composition. */
export interface Stages {
  types: Types;
  protocols: Protocols;
  components: Components;
  systems: Systems;
}

function entriesKey(options: CompileOptions): string {
  return [...options.entries].map((e) => e.replace(/^\.\//, '')).sort().join('\u0000');
}

function labelModulesOf(modules: Iterable<Module>): string {
  const out: string[] = [];
  for (const m of modules) if (m.ast.decls.some((d) => d.kind === 'LabelsDecl')) out.push(m.path);
  return out.sort().join('\u0000');
}

/** The earlier state when this compile may take anything over from it (same root, entries and indexing). */
export function usablePrior(prior: IncrementalState, options: CompileOptions, root: string): IncrementalState | undefined {
  if (prior.index !== (options.index ?? false) || prior.root !== root) return undefined;
  if (prior.entries !== entriesKey(options)) return undefined;
  return prior;
}

/** File key of a symbol id (`<file>#<kind>:<path>`). */
function fileOfId(id: string): string {
  const i = id.indexOf('#');
  return i < 0 ? id : id.slice(0, i);
}

/**
 * After loading: replaces every module that can be taken over by the earlier
 * compile's object (with its declarations and bindings), marks it reused, and
 * copies its part of the symbol index.
 */
export function reuseModules(ctx: Ctx, prior: IncrementalState, relinking: boolean): Replayed {
  // The loops over every module here use forEach and index arrays rather than for-of: this runs once per
  // edit in the language server, and until V8 optimises it (the first edits after the server starts)
  // for-of makes an iterator result (and an entry array) per element, which is collected inside the compile.
  const matched = new Map<string, Module>();
  const unmatched: Module[] = [];
  ctx.modules.forEach((m) => {
    const k = prior.modules.get(m.path);
    if (k && k.ast === m.ast && k.file === m.file && k.isStd === m.isStd && k.isEntry === m.isEntry) matched.set(m.path, k);
    else unmatched.push(m);
  });
  // Labels are ordered across the workspace: any change to them can change every check that uses one.
  const none = (): Replayed => {
    freshModules(ctx, prior, undefined);
    return { files: new Set(), references: ctx.program.references.length, prior, relink: new Map() };
  };
  if (labelModulesOf(ctx.modules.values()) !== prior.labelModules) return none();
  const dirty: string[] = [];
  const broken = new Set<string>();
  const rev = new Map<string, string[]>();
  const prelude = ctx.modules.get('std.prelude');
  const depend = (m: Module, t: string) => {
    // A dependency that did not load leaves the module with an error to report again.
    if (!ctx.modules.has(t)) {
      dirty.push(m.path);
      broken.add(m.path);
      return;
    }
    let l = rev.get(t);
    if (!l) rev.set(t, (l = []));
    l.push(m.path);
  };
  // The prelude is one more dependency of every other module, visited after its own (not joined to a copy of each module's list).
  ctx.modules.forEach((m) => {
    const deps = m.deps;
    for (let i = 0; i < deps.length; i++) depend(m, deps[i]);
    if (prelude && m !== prelude) depend(m, prelude.path);
    if (!matched.has(m.path)) dirty.push(m.path);
  });
  for (const m of unmatched) if (m.ast.decls.some((d) => d.kind === 'LabelsDecl')) return none();
  const stale = new Set<string>();
  const spread = () => {
    while (dirty.length) {
      const p = dirty.pop()!;
      if (stale.has(p)) continue;
      stale.add(p);
      for (const q of rev.get(p) ?? []) if (!stale.has(q)) dirty.push(q);
    }
  };
  spread();
  // A system's checks are kept by where their arguments are written (`bindingKey`), not by their values: a
  // check taken over that was made with an argument written in a module checked again would stand for
  // whatever that module now writes at the same place. The module of such a system is checked again too
  // (and what depends on it, which can change which modules are re-linked: until nothing more is added).
  // A module re-linked is not checked again: its text is the same, and its arguments name nothing of the
  // modules checked again (`relinkable`).
  let relink: Map<string, Set<string>>;
  for (;;) {
    relink = relinking ? relinkable(ctx, matched, stale, broken, rev) : new Map<string, Set<string>>();
    const changed = (path: string) => stale.has(path) && !relink.has(path);
    let grew = false;
    matched.forEach((k, path) => {
      if (stale.has(path) || !checkedWithArgumentsOf(k, prior.systems, changed)) return;
      dirty.push(path);
      spread();
      grew = true;
    });
    if (!grew) break;
  }
  for (const path of relink.keys()) stale.delete(path);
  freshModules(ctx, prior, stale);
  const files = new Set<string>();
  matched.forEach((k, path) => {
    if (stale.has(path)) return;
    ctx.modules.set(path, k);
    ctx.byFile.set(k.file, k);
    ctx.program.files.set(k.file, k.ast);
    ctx.reused.add(k);
    files.add(k.file);
  });
  if (!ctx.indexing) return { files, references: ctx.program.references.length, prior, relink };
  const live = prior.liveSymbols;
  prior.liveSymbols = undefined;
  // The earlier map holds exactly the symbols grouped in `prior.symbols` when nothing was added to it
  // after composition: then it becomes this compile's map, less the symbols of the files checked again.
  // What the loader declared so far (the module symbols) replaces what the map has under those ids,
  // as when the symbols taken over are added after the loader's, where the loader's win.
  const inPlace = live !== undefined && live.map.size === live.size;
  if (inPlace) {
    const map = live.map;
    prior.symbols.forEach((symbols, f) => {
      if (!files.has(f)) for (const s of symbols) map.delete(s.id);
    });
    const added: SymbolInfo[] = [];
    for (const [id, s] of ctx.program.symbols) {
      map.set(id, s);
      added.push(s);
    }
    ctx.program.symbols = map;
    ctx.addedSymbols = added;
  }
  // The references taken over are not copied here: each file's list is kept as it is, and they are
  // joined after this compile's own references recorded so far only when the result's references
  // are read (joinReferences), which a build that only publishes diagnostics never does.
  const lists: Reference[][] = [];
  files.forEach((f) => {
    if (!inPlace) for (const s of prior.symbols.get(f) ?? []) if (!ctx.program.symbols.has(s.id)) ctx.program.symbols.set(s.id, s);
    const refs = prior.references.get(f);
    if (refs) lists.push(refs);
  });
  // The instances' settings likewise: the earlier map, less the entries of the files checked again, when
  // nothing was added to it after composition (composition adds none before this point).
  const liveInstances = prior.liveInstances;
  prior.liveInstances = undefined;
  if (liveInstances !== undefined && liveInstances.map.size === liveInstances.size && ctx.program.instances.size === 0) {
    const map = liveInstances.map;
    prior.instances.forEach((entries, f) => {
      if (!files.has(f)) for (const [id] of entries) map.delete(id);
    });
    ctx.program.instances = map;
    ctx.addedInstances = [];
  } else for (const f of files) for (const [id, settings] of prior.instances.get(f) ?? []) ctx.program.instances.set(id, settings);
  const at = ctx.program.references.length;
  ctx.takenReferences = { at, lists };
  return { files, references: at, prior, relink };
}

/** Whether a check of a system of `m` that `systems` holds was made with an argument written in a module that `changed` accepts (by path). */
function checkedWithArgumentsOf(m: Module, systems: Systems, changed: (path: string) => boolean): boolean {
  // forEach rather than for-of, as in reuseModules, which asks this of every module taken over; nearly
  // always nothing is found, so not stopping at the first argument found costs nothing.
  let found = false;
  m.decls.forEach((e) => {
    if (found || e.kind !== 'system') return;
    systems.checked(e)?.forEach((info) => {
      if (info && !found)
        info.binding.forEach((a) => {
          if (!found && changed(a.m.path)) found = true;
        });
    });
  });
  return found;
}

/**
 * The stale modules that may still be taken over, re-linked to the modules
 * they depend on (`Replayed.relink`): a module the earlier compile took in
 * without diagnostics, on which nothing depends, whose own tree is the
 * same and whose dependencies all loaded, and which names each dependency
 * checked again only as the system of some of its instances: not in an
 * import nor in any other qualified name (so its types, protocols,
 * components and its systems' parameters read nothing of them), and not the
 * prelude, which every module reads without naming it. Whether what its
 * systems read of those instances' systems is the same is only known once
 * they are checked (`relinkSystems`).
 */
function relinkable(ctx: Ctx, matched: Map<string, Module>, stale: Set<string>, broken: Set<string>, rev: Map<string, string[]>): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const prelude = ctx.modules.get('std.prelude');
  if (prelude && stale.has(prelude.path)) return out;
  for (const path of stale) {
    const k = matched.get(path);
    if (!k || broken.has(path) || rev.get(path)?.length) continue;
    const deps = new Set<string>();
    for (const t of k.deps) if (stale.has(t)) deps.add(t);
    // A module stale for no dependency of its own (one checked with arguments of a module checked again) is left to be checked again.
    if (deps.size === 0) continue;
    const named = modulesNamedBesideInstances(k.ast);
    let ok = true;
    for (const t of deps) if (named.has(t)) ok = false;
    if (ok) out.set(path, deps);
  }
  return out;
}

/** By tree: the module paths a file names other than as the system or component of an instance (`modulesNamedBesideInstances`). */
const namedBesideInstances = new WeakMap<SourceFile, Set<string>>();

/**
 * Every module path a file imports, and every dotted prefix of each
 * qualified name it holds other than the one an instance is of (its
 * settings included). A superset of what it names: a prefix that is no
 * module only makes a module be checked again.
 */
function modulesNamedBesideInstances(ast: SourceFile): Set<string> {
  let out = namedBesideInstances.get(ast);
  if (out) return out;
  const named = new Set<string>();
  for (const imp of ast.imports) named.add(imp.module.parts.map((p) => p.name).join('.'));
  const visit: Visitor = (node) => {
    // An instance's own name and what it is of are left out; its settings are read.
    if (node.kind === 'InstanceDecl') {
      for (const s of node.settings) walk(s, visit);
      return false;
    }
    // A qualified name, or a name written as dotted parts (a deploy's targets, a path of instances).
    const parts = (node as { parts?: Ident[] }).parts;
    if (parts) for (let i = 1; i < parts.length; i++) named.add(parts.slice(0, i).map((p) => p.name).join('.'));
    return node.kind !== 'QualifiedName';
  };
  for (const d of ast.decls) walk(d, visit);
  namedBesideInstances.set(ast, named);
  return named;
}

/** By system declaration: the names written in it other than its instances' own names and what they are of (`namesBesideInstances`). */
const mentionedBesideInstances = new WeakMap<SystemDecl, Set<string>>();

/**
 * Every name written in a system declaration's members (connections,
 * exports, exposures, egresses, policies, parameters, and its instances'
 * settings), except each instance's own name and what it is an instance of:
 * an instance whose name is not among them is read by its system's check
 * only for its system's parameters and exported ports.
 */
function namesBesideInstances(d: SystemDecl): Set<string> {
  let out = mentionedBesideInstances.get(d);
  if (out) return out;
  const names = new Set<string>();
  const visit: Visitor = (node) => {
    if (node.kind === 'Ident') names.add(node.name);
  };
  for (const mem of d.members) {
    if (mem.kind === 'InstanceDecl') for (const s of mem.settings) walk(s, visit);
    else walk(mem, visit);
  }
  mentionedBesideInstances.set(d, names);
  return names;
}

/**
 * After composition: gives each module taken over to be re-linked
 * (`Replayed.relink`) checks of its systems whose instances are of the new
 * checks of the systems of the modules checked again, in place of the
 * earlier ones (which point at the earlier checks: elaboration, the plan body
 * and the policy checks take objects over by identity). Its check of such an
 * instance read of that system only whether it exists under that name as a
 * system, its parameters (it gives them no arguments) and whether it exports
 * a required port that is not optional (which would be reported unwired):
 * where those are as they were, every check of the module's systems would
 * come out the same, diagnostics (it had none) and index included, but for
 * the objects it points at. Returns false, changing nothing, when they are
 * not: the compile is then made again with that module checked.
 */
export function relinkSystems(ctx: Ctx, systems: Systems, replayed: Replayed): boolean {
  if (replayed.relink.size === 0) return true;
  // Which check of a system that contains itself comes out undefined depends on the order the systems
  // are checked in, which taking a module over changes: such a workspace is checked as a whole would be.
  if (ctx.diagnostics.some((d) => d.code === Codes.SystemContainsItself.code)) return false;
  const changes: [DeclEntry, string, SystemInfo][] = [];
  for (const [path, deps] of replayed.relink) {
    const m = ctx.modules.get(path);
    if (!m) return false;
    const made = new Map<SystemInfo, SystemInfo | false>();
    // The new check of a system of a module checked again, where the instance's system reads the same of it.
    const renewed = (old: SystemInfo): SystemInfo | undefined => {
      const e = ctx.modules.get(old.entry.module.path)?.decls.get(old.entry.name);
      if (!e || e.kind !== 'system' || old.params.size !== 0 || systems.params(e).size !== 0) return undefined;
      const info = systems.get(e);
      if (!info) return undefined;
      for (const x of info.exports.values()) if (x.direction === 'require' && !x.optional) return undefined;
      return info;
    };
    const relinked = (info: SystemInfo): SystemInfo | false => {
      const known = made.get(info);
      if (known !== undefined) return known;
      let changed = false;
      let failed = false;
      const instances = new Map<string, InstInfo>();
      // forEach rather than for-of over the instances (a root system's are every module's system): until
      // V8 optimises this, for-of makes an iterator result and an entry array per instance on every edit.
      // The instances after the first that fails are skipped, as a return from the loop would.
      info.instances.forEach((inst, name) => {
        if (failed) return;
        let sys = inst.sys;
        if (inst.comp && deps.has(inst.comp.entry.module.path)) return void (failed = true);
        if (sys && deps.has(sys.entry.module.path)) sys = renewed(sys);
        else if (sys && sys.entry.module === m) sys = relinked(sys) || undefined;
        if (inst.sys && !sys) return void (failed = true);
        if (sys !== inst.sys) {
          if (inst.decl.settings.length !== 0 || namesBesideInstances(info.entry.decl as SystemDecl).has(name)) return void (failed = true);
          changed = true;
          instances.set(name, { ...inst, sys });
        } else instances.set(name, inst);
      });
      if (failed) return fail(info);
      let out: SystemInfo = info;
      if (changed) {
        const uses = new Set<DeclEntry>();
        for (const u of info.uses) uses.add(deps.has(u.module.path) ? ctx.modules.get(u.module.path)!.decls.get(u.name)! : u);
        out = { ...info, instances, uses };
      }
      made.set(info, out);
      return out;
    };
    const fail = (info: SystemInfo): false => {
      made.set(info, false);
      return false;
    };
    for (const e of m.decls.values()) {
      if (e.kind !== 'system') continue;
      for (const [key, info] of systems.checked(e) ?? []) {
        if (!info) continue;
        const next = relinked(info);
        if (next === false) return false;
        if (next !== info) changes.push([e, key, next]);
      }
    }
  }
  for (const [e, key, info] of changes) systems.replace(e, key, info);
  return true;
}

/**
 * Gives each earlier module that loading took as it was (`Loader`) and that is
 * not taken over (all of them without `stale`, else those in it) a module of
 * this compile in its place, before anything declares in it.
 */
function freshModules(ctx: Ctx, prior: IncrementalState, stale: Set<string> | undefined): void {
  for (const m of ctx.modules.values()) if (m === prior.modules.get(m.path) && (!stale || stale.has(m.path))) freshModule(ctx, m);
}

/**
 * At the end of a compile: makes the result's `program.references` the
 * references in the order a full compile records them (this compile's own
 * up to the point where the earlier ones were taken over, those taken over
 * file by file, then the rest of its own), joined on first read and then
 * kept. The compile itself only appends to its own list.
 */
export function joinReferences(ctx: Ctx): void {
  const taken = ctx.takenReferences;
  if (!taken) return;
  ctx.takenReferences = undefined;
  const own = ctx.program.references;
  let value: Reference[] | undefined;
  Object.defineProperty(ctx.program, 'references', {
    configurable: true,
    enumerable: true,
    get: () => (value ??= joined([own.slice(0, taken.at), ...taken.lists, own.slice(taken.at)])),
    set: (v: Reference[]) => void (value = v),
  });
}

function joined<T>(lists: T[][]): T[] {
  // Batches bounded to stay within the engine's argument limit; each file's list is copied as a block.
  let out: T[] = [];
  for (let i = 0; i < lists.length; i += 8192) out = out.concat(...lists.slice(i, i + 8192));
  return out;
}

/** What `reuseModules` took over: the files, and where the references it copied end. */
export interface Replayed {
  files: Set<string>;
  references: number;
  prior: IncrementalState;
  /**
   * Modules taken over although modules they depend on are checked again,
   * with those modules' paths: each names them only as the systems some of
   * its instances are of, and its systems are re-linked to their new checks
   * after composition (`relinkSystems`), or the compile is made again
   * without this when what they read of them changed.
   */
  relink: Map<string, Set<string>>;
}

function groupBy<T>(items: Iterable<T>, file: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const t of items) {
    const f = file(t);
    let l = out.get(f);
    if (!l) out.set(f, (l = []));
    l.push(t);
  }
  return out;
}

/**
 * `groupBy`, taking the groups of the files copied from the earlier compile
 * as they were (the same entries, copied in `reuseModules`) instead of
 * building them again. Should anything have been added to such a file since,
 * the counts differ and everything is grouped afresh.
 */
function regroup<T>(items: () => Iterable<T>, file: (t: T) => string, size: number, replayed: Replayed | undefined, prior: Map<string, T[]> | undefined, all: () => Iterable<T> = items): Map<string, T[]> {
  if (!replayed || !prior) return groupBy(all(), file);
  const out = new Map<string, T[]>();
  let n = 0;
  for (const f of replayed.files) {
    const l = prior.get(f);
    if (l) {
      out.set(f, l);
      n += l.length;
    }
  }
  for (const t of items()) {
    const f = file(t);
    if (replayed.files.has(f)) continue;
    let l = out.get(f);
    if (!l) out.set(f, (l = []));
    l.push(t);
    n++;
  }
  return n === size ? out : groupBy(all(), file);
}

/**
 * The references by file, leaving out those recorded again on every compile
 * (`recomputed`). The ones copied from the earlier compile keep their groups;
 * only this compile's own are grouped.
 */
function referencesByFile(refs: Reference[], recomputed: { start: number; end: number }, replayed: Replayed | undefined): Map<string, Reference[]> {
  const from = replayed ? replayed.references : 0;
  const out = new Map<string, Reference[]>();
  // A file's group taken over is shared with the earlier state, and copied only should this compile add to it.
  const shared = new Set<Reference[]>();
  if (replayed) {
    for (const f of replayed.files) {
      const l = replayed.prior.references.get(f);
      if (l) {
        out.set(f, l);
        shared.add(l);
      }
    }
  }
  for (let i = from; i < refs.length; i++) {
    if (i >= recomputed.start && i < recomputed.end) continue;
    const r = refs[i];
    let l = out.get(r.file);
    if (!l) out.set(r.file, (l = []));
    else if (shared.has(l)) {
      shared.delete(l);
      out.set(r.file, (l = [...l]));
    }
    l.push(r);
  }
  return out;
}

/** What the next compile may take over, taken at the end of composition. */
export function stateOf(ctx: Ctx, options: CompileOptions, stages: Stages, recomputed: { start: number; end: number }, replayed: Replayed | undefined): IncrementalState {
  const reported = new Set<string>();
  for (const d of ctx.diagnostics) reported.add(d.file);
  const modules = new Map<string, Module>();
  for (const m of ctx.modules.values()) if (!reported.has(m.file)) modules.set(m.path, m);
  const p: Program = ctx.program;
  return {
    index: ctx.indexing,
    root: ctx.root,
    entries: entriesKey(options),
    modules,
    labelModules: labelModulesOf(ctx.modules.values()),
    ...stages,
    // With a map taken over in place, only the symbols added by this compile are grouped anew.
    symbols: ctx.indexing ? regroup(() => ctx.addedSymbols ?? p.symbols.values(), (s) => s.file, p.symbols.size, replayed, replayed?.prior.symbols, () => p.symbols.values()) : new Map(),
    liveSymbols: ctx.indexing ? { map: p.symbols, size: p.symbols.size } : undefined,
    references: ctx.indexing ? referencesByFile(p.references, recomputed, replayed) : new Map(),
    // With the map taken over in place, only the entries this compile added are grouped anew.
    instances: ctx.indexing ? regroup(() => ctx.addedInstances ?? p.instances.entries(), ([id]) => fileOfId(id), p.instances.size, replayed, replayed?.prior.instances, () => p.instances.entries()) : new Map(),
    liveInstances: ctx.indexing ? { map: p.instances, size: p.instances.size } : undefined,
    reused: ctx.reused.size,
    checked: ctx.modules.size - ctx.reused.size,
    relinked: replayed?.relink.size ?? 0,
    remade: false,
  };
}
