// Sensitive parameters are never shown: every human and `--json` output of
// a plan goes through `redactPlan`. Only the plan file itself keeps the
// values, because the backend needs them.

import type { JsonValue, Plan, PlanInstance } from '@mcl/plan';

export const REDACTED = '(sensitive)';

export function redactInstance(inst: PlanInstance): PlanInstance {
  if (!inst.sensitive_params?.length) return inst;
  const params: Record<string, JsonValue> = { ...inst.params };
  for (const name of inst.sensitive_params) if (name in params) params[name] = REDACTED;
  // A sensitive value may also reach the program through its environment.
  const secrets = inst.sensitive_params
    .map((n) => inst.params[n])
    .filter((v) => v !== undefined && v !== null)
    .map((v) => (typeof v === 'string' ? v : JSON.stringify(v)))
    .filter((s) => s.length >= 4);
  const scrub = (s: string) => secrets.reduce((acc, secret) => acc.split(secret).join(REDACTED), s);
  const env = Object.fromEntries(Object.entries(inst.program.env).map(([k, v]) => [k, scrub(v)]));
  const files = inst.program.files.map((f) => ({ ...f, content: scrub(f.content) }));
  const argv = inst.program.argv.map(scrub);
  return { ...inst, params, program: { ...inst.program, argv, env, files } };
}

export function redactPlan(plan: Plan): Plan {
  return { ...plan, instances: plan.instances.map(redactInstance) };
}
