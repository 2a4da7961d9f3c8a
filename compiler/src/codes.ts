// The compiler's diagnostic code registry (MCL02xx-MCL04xx, MCL06xx, MCL07xx).
// The policy checker keeps its MCL05xx codes in policy/codes.ts. Codes are
// stable: a code is never reused for a different problem, so tools and
// documentation can rely on them.

import type { Diagnostic, DiagnosticInfo, Fix, RelatedLocation, Severity, Span, Stage } from '@mcl/language';

function entry(code: string, stage: Stage, severity: Severity, title: string): DiagnosticInfo {
  return { code, stage, severity, title };
}

export const COMPILER_CODES: readonly DiagnosticInfo[] = [
  // Resolve: modules, imports, names.
  entry('MCL0201', 'resolve', 'error', 'Unknown module'),
  entry('MCL0202', 'resolve', 'error', 'Imported name not declared in its module'),
  entry('MCL0203', 'resolve', 'error', 'Unknown name'),
  entry('MCL0204', 'resolve', 'error', 'Ambiguous name'),
  entry('MCL0205', 'resolve', 'error', 'Duplicate declaration'),
  entry('MCL0206', 'resolve', 'error', 'Import cycle'),
  entry('MCL0207', 'resolve', 'error', 'Module path outside the workspace'),
  entry('MCL0208', 'resolve', 'error', 'Name refers to the wrong kind of declaration'),
  entry('MCL0209', 'resolve', 'error', 'Conflicting import'),
  entry('MCL0210', 'resolve', 'error', 'Unknown label'),
  entry('MCL0211', 'resolve', 'error', 'Entry file not found'),
  entry('MCL0212', 'resolve', 'warning', 'Unused import'),
  // Types, protocols, parameters and values.
  entry('MCL0301', 'type', 'error', 'Constraint does not apply to this type'),
  entry('MCL0302', 'type', 'error', 'Empty range: minimum above maximum'),
  entry('MCL0303', 'type', 'error', 'Constraint bound out of range'),
  entry('MCL0304', 'type', 'error', 'Invalid regular expression'),
  entry('MCL0305', 'type', 'error', 'Duplicate record field'),
  entry('MCL0306', 'type', 'error', 'Duplicate union variant'),
  entry('MCL0307', 'type', 'error', 'Duplicate enum member'),
  entry('MCL0308', 'type', 'error', 'Recursive type without a finite value'),
  entry('MCL0309', 'type', 'error', 'Duplicate operation'),
  entry('MCL0310', 'type', 'error', 'Unknown operation in order'),
  entry('MCL0311', 'type', 'error', 'Value of the wrong type'),
  entry('MCL0312', 'type', 'error', 'Value violates a constraint'),
  entry('MCL0313', 'type', 'error', 'Unknown enum member'),
  entry('MCL0314', 'type', 'error', 'Unknown parameter'),
  entry('MCL0315', 'type', 'error', 'Required parameter not set'),
  entry('MCL0316', 'type', 'error', 'Duplicate parameter'),
  entry('MCL0317', 'type', 'error', 'Duplicate constraint'),
  entry('MCL0318', 'type', 'error', 'Empty enum or union'),
  entry('MCL0319', 'type', 'error', 'Map key type must be a string or an enum'),
  entry('MCL0320', 'type', 'error', 'Order accepts no sequence'),
  // Composition: components, systems, wiring.
  entry('MCL0401', 'compose', 'error', 'Unknown instance'),
  entry('MCL0402', 'compose', 'error', 'Unknown port'),
  entry('MCL0403', 'compose', 'error', 'Connection in the wrong direction'),
  entry('MCL0404', 'compose', 'error', 'Protocol mismatch'),
  entry('MCL0405', 'compose', 'error', 'Required port wired twice'),
  entry('MCL0406', 'compose', 'error', 'Required port not wired'),
  entry('MCL0407', 'compose', 'error', 'Allowed operation not in the protocol'),
  entry('MCL0408', 'compose', 'error', 'Exposure of a required port'),
  entry('MCL0409', 'compose', 'error', 'Host port exposed twice'),
  entry('MCL0410', 'compose', 'error', 'System contains itself'),
  entry('MCL0411', 'compose', 'error', 'Duplicate member'),
  entry('MCL0412', 'compose', 'error', 'Invalid component setting'),
  entry('MCL0413', 'compose', 'error', 'Setting not allowed on a system instance'),
  entry('MCL0414', 'compose', 'error', 'Setting given twice'),
  entry('MCL0415', 'compose', 'error', 'Unknown or invalid image property'),
  entry('MCL0416', 'compose', 'error', 'Invalid channel attribute'),
  entry('MCL0417', 'compose', 'error', 'Invalid host port'),
  entry('MCL0418', 'compose', 'error', 'Invalid declassification'),
  entry('MCL0419', 'compose', 'error', 'Allowed operation unreachable in the order'),
  // Target and backend capabilities.
  entry('MCL0601', 'target', 'error', 'Backend cannot realise this plan'),
  entry('MCL0602', 'target', 'error', 'Unknown target'),
  entry('MCL0603', 'target', 'error', 'Invalid target property'),
  entry('MCL0604', 'target', 'error', 'No system to deploy'),
  entry('MCL0605', 'target', 'error', 'Conflicting deploy declarations'),
  entry('MCL0606', 'target', 'info', 'Nothing to plan'),
  // Plan construction.
  entry('MCL0701', 'plan', 'error', 'Program file outside the workspace'),
  entry('MCL0702', 'plan', 'error', 'Program file not found'),
  entry('MCL0703', 'plan', 'error', 'Invalid program'),
  entry('MCL0704', 'plan', 'warning', 'Excluded instance does not exist'),
  entry('MCL0705', 'plan', 'warning', 'Channel dropped by exclusion'),
  entry('MCL0706', 'plan', 'error', 'Two images with the same name'),
  entry('MCL0799', 'plan', 'error', 'Internal compiler error'),
];

const BY_CODE = new Map(COMPILER_CODES.map((c) => [c.code, c]));

export interface DiagExtra {
  hint?: string;
  related?: RelatedLocation[];
  fixes?: Fix[];
  /** Overrides the registry's default severity (used sparingly, e.g. for warnings that a flag turns into errors). */
  severity?: Severity;
}

/** Builds a diagnostic whose severity comes from the registry. */
export function makeDiag(code: string, message: string, file: string, span: Span, extra: DiagExtra = {}): Diagnostic {
  const info = BY_CODE.get(code);
  const d: Diagnostic = {
    code,
    severity: extra.severity ?? info?.severity ?? 'error',
    message,
    file,
    span: { start: span.start, end: span.end },
  };
  if (extra.hint) d.hint = extra.hint;
  if (extra.related && extra.related.length) d.related = extra.related;
  if (extra.fixes && extra.fixes.length) d.fixes = extra.fixes;
  return d;
}

export function codeInfo(code: string): DiagnosticInfo | undefined {
  return BY_CODE.get(code);
}
