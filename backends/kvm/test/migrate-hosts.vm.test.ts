// Moving a running clone between the supervisors of two hosts, on real QEMU
// (TCG where KVM is missing). The two hosts are two workspaces of the same
// plan on this machine, each with its own state, run directory, supervisor,
// broker and link identity, talking over loopback; they share this machine's
// template cache, where real hosts would each build the template from the
// same content hash. The caller stays at home and calls the store through
// the home broker while the store moves: every read gives the write before
// it (no call lost, none served twice, the store's memory moved with it).

import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Plan } from '@mcl/plan';
import { apply, destroy, logs, status } from '../src/lifecycle/commands';
import { linkIdentity } from '../src/lifecycle/links';
import { audit } from '../src/lifecycle/report-commands';
import { migrateIn, migrateOut } from '../src/lifecycle/migrate-commands';
import { runDirFor } from '../src/lifecycle/daemon';
import { detectCgroups } from '../src/lifecycle/cgroups';
import { readState } from '@mcl/plan/state-store';
import { planOf, repoRoot } from './fixtures/plans';
import { lifecycleOptions, qemuPidsUnder, until } from './fixtures/vm';

let home: string;
let away: string;
let plan: Plan;
const opts = (ws: string) => lifecycleOptions(ws, { supervisorCommand: [process.execPath, join(repoRoot, 'cli/bin/mclc.mjs')] });
const certs: Record<string, string> = {};

/** The caller's lines at home: `count I prev ANSWER`, or a failure. */
async function counts(ws: string): Promise<{ i: number; text: string }[]> {
  const out: { i: number; text: string }[] = [];
  await logs('caller', { ...opts(ws), follow: false }, (l) => {
    const m = /^count (\d+) (.*)$/.exec(l.text.trim());
    if (m) out.push({ i: Number(m[1]), text: m[2] });
  });
  return out;
}

/** Every count since the caller started: consecutive, each read giving the write before it. */
function checkCounts(lines: { i: number; text: string }[]) {
  // A restarted caller (none is expected) would count from 1 again: the numbers are one run.
  expect(lines.map((l) => l.i)).toEqual(lines.map((_, k) => k + 1));
  for (const l of lines) {
    if (l.i === 1) expect(l.text).toMatch(/miss/);
    else expect(l.text).toContain(`"value":"${l.i - 1}"`);
  }
}

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'mcl-mh1-'));
  away = mkdtempSync(join(tmpdir(), 'mcl-mh2-'));
  for (const ws of [home, away]) cpSync(join(__dirname, 'fixtures/migrate-hosts'), ws, { recursive: true });
  plan = planOf(home, 'tally.mcl');
  // The same sources give the same plan on both hosts.
  expect(planOf(away, 'tally.mcl').digests.plan).toBe(plan.digests.plan);
  await apply(plan, opts(home), () => undefined);
  await apply(plan, opts(away), () => undefined);
  certs.node1 = (await linkIdentity(opts(home), 'node1')).cert;
  certs.node2 = (await linkIdentity(opts(away), 'node2')).cert;
}, 600_000);

afterAll(async () => {
  const dirs = [home, away].filter(Boolean).map((ws) => runDirFor(join(ws, '.mcl', 'state.json')));
  for (const ws of [home, away]) if (ws) await destroy(opts(ws), () => undefined).catch(() => undefined);
  for (const d of dirs) expect(qemuPidsUnder(d)).toEqual([]);
  for (const ws of [home, away]) if (ws) rmSync(ws, { recursive: true, force: true });
}, 120_000);

describe('moving a clone between two hosts\' supervisors', () => {
  it('moves the store while the caller calls it: nothing lost or served twice; status shows moved_to and kept', async () => {
    await until('the caller to count', async () => (await counts(home)).length >= 3, 120_000);
    const keep = await migrateIn(
      { ...opts(away), planDigest: plan.digests.plan, instance: 'store', clone: 0, target: 'node2', from: { target: 'node1', cert: certs.node1 }, listen: { host: '127.0.0.1', port: 0 }, mode: 'precopy' },
      () => undefined,
    );
    expect(keep.cert).toBe(certs.node2);
    expect(keep.template_built).toBe(false);
    const events: string[] = [];
    const r = await migrateOut(
      { ...opts(home), instance: 'store', clone: 0, to: { target: 'node2', host: '127.0.0.1', port: keep.port, cert: keep.cert }, mode: 'precopy' },
      (e) => events.push(e.message),
    );
    console.log(JSON.stringify({ migrate: r }));
    expect(r).toMatchObject({ instance: 'store', clone: 0, from: 'node1', to: 'node2', mode: 'precopy' });
    expect(r.bytes_sent).toBeGreaterThan(1024 * 1024);
    expect(r.hold_ms).toBeGreaterThan(0);

    const st = await status(opts(home));
    const moved = st.instances.find((i) => i.id === 'store')!.clones[0];
    expect(moved.moved_to?.target).toBe('node2');
    expect(moved.pid).toBeUndefined();
    const there = await status(opts(away));
    expect(there.kept).toEqual([expect.objectContaining({ instance: 'store', clone: 0, from: 'node1', state: 'running' })]);
    // Where the host has cgroups, the kept QEMU runs in the cgroup of its instance's clone, with the limits it has at home.
    if (detectCgroups().version !== 'none') {
      const cg = readFileSync(`/proc/${there.kept![0].pid}/cgroup`, 'utf8');
      expect(cg).toMatch(/(:memory:|^0::)\/(.+\/)?mcl-[0-9a-f]+\/(.+\/)?store\.0$/m);
    }
    expect(readState(join(home, '.mcl', 'state.json'))?.moved).toEqual([expect.objectContaining({ instance: 'store', clone: 0, to: 'node2' })]);

    // The moved store goes on answering the caller at home, with the memory it had.
    const before = (await counts(home)).length;
    await until('the caller to go on', async () => (await counts(home)).length >= before + 5, 120_000);
    checkCounts(await counts(home));
  }, 600_000);

  it('leaves the clone serving at home when the destination QEMU dies mid-move', async () => {
    const keep = await migrateIn(
      { ...opts(away), planDigest: plan.digests.plan, instance: 'caller', clone: 0, target: 'node2', from: { target: 'node1', cert: certs.node1 }, listen: { host: '127.0.0.1', port: 0 }, mode: 'precopy' },
      () => undefined,
    );
    const kept = (await status(opts(away))).kept!.find((k) => k.instance === 'caller')!;
    let killed = false;
    await expect(
      migrateOut({ ...opts(home), instance: 'caller', clone: 0, to: { target: 'node2', host: '127.0.0.1', port: keep.port, cert: keep.cert }, mode: 'precopy' }, (e) => {
        // Once the stream flows, the destination QEMU is killed.
        if (!killed && /migration active/.test(e.message)) {
          killed = true;
          setTimeout(() => process.kill(kept.pid, 'SIGKILL'), 200);
        }
      }),
    ).rejects.toThrow(/goes on running on the source/);
    expect(killed).toBe(true);
    const st = await status(opts(home));
    expect(st.instances.find((i) => i.id === 'caller')!.clones[0].moved_to).toBeUndefined();
    const before = (await counts(home)).length;
    await until('the caller to go on at home', async () => (await counts(home)).length >= before + 3, 120_000);
    checkCounts(await counts(home));
    // Both moves are in the home host's audit trail, the failed one with its reason.
    const records: Record<string, unknown>[] = [];
    await audit({ ...opts(home), follow: false }, (r) => records.push(r as Record<string, unknown>));
    const moves = records.filter((r) => r.event === 'migrate');
    expect(moves.map((r) => [r.instance, r.outcome, r.to])).toEqual([
      ['store', 'moved', 'node2'],
      ['caller', 'failed', 'node2'],
    ]);
    expect(moves[0]).toMatchObject({ from: 'node1', mode: 'precopy' });
    expect(moves[0].bytes_sent).toBeGreaterThan(0);
    expect(String(moves[1].error)).toMatch(/goes on running on the source/);
  }, 600_000);

  it('moves the caller by its own pages: megabytes instead of the whole RAM, and it counts on there where it was', async () => {
    const keep = await migrateIn(
      { ...opts(away), planDigest: plan.digests.plan, instance: 'caller', clone: 0, target: 'node2', from: { target: 'node1', cert: certs.node1 }, listen: { host: '127.0.0.1', port: 0 }, mode: 'pages' },
      () => undefined,
    );
    const last = (await counts(home)).length;
    const r = await migrateOut({ ...opts(home), instance: 'caller', clone: 0, to: { target: 'node2', host: '127.0.0.1', port: keep.port, cert: keep.cert }, mode: 'pages' }, () => undefined);
    console.log(JSON.stringify({ migrate: r }));
    expect(r.mode).toBe('pages');
    expect(r.bytes_sent).toBeLessThan(32 * 1024 * 1024);
    // Its console is on the other host now: the guest goes on from the count it had here.
    const kept = join(runDirFor(join(away, '.mcl', 'state.json')), 'clones', 'caller.0.k', 'console.log');
    const there = () =>
      readFileSync(kept, 'utf8')
        .split('\n')
        .map((l) => /^count (\d+) (.*)$/.exec(l.trim()))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => ({ i: Number(m[1]), text: m[2] }));
    await until('the moved caller to count there', () => there().length >= 3, 120_000);
    const home2 = await counts(home);
    // A line the guest was writing when it stopped is cut in two: its start in the console here, its end on
    // the other host. At most that one line is incomplete; its call was answered (the next read shows it).
    const all = [...home2, ...there()];
    const cut = all.filter((l) => !/^prev (\{"hit":.*\}|\{"miss".*)$/.test(l.text));
    expect(cut.length).toBeLessThanOrEqual(1);
    const whole = all.filter((l) => !cut.includes(l));
    expect(there()[0].i).toBeGreaterThanOrEqual(last);
    const lines = whole.filter((l, k) => whole.findIndex((x) => x.i === l.i) === k);
    const numbers = Array.from({ length: Math.max(...lines.map((l) => l.i)) }, (_, k) => k + 1).filter((i) => !cut.some((c) => c.i === i));
    expect(lines.map((l) => l.i)).toEqual(numbers);
    for (const l of lines) if (l.i > 1) expect(l.text).toContain(`"value":"${l.i - 1}"`);
  }, 600_000);

  it('brings a moved clone home when it ends on the other host: restarted at home, no longer moved', async () => {
    const kept = (await status(opts(away))).kept!.find((k) => k.instance === 'store' && k.state === 'running')!;
    process.kill(kept.pid, 'SIGKILL');
    const back = await until(
      'the store to run at home again',
      async () => {
        const c = (await status(opts(home))).instances.find((i) => i.id === 'store')!.clones[0];
        return c.state === 'running' && c.pid !== undefined && !c.moved_to ? c : undefined;
      },
      120_000,
    );
    expect(back.last_exit).toMatch(/SIGKILL/);
    const moved = () => readState(join(home, '.mcl', 'state.json'))?.moved ?? [];
    await until('the state to forget the move', () => !moved().some((m) => m.instance === 'store'), 30_000);
    expect(moved()).toEqual([expect.objectContaining({ instance: 'caller' })]);
  }, 300_000);

  it('destroy on the home host stops the moved clone on the other host too', async () => {
    const awayDir = runDirFor(join(away, '.mcl', 'state.json'));
    await destroy(opts(home), () => undefined);
    await until('the kept clone to stop', async () => ((await status(opts(away))).kept ?? []).every((k) => k.state === 'exited'), 30_000);
    await destroy(opts(away), () => undefined);
    expect(qemuPidsUnder(awayDir)).toEqual([]);
  }, 120_000);
});
