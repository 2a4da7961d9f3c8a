// A provide port's outstanding calls are kept in an array indexed by their id (CallTable) rather
// than a Map, so that adding and removing one allocates nothing. It must answer what the Map
// answered: `get`, `delete` telling whether the call was there, `size`, a replaced call under an
// id given twice, and the calls themselves, in the order they were made when ids are given in
// increasing order, as the broker gives them. Ids that collide in the array (a window wider than
// it), very far apart, negative, or not integers (a checkpoint's) are mixed in.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CallTable, type Pending } from '../src/state';

const call = (pid: number, tag = 0) => ({ pid, tag }) as unknown as Pending;

const id = fc.oneof(
  fc.nat(40),
  fc.nat(40).map((n) => n * 16),
  fc.nat(8).map((n) => n * (1 << 14) + 3),
  fc.constantFrom(2 ** 32 + 1, 1, 2 ** 53 - 1, -1, -16, 1.5, Number.NaN, Infinity, -0, 0),
);

describe('CallTable', () => {
  it('answers get, delete, size and the set of calls as a Map keyed by id does', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('set' as const), id }),
      fc.record({ k: fc.constant('delete' as const), id }),
      fc.record({ k: fc.constant('get' as const), id }),
      fc.record({ k: fc.constant('clear' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const table = new CallTable();
        const model = new Map<number, Pending>();
        let tag = 0;
        for (const o of ops) {
          if (o.k === 'set') {
            const p = call(o.id, tag++);
            table.set(p);
            model.set(o.id, p);
          } else if (o.k === 'delete') {
            expect(table.delete(o.id)).toBe(model.delete(o.id));
          } else if (o.k === 'get') {
            expect(table.get(o.id)).toBe(model.get(o.id));
          } else {
            table.clear();
            model.clear();
          }
          expect(table.size).toBe(model.size);
          expect(table.values().length).toBe(model.size);
          expect(new Set(table.values())).toEqual(new Set(model.values()));
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('lists the calls in the order they were made when ids increase, also when old calls stay outstanding', () => {
    // As the broker uses it: ids from a counter, each call answered after a while or never.
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(200)), { maxLength: 400 }), (steps) => {
        const table = new CallTable();
        const model = new Map<number, Pending>();
        let next = 1;
        for (const [add, back] of steps) {
          if (add) {
            const p = call(next++);
            table.set(p);
            model.set(p.pid, p);
          } else {
            const victim = next - 1 - back;
            expect(table.delete(victim)).toBe(model.delete(victim));
          }
          expect(table.values()).toEqual([...model.values()]);
        }
        for (const [pid, p] of model) expect(table.get(pid)).toBe(p);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps a call that stays unanswered while tens of thousands of others come and go', () => {
    const table = new CallTable();
    const stale = call(1);
    table.set(stale);
    for (let pid = 2; pid < 100_000; pid++) {
      table.set(call(pid));
      if (pid > 41) expect(table.delete(pid - 40)).toBe(true);
    }
    expect(table.get(1)).toBe(stale);
    expect(table.size).toBe(41);
    expect(table.values()[0]).toBe(stale);
  });
});
