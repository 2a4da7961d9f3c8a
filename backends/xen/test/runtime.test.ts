// XenRuntime over the fake toolstack: both instance paths, the template's
// boot and park, failures at every step leaving no domain and no relay
// behind, domains ending from outside, the reaper, and the KVM supervisor
// (restart policy, destroy) running unchanged on domains.

import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Plan } from '@mcl/plan';
import { Supervisor } from '../../kvm/src/lifecycle/supervisor';
import { chan, FakeBroker, inst, plan as basePlan } from '../../kvm/test/fixtures/fakes';
import { XenRuntime, forkResetPool, instancePath } from '../src/xen-runtime';
import { deploymentTag, domainPrefix } from '../src/names';
import { FakeToolstack, type Step } from './fake-toolstack';

const TOKEN = 'a'.repeat(64);
const TAG = deploymentTag(TOKEN);
const FORK_HOST = { version: '4.17.7', hvm: true, hap: true, vmx: true, svm: false, mem_sharing: true, xsm: 'absent' as const };

function xenPlan(): Plan {
  const p = basePlan([inst('web'), inst('db')], [chan('web', 'db', 'db', 'kv')]);
  p.target.backend = 'xen';
  p.images = [{ name: 'busybox', base: 'busybox-static', kernel: 'debian-cloud', modules: [], files: [], digest: 'img1' }];
  p.templates = [{ id: 'busybox-128m-1c-4p', image: 'busybox', memory_bytes: 128 << 20, vcpus: 1, port_slots: 31, instance_count: 2 }];
  return p;
}

let dir: string;
let ts: FakeToolstack;

function runtime(over: Partial<ConstructorParameters<typeof XenRuntime>[0]> = {}): XenRuntime {
  return new XenRuntime({
    runDir: dir,
    token: TOKEN,
    toolstack: ts,
    buildImage: async () => ({ kernelPath: '/boot/vmlinuz', initrdPath: '/cache/x.cpio.gz', key: 'k', cached: true, elapsedMs: 0 }),
    consoleDir: join(dir, 'console'),
    pollMs: 20,
    parkDelayMs: 0,
    bootTimeoutMs: 2000,
    ...over,
  });
}

function request(p: Plan, id: string, index = 0, paused = false) {
  const d = mkdtempSync(join(dir, `${id}.${index}-`));
  return { instance: p.instances.find((i) => i.id === id)!, index, dir: d, readyTimeoutMs: 2000, paused };
}

const until = async (f: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mcl-xen-rt-'));
  ts = new FakeToolstack();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('the instance path', () => {
  it('forks on Intel VT-x with memory sharing and HAP, restores elsewhere, and says why', () => {
    expect(instancePath(FORK_HOST).path).toBe('fork');
    const nested = instancePath({ ...FORK_HOST, vmx: false, svm: true, mem_sharing: false });
    expect(nested.path).toBe('restore');
    expect(nested.why).toMatch(/without memory sharing.*not Intel VT-x/);
    expect(instancePath(FORK_HOST, 'restore').path).toBe('restore');
    expect(() => instancePath({ ...FORK_HOST, mem_sharing: false }, 'fork')).toThrow(/cannot fork domains: the hypervisor was built without memory sharing/);
  });

  it('reports the path and the unenforced policy as the accelerator', async () => {
    const a = await runtime().accelerator();
    expect(a.name).toBe('xen 4.17.7 (restore)');
    expect(a.note).toMatch(/restored from the parked template's saved image, not forked/);
    expect(a.note).toMatch(/no XSM\/FLASK/);
    ts.caps = FORK_HOST;
    expect((await runtime().accelerator()).name).toBe('xen 4.17.7 (fork, reset pool)');
    expect((await runtime({ forkReset: false }).accelerator()).name).toBe('xen 4.17.7 (fork)');
  });
});

describe('templates', () => {
  it('boots the template, waits for its agent, closes the control vchan and saves it', async () => {
    const rt = runtime();
    const p = xenPlan();
    await rt.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    const name = [...ts.images][0].replace(/^.*\//, '').replace(/\.img$/, '');
    expect(name).toMatch(new RegExp(`^${domainPrefix(TAG)}tpl\\.busybox-128m-1c-4p-[0-9a-f]{6}$`));
    expect(ts.calls.filter((c) => !c.startsWith('list') && !c.startsWith('check'))).toEqual([`create ${name}`, 'relay 1 0', 'unpause 1', 'save 1']);
    expect(ts.domains.size).toBe(0);
    expect(ts.relays.size).toBe(0);
    expect([...ts.images]).toEqual([join(dir, 'xen', `${name}.img`)]);
    const cfg = readFileSync(join(dir, 'xen', `${name}.cfg`), 'utf8');
    expect(cfg).toContain('type = "pvh"');
    expect(cfg).toContain('mcl.xen=1');
    expect(cfg).not.toContain('seclabel');
  });

  it('warns that per-session instances are restored per session on a restore host, and not on a fork host', async () => {
    const p = xenPlan();
    p.instances[0].mode = 'per_session';
    const warnings: string[] = [];
    await runtime().prepare(p, [], (e) => void (e.type === 'warning' && warnings.push(e.message)));
    expect(warnings).toEqual([expect.stringMatching(/^per-session instances \(web\) get a restore of their template per session on this host, which is slow/)]);
    ts.caps = FORK_HOST;
    warnings.length = 0;
    await runtime().prepare(p, [], (e) => void (e.type === 'warning' && warnings.push(e.message)));
    expect(warnings).toEqual([]);
  });

  it('uses the saved image of an earlier supervisor of the deployment again, and boots when it does not match', async () => {
    const p = xenPlan();
    await runtime().prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    ts.calls.length = 0;
    const events: string[] = [];
    await runtime().prepare(p, ['busybox-128m-1c-4p'], (e) => void (e.type === 'template' && events.push(e.action ?? '')));
    expect(ts.calls.filter((c) => !c.startsWith('list') && !c.startsWith('check'))).toEqual([]);
    expect(events).toEqual(['start', 'cached']);
    p.templates[0].memory_bytes = 256 << 20;
    ts.calls.length = 0;
    await runtime().prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    expect(ts.calls.filter((c) => c.startsWith('create') || c.startsWith('save'))).toHaveLength(2);
  });

  it('keeps the restored template paused as the parent on a fork host', async () => {
    ts.caps = FORK_HOST;
    const rt = runtime();
    await rt.prepare(xenPlan(), ['busybox-128m-1c-4p'], () => undefined);
    expect([...ts.domains.values()].map((d) => [d.name.replace(/-[0-9a-f]{6}$/, ''), d.state])).toEqual([[`${domainPrefix(TAG)}tpl.busybox-128m-1c-4p`, 'paused']]);
    await rt.release();
    expect(ts.domains.size).toBe(0);
  });

  for (const step of ['create', 'relay', 'unpause', 'save'] as Step[]) {
    it(`leaves no domain and no relay when ${step} fails`, async () => {
      ts.failNext(step);
      await expect(runtime().prepare(xenPlan(), ['busybox-128m-1c-4p'], () => undefined)).rejects.toThrow(`${step} failed`);
      expect(ts.domains.size).toBe(0);
      expect(ts.relays.size).toBe(0);
    });
  }

  it('leaves nothing when the guest never answers', async () => {
    ts.agentAnswers = false;
    await expect(runtime({ bootTimeoutMs: 200 }).prepare(xenPlan(), ['busybox-128m-1c-4p'], () => undefined)).rejects.toThrow(/did not answer/);
    expect(ts.domains.size).toBe(0);
    expect(ts.relays.size).toBe(0);
  });
});

describe('instances', () => {
  it('restores a clone under its own name, with a relay per port, and gives it its identity', async () => {
    const rt = runtime();
    const p = xenPlan();
    await rt.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    ts.calls.length = 0;
    const h = await rt.fork(request(p, 'web'));
    const name = `${domainPrefix(TAG)}web.0`;
    expect(ts.calls.filter((c) => !c.startsWith('list'))).toEqual([`restore ${name}`, 'relay 2 0', 'relay 2 1', 'unpause 2']);
    expect(Object.keys(h.portSockets)).toEqual(['db']);
    expect(typeof h.portSockets.db).not.toBe('string');
    expect([...ts.domains.values()].map((d) => d.name)).toEqual([name]);
    await h.stop();
    expect(ts.domains.size).toBe(0);
    expect(ts.relays.size).toBe(0);
    expect((await h.exited).signal).toBeNull();
  });

  it('forks and plumbs a clone on a fork host, and reports shared pages from the hypervisor', async () => {
    ts.caps = FORK_HOST;
    const rt = runtime();
    const p = xenPlan();
    await rt.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    ts.calls.length = 0;
    const h = await rt.fork(request(p, 'db', 3));
    const name = `${domainPrefix(TAG)}db.3`;
    expect(ts.calls.filter((c) => !c.startsWith('list'))).toEqual([`fork ${name}`, `plumb ${name}`, 'relay 3 0', 'relay 3 10', 'unpause 3']);
    await rt.poll();
    expect(h.memory?.()).toEqual({ rss_bytes: 32768 * 4096, pss_bytes: 2768 * 4096, private_bytes: 2768 * 4096 });
    await h.stop();
    await rt.release();
    expect(ts.domains.size).toBe(0);
  });

  for (const [step, host] of [
    ['restore', 'restore'],
    ['fork', 'fork'],
    ['plumb', 'fork'],
    ['relay', 'restore'],
    ['unpause', 'restore'],
    ['unpause', 'fork'],
  ] as [Step, string][]) {
    it(`leaves only the parked parent when ${step} fails on a ${host} host`, async () => {
      if (host === 'fork') ts.caps = FORK_HOST;
      // One restore: a failed restore is otherwise restored again (below).
      const rt = runtime({ restoreAttempts: 1 });
      const p = xenPlan();
      await rt.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
      const before = [...ts.domains.keys()];
      ts.failNext(step);
      await expect(rt.fork(request(p, 'web'))).rejects.toThrow(`${step} failed`);
      expect([...ts.domains.keys()]).toEqual(before);
      expect(ts.relays.size).toBe(0);
    });
  }

  it('restores a clone again when its guest dies while resuming, and says so', async () => {
    mkdirSync(join(dir, 'console'), { recursive: true });
    ts.consoleDir = join(dir, 'console');
    const rt = runtime();
    const p = xenPlan();
    await rt.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    ts.crashNextResumes = 2;
    ts.calls.length = 0;
    const h = await rt.fork(request(p, 'web'));
    const name = `${domainPrefix(TAG)}web.0`;
    expect(ts.calls.filter((c) => c.startsWith('restore'))).toEqual([`restore ${name}`, `restore ${name}`, `restore ${name}`]);
    expect(h.startNotes).toEqual([
      expect.stringMatching(/^restore 1 of 3 died while resuming \(domain gone: Kernel panic - not syncing: Fatal exception in interrupt; control connection closed/),
      expect.stringMatching(/^restore 2 of 3 died while resuming/),
    ]);
    expect([...ts.domains.values()].map((d) => d.name)).toEqual([name]);
    expect(readFileSync(h.consoleLog, 'utf8')).toMatch(/--- mcl: restore 2 of 3 died while resuming/);
    await h.stop();
    expect(ts.relays.size).toBe(0);
  });

  it('runs one xl restore at a time, while the guests of earlier restores resume', async () => {
    const rt = runtime();
    const p = xenPlan();
    await rt.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    ts.restoreDelayMs = 50;
    const clones = await Promise.all([rt.fork(request(p, 'web')), rt.fork(request(p, 'db')), rt.fork(request(p, 'web', 1))]);
    expect(ts.restoresAtOnce).toBe(1);
    expect(clones.length).toBe(3);
    for (const c of clones) await c.stop();
    // A failed restore releases the turn: the next one runs.
    ts.failNext('restore');
    const again = await rt.fork(request(p, 'db', 1));
    await again.stop();
    expect(ts.domains.size).toBe(0);
  });

  it('restores again when xl restore fails, leaving nothing of the failed restore behind', async () => {
    const rt = runtime();
    const p = xenPlan();
    await rt.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    ts.restoreLeavesDomain = true;
    ts.failNext('restore', 'libxl: error: libxl_create.c:1976:console_xswait_callback: domain 8 console tty: timed out');
    const h = await rt.fork(request(p, 'web'));
    expect(h.startNotes).toEqual([expect.stringMatching(/^restore 1 of 3 failed \(libxl: error: .*console tty: timed out\); restored again$/)]);
    expect([...ts.domains.values()].map((d) => d.name)).toEqual([`${domainPrefix(TAG)}web.0`]);
    await h.stop();
    expect(ts.domains.size).toBe(0);
    // With one attempt the failure is final, and the half-made domain is gone too.
    const one = runtime({ restoreAttempts: 1 });
    await one.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    ts.failNext('restore');
    await expect(one.fork(request(p, 'web'))).rejects.toThrow('restore failed');
    expect(ts.domains.size).toBe(0);
    expect(ts.relays.size).toBe(0);
  });

  it('gives up after the bound, leaving no domain, and does not restore again a guest that only answers late', async () => {
    const rt = runtime({ restoreAttempts: 2 });
    const p = xenPlan();
    await rt.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    ts.crashNextResumes = 5;
    await expect(rt.fork(request(p, 'web'))).rejects.toThrow(/control connection closed.*\(after 2 restores; restore 1 of 2 died while resuming/);
    expect(ts.domains.size).toBe(0);
    expect(ts.relays.size).toBe(0);
    ts.crashNextResumes = 0;
    ts.agentAnswers = false;
    ts.calls.length = 0;
    await expect(rt.fork({ ...request(p, 'web'), readyTimeoutMs: 200 })).rejects.toThrow(/did not answer|timed out/);
    expect(ts.calls.filter((c) => c.startsWith('restore'))).toHaveLength(1);
    expect(ts.domains.size).toBe(0);
  });

  it('reports a retried restore as a warning of apply and in the fork record', async () => {
    ts.crashNextResumes = 1;
    const rt = runtime();
    const records: { event: string; notes?: string[] }[] = [];
    const sup = new Supervisor({ runtime: rt, brokerFactory: (p, h) => new FakeBroker(p, h), runDir: dir, backoffMs: 10, probePort: async () => null, onRecord: (r) => void records.push(r) });
    const warnings: string[] = [];
    await sup.apply(xenPlan(), { replace: [], readyTimeoutMs: 2000 }, (e) => void (e.type === 'warning' && warnings.push(e.message)));
    expect(warnings.filter((w) => /died while resuming/.test(w))).toEqual([expect.stringMatching(/^restore 1 of 3 died while resuming/)]);
    expect(records.filter((r) => r.event === 'fork' && r.notes).length).toBe(1);
    await sup.destroy(() => undefined);
    expect(ts.domains.size).toBe(0);
  });

  it('leaves the clone paused with its relays until it is resumed (a warm clone for a session)', async () => {
    const rt = runtime();
    const p = xenPlan();
    await rt.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    const h = await rt.fork(request(p, 'web', 0, true));
    expect([...ts.domains.values()][0].state).toBe('paused');
    await h.resume();
    expect([...ts.domains.values()][0].state).toBe('running');
    await h.stop();
  });

  it('keeps a per-session fork reset for the next session, and destroys it on release', async () => {
    ts.caps = FORK_HOST;
    const rt = runtime({ forkReset: true });
    const p = xenPlan();
    p.instances[0].mode = 'per_session';
    await rt.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    const first = await rt.fork(request(p, 'web', 0));
    const domid = [...ts.domains.values()].find((d) => d.name.endsWith('web.0'))!.domid;
    await first.stop();
    expect(ts.domains.get(domid)?.state).toBe('paused');
    expect(ts.calls.slice(-2)).toEqual([`pause ${domid}`, `reset ${domid}`]);
    expect(ts.relays.size).toBe(0);
    ts.calls.length = 0;
    const second = await rt.fork(request(p, 'web', 1));
    expect(ts.calls.filter((c) => !c.startsWith('list'))).toEqual([`relay ${domid} 0`, `relay ${domid} 1`, `unpause ${domid}`]);
    await second.stop();
    // Without the option, or for an instance that is not per session, a stopped fork is destroyed.
    const db = await rt.fork(request(p, 'db', 0));
    await db.stop();
    expect([...ts.domains.values()].filter((d) => d.name.includes('db.'))).toEqual([]);
    await rt.release();
    expect(ts.domains.size).toBe(0);
  });

  it('keeps the reset pool by default on a fork host, and not with MCL_XEN_FORK_RESET=0 or on a restore host', async () => {
    expect(forkResetPool('fork', {})).toEqual({ on: true, why: expect.stringMatching(/reset to its parent/) });
    expect(forkResetPool('fork', { MCL_XEN_FORK_RESET: '0' })).toEqual({ on: false, why: 'MCL_XEN_FORK_RESET=0' });
    expect(forkResetPool('restore', {}).on).toBe(false);
    ts.caps = FORK_HOST;
    const p = xenPlan();
    p.instances[0].mode = 'per_session';
    for (const [env, kept] of [[undefined, true], ['0', false]] as const) {
      if (env === undefined) delete process.env.MCL_XEN_FORK_RESET;
      else process.env.MCL_XEN_FORK_RESET = env;
      try {
        const rt = runtime();
        await rt.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
        const h = await rt.fork(request(p, 'web', 0));
        await h.stop();
        expect([...ts.domains.values()].some((d) => d.name.endsWith('web.0'))).toBe(kept);
        await rt.release();
        expect(ts.domains.size).toBe(0);
      } finally {
        delete process.env.MCL_XEN_FORK_RESET;
      }
    }
  });

  it('forks afresh when a fork kept from an earlier session does not come back, and says so', async () => {
    ts.caps = FORK_HOST;
    const rt = runtime();
    const p = xenPlan();
    p.instances[0].mode = 'per_session';
    await rt.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    const first = await rt.fork(request(p, 'web', 0));
    const kept = [...ts.domains.values()].find((d) => d.name.endsWith('web.0'))!.domid;
    await first.stop();
    ts.failNext('unpause');
    ts.calls.length = 0;
    const second = await rt.fork(request(p, 'web', 1));
    expect(ts.domains.has(kept)).toBe(false);
    expect(ts.calls.filter((c) => /^(fork|destroy|unpause)/.test(c))).toEqual([`unpause ${kept}`, `destroy ${kept}`, expect.stringMatching(/^fork .*web\.1$/), expect.stringMatching(/^unpause \d+$/)]);
    expect(second.startNotes).toEqual([expect.stringMatching(/^a fork reset after an earlier session did not come back \(unpause failed \(injected\)\); forked afresh$/)]);
    await second.stop();
    await rt.release();
    expect(ts.domains.size).toBe(0);
  });

  it('destroys a per-session fork that cannot be reset, and forks the next session afresh', async () => {
    ts.caps = FORK_HOST;
    const rt = runtime();
    const p = xenPlan();
    p.instances[0].mode = 'per_session';
    await rt.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    const h = await rt.fork(request(p, 'web', 0));
    ts.failNext('reset');
    await h.stop();
    expect([...ts.domains.values()].map((d) => d.name.replace(/-[0-9a-f]{6}$/, ''))).toEqual([`${domainPrefix(TAG)}tpl.busybox-128m-1c-4p`]);
    ts.calls.length = 0;
    const next = await rt.fork(request(p, 'web', 1));
    expect(ts.calls.filter((c) => c.startsWith('fork'))).toEqual([expect.stringMatching(/web\.1$/)]);
    expect(next.startNotes).toEqual([]);
    await next.stop();
    await rt.release();
    expect(ts.domains.size).toBe(0);
  });

  it('gives each broker a port stream of its own: one destroyed leaves the relay and the guest\'s end open', async () => {
    const rt = runtime();
    const p = xenPlan();
    await rt.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    const h = await rt.fork(request(p, 'web'));
    const d = [...ts.domains.values()][0];
    const guest = d.guests.get(1)!;
    const first = h.portSockets.db as import('node:stream').Duplex;
    first.destroy();
    guest.toHost.write('{"t":"notify"}\n');
    const second = h.portSockets.db as import('node:stream').Duplex;
    const got = await new Promise<string>((r) => second.once('data', (b: Buffer) => r(b.toString())));
    expect(got).toBe('{"t":"notify"}\n');
    const sent = new Promise<string>((r) => guest.toGuest.once('data', (b: Buffer) => r(b.toString())));
    second.write('{"t":"reply"}\n');
    expect(await sent).toBe('{"t":"reply"}\n');
    expect(ts.relays.size).toBe(2);
    await h.stop();
  });

  it('notices a domain destroyed from outside', async () => {
    const rt = runtime();
    const p = xenPlan();
    await rt.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    const h = await rt.fork(request(p, 'web'));
    ts.kill([...ts.domains.keys()][0]);
    const exit = await h.exited;
    expect(exit.signal).toMatch(/its domain ending/);
    expect(ts.relays.size).toBe(0);
  });

  it('destroys a domain that shut down and nothing destroyed (a fork has no xl monitor)', async () => {
    const rt = runtime();
    const p = xenPlan();
    await rt.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    const h = await rt.fork(request(p, 'web'));
    [...ts.domains.values()][0].state = 'shutdown';
    expect((await h.exited).signal).toBe('its domain ending (domain shutdown)');
    await until(() => ts.domains.size === 0);
  });

  it('ends the clone with the program, and destroys its domain', async () => {
    ts.programExitStatus = 3;
    const rt = runtime();
    const p = xenPlan();
    await rt.prepare(p, ['busybox-128m-1c-4p'], () => undefined);
    const h = await rt.fork(request(p, 'web'));
    expect((await h.exited).program_code).toBe(3);
    await until(() => ts.domains.size === 0);
  });

  it('reaps only the domains named with its own deployment tag', async () => {
    const mine = `${domainPrefix(TAG)}web.0`;
    const other = `${domainPrefix(deploymentTag('b'.repeat(64)))}web.0`;
    await ts.create('x', `${domainPrefix(TAG)}tpl.t`);
    await ts.create('x', mine);
    await ts.create('x', other);
    await ts.create('x', 'someone-elses-vm');
    const removed = await runtime().reapOrphans();
    expect(removed).toEqual([`${mine} (d2)`, `${domainPrefix(TAG)}tpl.t (d1)`]);
    expect([...ts.domains.values()].map((d) => d.name).sort()).toEqual([other, 'someone-elses-vm'].sort());
  });
});

describe('the KVM supervisor on domains', () => {
  it('creates an instance at run time through a factory: a domain of its own with its parameters, destroyed with it', async () => {
    const p = basePlan(
      [
        inst('c', { ports: [{ name: 'workers', direction: 'require', protocol: 'P', slot: 1, channels: ['c.workers->w.jobs'] }] }),
        inst('w', {
          mode: 'created',
          replicas: 0,
          max_instances: 2,
          created_by: { instance: 'c', port: 'workers', max: 2, params: { job: { kind: 'string', min_len: 1, max_len: 64 } }, detached: false },
          ports: [{ name: 'jobs', direction: 'provide', protocol: 'P', slot: 1, channels: ['c.workers->w.jobs'] }],
        }),
      ],
      [chan('c', 'workers', 'w', 'jobs')],
    );
    p.target.backend = 'xen';
    p.images = xenPlan().images;
    p.templates = xenPlan().templates;
    const rt = runtime();
    let hooks!: ConstructorParameters<typeof FakeBroker>[1];
    const sup = new Supervisor({ runtime: rt, brokerFactory: (pl, h) => ((hooks = h), new FakeBroker(pl, h)), runDir: dir, backoffMs: 10, probePort: async () => null });
    await sup.apply(p, { replace: [], readyTimeoutMs: 2000 }, () => undefined);
    // Only the creator runs until it asks.
    expect([...ts.domains.values()].map((d) => d.name)).toEqual([`${domainPrefix(TAG)}c.0`]);
    const clone = await hooks.onCreate!('w', { instance: 'c', clone: 0 }, { job: 'resize' });
    const w = [...ts.domains.values()].find((d) => d.name === `${domainPrefix(TAG)}w.${clone}`)!;
    expect(w.state).toBe('running');
    const env = w.control.filter((l) => l.startsWith('env ')).map((l) => Buffer.from(l.slice(4), 'base64').toString());
    expect(env).toContain('MCL_PARAM_JOB=resize');
    expect(sup.instanceStatus().find((i) => i.id === 'w')!.clones.map((c) => c.state)).toEqual(['running']);
    await hooks.onDestroy!('w', clone);
    expect([...ts.domains.values()].map((d) => d.name)).toEqual([`${domainPrefix(TAG)}c.0`]);
    await sup.destroy(() => undefined);
    expect(ts.domains.size).toBe(0);
    expect(ts.relays.size).toBe(0);
  });

  it('reports every clone with its memory and CPU time from the hypervisor as soon as apply returns', async () => {
    // No poll of the domain list runs during the test: what status shows must not wait for the first one.
    const rt = runtime({ pollMs: 3_600_000 });
    const sup = new Supervisor({ runtime: rt, brokerFactory: (p, h) => new FakeBroker(p, h), runDir: dir, backoffMs: 10, probePort: async () => null });
    await sup.apply(xenPlan(), { replace: [], readyTimeoutMs: 2000 }, () => undefined);
    for (const d of ts.domains.values()) d.cpu_time_ns = 7_000_000;
    const clones = sup.instanceStatus().flatMap((i) => i.clones.map((c) => ({ id: i.id, ...c })));
    expect(clones.map((c) => [c.id, c.state])).toEqual([
      ['db', 'running'],
      ['web', 'running'],
    ]);
    for (const c of clones) {
      expect(c.rss_bytes).toBe(32768 * 4096);
      expect(c.private_bytes).toBe(32768 * 4096);
      expect(c.cpu_ms).toBeGreaterThanOrEqual(0);
    }
    await sup.destroy(() => undefined);
    expect(ts.domains.size).toBe(0);
  });

  it('restarts a clone whose domain was destroyed from outside, and destroy leaves no domain', async () => {
    const rt = runtime();
    const sup = new Supervisor({ runtime: rt, brokerFactory: (p, h) => new FakeBroker(p, h), runDir: dir, backoffMs: 10, probePort: async () => null });
    await sup.apply(xenPlan(), { replace: [], readyTimeoutMs: 2000 }, () => undefined);
    const names = () => [...ts.domains.values()].map((d) => d.name).sort();
    expect(names()).toEqual([`${domainPrefix(TAG)}db.0`, `${domainPrefix(TAG)}web.0`]);
    const web = [...ts.domains.values()].find((d) => d.name.endsWith('web.0'))!;
    ts.kill(web.domid);
    await until(() => sup.instanceStatus().find((i) => i.id === 'web')?.clones[0]?.restarts === 1 && ts.domains.size === 2);
    const st = sup.instanceStatus().find((i) => i.id === 'web')!;
    expect(st.clones[0].last_exit).toMatch(/killed by its domain ending \(domain destroyed\)/);
    await until(() => sup.instanceStatus().find((i) => i.id === 'web')!.clones[0].state === 'running');
    await sup.destroy(() => undefined);
    expect(ts.domains.size).toBe(0);
    expect(ts.relays.size).toBe(0);
  });
});
