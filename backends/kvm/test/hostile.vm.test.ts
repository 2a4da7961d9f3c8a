// A hostile guest on real QEMU: malformed, oversized, wrongly typed,
// out-of-order and flooding frames are refused and counted by the broker,
// while the same channels keep carrying good calls and the honest guests
// keep running. And a hostile or copied workspace beside the deployment: a
// copy of it or a planted state naming its QEMU processes and run directory
// stops and removes none of them; every process carries the deployment's
// token; template RAM files are private.

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, destroy, logs, status } from '../src/lifecycle/commands';
import { runDirFor } from '../src/lifecycle/daemon';
import { DEPLOYMENT_ENV, findRunDir } from '../src/lifecycle/rundir';
import { listTemplates } from '../src/vm/index';
import { readState } from '@mcl/plan/state-store';
import { planOf } from './fixtures/plans';
import { alive, lifecycleOptions, qemuPidsUnder, until } from './fixtures/vm';

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

describe('a hostile workspace beside the deployment', () => {
  const others: string[] = [];
  afterAll(() => {
    for (const d of others) rmSync(d, { recursive: true, force: true });
  });

  it('every QEMU process carries the deployment token, and template RAM files are private', async () => {
    const rd = findRunDir(join(ws, '.mcl', 'state.json'));
    expect(rd.kind).toBe('ours');
    const token = rd.kind === 'ours' ? rd.token : '';
    const pids = qemuPidsUnder(runDir);
    expect(pids.length).toBeGreaterThanOrEqual(3);
    for (const pid of pids) expect(readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0')).toContain(`${DEPLOYMENT_ENV}=${token}`);
    const templates = await listTemplates({ cacheDir: process.env.MCL_CACHE_DIR });
    expect(templates.length).toBeGreaterThan(0);
    for (const t of templates.filter((x) => existsSync(x.memPath))) expect(lstatSync(t.memPath).mode & 0o777).toBe(0o600);
  }, 60_000);

  it('cp -a of the workspace, then destroy in the copy: the original guests run on', async () => {
    const pids = qemuPidsUnder(runDir);
    const parent = mkdtempSync(join(tmpdir(), 'mcl-hostile-copy-'));
    others.push(parent);
    const ws2 = join(parent, 'w');
    expect(spawnSync('cp', ['-a', ws, ws2]).status).toBe(0);
    const d = await destroy(lifecycleOptions(ws2), () => undefined);
    expect(d.destroyed).toEqual([]);
    for (const pid of pids) expect(alive(pid)).toBe(true);
    const s = await status(opts());
    expect(s.supervisor.running).toBe(true);
    for (const i of s.instances) expect(i.health).toBe('healthy');
  }, 120_000);

  it('a planted state naming the QEMU processes and the run directory: destroy stops and removes nothing of them', async () => {
    const pids = qemuPidsUnder(runDir);
    const ws3 = mkdtempSync(join(tmpdir(), 'mcl-planted-'));
    others.push(ws3);
    const real = readState(join(ws, '.mcl', 'state.json'))!;
    mkdirSync(join(ws3, '.mcl'));
    const data = real.backend_data as { processes: { pid: number }[] };
    writeFileSync(join(ws3, '.mcl', 'state.json'), JSON.stringify({ ...real, backend_data: { ...data, run_dir: runDir, processes: pids.map((pid, i) => ({ instance: 'x', clone: i, pid, start_time: null, dir: runDir })) } }));
    await destroy(lifecycleOptions(ws3), () => undefined);
    for (const pid of pids) expect(alive(pid)).toBe(true);
    expect(existsSync(join(runDir, 'supervisor.sock'))).toBe(true);
    expect((await status(opts())).supervisor.running).toBe(true);
  }, 120_000);
});
