// The webstack example on real QEMU guests (TCG where KVM does not work):
// apply, an HTTP round trip web -> auth -> handler -> app -> db and back,
// refused frames counted while good ones pass, a killed guest restarted,
// a source change replacing only what changed, SIGKILL of apply, destroy.

import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Plan } from '@mcl/plan';
import { apply, destroy, logs, status } from '../src/lifecycle/commands';
import { runDirFor } from '../src/lifecycle/daemon';
import { readState } from '@mcl/plan/state-store';
import { planOf as compilePlan, repoRoot, withHostPorts, withWholePathPattern } from './fixtures/plans';

const planOf = (root: string, entry: string) => withWholePathPattern(compilePlan(root, entry));
/** The plan made against the deployment's current state, as `mclc plan` makes it (apply refuses a plan made with no state once something is deployed). */
const againstState = (p: Plan): Plan => {
  const st = readState(opts().stateFile);
  return st ? { ...p, prior_state: { lineage: st.lineage, serial: st.serial } } : p;
};
import { fromPool, http, lifecycleOptions, qemuPidsUnder, sleep, sparePids, until, zygotePids } from './fixtures/vm';

const PORT = 18080 + (process.pid % 1000);
let ws: string;
let runDir: string;
let plan: Plan;
const opts = () => lifecycleOptions(ws);
const auth = { authorization: 'Bearer demo-token' };

function pidsOf(s: Awaited<ReturnType<typeof status>>): Record<string, number[]> {
  return Object.fromEntries(s.instances.map((i) => [i.id, i.clones.map((c) => c.pid ?? -1)]));
}

beforeAll(async () => {
  ws = mkdtempSync(join(tmpdir(), 'mcl-web-'));
  cpSync(join(repoRoot, 'examples/webstack'), ws, { recursive: true });
  runDir = runDirFor(join(ws, '.mcl', 'state.json'));
  plan = withHostPorts(planOf(ws, 'webstack.mcl'), () => PORT);
  const r = await apply(plan, opts(), () => undefined);
  expect(r.created).toEqual(['app', 'audit', 'auth', 'db', 'handler', 'web']);
}, 300_000);

afterAll(async () => {
  const d = await destroy(opts(), () => undefined).catch((e) => e);
  expect(qemuPidsUnder(runDir)).toEqual([]);
  rmSync(ws, { recursive: true, force: true });
  return d;
}, 120_000);

describe('webstack on QEMU', () => {
  it('serves an HTTP request through web, auth, handler, app and db with real data', async () => {
    expect((await http(PORT, '/')).body).toMatch(/mcl webstack/);
    const placed = await http(PORT, '/orders?item=book&quantity=2', { method: 'POST', headers: auth });
    expect(placed).toEqual({ status: 201, body: '{"id":"1"}\n' });
    const again = await http(PORT, '/orders?item=pen&quantity=3', { method: 'POST', headers: auth });
    expect(again.body).toBe('{"id":"2"}\n');
    const got = await http(PORT, '/orders/1', { headers: auth });
    expect(got).toEqual({ status: 200, body: '{"user":"alice","item":"book","quantity":2}\n' });
    expect((await http(PORT, '/orders/9', { headers: auth })).status).toBe(404);
    // The app's limit (max_quantity = 5 in the system) is enforced by the app itself.
    const tooMany = await http(PORT, '/orders?item=book&quantity=7', { method: 'POST', headers: auth });
    expect(tooMany.status).toBe(422);
    expect((await http(PORT, '/orders/1')).status).toBe(401);
    // The caller's name is set by web from the token; a client cannot claim one.
    const spoof = await http(PORT, '/orders/1', { headers: { ...auth, 'x-mcl-user': 'mallory' } });
    expect(spoof.status).toBe(400);
    const lines: string[] = [];
    await logs('audit', { ...opts(), follow: false }, (l) => lines.push(l.text));
    expect(lines.join('\n')).toMatch(/order 1 placed by alice: 2 x book/);
  }, 120_000);

  it('refuses malformed, oversized and unknown frames, counts them in status, and keeps the channel working', async () => {
    const r = await http(PORT, '/probe');
    expect(r.body).toMatch(/denied \(malformed\)/);
    expect(r.body).toMatch(/denied \(schema\).*longer than the maximum 256/);
    expect(r.body).toMatch(/denied \(unknown_op\)/);
    expect(r.body).toMatch(/then a good call: .*"body":"anonymous"/);
    const s = await status(opts());
    const ch = s.channels.find((c) => c.id === 'web.auth->auth.auth')!;
    expect(ch.violations).toBeGreaterThanOrEqual(3);
    expect(ch.recent_violations.map((v) => v.kind)).toEqual(expect.arrayContaining(['malformed', 'schema', 'unknown_op']));
    expect(ch.frames_forward).toBeGreaterThan(0);
    expect(s.totals.clones).toBe(7);
    expect(s.totals.pss_bytes).toBeGreaterThan(0);
    expect(s.totals.pss_bytes).toBeLessThan(s.totals.rss_bytes);
    // The clones were forked from a zygote per template, which status lists with its memory, beside the
    // processes started ahead for the next forks.
    const zygotes = (s.helpers ?? []).filter((h) => h.role === 'zygote');
    expect(zygotes.length).toBeGreaterThanOrEqual(1);
    expect(zygotes.length).toBeLessThanOrEqual(s.instances.length);
    for (const z of zygotes) {
      expect(zygotePids(runDir)).toContain(z.pid);
      expect(z.pss_bytes).toBeGreaterThan(0);
      // It shares most of what it maps with its clones.
      expect(z.private_bytes).toBeLessThan(z.pss_bytes!);
    }
    for (const w of (s.helpers ?? []).filter((h) => h.role === 'waiting')) expect(sparePids(runDir)).toContain(w.pid);
  }, 60_000);

  it('restarts a killed guest by its policy while the others keep running', async () => {
    const before = pidsOf(await status(opts()));
    process.kill(before.db[0], 'SIGKILL');
    const s = await until('db restarted', async () => {
      const st = await status(opts());
      const db = st.instances.find((i) => i.id === 'db')!;
      return db.clones[0]?.state === 'running' && db.clones[0].pid !== before.db[0] ? st : undefined;
    });
    const db = s.instances.find((i) => i.id === 'db')!.clones[0];
    expect(db.restarts).toBe(1);
    // The restart took a QEMU process the runtime had started ahead of time in its pool directory.
    expect(fromPool(db.pid!)).toBe(true);
    expect(db.last_exit).toBe('killed by SIGKILL');
    const after = pidsOf(s);
    for (const id of ['web', 'auth', 'handler', 'app', 'audit']) expect(after[id]).toEqual(before[id]);
    // The new db is empty (state lived in the old guest's memory) but serves again.
    const placed = await until('an order placed after the restart', async () => {
      const r = await http(PORT, '/orders?item=mug&quantity=1', { method: 'POST', headers: auth });
      return r.status === 201 ? r : undefined;
    });
    expect(placed.body).toBe('{"id":"1"}\n');
    // `logs` shows the run before the restart too.
    const lines: string[] = [];
    await logs('db', { ...opts(), follow: false }, (l) => lines.push(l.text));
    expect(lines).toContain('--- mcl: clone 0 forked again (restart 1) after: killed by SIGKILL ---');
    expect(lines.filter((l) => l.startsWith('db: serving'))).toHaveLength(2);
  }, 120_000);

  it('after a source change replaces only the changed instance', async () => {
    const before = pidsOf(await status(opts()));
    const src = join(ws, 'webstack.mcl');
    writeFileSync(src, readFileSync(src, 'utf8').replace('app = App { max_quantity = 5 }', 'app = App { max_quantity = 8 }'));
    const next = againstState(withHostPorts(planOf(ws, 'webstack.mcl'), () => PORT));
    const r = await apply(next, opts(), () => undefined);
    expect(r.replaced).toEqual(['app']);
    expect(r.unchanged).toEqual(['audit', 'auth', 'db', 'handler', 'web']);
    const after = pidsOf(await status(opts()));
    expect(after.app).not.toEqual(before.app);
    for (const id of r.unchanged) expect(after[id]).toEqual(before[id]);
    const ok = await http(PORT, '/orders?item=book&quantity=7', { method: 'POST', headers: auth });
    expect(ok.status).toBe(201);
    plan = next;
  }, 180_000);

  it('two concurrent applies: the second fails naming the holder, or waits for it', async () => {
    let locked = false;
    const first = apply(plan, { ...opts(), replace: ['db'] }, (e) => {
      if (e.type === 'instance' && e.action === 'replace') locked = true;
    });
    await until('the first apply to be under way', () => locked);
    const err = await apply(plan, opts(), () => undefined).catch((e) => e);
    expect(err).toMatchObject({ kind: 'locked' });
    expect(err.message).toMatch(/locked by pid \d+ on .* \(apply since /);
    let waited = false;
    const second = await apply(plan, { ...opts(), lockTimeoutMs: 120_000 }, (e) => {
      if (e.phase === 'lock' && e.action === 'wait') waited = true;
    });
    const r1 = await first;
    expect(r1.replaced).toEqual(['db']);
    expect(second.unchanged).toHaveLength(6);
    expect(waited).toBe(true);
    expect(second.state.serial).toBe(r1.state.serial);
  }, 180_000);

  it('SIGKILL of apply midway, then apply again, converges with no orphan QEMU', async () => {
    // Replace two instances in a child apply and kill it while it forks.
    const planFile = join(ws, 'next.plan');
    const src = join(ws, 'webstack.mcl');
    writeFileSync(src, readFileSync(src, 'utf8').replace('"mcl webstack"', '"mcl webstack v2"').replace('max_keys: int(1..100000) = 1000', 'max_keys: int(1..100000) = 2000'));
    const next = againstState(withHostPorts(planOf(ws, 'webstack.mcl'), () => PORT));
    writeFileSync(planFile, JSON.stringify(next));
    const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'fixtures/apply-entry.ts'), planFile, opts().stateFile, JSON.stringify(opts().supervisorCommand)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Listen for the exit at once, so a child that ends early cannot leave the test waiting.
    const exited = new Promise((r) => child.once('exit', r));
    await Promise.race([new Promise<void>((res) => child.stderr.on('data', (d: Buffer) => d.toString().includes('"action":"replace"') && res())), exited]);
    child.kill('SIGKILL');
    await exited;
    const r = await apply(next, opts(), () => undefined);
    expect([...r.replaced, ...r.unchanged].sort()).toEqual(['app', 'audit', 'auth', 'db', 'handler', 'web']);
    await sleep(500);
    const st = readState(opts().stateFile)!;
    const recorded = (st.backend_data as { processes: { pid: number }[] }).processes.map((p) => p.pid).sort();
    // Besides the recorded clones only processes started ahead of time for the next forks run (at most one per
    // template; one may still be starting, before its pid file exists) and the zygotes they are forked from (one
    // per template).
    const others = await until('only recorded clones, waiting spares and zygotes', () => {
      const spares = sparePids(runDir);
      const zygotes = zygotePids(runDir);
      const rest = qemuPidsUnder(runDir).filter((p) => !spares.includes(p) && !zygotes.includes(p)).sort();
      return JSON.stringify(rest) === JSON.stringify(recorded) ? { spares, zygotes } : undefined;
    }, 30_000);
    const templates = new Set(next.instances.map((i) => i.template)).size;
    expect(others.spares.length).toBeLessThanOrEqual(templates);
    expect(others.zygotes.length).toBeLessThanOrEqual(templates);
    expect((await http(PORT, '/')).body).toMatch(/mcl webstack v2/);
  }, 240_000);
});
