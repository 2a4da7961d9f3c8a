// Compiling a workspace from the command line, and the policy-violation
// classification of exit codes.

import { compile, type CompileResult, type CompilerHost, type IncrementalCompiler } from '@mcl/compiler';
import { NodeHost } from '@mcl/compiler/node-host';
import { Codes, codeInfo, type Diagnostic } from '@mcl/language';
import { ExitCode, type ExitCodeValue } from './exit';
import { timings } from './timings';
import { MCLC_VERSION } from './version';
import { stdlibDir, type Workspace } from './workspace';

export interface CompileRequest {
  workspace: Workspace;
  target?: string;
  system?: string;
  exclude?: string[];
  emitPlan: boolean;
  /** Build the plan also when every error is a policy violation (for `graph`, which marks them). */
  planDespiteViolations?: boolean;
  /** The state the plan is made against: its `prior_state`, inside its digest. */
  priorState?: { lineage: string; serial: number } | null;
  /** A deploy to several targets: the state of each target's deployment (the plan's `prior_states`). */
  priorStates?: Record<string, { lineage: string; serial: number } | null>;
}

export interface CompileOutcome extends CompileResult {
  stdlib: string;
  /** Texts of every file read, by diagnostic path (workspace-relative or `std:<module>`). */
  texts: Map<string, string>;
}

/**
 * What `mclc validate --watch` keeps between compiles (watch.ts): the host that reads the sources
 * (again only when they changed) and the compiler that takes over what an edit did not change.
 */
export interface CompileSession {
  host: CompilerHost;
  compiler: IncrementalCompiler;
}

export function compileWorkspace(req: CompileRequest, session?: CompileSession): CompileOutcome {
  const stdlib = stdlibDir();
  const host = session?.host ?? new NodeHost({ root: req.workspace.root, stdlib });
  // MCL_TIMINGS times the stages of one process's one compile; the rounds of a watch are not that.
  const t = session ? undefined : timings;
  if (t) {
    // Reading happens inside the compiler's loading stage; timed on its own, it is reported apart from lexing and parsing.
    const { readFile, readStdlib } = host;
    host.readFile = (path) => t.nest('read sources', () => readFile.call(host, path));
    host.readStdlib = (path) => t.nest('read sources', () => readStdlib.call(host, path));
  }
  const options = {
    entries: req.workspace.entries,
    target: req.target,
    system: req.system,
    exclude: req.exclude?.length ? req.exclude : undefined,
    mclcVersion: MCLC_VERSION,
    emitPlan: req.emitPlan,
    planDespiteViolations: req.planDespiteViolations,
    priorState: req.priorState,
    ...(req.priorStates ? { priorStates: req.priorStates } : {}),
    onPhase: t ? (phase: string) => t.mark(phase === 'load+parse' ? 'lex+parse' : phase) : undefined,
  };
  const result = session ? session.compiler.compile(host, options) : compile(host, options);
  const texts = new Map(result.program.texts);
  return { ...result, stdlib, texts };
}

/**
 * Policy diagnostics that report a mistake in how a rule is written (an
 * unknown name, label or port, a misplaced `outside`, a budget of the wrong
 * kind). They are source errors, not violations: CI must be able to tell "the
 * policy failed" from "the policy could not be read".
 */
const MALFORMED_RULE_CODES = new Set([Codes.UnknownRuleSubject, Codes.UnknownRuleLabel, Codes.UnknownExposedOnlyPort, Codes.OutsideNotAllowed, Codes.InvalidBudget].map((i) => i.code));

/** Diagnostics that stand for a bug in mclc rather than in the sources. */
const INTERNAL_ERROR_CODES = new Set([Codes.PolicyCheckerFailed.code, Codes.InternalCompilerError.code]);

/**
 * The exit code for a set of diagnostics: 0 without errors; 70 when any error
 * is an internal error (a bug to report); 3 when every error is a policy
 * violation (MCL05xx other than a malformed rule: the sources are well-formed,
 * the composition breaks a stated invariant); 1 otherwise.
 */
export function exitCodeFor(diagnostics: readonly Diagnostic[]): ExitCodeValue {
  const errors = diagnostics.filter((d) => d.severity === 'error');
  if (errors.length === 0) return ExitCode.Ok;
  if (errors.some((d) => INTERNAL_ERROR_CODES.has(d.code))) return ExitCode.Internal;
  return errors.every((d) => codeInfo(d.code)?.stage === 'policy' && !MALFORMED_RULE_CODES.has(d.code)) ? ExitCode.PolicyViolated : ExitCode.Invalid;
}
