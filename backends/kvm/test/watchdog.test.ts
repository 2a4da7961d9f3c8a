// The watchdog that starts a dead supervisor again (daemon.ts), across real
// processes with fake guests: a SIGKILLed supervisor comes back with the same
// token, a supervisor that keeps dying is given up on with a message that
// `status` shows, destroy leaves no watchdog behind, and the start-rate limit.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { apply, destroy, status } from '../src/lifecycle/commands';
import { APPLIED_PLAN_FILE, LOG_FILE, readAppliedPlan, restartAllowed, RESTART_LIMIT, supervisorAlive, WATCHDOG_FILE, watchdogAlive } from '../src/lifecycle/daemon';
import { DEPLOYMENT_ENV, ensureRunDir, findRunDir, type RunDir } from '../src/lifecycle/rundir';
import type { ApplyOptions } from '../src/lifecycle/events';
import { chan, inst, plan } from './fixtures/fakes';

const supervisorCommand = [process.execPath, '--import', 'tsx', join(__dirname, 'fixtures/supervisor-entry.ts')];
const thePlan = () => plan([inst('app'), inst('db')], [chan('app', 'db', 'db', 'kv')]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function running(pid: number): boolean {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].startsWith('Z');
  } catch {
    return false;
  }
}

/** Pids of every live process whose environment carries the token. */
function carrying(token: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/environ`, 'latin1').split('\0').includes(`${DEPLOYMENT_ENV}=${token}`) && running(Number(d))) out.push(Number(d));
    } catch {
      // Gone, or another user's.
    }
  }
  return out;
}

let ws: string;
let stateFile: string;
const own = (): RunDir => {
  const f = findRunDir(stateFile);
  if (f.kind !== 'ours') throw new Error(`no run directory of this deployment: ${f.kind}`);
  return f;
};
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
  ws = mkdtempSync(join(tmpdir(), 'mcl-wd-'));
  process.env.MCL_TEST_FAKE_TAG = basename(ws);
  stateFile = join(ws, '.mcl', 'state.json');
});
afterEach(async () => {
  await destroy(opts(), () => undefined).catch(() => undefined);
  rmSync(ws, { recursive: true, force: true });
});

describe('the start-rate limit', () => {
  it('allows RESTART_LIMIT.count restarts within the window, and more once the earlier ones are older', () => {
    const { count, windowMs } = RESTART_LIMIT;
    const t = 1_000_000;
    const recent = Array.from({ length: count }, (_, i) => t - 1000 * i);
    expect(restartAllowed([], t)).toBe(true);
    expect(restartAllowed(recent.slice(1), t)).toBe(true);
    expect(restartAllowed(recent, t)).toBe(false);
    expect(restartAllowed(recent, t + windowMs)).toBe(true);
  });
});

describe('the watchdog', () => {
  it('starts a SIGKILLed supervisor again with the same token; destroy leaves no process of the deployment', async () => {
    await apply(thePlan(), opts(), () => undefined);
    const rd = own();
    const w = watchdogAlive(rd)!;
    expect(w).not.toBeNull();
    const first = supervisorAlive(rd)!;
    expect(w.pid).not.toBe(first.pid);
    // The plan applied last is kept, readable by its owner only.
    expect(statSync(join(rd.dir, APPLIED_PLAN_FILE)).mode & 0o777).toBe(0o600);
    process.kill(first.pid, 'SIGKILL');
    let s = await status(opts());
    const deadline = Date.now() + 20_000;
    while (!(s.supervisor.running && s.supervisor.pid !== first.pid) && Date.now() < deadline) {
      await sleep(200);
      s = await status(opts());
    }
    expect(s.supervisor).toMatchObject({ running: true, restarts: 1 });
    expect(s.supervisor.pid).not.toBe(first.pid);
    expect(own().token).toBe(rd.token);
    expect(watchdogAlive(rd)?.pid).toBe(w.pid);
    expect(readFileSync(join(rd.dir, LOG_FILE), 'utf8')).toMatch(/watchdog: the supervisor \(pid \d+\) killed by SIGKILL; starting it again \(restart 1\)/);
    // The test plan's digests are placeholders, so the kept plan is refused rather than trusted.
    expect(readAppliedPlan(rd.dir)).toMatchObject({ error: expect.stringMatching(/does not hold a valid plan/) });
    // An apply goes to the restarted supervisor, and destroy stops the watchdog with it.
    expect((await apply(thePlan(), opts(), () => undefined)).created).toHaveLength(2);
    await destroy(opts(), () => undefined);
    expect(running(w.pid)).toBe(false);
    expect(carrying(rd.token)).toEqual([]);
  }, 60_000);

  it('destroy with no supervisor answering kills the watchdog too, so nothing comes back', async () => {
    await apply(thePlan(), opts(), () => undefined);
    const rd = own();
    const w = watchdogAlive(rd)!;
    // The watchdog is held still, so the supervisor killed now stays dead until destroy has run.
    process.kill(w.pid, 'SIGSTOP');
    process.kill(supervisorAlive(rd)!.pid, 'SIGKILL');
    await sleep(200);
    const warnings: string[] = [];
    await destroy(opts(), (e) => e.type === 'warning' && warnings.push(e.message));
    expect(warnings.join()).toMatch(/the supervisor did not answer; killed \d+ process\(es\) directly/);
    await sleep(200);
    expect(running(w.pid)).toBe(false);
    expect(carrying(rd.token)).toEqual([]);
  }, 60_000);

  it('destroy does not hang on a frozen supervisor: the ping has a time limit, and the processes are killed by their token', async () => {
    await apply(thePlan(), opts(), () => undefined);
    const rd = own();
    const w = watchdogAlive(rd)!;
    const sup = supervisorAlive(rd)!;
    // Stopped, the supervisor still accepts connections (the kernel queues them) but never answers.
    process.kill(sup.pid, 'SIGSTOP');
    const warnings: string[] = [];
    const started = Date.now();
    await destroy(opts(), (e) => e.type === 'warning' && warnings.push(e.message));
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(warnings.join()).toMatch(/the supervisor did not answer; killed \d+ process\(es\) directly/);
    const deadline = Date.now() + 5_000;
    while ((running(w.pid) || running(sup.pid)) && Date.now() < deadline) await sleep(100);
    expect(running(w.pid)).toBe(false);
    expect(running(sup.pid)).toBe(false);
    expect(carrying(rd.token)).toEqual([]);
  }, 60_000);

  it('a SIGTERM to the watchdog stops the deployment, and nothing is started again', async () => {
    await apply(thePlan(), opts(), () => undefined);
    const rd = own();
    const w = watchdogAlive(rd)!;
    process.kill(w.pid, 'SIGTERM');
    const deadline = Date.now() + 15_000;
    while (carrying(rd.token).length > 0 && Date.now() < deadline) await sleep(100);
    expect(carrying(rd.token)).toEqual([]);
    expect(readFileSync(join(rd.dir, LOG_FILE), 'utf8')).toMatch(/stopping: SIGTERM/);
    expect((await status(opts())).supervisor.running).toBe(false);
  }, 60_000);

  it('gives up on a supervisor that keeps dying, and status says so', async () => {
    mkdirSync(join(ws, '.mcl'), { mode: 0o700 });
    const rd = ensureRunDir(stateFile);
    const wd = spawn(supervisorCommand[0], [...supervisorCommand.slice(1), '__supervise', rd.dir], {
      stdio: 'ignore',
      env: { ...process.env, [DEPLOYMENT_ENV]: rd.token, MCL_SUPERVISOR_ROLE: 'watchdog', MCL_TEST_SUPERVISOR_EXIT: '3' },
    });
    const code = await new Promise<number | null>((r) => wd.once('exit', (c) => r(c)));
    expect(code).toBe(1);
    const log = readFileSync(join(rd.dir, LOG_FILE), 'utf8');
    expect(log.match(/exited with status 3; starting it again/g)).toHaveLength(RESTART_LIMIT.count);
    expect(log).toMatch(/the supervisor died 6 times within 60 s \(last: pid \d+ exited with status 3\); not restarting it/);
    expect(JSON.parse(readFileSync(join(rd.dir, WATCHDOG_FILE), 'utf8'))).toMatchObject({ restarts: RESTART_LIMIT.count, gave_up: expect.stringMatching(/not restarting/) });
    const s = await status(opts());
    expect(s.supervisor.running).toBe(false);
    expect(s.warnings?.map((x) => x.message).join()).toMatch(/the supervisor died 6 times/);
  }, 60_000);
});
