// The extension's VS Code-independent parts: locating the server and the
// CLI, running `mclc graph`, and the graph webview page.

import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { findCli, graphHtml, graphSvg, resolveServerPath } from '../src/tools';

const dir = mkdtempSync(join(tmpdir(), 'mcl-ext-'));
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cliBundle = join(repo, 'cli', 'dist', 'mclc.mjs');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('extension tools', () => {
  it('uses the bundled server unless a path is configured', () => {
    expect(resolveServerPath('', '/ext')).toBe(join('/ext', 'dist', 'server.cjs'));
    expect(resolveServerPath('/custom/server.cjs', '/ext')).toBe('/custom/server.cjs');
  });

  it('finds the CLI from the setting, a checkout, or PATH', () => {
    expect(findCli('/opt/mclc.mjs', [], '/usr/bin/node')).toEqual({ command: '/usr/bin/node', args: ['/opt/mclc.mjs'] });
    expect(findCli('/opt/mclc', [], '/usr/bin/node')).toEqual({ command: '/opt/mclc', args: [] });
    const checkout = join(dir, 'checkout');
    mkdirSync(join(checkout, 'cli', 'dist'), { recursive: true });
    writeFileSync(join(checkout, 'cli', 'dist', 'mclc.mjs'), '');
    expect(findCli('', [join(dir, 'nothing'), checkout], '/usr/bin/node')).toEqual({ command: '/usr/bin/node', args: [join(checkout, 'cli', 'dist', 'mclc.mjs')] });
    expect(findCli(undefined, [join(dir, 'nothing')])).toEqual({ command: 'mclc', args: [] });
  });

  it('runs `mclc graph --format svg` and returns the SVG', async () => {
    const fake = join(dir, 'fake-mclc.mjs');
    writeFileSync(
      fake,
      `const a = process.argv.slice(2);
if (a[0] !== 'graph' || a[2] !== '--format' || a[3] !== 'svg') { console.error('bad args ' + a.join(' ')); process.exit(1); }
process.stdout.write('<?xml version="1.0"?>\\n<svg xmlns="http://www.w3.org/2000/svg"><text>' + a[1] + '</text></svg>\\n');`,
    );
    const r = await graphSvg({ command: process.execPath, args: [fake] }, 'shop.mcl', dir);
    expect(r.svg).toMatch(/^<svg/);
    expect(r.svg).toContain('shop.mcl');
  });

  it('reports a failing CLI with its exit code and message', async () => {
    const failing = join(dir, 'failing.sh');
    writeFileSync(failing, '#!/bin/sh\necho "error: no root system" >&2\nexit 1\n');
    chmodSync(failing, 0o755);
    const r = await graphSvg({ command: failing, args: [] }, 'x.mcl', dir);
    expect(r.svg).toBeUndefined();
    expect(r.error).toMatch(/exit 1/);
    expect(r.error).toMatch(/no root system/);
    const missing = await graphSvg({ command: join(dir, 'does-not-exist'), args: [] }, 'x.mcl', dir);
    expect(missing.error).toMatch(/mcl\.cliPath/);
  });

  // The CLI bundle comes from `npm run build` (which `npm test` runs first).
  it.skipIf(!existsSync(cliBundle))('draws the webstack example with the real CLI found in the checkout', async () => {
    const cli = findCli('', [repo]);
    expect(cli.args).toEqual([cliBundle]);
    const r = await graphSvg(cli, join(repo, 'examples', 'webstack', 'webstack.mcl'), repo);
    expect(r.error).toBeUndefined();
    expect(r.svg).toMatch(/^<svg/);
    expect(r.svg).toContain('auth');
    expect(graphHtml(r.svg!, 'Graph')).toContain('<svg');
  });

  it.skipIf(!existsSync(cliBundle))('draws a composition that breaks its policies, the violation in red', async () => {
    const r = await graphSvg(findCli('', [repo]), join(repo, 'examples', 'broken', 'flow.mcl'), repo);
    expect(r.error).toBeUndefined();
    expect(r.svg).toMatch(/^<svg/);
    expect(r.svg).toContain('stroke="red"');
  });

  it('builds a webview page without scripts', () => {
    const html = graphHtml('<svg><script>alert(1)</script><g/></svg>', 'Graph: <a>');
    expect(html).toContain("default-src 'none'");
    expect(html).not.toContain('<script>');
    expect(html).toContain('<g/>');
    expect(html).toContain('Graph: &lt;a&gt;');
  });
});
