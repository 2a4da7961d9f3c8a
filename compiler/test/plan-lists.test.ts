// The lists a plan body and elaboration share or copy as blocks: a
// component's program lists are frozen and every empty one is the same array
// (so that the plan body freezes arrays of one elements kind only), and a
// kept subtree's list is appended whole, however long it is.

import { describe, expect, test } from 'vitest';
import { compile, IncrementalCompiler } from '../src/index';
import { append, type ElaborationCache } from '../src/compose/elaborate';
import { MemoryHost } from './helpers';

describe("a component's program lists", () => {
  test('are frozen, and every empty one is one shared array', () => {
    const src = `component C {
  param token: string = "abc" sensitive
  program { exec ["/bin/true"]  file "/etc/c.conf" = "x" }
}
component D { program { env { A = "1" } } }
component E { }
system S { c = C  d = D  e = E }
`;
    const r = compile(new MemoryHost({ 'main.mcl': src }), {
      entries: ['main.mcl'],
      mclcVersion: 'x',
    });
    expect(r.plan, r.diagnostics.map((d) => d.message).join('\n')).toBeDefined();
    const by = new Map(r.plan!.instances.map((i) => [i.id, i]));
    const [c, d, e] = ['c', 'd', 'e'].map((id) => by.get(id)!);
    expect(c.program.argv).toEqual(['/bin/true']);
    expect(c.program.files).toEqual([{ content: 'x', mode: '0644', path: '/etc/c.conf' }]);
    expect(c.sensitive_params).toEqual(['token']);
    for (const list of [c.program.argv, c.program.files, c.program.files[0], c.sensitive_params, d.program.argv, e.program.files])
      expect(Object.isFrozen(list)).toBe(true);
    // The empty lists of different components are the same array.
    expect(d.program.argv).toEqual([]);
    expect(e.program.argv).toBe(d.program.argv);
    expect(d.program.files).toBe(d.program.argv);
    expect(e.sensitive_params).toBe(d.program.argv);
    expect(c.program.files).not.toBe(d.program.files);
  });
});

describe('appending a kept list', () => {
  test('keeps the order and takes lists longer than one call may pass as arguments', () => {
    const to = [-2, -1];
    const from = Array.from({ length: 1_000_003 }, (_, i) => i);
    append(to, from);
    append(to, []);
    append(to, [7]);
    expect(to.length).toBe(1_000_006);
    expect(to.slice(0, 3)).toEqual([-2, -1, 0]);
    expect(to[1_000_004]).toBe(1_000_002);
    expect(to[1_000_005]).toBe(7);
    for (let i = 0; i < from.length; i += 99_991) expect(to[i + 2]).toBe(i);
  });
});

describe("an incremental compile's exports", () => {
  const src = (size: number, name: string) => `import std.kv.{Kv}
component Db { provide store: Kv
  param size: int = 1 }
component App { require store: Kv }
system Inner { db = Db { size = ${size} }
  export ${name} = db.store }
system Main { inner = Inner
  app = App
  connect app.store -> inner.${name} }
`;
  const options = { entries: ['main.mcl'], mclcVersion: 't', index: true };
  const exportsOf = (inc: IncrementalCompiler) => (inc as unknown as { flats: ElaborationCache }).flats.lastExports.get('main.Main')?.object;

  test("are the last compile's object while they are the same, and a new one when they change", () => {
    const inc = new IncrementalCompiler();
    const first = inc.compile(new MemoryHost({ 'main.mcl': src(1, 'store') }), options);
    expect(first.diagnostics.map((d) => d.message)).toEqual([]);
    const a = exportsOf(inc);
    expect(a).toEqual({
      'inner.store': { instance: 'inner.db', port: 'store' },
    });
    inc.compile(new MemoryHost({ 'main.mcl': src(2, 'store') }), options);
    expect(exportsOf(inc)).toBe(a);
    const renamed = inc.compile(new MemoryHost({ 'main.mcl': src(2, 'kv') }), options);
    expect(renamed.diagnostics.map((d) => d.message)).toEqual([]);
    expect(exportsOf(inc)).not.toBe(a);
    expect(exportsOf(inc)).toEqual({
      'inner.kv': { instance: 'inner.db', port: 'store' },
    });
    expect(a).toEqual({
      'inner.store': { instance: 'inner.db', port: 'store' },
    });
  });
});

describe('the export entries of a nested system taken over', () => {
  test('are taken over with its subtree when the system holding it is elaborated again', () => {
    const inner = `import std.kv.{Kv}
component Db { provide store: Kv }
system Inner { db = Db
  export store = db.store }
`;
    const main = (n: number) => `import std.kv.{Kv}
import inner.{Inner}
component App { require store: Kv
  param n: int = 1 }
system Main { inner = Inner
  app = App { n = ${n} }
  connect app.store -> inner.store }
`;
    const options = { entries: ['main.mcl'], mclcVersion: 't', index: true };
    const flats = (inc: IncrementalCompiler) => (inc as unknown as { flats: ElaborationCache }).flats;
    const inc = new IncrementalCompiler();
    const first = inc.compile(new MemoryHost({ 'main.mcl': main(1), 'inner.mcl': inner }), options);
    expect(first.diagnostics.map((d) => d.message)).toEqual([]);
    const [entry] = flats(inc).lastExports.get('main.Main')!.entries;
    expect(entry).toEqual(['inner.store', { instance: 'inner.db', port: 'store' }]);
    const second = inc.compile(new MemoryHost({ 'main.mcl': main(2), 'inner.mcl': inner }), options);
    expect(second.diagnostics.map((d) => d.message)).toEqual([]);
    expect(flats(inc).stats.reused).toBeGreaterThan(0);
    expect(flats(inc).lastExports.get('main.Main')!.entries[0]).toBe(entry);
  });
});
