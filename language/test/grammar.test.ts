import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LLkLookaheadStrategy } from 'chevrotain';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { McParser } from '../src/parser';
import { lex } from '../src/lexer';
import { parse } from '../src/index';
import { parseWith } from '../src/parse';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Every .mcl file of the repository's examples, standard library and language fixtures, broken ones included. */
function sources(): { path: string; text: string }[] {
  const out: { path: string; text: string }[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.mcl')) out.push({ path: p, text: readFileSync(p, 'utf8') });
    }
  };
  for (const d of ['examples', 'stdlib', 'language/test/fixtures']) walk(join(repo, d));
  return out;
}

afterEach(() => {
  vi.restoreAllMocks();
});

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

  it('builds no lookahead function when the parser is constructed, only when a decision is first reached', () => {
    const alternation = vi.spyOn(LLkLookaheadStrategy.prototype, 'buildLookaheadForAlternation');
    const optional = vi.spyOn(LLkLookaheadStrategy.prototype, 'buildLookaheadForOptional');
    const p = new McParser();
    expect(alternation).not.toHaveBeenCalled();
    expect(optional).not.toHaveBeenCalled();
    parseWith(p, 'system S { a = A }\n', 's.mcl');
    const built = alternation.mock.calls.length + optional.mock.calls.length;
    expect(built).toBeGreaterThan(0);
    // Each decision is built once: the same file again builds nothing more.
    parseWith(p, 'system S { a = A }\n', 's.mcl');
    expect(alternation.mock.calls.length + optional.mock.calls.length).toBe(built);
  });

  it('lookahead built on first use chooses as the one built up front: same trees and diagnostics for every source', () => {
    const lazy = new McParser();
    const eager = new McParser({ validate: true });
    const files = sources();
    expect(files.length).toBeGreaterThan(20);
    for (const { path, text } of files) {
      // Each file also cut short in the middle, so that recovery decisions are compared too.
      for (const t of [text, text.slice(0, Math.floor(text.length / 2))]) {
        expect(JSON.stringify(parseWith(lazy, t, path)), path).toBe(JSON.stringify(parseWith(eager, t, path)));
      }
    }
  });
});
