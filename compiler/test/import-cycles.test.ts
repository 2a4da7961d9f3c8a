// Import cycles (MCL0206): each is reported once, at the import that closes it
// in a walk of the modules in path order, with the other imports on it as
// related information.

import { expect, test } from 'vitest';
import { compileText } from './helpers';

test('a cycle through three modules is reported once, where the walk from the first module closes it, with the other imports related', () => {
  const r = compileText('import a.{A}\ntype M = A\n', {
    'a.mcl': 'import b.{B}\ntype A = B\n',
    'b.mcl': 'import c.{C}\ntype B = C\n',
    'c.mcl': 'import a.{A}\nimport d.{D}\ntype C = D\n',
    'd.mcl': 'type D = int\n',
  });
  const cycles = r.diagnostics.filter((d) => d.code === 'MCL0206');
  expect(cycles.map((d) => [d.file, d.message])).toEqual([['c.mcl', 'import cycle: a -> b -> c -> a']]);
  expect(cycles[0].related?.map((x) => [x.file, x.message])).toEqual([
    ['a.mcl', '`a` imports `b`'],
    ['b.mcl', '`b` imports `c`'],
  ]);
});
