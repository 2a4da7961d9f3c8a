// The bundled `mclc` on hostile or odd workspaces: long lines, sources with
// no system, symbolic links (loops, links out of the workspace, links to
// files), special files (FIFOs, devices) and over-size files. Each case must
// end with a documented exit code and a message, in bounded time and output.

import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const bundle = join(repo, 'cli/dist/mclc.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'mclc-robust-'));

beforeAll(async () => {
  if (!existsSync(bundle)) await execa('node', [join(repo, 'scripts/build.mjs')], { cwd: repo });
}, 120_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function mclc(args: string[], cwd: string, timeout = 30_000) {
  const r = await execa('node', [bundle, ...args], { cwd, reject: false, timeout, env: { NO_COLOR: '1', CI: '1' }, stripFinalNewline: false });
  return { code: r.exitCode, stdout: r.stdout as string, stderr: r.stderr as string, timedOut: r.timedOut };
}

let n = 0;
function workspace(files: Record<string, string>): string {
  const dir = join(tmp, `ws${n++}`);
  mkdirSync(dir, { recursive: true });
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), text);
  }
  return dir;
}

const VALID = 'component A {\n  memory 64MiB\n  program { script "a.sh" }\n}\n\nsystem S {\n  a = A\n}\n';

describe('diagnostics on long lines', () => {
  // 4,000 mistakes on one 112 KB line: `validate --json` printed 450 MB in 31 s; a 1.2 MB line exited 70.
  const long = 'component A { memory 64MiB }\n' + 'component B { memory 1MiB } '.repeat(4000) + '\n';

  it('validate --json stays small and counts every error', async () => {
    const ws = workspace({ 'big.mcl': long });
    const r = await mclc(['validate', 'big.mcl', '--json'], ws);
    expect(r.code).toBe(1);
    expect(r.stdout.length).toBeLessThan(50_000);
    const doc = JSON.parse(r.stdout);
    expect(doc.error_count).toBe(4000);
    expect(doc.omitted.count).toBe(4000 - doc.diagnostics.length);
  });

  it('text and SARIF stay small too', async () => {
    const ws = workspace({ 'big.mcl': long });
    const text = await mclc(['validate', 'big.mcl'], ws);
    expect(text.code).toBe(1);
    expect(text.stderr.length).toBeLessThan(50_000);
    expect(text.stderr).toContain('more diagnostics not shown');
    expect(text.stderr).toContain('Found 4000 errors in 1 file.');
    const sarif = await mclc(['validate', 'big.mcl', '--format', 'sarif'], ws);
    expect(sarif.code).toBe(1);
    expect(sarif.stdout.length).toBeLessThan(200_000);
  });

  it('refuses a --max-diagnostics that is not a number', async () => {
    const ws = workspace({ 'a.mcl': VALID, 'a.sh': 'true\n' });
    const r = await mclc(['validate', '--max-diagnostics', 'lots'], ws);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--max-diagnostics "lots" is not a whole number');
  });
});

describe('sources with no system', () => {
  // `mclc plan components.mcl` on a library module crashed with exit 70 and a stack trace.
  const lib = { 'components.mcl': 'component A {\n  memory 64MiB\n  program { script "a.sh" }\n}\n', 'a.sh': 'true\n' };

  it('plan says there is nothing to plan and exits 1', async () => {
    const ws = workspace(lib);
    const r = await mclc(['plan', 'components.mcl'], ws);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error: nothing to plan: the sources declare no system');
    expect(r.stderr).not.toContain('internal error');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('plan --json prints the invalid document and exits 1', async () => {
    const ws = workspace(lib);
    const r = await mclc(['plan', 'components.mcl', '--json'], ws);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ valid: false, error_count: 0, diagnostics: [{ code: 'MCL0606' }] });
  });

  it('graph says there is nothing to draw and exits 1', async () => {
    const ws = workspace(lib);
    const r = await mclc(['graph', 'components.mcl'], ws);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error: nothing to graph: the sources declare no system');
    expect(r.stdout).toBe('');
  });
});
