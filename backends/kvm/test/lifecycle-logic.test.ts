import { closeSync, ftruncateSync, openSync, readdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { diffInstances, startLayers, stopLayers } from '../src/lifecycle/diff';
import { cloneDirBase, Supervisor } from '../src/lifecycle/supervisor';
import type { BackendEvent } from '../src/lifecycle/events';
import { chan, FakeBroker, FakeRuntime, inst, plan } from './fixtures/fakes';
import { parseSmapsRollup, parseStatCpuMs } from '../src/lifecycle/procfs';
import { recordsDeployment, staleReason } from '@mcl/plan';
import type { DeploymentState, Plan } from '@mcl/plan';

const webstackChannels = [
  chan('web', 'auth', 'auth', 'auth'),
  chan('web', 'handler', 'handler', 'api'),
  chan('handler', 'app', 'app', 'orders'),
  chan('app', 'db', 'db', 'kv'),
  chan('app', 'audit', 'audit', 'logs'),
  chan('auth', 'audit', 'audit', 'logs'),
];
const ids = ['web', 'auth', 'handler', 'app', 'db', 'audit'];

describe('diff and order', () => {
  it('classifies instances by digest and rejects unknown --replace ids', () => {
    const running = new Map([
      ['a', 'd-a'],
      ['b', 'old'],
      ['gone', 'x'],
      ['c', 'd-c'],
    ]);
    const d = diffInstances(running, [inst('a'), inst('b'), inst('c'), inst('new')], ['c', 'nope']);
    expect(d).toEqual({ create: ['new'], replace: ['b', 'c'], delete: ['gone'], keep: ['a'], unknown: ['nope'] });
  });

  it('starts providers before requirers', () => {
    expect(startLayers(ids, webstackChannels)).toEqual([['audit', 'db'], ['app', 'auth'], ['handler'], ['web']]);
    expect(stopLayers(ids, webstackChannels)).toEqual([['web'], ['handler'], ['app', 'auth'], ['audit', 'db']]);
  });

  it('orders only the instances given, and breaks a cycle deterministically', () => {
    expect(startLayers(['web', 'db'], webstackChannels)).toEqual([['db', 'web']]);
    const cyc = [chan('a', 'x', 'b', 'y'), chan('b', 'x', 'a', 'y'), chan('c', 'x', 'a', 'z'), chan('a', 'w', 'd', 'v')];
    expect(startLayers(['a', 'b', 'c', 'd'], cyc)).toEqual([['d'], ['a', 'b'], ['c']]);
  });
});

describe('stale plans', () => {
  const lineage = '0b9f3c2e-1d7a-4c55-9e0f-6a1b2c3d4e5f';
  const deployed = (p: Plan, serial: number): DeploymentState => ({
    format_version: '1.0',
    lineage,
    serial,
    backend: 'kvm',
    plan_digest: p.digests.plan,
    system: p.system,
    instances: p.instances,
    channels: p.channels,
    exposures: p.exposures,
  });
  const destroyed = (serial: number): DeploymentState => ({ ...deployed(plan([]), serial), plan_digest: null, system: null, instances: [], channels: [], exposures: [] });
  const mine = plan([inst('a')], [], 'mine');
  const theirs = plan([inst('a', { digest: 'other' }), inst('b')], [], 'theirs');

  it('refuses a plan made with no state once the state records a deployment, and says to plan again', () => {
    const r = staleReason(mine, deployed(theirs, 4));
    expect(r?.message).toMatch(/made when nothing was deployed.*deployment of S \(serial 4, 2 instances\).*overwrite/);
    expect(r?.hint).toMatch(/mclc plan/);
  });

  it('accepts a plan made with no state when there is no state or the deployment was destroyed', () => {
    expect(staleReason(mine, null)).toBeNull();
    expect(staleReason(mine, destroyed(5))).toBeNull();
    expect(recordsDeployment(destroyed(5))).toBe(false);
    expect(recordsDeployment(deployed(theirs, 4))).toBe(true);
  });

  it('accepts the very plan the deployment was applied from again, whatever its prior state', () => {
    expect(staleReason(mine, deployed(mine, 9))).toBeNull();
    const against = { ...mine, prior_state: { lineage, serial: 3 }, digests: { ...mine.digests, plan: 'mine-3' } };
    expect(staleReason(against, deployed(against, 4))).toBeNull();
  });

  it('needs the exact lineage and serial of a plan made against a state', () => {
    const against = { ...mine, prior_state: { lineage, serial: 3 }, digests: { ...mine.digests, plan: 'mine-3' } };
    expect(staleReason(against, deployed(theirs, 3))).toBeNull();
    expect(staleReason(against, deployed(theirs, 4))?.message).toMatch(/serial 3, but the state is .* serial 4/);
    expect(staleReason(against, { ...deployed(theirs, 3), lineage: 'another' })).not.toBeNull();
    expect(staleReason(against, null)?.message).toMatch(/absent/);
    // A destroyed deployment is a new serial: a plan made before the destroy is stale too.
    expect(staleReason(against, destroyed(4))).not.toBeNull();
  });
});

describe('clone directories', () => {
  it('keep short ids and shorten long ones so socket paths fit', () => {
    expect(cloneDirBase('shop.app')).toBe('shop.app');
    const long = 'organisation.department.team.service.worker';
    const b = cloneDirBase(long);
    expect(b.length).toBeLessThanOrEqual(29);
    expect(b.startsWith('organisation.departm~')).toBe(true);
    expect(cloneDirBase(long + 'x')).not.toBe(b);
  });
});

describe('procfs parsing', () => {
  it('reads smaps_rollup and stat figures', () => {
    const m = parseSmapsRollup('Rss:              76000 kB\nPss:              47000 kB\nPrivate_Clean:     1000 kB\nPrivate_Dirty:    20000 kB\n');
    expect(m).toEqual({ rss_bytes: 76000 * 1024, pss_bytes: 47000 * 1024, private_bytes: 21000 * 1024 });
    const stat = '1234 (qemu-system (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 999 0 0';
    expect(parseStatCpuMs(stat)).toBe(3000);
  });
});

describe('supervisor', () => {
  let dir: string;
  let rt: FakeRuntime;
  let sup: Supervisor;
  let events: BackendEvent[];
  const emit = (e: BackendEvent) => events.push(e);
  const req = { replace: [], readyTimeoutMs: 1000 };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mcl-sup-'));
    rt = new FakeRuntime();
    FakeBroker.all = [];
    events = [];
    sup = new Supervisor({ runtime: rt, brokerFactory: (p, h) => new FakeBroker(p, h), runDir: dir, backoffMs: 5, maxBackoffMs: 20 });
  });
  afterEach(async () => {
    await sup.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  const webstack = (over: Record<string, Partial<ReturnType<typeof inst>>> = {}, digest = 'p1') =>
    plan(ids.map((id) => inst(id, over[id] ?? {})), webstackChannels, digest);

  it('forks in dependency order, wires every port and opens exposures last', async () => {
    const r = await sup.apply(webstack({ handler: { replicas: 2, mode: 'replicas' } }), req, emit);
    expect(r.create).toEqual(['app', 'audit', 'auth', 'db', 'handler', 'web']);
    const order = rt.log.map((l) => l.split(' ')[1].split('.')[0]);
    const pos = (id: string) => order.indexOf(id);
    expect(pos('db')).toBeLessThan(pos('app'));
    expect(pos('app')).toBeLessThan(pos('handler'));
    expect(pos('handler')).toBeLessThan(pos('web'));
    expect(pos('auth')).toBeLessThan(pos('web'));
    expect(rt.live('handler')).toHaveLength(2);
    const b = FakeBroker.all[0];
    expect(b.listening).toBe(true);
    expect([...b.attached.keys()]).toContain('handler.1.app');
    expect([...b.attached.keys()]).toContain('db.0.kv');
    expect(r.processes).toHaveLength(7);
    expect(events.find((e) => e.type === 'warning')?.message).toMatch(/TCG/);
  });

  it('replaces only changed instances and leaves the others running', async () => {
    await sup.apply(webstack(), req, emit);
    const before = new Map(rt.live().map((c) => [c.req.instance.id, c.pid]));
    rt.log.length = 0;
    const r = await sup.apply(webstack({ app: { digest: 'd-app-2' } }, 'p2'), req, emit);
    expect(r.replace).toEqual(['app']);
    expect(r.keep).toEqual(['audit', 'auth', 'db', 'handler', 'web']);
    expect(rt.log).toEqual(['stop app.0', 'fork app.0']);
    for (const id of r.keep) expect(rt.live(id)[0].pid).toBe(before.get(id));
    expect(rt.live('app')[0].pid).not.toBe(before.get('app'));
    // Same wiring: the broker (and its counters) is kept.
    expect(FakeBroker.all).toHaveLength(1);
    // Only the changed instance's template was prepared.
    expect(rt.prepared.at(-1)).toEqual(['busybox-128m-1c-4p']);
  });

  it('applying the same plan twice changes nothing', async () => {
    await sup.apply(webstack(), req, emit);
    rt.log.length = 0;
    const r = await sup.apply(webstack(), req, emit);
    expect(r.keep).toHaveLength(6);
    expect(rt.log).toEqual([]);
  });

  it('removes instances dropped from the plan, requirers first, and rebuilds the broker when wiring changes', async () => {
    await sup.apply(webstack(), req, emit);
    rt.log.length = 0;
    const small = plan([inst('app'), inst('db')], [chan('app', 'db', 'db', 'kv')], 'p3');
    const r = await sup.apply(small, req, emit);
    expect(r.delete).toEqual(['audit', 'auth', 'handler', 'web']);
    expect(rt.log.indexOf('stop web.0')).toBeLessThan(rt.log.indexOf('stop handler.0'));
    expect(rt.log.indexOf('stop web.0')).toBeLessThan(rt.log.indexOf('stop auth.0'));
    expect(rt.log.indexOf('stop auth.0')).toBeLessThan(rt.log.indexOf('stop audit.0'));
    expect(FakeBroker.all).toHaveLength(2);
    expect(FakeBroker.all[0].closed).toBe(true);
    // Kept clones are attached to the new broker.
    expect([...FakeBroker.all[1].attached.keys()].sort()).toEqual(['app.0.db', 'db.0.kv']);
  });

  it('--replace forces a replacement and unknown ids are a usage error', async () => {
    await sup.apply(webstack(), req, emit);
    const r = await sup.apply(webstack(), { ...req, replace: ['db'] }, emit);
    expect(r.replace).toEqual(['db']);
    await expect(sup.apply(webstack(), { ...req, replace: ['nope'] }, emit)).rejects.toMatchObject({ kind: 'usage' });
  });

  it('restarts a killed guest by policy while the others keep running', async () => {
    await sup.apply(webstack({ db: { restart: { policy: 'on_failure', max_retries: 2 } }, audit: { restart: { policy: 'never', max_retries: 0 } } }), req, emit);
    const web = rt.live('web')[0];
    const db0 = rt.live('db')[0];
    db0.crash();
    await until(() => rt.live('db').length === 1);
    expect(rt.live('db')[0].pid).not.toBe(db0.pid);
    expect(web.alive).toBe(true);
    // The restarted clone is wired again.
    expect(FakeBroker.all[0].attached.get('db.0.kv')).toBeDefined();
    let st = sup.instanceStatus().find((i) => i.id === 'db')!;
    expect(st.clones[0].restarts).toBe(1);
    expect(st.clones[0].last_exit).toBe('killed by SIGKILL');
    // on_failure: a clean exit is not restarted.
    rt.live('db')[0].crash({ code: 0, signal: null });
    await sleep(50);
    expect(rt.live('db')).toHaveLength(0);
    st = sup.instanceStatus().find((i) => i.id === 'db')!;
    expect(st.health).toBe('failed');
    // never: not restarted.
    rt.live('audit')[0].crash();
    await sleep(50);
    expect(rt.live('audit')).toHaveLength(0);
  });

  it('gives up after max retries', async () => {
    await sup.apply(webstack({ db: { restart: { policy: 'on_failure', max_retries: 2 } } }), req, emit);
    for (let i = 0; i < 3; i++) {
      await until(() => rt.live('db').length === 1);
      rt.live('db')[0].crash({ code: 1, signal: null });
      await sleep(1);
    }
    await sleep(80);
    expect(rt.live('db')).toHaveLength(0);
    expect(sup.instanceStatus().find((i) => i.id === 'db')!.clones[0].restarts).toBe(2);
  });

  it("decides on-failure by the program's own exit status, not by how the supervisor then ended QEMU", async () => {
    await sup.apply(webstack({ db: { restart: { policy: 'on_failure', max_retries: 3 } } }), req, emit);
    // The program failed: the agent reported status 3 and QEMU was then killed, as every program exit ends.
    const first = rt.live('db')[0];
    first.crash({ code: null, signal: 'SIGKILL', program_code: 3 });
    await until(() => rt.live('db').length === 1 && rt.live('db')[0] !== first);
    let st = sup.instanceStatus().find((i) => i.id === 'db')!;
    expect(st.clones[0].last_exit).toBe('program exited with status 3');
    expect(st.clones[0].restarts).toBe(1);
    // The program succeeded: not restarted, and status says so and why.
    rt.live('db')[0].crash({ code: null, signal: 'SIGKILL', program_code: 0 });
    await sleep(60);
    expect(rt.live('db')).toHaveLength(0);
    st = sup.instanceStatus().find((i) => i.id === 'db')!;
    expect(st.clones[0]).toMatchObject({
      state: 'crashed',
      restarts: 1,
      last_exit: 'program exited with status 0',
      not_restarted: 'it exited successfully and the restart policy is on-failure',
    });
  });

  it('backs off on restarts whose fork fails, even after a long stable run, and status says why and when', async () => {
    const s2 = new Supervisor({ runtime: rt, brokerFactory: (p, h) => new FakeBroker(p, h), runDir: dir, backoffMs: 5, maxBackoffMs: 40, stableAfterMs: 20 });
    try {
      await s2.apply(webstack(), req, emit);
      // Stable for longer than stableAfterMs, then the guest dies and every restart fails.
      await sleep(40);
      rt.failFork = (r) => r.instance.id === 'db';
      const forks = () => rt.log.filter((l) => l === 'fork db.0').length;
      const before = forks();
      rt.live('db')[0].crash();
      await sleep(400);
      const attempts = forks() - before;
      // 5, 10, 20, 40, 40, ... ms: about 12 attempts in 400 ms. Without backoff on failed forks, about 80.
      expect(attempts).toBeGreaterThanOrEqual(3);
      expect(attempts).toBeLessThanOrEqual(16);
      const c = s2.instanceStatus().find((i) => i.id === 'db')!.clones[0];
      expect(c.state).toBe('restarting');
      expect(c.last_exit).toBe('killed by SIGKILL');
      expect(c.last_error).toMatch(/fork of db failed/);
      expect(c.next_restart_in_ms).toBeGreaterThanOrEqual(0);
      expect(c.next_restart_in_ms).toBeLessThanOrEqual(40);
      // Once forks work again the clone comes back and the error is gone.
      rt.failFork = null;
      await until(() => rt.live('db').length === 1);
      await until(() => s2.instanceStatus().find((i) => i.id === 'db')!.clones[0].state === 'running');
      const back = s2.instanceStatus().find((i) => i.id === 'db')!.clones[0];
      expect(back.last_error).toBeUndefined();
      expect(back.next_restart_in_ms).toBeUndefined();
    } finally {
      await s2.shutdown();
    }
  });

  it('forks a clone whose helper process died again without counting it against its policy', async () => {
    await sup.apply(webstack({ db: { restart: { policy: 'never', max_retries: 0 } } }), req, emit);
    const db0 = rt.live('db')[0];
    db0.crash({ code: null, signal: 'SIGKILL', helper: 'its QEMU zygote died' });
    await until(() => rt.live('db').length === 1 && rt.live('db')[0] !== db0);
    const c = sup.instanceStatus().find((i) => i.id === 'db')!.clones[0];
    expect(c).toMatchObject({ state: 'running', restarts: 0, last_exit: 'killed by SIGKILL: its QEMU zygote died' });
    // Its own crash still follows the policy.
    rt.live('db')[0].crash();
    await sleep(60);
    expect(rt.live('db')).toHaveLength(0);
    expect(sup.instanceStatus().find((i) => i.id === 'db')!.clones[0].not_restarted).toBe('the restart policy is never');
  });

  it('restarts a clone whose console log grew past 2 GiB, keeping the log by a rename rather than reading it', async () => {
    await sup.apply(webstack(), req, emit);
    const log = join(dir, 'clones', 'db.0', 'console.log');
    // Sparse: 3 GiB that take no disk.
    const fd = openSync(log, 'w');
    ftruncateSync(fd, 3 * 2 ** 30);
    closeSync(fd);
    const ino = statSync(log).ino;
    const db0 = rt.live('db')[0];
    db0.crash();
    await until(() => rt.live('db').length === 1 && rt.live('db')[0] !== db0);
    expect(statSync(`${log}.1`).ino).toBe(ino);
    // The restart tells the new console log why it happened.
    expect(rt.live('db')[0].req.consoleHeader).toBe('--- mcl: clone 0 forked again (restart 1) after: killed by SIGKILL ---');
    // Restarts keep at most the configured number of earlier logs.
    for (let i = 0; i < 5; i++) {
      const c = rt.live('db')[0];
      closeSync(openSync(log, 'w'));
      c.crash();
      await until(() => rt.live('db').length === 1 && rt.live('db')[0] !== c);
    }
    // (The fake clone writes no console, so after the last restart there is no current log yet.)
    expect(readdirSync(join(dir, 'clones', 'db.0')).filter((f) => f.startsWith('console.log')).sort()).toEqual(['console.log.1', 'console.log.2', 'console.log.3']);
  });

  it('a second apply queued behind an interrupted one converges', async () => {
    rt.forkDelayMs = 5;
    const p = webstack();
    const first = sup.apply(p, req, emit);
    const second = sup.apply(p, req, emit);
    await first;
    const r2 = await second;
    expect(r2.keep).toHaveLength(6);
    expect(rt.live()).toHaveLength(6);
  });

  it('a failed fork fails the apply with the instance named', async () => {
    rt.failFork = (r) => r.instance.id === 'app';
    await expect(sup.apply(webstack(), req, emit)).rejects.toMatchObject({ kind: 'failure', message: /instance app did not start/ });
    // The next apply retries what is missing and leaves the rest.
    rt.failFork = null;
    const r = await sup.apply(webstack(), req, emit);
    expect(rt.live()).toHaveLength(6);
    expect(r.keep).toContain('db');
  });

  it('an apply that changes a created instance replaces its live clones, keeps the broker and tells the creator', async () => {
    const farm = (digest: string, planDigest: string) =>
      plan(
        [
          inst('coord'),
          inst('w', { mode: 'created', replicas: 0, digest, created_by: { instance: 'coord', port: 'workers', max: 2, params: {}, detached: false } }),
        ],
        [chan('coord', 'workers', 'w', 'jobs')],
        planDigest,
      );
    await sup.apply(farm('d-w', 'p1'), req, emit);
    expect(rt.live('w')).toHaveLength(0);
    const hooks = FakeBroker.all[0].hooks;
    const h0 = await hooks.onCreate!('w', { instance: 'coord', clone: 0 }, { job: 'a' });
    const h1 = await hooks.onCreate!('w', { instance: 'coord', clone: 0 }, { job: 'b' });
    expect(rt.live('w')).toHaveLength(2);
    const coordPid = rt.live('coord')[0].pid;
    rt.log.length = 0;
    // The created instance's type changed (its digest), its wiring did not.
    const r = await sup.apply(farm('d-w-2', 'p2'), req, emit);
    expect(r.replace).toEqual(['w']);
    expect(r.keep).toEqual(['coord']);
    expect(rt.live('w')).toHaveLength(0);
    expect(rt.log.sort()).toEqual([`stop w.${h0}`, `stop w.${h1}`]);
    expect(rt.live('coord')[0].pid).toBe(coordPid);
    // The broker is kept; it was told before the clones stopped, so the creator forgets their handles.
    expect(FakeBroker.all).toHaveLength(1);
    expect(FakeBroker.all[0].gone.sort()).toEqual([`w[${h0}]: its instance was replaced by an apply`, `w[${h1}]: its instance was replaced by an apply`]);
    // The creator creates new ones, of the new type.
    const h2 = await hooks.onCreate!('w', { instance: 'coord', clone: 0 }, { job: 'c' });
    expect(rt.live('w').map((c) => [c.req.index, c.req.instance.digest])).toEqual([[h2, 'd-w-2']]);
    expect(sup.instanceStatus().find((i) => i.id === 'w')!.clones.map((c) => c.created_by)).toEqual(['coord[0]']);
  });

  it('forks a clone per session from a warm pool and disposes it on close', async () => {
    const p = plan([inst('trap', { mode: 'per_session', replicas: 2, max_sessions: 3, restart: { policy: 'never', max_retries: 0 } }), inst('rec')], [chan('trap', 'recorder', 'rec', 'logs')]);
    await sup.apply(p, req, emit);
    expect(rt.live('trap')).toHaveLength(2);
    expect(rt.live('trap').every((c) => c.paused)).toBe(true);
    const hooks = FakeBroker.all[0].hooks;
    const s1 = await hooks.onSessionOpen('trap');
    const clone = rt.live('trap').find((c) => c.req.index === s1)!;
    expect(clone.paused).toBe(false);
    expect(FakeBroker.all[0].attached.get(`trap.${s1}.recorder`)).toBeDefined();
    await until(() => rt.live('trap').filter((c) => c.paused).length === 2);
    await hooks.onSessionOpen('trap');
    await hooks.onSessionOpen('trap');
    await expect(hooks.onSessionOpen('trap')).rejects.toThrow(/limit of 3 sessions/);
    await hooks.onSessionClose('trap', s1);
    expect(clone.alive).toBe(false);
    expect(FakeBroker.all[0].attached.get(`trap.${s1}.recorder`)).toBeUndefined();
  });

  it('replaces a warm clone that died with a fresh warm one', async () => {
    const p = plan([inst('trap', { mode: 'per_session', replicas: 2, max_sessions: 3 }), inst('rec')], [chan('trap', 'recorder', 'rec', 'logs')]);
    await sup.apply(p, req, emit);
    const [w0] = rt.live('trap');
    w0.crash();
    await until(() => rt.live('trap').length === 2 && !rt.live('trap').includes(w0));
    expect(rt.live('trap').every((c) => c.paused)).toBe(true);
    const s = sup.instanceStatus().find((i) => i.id === 'trap')!;
    expect(s.clones.map((c) => c.state)).toEqual(['paused', 'paused']);
  });

  it('fails an apply whose exposure port another program holds before changing anything', async () => {
    const other = createServer();
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const port = (other.address() as { port: number }).port;
    try {
      const p = { ...webstack(), exposures: [{ host_port: port, transport: 'tcp' as const, instance: 'web', port: 'http', protocol: 'std.http.Http', ops: [{ name: 'request', kind: 'call' as const, input: 'std.http.Request', output: 'std.http.Response' }], invariants: { max_message_bytes: 1048576, rate: null, timeout_ms: 30000, max_inflight: 64, order: null } }] };
      const err = await sup.apply(p, req, emit).catch((e) => e);
      expect(err).toMatchObject({ kind: 'failure' });
      expect(err.message).toMatch(new RegExp(`nothing was changed: tcp ${port} \\(exposure web\\.http\\): in use by another program`));
      expect(err.hint).toContain(`stop the program listening on 127.0.0.1:${port}`);
      expect(rt.forks).toHaveLength(0);
      expect(FakeBroker.all).toHaveLength(0);
      // Once the port is free, the same plan applies.
      await new Promise((r) => other.close(r));
      const r = await sup.apply(p, req, emit);
      expect(r.create).toHaveLength(6);
      expect(r.exposures).toEqual([{ host_port: port, instance: 'web', port: 'http' }]);
    } finally {
      other.close();
    }
  });

  it('a listen that failed after the check is retried by the next apply of the same plan', async () => {
    // Port 0 always binds, so the check before the apply passes.
    const p = { ...webstack(), exposures: [{ host_port: 0, transport: 'tcp' as const, instance: 'web', port: 'http', protocol: 'std.http.Http', ops: [{ name: 'request', kind: 'call' as const, input: 'std.http.Request', output: 'std.http.Response' }], invariants: { max_message_bytes: 1048576, rate: null, timeout_ms: 30000, max_inflight: 64, order: null } }] };
    FakeBroker.failListen = 'cannot listen on 127.0.0.1:0 for exposure tcp:0->web.http: listen EADDRINUSE';
    const err = await sup.apply(p, req, emit).catch((e) => e);
    expect(err).toMatchObject({ kind: 'failure', message: /EADDRINUSE/, hint: /stop the program listening on that port/ });
    const r = await sup.apply(p, req, emit);
    expect(r.keep).toHaveLength(6);
    expect(FakeBroker.all).toHaveLength(1);
    expect(FakeBroker.all[0].listenCalls).toBe(2);
    expect(FakeBroker.all[0].listening).toBe(true);
    expect(r.exposures).toEqual([{ host_port: 0, instance: 'web', port: 'http' }]);
    // Open now: a third apply does not listen again.
    await sup.apply(p, req, emit);
    expect(FakeBroker.all[0].listenCalls).toBe(2);
  });

  it('reports the broker\'s open and accepted connections of each exposure, not its calls', async () => {
    const p = { ...webstack(), exposures: [{ ...webstack().exposures[0], host_port: 0, transport: 'tcp' as const, instance: 'web', port: 'http', protocol: 'std.http.Http' }] };
    await sup.apply(p, req, emit);
    const zero = { frames_to_provider: 0, frames_to_requirer: 0, bytes_to_provider: 0, bytes_to_requirer: 0, replies: 0, errors: 0, timeouts: 0, late_replies: 0, violations: {}, violations_total: 0, latency_ms: { p50: 0, p99: 0, max: 0, samples: 0 } };
    FakeBroker.all[0].fakeCounters = [{ ...zero, channel: 'tcp:0->web.http', calls: 40, connections: { open: 3, total: 7, shed: 0, refused: 0, timed_out: 1 } }];
    expect(sup.exposureStatus()).toEqual([{ host_port: 0, instance: 'web', port: 'http', listening: true, connections_open: 3, connections_total: 7 }]);
  });

  it('shows a session that ended out of protocol order in the channel status, with the instance', async () => {
    await sup.apply(webstack(), req, emit);
    const id = webstackChannels[1].id;
    FakeBroker.all[0].hooks.onViolation({ time: 0, instance: 'web', clone: 0, port: 'handler', channel: id, kind: 'order_incomplete', detail: 'the session ended (the port disconnected) in state 1' });
    const ch = sup.channelStatus().find((c) => c.id === id)!;
    expect(ch.recent_violations).toEqual([{ time: '1970-01-01T00:00:00.000Z', kind: 'order_incomplete', detail: 'the session ended (the port disconnected) in state 1', instance: 'web', clone: 0 }]);
    expect(sup.channelStatus().filter((c) => c.id !== id).every((c) => c.recent_violations.length === 0)).toBe(true);
  });

  it('destroy stops everything', async () => {
    await sup.apply(webstack(), req, emit);
    const ids2 = await sup.destroy(emit);
    expect(ids2).toEqual(['app', 'audit', 'auth', 'db', 'handler', 'web']);
    expect(rt.live()).toHaveLength(0);
    expect(FakeBroker.all[0].closed).toBe(true);
    expect(sup.processes()).toEqual([]);
    // Processes the runtime started ahead of time go too.
    expect(rt.releases).toBe(1);
  });

  it('lets the runtime keep processes for later forks beside the clone directories, where the reaper looks', async () => {
    await sup.apply(webstack(), req, emit);
    const spare = join(dir, 'clones');
    expect(rt.forks.every((c) => c.req.spareDir === spare)).toBe(true);
    // Restarts fork with it too.
    const db = rt.live('db')[0];
    db.crash();
    await until(() => rt.live('db').length === 1 && rt.live('db')[0] !== db);
    expect(rt.live('db')[0].req.spareDir).toBe(spare);
    expect(rt.releases).toBe(0);
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 2000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(2);
  }
}
