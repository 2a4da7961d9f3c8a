// A hostile guest on real QEMU: malformed, oversized, wrongly typed,
// out-of-order and flooding frames are refused and counted by the broker,
// while the same channels keep carrying good calls and the honest guests
// keep running.

import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, destroy, logs, status } from '../src/lifecycle/commands';
import { runDirFor } from '../src/lifecycle/supervise';
import { planOf } from './fixtures/plans';
import { lifecycleOptions, qemuPidsUnder, until } from './fixtures/vm';

let ws: string;
let runDir: string;
const opts = () => lifecycleOptions(ws);

beforeAll(async () => {
  ws = mkdtempSync(join(tmpdir(), 'mcl-hostile-'));
  cpSync(join(__dirname, 'fixtures/hostile'), ws, { recursive: true });
  runDir = runDirFor(join(ws, '.mcl', 'state.json'));
  await apply(planOf(ws, 'hostile.mcl'), opts(), () => undefined);
}, 300_000);

afterAll(async () => {
  await destroy(opts(), () => undefined).catch(() => undefined);
  expect(qemuPidsUnder(runDir)).toEqual([]);
  rmSync(ws, { recursive: true, force: true });
}, 120_000);

describe('a hostile guest', () => {
  it('is refused frame by frame while good calls go through', async () => {
    const text = await until(
      'the hostile program to finish',
      async () => {
        const lines: string[] = [];
        await logs('h', { ...opts(), follow: false }, (l) => lines.push(l.text));
        const t = lines.join('\n');
        return t.includes('hostile: done') ? t : undefined;
      },
      120_000,
    );
    expect(text).toMatch(/GOOD put: .*"ok":true/);
    expect(text).toMatch(/GOOD get: .*"value":"kept"/);
    expect(text).toMatch(/GOOD begin: .*"ok":true/);
    expect(text).toMatch(/GOOD work: .*"ok":true/);
    expect(text).toMatch(/GOOD end: .*"ok":true/);

    const s = await status(opts());
    const store = s.channels.find((c) => c.id === 'h.store->s.kv')!;
    const session = s.channels.find((c) => c.id === 'h.session->w.session')!;
    const kinds = (c: typeof store) => new Set(c.recent_violations.map((v) => v.kind));
    expect(store.violations).toBeGreaterThanOrEqual(3 + 30);
    // The last 20 are mostly the flood; the earlier kinds are counted in the total.
    expect(kinds(store).has('rate')).toBe(true);
    expect(session.violations).toBe(1);
    expect([...kinds(session)]).toEqual(['order']);
    expect(store.frames_backward).toBeGreaterThan(0);
    for (const i of s.instances) expect(i.health).toBe('healthy');
    // Every refusal is also in the supervisor's log, one line each with its kind.
    const log = readFileSync(join(runDir, 'supervisor.log'), 'utf8');
    for (const kind of ['malformed', 'oversize', 'schema', 'rate']) expect(log).toMatch(new RegExp(`denied ${kind} from h\\[0\\]\\.store`));
    expect(log).toMatch(/denied order from h\[0\]\.session/);
  }, 180_000);
});
