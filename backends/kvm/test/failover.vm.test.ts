// Late binding on real QEMU (backends/kvm/test/fixtures/failover): the app's
// database port starts on the primary, fails over to the standby with a
// `rebind` from the guest, is refused an instance that is not a candidate
// (counted as a `rebind` violation), and moves back.

import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, destroy, logs, status } from '../src/lifecycle/commands';
import { runDirFor } from '../src/lifecycle/daemon';
import { planOf, repoRoot } from './fixtures/plans';
import { lifecycleOptions, qemuPidsUnder, until } from './fixtures/vm';

let ws: string;
let runDir: string;
// The built CLI starts the supervisor faster than the sources through tsx, as in streams.vm.test.ts.
const bundle = join(repoRoot, 'cli/dist/mclc.mjs');
const opts = () => lifecycleOptions(ws, existsSync(bundle) ? { supervisorCommand: [process.execPath, bundle] } : {});

async function logText(id: string): Promise<string> {
  const lines: string[] = [];
  await logs(id, { ...opts(), follow: false }, (l) => lines.push(l.text));
  return lines.join('\n');
}

beforeAll(async () => {
  ws = mkdtempSync(join(tmpdir(), 'mcl-failover-'));
  cpSync(join(import.meta.dirname, 'fixtures/failover'), ws, { recursive: true });
  runDir = runDirFor(join(ws, '.mcl', 'state.json'));
  await apply(planOf(ws, 'failover.mcl'), opts(), () => undefined);
}, 300_000);

afterAll(async () => {
  await destroy(opts(), () => undefined).catch(() => undefined);
  expect(qemuPidsUnder(runDir)).toEqual([]);
  rmSync(ws, { recursive: true, force: true });
}, 120_000);

describe('late binding between declared candidates', () => {
  it('fails over from the primary to the standby and back, and refuses an instance that is not a candidate', async () => {
    const text = await until(
      'the app finished',
      async () => {
        const t = await logText('app');
        return t.includes('app: done') ? t : undefined;
      },
      300_000,
    );
    expect(text).toMatch(/app: one answered \{"from":"primary","q":"one"\}/);
    expect(text).toMatch(/app: rebind standby: status 0 bound standby\.sql/);
    expect(text).toMatch(/app: two answered \{"from":"standby","q":"two"\}/);
    expect(text).toMatch(/app: rebind app: status 2/);
    expect(text).toMatch(/app: three answered \{"from":"standby","q":"three"\}/);
    expect(text).toMatch(/app: rebind primary: status 0 bound primary\.sql/);
    expect(text).toMatch(/app: four answered \{"from":"primary","q":"four"\}/);
    const st = await status(opts());
    const primary = st.channels.find((c) => c.id === 'app.db->primary.sql')!;
    const standby = st.channels.find((c) => c.id === 'app.db->standby.sql')!;
    expect(primary.frames_forward).toBeGreaterThanOrEqual(2);
    expect(standby.frames_forward).toBeGreaterThanOrEqual(2);
    expect([...primary.recent_violations, ...standby.recent_violations].map((v) => v.kind)).toEqual(['rebind']);
  }, 400_000);
});
