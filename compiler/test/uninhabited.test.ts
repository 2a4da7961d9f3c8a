// Types without a finite value (MCL0308): which declarations are reported,
// found by a fixed point over every type body of the workspace, also when an
// incremental compile takes most of those bodies over from the last one.

import { describe, expect, test } from 'vitest';
import { compile, IncrementalCompiler, type CompileOptions } from '../src/index';
import { MemoryHost } from './helpers';

/** The names of the types reported as having no finite value, in the diagnostics' order. */
function uninhabited(r: { diagnostics: { code: string; message: string }[] }): string[] {
  return r.diagnostics.filter((d) => d.code === 'MCL0308').map((d) => /type `(\w+)`/.exec(d.message)![1]);
}

// `P` needs `Q`, declared after it, so it is found inhabited only on a second pass; `H` is inhabited
// through its variant without a type, `D` through its optional field, `L` because a list may be empty.
const TYPES = [
  'type P = { q: Q }',
  'type Q = { n: int }',
  'type A = { b: B }',
  'type B = { c: C }',
  'type C = { a: A }',
  'type D = { a?: A }',
  'type E = { d: D, p: P }',
  'type F = G',
  'type G = F',
  'type H = union { x: A, y }',
  'type I = union { x: A }',
  'type L = { items: list<A> }',
  '',
].join('\n');

describe('types without a finite value', () => {
  test('are the declarations on a cycle of required fields or aliases, and those needing one, not those reached by a later pass', () => {
    const r = compile(new MemoryHost({ 'main.mcl': TYPES }), { entries: ['main.mcl'], mclcVersion: 'test' });
    expect(uninhabited(r)).toEqual(['A', 'B', 'C', 'F', 'G', 'I']);
    expect(r.diagnostics.find((d) => d.message.includes('`F`'))!.message).toBe('type `F` is defined only in terms of itself');
  });

  test('are the same in an incremental compile that takes the other modules\' bodies over', () => {
    const other = 'type Node = { next: Node }\ntype Ok = { n: int }\n';
    const files = (main: string) => ({ 'main.mcl': main, 'lib/other.mcl': other });
    const options: CompileOptions = { entries: ['main.mcl', 'lib/other.mcl'], mclcVersion: 'test' };
    const inc = new IncrementalCompiler();
    const edits = [TYPES, 'type P = { q: Q }\ntype Q = { n: int }\n', TYPES.replace('type C = { a: A }', 'type C = { a?: A }'), TYPES];
    inc.compile(new MemoryHost(files('type Z = { n: int }\n')), options);
    for (const main of edits) {
      const got = inc.compile(new MemoryHost(files(main)), options);
      const full = compile(new MemoryHost(files(main)), options);
      expect(uninhabited(got)).toEqual(uninhabited(full));
      expect(uninhabited(got)).toContain('Node');
    }
    expect(uninhabited(compile(new MemoryHost(files(edits[2])), options))).toEqual(['Node', 'F', 'G']);
  });
});
