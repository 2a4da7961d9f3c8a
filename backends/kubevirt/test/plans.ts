// The examples' plans for the kubevirt target of fixtures/k8s_target.mcl,
// compiled in memory as the compiler's golden tests do (guest programs pinned
// to stand-in texts, so editing a guest script does not change the goldens).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile, type CompileOptions } from '@mcl/compiler';
import type { Plan } from '@mcl/plan';
import { MemoryHost, readTree, renderDiagnostics, REPO } from '../../../compiler/test/helpers';

export const FIXTURES = join(REPO, 'backends', 'kubevirt', 'test', 'fixtures');

/** The examples a kubevirt target can realise (the honeypot's per-session forks it cannot). */
export const KUBE_EXAMPLES = ['webstack', 'cluster', 'shopmail'];

/** The example's plan for the kubevirt target `k8s`, or for another target of the example (`local`: KVM). */
export function examplePlan(name: string, target = 'k8s', more: Partial<CompileOptions> = {}): { plan?: Plan; diagnostics: string } {
  const files = Object.fromEntries(Object.entries(readTree(join(REPO, 'examples', name))).map(([p, t]) => [p, p.startsWith('guest/') ? `# stand-in for ${p}\n` : t]));
  files['k8s_target.mcl'] = readFileSync(join(FIXTURES, 'k8s_target.mcl'), 'utf8');
  const r = compile(new MemoryHost(files), { entries: [`${name}.mcl`, 'k8s_target.mcl'], target, mclcVersion: '0.1.0', ...more });
  return { plan: r.plan ? (JSON.parse(JSON.stringify(r.plan)) as Plan) : undefined, diagnostics: renderDiagnostics(r) };
}
