// recheckPlan: the policy checks run again from a plan alone, as `mclc apply`
// does before it hands a plan to a backend.

import { join } from 'node:path';
import { readdirSync, existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Plan } from '@mcl/plan';
import { compile, recheckPlan } from '../src/index';
import { MemoryHost, readTree, REPO } from './helpers';

function planOf(name: string): Plan {
  const r = compile(new MemoryHost(readTree(join(REPO, 'examples', name))), { entries: [`${name}.mcl`], mclcVersion: 'x' });
  expect(r.plan, r.diagnostics.map((d) => d.message).join('\n')).toBeDefined();
  return structuredClone(r.plan!);
}

describe('recheckPlan', () => {
  const examples = readdirSync(join(REPO, 'examples')).filter((n) => existsSync(join(REPO, 'examples', n, `${n}.mcl`)));

  for (const name of examples) {
    it(`finds the checks ${name}'s plan records`, () => {
      const plan = planOf(name);
      expect(plan.policies!.rules.length).toBeGreaterThan(0);
      expect(recheckPlan(plan)).toEqual([]);
    });
  }

  it('refuses an exposure the `exposed only` rule does not allow', () => {
    const plan = planOf('webstack');
    const db = plan.instances.find((i) => i.id === 'db')!;
    const kv = db.ports.find((p) => p.name === 'kv')!;
    kv.exposed_on = 9000;
    plan.exposures.push({ ...plan.exposures[0], host_port: 9000, transport: 'tcp', instance: 'db', port: 'kv', protocol: kv.protocol });
    expect(recheckPlan(plan)).toEqual([
      'check exposure is recorded differently from what the checker finds: 2 exposures: tcp 8080 -> web.http, tcp 9000 -> db.kv.',
      'check exposure:exposed-only is recorded as pass but is fail: 1 exposure not in the list: db.kv on tcp 9000.',
      'check reach:db-only-from:app is recorded as pass but is fail: 1 connection into `db` from outside `app`.',
      'check reach:db-only-through:app is recorded as pass but is fail: A path reaches `db` without passing through `app`: outside -> db.',
    ]);
  });

  it('refuses a channel that `only from` and `no flow` forbid', () => {
    const plan = planOf('webstack');
    const ch = structuredClone(plan.channels.find((c) => c.to.instance === 'db')!);
    ch.id = 'web.handler->db.kv';
    ch.from = { instance: 'web', port: 'handler' };
    plan.channels.push(ch);
    const problems = recheckPlan(plan);
    expect(problems).toContain('check reach:db-only-from:app is recorded as pass but is fail: 1 connection into `db` from outside `app`.');
    expect(problems).toContain('check flow:no-flow:secret->web is recorded as pass but is fail: Data labelled `secret` or above reaches `web`: db -> web.');
  });

  it('refuses checks that were edited, added or removed', () => {
    const plan = planOf('webstack');
    plan.checks[0] = { ...plan.checks[0], summary: 'all good' };
    const gone = plan.checks.pop()!;
    plan.checks.push({ id: 'made:up', kind: 'wiring', status: 'pass', summary: 'trust me' });
    const problems = recheckPlan(plan);
    expect(problems).toContain(`check ${plan.checks[0].id} is recorded differently from what the checker finds: ${planOf('webstack').checks[0].summary}`);
    expect(problems).toContain(`check ${gone.id} is missing from the plan's checks`);
    expect(problems).toContain('check made:up is recorded but no rule of the plan produces it');
  });

  it('refuses a plan whose rules were removed along with the checks they made', () => {
    const plan = planOf('webstack');
    plan.policies!.rules = plan.policies!.rules.filter((r) => r.kind !== 'exposed_only');
    expect(recheckPlan(plan).some((p) => p.includes('is recorded but no rule of the plan produces it'))).toBe(true);
  });

  it('cannot check a plan without policies', () => {
    const plan = planOf('webstack');
    delete plan.policies;
    expect(recheckPlan(plan)[0]).toContain('does not record its policy rules');
  });
});
