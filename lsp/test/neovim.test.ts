// The language server in Neovim's built-in LSP client (Debian's `neovim`
// package, 0.7 or later), started headless as `mclc lsp`, as spec/editor.md
// tells Neovim users to set it up. Outside CI the test is skipped, with a
// note, when nvim is not installed; in CI (scripts/setup.sh installs it) it
// must run.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureServerBuilt, REPO } from './harness';

const nvimFound = spawnSync('nvim', ['--version'], { encoding: 'utf8' }).status === 0;
const inCi = !!process.env.CI;
if (!nvimFound && !inCi) {
  console.warn('lsp/test/neovim.test.ts: skipped, nvim is not installed (apt-get install -y neovim, or run scripts/setup.sh)');
}

const CLI = join(REPO, 'cli', 'dist', 'mclc.mjs');
const SOURCE = `import std.kv.{Kv}
import std.http.{Http}
component A {
  require db: Nope
  expose web: Http on tcp 8080
  restart /* why */ always
  program { env { A = "x" /* only one */ } }
}
system S {
  a = A { replicas 2 }
}

`;

describe.skipIf(!nvimFound && !inCi)('Neovim', () => {
  const ws = mkdtempSync(join(tmpdir(), 'mcl-nvim-'));
  let seen: {
    errors: string[];
    diagnostics: { lnum: number; message: string; code: string }[];
    hover: { kind: string; value: string } | string;
    completion: { label: string; insertText: string | null; insertTextFormat: number | null }[];
    symbols: { name: string }[];
    formatted: string;
    organized: string;
    signature: { label: string; active: string };
    lenses: string[];
    stopped: boolean;
  };

  beforeAll(async () => {
    if (!nvimFound) throw new Error('nvim is not installed, and CI must run this test: scripts/setup.sh installs Debian\'s neovim package');
    await ensureServerBuilt();
    if (!spawnSync(process.execPath, [CLI, '--version']).stdout?.length) await execa('node', [join(REPO, 'scripts/build.mjs')], { cwd: REPO });
    writeFileSync(join(ws, 'a.mcl'), SOURCE);
    const out = join(ws, 'out.json');
    const r = await execa('nvim', ['--headless', '--clean', '-n', '-c', `luafile ${join(__dirname, 'neovim', 'client.lua')}`], {
      env: { MCL_WS: ws, MCL_OUT: out, MCL_CLI: CLI, MCL_NODE: process.execPath, MCL_STDLIB: join(REPO, 'stdlib') },
      reject: false,
      timeout: 90_000,
      stdin: 'ignore',
    });
    seen = JSON.parse(readFileSync(out, 'utf8'));
    if (seen.errors.length) throw new Error(`nvim: ${seen.errors.join('; ')}\n${r.stderr}`);
  }, 120_000);
  afterAll(() => rmSync(ws, { recursive: true, force: true }));

  it('shows the diagnostics mclc gives', () => {
    expect(seen.diagnostics.length).toBeGreaterThan(0);
    expect(seen.diagnostics.some((d) => d.lnum === 3 && /Nope/.test(d.message))).toBe(true);
    expect(seen.diagnostics.some((d) => d.lnum === 0 && d.code === 'MCL0212')).toBe(true);
  });

  it('gets plain-text hovers and a flat outline', () => {
    const hover = typeof seen.hover === 'string' ? { kind: 'plaintext', value: seen.hover } : seen.hover;
    // Neovim 0.7 declares Markdown hovers; either way the text names the component.
    expect(hover.value).toMatch(/component (\w+\.)?A/);
    expect(seen.symbols.map((s) => s.name)).toContain('A');
  });

  it('gets no snippets, which it would insert literally', () => {
    expect(seen.completion.map((c) => c.label)).toContain('component');
    expect(seen.completion.filter((c) => c.insertTextFormat === 2 || /\$\{?\d|\0/.test(c.insertText ?? ''))).toEqual([]);
  });

  it('gets signature help, code lenses and organised imports', () => {
    expect(seen.signature.label).toMatch(/^a = A \{ single, replicas N, /);
    expect(seen.signature.active).toBe('replicas N');
    expect(seen.lenses).toEqual(['1 instance (2 VMs) · 0 channels', 'Show plan', '2 VMs · no channels']);
    expect(seen.organized.startsWith('import std.http.{Http}\ncomponent A {')).toBe(true);
  });

  it('formats the buffer, keeping every comment', () => {
    expect(seen.formatted).toContain('/* why */');
    expect(seen.formatted).toContain('/* only one */');
    expect(seen.formatted).toContain('  restart always /* why */\n');
  });

  it('stops the server cleanly', () => {
    expect(seen.stopped).toBe(true);
  });
});
