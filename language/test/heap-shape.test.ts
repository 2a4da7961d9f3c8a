// How V8 stores the syntax tree's offsets. A `{ start, end }` object holds its
// offsets as small integers only as long as nothing in the process ever stores
// another kind of number in an object of the same shape: one boxed double (a
// NaN, or a -1 that V8 holds boxed) turns the field into a double field for
// good, and every span from then on carries a second heap object, which the
// collector copies with it (a tenth of the heap of a 10,000-component
// workspace's trees). Chevrotain's tokens of the grammar-recording phase were
// such a source; the parser's actions build no span from them (mkIdent, tokSpan).

import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { parse, walk, type Node } from '../src/index';

// V8's own test for a small integer, available once natives syntax is allowed; a function
// compiled from a string afterwards may use it.
setFlagsFromString('--allow-natives-syntax');
const isSmi = new Function('x', 'return %IsSmi(x)') as (x: unknown) => boolean;

const text = [
  'type T = { a: int(0..10), b?: list<string(max 8)>(max 4), c: enum { x, y } }',
  'protocol P { call go(T) -> { ok: bool }  send note({ t: string })  order (go | note)* }',
  'component C {',
  '  memory 64MiB',
  '  param n: int = 3',
  '  provide p: P',
  '  require q: P optional',
  '  restart on-failure max 3',
  '  program { exec ["/bin/sh", "-c", "x"]  env { A = "1" } }',
  '}',
  'system S { c = C { n = 4 }  d = C  connect c.q -> d.p { rate 5/s  timeout 2s } }',
].join('\n');

describe('the syntax tree in memory', () => {
  it('holds every span offset as a small integer', () => {
    const { file, diagnostics } = parse(text, 'shape.mcl');
    expect(diagnostics).toEqual([]);
    let spans = 0;
    const boxed: string[] = [];
    walk(file, (n: Node) => {
      spans++;
      if (!isSmi(n.span.start) || !isSmi(n.span.end)) boxed.push(`${n.kind} ${n.span.start}..${n.span.end}`);
    });
    expect(spans).toBeGreaterThan(50);
    expect(boxed).toEqual([]);
  });
});
