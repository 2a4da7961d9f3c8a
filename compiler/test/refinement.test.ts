// Protocol refinement: a required port may be wired to a provider of another
// protocol when its protocol refines the provider's (compiler/src/types/refine.ts).
// Each refusal is one MCL0404 at the connect, saying the first reason.

import { describe, expect, it } from 'vitest';
import { codes, compileText } from './helpers';

const PROGRAM = 'program { exec ["/bin/true"] }';

function wire(full: string, view: string, types = '') {
  return compileText(`
type Key = string(1..16)
type Value = { v: int(0..100), note?: string }
${types}
protocol Full { ${full} }
protocol View { ${view} }
component P { memory 96MiB provide port: Full ${PROGRAM} }
component R { memory 96MiB require port: View ${PROGRAM} }
system Main { p = P  r = R  connect r.port -> p.port }
`);
}

function problem(full: string, view: string, types = ''): string {
  const r = wire(full, view, types);
  expect(codes(r)).toEqual(['MCL0404']);
  return r.diagnostics[0].message.replace(/^.*which it does not refine: /, '');
}

const FULL = 'call get(Key) -> Value  call put({ k: Key, v: Value })  send log(string)  notify changed(Key)';

describe('protocol refinement', () => {
  it('accepts a subset of the operations with the same types, and gives the channel the narrower protocol', () => {
    const r = wire(FULL, 'call get(Key) -> Value  notify changed(Key)');
    expect(r.diagnostics).toEqual([]);
    const [ch] = r.plan!.channels;
    expect(ch.protocol).toBe('main.View');
    expect(ch.ops.map((o) => o.name)).toEqual(['changed', 'get']);
  });

  it('accepts narrower requests and wider responses, structurally', () => {
    const r = wire(FULL, 'call get(string(1..8)) -> { v: int, note?: string }  notify changed(string)');
    expect(r.diagnostics).toEqual([]);
  });

  it('refuses an operation the provider lacks, or of another kind', () => {
    expect(problem(FULL, 'call drop(Key)  notify changed(Key)')).toBe('`View` has the operation `drop`, which `Full` does not');
    expect(problem(FULL, 'send get(Key)  notify changed(Key)')).toBe('`get` is a `send` in `View` but a `call` in `Full`');
  });

  it('refuses to drop a notification the provider may send', () => {
    expect(problem(FULL, 'call get(Key) -> Value')).toBe('`Full` may notify `changed`, which `View` does not have');
  });

  it('refuses requests the provider would not accept and responses the requirer would not', () => {
    expect(problem(FULL, 'call get(string) -> Value  notify changed(Key)')).toBe('the request of `get` allows lengths .. where 1..16 is required');
    expect(problem(FULL, 'call get(Key) -> { v: int(0..10), note?: string }  notify changed(Key)')).toBe('the response of `get`.v allows 0..100 where 0..10 is required');
    expect(problem(FULL, 'call get(Key) -> { v: int(0..100) }  notify changed(Key)')).toBe('the response of `get`.note is not a field on the other side');
    expect(problem(FULL, 'call get(Key) -> Value  notify changed(string(1..8))')).toBe('the notification of `changed` allows lengths 1..16 where 1..8 is required');
    expect(problem(FULL, 'call put({ k: Key, v: Value, extra?: int })  notify changed(Key)')).toBe('the request of `put`.extra is not a field on the other side');
  });

  it('compares enums, unions and int widths in the right direction', () => {
    const types = 'type E = enum { a, b }  type E2 = enum { a, b, c }';
    expect(wire('call f(E) -> E2', 'call f(E) -> E2', types).diagnostics).toEqual([]);
    expect(problem('call f(E) -> E', 'call f(E2) -> E', types)).toBe('the request of `f` has the member `c`, which the other side does not');
    expect(wire('call f(int64) -> int', 'call f(int(0..5)) -> int64', types).diagnostics).toEqual([]);
    expect(problem('call f(int) -> int', 'call f(int64) -> int', types)).toBe('the request of `f` is `int64` on one side and `int` on the other');
  });

  it("requires the provider's order to accept every sequence the refined order accepts", () => {
    const full = 'call open(Key)  call get(Key) -> Value  call put(Value)  call close  order (open (get | put)* close)*';
    expect(wire(full, 'call open(Key)  call get(Key) -> Value  call close  order (open get* close)*').diagnostics).toEqual([]);
    expect(wire(full, 'call open(Key)  call get(Key) -> Value  call close  order open get close').diagnostics).toEqual([]);
    expect(problem(full, 'call get(Key) -> Value')).toBe("`View`'s order allows `get`, which `Full`'s order refuses");
    expect(problem(full, 'call open(Key)  call get(Key) -> Value  call close  order open get* (close | open)')).toBe(
      "`View`'s order allows `open`, `open`, which `Full`'s order refuses",
    );
    expect(problem(full, 'call open(Key)  call get(Key) -> Value  order open get*')).toBe("`View`'s order may stop after `open`, where `Full`'s order is not complete");
  });

  it('still refuses unrelated protocols with the reason', () => {
    const r = compileText(`
import std.http.{Http}
protocol Other { call ping }
component P { memory 96MiB provide port: Http ${PROGRAM} }
component R { memory 96MiB require port: Other ${PROGRAM} }
system Main { p = P  r = R  connect r.port -> p.port }
`);
    expect(r.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual([
      'MCL0404 protocol mismatch: `r.port` requires `main.Other` but `p.port` provides `std.http.Http`, which it does not refine: `Other` has the operation `ping`, which `Http` does not',
    ]);
  });
});
