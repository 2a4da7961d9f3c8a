// compile(): the pipeline from sources to a checked plan.
//
//   load & resolve modules -> types and protocols -> components, images,
//   targets -> systems and wiring -> root and target selection -> elaborate
//   -> backend capabilities -> plan body -> policy checks -> plan.
//
// Every stage reports into one diagnostics list and carries on with what it
// could resolve, so one compile reports as many independent problems as
// possible. A plan is returned only when nothing reported an error.

import { Codes, hasErrors, makeDiagnostic, sortDiagnostics, type Diagnostic } from '@mcl/language';
import type { CompileOptions, CompileResult, CompilerHost, ParsedSource } from './api';
import { Components, collectLabels } from './compose/components';
import { elaborate, ElaborationCache } from './compose/elaborate';
import { Systems } from './compose/systems';
import { Ctx, type DeclEntry, type Module } from './context';
import { joinReferences, relinkSystems, reuseModules, stateOf, usablePrior, type IncrementalState } from './incremental';
import { checkPolicies } from './policy/index';
import { PolicyCache } from './policy/reuse';
import { PlanBuilder, labelOrder, planTargetOf, type Body } from './plan/build';
import { BodyCache } from './plan/body-cache';
import { planPolicies } from './plan/policies';
import type { PlanPolicies } from '@mcl/plan';
import type { PolicyInput, PolicyResult } from './policy/types';
import type { SystemInfo } from './compose/systems';
import { Loader, reportImportCycles } from './resolve/load';
import { bindImports, declareModules } from './resolve/scope';
import { reportUnusedImports } from './resolve/unused-imports';
import { checkCapabilities, placeDeploy, select } from './target/select';
import { Protocols } from './types/protocols';
import { Types } from './types/message-types';

export function compile(host: CompilerHost, options: CompileOptions): CompileResult {
  return compileWith(host, options, undefined).result;
}

/**
 * `compile`, taking over what an earlier compile checked and is still valid
 * (`prior`, see incremental.ts), and returning what the next one may take
 * over. The result is the same as `compile`'s.
 */
export function compileWith(
  host: CompilerHost,
  options: CompileOptions,
  prior: IncrementalState | undefined,
  bodies?: BodyCache,
  flats?: ElaborationCache,
  policies?: PolicyCache,
): { result: CompileResult; state?: IncrementalState } {
  let ctx = new Ctx(host, options.index ?? false);
  const out: { state?: IncrementalState } = {};
  try {
    bodies?.begin();
    flats?.begin();
    policies?.begin();
    let result = run(ctx, options, prior, out, bodies, flats, policies, true);
    if (!result) {
      // A module taken over to be re-linked read something of a module checked again that changed
      // (relinkSystems): the compile is made again with it checked, from the same earlier state. The
      // first try added no check to that state's (Systems copies a map of checks it takes over before
      // adding to it); it did take the symbol and instance maps the state lends to one compile
      // (`liveSymbols`, `liveInstances`), so the second try copies the entries it takes over instead.
      ctx = new Ctx(host, options.index ?? false);
      result = run(ctx, options, prior, out, bodies, flats, policies, false)!;
      if (out.state) out.state.remade = true;
    }
    policies?.end();
    joinReferences(ctx);
    return { result, state: out.state };
  } catch (e) {
    joinReferences(ctx);
    // A bug in the compiler must not take the editor or the CLI down with it.
    const message = e instanceof Error ? e.message : String(e);
    const stack = e instanceof Error && e.stack ? e.stack.split('\n').slice(1, 4).map((s) => s.trim()).join(' | ') : '';
    const diag: Diagnostic = makeDiagnostic(Codes.InternalCompilerError, `internal compiler error: ${message}`, options.entries[0] ?? '', { start: 0, end: 0 }, {
      hint: `please report this with the sources that caused it${stack ? ` (${stack})` : ''}`,
    });
    return { result: { program: ctx.program, diagnostics: sortDiagnostics([...ctx.diagnostics, diag]) } };
  }
}

/**
 * Drops diagnostics of later stages that start inside a syntax error's span:
 * they describe the parser's recovery (a name it had to guess, a value it
 * could not read), not a second mistake.
 */
function withoutCascades(ds: Diagnostic[]): Diagnostic[] {
  const syntax = new Map<string, { start: number; end: number }[]>();
  for (const d of ds) {
    if (!d.code.startsWith('MCL01')) continue;
    let l = syntax.get(d.file);
    if (!l) syntax.set(d.file, (l = []));
    l.push(d.span);
  }
  if (syntax.size === 0) return ds;
  return ds.filter((d) => {
    if (d.code.startsWith('MCL01')) return true;
    const l = syntax.get(d.file);
    return !l || !l.some((s) => d.span.start >= s.start && d.span.start < Math.max(s.end, s.start + 1));
  });
}

/**
 * Files whose errors can change a root system's composition: its module and
 * every module it names, transitively (the prelude is imported by all), and
 * every module that declares labels (the label order is global).
 */
function dependencies(ctx: Ctx, root: SystemInfo): Set<string> {
  const files = new Set<string>();
  const todo: Module[] = [root.entry.module];
  const prelude = ctx.modules.get('std.prelude');
  if (prelude) todo.push(prelude);
  // forEach and an index rather than for-of: this runs once per compile over every module, and until V8
  // optimises it (the language server's first edits) for-of makes an iterator result per element.
  ctx.modules.forEach((m) => {
    if (m.ast.decls.some((d) => d.kind === 'LabelsDecl')) todo.push(m);
  });
  while (todo.length) {
    const m = todo.pop()!;
    if (files.has(m.file)) continue;
    files.add(m.file);
    const deps = m.deps;
    for (let i = 0; i < deps.length; i++) {
      const next = ctx.modules.get(deps[i]);
      if (next && !files.has(next.file)) todo.push(next);
    }
  }
  return files;
}

function run(
  ctx: Ctx,
  options: CompileOptions,
  prior: IncrementalState | undefined,
  out: { state?: IncrementalState },
  bodies: BodyCache | undefined,
  flats: ElaborationCache | undefined,
  policies: PolicyCache | undefined,
  relinking: boolean,
): CompileResult | undefined {
  const usable = prior && usablePrior(prior, options, ctx.root);
  const loader = new Loader(ctx, options.cache, usable?.modules);
  loader.loadAll(options.entries);
  const replayed = usable ? reuseModules(ctx, usable, relinking) : undefined;
  options.onPhase?.('load+parse');
  reportImportCycles(ctx);
  declareModules(ctx);
  bindImports(ctx, loader);
  reportUnusedImports(ctx);
  options.onPhase?.('resolve');

  const types = new Types(ctx);
  const protocols = new Protocols(ctx, types);
  if (usable) {
    const keep = (e: DeclEntry) => ctx.reused.has(e.module);
    types.adopt(usable.types, keep);
    protocols.adopt(usable.protocols, keep);
  }
  types.checkAll();
  protocols.checkAll();
  options.onPhase?.('types');
  // Labels are collected from every module on every compile: the references they record are not taken over.
  const labelRefs = { start: ctx.program.references.length, end: 0 };
  const labels = collectLabels(ctx);
  labelRefs.end = ctx.program.references.length;
  const components = new Components(ctx, types, protocols, labels);
  if (usable) components.adopt(usable.components, (e) => ctx.reused.has(e.module));
  components.checkAll();
  options.onPhase?.('components');
  const systems = new Systems(ctx, types, components);
  if (usable) systems.adopt(usable.systems, (e) => ctx.reused.has(e.module));
  systems.checkAll();
  if (replayed && !relinkSystems(ctx, systems, replayed)) return undefined;
  options.onPhase?.('compose');
  out.state = stateOf(ctx, options, { types, protocols, components, systems }, labelRefs, replayed);

  const sel = select(ctx, options, systems, components);
  options.onPhase?.('select');
  const result = (): CompileResult => ({ program: ctx.program, diagnostics: sortDiagnostics(withoutCascades(ctx.diagnostics)) });
  if (!sel.target || (!sel.root && !sel.roots)) return result();

  const builder = new PlanBuilder(ctx, types, components, bodies);
  // Checking several root systems (an editor workspace without `deploy`): each is elaborated and
  // policy-checked on its own; a plan needs exactly one root.
  const roots = sel.root ? [sel.root] : sel.roots!;
  let planned: { root: SystemInfo; body: Body; policy: PolicyResult; policies: PlanPolicies } | undefined;
  const labelsInOrder = labelOrder(labels);
  for (const root of roots) {
    const anchor = sel.origin ?? { file: root.entry.module.file, span: root.entry.decl.name.span };
    const flat = builder.exclude(elaborate(root, flats), options.exclude, anchor);
    checkCapabilities(ctx, sel.target, flat);
    options.onPhase?.('elaborate');
    // Each root is checked on its own, and an error stops its policy checks only when it is in a
    // module the root depends on: there it may have left the composition incomplete, and a policy
    // verdict on it would describe the parser's or checker's recovery. Another root's violations,
    // or a mistake in a file this root never imports, change nothing here.
    const files = dependencies(ctx, root);
    const blocks = (d: Diagnostic) => d.severity === 'error' && !d.code.startsWith('MCL05') && (files.has(d.file) || d.file === anchor.file);
    // Stopped already: neither this root's plan nor its policy checks will read the body's objects,
    // so it is built only for what building it reports (see PlanBuilder.body).
    const stopped = ctx.diagnostics.some(blocks);
    const placing = sel.targets || sel.placements;
    const body = builder.body(flat, sel.target, options.emitPlan !== false, placing ? (instances, templates, origins) => placeDeploy(ctx, sel, flat.rules, labelsInOrder, origins, instances, templates) : undefined, stopped && !placing);
    if (sel.targets && sel.targets.length > 1) body.targets = sel.targets.map(planTargetOf);
    // The prelude's default target is not the user's to edit: what does not fit it is reported at
    // the user's `deploy` (or the root system) instead of inside the standard library.
    if (sel.target.entry.module.isStd) {
      body.origins.target = sel.origin && sel.origin.span.end > sel.origin.span.start ? sel.origin : { file: root.entry.module.file, span: root.entry.decl.name.span };
    }
    options.onPhase?.('plan body');
    const input: PolicyInput = {
      target: body.target,
      ...(body.targets ? { targets: body.targets } : {}),
      templates: body.templates,
      instances: body.instances,
      channels: body.channels,
      exposures: body.exposures,
      egresses: body.egresses,
      rules: flat.rules,
      exports: flat.exports,
      labels: labelsInOrder,
      origins: body.origins,
    };
    if (stopped || ctx.diagnostics.some(blocks)) {
      policies?.keep(root.entry.qname);
      // The first body a cache keeps is built whole although an error stops it (PlanBuilder.body):
      // its policy checks are run as well, their result kept and not reported, so that the compile
      // that fixes the error takes it over when its input is the same, and otherwise runs checks
      // that have run once (the first run over a whole composition, in code V8 has not compiled
      // yet, was most of the language server's first valid edit). A body that only reports has no
      // instances. The result is only a cache: a composition left incomplete by the error must not
      // turn into a compiler error, so a failure of the checks is dropped with their result.
      if (policies && stopped && !placing && body.instances.length > 0) {
        try {
          policies.run(root.entry.qname, input, checkPolicies);
        } catch {
          // Nothing to report: the checks run again when the error is fixed.
        }
      }
      continue;
    }
    // Taken over from the last run for this root when nothing it reads changed (policy/reuse.ts).
    const policy = policies ? policies.run(root.entry.qname, input, checkPolicies) : checkPolicies(input);
    ctx.addDiagnostics(policy.diagnostics);
    options.onPhase?.('policy');
    planned = { root, body, policy, policies: planPolicies(flat.rules, labelsInOrder) };
  }
  // A composition whose only errors are policy violations is complete: it can be shown, with the
  // failing checks, when asked for. Any other error may have left it incomplete.
  const blocking = options.planDespiteViolations ? ctx.diagnostics.filter((d) => d.severity === 'error' && !d.code.startsWith('MCL05')) : ctx.diagnostics;
  if (!sel.root || !planned || hasErrors(blocking) || options.emitPlan === false) return result();
  const { root, body, policy } = planned;
  const plan = builder.assemble(body, root.entry.qname, policy, planned.policies, options);
  options.onPhase?.('assemble+digests');
  return { ...result(), plan };
}

/**
 * A compiler that keeps what it checked between compiles (incremental.ts):
 * each `compile` takes over the modules whose text and dependencies did not
 * change since the previous one (and those that name the changed ones only as
 * the systems of instances, re-linked) and checks only the rest, with the same
 * result as `compile`. It keeps parses too, unless the options bring a cache
 * of their own (the language server's). A result's `program.symbols` and
 * `program.instances` are the maps the next compile updates in place: read
 * them before compiling again, or copy them.
 */
export class IncrementalCompiler {
  private state: IncrementalState | undefined;
  /** The plan bodies' objects, taken over by the next compile where nothing they depend on changed. */
  private bodies = new BodyCache();
  /** The flattened subtrees of the systems, taken over by the next elaboration where the system is the same. */
  private flats = new ElaborationCache();
  /** The last policy result of each root system, taken over while nothing the checks read changed. */
  private policies = new PolicyCache();
  private parses = new Map<string, { text: string; parsed: ParsedSource }>();
  /** Modules taken over and checked (and of those taken over, re-linked; whether the compile was made again), plan objects (and of them, subtrees' blocks) and systems' flattened subtrees taken over and built, by the last compile. */
  readonly stats = { compiles: 0, reused: 0, checked: 0, relinked: 0, remade: false, planObjectsReused: 0, planObjectsBuilt: 0, planBlocksReused: 0, subtreesReused: 0, subtreesFlattened: 0, policiesReused: 0, policiesChecked: 0 };

  compile(host: CompilerHost, options: CompileOptions): CompileResult {
    let cache = options.cache;
    const used = new Map<string, { text: string; parsed: ParsedSource }>();
    if (!cache) {
      const known = this.parses;
      cache = {
        get: (path, text) => {
          const e = known.get(path);
          if (!e || e.text !== text) return undefined;
          used.set(path, e);
          return e.parsed;
        },
        set: (path, text, parsed) => void used.set(path, { text, parsed }),
      };
    }
    const { result, state } = compileWith(host, { ...options, cache }, this.state, this.bodies, this.flats, this.policies);
    if (!options.cache) this.parses = used;
    this.state = state;
    this.stats.compiles++;
    this.stats.reused = state?.reused ?? 0;
    this.stats.checked = state?.checked ?? 0;
    this.stats.relinked = state?.relinked ?? 0;
    this.stats.remade = state?.remade ?? false;
    this.stats.planObjectsReused = this.bodies.stats.reused;
    this.stats.planObjectsBuilt = this.bodies.stats.built;
    this.stats.planBlocksReused = this.bodies.stats.blocks;
    this.stats.subtreesReused = this.flats.stats.reused;
    this.stats.subtreesFlattened = this.flats.stats.built;
    this.stats.policiesReused = this.policies.stats.reused;
    this.stats.policiesChecked = this.policies.stats.checked;
    return result;
  }

  /** Forgets everything kept (the next compile checks every module). */
  reset(): void {
    this.state = undefined;
    this.parses = new Map();
    this.bodies = new BodyCache();
    this.flats = new ElaborationCache();
    this.policies = new PolicyCache();
  }
}
