import { describe, expect, it } from 'vitest';
import { checkPolicies, IDLE_DIRTY_FRACTION, VM_OVERHEAD_BYTES } from '../../src/policy';
import { GiB, InputBuilder, MiB } from './build';

function check(result: ReturnType<typeof checkPolicies>, id: string) {
  const c = result.checks.find((x) => x.id === id);
  if (!c) throw new Error(`no check ${id}; have ${result.checks.map((x) => x.id).join(', ')}`);
  return c;
}

describe('resource estimate', () => {
  it('counts each template once and every clone privately, per_session at max_sessions', () => {
    const b = new InputBuilder({ memory_bytes: 4 * GiB, vcpus: 2, vcpu_overcommit: 16 })
      .instance('trap', { mode: 'per_session', replicas: 2, maxSessions: 16, template: 't128' })
      .instance('recorder', { template: 't128' })
      .instance('big', { memory: 512 * MiB, vcpus: 2, replicas: 3 });
    const r = checkPolicies(b.input);
    const privateOf = (m: number) => Math.ceil(m * IDLE_DIRTY_FRACTION) + VM_OVERHEAD_BYTES;
    expect(r.resources).toEqual({
      template_memory_bytes: 128 * MiB + 512 * MiB,
      estimated_private_bytes: 17 * privateOf(128 * MiB) + 3 * privateOf(512 * MiB),
      estimated_total_bytes: 640 * MiB + 17 * privateOf(128 * MiB) + 3 * privateOf(512 * MiB),
      worst_case_bytes: 640 * MiB + 17 * (128 * MiB + VM_OVERHEAD_BYTES) + 3 * (512 * MiB + VM_OVERHEAD_BYTES),
      committed_vcpus: 17 + 6,
    });
    expect(check(r, 'resources:vcpus').status).toBe('pass');
    // 640 MiB + 3.6 GiB worst case is over 4 GiB; the estimate (about 1.5 GiB) is not.
    expect(check(r, 'resources:memory').status).toBe('warn');
    expect(r.diagnostics.map((d) => [d.code, d.severity])).toEqual([['MCL0510', 'warning']]);
  });

  it('fails memory and vCPUs on the capacity example with the heaviest instances listed', () => {
    const b = new InputBuilder({ name: 'small', memory_bytes: 1 * GiB, vcpus: 2, vcpu_overcommit: 2 }).instance('big', {
      memory: 2 * GiB,
      vcpus: 4,
      replicas: 8,
    });
    const r = checkPolicies(b.input);
    expect(check(r, 'resources:memory')).toMatchObject({ status: 'fail', counterexample: [{ instance: 'big', note: '8 clones of 2GiB' }] });
    expect(check(r, 'resources:vcpus')).toMatchObject({
      status: 'fail',
      summary: 'vCPUs exceed target `small`: 32 committed, 2 on the host x overcommit 2 = 4.',
      counterexample: [{ instance: 'big', note: '8 clones x 4 vCPU' }],
    });
    expect(r.diagnostics.map((d) => d.code)).toEqual(['MCL0509', 'MCL0511']);
    expect(r.diagnostics[0].span).toEqual(b.input.origins.target?.span);
    expect(r.diagnostics[0].message).toBe('The plan needs an estimated 3.9GiB of memory, more than the 1GiB of target `small`.');
    expect(r.diagnostics[0].related?.[0].span).toEqual(b.input.origins.instances.big.span);
  });

  it('lists the five heaviest instances, heaviest first and by id among equals, out of many', () => {
    const b = new InputBuilder({ name: 'small', memory_bytes: 1 * GiB, vcpus: 64, vcpu_overcommit: 1 });
    // Weights in an order that is neither sorted nor reversed, with ties around the fifth place.
    const sizes: [string, number, number][] = [['e', 256, 1], ['a', 128, 1], ['h', 512, 1], ['c', 256, 1], ['g', 64, 1], ['b', 256, 1], ['f', 128, 2], ['d', 256, 1], ['i', 32, 1]];
    for (const [id, mib, replicas] of sizes) b.instance(id, { memory: mib * MiB, replicas });
    const r = checkPolicies(b.input);
    expect(check(r, 'resources:memory').counterexample).toEqual([
      { instance: 'h', note: '1 clone of 512MiB' },
      { instance: 'b', note: '1 clone of 256MiB' },
      { instance: 'c', note: '1 clone of 256MiB' },
      { instance: 'd', note: '1 clone of 256MiB' },
      { instance: 'e', note: '1 clone of 256MiB' },
    ]);
  });

  it('passes with an empty system', () => {
    const r = checkPolicies(new InputBuilder().input);
    expect(r.resources.estimated_total_bytes).toBe(0);
    expect(check(r, 'resources:memory').status).toBe('pass');
    expect(r.diagnostics).toEqual([]);
  });
});

describe('budgets', () => {
  function cluster(): InputBuilder {
    return new InputBuilder({ memory_bytes: 2 * GiB, vcpus: 2, vcpu_overcommit: 4 })
      .instance('a.job', { replicas: 2 })
      .instance('a.store')
      .instance('b.job')
      .instance('b.store')
      .instance('accounting');
  }

  it('bounds the committed guest memory and vCPUs of the rule’s subtree', () => {
    const b = cluster();
    b.budgetMemory(384 * MiB, 'a');
    b.budgetVcpus(3, 'a');
    b.budgetMemory(256 * MiB, 'b');
    b.budgetVcpus(6);
    const r = checkPolicies(b.input);
    expect(check(r, 'resources:budget:memory:a').status).toBe('pass');
    expect(check(r, 'resources:budget:vcpus:a').status).toBe('pass');
    expect(check(r, 'resources:budget:memory:b').status).toBe('pass');
    expect(check(r, 'resources:budget:vcpus')).toMatchObject({ status: 'pass', summary: 'vCPUs of the root system are within budget: 6 vCPUs committed, budget 6.' });
    expect(r.diagnostics).toEqual([]);
  });

  it('reports a budget overrun at the rule with the instances that weigh most', () => {
    const b = cluster();
    const mem = b.budgetMemory(256 * MiB, 'a');
    const cpu = b.budgetVcpus(2, 'a');
    const r = checkPolicies(b.input);
    expect(check(r, 'resources:budget:memory:a').counterexample).toEqual([
      { instance: 'a.job', note: '2 clones of 128MiB' },
      { instance: 'a.store', note: '1 clone of 128MiB' },
    ]);
    expect(r.diagnostics).toMatchObject([
      { code: 'MCL0512', span: mem.rule.span, message: 'System `a` commits 384MiB of guest memory, over its budget of 256MiB.' },
      { code: 'MCL0513', span: cpu.rule.span, message: 'System `a` commits 3 vCPUs, over its budget of 2.' },
    ]);
  });

  it('rejects a budget value of the wrong kind and stays quiet about a missing one', () => {
    const b = cluster();
    const sr = b.budgetVcpus(2);
    if (sr.rule.kind === 'BudgetRule') sr.rule.resource = 'memory';
    const missing = b.budgetVcpus(1);
    if (missing.rule.kind === 'BudgetRule') missing.rule.value = { kind: 'MissingExpr', span: { start: 1, end: 1 } };
    const r = checkPolicies(b.input);
    expect(r.diagnostics).toMatchObject([{ code: 'MCL0519', message: '`budget memory` takes a size such as `1GiB`, not `2`.' }]);
    expect(check(r, 'resources:budget:memory').status).toBe('fail');
    expect(check(r, 'resources:budget:vcpus').status).toBe('fail');
  });
});
