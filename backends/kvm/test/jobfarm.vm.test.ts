// Factory ports on real QEMU (examples/jobfarm): the coordinator creates a
// worker per job through its factory port, up to the bound; one more and a bad
// job name are refused; a worker it makes crash is restarted with the same
// handle and parameters; when the coordinator stops, its workers are
// destroyed with it.

import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, destroy, logs, status } from '../src/lifecycle/commands';
import { runDirFor } from '../src/lifecycle/daemon';
import { planOf, repoRoot } from './fixtures/plans';
import { lifecycleOptions, qemuPidsUnder, until } from './fixtures/vm';

let ws: string;
let runDir: string;
const opts = () => lifecycleOptions(ws);

async function logText(id: string): Promise<string> {
  const lines: string[] = [];
  await logs(id, { ...opts(), follow: false }, (l) => lines.push(l.text));
  return lines.join('\n');
}

beforeAll(async () => {
  ws = mkdtempSync(join(tmpdir(), 'mcl-farm-'));
  cpSync(join(repoRoot, 'examples/jobfarm'), ws, { recursive: true });
  runDir = runDirFor(join(ws, '.mcl', 'state.json'));
  await apply(planOf(ws, 'jobfarm.mcl'), opts(), () => undefined);
}, 300_000);

afterAll(async () => {
  await destroy(opts(), () => undefined).catch(() => undefined);
  expect(qemuPidsUnder(runDir)).toEqual([]);
  rmSync(ws, { recursive: true, force: true });
}, 120_000);

describe('a job farm whose coordinator creates its workers', () => {
  it('creates workers up to the bound, refuses one more and a bad job name, restarts a crashed worker, and destroys them with the coordinator', async () => {
    const text = await until(
      'the coordinator finished',
      async () => {
        const t = await logText('coordinator');
        return t.includes('coordinator: done') ? t : undefined;
      },
      400_000,
    );
    expect(text).toMatch(/created alpha as 0/);
    expect(text).toMatch(/created beta as 1/);
    expect(text).toMatch(/created gamma as 2/);
    expect(text).toMatch(/fourth create: status 2/);
    expect(text).toMatch(/bad job name: status 2/);
    expect(text).toMatch(/live: 0 1 2/);
    expect(text).toMatch(/worker 1 answered \{"job":"beta","n":3,"square":9\}/);
    expect(text).toMatch(/after restart worker 0 answered \{"job":"alpha","n":7,"square":49\}/);
    const store = await logText('store');
    expect(store).toMatch(/job gamma: 4 squared is 16/);
    // The coordinator stopped (restart never): its workers are gone with it.
    const s = await until(
      'workers destroyed with their coordinator',
      async () => {
        const st = await status(opts());
        const w = st.instances.find((i) => i.id === 'worker')!;
        return w.clones.length === 0 ? st : undefined;
      },
      120_000,
    );
    expect(s.instances.find((i) => i.id === 'worker')!.mode).toBe('created');
  }, 600_000);
});
