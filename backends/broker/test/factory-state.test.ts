// Factories keep a creator clone's created clones per factory: a creator with two
// factory ports has a bound per port, lists each port's own clones, and a handle
// of one factory's clone names nothing on the other's port.
import { describe, expect, it } from 'vitest';
import type { PlanInstance } from '@mcl/plan';
import { Factories, type FactoryHost, type FactoryRt } from '../src/factories';
import type { Envelope } from '../src/frames';

const factory = (id: string): FactoryRt => ({
  created: { id, mode: 'created', created_by: { instance: 'boss', port: id, max: 1, detached: false, params: {} } } as unknown as PlanInstance,
  max: 1,
  detached: false,
  params: new Map(),
});

function host(lines: string[], denied: string[], destroyed: string[]): FactoryHost {
  return {
    // Each created instance's first clone is clone 0: the same handle on both ports.
    options: { onCreate: async () => 0, onDestroy: async (id: string, h: number) => void destroyed.push(`${id}[${h}]`) },
    deny: (kind: string) => void denied.push(kind),
    answer: (line: string) => void lines.push(line.trim()),
    log: () => {},
  } as unknown as FactoryHost;
}

const settle = () => new Promise((r) => setImmediate(r));

describe('factories of one creator clone', () => {
  it('bounds, lists and destroys per factory port', async () => {
    const lines: string[] = [];
    const denied: string[] = [];
    const destroyed: string[] = [];
    const h = host(lines, denied, destroyed);
    const fs = new Factories();
    const a = factory('workers');
    const b = factory('filters');
    const boss = { instance: 'boss', clone: 0 };
    fs.frame(h, a, boss, { t: 'create', id: 1 } as Envelope);
    await settle();
    // The other port's bound (1) is its own: a created worker does not use it up.
    fs.frame(h, b, boss, { t: 'create', id: 2 } as Envelope);
    await settle();
    expect(denied).toEqual([]);
    expect(lines).toEqual(['{"t":"created","id":1,"handle":0}', '{"t":"created","id":2,"handle":0}']);
    fs.frame(h, a, boss, { t: 'list', id: 3 } as Envelope);
    expect(lines.at(-1)).toBe('{"t":"instances","id":3,"handles":[0]}');
    // Destroying on one port destroys that port's clone only; the other stays owned.
    fs.frame(h, b, boss, { t: 'destroy', id: 4, handle: 0 } as Envelope);
    expect(destroyed).toEqual(['filters[0]']);
    expect(fs.owns(a, boss, 0)).toBe(true);
    expect(fs.owns(b, boss, 0)).toBe(false);
    fs.frame(h, b, boss, { t: 'destroy', id: 5, handle: 0 } as Envelope);
    expect(denied).toEqual(['factory_handle']);
    // The creator goes: what is left of its instances goes with it.
    expect(fs.creatorGone(h, [a, b], boss)).toEqual([0]);
    expect(destroyed).toEqual(['filters[0]', 'workers[0]']);
  });
});
