// `mclc fmt` against the real Prettier CLI with the plugin bundle: comments in
// ordinary places survive, a formatted file stays formatted, and both read
// the same configuration files (`.prettierrc`, `.editorconfig`).

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSyntaxError } from '../src/commands/fmt';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const bundle = join(repo, 'cli/dist/mclc.mjs');
const pluginBundle = join(repo, 'prettier-plugin/dist/index.mjs');
const prettierBin = join(repo, 'node_modules/prettier/bin/prettier.cjs');
const tmp = mkdtempSync(join(tmpdir(), 'mclc-fmt-'));

beforeAll(async () => {
  const sources = ['prettier-plugin/src/index.ts', 'prettier-plugin/src/printer.ts', 'cli/src/commands/fmt.ts'].map((p) => statSync(join(repo, p)).mtimeMs);
  const built = [bundle, pluginBundle].map((p) => (existsSync(p) ? statSync(p).mtimeMs : 0));
  if (Math.min(...built) < Math.max(...sources)) await execa('node', [join(repo, 'scripts/build.mjs')], { cwd: repo });
}, 120_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function mclc(args: string[], cwd: string) {
  const r = await execa('node', [bundle, ...args], { cwd, reject: false, env: { NO_COLOR: '1' } });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

async function prettier(args: string[], cwd: string) {
  const r = await execa('node', [prettierBin, '--plugin', pluginBundle, ...args], { cwd, reject: false });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

function workspace(name: string, files: Record<string, string>): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const [p, text] of Object.entries(files)) writeFileSync(join(dir, p), text);
  return dir;
}

const commented = `component C {
  memory 64MiB
  restart /* why */ always
  program {
    env { A = "x" /* the one setting */ }
  }
}

protocol P {
  call get(int) -> int
  // The order: get, any number of times.
  order get*
}

system S {
  c = C
  policy {
    exposed only [ /* nothing is exposed */ ]
  }
}
`;

describe('mclc fmt', () => {
  it('formats comments in every ordinary place, keeps them, and the result passes --check', async () => {
    const ws = workspace('comments', { 'a.mcl': commented });
    const first = await mclc(['fmt', '.'], ws);
    expect(first.stderr).not.toContain('error');
    expect(first.code).toBe(0);
    const out = readFileSync(join(ws, 'a.mcl'), 'utf8');
    for (const c of ['/* why */', '/* the one setting */', '// The order: get, any number of times.', '/* nothing is exposed */']) expect(out).toContain(c);
    // The comment line above `order` stays above it.
    expect(out).toContain('  // The order: get, any number of times.\n  order get*\n');
    expect((await mclc(['fmt', '--check', '.'], ws)).code).toBe(0);
    expect((await prettier(['--check', 'a.mcl'], ws)).code).toBe(0);
  });

  it('tells a syntax error from a formatter bug', () => {
    const syntax = Object.assign(new SyntaxError('MCL0101: unexpected'), { loc: { start: { line: 1, column: 1 } } });
    expect(isSyntaxError(syntax)).toBe(true);
    expect(isSyntaxError(new Error('Comment "x" was not printed'))).toBe(false);
    expect(isSyntaxError(new TypeError("Cannot read properties of undefined (reading 'trim')"))).toBe(false);
  });
});

describe('one configuration for mclc fmt and prettier', () => {
  const source = 'component C { memory 64MiB; program { exec ["/bin/a-long-program-name", "--with", "arguments"] } }\n';

  for (const [name, files] of [
    ['editorconfig', { '.editorconfig': 'root = true\n[*.mcl]\nindent_style = space\nindent_size = 4\nmax_line_length = 60\n' }],
    ['prettierrc', { '.prettierrc': '{ "useTabs": true, "printWidth": 50 }\n' }],
    ['both', { '.editorconfig': 'root = true\n[*]\nindent_size = 8\n', '.prettierrc': '{ "tabWidth": 3 }\n' }],
    ['overrides', { '.prettierrc': '{ "overrides": [{ "files": "*.mcl", "options": { "tabWidth": 4, "printWidth": 40 } }] }\n' }],
  ] as const) {
    it(`formats as prettier does with ${name}`, async () => {
      const ws = workspace(`config-${name}`, { ...files, 'a.mcl': source, 'b.mcl': source });
      expect((await prettier(['--write', 'a.mcl'], ws)).code).toBe(0);
      expect((await mclc(['fmt', 'b.mcl'], ws)).code).toBe(0);
      const a = readFileSync(join(ws, 'a.mcl'), 'utf8');
      expect(readFileSync(join(ws, 'b.mcl'), 'utf8')).toBe(a);
      expect(a).not.toBe(source);
      // Each accepts what the other wrote.
      expect((await mclc(['fmt', '--check', 'a.mcl'], ws)).code).toBe(0);
      expect((await prettier(['--check', 'b.mcl'], ws)).code).toBe(0);
    });
  }

  it('uses two spaces and width 100 without configuration files', async () => {
    const ws = workspace('config-none', { 'a.mcl': source });
    expect((await mclc(['fmt', 'a.mcl'], ws)).code).toBe(0);
    expect(readFileSync(join(ws, 'a.mcl'), 'utf8')).toBe(
      'component C {\n  memory 64MiB\n  program { exec ["/bin/a-long-program-name", "--with", "arguments"] }\n}\n',
    );
  });
});
