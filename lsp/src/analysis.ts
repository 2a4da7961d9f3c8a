// Builds: turning the workspace into diagnostics and a checked Program.
//
// A document moves through two states. It is *parsed* as soon as it changes
// (cheap, one file, needed by document symbols, folding and formatting), and
// *checked* once a build that includes its text has finished (needed by
// everything that resolves names). Requests ask for the state they need and
// wait for nothing more.
//
// A build groups the workspace into projects (projects.ts), compiles each
// project whose sources changed from its own root (the compiler resolves
// module paths under the root it is given, and names files as the server
// does, relative to the workspace), and merges the results into one snapshot.
//
// Every edit bumps a generation counter. A build starts after a short quiet
// period (debouncing keystrokes), runs in steps that yield to the event loop,
// and abandons itself at the next step once a newer edit has arrived, so a
// burst of typing costs one build, not one per keystroke. A request that needs
// checked results skips the quiet period and starts the build at once.

import type { CompileResult, CompilerHost, ParseCache, ParsedSource, Program } from '@mcl/compiler';
import { compile, IncrementalCompiler } from '@mcl/compiler';
import { nativeSha256 } from '@mcl/compiler/node-host';
import type { Diagnostic, SourceFile } from '@mcl/language';
import { LineIndex, parse } from '@mcl/language';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { CancellationToken } from 'vscode-languageserver';
import { ReferenceIndex } from './index-refs';
import { groupProjects, ModuleRefCache, type Project } from './projects';
import type { Workspace } from './workspace';

export const MCLC_VERSION = '0.1.0';

/** How long the first build waits for the documents a client opens just after `initialized` (ms). */
const FIRST_BUILD_DELAY_MS = 2;

/**
 * A full garbage collection, or undefined where this Node.js cannot give one. A project's first
 * compile leaves everything it keeps for the next compile (parses, checked modules, the index, the
 * plan body) partly in the young generation, and the first edits' young-generation collections
 * then spend tens of milliseconds each promoting it, inside the edits' compiles. Collecting once at
 * the end of such a build, before its diagnostics are published, moves that cost into the build the
 * user is already waiting for. The function is taken from a new context with `--expose-gc` set
 * only while it is made, so the server's own global scope is unchanged.
 */
const collectGarbage: (() => void) | undefined = (() => {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    setFlagsFromString('--no-expose-gc');
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
})();

/** The result of parsing one document at one version. */
export interface ParsedDocument {
  file: string;
  text: string;
  ast: SourceFile;
  diagnostics: Diagnostic[];
  lines: LineIndex;
}

/** A whole-workspace compile and the lookups built over it. */
export interface Snapshot {
  generation: number;
  result: CompileResult;
  program: Program;
  readonly refs: ReferenceIndex;
  /** Milliseconds the compile took. */
  compileMs: number;
  lines(file: string): LineIndex | undefined;
  text(file: string): string | undefined;
}

export interface AnalyzerOptions {
  debounceMs: number;
  /** Builds a plan too (slower, but reports the checks that only run while planning). */
  emitPlan: boolean;
  onSnapshot(snapshot: Snapshot, previous: Snapshot | undefined): void;
  log(message: string): void;
}

/** A compiled project, the texts it read (to tell when it is stale) and its result in workspace-relative names. */
export interface ProjectBuild {
  project: Project;
  reads: Map<string, string | undefined>;
  result: CompileResult;
}

/** Thrown to a waiting request when its cancellation token fires. */
export class RequestCancelled extends Error {}

/**
 * Parses kept between builds, each with its syntax diagnostics. The compiler
 * asks for a file by path and text, reuses the parse when the text is
 * unchanged, and reports its syntax diagnostics as if it had parsed the file
 * itself; the server's own requests (outline, folding, formatting) parse
 * through the same cache.
 */
export class DocumentCache implements ParseCache {
  private readonly entries = new Map<string, { text: string; parsed: ParsedSource }>();

  get(path: string, text: string): ParsedSource | undefined {
    const e = this.entries.get(path);
    return e && e.text === text ? e.parsed : undefined;
  }

  set(path: string, text: string, parsed: ParsedSource): void {
    this.entries.set(path, { text, parsed });
  }

  /** Parses (or reuses) a document. */
  parse(path: string, text: string): ParsedSource {
    const known = this.get(path, text);
    if (known) return known;
    const r = parse(text, path);
    this.set(path, text, r);
    return r;
  }
}


/**
 * An open document's text with one more line break at its end, so that its declarations and their
 * spans stay the same: what a warming compile reads it as (`warmEditPath`).
 */
function warmingText(text: string): string {
  return text + '\n';
}

/**
 * The compiles that warm the edit path (see `Analyzer.warmUp`), in order: `compileWith` is given
 * each text an open document is read with (its saved text and that text with one more line break
 * when the saved text differs, then its own text with one more line break), then `undefined` for
 * the document as it is, whose result is answered. The benchmark that compiles the server's edits
 * in its own process warms the same way.
 */
export function warmEditPath<T>(text: string, saved: string | undefined, compileWith: (text: string | undefined) => T): T {
  const texts = saved !== undefined && saved !== text ? [saved, warmingText(saved), warmingText(text)] : [warmingText(text)];
  for (const t of texts) compileWith(t);
  return compileWith(undefined);
}

export class Analyzer {
  readonly cache = new DocumentCache();
  private generation = 0;
  /** The scheduled build, if any: a timer after the quiet period, or the next turn of the event loop. */
  private timer: { cancel(): void } | undefined;
  private inflight: { generation: number; done: Promise<void> } | undefined;
  private snapshot: Snapshot | undefined;
  private waiters: { generation: number; resolve: (s: Snapshot) => void }[] = [];
  private readonly parsed = new Map<string, ParsedDocument>();
  /** Count of builds started and abandoned, for tests and the benchmark. */
  readonly stats = {
    builds: 0,
    abandoned: 0,
    projectCompiles: 0,
    lastCompileMs: 0,
    compileMs: [] as number[],
    compileCpuMs: [] as number[],
    /** Modules each project compile checked and took over from the previous one (last 500). */
    modulesChecked: [] as number[],
    modulesReused: [] as number[],
    /** Plan objects (instances, channels) each project compile built and took over (last 500). */
    planObjectsBuilt: [] as number[],
    planObjectsReused: [] as number[],
    /** Root systems whose policy checks ran, and whose result was taken over, per build. */
    policiesChecked: [] as number[],
    policiesReused: [] as number[],
    /** Where the time between an edit and its diagnostics goes, per build (ms). */
    phases: { queued: [] as number[], prepared: [] as number[], published: [] as number[] },
    /** Each stage of the project compiles, by the compiler's stage names (wall ms, last 500 of each). */
    compileStages: {} as Record<string, number[]>,
    /** The compiles that warm the edit path after each project's first (see `warmUp`), together (wall ms, last 500). */
    warmUpMs: [] as number[],
  };
  private readonly moduleRefs = new ModuleRefCache();
  private projectBuilds = new Map<string, ProjectBuild>();
  /**
   * One incremental compiler per project of the last build: an edit re-checks
   * the modules it changed and those depending on them, and takes the rest
   * over from the project's previous compile.
   */
  private compilers = new Map<string, IncrementalCompiler>();
  private lastProjects: Project[] = [];
  /** The last grouping into projects and what it was made from (see `projects`). */
  private grouping: { files: string[]; refs: Map<string, string[] | undefined>; projects: Project[] } | undefined;
  private readonly projectKeys = new WeakMap<Project, string>();
  private lastEdit = 0;

  constructor(
    private readonly workspace: Workspace,
    private readonly options: AnalyzerOptions,
  ) {}

  /** Something the build reads changed: schedule a build after the quiet period. */
  invalidate(): void {
    this.generation++;
    const now = performance.now();
    // When nothing is scheduled or running, an edit is built on the next
    // turn of the event loop. A timer, even of 2 ms, added its whole delay to
    // every edit's latency and gathered nothing more: the connection handles
    // one queued message per turn, and a notification that arrived with this
    // one is handled before the build's first step, which then abandons
    // itself, as it would have found the timer scheduled. Only the first
    // build waits 2 ms: it compiles the whole workspace, and a client opens
    // its documents just after `initialized`, in messages of their own.
    // Edits that arrive while a build is scheduled or running wait for a
    // quiet period, so a burst of typing costs one more build, not one per
    // keystroke.
    const quiet = !this.timer && !this.inflight;
    this.lastEdit = now;
    this.timer?.cancel();
    const start = (): void => {
      this.timer = undefined;
      void this.build();
    };
    if (quiet && this.snapshot) {
      const immediate = setImmediate(start);
      this.timer = { cancel: () => clearImmediate(immediate) };
    } else {
      const timeout = setTimeout(start, quiet ? Math.min(FIRST_BUILD_DELAY_MS, this.options.debounceMs) : this.options.debounceMs);
      this.timer = { cancel: () => clearTimeout(timeout) };
    }
  }

  /** The current document parsed (no waiting: parsing one file is fast). */
  parsedDocument(file: string): ParsedDocument | undefined {
    const text = this.workspace.text(file);
    if (text === undefined) return undefined;
    const known = this.parsed.get(file);
    if (known && known.text === text) return known;
    const r = this.cache.parse(file, text);
    const doc: ParsedDocument = { file, text, ast: r.file, diagnostics: [...r.diagnostics], lines: new LineIndex(text) };
    this.parsed.set(file, doc);
    return doc;
  }

  forget(file: string): void {
    this.parsed.delete(file);
  }

  /** A snapshot that includes every edit made so far; starts the build now if it is still waiting. */
  async checked(token?: CancellationToken): Promise<Snapshot> {
    const wanted = this.generation;
    if (this.snapshot && this.snapshot.generation >= wanted) return this.snapshot;
    if (this.timer) {
      this.timer.cancel();
      this.timer = undefined;
      void this.build();
    } else if (!this.inflight) void this.build();
    return new Promise<Snapshot>((resolve, reject) => {
      const waiter = { generation: wanted, resolve };
      this.waiters.push(waiter);
      token?.onCancellationRequested(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new RequestCancelled());
      });
    });
  }

  /** Runs a build for the current generation unless one is already running for it. */
  build(): Promise<void> {
    const generation = this.generation;
    if (this.inflight && this.inflight.generation === generation) return this.inflight.done;
    const done = this.runBuild(generation).finally(() => {
      if (this.inflight?.done === done) this.inflight = undefined;
    });
    this.inflight = { generation, done };
    return done;
  }

  private async runBuild(generation: number): Promise<void> {
    this.stats.builds++;
    this.workspace.buildReads = new Map();
    try {
      await this.runBuildSteps(generation);
    } catch (e) {
      // A failure here is a bug in the server, not in the user's sources.
      // It is logged, and waiting requests get the last good snapshot (or an
      // empty one) instead of hanging; the next edit tries again.
      this.options.log(`mcl: the build failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      const fallback = this.snapshot ?? makeSnapshot(generation, emptyResult(), 0);
      const ready = this.waiters.filter((w) => w.generation <= generation);
      this.waiters = this.waiters.filter((w) => w.generation > generation);
      for (const w of ready) w.resolve(fallback);
    } finally {
      this.workspace.buildReads = undefined;
    }
  }

  private async runBuildSteps(generation: number): Promise<void> {
    const begun = performance.now();
    // Step 1: parse the open documents, one per turn of the event loop, so a
    // newer edit can abandon the build before the expensive part.
    for (const file of this.workspace.openFiles()) {
      await yieldToEventLoop();
      if (generation !== this.generation) return this.abandon();
      this.parsedDocument(file);
    }
    await yieldToEventLoop();
    if (generation !== this.generation) return this.abandon();

    // Step 2: group the workspace into projects (parsing files not seen yet).
    const started = performance.now();
    const cpuStarted = process.cpuUsage();
    const projects = this.projects();
    this.lastProjects = projects;

    // Step 3: compile each project whose sources changed since its last
    // compile, yielding between projects. Each compile is synchronous;
    // unchanged files come from the parse cache.
    const results: CompileResult[] = [];
    const fresh = new Map<string, ProjectBuild>();
    const compilers = new Map<string, IncrementalCompiler>();
    let firstCompile = false;
    for (const project of projects) {
      const key = this.keyOf(project);
      const compiler = this.compilers.get(key) ?? new IncrementalCompiler();
      compilers.set(key, compiler);
      let built = this.projectBuilds.get(key);
      if (!built || !this.unchanged(built)) {
        await yieldToEventLoop();
        if (generation !== this.generation) return this.abandon();
        built = this.compileProject(project, { emitPlan: this.options.emitPlan, compiler });
        if (compiler.stats.compiles === 1) {
          firstCompile = true;
          built = this.warmUp(project, compiler, built);
        }
        this.stats.projectCompiles++;
        record(this.stats.modulesChecked, compiler.stats.checked);
        record(this.stats.modulesReused, compiler.stats.reused);
        record(this.stats.planObjectsBuilt, compiler.stats.planObjectsBuilt);
        record(this.stats.planObjectsReused, compiler.stats.planObjectsReused);
        record(this.stats.policiesChecked, compiler.stats.policiesChecked);
        record(this.stats.policiesReused, compiler.stats.policiesReused);
      }
      fresh.set(key, built);
      results.push(built.result);
    }
    this.projectBuilds = fresh;
    this.compilers = compilers;
    if (firstCompile) collectGarbage?.();
    const result = mergeResults(results);
    const compileMs = performance.now() - started;
    this.stats.lastCompileMs = compileMs;
    const cpu = process.cpuUsage(cpuStarted);
    this.stats.compileMs.push(compileMs);
    this.stats.compileCpuMs.push((cpu.user + cpu.system) / 1000);
    if (this.stats.compileMs.length > 500) {
      this.stats.compileMs.shift();
      this.stats.compileCpuMs.shift();
    }
    const snapshot = makeSnapshot(generation, result, compileMs);
    const previous = this.snapshot;
    if (!previous || previous.generation <= generation) this.snapshot = snapshot;
    const publishing = performance.now();
    this.options.onSnapshot(snapshot, previous);
    record(this.stats.phases.queued, begun - this.lastEdit);
    record(this.stats.phases.prepared, started - begun);
    record(this.stats.phases.published, performance.now() - publishing);
    const ready = this.waiters.filter((w) => w.generation <= generation);
    this.waiters = this.waiters.filter((w) => w.generation > generation);
    for (const w of ready) w.resolve(snapshot);
    // An edit that arrived while compiling has its own build scheduled by
    // `invalidate`; a waiter for it is served when that build finishes.
    if (this.waiters.length > 0 && !this.timer && generation !== this.generation) void this.build();
  }

  /**
   * After a project's first compile, and before its diagnostics are published, compiles it again
   * the way an edit is compiled: with an open document of the project given one more line break at
   * its end, then as it is, whose result is the build's. The first compile checks
   * every module from scratch, and none of the code that takes a compile's results over (reusing
   * modules, re-linking systems, taking plan objects and policy results over) has run yet; a fresh
   * process runs that code unoptimised, which made the first edits after opening a large workspace
   * two to five times slower than later ones. The warming compiles run it while the user is still
   * waiting for the workspace's first diagnostics, at a small part of the first compile's cost,
   * and the result published is still that of the project as it is (an incremental compile's
   * result equals a full one's). A project without an open document is left as it is: edits come
   * to open documents.
   *
   * A document opened with unsaved changes is often mid-edit, and an error in it stops the stages
   * after the checks (policies, the plan), so their code would stay cold until the first edit
   * that mends it. When the document's saved text differs, the warming compiles read that text
   * first, as it is and with one more line break (compiling the way back to the saved text and an
   * edit of it), before the document's own text with one more line break.
   */
  private warmUp(project: Project, compiler: IncrementalCompiler, first: ProjectBuild): ProjectBuild {
    const file = this.workspace.openFiles().find((f) => project.files.includes(f));
    const text = file === undefined ? undefined : this.workspace.text(file);
    if (file === undefined || text === undefined) return first;
    const started = performance.now();
    const built = warmEditPath(text, this.workspace.savedText(file), (warming) =>
      this.compileProject(project, { emitPlan: this.options.emitPlan, compiler, replace: warming === undefined ? undefined : { file, text: warming }, stages: false }),
    );
    record(this.stats.warmUpMs, performance.now() - started);
    return built;
  }

  /** The projects of the workspace as of now (see projects.ts). */
  projects(): Project[] {
    // A file that vanished without the client telling us is left out rather
    // than reported as a missing entry.
    const files = this.workspace.entries().filter((f) => this.workspace.text(f) !== undefined);
    const refs = new Map<string, string[] | undefined>();
    for (const file of files) {
      const text = this.workspace.text(file)!;
      refs.set(file, this.moduleRefs.refs(file, text, this.cache.parse(file, text).file));
    }
    // The grouping depends on nothing else than the files and the modules
    // each names, which an edit rarely changes: the last one is kept while
    // they are the same, instead of resolving every module path of the
    // workspace again on every edit.
    const last = this.grouping;
    if (last && sameList(last.files, files) && files.every((f) => sameList(last.refs.get(f) ?? [], refs.get(f) ?? []))) return last.projects;
    const projects = groupProjects(files, (f) => refs.get(f));
    this.grouping = { files, refs, projects };
    return projects;
  }

  /** The key of a project's compiler and build: its root and files. */
  private keyOf(project: Project): string {
    let key = this.projectKeys.get(project);
    if (key === undefined) this.projectKeys.set(project, (key = `${project.root}\u0000${project.files.join('\u0000')}`));
    return key;
  }

  /** The project a file belongs to in the last build (a stdlib file or unknown file: undefined). */
  projectOf(file: string): Project | undefined {
    return this.lastProjects.find((p) => p.files.includes(file));
  }

  /** Compiles one project from its root; file names in the result are the workspace's, as everywhere in the server. */
  compileProject(
    project: Project,
    options: {
      emitPlan: boolean;
      entries?: string[];
      compiler?: IncrementalCompiler;
      /** One file read with this text instead of its own, its parse not kept (see `warmUp`). */
      replace?: { file: string; text: string };
      /** Whether the compile's stages are timed in `stats.compileStages` (default true). */
      stages?: boolean;
    },
  ): ProjectBuild {
    const reads = new Map<string, string | undefined>();
    const replace = options.replace;
    const host: CompilerHost = {
      // Module and program paths resolve under the project's root, and the plan names its sources from there.
      moduleRoot: project.root,
      readFile: (path) => {
        // The compiler asks with clean relative paths; anything else would leave the workspace.
        if (path.startsWith('/') || path.split('/').some((seg) => seg === '..' || seg === '')) return undefined;
        const text = replace?.file === path ? replace.text : this.workspace.text(path);
        reads.set(path, text);
        return text;
      },
      readStdlib: (module) => {
        const text = this.workspace.text('std:' + module);
        reads.set('std:' + module, text);
        return text;
      },
      // Plans the editor shows carry digests; the native hash spares the pure-JS one.
      sha256: nativeSha256,
    };
    let result: CompileResult;
    // The end of the last stage, to time each stage of the compile.
    let mark = performance.now();
    try {
      const compileOptions = {
        entries: options.entries ?? project.files,
        mclcVersion: MCLC_VERSION,
        emitPlan: options.emitPlan,
        // A replaced file's parse is not kept: it would take the place of the document's own.
        cache: replace ? { get: (path: string, text: string) => this.cache.get(path, text), set: () => undefined } : this.cache,
        // Navigation, completion, rename and semantic tokens all read the symbol index.
        index: true,
        onPhase: (stage: string) => {
          const now = performance.now();
          if (options.stages !== false) record((this.stats.compileStages[stage] ??= []), now - mark);
          mark = now;
        },
      };
      result = options.compiler ? options.compiler.compile(host, compileOptions) : compile(host, compileOptions);
    } catch (e) {
      // The compiler promises not to throw; if it does, the project shows no
      // results rather than leaving requests waiting forever.
      this.options.log(`mcl: the compiler failed unexpectedly: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      result = emptyResult();
    }
    return { project, reads, result };
  }

  /** True when every file a project build read still has the same text. */
  private unchanged(built: ProjectBuild): boolean {
    for (const [file, text] of built.reads) if (this.workspace.text(file) !== text) return false;
    return true;
  }

  private abandon(): void {
    this.stats.abandoned++;
  }

  dispose(): void {
    this.timer?.cancel();
  }

  /**
   * Changes settings while running (the client's configuration changed). A
   * change of what a build does (`emitPlan`) drops the compiled projects so
   * the next build compiles everything with it; the quiet period applies
   * from the next edit.
   */
  configure(change: { debounceMs?: number; emitPlan?: boolean }): void {
    if (change.debounceMs !== undefined) this.options.debounceMs = change.debounceMs;
    if (change.emitPlan !== undefined && change.emitPlan !== this.options.emitPlan) {
      this.options.emitPlan = change.emitPlan;
      this.projectBuilds = new Map();
      this.compilers = new Map();
      this.invalidate();
    }
  }

  /** The settings in effect. */
  get settings(): { debounceMs: number; emitPlan: boolean } {
    return { debounceMs: this.options.debounceMs, emitPlan: this.options.emitPlan };
  }
}

/**
 * One Program and diagnostic list from several projects. Standard library
 * files appear in every project with the same names and symbol ids, so they
 * merge; their diagnostics are kept once.
 */
export function mergeResults(results: CompileResult[]): CompileResult {
  if (results.length === 1) return results[0];
  const program: Program = { files: new Map(), texts: new Map(), symbols: new Map(), references: [], instances: new Map() };
  const diagnostics: Diagnostic[] = [];
  const seen = new Set<string>();
  const seenRefs = new Set<string>();
  for (const r of results) {
    for (const [k, v] of r.program.files) program.files.set(k, v);
    for (const [k, v] of r.program.texts) program.texts.set(k, v);
    for (const [k, v] of r.program.symbols) if (!program.symbols.has(k)) program.symbols.set(k, v);
    for (const [k, v] of r.program.instances) if (!program.instances.has(k)) program.instances.set(k, v);
    for (const ref of r.program.references) {
      // References inside a standard library file would repeat once per project.
      if (ref.file.startsWith('std:')) {
        const key = `${ref.file}\u0000${ref.span.start}\u0000${ref.span.end}\u0000${ref.symbol}`;
        if (seenRefs.has(key)) continue;
        seenRefs.add(key);
      }
      program.references.push(ref);
    }
    for (const d of r.diagnostics) {
      const key = `${d.file}\u0000${d.code}\u0000${d.span.start}\u0000${d.span.end}\u0000${d.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      diagnostics.push(d);
    }
  }
  return { program, diagnostics };
}

function makeSnapshot(generation: number, result: CompileResult, compileMs: number): Snapshot {
  const program = result.program;
  const lineCache = new Map<string, LineIndex>();
  // The index is built on the first request that needs it: a build whose
  // snapshot only publishes diagnostics (superseded before anyone asks) never pays for it.
  let refs: ReferenceIndex | undefined;
  return {
    generation,
    result,
    program,
    get refs() {
      refs ??= new ReferenceIndex(program);
      return refs;
    },
    compileMs,
    text: (file) => program.texts.get(file),
    lines(file) {
      let li = lineCache.get(file);
      if (!li) {
        const text = program.texts.get(file);
        if (text === undefined) return undefined;
        li = new LineIndex(text);
        lineCache.set(file, li);
      }
      return li;
    },
  };
}

function emptyResult(): CompileResult {
  return { program: { files: new Map(), texts: new Map(), symbols: new Map(), references: [], instances: new Map() }, diagnostics: [] };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Appends a measurement, keeping the last 500. */
function record(list: number[], value: number): void {
  list.push(value);
  if (list.length > 500) list.shift();
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
