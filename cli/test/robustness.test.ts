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

const VALID = 'component A {\n  memory 96MiB\n  program { script "a.sh" }\n}\n\nsystem S {\n  a = A\n}\n';

describe('diagnostics on long lines', () => {
  // 4,000 mistakes on one 112 KB line: `validate --json` printed 450 MB in 31 s; a 1.2 MB line exited 70.
  const long = 'component A { memory 96MiB }\n' + 'component B { memory 1MiB } '.repeat(4000) + '\n';

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
  const lib = { 'components.mcl': 'component A {\n  memory 96MiB\n  program { script "a.sh" }\n}\n', 'a.sh': 'true\n' };

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

describe('symbolic links in the workspace', () => {
  it('validate does not follow directory links: no hang on a loop, each file once, no walk of /', async () => {
    const ws = workspace({ 'd/a.mcl': VALID, 'd/a.sh': 'true\n' });
    symlinkSync('..', join(ws, 'd', 'loop'));
    symlinkSync('/', join(ws, 'd', 'root'));
    symlinkSync('loop', join(ws, 'd', 'again'));
    const r = await mclc(['validate', '.'], ws, 20_000);
    expect(r.timedOut).toBe(false);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('No problems found in 1 file.\n');
  });

  it('fmt never writes outside the workspace through a link, and says so', async () => {
    const outside = workspace({ 'x.mcl': 'component   X {\n memory 96MiB\n}\n' });
    const ws = workspace({ 'y.mcl': 'component Y {\n  memory 96MiB\n}\n' });
    symlinkSync(join(outside, 'x.mcl'), join(ws, 'x.mcl'));
    const r = await mclc(['fmt', '.'], ws);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`x.mcl: error: not formatting it: it is a symbolic link to ${join(outside, 'x.mcl')}, outside the workspace`);
    expect(readFileSync(join(outside, 'x.mcl'), 'utf8')).toBe('component   X {\n memory 96MiB\n}\n');
    expect(lstatSync(join(ws, 'x.mcl')).isSymbolicLink()).toBe(true);
  });

  it('fmt formats a linked file inside the workspace through the link and keeps the link and the mode', async () => {
    const ws = workspace({ 'real/y.mcl': 'component   Y {\n memory 96MiB\n}\n' });
    execFileSync('chmod', ['640', join(ws, 'real', 'y.mcl')]);
    symlinkSync('real/y.mcl', join(ws, 'y.mcl'));
    const r = await mclc(['fmt', 'y.mcl'], ws);
    expect(r.code).toBe(0);
    expect(lstatSync(join(ws, 'y.mcl')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(ws, 'y.mcl'))).toBe('real/y.mcl');
    expect(readFileSync(join(ws, 'real', 'y.mcl'), 'utf8')).toBe('component Y {\n  memory 96MiB\n}\n');
    expect(statSync(join(ws, 'real', 'y.mcl')).mode & 0o777).toBe(0o640);
  });
});

describe('special and over-size files', () => {
  it('show refuses a device and a FIFO at once instead of reading forever', async () => {
    const ws = workspace({});
    execFileSync('mkfifo', [join(ws, 'pipe.plan')]);
    const zero = await mclc(['show', '/dev/zero'], ws, 10_000);
    expect(zero).toMatchObject({ code: 1, timedOut: false });
    expect(zero.stderr).toContain('error: /dev/zero is a character device, not a regular file; a plan file must be a regular file');
    const fifo = await mclc(['show', 'pipe.plan'], ws, 10_000);
    expect(fifo).toMatchObject({ code: 1, timedOut: false });
    expect(fifo.stderr).toContain('error: pipe.plan is a FIFO, not a regular file');
    const state = await mclc(['plan', '.', '--state', 'pipe.plan'], workspace({ 'a.mcl': VALID, 'a.sh': 'true\n' }), 10_000);
    expect(state.timedOut).toBe(false);
  });

  it('refuses a plan file over the limit with the limit in the message', async () => {
    const ws = workspace({});
    execFileSync('truncate', ['-s', '200M', join(ws, 'huge.plan')]);
    const r = await mclc(['show', 'huge.plan'], ws);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error: huge.plan is too large for a plan file: 200 MiB (209715200 bytes), more than the limit of 128 MiB');
  });

  it('says an over-size source is too large, not that it does not exist', async () => {
    const ws = workspace({});
    execFileSync('truncate', ['-s', '65M', join(ws, 'big.mcl')]);
    const r = await mclc(['validate', 'big.mcl'], ws);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('entry file `big.mcl` cannot be read: it is 65 MiB (68157440 bytes), more than the 64 MiB a source or program file may have');
    const f = await mclc(['fmt', 'big.mcl'], ws);
    expect(f.code).toBe(1);
    expect(f.stderr).toContain('big.mcl is too large for a source file');
  });

  it('validate and fmt report a FIFO named on the command line instead of blocking', async () => {
    const ws = workspace({});
    execFileSync('mkfifo', [join(ws, 'pipe.mcl')]);
    const v = await mclc(['validate', 'pipe.mcl'], ws, 10_000);
    expect(v).toMatchObject({ code: 1, timedOut: false });
    expect(v.stderr).toContain('cannot be read: it is a FIFO, not a regular file');
    const f = await mclc(['fmt', '--check', 'pipe.mcl'], ws, 10_000);
    expect(f).toMatchObject({ code: 1, timedOut: false });
    expect(f.stderr).toContain('1 of 1 could not be checked');
  });
});

describe('scripts/run-ts.mjs (npm run fuzz, the benchmarks)', () => {
  // `npm run fuzz` wrote its bundle into the source tree.
  it('bundles into a temporary directory, leaves nothing beside the entry point, and keeps import.meta.url beside it', async () => {
    const dir = workspace({ 'entry.ts': "import { fileURLToPath } from 'node:url';\nconsole.log(fileURLToPath(new URL('./', import.meta.url)));\n" });
    const r = await execa('node', [join(repo, 'scripts/run-ts.mjs'), join(dir, 'entry.ts')], { cwd: repo, reject: false });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim()).toBe(dir + '/');
    expect(execFileSync('ls', ['-A', dir], { encoding: 'utf8' })).toBe('entry.ts\n');
  });
});
