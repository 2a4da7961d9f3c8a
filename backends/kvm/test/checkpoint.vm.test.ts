// Checkpoint and restore on real QEMU: a counter inside a guest goes on from
// its value at the checkpoint, the broker's counters go on from theirs, and a
// damaged checkpoint, one of another template build and one of another plan
// are refused with nothing changed.

import { cpSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, destroy, logs, status } from '../src/lifecycle/commands';
import { checkpoint, restore } from '../src/lifecycle/checkpoint-commands';
import { runDirFor } from '../src/lifecycle/daemon';
import { planOf, repoRoot } from './fixtures/plans';
import { alive, lifecycleOptions, qemuPidsUnder, sleep, until } from './fixtures/vm';

let ws: string;
let runDir: string;
// The supervisor runs from the built CLI (`npm run build`), which starts faster than the sources through tsx on a busy host.
const opts = () => lifecycleOptions(ws, { supervisorCommand: [process.execPath, join(repoRoot, 'cli/bin/mclc.mjs')] });
const CHANNEL = 'counter.db->store.kv';

/** The counts the counter printed, from its console log. */
async function counts(): Promise<number[]> {
  const lines: string[] = [];
  await logs('counter', { ...opts(), follow: false }, (l) => lines.push(l.text));
  return lines.map((l) => /^count (\d+)$/.exec(l.trim())?.[1]).filter((x): x is string => !!x).map(Number);
}

async function pids(): Promise<number[]> {
  return (await status(opts())).instances.flatMap((i) => i.clones.map((c) => c.pid ?? -1)).sort();
}

async function calls(): Promise<number> {
  const st = await status(opts());
  const ch = st.channels.find((c) => c.id === CHANNEL);
  return ch ? ch.frames_forward : -1;
}

function sha(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

let ckpt: string;

beforeAll(async () => {
  ws = mkdtempSync(join(tmpdir(), 'mcl-ckpt-'));
  cpSync(join(__dirname, 'fixtures/checkpoint'), ws, { recursive: true });
  runDir = runDirFor(join(ws, '.mcl', 'state.json'));
  await apply(planOf(ws, 'checkpoint.mcl'), opts(), () => undefined);
}, 300_000);

afterAll(async () => {
  await destroy(opts(), () => undefined).catch(() => undefined);
  expect(qemuPidsUnder(runDir)).toEqual([]);
  rmSync(ws, { recursive: true, force: true });
}, 120_000);

describe('checkpoint and restore on QEMU', () => {
  it('restores a guest where it was: its counter and the broker counters go on from their values', async () => {
    await until('the counter to count', async () => (await counts()).length >= 3, 120_000);
    const before = Math.max(...(await counts()));
    ckpt = join(ws, 'ckpt');
    const events: string[] = [];
    const r = await checkpoint({ ...opts(), out: ckpt, instances: [] }, (e) => events.push(e.message));
    const after = Math.max(...(await counts()));
    expect(r).toMatchObject({ scope: 'deployment', clones: 2, instances: ['counter', 'store'] });
    expect(r.pause_ms).toBeGreaterThan(0);
    // Only what differs from the template is kept: far below the guests' 2 x 128 MiB.
    expect(r.ram_bytes).toBeLessThan(2 * 8 * 1024 * 1024);
    const manifest = JSON.parse(readFileSync(join(ckpt, 'checkpoint.json'), 'utf8'));
    expect(manifest).toMatchObject({ format: 'mcl-checkpoint', format_version: 1, scope: 'deployment' });
    for (const inst of manifest.instances) for (const c of inst.clones) expect(sha(join(ckpt, c.ram.file))).toBe(c.ram.sha256);
    const broker = JSON.parse(readFileSync(join(ckpt, 'broker.json'), 'utf8'));
    const savedCalls: number = broker.counters[CHANNEL].frames_to_provider;
    expect(savedCalls).toBeGreaterThanOrEqual(before - 1);

    // The deployment runs on past the checkpoint.
    await until('the counter to run on', async () => Math.max(...(await counts())) >= after + 6, 60_000);
    const callsBefore = await calls();
    expect(callsBefore).toBeGreaterThan(savedCalls + 4);
    const oldPids = await pids();

    const rr = await restore(ckpt, { ...opts(), readyTimeoutMs: 60_000 }, () => undefined);
    expect(rr).toMatchObject({ clones: 2, instances: ['counter', 'store'], warnings: [] });
    for (const p of oldPids) expect(alive(p)).toBe(false);
    // The restored counter's console log starts afresh: its first count follows the count at the checkpoint.
    const restored = await until('the restored counter to count', async () => {
      const c = await counts();
      return c.length >= 2 ? c : undefined;
    }, 60_000);
    expect(restored[0]).toBeGreaterThanOrEqual(before);
    expect(restored[0]).toBeLessThanOrEqual(after + 2);
    expect(restored[1]).toBe(restored[0] + 1);
    // The broker goes on from its counters at the checkpoint, not from zero and not from where the old one got to.
    const n = await calls();
    expect(n).toBeGreaterThanOrEqual(savedCalls);
    expect(n).toBeLessThan(callsBefore + 2);
    const st = await status(opts());
    expect(st.instances.every((i) => i.health === 'healthy')).toBe(true);
  }, 300_000);

  it('brings a destroyed deployment back, and restores one instance beside the others', async () => {
    const saved = JSON.parse(readFileSync(join(ckpt, 'broker.json'), 'utf8')).counters[CHANNEL].frames_to_provider as number;
    await destroy(opts(), () => undefined);
    expect(qemuPidsUnder(runDir)).toEqual([]);
    const rr = await restore(ckpt, { ...opts(), readyTimeoutMs: 60_000 }, () => undefined);
    expect(rr.clones).toBe(2);
    expect((await status(opts())).instances.map((i) => i.health)).toEqual(['healthy', 'healthy']);
    await until('the restored counter to count', async () => (await counts()).length >= 1, 60_000);
    expect(await calls()).toBeGreaterThanOrEqual(saved);

    // Only the counter: the store runs on untouched.
    const storePid = (await status(opts())).instances.find((i) => i.id === 'store')!.clones[0].pid;
    const one = join(ws, 'one');
    const r = await checkpoint({ ...opts(), out: one, instances: ['counter'] }, () => undefined);
    expect(r).toMatchObject({ scope: 'instances', instances: ['counter'], clones: 1 });
    await expect(checkpoint({ ...opts(), out: join(ws, 'nope'), instances: ['ghost'] }, () => undefined)).rejects.toMatchObject({ kind: 'usage', message: 'not running: ghost' });
    expect(existsSync(join(ws, 'nope'))).toBe(false);
    await restore(one, { ...opts(), readyTimeoutMs: 60_000 }, () => undefined);
    const st = await status(opts());
    expect(st.instances.find((i) => i.id === 'store')!.clones[0].pid).toBe(storePid);
    expect(st.instances.every((i) => i.health === 'healthy')).toBe(true);
  }, 300_000);

  const copyOf = (name: string) => {
    const d = join(ws, name);
    cpSync(ckpt, d, { recursive: true });
    return d;
  };

  it('refuses a damaged or incomplete checkpoint and changes nothing', async () => {
    const running = await pids();
    const damaged = copyOf('damaged');
    const m = JSON.parse(readFileSync(join(damaged, 'checkpoint.json'), 'utf8'));
    const ram = join(damaged, m.instances[0].clones[0].ram.file);
    const bytes = readFileSync(ram);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(ram, bytes);
    await expect(restore(damaged, { ...opts(), readyTimeoutMs: 60_000 }, () => undefined)).rejects.toMatchObject({
      kind: 'failure',
      message: expect.stringMatching(/does not match its sha256 in the manifest; nothing was changed/),
    });
    const incomplete = copyOf('incomplete');
    unlinkSync(join(incomplete, 'checkpoint.json'));
    await expect(restore(incomplete, { ...opts(), readyTimeoutMs: 60_000 }, () => undefined)).rejects.toMatchObject({
      kind: 'failure',
      message: expect.stringMatching(/checkpoint\.json is missing/),
    });
    const missing = copyOf('missing');
    unlinkSync(join(missing, m.instances[0].clones[0].device_state.file));
    await expect(restore(missing, { ...opts(), readyTimeoutMs: 60_000 }, () => undefined)).rejects.toMatchObject({ message: expect.stringMatching(/\.dev is missing/) });
    expect(await pids()).toEqual(running);
  }, 60_000);

  it('refuses a checkpoint of another template build or of another plan and changes nothing', async () => {
    const running = await pids();
    const other = copyOf('other-template');
    const m = JSON.parse(readFileSync(join(other, 'checkpoint.json'), 'utf8'));
    m.templates[0].build = 'f'.repeat(64);
    writeFileSync(join(other, 'checkpoint.json'), JSON.stringify(m));
    await expect(restore(other, { ...opts(), readyTimeoutMs: 60_000 }, () => undefined)).rejects.toMatchObject({
      kind: 'stale',
      message: expect.stringMatching(/another boot of the same template/),
    });

    // A checkpoint of another plan (the same system with a parameter changed), complete and consistent in itself.
    const src = join(ws, 'other-plan-src');
    cpSync(join(__dirname, 'fixtures/checkpoint'), src, { recursive: true });
    writeFileSync(join(src, 'checkpoint.mcl'), readFileSync(join(src, 'checkpoint.mcl'), 'utf8').replace('memory 128MiB\n  require', 'memory 128MiB\n  restart always\n  require'));
    const planB = planOf(src, 'checkpoint.mcl');
    const otherPlan = copyOf('other-plan');
    const text = JSON.stringify(planB);
    writeFileSync(join(otherPlan, 'plan.json'), text);
    const mb = JSON.parse(readFileSync(join(otherPlan, 'checkpoint.json'), 'utf8'));
    mb.plan = { file: 'plan.json', sha256: createHash('sha256').update(text).digest('hex'), bytes: Buffer.byteLength(text) };
    mb.plan_digest = planB.digests.plan;
    writeFileSync(join(otherPlan, 'checkpoint.json'), JSON.stringify(mb));
    expect(planB.digests.plan).not.toBe(m.plan_digest);
    await expect(restore(otherPlan, { ...opts(), readyTimeoutMs: 60_000 }, () => undefined)).rejects.toMatchObject({
      kind: 'stale',
      message: expect.stringMatching(/the checkpoint is of plan .* but the state records plan .* deployed; nothing was changed/),
    });
    expect(await pids()).toEqual(running);
    expect(existsSync(join(runDir, 'supervisor.sock'))).toBe(true);
    await sleep(0);
  }, 120_000);
});
