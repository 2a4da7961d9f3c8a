// Health from outside the guest on real QEMU: `status` tells a guest that
// stopped answering (its agent stopped, the vCPUs still running) from a
// program that exited with a failure (the guest alive to report it) and from
// a QEMU process that was killed, and shows the last console lines.

import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, destroy, status } from '../src/lifecycle/commands';
import { runDirFor } from '../src/lifecycle/daemon';
import { planOf, repoRoot } from './fixtures/plans';
import { lifecycleOptions, qemuPidsUnder, until } from './fixtures/vm';

let ws: string;
let runDir: string;
// The supervisor from the built CLI (scripts/setup.sh builds it): started from source through tsx it can take
// longer than apply waits for it on a loaded machine.
const bundle = join(repoRoot, 'cli/dist/mclc.mjs');
const opts = () => lifecycleOptions(ws, existsSync(bundle) ? { supervisorCommand: [process.execPath, bundle] } : {});
const clone0 = async (id: string) => (await status(opts())).instances.find((i) => i.id === id)!.clones[0];

beforeAll(async () => {
  ws = mkdtempSync(join(tmpdir(), 'mcl-health-'));
  cpSync(join(__dirname, 'fixtures/health'), ws, { recursive: true });
  runDir = runDirFor(join(ws, '.mcl', 'state.json'));
  // Probed every half second (the supervisor inherits the environment of the apply that starts it).
  process.env.MCL_HEALTH_INTERVAL_MS = '500';
  await apply(planOf(ws, 'health.mcl'), opts(), () => undefined);
}, 300_000);

afterAll(async () => {
  delete process.env.MCL_HEALTH_INTERVAL_MS;
  await destroy(opts(), () => undefined).catch(() => undefined);
  expect(qemuPidsUnder(runDir)).toEqual([]);
  rmSync(ws, { recursive: true, force: true });
}, 120_000);

describe('health from outside the guest on QEMU', () => {
  it('tells a hung guest from a crashed program and a gone QEMU', async () => {
    const steady = await until('steady to be probed ok', async () => {
      const c = await clone0('steady');
      return c.health?.verdict === 'ok' ? c : undefined;
    });
    expect(steady.health).toMatchObject({ vcpu: 'running' });
    expect(steady.health!.agent_ms).toBeGreaterThanOrEqual(0);

    const hang = await until('hang to be seen hung', async () => {
      const c = await clone0('hang');
      return c.health?.verdict === 'guest_hung' ? c : undefined;
    }, 60_000);
    expect(hang.state).toBe('running');
    expect(hang.health).toMatchObject({ vcpu: 'running', agent_ms: null });
    expect(hang.health!.console_tail!.join('\n')).toMatch(/hang: the agent is stopped/);

    const crash = await until('crash to end', async () => {
      const c = await clone0('crash');
      return c.state === 'crashed' ? c : undefined;
    }, 60_000);
    expect(crash.health).toMatchObject({ verdict: 'program_exited' });
    expect(crash.health!.detail).toMatch(/program exited with status 3/);

    process.kill(steady.pid!, 'SIGKILL');
    const gone = await until('steady to be gone', async () => {
      const c = await clone0('steady');
      return c.state === 'crashed' ? c : undefined;
    });
    expect(gone.health).toMatchObject({ verdict: 'qemu_gone' });
    expect(gone.health!.console_tail!.join('\n')).toMatch(/steady: running/);
  }, 180_000);
});
