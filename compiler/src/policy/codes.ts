// The policy checker's diagnostic codes (MCL05xx). Codes are stable: a code is
// never reused for a different problem, so tools, documentation and golden
// files can rely on them. spec/policy.md explains every code.

import type { DiagnosticInfo, Severity } from '@mcl/language';

function entry(code: string, severity: Severity, title: string): DiagnosticInfo {
  return { code, stage: 'policy', severity, title };
}

export const POLICY_CODES: readonly DiagnosticInfo[] = [
  entry('MCL0501', 'error', 'Channel from an instance not allowed by `only from`'),
  entry('MCL0502', 'error', 'Path that bypasses the instances of `only through`'),
  entry('MCL0503', 'error', 'Path forbidden by `no path`'),
  entry('MCL0504', 'error', 'Exposure not in the `exposed only` list'),
  entry('MCL0505', 'warning', 'Listed port is not exposed'),
  entry('MCL0506', 'error', 'Cycle in the label order'),
  entry('MCL0507', 'error', 'Data flows to an instance with a lower label'),
  entry('MCL0508', 'error', 'Data forbidden by `no flow` reaches the instance'),
  entry('MCL0509', 'error', 'Estimated memory exceeds the target host'),
  entry('MCL0510', 'warning', 'Worst-case memory exceeds the target host'),
  entry('MCL0511', 'error', 'Committed vCPUs exceed the target host'),
  entry('MCL0512', 'error', 'System exceeds its memory budget'),
  entry('MCL0513', 'error', 'System exceeds its vCPU budget'),
  entry('MCL0514', 'error', 'Cycle of call channels'),
  entry('MCL0515', 'error', 'Unknown instance or system in a policy rule'),
  entry('MCL0516', 'error', 'Unknown label in a policy rule'),
  entry('MCL0517', 'error', 'Unknown port in `exposed only`'),
  entry('MCL0518', 'error', '`outside` cannot be used here'),
  entry('MCL0519', 'error', 'Invalid budget value'),
  entry('MCL0599', 'error', 'Internal error in the policy checker'),
];

const BY_CODE = new Map(POLICY_CODES.map((info) => [info.code, info]));

/** Registry entry of a policy code; every code used by the checker is in the table. */
export function policyCode(code: string): DiagnosticInfo {
  const info = BY_CODE.get(code);
  // An unregistered code is a programming error caught by the tests, but the
  // checker must not throw, so it degrades to an error-level entry.
  return info ?? { code, stage: 'policy', severity: 'error', title: code };
}
