// The written grammar and syntax reference stay in step with the implementation:
// every keyword is in the grammar, every syntax code is documented.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CONTEXTUAL_KEYWORDS, RESERVED_WORDS, syntaxDiagnosticInfos } from '../src/index';

const spec = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'spec');
const grammar = readFileSync(join(spec, 'grammar.ebnf'), 'utf8');
const syntax = readFileSync(join(spec, 'syntax.md'), 'utf8');

describe('spec/grammar.ebnf and spec/syntax.md', () => {
  it('name every reserved word and contextual keyword', () => {
    const missing = [...RESERVED_WORDS, ...CONTEXTUAL_KEYWORDS].filter((w) => !grammar.includes(`'${w}'`));
    expect(missing).toEqual([]);
  });

  it('document every syntax diagnostic code', () => {
    const missing = syntaxDiagnosticInfos.map((i) => i.code).filter((c) => !syntax.includes(`| ${c} |`));
    expect(missing).toEqual([]);
  });
});
