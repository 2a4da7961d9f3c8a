// A channel's outstanding calls are kept in a list threaded through the calls (CallList) rather
// than a Set, so that adding and removing one allocates nothing. It must behave as the Set did:
// insertion order, `delete` telling whether the call was there, `first`, and iteration that skips
// calls removed meanwhile (the timeout sweep removes the call it is at, and answering one may
// remove others).

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CallList, type Pending } from '../src/state';

const call = (pid: number) => ({ pid, prev: null, next: null, list: null }) as unknown as Pending;

describe('CallList', () => {
  it('keeps the order, size, first call and membership a Set keeps, also when calls are removed while it is iterated', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('add' as const), i: fc.nat(15) }),
      fc.record({ k: fc.constant('delete' as const), i: fc.nat(15) }),
      // Iterate, removing some of the calls at and after the current one on the way.
      fc.record({ k: fc.constant('sweep' as const), i: fc.nat(15), drop: fc.array(fc.nat(15), { maxLength: 4 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const calls = Array.from({ length: 16 }, (_, i) => call(i));
        const list = new CallList();
        const model = new Set<Pending>();
        for (const o of ops) {
          const p = calls[o.i];
          if (o.k === 'add') {
            list.add(p);
            model.add(p);
          } else if (o.k === 'delete') {
            expect(list.delete(p)).toBe(model.delete(p));
          } else {
            const seenList: number[] = [];
            for (const q of list) {
              seenList.push(q.pid);
              if (q.pid === o.i) for (const d of [o.i, ...o.drop]) list.delete(calls[d]);
            }
            const seenModel: number[] = [];
            for (const q of model) {
              seenModel.push(q.pid);
              if (q.pid === o.i) for (const d of [o.i, ...o.drop]) model.delete(calls[d]);
            }
            expect(seenList).toEqual(seenModel);
          }
          expect(list.size).toBe(model.size);
          expect([...list].map((q) => q.pid)).toEqual([...model].map((q) => q.pid));
          expect(list.first()?.pid).toBe(model.values().next().value?.pid);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
