// The bound on the supervisor's start comes from the backend: KVM keeps its
// 15 s, Xen (whose supervisor runs in dom0, a guest) gives its own, and apply
// waits for exactly that bound.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as lifecycle from '@mcl/backend-kvm/lifecycle';
import { inst, plan as basePlan } from '../../kvm/test/fixtures/fakes';
import { lifecycleBackend, supervisorStartMs } from '../src/index';

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
