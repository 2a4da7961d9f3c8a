// Exhaustive comment placement: a comment (line and block) inserted at every
// token boundary of every well-formed standard library module and example
// must survive formatting, the output must parse to the same tree, and
// formatting the output again must change nothing. A formatter that drops,
// duplicates or moves a comment on every run fails here.

import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parse, tokenize } from '@mcl/language';
import { formatMcl } from '../src/index';

const repo = join(__dirname, '..', '..');

// Several thousand formats per test: generous timeouts for a loaded machine.

function mclFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...mclFiles(p));
    else if (name.endsWith('.mcl')) out.push(p);
  }
  return out;
}

function hasErrors(text: string): boolean {
  return parse(text, 'x.mcl').diagnostics.some((d) => d.severity === 'error');
}

/** The tree without positions or comments: what formatting must preserve. */
function shape(text: string): string {
  const { file } = parse(text, 'x.mcl');
  return JSON.stringify(file, (key, value) => (key === 'span' || key === 'comments' ? undefined : value));
}

function commentTexts(text: string): string[] {
  return parse(text, 'x.mcl')
    .file.comments.map((c) => c.text.trimEnd())
    .sort();
}

// The fixture `every-construct.mcl` has every production of the grammar, so every position a comment may take.
const everyConstruct = join(__dirname, 'fixtures', 'every-construct.mcl');
const files = [everyConstruct, join(__dirname, 'fixtures', 'messy.mcl'), ...mclFiles(join(repo, 'stdlib')), ...mclFiles(join(repo, 'examples'))].filter(
  (p) => !hasErrors(readFileSync(p, 'utf8')),
);

type Input = { at: number; kind: string; text: string };

/**
 * Every input: the file with one comment inserted just before one of its
 * tokens (and at the end); with `pairs`, a second line comment before the
 * next token as well, where two comments compete for the same output line.
 */
function inputs(text: string, pairs = false): Input[] {
  const offsets = tokenize(text).map((t) => t.span.start);
  offsets.push(text.length);
  const out: Input[] = [];
  for (const [i, at] of offsets.entries()) {
    for (const [kind, comment] of [['block', '/* inserted */ '], ['line', '// inserted\n']]) {
      if (!pairs) out.push({ at, kind, text: text.slice(0, at) + comment + text.slice(at) });
      else {
        const next = offsets[i + 1] ?? text.length;
        out.push({ at, kind: `${kind} and line`, text: text.slice(0, at) + comment + text.slice(at, next) + '// second\n' + text.slice(next) });
      }
    }
  }
  return out;
}

async function check(original: string, inputs: Input[], printWidth?: number): Promise<string[]> {
  const failures: string[] = [];
  let checked = 0;
  for (const input of inputs) {
    // Comments may stand between any two tokens (spec/grammar.ebnf), so every input must parse.
    if (hasErrors(input.text)) {
      failures.push(`${input.kind} comment at offset ${input.at}: the input does not parse`);
      continue;
    }
    checked++;
    const where = `${input.kind} comment at offset ${input.at} (${JSON.stringify(original.slice(input.at, input.at + 20))})`;
    let once: string;
    try {
      once = await formatMcl(input.text, { printWidth });
    } catch (e) {
      failures.push(`${where}: ${(e as Error).message.split('\n')[0]}`);
      continue;
    }
    if (hasErrors(once)) failures.push(`${where}: output does not parse`);
    else if (shape(once) !== shape(input.text)) failures.push(`${where}: the tree changed`);
    else if (JSON.stringify(commentTexts(once)) !== JSON.stringify(commentTexts(input.text))) failures.push(`${where}: comments changed`);
    else if ((await formatMcl(once, { printWidth })) !== once) failures.push(`${where}: not idempotent`);
  }
  if (checked === 0) failures.push('no input checked');
  return failures;
}

describe('comments at every token boundary', () => {
  it('finds files to check', () => {
    expect(files.length).toBeGreaterThan(10);
  });

  for (const p of files) {
    it(`keeps every comment in ${relative(repo, p)}`, async () => {
      const original = readFileSync(p, 'utf8');
      expect((await check(original, inputs(original))).slice(0, 20)).toEqual([]);
    }, 300_000);
  }

  it('keeps every comment at a narrow print width, where blocks and lists break', async () => {
    const original = readFileSync(everyConstruct, 'utf8');
    expect((await check(original, inputs(original), 30)).slice(0, 20)).toEqual([]);
  }, 300_000);

  it('keeps two comments apart where both would end the same output line', async () => {
    const original = readFileSync(everyConstruct, 'utf8');
    expect((await check(original, inputs(original, true))).slice(0, 20)).toEqual([]);
  }, 300_000);
});
