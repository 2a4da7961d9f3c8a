// The QEMU zygote on real QEMU: its children share the pages the dynamic
// linker relocated, each loads the template state from its own offset, exits
// are reported, close() and kill() end it as documented, and what cannot work
// (no compiler, a library the loader refuses, a bad directory) fails with a
// clear error while the pool falls back to starting QEMU directly.
//
// Uses the template of substrate.vm.test.ts (same spec, so the same cache
// entry in $MCL_CACHE_DIR or <tmp>/mcl-vm-test-cache).

import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildZygoteLib, ClonePool, forkClone, Zygote, type Clone, type Template } from '../../src/vm/index';
import { readMemoryBreakdown } from '../../src/vm/memory';
import { which } from '../../src/vm/paths';
import { requireQemu } from '../../src/vm/qemu';
import { alive, testTemplate, until } from '../fixtures/vm';

const cacheDir = process.env.MCL_CACHE_DIR ?? path.join(os.tmpdir(), 'mcl-vm-test-cache');
let template: Template;
let run: string;
const clones: Clone[] = [];
const pools: ClonePool[] = [];
const zygotes: Zygote[] = [];

/** A zygote for `template` with a command line that only waits (-S, no sockets but QMP). */
async function plainZygote(dir: string, lib: string): Promise<Zygote> {
  const args = ['-nodefaults', '-no-user-config', '-display', 'none', '-machine', 'pc', '-accel', 'tcg', '-m', '64M', '-S', '-qmp', 'unix:qmp.sock,server=on,wait=off', '-pidfile', 'qemu.pid'];
  const z = await Zygote.start({ qemu: requireQemu(), args, statePath: template.statePath, dir, lib });
  zygotes.push(z);
  return z;
}

beforeAll(async () => {
  run = await mkdtemp(path.join(os.tmpdir(), 'mcl-zygote-'));
  template = await testTemplate(cacheDir);
}, 120_000);

afterAll(async () => {
  await Promise.all(clones.map((c) => c.kill()));
  await Promise.all(pools.map((p) => p.close()));
  for (const z of zygotes) z.kill();
  if (run) await rm(run, { recursive: true, force: true });
});

describe('QEMU zygote', () => {
  it('builds its library once per source and compiler', async () => {
    const a = await buildZygoteLib({ cacheDir });
    const b = await buildZygoteLib({ cacheDir });
    expect(a).toBe(b);
    expect(existsSync(a)).toBe(true);
    expect(a.startsWith(path.join(path.resolve(cacheDir), 'zygote'))).toBe(true);
  });

  it('forks clones that share the relocated pages a directly started QEMU holds privately', async () => {
    const pool = new ClonePool(template, { dir: path.join(run, 'share'), size: 0 });
    pools.push(pool);
    const forked: Clone[] = [];
    // Two at once: each child opens the state file itself, so concurrent loads do not share a file offset.
    forked.push(...(await Promise.all([0, 1].map((i) => pool.take({ name: `z${i}`, controlSocket: path.join(run, `z${i}.ctl`), dataPortSockets: [], logFile: path.join(run, `z${i}.log`) })))));
    const direct = await forkClone(template, { name: 'd0', controlSocket: path.join(run, 'd0.ctl'), dataPortSockets: [], logFile: path.join(run, 'd0.log') });
    clones.push(...forked, direct);
    for (const c of [...forked, direct]) await c.control.ping();
    const z = await Promise.all(forked.map((c) => readMemoryBreakdown(c.pid, template.memPath)));
    const d = await readMemoryBreakdown(direct.pid, template.memPath);
    // Measured: about 4.5 MiB of QEMU's and its libraries' data private in a directly started QEMU,
    // about 0.3 MiB in a zygote's child.
    expect(d.binaries).toBeGreaterThan(2 * 1024 * 1024);
    for (const m of z) expect(m.binaries).toBeLessThan(d.binaries / 3);
    for (const m of z) expect(m.total).toBeLessThan(d.total - 2 * 1024 * 1024);
  }, 120_000);

  it('reports how each child ended, and exits after its last child once closed', async () => {
    const lib = await buildZygoteLib({ cacheDir });
    const dir = path.join(run, 'plain');
    const z = await plainZygote(path.join(dir, 'zygote'), lib);
    const dirs = [path.join(dir, 'a'), path.join(dir, 'b')];
    for (const d of dirs) await mkdir(d, { recursive: true });
    const [a, b] = await Promise.all(dirs.map((d) => z.spawn(d)));
    expect(z.children).toBe(2);
    // Each child runs QEMU in its own directory: the relative pid file landed there.
    await until('both pid files', () => dirs.every((d) => existsSync(path.join(d, 'qemu.pid'))), 10_000);
    expect(readFileSync(path.join(dirs[0], 'qemu.pid'), 'utf8').trim()).toBe(String(a.pid));
    expect(readFileSync(path.join(dirs[1], 'qemu.pid'), 'utf8').trim()).toBe(String(b.pid));
    a.kill('SIGKILL');
    expect(await a.exited).toEqual({ code: null, signal: 'SIGKILL' });
    z.close();
    // Closed with a child left: the zygote waits for it.
    await new Promise((r) => setTimeout(r, 300));
    expect(z.alive).toBe(true);
    expect(alive(b.pid)).toBe(true);
    // QEMU ends cleanly on SIGTERM.
    b.kill('SIGTERM');
    expect(await b.exited).toEqual({ code: 0, signal: null });
    await z.exited;
    expect(z.alive).toBe(false);
    expect(existsSync(path.join(dir, 'zygote'))).toBe(false);
    await expect(z.spawn(dirs[0])).rejects.toThrow(/has exited/);
  }, 60_000);

  // gdb reads a process's thread pointer ($fs_base); the canary sits at %fs:0x28 on x86-64 glibc.
  it.skipIf(!which('gdb') || process.arch !== 'x64')('gives each child a stack canary of its own', async () => {
    const lib = await buildZygoteLib({ cacheDir });
    const dir = path.join(run, 'canary');
    const z = await plainZygote(path.join(dir, 'zygote'), lib);
    const dirs = [path.join(dir, 'a'), path.join(dir, 'b')];
    for (const d of dirs) await mkdir(d, { recursive: true });
    const children = await Promise.all(dirs.map((d) => z.spawn(d)));
    await until('both pid files', () => dirs.every((d) => existsSync(path.join(d, 'qemu.pid'))), 10_000);
    const canary = async (pid: number) => {
      const r = await execa('gdb', ['-p', String(pid), '-batch', '-ex', 'p/x *(unsigned long *)($fs_base + 0x28)'], { reject: false });
      const m = /\$1 = (0x[0-9a-f]+)/.exec(r.stdout);
      if (!m) throw new Error(`gdb could not read the canary of ${pid}: ${r.stdout.slice(-300)}${r.stderr.slice(-300)}`);
      return m[1];
    };
    const values = [await canary(z.pid), ...(await Promise.all(children.map((c) => canary(c.pid))))];
    expect(new Set(values).size).toBe(3);
    // glibc's convention: the lowest byte is zero.
    for (const v of values) expect(v.endsWith('00')).toBe(true);
    // Returning through frames set up before the change does not trip the check: QEMU ends cleanly.
    for (const c of children) c.kill('SIGTERM');
    expect(await Promise.all(children.map((c) => c.exited))).toEqual([{ code: 0, signal: null }, { code: 0, signal: null }]);
  }, 60_000);

  it('takes its children with it when it is killed', async () => {
    const lib = await buildZygoteLib({ cacheDir });
    const dir = path.join(run, 'kill');
    const z = await plainZygote(path.join(dir, 'zygote'), lib);
    await mkdir(path.join(dir, 'a'), { recursive: true });
    const a = await z.spawn(path.join(dir, 'a'));
    expect(alive(a.pid)).toBe(true);
    z.kill();
    // Marked as taken down by the zygote, so its owner does not blame the guest.
    expect(await a.exited).toEqual({ code: null, signal: 'SIGKILL', zygoteDied: true });
    await until('the child to be gone', () => !alive(a.pid), 5_000);
  }, 60_000);

  it('a pool whose zygote was killed loses its clones and starts a new zygote for the next take', async () => {
    const pool = new ClonePool(template, { dir: path.join(run, 'respawn'), size: 0 });
    pools.push(pool);
    const first = await pool.take({ name: 'r0', controlSocket: path.join(run, 'r0.ctl'), dataPortSockets: [], logFile: path.join(run, 'r0.log') });
    clones.push(first);
    const z1 = (await pool.zygotePid())!;
    process.kill(z1, 'SIGKILL');
    // The clone dies with its zygote (parent-death signal), and its exit is reported as a kill by the zygote's death.
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL', zygoteDied: true });
    await until('the first zygote and its clone to be gone', () => !alive(z1) && !alive(first.pid), 5_000);
    const second = await pool.take({ name: 'r1', controlSocket: path.join(run, 'r1.ctl'), dataPortSockets: [], logFile: path.join(run, 'r1.log') });
    clones.push(second);
    expect(second.pooled).toBe(true);
    const z2 = await pool.zygotePid();
    expect(z2).not.toBeNull();
    expect(z2).not.toBe(z1);
    await second.control.ping();
  }, 60_000);

  it('refuses a directory that is not absolute or has a newline', async () => {
    const lib = await buildZygoteLib({ cacheDir });
    const z = await plainZygote(path.join(run, 'refuse', 'zygote'), lib);
    await expect(z.spawn('relative/dir')).rejects.toThrow(/not a directory a zygote can fork into/);
    await expect(z.spawn('/tmp/a\nfork /tmp/b')).rejects.toThrow(/not a directory a zygote can fork into/);
    expect(z.children).toBe(0);
    // A directory that does not exist: the child cannot enter it and exits at once (126).
    const c = await z.spawn(path.join(run, 'refuse', 'missing'));
    expect(await c.exited).toEqual({ code: 126, signal: null });
  }, 60_000);

  it('works through a wrapper script that execs QEMU, and says so when one drops the library', async () => {
    const lib = await buildZygoteLib({ cacheDir });
    const args = ['-nodefaults', '-no-user-config', '-display', 'none', '-machine', 'pc', '-accel', 'tcg', '-m', '64M', '-S', '-qmp', 'unix:qmp.sock,server=on,wait=off', '-pidfile', 'qemu.pid'];
    const wrapper = path.join(run, 'qemu-wrapper');
    await writeFile(wrapper, `#!/bin/sh\nexec ${requireQemu()} "$@"\n`, { mode: 0o755 });
    const z = await Zygote.start({ qemu: wrapper, args, statePath: template.statePath, dir: path.join(run, 'wrapped', 'zygote'), lib });
    zygotes.push(z);
    await mkdir(path.join(run, 'wrapped', 'a'), { recursive: true });
    const a = await z.spawn(path.join(run, 'wrapped', 'a'));
    await until('the pid file of the wrapped child', () => existsSync(path.join(run, 'wrapped', 'a', 'qemu.pid')), 10_000);
    a.kill('SIGKILL');
    await a.exited;
    const dropping = path.join(run, 'qemu-dropping');
    await writeFile(dropping, `#!/bin/sh\nunset LD_PRELOAD\nexec ${requireQemu()} "$@"\n`, { mode: 0o755 });
    const started = Date.now();
    await expect(Zygote.start({ qemu: dropping, args, statePath: template.statePath, dir: path.join(run, 'dropped', 'zygote'), lib })).rejects.toThrow(/QEMU started without the zygote library/);
    // Found out as soon as QEMU created its files, not at the 20 s timeout.
    expect(Date.now() - started).toBeLessThan(10_000);
  }, 60_000);

  it('fails clearly when the loader refuses the library', async () => {
    const bogus = path.join(run, 'not-a-library.so');
    await writeFile(bogus, 'not ELF');
    await expect(plainZygote(path.join(run, 'bogus', 'zygote'), bogus)).rejects.toThrow(/could not load its library|did not report ready/);
  }, 60_000);

  it('fails clearly without a working compiler, and the pool starts QEMU directly', async () => {
    const cc = process.env.CC;
    process.env.CC = '/bin/false';
    const fresh = path.join(run, 'no-cc-cache');
    try {
      await expect(buildZygoteLib({ cacheDir: fresh })).rejects.toThrow(/building the QEMU zygote failed/);
      const errors: string[] = [];
      const pool = new ClonePool(template, { dir: path.join(run, 'no-cc'), size: 0, cacheDir: fresh, onError: (e) => errors.push(e.message) });
      pools.push(pool);
      const clone = await pool.take({ name: 'nocc#0', controlSocket: path.join(run, 'nocc.ctl'), dataPortSockets: [], logFile: path.join(run, 'nocc.log') });
      clones.push(clone);
      expect(clone.pooled).toBe(false);
      expect(errors.join('\n')).toMatch(/no QEMU zygote, so clones start QEMU directly: building the QEMU zygote failed/);
      await clone.control.ping();
    } finally {
      if (cc === undefined) delete process.env.CC;
      else process.env.CC = cc;
    }
  }, 120_000);

});
