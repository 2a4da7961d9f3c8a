// Compiling a workspace from the command line, and the pieces of the
// diagnostics pipeline that depend on it: the code registries (for SARIF
// rules) and the policy-violation classification of exit codes.

import * as compilerModule from '@mcl/compiler';
import { compile, type CompileResult } from '@mcl/compiler';
import { NodeHost } from '@mcl/compiler/node-host';
import * as languageModule from '@mcl/language';
import type { Diagnostic, DiagnosticInfo } from '@mcl/language';
import { ExitCode, type ExitCodeValue } from './exit';
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
}

export interface CompileOutcome extends CompileResult {
  stdlib: string;
  /** Texts of every file read, by diagnostic path (workspace-relative or `std:<module>`). */
  texts: Map<string, string>;
}

export function compileWorkspace(req: CompileRequest): CompileOutcome {
  const stdlib = stdlibDir();
  const host = new NodeHost({ root: req.workspace.root, stdlib });
  const result = compile(host, {
    entries: req.workspace.entries,
    target: req.target,
    system: req.system,
    exclude: req.exclude?.length ? req.exclude : undefined,
    mclcVersion: MCLC_VERSION,
    emitPlan: req.emitPlan,
    planDespiteViolations: req.planDespiteViolations,
    priorState: req.priorState,
  });
  const texts = new Map(result.program.texts);
  return { ...result, stdlib, texts };
}

/**
 * Policy diagnostics that report a mistake in how a rule is written (an
 * unknown name, label or port, a misplaced `outside`, a budget of the wrong
 * kind). They are source errors, not violations: CI must be able to tell "the
 * policy failed" from "the policy could not be read".
 */
const MALFORMED_RULE_CODES = new Set(['MCL0515', 'MCL0516', 'MCL0517', 'MCL0518', 'MCL0519']);

/** Diagnostics that stand for a bug in mclc rather than in the sources. */
const INTERNAL_ERROR_CODES = new Set(['MCL0599', 'MCL0799']);

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
  return errors.every((d) => d.code.startsWith('MCL05') && !MALFORMED_RULE_CODES.has(d.code)) ? ExitCode.PolicyViolated : ExitCode.Invalid;
}

function isInfo(v: unknown): v is DiagnosticInfo {
  if (!v || typeof v !== 'object') return false;
  const o = v as Record<string, unknown>;
  return typeof o.code === 'string' && /^MCL\d{4}$/.test(o.code) && typeof o.title === 'string' && typeof o.severity === 'string';
}

/**
 * Every registered diagnostic code, gathered from the registries that
 * @mcl/language and @mcl/compiler export (arrays of entries, or records of
 * them), so a new code shows up in SARIF rule tables without touching the CLI.
 */
export function knownDiagnosticCodes(): DiagnosticInfo[] {
  const byCode = new Map<string, DiagnosticInfo>();
  for (const mod of [languageModule, compilerModule] as Record<string, unknown>[]) {
    for (const value of Object.values(mod)) {
      const items = Array.isArray(value) ? value : value && typeof value === 'object' ? Object.values(value) : [];
      for (const item of items) if (isInfo(item) && !byCode.has(item.code)) byCode.set(item.code, item);
    }
  }
  return [...byCode.values()].sort((a, b) => (a.code < b.code ? -1 : 1));
}
