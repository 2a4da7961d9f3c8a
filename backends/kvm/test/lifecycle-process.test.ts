// apply/destroy/status/logs across real processes: a detached supervisor
// process, guests that are real (fake-QEMU) processes, the state lock, SIGKILL
// of apply and of the supervisor, concurrent applies.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { apply, destroy, logs, status } from '../src/lifecycle/commands';
import { runDirFor, supervisorAlive } from '../src/lifecycle/daemon';
import { findRunDir, type RunDir } from '../src/lifecycle/rundir';
import type { ApplyOptions, BackendEvent, LogLine } from '../src/lifecycle/events';
import { lockPath, readState } from '@mcl/plan/state-store';
import { chan, inst, plan } from './fixtures/fakes';

// `--import tsx` keeps each test process a single process, so killing it kills what holds the lock.
const supervisorCommand = [process.execPath, '--import', 'tsx', join(__dirname, 'fixtures/supervisor-entry.ts')];

const channels = [chan('web', 'handler', 'handler', 'api'), chan('handler', 'app', 'app', 'orders'), chan('app', 'db', 'db', 'kv')];
const thePlan = (digestOf: Record<string, string> = {}, pd = 'p1') =>
  plan(['web', 'handler', 'app', 'db'].map((id) => inst(id, digestOf[id] ? { digest: digestOf[id] } : {})), channels, pd);

function isZombieOrGone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].startsWith('Z');
  } catch {
    return true;
  }
}

/** Fake guests started for the current test's workspace (another test run on the machine has other tags). */
function fakeQemuPids(): number[] {
  const r = spawnSync('pgrep', ['-f', `^qemu-fake-${process.env.MCL_TEST_FAKE_TAG}-`]);
  return r.stdout.toString().split('\n').filter(Boolean).map(Number);
}

/** Runs `f` with `apply` starting the supervisor alone, without the watchdog that restarts it. */
async function withoutWatchdog<T>(f: () => Promise<T>): Promise<T> {
  process.env.MCL_SUPERVISOR_WATCHDOG = '0';
  try {
    return await f();
  } finally {
    delete process.env.MCL_SUPERVISOR_WATCHDOG;
  }
}

let ws: string;
let stateFile: string;
/** The deployment's own run directory (with its token), as the backend finds it from the state file's location. */
const ownRun = (): RunDir => {
  const f = findRunDir(stateFile);
  if (f.kind !== 'ours') throw new Error(`no run directory of this deployment: ${f.kind}`);
  return f;
};
let events: BackendEvent[];
const opts = (over: Partial<ApplyOptions> = {}): ApplyOptions => ({
  workspace: ws,
  stateFile,
  lockTimeoutMs: 0,
  supervisorCommand,
  signal: new AbortController().signal,
  automation: true,
  replace: [],
  readyTimeoutMs: 10_000,
  ...over,
});

beforeEach(() => {
  ws = mkdtempSync(join(tmpdir(), 'mcl-lc-'));
  process.env.MCL_TEST_FAKE_TAG = basename(ws);
  stateFile = join(ws, '.mcl', 'state.json');
  events = [];
});
afterEach(async () => {
  await destroy(opts(), () => undefined).catch(() => undefined);
  rmSync(ws, { recursive: true, force: true });
});

describe('lifecycle across processes', () => {
  it('apply starts a detached supervisor, records the processes, status and logs read them, destroy stops all', async () => {
    const r = await apply(thePlan(), opts(), (e) => events.push(e));
    expect(r.created).toEqual(['app', 'db', 'handler', 'web']);
    expect(r.state.serial).toBe(1);
    const st = readState(stateFile)!;
    const data = st.backend_data as { run_dir: string; processes: { pid: number }[]; supervisor: { pid: number } };
    expect(data.processes).toHaveLength(4);
    expect(data.run_dir).toBe(runDirFor(stateFile));
    for (const p of data.processes) expect(() => process.kill(p.pid, 0)).not.toThrow();
    expect(events.some((e) => e.type === 'instance' && e.action === 'ready' && e.instance === 'db')).toBe(true);

    const s = await status(opts());
    expect(s.deployed).toBe(true);
    expect(s.supervisor.running).toBe(true);
    expect(s.instances.map((i) => [i.id, i.health])).toEqual([
      ['app', 'healthy'],
      ['db', 'healthy'],
      ['handler', 'healthy'],
      ['web', 'healthy'],
    ]);
    const db = s.instances.find((i) => i.id === 'db')!.clones[0];
    expect(db.rss_bytes).toBeGreaterThan(0);
    expect(db.cpu_ms).toBeTypeOf('number');
    expect(s.totals.clones).toBe(4);

    const lines: LogLine[] = [];
    await logs('db', { ...opts(), follow: false }, (l) => lines.push(l));
    expect(lines.map((l) => l.text)).toEqual(['booted db clone 0', 'program started']);
    await expect(logs('nope', { ...opts(), follow: false }, () => undefined)).rejects.toMatchObject({ kind: 'usage' });

    // Same plan again: nothing changes, serial stays.
    const again = await apply(thePlan(), opts(), () => undefined);
    expect(again.unchanged).toHaveLength(4);
    expect(again.state.serial).toBe(1);

    const d = await destroy(opts(), () => undefined);
    expect(d.destroyed).toEqual(['app', 'db', 'handler', 'web']);
    expect(d.state!.serial).toBe(2);
    expect(d.state!.lineage).toBe(st.lineage);
    for (const p of data.processes) expect(isZombieOrGone(p.pid)).toBe(true);
    expect(findRunDir(stateFile).kind).toBe('none');
    expect(existsSync(data.run_dir)).toBe(false);
    expect((await status(opts())).deployed).toBe(false);
  }, 60_000);

  it('refuses a stale plan', async () => {
    await apply(thePlan(), opts(), () => undefined);
    const st = readState(stateFile)!;
    const p = { ...thePlan({}, 'p2'), prior_state: { lineage: st.lineage, serial: st.serial - 1 } };
    await expect(apply(p, opts(), () => undefined)).rejects.toMatchObject({ kind: 'stale' });
    const ok = { ...thePlan({ app: 'app2' }, 'p2'), prior_state: { lineage: st.lineage, serial: st.serial } };
    const r = await apply(ok, opts(), () => undefined);
    expect(r.replaced).toEqual(['app']);
    expect(r.state.serial).toBe(2);
  }, 60_000);

  it('refuses a plan made before anything was deployed once a deployment exists, until it is destroyed', async () => {
    await apply(thePlan(), opts(), () => undefined);
    const st = readState(stateFile)!;
    const pids = (st.backend_data as { processes: { pid: number }[] }).processes.map((p) => p.pid).sort();
    // Made with no state (prior_state null), like a plan saved before the first apply.
    const early = thePlan({ app: 'app-early', db: 'db-early' }, 'p-early');
    const err = await apply(early, opts(), () => undefined).catch((e) => e);
    expect(err).toMatchObject({ kind: 'stale' });
    expect(err.message).toMatch(/made when nothing was deployed.*serial 1, 4 instances/);
    expect(err.hint).toMatch(/mclc plan/);
    // Nothing changed: the same state and the same guests.
    expect(readState(stateFile)).toEqual(st);
    const now = (await status(opts())).instances.flatMap((i) => i.clones.map((c) => c.pid!)).sort();
    expect(now).toEqual(pids);
    // The plan the deployment came from may be applied again: it only converges.
    expect((await apply(thePlan(), opts(), () => undefined)).unchanged).toHaveLength(4);
    // Once destroyed, nothing is left to overwrite, and the early plan applies (in the same lineage).
    await destroy(opts(), () => undefined);
    const r = await apply(early, opts(), () => undefined);
    expect(r.created).toHaveLength(4);
    expect(r.state.lineage).toBe(st.lineage);
    expect(r.state.serial).toBe(3);
  }, 60_000);

  it('a killed supervisor leaves no orphans: the next apply reaps them and converges', async () => {
    // Without the watchdog, which would otherwise start it again at once.
    await withoutWatchdog(() => apply(thePlan(), opts(), () => undefined));
    const data = readState(stateFile)!.backend_data as { run_dir: string; processes: { pid: number }[] };
    const sup = supervisorAlive(ownRun())!;
    process.kill(sup.pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    // The guests outlived it (no parent-death signal in node)...
    for (const p of data.processes) expect(() => process.kill(p.pid, 0)).not.toThrow();
    const r = await apply(thePlan(), opts(), () => undefined);
    // ...and the new supervisor killed them and started fresh ones.
    expect(r.created).toHaveLength(4);
    await new Promise((r) => setTimeout(r, 100));
    for (const p of data.processes) expect(isZombieOrGone(p.pid)).toBe(true);
    const now = (readState(stateFile)!.backend_data as { processes: { pid: number }[] }).processes.map((p) => p.pid).sort();
    expect(fakeQemuPids().filter((p) => now.includes(p))).toHaveLength(4);
  }, 60_000);

  it('destroy without a supervisor kills the recorded guests itself; status then says stopped', async () => {
    await withoutWatchdog(() => apply(thePlan(), opts(), () => undefined));
    const data = readState(stateFile)!.backend_data as { run_dir: string; processes: { pid: number }[] };
    process.kill(supervisorAlive(ownRun())!.pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    const s = await status(opts());
    expect(s.supervisor.running).toBe(false);
    expect(s.instances.every((i) => i.health === 'stopped')).toBe(true);
    const warnings: string[] = [];
    const d = await destroy(opts(), (e) => e.type === 'warning' && warnings.push(e.message));
    expect(d.destroyed).toEqual(['app', 'db', 'handler', 'web']);
    expect(warnings.join()).toMatch(/killed 4 process\(es\) directly/);
    for (const p of data.processes) expect(isZombieOrGone(p.pid)).toBe(true);
    expect(existsSync(data.run_dir)).toBe(false);
  }, 60_000);

  it('SIGKILL of apply midway, then apply again, converges with no orphans and an intact state', async () => {
    const planFile = join(ws, 'plan.json');
    writeFileSync(planFile, JSON.stringify(thePlan()));
    // Slow forks so the kill lands in the middle of the apply.
    process.env.MCL_TEST_FORK_DELAY_MS = '300';
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures/apply-entry.ts'), planFile, stateFile, JSON.stringify(supervisorCommand)], { stdio: ['ignore', 'pipe', 'pipe'] });
      await new Promise<void>((res) => {
        child.stderr.on('data', (d: Buffer) => {
          if (d.toString().includes('"action":"create"')) res();
        });
      });
      child.kill('SIGKILL');
      await new Promise((r) => child.on('exit', r));
    } finally {
      delete process.env.MCL_TEST_FORK_DELAY_MS;
    }
    // The lock is left behind by a dead process, and the state was never written.
    expect(existsSync(join(ws, '.mcl', 'state.lock'))).toBe(true);
    expect(readState(stateFile)).toBeNull();
    const r = await apply(thePlan(), opts(), () => undefined);
    expect([...r.created, ...r.unchanged].sort()).toEqual(['app', 'db', 'handler', 'web']);
    const procs = (readState(stateFile)!.backend_data as { processes: { pid: number }[] }).processes.map((p) => p.pid);
    expect(procs).toHaveLength(4);
    await destroy(opts(), () => undefined);
    for (const p of procs) expect(isZombieOrGone(p)).toBe(true);
  }, 60_000);

  it('SIGKILL of apply at several points converges every time with no orphans', async () => {
    const planFile = join(ws, 'plan.json');
    process.env.MCL_TEST_FORK_DELAY_MS = '150';
    try {
      let digest = 0;
      for (const delay of [30, 250, 700, 1300]) {
        // Each round changes one instance, so there is always work in flight when the kill lands.
        // Each plan is made against the current state, as `mclc plan` makes it.
        const now = readState(stateFile);
        const p = { ...thePlan({ app: `app-${++digest}` }, `p-${digest}`), prior_state: now && { lineage: now.lineage, serial: now.serial } };
        writeFileSync(planFile, JSON.stringify(p));
        const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures/apply-entry.ts'), planFile, stateFile, JSON.stringify(supervisorCommand)], { stdio: 'ignore' });
        // Listen for the exit at once: on a fast machine the child can finish before the kill, and an
        // 'exit' listener attached after that would wait forever.
        const exited = new Promise((r) => child.once('exit', r));
        await new Promise((r) => setTimeout(r, delay));
        child.kill('SIGKILL');
        await exited;
        const r = await apply(p, opts(), () => undefined);
        expect([...r.created, ...r.replaced, ...r.unchanged].sort()).toEqual(['app', 'db', 'handler', 'web']);
        const st = readState(stateFile)!;
        expect(st.plan_digest).toBe(`p-${digest}`);
        const recorded = (st.backend_data as { processes: { pid: number }[] }).processes.map((x) => x.pid).sort();
        await new Promise((res) => setTimeout(res, 50));
        // Fake guests carry this test's workspace as their tag, so every one found belongs to this deployment.
        const live = fakeQemuPids();
        expect(recorded).toHaveLength(4);
        for (const pid of recorded) expect(live).toContain(pid);
        // Every fake guest of this deployment is a recorded one: nothing orphaned.
        expect(live.filter((pid) => !recorded.includes(pid))).toEqual([]);
      }
    } finally {
      delete process.env.MCL_TEST_FORK_DELAY_MS;
    }
  }, 120_000);

  it('two concurrent applies: the second waits for the lock or fails naming the holder', async () => {
    const planFile = join(ws, 'plan.json');
    writeFileSync(planFile, JSON.stringify(thePlan()));
    // Slow forks (four layers of 1.5 s) keep the first apply inside the lock for
    // about six seconds, far longer than the second process needs to start, even
    // on a loaded machine; the second starts only once the lock is taken.
    process.env.MCL_TEST_FORK_DELAY_MS = '1500';
    const run = (timeout: number) =>
      new Promise<{ ok: boolean; kind?: string; message?: string; created?: string[]; unchanged?: string[] }>((res) => {
        const c = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures/apply-entry.ts'), planFile, stateFile, JSON.stringify(supervisorCommand), String(timeout)]);
        let out = '';
        c.stdout.on('data', (d) => (out += d));
        c.on('exit', () => res(JSON.parse(out)));
      });
    try {
      const first = run(0);
      const deadline = Date.now() + 30_000;
      while (!existsSync(lockPath(stateFile)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const [a, failing] = await Promise.all([first, run(0)]);
      expect(a.ok).toBe(true);
      expect(failing).toMatchObject({ ok: false, kind: 'locked' });
      expect(failing.message).toMatch(/locked by pid \d+ .*apply since/);
      const waiting = await run(30_000);
      expect(waiting.ok).toBe(true);
      expect(waiting.unchanged).toHaveLength(4);
    } finally {
      delete process.env.MCL_TEST_FORK_DELAY_MS;
    }
  }, 60_000);
});
