// The bounds on the supervisor's start and on its answer to status's ping
// come from the backend: KVM keeps its 15 s and 5 s, Xen (whose supervisor
// runs in dom0, a guest) gives its own; apply and status wait for exactly
// that, and status says so when a running supervisor did not answer in time.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as lifecycle from '@mcl/backend-kvm/lifecycle';
import { inst, plan as basePlan } from '../../kvm/test/fixtures/fakes';
import { PID_FILE, SOCKET } from '../../kvm/src/lifecycle/daemon';
import { ensureRunDir, type RunDir } from '../../kvm/src/lifecycle/rundir';
import { lifecycleBackend, pingTimeoutMs, supervisorStartMs } from '../src/index';

let ws: string;
beforeEach(() => {
  ws = mkdtempSync(join(tmpdir(), 'mcl-xen-start-'));
});
afterEach(() => rmSync(ws, { recursive: true, force: true }));

describe("the supervisor's start bound", () => {
  it('is 15 s on KVM and the runtime environment\'s on Xen (120 s by default)', () => {
    expect(lifecycle.SUPERVISOR_START_MS).toBe(15_000);
    expect(supervisorStartMs({})).toBe(120_000);
    expect(supervisorStartMs({ MCL_XEN_SUPERVISOR_START_MS: '600000' })).toBe(600_000);
    // Nonsense falls back to the default rather than to no wait at all.
    expect(supervisorStartMs({ MCL_XEN_SUPERVISOR_START_MS: '5' })).toBe(120_000);
    expect(supervisorStartMs({ MCL_XEN_SUPERVISOR_START_MS: 'soon' })).toBe(120_000);
    expect(lifecycleBackend.supervisorStartMs).toBe(supervisorStartMs());
  });

  it("is what apply waits for a supervisor that does not answer", async () => {
    const p = basePlan([inst('web')], []);
    p.target.backend = 'xen';
    // A "supervisor" that never opens its socket and ends on its own.
    const command = [process.execPath, '-e', 'setTimeout(() => {}, 3000)'];
    const t0 = Date.now();
    const err = await lifecycle
      .apply(p, { workspace: ws, stateFile: join(ws, '.mcl', 'state.json'), lockTimeoutMs: 0, supervisorCommand: command, signal: new AbortController().signal, replace: [], readyTimeoutMs: 1000 } as never, () => undefined, { name: 'xen', supervisorStartMs: 700 })
      .catch((e: Error) => e);
    expect(String(err)).toMatch(/the supervisor did not answer on .* within 700 ms/);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});

describe("status's wait for the supervisor's answer", () => {
  const stateFile = () => join(ws, '.mcl', 'state.json');
  let child: ChildProcess | null = null;
  afterEach(() => {
    child?.kill('SIGKILL');
    child = null;
  });

  /** A stand-in supervisor of the deployment (its token in its environment) that answers every request after `delayMs`. */
  async function slowSupervisor(delayMs: number): Promise<RunDir> {
    mkdirSync(join(ws, '.mcl'), { recursive: true, mode: 0o700 });
    const rd = ensureRunDir(stateFile());
    const script = `
      const net = require('node:net');
      const clone = { index: 0, state: 'running', pid: process.pid, restarts: 0, rss_bytes: 134217728 };
      net.createServer((s) => s.on('data', (b) => {
        const op = JSON.parse(b.toString().split('\\n')[0]).op;
        const result = op === 'ping' ? { pid: process.pid } : { pid: process.pid, uptime_ms: 1, plan_digest: null, instances: [{ id: 'web', component: 'Web', mode: 'singleton', health: 'healthy', clones: [clone] }] };
        setTimeout(() => s.write(JSON.stringify({ result }) + '\\n'), ${delayMs});
      })).listen(${JSON.stringify(join(rd.dir, SOCKET))}, () => process.stdout.write('up\\n'));`;
    child = spawn(process.execPath, ['-e', script], { env: { ...process.env, [lifecycle.DEPLOYMENT_ENV]: rd.token }, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => child!.stdout!.once('data', r));
    writeFileSync(join(rd.dir, PID_FILE), JSON.stringify({ pid: child.pid, start_time: null, started_at: new Date().toISOString() }));
    return rd;
  }

  it("is the backend's bound (30 s on Xen by default), and a supervisor that answers within it has its clones shown", async () => {
    expect(pingTimeoutMs({})).toBe(30_000);
    expect(pingTimeoutMs({ MCL_XEN_PING_TIMEOUT_MS: '90000' })).toBe(90_000);
    expect(pingTimeoutMs({ MCL_XEN_PING_TIMEOUT_MS: '5' })).toBe(30_000);
    expect(lifecycleBackend.pingTimeoutMs).toBe(pingTimeoutMs());
    await slowSupervisor(600);
    const opts = { workspace: ws, stateFile: stateFile(), lockTimeoutMs: 0, signal: new AbortController().signal } as never;
    const r = await lifecycle.status(opts, { name: 'xen', pingTimeoutMs: 5000 });
    expect(r.instances.flatMap((i) => i.clones).map((c) => c.rss_bytes)).toEqual([134217728]);
    expect(r.warnings ?? []).toEqual([]);
  });

  it('says so when the supervisor runs but does not answer within the bound, instead of showing no clone silently', async () => {
    const rd = await slowSupervisor(3000);
    const opts = { workspace: ws, stateFile: stateFile(), lockTimeoutMs: 0, signal: new AbortController().signal } as never;
    const r = await lifecycle.status(opts, { name: 'xen', pingTimeoutMs: 300 });
    expect(r.supervisor.running).toBe(false);
    expect(r.warnings?.map((w) => w.message)).toEqual([`the supervisor (pid ${child!.pid}) runs but did not answer within 300 ms: its instances and channels are not shown`]);
    expect(r.warnings?.[0].hint).toContain(rd.dir);
  });
});
