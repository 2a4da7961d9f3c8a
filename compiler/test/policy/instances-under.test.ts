// The budget check finds a scope's instances with a binary search over the
// sorted ids; it must agree with a plain filter on every scope, including ids
// that share a prefix without a dot (`org1` vs `org10`, `org1-x`).

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { PlanInstance } from '@mcl/plan';
import { instancesUnder } from '../../src/policy/resources';

const inst = (id: string) => ({ id }) as PlanInstance;

describe('instancesUnder', () => {
  it('keeps the scope itself and its dotted descendants only', () => {
    const ids = ['org1', 'org1-x', 'org1.job', 'org1.job.a', 'org1.store', 'org10.job', 'org1_b', 'org2.job'].sort();
    expect(instancesUnder(ids.map(inst), 'org1').map((i) => i.id)).toEqual(['org1', 'org1.job', 'org1.job.a', 'org1.store']);
    expect(instancesUnder(ids.map(inst), 'org1.job').map((i) => i.id)).toEqual(['org1.job', 'org1.job.a']);
    expect(instancesUnder(ids.map(inst), 'nope')).toEqual([]);
  });

  it('agrees with a linear filter on random id sets', () => {
    const seg = fc.constantFrom('a', 'b', 'ab', 'a1', 'a-b', 'a_b', 'z', '0');
    const id = fc.array(seg, { minLength: 1, maxLength: 4 }).map((p) => p.join('.'));
    fc.assert(
      fc.property(fc.uniqueArray(id, { maxLength: 40 }), id, (ids, scope) => {
        const sorted = [...ids].sort().map(inst);
        const expected = sorted.filter((i) => i.id === scope || i.id.startsWith(`${scope}.`));
        expect(instancesUnder(sorted, scope)).toEqual(expected);
      }),
      { numRuns: 500, seed: 7 },
    );
  });
});
