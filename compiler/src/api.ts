// The compiler's public contract: what the CLI and the language server call.
//
// The compiler does no IO. Sources come through a `CompilerHost` supplied by
// the caller (the CLI and the language server use `NodeHost` from
// `node-host.ts`, the only module here allowed to touch the file system; tests
// use an in-memory host). `compile` never throws on bad input: every problem
// becomes a diagnostic, and a plan is returned only when there are no errors.

import type { Diagnostic, SourceFile, Span } from '@mcl/language';
import type { Plan, BackendName } from '@mcl/plan';

export interface CompilerHost {
  /**
   * Text of a workspace file by workspace-relative path (forward slashes, no `..`),
   * or undefined when it does not exist.
   */
  readFile(path: string): string | undefined;
  /**
   * Optional: the folder, relative to the host's workspace, that this compile
   * is rooted at (no leading or trailing `/`; default `""`, the workspace
   * itself). Module paths and program paths resolve under it (`import a.b` is
   * `<root>/a/b.mcl`) and never leave it, while files keep the host's names
   * everywhere in the result (Program, diagnostics, symbol ids), so a host
   * whose workspace holds several projects (the language server's) compiles
   * each from its own folder without renaming anything. The plan records its
   * sources relative to the root, as a compile run from that folder would.
   */
  moduleRoot?: string;
  /** Text of a standard library module by module path (`http` for `std.http`), or undefined. */
  readStdlib(modulePath: string): string | undefined;
  /**
   * Optional: why `readFile(path)` gave undefined for a file that exists (it
   * is too large, not a regular file, a link leaving the workspace), so the
   * diagnostic says that rather than "does not exist". Undefined when the
   * file does not exist or the host cannot tell.
   */
  unreadable?(path: string): Unreadable | undefined;
  /**
   * Optional: hex SHA-256 of a string's UTF-8 bytes. Hosts that have a native
   * implementation (NodeHost uses node:crypto) make digests of large plans
   * several times faster; without it the compiler uses its own pure-JS one.
   * It must be exactly SHA-256, or plans stop being reproducible across hosts.
   * Given an array, it is the digest of the strings' concatenation: the plan's
   * digest is computed from pieces of its canonical JSON, so that a large plan
   * is never built as one string only to be hashed.
   */
  sha256?(text: string | readonly string[]): string;
}

/** A file that exists but was not read: what is wrong with it and what to do. */
export interface Unreadable {
  /** Completes "cannot be read: ...", e.g. "it is 80 MiB, more than the 64 MiB a source file may have". */
  reason: string;
  hint: string;
}

export interface CompileOptions {
  /** Workspace-relative paths of the entry files. Imports are resolved from the workspace root. */
  entries: string[];
  /** Target name (a `target` declaration) overriding the `deploy` statement's. */
  target?: string;
  /** Root system overriding the `deploy` statement's. */
  system?: string;
  /** Instance ids to leave out of the plan (and of checks that need them), as `-exclude` in Terraform. */
  exclude?: string[];
  /** Version string written into the plan. */
  mclcVersion: string;
  /** When false, stop after checking (no plan is built). Default true. */
  emitPlan?: boolean;
  /**
   * Build the plan even when the only errors are policy violations (MCL05xx),
   * with the failing checks and their counterexamples in `checks`, so that
   * `mclc graph` can draw what breaks the policy. Such a plan describes a
   * composition that must not be deployed; it is for showing only. Default false.
   */
  planDespiteViolations?: boolean;
  /**
   * The deployment state the plan is made against (`mclc plan` reads it), recorded
   * as the plan's `prior_state` and covered by its digest. Default null.
   */
  priorState?: { lineage: string; serial: number } | null;
  /**
   * A deploy to several targets: the state of each target's deployment, by target name (absent or
   * null: none), recorded in the plan's `prior_states`.
   */
  priorStates?: Record<string, { lineage: string; serial: number } | null>;
  /** Cache of parsed files from an earlier compile, reused when a file's text is unchanged (the language server). */
  cache?: ParseCache;
  /**
   * Build the symbol index (`program.symbols` and `program.references`) that the
   * language server navigates by. Default false: `mclc` never reads it, and for
   * 10,000 components it is about 70,000 symbols and 165,000 references.
   */
  index?: boolean;
  /**
   * Called at the end of each stage with the stage's name, so a caller can time
   * the stages (the benchmark's per-stage breakdown). Unset in normal use.
   */
  onPhase?: (phase: string) => void;
}

/**
 * Parses kept between compiles (the language server's). A parse is its tree
 * and its syntax diagnostics: on a hit the compiler reports the diagnostics
 * it would have found parsing the file itself, so a cached file never loses
 * its syntax errors.
 */
export interface ParseCache {
  get(path: string, text: string): ParsedSource | undefined;
  set(path: string, text: string, parsed: ParsedSource): void;
}

/** One file's tree and syntax diagnostics, as `parse` returns them. */
export interface ParsedSource {
  file: SourceFile;
  diagnostics: readonly Diagnostic[];
}

export type SymbolKind =
  | 'module'
  | 'type'
  | 'field'
  | 'variant'
  | 'enum-member'
  | 'protocol'
  | 'operation'
  | 'component'
  | 'system'
  | 'param'
  | 'port'
  | 'instance'
  | 'export'
  | 'egress'
  | 'image'
  | 'label'
  | 'target';

/** A declared thing. `id` is stable within one compile: `<file>#<kind>:<dotted path>`. */
export interface SymbolInfo {
  id: string;
  kind: SymbolKind;
  name: string;
  /** Qualified name for display, e.g. `std.http.Request` or `Shop.app`. */
  qualifiedName: string;
  file: string;
  /** Span of the name at the declaration. */
  nameSpan: Span;
  /** Span of the whole declaration. */
  span: Span;
  /** One-line signature for hovers, e.g. `provide api: std.http.Http`. */
  detail: string;
  doc?: string;
  /** The containing symbol's id (a port's component, a field's type). */
  container?: string;
  /**
   * For a port or an exported port: its protocol's symbol id, as composition
   * resolved it (an export's is the protocol of the port it exports).
   */
  protocol?: string;
}

/** One use of a name in source and the symbol it resolves to. */
export interface Reference {
  file: string;
  span: Span;
  symbol: string;
}

export interface Program {
  /** Parsed files by path, including stdlib modules (`std:<module>`). */
  files: Map<string, SourceFile>;
  /** File texts by path, for rendering code frames. */
  texts: Map<string, string>;
  symbols: Map<string, SymbolInfo>;
  /** Every resolved reference, including each declaration's own name. */
  references: Reference[];
  /**
   * The settings in effect for each component instance (the component's,
   * then the instance's own), by the instance's symbol id; built with
   * `index`, as the symbols are.
   */
  instances: Map<string, InstanceSettings>;
}

/** An instance's settings in effect, as composition resolved them. */
export interface InstanceSettings {
  /** Bytes. */
  memory: number;
  vcpus: number;
  mode: 'single' | 'replicas' | 'per_session' | 'created';
  /** The replica count, or the warm pool of a per-session instance. */
  replicas: number;
  maxSessions?: number;
  /** For a created instance: its creator's factory port and the factory's bound. */
  createdBy?: { port: string; max: number };
  /** The component's parameters in declaration order. */
  params: InstanceParam[];
}

/** A parameter of an instance: where its value comes from and where that value and its type are written. */
export interface InstanceParam {
  name: string;
  origin: 'override' | 'default' | 'unset';
  sensitive: boolean;
  /** The value in effect as written (the instance's override or the component's default). */
  value?: SourceRange;
  type: SourceRange;
}

/** A span in a named file. */
export interface SourceRange {
  file: string;
  span: Span;
}

export interface CompileResult {
  program: Program;
  /** Sorted with `sortDiagnostics`. */
  diagnostics: Diagnostic[];
  /**
   * Present when there are no errors and `emitPlan` is not false; with
   * `planDespiteViolations`, also when every error is a policy violation.
   */
  plan?: Plan;
}

export type { BackendName };
