// Restart policies and console logs on real QEMU: the program's own exit
// status decides `on-failure` and what status reports, a guest flooding its
// console is held to the log's cap, a zygote that dies takes its clones
// with it but they are forked again without counting against their policy,
// and restarts that cannot fork back off.

import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, destroy, logs, status } from '../src/lifecycle/commands';
import { runDirFor } from '../src/lifecycle/daemon';
import { planOf } from './fixtures/plans';
import { lifecycleOptions, qemuPidsUnder, sleep, until, zygotePids } from './fixtures/vm';

/** The console cap for this deployment's supervisor (it inherits the environment): small, so a flood crosses it quickly. */
const LOG_BYTES = 32 * 1024;
const LOG_FILES = 2;

let ws: string;
let runDir: string;
const opts = () => lifecycleOptions(ws);
const saved = { bytes: process.env.MCL_CONSOLE_LOG_BYTES, files: process.env.MCL_CONSOLE_LOG_FILES };

const clone0 = async (id: string) => (await status(opts())).instances.find((i) => i.id === id)!.clones[0];

beforeAll(async () => {
  ws = mkdtempSync(join(tmpdir(), 'mcl-restarts-'));
  cpSync(join(__dirname, 'fixtures/restarts'), ws, { recursive: true });
  runDir = runDirFor(join(ws, '.mcl', 'state.json'));
  process.env.MCL_CONSOLE_LOG_BYTES = String(LOG_BYTES);
  process.env.MCL_CONSOLE_LOG_FILES = String(LOG_FILES);
  await apply(planOf(ws, 'restarts.mcl'), opts(), () => undefined);
}, 300_000);

afterAll(async () => {
  for (const [k, v] of [['MCL_CONSOLE_LOG_BYTES', saved.bytes], ['MCL_CONSOLE_LOG_FILES', saved.files]] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await destroy(opts(), () => undefined).catch(() => undefined);
  expect(qemuPidsUnder(runDir)).toEqual([]);
  rmSync(ws, { recursive: true, force: true });
}, 120_000);

describe('restarts and console logs on QEMU', () => {
  it("leaves a program that exited 0 down under on-failure, restarts one that failed, and reports the program's status", async () => {
    const done = await until('done to end', async () => {
      const c = await clone0('done');
      return c.state === 'crashed' ? c : undefined;
    });
    expect(done).toMatchObject({ restarts: 0, last_exit: 'program exited with status 0', not_restarted: 'it exited successfully and the restart policy is on-failure' });
    const fails = await until('fails to give up', async () => {
      const c = await clone0('fails');
      return c.state === 'crashed' && c.not_restarted ? c : undefined;
    }, 120_000);
    expect(fails).toMatchObject({ restarts: 1, last_exit: 'program exited with status 3', not_restarted: "1 restart(s) reached the policy's limit (max 1)" });
    // Both runs of the failing program are in its log, the second after a line saying why it was forked again.
    const lines: string[] = [];
    await logs('fails', { ...opts(), follow: false }, (l) => lines.push(l.text));
    expect(lines.filter((l) => l === 'fails: failing')).toHaveLength(2);
    expect(lines).toContain('--- mcl: clone 0 forked again (restart 1) after: program exited with status 3 ---');
  }, 180_000);

  it('holds a guest flooding its console to the cap: a fixed number of files of bounded size', async () => {
    await until('the flood to end', async () => {
      const lines: string[] = [];
      await logs('noisy', { ...opts(), follow: false, tail: 5 }, (l) => lines.push(l.text));
      return lines.includes('noisy: flooded');
    }, 180_000);
    const dir = join(runDir, 'clones', 'noisy.0');
    const files = readdirSync(dir).filter((f) => f.startsWith('console.log')).sort();
    expect(files).toEqual(['console.log', 'console.log.1', 'console.log.2']);
    // At most one read (64 KiB) past the cap each: 256 KiB went through, about 96 KiB are kept.
    for (const f of files) expect(statSync(join(dir, f)).size).toBeLessThanOrEqual(LOG_BYTES + 64 * 1024);
    // What was rotated out is gone; the clone runs on.
    const all: string[] = [];
    await logs('noisy', { ...opts(), follow: false }, (l) => all.push(l.text));
    expect(all).not.toContain('noisy: start');
    expect((await clone0('noisy')).state).toBe('running');
  }, 240_000);

  it('forks the clones a killed zygote took down again, `restart never` included, without counting a restart', async () => {
    const before = await clone0('steady');
    expect(before.state).toBe('running');
    const zygotes = zygotePids(runDir);
    expect(zygotes.length).toBeGreaterThan(0);
    for (const z of zygotes) process.kill(z, 'SIGKILL');
    const after = await until('steady forked again', async () => {
      const c = await clone0('steady');
      return c.state === 'running' && c.pid !== before.pid ? c : undefined;
    }, 120_000);
    expect(after.restarts).toBe(0);
    expect(after.last_exit).toBe('killed by SIGKILL: its QEMU zygote died');
    const s = await status(opts());
    expect(s.instances.find((i) => i.id === 'steady')!.health).toBe('healthy');
  }, 180_000);

  it('backs off on restarts that cannot fork, also after a long stable run, and status says why and when', async () => {
    // A clone that ran longer than 30 s used to have its backoff reset by every failed fork.
    const c0 = await until('keeper to have run 31 s', async () => {
      const c = await clone0('keeper');
      return c.state === 'running' && (c.uptime_ms ?? 0) > 31_000 ? c : undefined;
    }, 120_000);
    // From now on every fork fails: the template's RAM file is gone (running clones keep their mapping).
    const cmd = readFileSync(`/proc/${c0.pid}/cmdline`, 'utf8');
    const mem = /mem-path=([^,\0]+)/.exec(cmd)![1];
    rmSync(mem, { force: true });
    process.kill(c0.pid!, 'SIGKILL');
    const down = await until('a failed restart', async () => {
      const c = await clone0('keeper');
      return c.last_error ? c : undefined;
    }, 30_000);
    expect(down.state).toBe('restarting');
    expect(down.last_exit).toBe('killed by SIGKILL');
    expect(down.last_error).toMatch(/files of template .* are gone/);
    expect(down.next_restart_in_ms).toBeGreaterThan(0);
    const t0 = Date.now();
    await sleep(12_000);
    const failures = readFileSync(join(runDir, 'supervisor.log'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('keeper[0] restart failed')).length;
    // 250 ms doubling up to 10 s: about 7 attempts in the first 16 s. Without backoff on failed forks, one every 250 ms.
    expect(failures).toBeLessThanOrEqual(Math.ceil((Date.now() - t0) / 1000) / 2 + 4);
  }, 240_000);
});
