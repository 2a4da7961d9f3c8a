// Port arrays (`require shards: Kv[3]`), element connects (`r.shards[1]`) and
// fan-outs (`connect r.shards[*] -> [a.kv, b.kv, c.kv]`): each element is a
// port and a channel of its own in the plan and for every check.

import { describe, expect, it } from 'vitest';
import { codes, compileText } from './helpers';

const PROGRAM = 'program { exec ["/bin/true"] }';

const store = (wiring: string, extra = '') => `
import std.kv.{Kv}
labels { public < secret }
component Router { memory 96MiB require shards: Kv[3] ${PROGRAM} }
component Shard { memory 96MiB provide kv: Kv ${PROGRAM} }
system Store {
  r = Router
  s0 = Shard
  s1 = Shard
  s2 = Shard
${wiring}
${extra}
}
deploy Store
`;

const FAN = '  connect r.shards[*] -> [s0.kv, s1.kv, s2.kv] { rate 100/s }';

describe('port arrays', () => {
  it('give each element its own port, slot and channel, with the connect\'s attributes', () => {
    const r = compileText(store(FAN));
    expect(r.diagnostics).toEqual([]);
    const router = r.plan!.instances.find((i) => i.id === 'r')!;
    expect(router.ports.map((p) => [p.name, p.slot, p.protocol])).toEqual([
      ['shards.0', 1, 'std.kv.Kv'],
      ['shards.1', 2, 'std.kv.Kv'],
      ['shards.2', 3, 'std.kv.Kv'],
    ]);
    expect(r.plan!.channels.map((c) => [c.id, c.invariants.rate?.per_second])).toEqual([
      ['r.shards.0->s0.kv', 100],
      ['r.shards.1->s1.kv', 100],
      ['r.shards.2->s2.kv', 100],
    ]);
  });

  it('wire elements one by one, and name an unwired element as the source writes it', () => {
    const one = compileText(store('  connect r.shards[0] -> s0.kv\n  connect r.shards[1] -> s1.kv\n  connect r.shards[2] -> s2.kv'));
    expect(one.diagnostics).toEqual([]);
    expect(one.plan!.channels.map((c) => c.id)).toEqual(compileText(store(FAN)).plan!.channels.map((c) => c.id));
    const missing = compileText(store('  connect r.shards[0] -> s0.kv\n  connect r.shards[2] -> s2.kv'));
    expect(missing.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual(['MCL0406 `r.shards[1]` requires `std.kv.Kv` but nothing is connected to it']);
    expect(missing.diagnostics[0].hint).toContain('connect it to one of `s0.kv`, `s1.kv`, `s2.kv`');
    const twice = compileText(store('  connect r.shards[0] -> s0.kv\n  connect r.shards[0] -> s1.kv\n  connect r.shards[1] -> s1.kv\n  connect r.shards[2] -> s2.kv'));
    expect(twice.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual(['MCL0405 `r.shards[0]` is already connected: a required port has exactly one channel']);
  });

  it('report one error at the fault for each misuse, without unwired follow-ons', () => {
    const cases: [string, string][] = [
      ['  connect r.shards[*] -> [s0.kv, s1.kv]', 'MCL0147'],
      ['  connect r.shards[3] -> s0.kv', 'MCL0143'],
      ['  connect r.shards -> s0.kv', 'MCL0145'],
      ['  connect r.shards[*] -> s0.kv', 'MCL0142'],
      ['  connect r.shards[0] -> [s0.kv]', 'MCL0142'],
      ['  connect r.shards[-1] -> s0.kv', 'MCL0141'],
      [FAN.replace('s2.kv]', 's2.kv[0]]'), 'MCL0144'],
    ];
    for (const [wiring, code] of cases) expect([wiring, codes(compileText(store(wiring)))]).toEqual([wiring, [code]]);
    expect(codes(compileText(store(FAN).replace('Kv[3]', 'Kv[0]')))).toContain('MCL0140');
    expect(codes(compileText(store(FAN).replace('provide kv: Kv', 'provide kv: Kv[2]')))).toContain('MCL0146');
  });

  it('check the protocol per element', () => {
    const r = compileText(store(FAN).replace('component Shard {', 'protocol Other { call get(string) -> string }\ncomponent Odd { memory 96MiB provide kv: Other ' + PROGRAM + ' }\ncomponent Shard {').replace('s1 = Shard', 's1 = Odd'));
    expect(codes(r)).toEqual(['MCL0404']);
    expect(r.diagnostics[0].message).toContain('`r.shards[1]` requires `std.kv.Kv` but `s1.kv` provides `main.Other`');
  });

  it('let policies see every element as a channel of its own', () => {
    const noPath = compileText(store(FAN, '  policy { no path r -> s2 }'));
    expect(codes(noPath)).toEqual(['MCL0503']);
    expect(codes(compileText(store(FAN, '  policy { no path r -> s3 }').replace('s2 = Shard', 's2 = Shard\n  s3 = Shard')))).toEqual([]);
    const flow = compileText(store(FAN.replace('{ rate 100/s }', ''), '').replace('r = Router', 'r = Router { label secret }'));
    expect(codes(flow).filter((c) => c.startsWith('MCL05'))).not.toEqual([]);
  });

  it('export one element of an array from a subsystem', () => {
    const r = compileText(`
import std.kv.{Kv}
component Router { memory 96MiB require shards: Kv[2] ${PROGRAM} }
component Shard { memory 96MiB provide kv: Kv ${PROGRAM} }
system Inner { r = Router
  s = Shard
  connect r.shards[0] -> s.kv
  export out = r.shards[1] }
system Outer { i = Inner
  t = Shard
  connect i.out -> t.kv }
deploy Outer
`);
    expect(r.diagnostics).toEqual([]);
    expect(r.plan!.channels.map((c) => c.id)).toEqual(['i.r.shards.0->i.s.kv', 'i.r.shards.1->t.kv']);
  });
});
