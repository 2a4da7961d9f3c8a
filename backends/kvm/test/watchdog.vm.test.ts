// The supervisor's watchdog on real QEMU: a SIGKILLed supervisor takes its
// guests with it, the watchdog starts it again, and the new supervisor applies
// the plan kept in the run directory at once, so the deployment runs again
// (instances forked again, the exposure answering) with the same token. Then
// destroy leaves no process of the deployment: no watchdog, no supervisor, no
// QEMU.

import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, destroy, status } from '../src/lifecycle/commands';
import { runDirFor, supervisorAlive, watchdogAlive } from '../src/lifecycle/daemon';
import { DEPLOYMENT_ENV, findRunDir, type RunDir } from '../src/lifecycle/rundir';
import { planOf } from './fixtures/plans';
import { alive, http, lifecycleOptions, qemuPidsUnder, until } from './fixtures/vm';

const PORT = 19080 + (process.pid % 1000);
let ws: string;
let runDir: string;
const opts = () => lifecycleOptions(ws);
const own = (): RunDir => {
  const f = findRunDir(opts().stateFile);
  if (f.kind !== 'ours') throw new Error(`no run directory of this deployment: ${f.kind}`);
  return f;
};

/** Pids of every live process whose environment carries the token. */
function carrying(token: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/environ`, 'latin1').split('\0').includes(`${DEPLOYMENT_ENV}=${token}`) && alive(Number(d))) out.push(Number(d));
    } catch {
      // Gone, or another user's.
    }
  }
  return out;
}

beforeAll(async () => {
  ws = mkdtempSync(join(tmpdir(), 'mcl-watchdog-'));
  cpSync(join(__dirname, 'fixtures/watchdog'), ws, { recursive: true });
  // The port is moved in the source, not in the plan, so the plan's digests stay true to it.
  const src = join(ws, 'watchdog.mcl');
  writeFileSync(src, readFileSync(src, 'utf8').replace('on tcp 8080', `on tcp ${PORT}`));
  runDir = runDirFor(join(ws, '.mcl', 'state.json'));
  const r = await apply(planOf(ws, 'watchdog.mcl'), opts(), () => undefined);
  expect(r.created).toEqual(['front', 'idle']);
}, 300_000);

afterAll(async () => {
  await destroy(opts(), () => undefined).catch(() => undefined);
  expect(qemuPidsUnder(runDir)).toEqual([]);
  rmSync(ws, { recursive: true, force: true });
}, 120_000);

describe('the supervisor watchdog on QEMU', () => {
  it('brings the deployment back after the supervisor is SIGKILLed, and destroy leaves nothing behind', async () => {
    await until('the exposure to answer', async () => (await http(PORT, '/').catch(() => null))?.body === 'front: up\n');
    const rd = own();
    const sup = supervisorAlive(rd)!;
    const watchdog = watchdogAlive(rd)!;
    expect(watchdog).not.toBeNull();
    const before = qemuPidsUnder(runDir);
    expect(before.length).toBeGreaterThanOrEqual(2);

    process.kill(sup.pid, 'SIGKILL');
    // Its guests die with it (parent-death signal), then everything comes back.
    const back = await until(
      'the deployment to run again',
      async () => {
        const s = await status(opts());
        const running = s.supervisor.running && s.supervisor.pid !== sup.pid && s.instances.every((i) => i.clones.length > 0 && i.clones.every((c) => c.state === 'running'));
        if (!running) return undefined;
        const r = await http(PORT, '/').catch(() => null);
        return r?.body === 'front: up\n' ? s : undefined;
      },
      180_000,
    );
    expect(back.supervisor).toMatchObject({ running: true, restarts: 1 });
    expect(back.instances.map((i) => i.id).sort()).toEqual(['front', 'idle']);
    // The deployment is the same one: same token, same watchdog, and the state agrees with what runs.
    expect(own().token).toBe(rd.token);
    expect(watchdogAlive(rd)?.pid).toBe(watchdog.pid);
    expect(back.warnings ?? []).toEqual([]);
    const after = qemuPidsUnder(runDir);
    for (const p of before) expect(after).not.toContain(p);
    expect(carrying(rd.token)).toContain(back.supervisor.pid);

    await destroy(opts(), () => undefined);
    await until('every process of the deployment to end', () => carrying(rd.token).length === 0, 20_000);
    expect(alive(watchdog.pid)).toBe(false);
    expect(qemuPidsUnder(runDir)).toEqual([]);
  }, 300_000);
});
