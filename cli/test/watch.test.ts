// `mclc validate --watch`: each round's diagnostics equal a check from scratch
// of the files as they are, only what a change affects is checked again, files
// that appear, vanish or are imported later are noticed, and the exit code is
// the last round's. In-process with real files and real watchers, and once as
// the bundled binary interrupted with SIGINT.

import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { validateCommand } from '../src/commands/compile-commands';
import { ExitCode } from '../src/exit';
import { captureContext, type Captured } from './capture';

const repo = fileURLToPath(new URL('../../', import.meta.url));

interface RoundDoc {
  round?: number;
  valid?: boolean;
  error_count?: number;
  changed?: string[];
  modules?: { checked: number; taken_over: number };
  diagnostics?: { code: string; range: { filename: string } }[];
  error?: { message: string; hint?: string };
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mclc-watch-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `validate --watch --json` in-process; `next()` waits for the next line it prints. */
function watching(paths: string[], extra: Record<string, unknown> = {}) {
  const ctx: Captured = captureContext(dir);
  const stop = new AbortController();
  let seen = 0;
  const done = validateCommand(ctx, paths, { json: true, watch: true, ...extra }, stop.signal);
  const lines = () => ctx.stdout.split('\n').filter(Boolean);
  const next = async (): Promise<RoundDoc> => {
    const until = Date.now() + 10_000;
    while (lines().length <= seen) {
      if (Date.now() > until) throw new Error(`no round after ${seen}: ${ctx.stdout}${ctx.stderr}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return JSON.parse(lines()[seen++]) as RoundDoc;
  };
  return { ctx, next, stop: async () => (stop.abort(), done), count: () => lines().length };
}

/** What `mclc validate --json` says of the files as they are now, from scratch. */
async function fromScratch(paths: string[]): Promise<RoundDoc> {
  const ctx = captureContext(dir);
  await validateCommand(ctx, paths, { json: true });
  return JSON.parse(ctx.stdout) as RoundDoc;
}

const strip = (d: RoundDoc) => {
  const { round: _r, changed: _c, modules: _m, ...rest } = d as RoundDoc & { elapsed_ms?: number };
  delete (rest as { elapsed_ms?: number }).elapsed_ms;
  return rest;
};

const component = (name: string) => `component ${name} {\n  memory 64MiB\n}\n`;

describe('mclc validate --watch', () => {
  it('checks again after each change, only what it affects, with the result of a check from scratch', async () => {
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'a.mcl'), component('A'));
    writeFileSync(join(dir, 'sub/b.mcl'), component('B'));
    const w = watching(['.']);
    const first = await w.next();
    expect(first).toMatchObject({ round: 1, valid: true, changed: [] });
    expect(strip(first)).toEqual(await fromScratch(['.']));

    writeFileSync(join(dir, 'a.mcl'), 'component A {\n  memory 64MiB\n');
    const broken = await w.next();
    expect(broken).toMatchObject({ round: 2, valid: false, changed: ['a.mcl'] });
    expect(broken.diagnostics!.map((d) => d.code)).toEqual(['MCL0108']);
    // Only the edited module was checked again; the others were taken over.
    expect(broken.modules!.checked).toBe(1);
    expect(broken.modules!.taken_over).toBeGreaterThanOrEqual(2);
    expect(strip(broken)).toEqual(await fromScratch(['.']));

    // A file that appears in a folder the paths name is checked with the rest.
    writeFileSync(join(dir, 'sub/c.mcl'), component('C'));
    const added = await w.next();
    expect(added).toMatchObject({ round: 3, changed: ['sub/c.mcl'] });
    expect(strip(added)).toEqual(await fromScratch(['.']));

    // A component declared twice.
    writeFileSync(join(dir, 'a.mcl'), component('A') + component('A'));
    const clash = await w.next();
    expect(clash.valid).toBe(false);
    expect(strip(clash)).toEqual(await fromScratch(['.']));
    writeFileSync(join(dir, 'a.mcl'), component('A'));
    expect(await w.next()).toMatchObject({ valid: true, changed: ['a.mcl'] });

    unlinkSync(join(dir, 'sub/c.mcl'));
    const removed = await w.next();
    expect(removed).toMatchObject({ valid: true, changed: ['sub/c.mcl'] });
    expect(strip(removed)).toEqual(await fromScratch(['.']));

    // Nothing changed, nothing checked: no round is printed while the files stay as they are.
    const rounds = w.count();
    await new Promise((r) => setTimeout(r, 1300));
    expect(w.count()).toBe(rounds);
    expect(await w.stop()).toBe(ExitCode.Ok);
  }, 30_000);

  it('notices a module file that an import named before it existed, and ends with the last round\'s exit code', async () => {
    writeFileSync(join(dir, 'main.mcl'), `import lib.{Store}\n\ncomponent App {\n  memory 64MiB\n}\n`);
    const w = watching(['main.mcl']);
    const first = await w.next();
    expect(first.valid).toBe(false);
    expect(strip(first)).toEqual(await fromScratch(['main.mcl']));
    // lib.mcl is not an entry: it is found because the compile read (and missed) it.
    writeFileSync(join(dir, 'lib.mcl'), component('Store'));
    const second = await w.next();
    expect(second).toMatchObject({ round: 2, changed: ['lib.mcl'] });
    expect(strip(second)).toEqual(await fromScratch(['main.mcl']));
    writeFileSync(join(dir, 'lib.mcl'), 'component Store {\n');
    const third = await w.next();
    expect(third.valid).toBe(false);
    expect(await w.stop()).toBe(ExitCode.Invalid);
  }, 30_000);

  it('reports once when the paths name no source any more, and goes on when one is back', async () => {
    mkdirSync(join(dir, 'src'));
    writeFileSync(join(dir, 'src/a.mcl'), component('A'));
    const w = watching(['src']);
    expect((await w.next()).valid).toBe(true);
    unlinkSync(join(dir, 'src/a.mcl'));
    const gone = await w.next();
    expect(gone.error?.message).toMatch(/no \.mcl files found in src/);
    // Reported once, not at every poll.
    await new Promise((r) => setTimeout(r, 1300));
    expect(w.count()).toBe(2);
    writeFileSync(join(dir, 'src/a.mcl'), component('A'));
    const back = await w.next();
    expect(back).toMatchObject({ valid: true });
    expect(await w.stop()).toBe(ExitCode.Ok);
  }, 30_000);

  it('reads a file that became a link out of the workspace as a check from scratch does: not at all', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'mclc-watch-outside-'));
    try {
      writeFileSync(join(outside, 'secret.mcl'), component('Secret'));
      writeFileSync(join(dir, 'main.mcl'), `import lib.{Store}\n\ncomponent App {\n  memory 64MiB\n}\n`);
      writeFileSync(join(dir, 'lib.mcl'), component('Store'));
      const w = watching(['main.mcl']);
      expect((await w.next()).valid).toBe(true);
      unlinkSync(join(dir, 'lib.mcl'));
      symlinkSync(join(outside, 'secret.mcl'), join(dir, 'lib.mcl'));
      const linked = await w.next();
      expect(linked).toMatchObject({ valid: false, changed: ['lib.mcl'] });
      expect(JSON.stringify(linked.diagnostics)).toMatch(/symbolic link/);
      expect(strip(linked)).toEqual(await fromScratch(['main.mcl']));
      // The file the link names changing is a change of lib.mcl (stat follows the link): checked again, refused again.
      writeFileSync(join(outside, 'secret.mcl'), component('Store'));
      const again = await w.next();
      expect(again).toMatchObject({ valid: false, changed: ['lib.mcl'] });
      expect(strip(again)).toEqual(await fromScratch(['main.mcl']));
      unlinkSync(join(dir, 'lib.mcl'));
      writeFileSync(join(dir, 'lib.mcl'), component('Store'));
      expect(await w.next()).toMatchObject({ valid: true, changed: ['lib.mcl'] });
      expect(await w.stop()).toBe(ExitCode.Ok);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  }, 30_000);

  it('refuses SARIF, which is one document per run', async () => {
    writeFileSync(join(dir, 'a.mcl'), component('A'));
    await expect(validateCommand(captureContext(dir), ['.'], { format: 'sarif', watch: true })).rejects.toThrow(/SARIF is one document per run/);
  });

  it('as the bundled binary: rounds on standard error, and SIGINT ends it with the last round\'s exit code', async () => {
    writeFileSync(join(dir, 'a.mcl'), component('A'));
    const proc = execa('node', [join(repo, 'cli/dist/mclc.mjs'), 'validate', '--watch', '.'], { cwd: dir, reject: false, env: { NO_COLOR: '1' } });
    let stderr = '';
    proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const waitFor = async (re: RegExp) => {
      const until = Date.now() + 15_000;
      while (!re.test(stderr)) {
        if (Date.now() > until) throw new Error(`no ${re} in: ${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await waitFor(/Checking the sources, then again after each change\.\n[\s\S]*checked in \d+ ms\. Watching for changes/);
    writeFileSync(join(dir, 'a.mcl'), 'component A {\n');
    await waitFor(/a\.mcl changed; checking again\.[\s\S]*error MCL0108[\s\S]*checked again in \d+ ms: 1 module checked/);
    proc.kill('SIGINT');
    const r = await proc;
    expect(r.exitCode).toBe(ExitCode.Invalid);
  }, 30_000);
});
