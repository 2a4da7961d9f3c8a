import { describe, expect, it } from 'vitest';
import { McParser } from '../src/parser';
import { lex } from '../src/lexer';
import { parse } from '../src/index';

// The shared parser skips Chevrotain's grammar validations to start faster; this
// is where they run, so a grammar change that introduces an ambiguity, left
// recursion or an unreachable alternative fails here instead of misparsing later.
describe('grammar', () => {
  it('passes all of Chevrotain\'s grammar validations', () => {
    // Chevrotain throws "Parser Definition Errors detected" from the constructor when a validation fails.
    let p: McParser | undefined;
    expect(() => (p = new McParser({ validate: true }))).not.toThrow();
    expect((p as unknown as { definitionErrors: { message: string }[] }).definitionErrors.map((e) => e.message)).toEqual([]);
  });

  it('the unvalidated shared parser parses like a validated one', () => {
    const text = 'component A {\n  image std.busybox\n  memory 64MiB\n}\nsystem S { a = A }\n';
    const validated = new McParser({ validate: true });
    const { tokens } = lex(text, 'a.mcl');
    expect(tokens.length).toBeGreaterThan(0);
    validated.begin(tokens, 'a.mcl', text);
    const tree = validated.sourceFile();
    expect(validated.errors).toEqual([]);
    expect(JSON.stringify(tree.decls)).toBe(JSON.stringify(parse(text, 'a.mcl').file.decls));
  });
});
