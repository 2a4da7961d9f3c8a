// The audit trail and the accounting ledger across real processes: a detached
// supervisor (restarted by its watchdog after a SIGKILL), guests that are real
// processes (one burning CPU), a crash and its restart, destroy. The trail must
// verify and hold every action with who asked; the ledger's figures must match
// what the host measured, survive the supervisor's restart, and add up. And a
// clone the kernel kills for going over its cgroup's memory limit: named in
// the trail and in status, restarted by its policy, its neighbours untouched.

import { existsSync, readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { apply, destroy, status } from '../src/lifecycle/commands';
import { supervisorAlive } from '../src/lifecycle/daemon';
import { findRunDir } from '../src/lifecycle/rundir';
import { auditPath, verifyAudit } from '../src/lifecycle/audit';
import { ledgerPath, summarizeUsage } from '../src/lifecycle/ledger';
import { audit, usage } from '../src/lifecycle/report-commands';
import type { ApplyOptions, AuditRecord } from '../src/lifecycle/events';
import { processCpuMs } from '../src/lifecycle/procfs';
import { cgroupName, detectCgroups, QEMU_OVERHEAD_ENV } from '../src/lifecycle/cgroups';
import { inst, plan } from './fixtures/fakes';

const supervisorCommand = [process.execPath, '--import', 'tsx', join(__dirname, 'fixtures/supervisor-entry.ts')];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let ws: string;
let stateFile: string;
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
  ws = mkdtempSync(join(tmpdir(), 'mcl-rec-'));
  process.env.MCL_TEST_FAKE_TAG = basename(ws);
  process.env.MCL_LEDGER_INTERVAL_MS = '200';
  stateFile = join(ws, '.mcl', 'state.json');
});
afterEach(async () => {
  await destroy(opts(), () => undefined).catch(() => undefined);
  delete process.env.MCL_LEDGER_INTERVAL_MS;
  rmSync(ws, { recursive: true, force: true });
});

async function until(what: string, f: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await f()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('audit trail and ledger of a deployment', () => {
  it('records every action with who asked, survives a supervisor restart, and accounts what the host measured', async () => {
    const p = plan([inst('web', { label: 'orgA' }), inst('burn', { label: 'orgB' })]);
    await apply(p, opts(), () => undefined);
    const pidOf = async (id: string) => (await status(opts())).instances.find((i) => i.id === id)!.clones[0].pid!;

    // A crash of web's QEMU: restarted by the policy (always).
    const webPid = await pidOf('web');
    process.kill(webPid, 'SIGKILL');
    await until('web restarted', async () => (await status(opts())).instances.find((i) => i.id === 'web')!.clones[0].restarts === 1 && (await pidOf('web')) !== webPid);

    // The supervisor killed: its watchdog starts it again, which forks everything afresh and appends to the same files.
    const rd = findRunDir(stateFile);
    if (rd.kind !== 'ours') throw new Error('no run dir');
    const sup1 = supervisorAlive(rd)!.pid;
    const burn1 = await pidOf('burn');
    // The CPU the first burn process used, read just before it dies with the supervisor.
    await sleep(600);
    const burnCpu1 = processCpuMs(burn1)!;
    process.kill(sup1, 'SIGKILL');
    await until('a new supervisor', () => {
      const s = supervisorAlive(rd);
      return s !== null && s.pid !== sup1;
    });
    // The test plan's digests are placeholders, so the new supervisor does not re-apply the kept plan by itself: apply does.
    await apply(p, opts(), () => undefined);
    await until('burn forked again', async () => {
      try {
        const pid = await pidOf('burn');
        return pid !== undefined && pid !== burn1;
      } catch {
        return false;
      }
    });
    await sleep(1000);
    const burn2 = await pidOf('burn');
    const burnCpu2Before = processCpuMs(burn2)!;
    // Each guest process is in its cgroup (where the host lets the supervisor make them), and none is left after destroy.
    const cg = detectCgroups();
    const cgDir = cg.cpu ? join(cg.cpu, cgroupName(rd.token)) : null;
    if (cgDir) expect(readFileSync(join(cgDir, 'burn.0', 'cgroup.procs'), 'utf8').split('\n')).toContain(String(burn2));
    await destroy(opts(), () => undefined);
    if (cgDir) expect(existsSync(cgDir)).toBe(false);

    // --- The audit trail.
    const v = verifyAudit(auditPath(stateFile));
    expect(v.problems).toEqual([]);
    expect(v.ok).toBe(true);
    const records: AuditRecord[] = [];
    await audit({ ...opts(), follow: false }, (r) => records.push(r));
    const events = records.map((r) => r.event);
    const first = records.find((r) => r.event === 'apply')!;
    expect(first.who).toMatchObject({ pid: process.pid, uid: process.getuid!(), checked: true, via: 'mclc' });
    expect(first.plan_digest).toBe('p1');
    expect(records.find((r) => r.event === 'apply_done')).toMatchObject({ created: ['burn', 'web'] });
    expect(records.filter((r) => r.event === 'fork').map((r) => r.instance).sort()).toEqual(['burn', 'burn', 'web', 'web', 'web']);
    expect(records.find((r) => r.event === 'exit' && r.instance === 'web')).toMatchObject({ pid: webPid, exit: 'killed by SIGKILL' });
    expect(records.find((r) => r.event === 'restart')).toMatchObject({ instance: 'web', restarts: 1, counted: true });
    expect(events.filter((e) => e === 'supervisor_start')).toHaveLength(2);
    expect(records.filter((r) => r.event === 'apply')).toHaveLength(2);
    expect(records.find((r) => r.event === 'destroy')!.who).toMatchObject({ pid: process.pid, checked: true });
    expect(events.slice(-2)).toEqual(['destroy_done', 'supervisor_stop']);
    expect(records.filter((r) => r.event === 'stop').map((r) => r.instance).sort()).toEqual(['burn', 'web']);

    // --- The ledger: sums of deltas, across both supervisors.
    const byInstance = summarizeUsage(ledgerPath(stateFile), 'instance', null);
    const burn = byInstance.rows.find((r) => r.key === 'burn')!;
    const web = byInstance.rows.find((r) => r.key === 'web')!;
    // The first burn process: everything up to its last sample before the SIGKILL (sampled every 200 ms) is there;
    // the second: sampled as it was stopped, so at least what it had used before destroy.
    const burnAccounted = burn.cpu_seconds * 1000;
    expect(burnAccounted).toBeGreaterThanOrEqual(burnCpu1 - 300 + burnCpu2Before - 50);
    expect(burnAccounted).toBeLessThanOrEqual(burnCpu1 + burnCpu2Before + 2000);
    expect(burn.cpu_seconds).toBeGreaterThan(0.3);
    expect(web.cpu_seconds).toBeLessThan(0.2);
    expect(web.forks).toBe(3);
    expect(web.restarts).toBe(1);
    expect(burn.forks).toBe(2);
    expect(burn.peak_rss_bytes).toBeGreaterThan(0);
    expect(web.memory_byte_seconds).toBeGreaterThan(0);
    expect(web.uptime_seconds).toBeGreaterThan(1);

    // By label (organisation): the same figures, and the total row is the sum of the rows.
    const byLabel = await usage({ ...opts(), by: 'label', since: null });
    expect(byLabel.rows.map((r) => r.key)).toEqual(['orgA', 'orgB']);
    expect(byLabel.rows[1].cpu_seconds).toBeCloseTo(burn.cpu_seconds, 6);
    for (const f of ['cpu_seconds', 'memory_byte_seconds', 'uptime_seconds', 'forks', 'restarts', 'denials'] as const) {
      expect(byLabel.total[f]).toBeCloseTo(byLabel.rows.reduce((n, r) => n + r[f], 0), 6);
      expect(byLabel.total[f]).toBeCloseTo(byInstance.total[f], 6);
    }
    // --since after everything: nothing.
    expect(summarizeUsage(ledgerPath(stateFile), 'label', new Date(Date.now() + 60_000)).records).toBe(0);

    // Appended, never rewritten: the file only grows, and a line that is not a record is skipped, not fatal.
    writeFileSync(ledgerPath(stateFile), readFileSync(ledgerPath(stateFile), 'utf8') + 'not json\n');
    expect(summarizeUsage(ledgerPath(stateFile), 'label', null).skipped).toBe(1);
  }, 90_000);
});

// The memory cgroup the supervisor makes clones' cgroups under, as it will find it (v2, or the v1 memory hierarchy).
const memCg = detectCgroups();
const noMemCg = memCg.memory === null ? memCg.missing.join('; ') || 'no memory cgroup' : null;
/** The kernel's count of OOM kills on the whole host (it only grows). */
const hostOomKills = () => Number(/^oom_kill (\d+)$/m.exec(readFileSync('/proc/vmstat', 'utf8'))?.[1] ?? NaN);

describe.skipIf(noMemCg !== null)(`a clone over its memory limit (skipped only where no memory cgroup can be made: ${noMemCg ?? 'none missing'})`, () => {
  it('is killed by the kernel, named in the audit trail and status, restarted by its policy; another clone is untouched', async () => {
    // 80 MiB and no overhead: the hog (a process touching 100 MiB a second) reaches its limit within a second.
    process.env[QEMU_OVERHEAD_ENV] = '0';
    try {
      const limit = 80 << 20;
      const p = plan([inst('web'), inst('hog', { memory_bytes: limit, restart: { policy: 'on_failure', max_retries: 1 } })]);
      const kills0 = hostOomKills();
      await apply(p, opts(), () => undefined);
      const of = async (id: string) => (await status(opts())).instances.find((i) => i.id === id)!;
      const web0 = (await of('web')).clones[0].pid!;
      // Killed, restarted once (the policy's one retry), killed again, then left down.
      await until('hog given up on', async () => (await of('hog')).clones[0].not_restarted !== undefined, 30_000);

      const hog = (await of('hog')).clones[0];
      expect(hog).toMatchObject({ restarts: 1, last_exit: 'killed by SIGKILL', not_restarted: "1 restart(s) reached the policy's limit (max 1)" });
      expect(hog.pid).toBeUndefined();
      expect(hog.health).toMatchObject({ verdict: 'qemu_gone' });
      expect(hog.health!.detail).toContain("the kernel killed it for going over its memory limit (80 MiB with QEMU's overhead)");
      // The kernel did it (the supervisor read each kill from the clone's cgroup, recorded below; the host counts them too).
      expect(hostOomKills() - kills0).toBeGreaterThanOrEqual(2);
      // The neighbour, in a cgroup of its own: the same process, still running.
      const web = (await of('web')).clones[0];
      expect(web).toMatchObject({ pid: web0, state: 'running', restarts: 0 });
      expect(readFileSync(`/proc/${web0}/stat`, 'utf8').split(') ')[1][0]).toMatch(/[RS]/);

      const records: AuditRecord[] = [];
      await audit({ ...opts(), follow: false }, (r) => records.push(r));
      const hogPids = records.filter((r) => r.event === 'fork' && r.instance === 'hog').map((r) => r.pid);
      expect(hogPids).toHaveLength(2);
      const ooms = records.filter((r) => r.event === 'oom_killed');
      expect(ooms).toEqual(hogPids.map((pid) => expect.objectContaining({ instance: 'hog', clone: 0, pid, memory_limit_bytes: limit })));
      const hogEvents = records.filter((r) => r.instance === 'hog' && r.event !== 'fork_ready').map((r) => r.event);
      expect(hogEvents).toEqual(expect.arrayContaining(['exit', 'oom_killed', 'restart', 'not_restarted']));
      expect(records.find((r) => r.event === 'restart' && r.instance === 'hog')).toMatchObject({ restarts: 1, counted: true });
      expect(records.filter((r) => r.instance === 'web').map((r) => r.event)).not.toContain('exit');
      expect(verifyAudit(auditPath(stateFile)).ok).toBe(true);
    } finally {
      delete process.env[QEMU_OVERHEAD_ENV];
    }
  }, 60_000);
});
