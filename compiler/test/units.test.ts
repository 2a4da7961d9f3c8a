// Unit tests of the small pure pieces: the order automaton against a
// brute-force matcher, edit-distance suggestions, paths.

import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import type { OrderExpr } from '@mcl/language';
import { compileOrder } from '../src/types/dfa';
import { didYouMean, editDistance } from '../src/util/suggest';
import { isSafeRelativePath, joinRelative, moduleFile, modulePathOfFile } from '../src/resolve/load';

const S = { start: 0, end: 0 };
const op = (name: string): OrderExpr => ({ kind: 'OrderOp', name: { kind: 'Ident', name, span: S }, span: S });
const seq = (...items: OrderExpr[]): OrderExpr => ({ kind: 'OrderSeq', items, span: S });
const alt = (...options: OrderExpr[]): OrderExpr => ({ kind: 'OrderAlt', options, span: S });
const rep = (expr: OrderExpr, o: '*' | '+' | '?'): OrderExpr => ({ kind: 'OrderRepeat', expr, op: o, span: S });

/** Does the expression match the whole word? (backtracking reference semantics) */
function matches(e: OrderExpr, word: string[]): boolean {
  const ends = (x: OrderExpr, i: number): Set<number> => {
    switch (x.kind) {
      case 'OrderOp':
        return new Set(word[i] === x.name.name ? [i + 1] : []);
      case 'OrderSeq': {
        let cur = new Set([i]);
        for (const it of x.items) {
          const next = new Set<number>();
          for (const j of cur) for (const k of ends(it, j)) next.add(k);
          cur = next;
        }
        return cur;
      }
      case 'OrderAlt': {
        const out = new Set<number>();
        for (const o of x.options) for (const k of ends(o, i)) out.add(k);
        return out;
      }
      case 'OrderRepeat': {
        const out = new Set<number>(x.op === '+' ? [] : [i]);
        let frontier = new Set([i]);
        const seen = new Set<number>();
        for (let n = 0; n <= word.length && frontier.size; n++) {
          const next = new Set<number>();
          for (const j of frontier) for (const k of ends(x.expr, j)) if (!seen.has(k)) { next.add(k); }
          for (const k of next) { out.add(k); seen.add(k); }
          if (x.op === '?') break;
          frontier = next;
        }
        return out;
      }
    }
  };
  return ends(e, 0).has(word.length);
}

function run(dfa: NonNullable<ReturnType<typeof compileOrder>>, word: string[]): boolean {
  let s = 0;
  for (const w of word) {
    const t = dfa.transitions[s]?.[w];
    if (t === undefined) return false;
    s = t;
  }
  return dfa.accepting.includes(s);
}

describe('order automaton', () => {
  test('blob order: open write* close, repeated', () => {
    const e = rep(seq(op('open'), rep(op('write'), '*'), op('close')), '*');
    const dfa = compileOrder(e, ['open', 'write', 'close'])!;
    expect(dfa).toEqual({ transitions: [{ open: 1 }, { close: 0, write: 1 }], accepting: [0] });
  });

  test('operations removed by `allow` lose their transitions', () => {
    const e = rep(alt(op('a'), op('b')), '*');
    expect(compileOrder(e, ['a'])).toEqual({ transitions: [{ a: 0 }], accepting: [0] });
  });

  const ops = ['a', 'b', 'c'];
  const exprArb: fc.Arbitrary<OrderExpr> = fc.letrec<{ e: OrderExpr }>((tie) => ({
    e: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constantFrom(...ops).map(op),
      fc.array(tie('e'), { minLength: 1, maxLength: 3 }).map((xs) => seq(...xs)),
      fc.array(tie('e'), { minLength: 1, maxLength: 3 }).map((xs) => alt(...xs)),
      fc.tuple(tie('e'), fc.constantFrom<'*' | '+' | '?'>('*', '+', '?')).map(([x, o]) => rep(x, o)),
    ),
  })).e;

  test('the automaton accepts exactly the words the expression matches', () => {
    fc.assert(
      fc.property(exprArb, fc.array(fc.array(fc.constantFrom(...ops), { maxLength: 5 }), { minLength: 1, maxLength: 12 }), (e, words) => {
        const dfa = compileOrder(e, ops);
        if (!dfa) return;
        for (const w of words) expect(run(dfa, w)).toBe(matches(e, w));
      }),
      { numRuns: 400, seed: 3 },
    );
  });

  test('equal languages give identical automata', () => {
    const x = compileOrder(rep(alt(op('a'), op('b')), '*'), ops);
    const y = compileOrder(rep(seq(rep(op('a'), '*'), rep(op('b'), '*')), '*'), ops);
    expect(x).toEqual(y);
  });
});

describe('order automaton size', () => {
  const ab = () => alt(op('a'), op('b'));
  const tail = (n: number) => seq(rep(ab(), '*'), op('a'), ...Array.from({ length: n }, ab));

  test('the 4,096-state limit applies to the minimal automaton, not the subset construction', () => {
    // `(a|b)* a (a|b){12}` needs 8,192 states however it is built: too complex.
    expect(compileOrder(tail(12), ['a', 'b'])).toBeUndefined();
    // Its union with `(a|b)*` is every word: the subset construction still visits about 8,192
    // states, but the minimal automaton has one.
    expect(compileOrder(alt(tail(12), rep(ab(), '*')), ['a', 'b'])).toEqual({ accepting: [0], transitions: [{ a: 0, b: 0 }] });
  });
});

describe('suggestions and paths', () => {
  test('edit distance and did-you-mean', () => {
    expect(editDistance('strng', 'string')).toBe(1);
    expect(editDistance('ab', 'ba')).toBe(1);
    expect(didYouMean('Adress', ['Address', 'User'])).toBe('did you mean `Address`?');
    expect(didYouMean('zzz', ['Address'])).toBeUndefined();
  });

  test('module paths map to files and never escape', () => {
    expect(moduleFile('a.b')).toBe('a/b.mcl');
    expect(moduleFile('std.http')).toBe('std:http');
    expect(moduleFile('a..b')).toBeUndefined();
    expect(moduleFile('a.b-c')).toBeUndefined();
    expect(modulePathOfFile('shop/types.mcl')).toBe('shop.types');
    expect(modulePathOfFile('../x.mcl')).toBeUndefined();
    expect(isSafeRelativePath('a/../b')).toBe(false);
    expect(isSafeRelativePath('/etc/passwd')).toBe(false);
    expect(isSafeRelativePath('C:/x')).toBe(false);
    expect(joinRelative('a/b', '../c.sh')).toBe('a/c.sh');
    expect(joinRelative('a', '../../c.sh')).toBeUndefined();
    expect(joinRelative('', 'x\0y')).toBeUndefined();
  });
});

describe('purity', () => {
  test('only node-host.ts imports Node built-ins, and the index does not import it', async () => {
    const { readdirSync, readFileSync, statSync } = await import('node:fs');
    const { join } = await import('node:path');
    const src = join(__dirname, '..', 'src');
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const f of readdirSync(dir)) {
        const p = join(dir, f);
        if (statSync(p).isDirectory()) walk(p);
        else if (f.endsWith('.ts') && f !== 'node-host.ts' && /from ['"](node:|fs['"]|path['"]|crypto['"])/.test(readFileSync(p, 'utf8'))) offenders.push(p);
      }
    };
    walk(src);
    expect(offenders).toEqual([]);
    expect(readFileSync(join(src, 'index.ts'), 'utf8')).not.toMatch(/from ['"][^'"]*node-host/);
  });
});
