// Moving a clone between the supervisors of two hosts, without QEMU: the
// destination's endpoint of a kept clone (pinned certificate, first line,
// bounds, the watch and its grace time), the home host's view of it (the
// watch, the remote handle), and the supervisor holding a moved clone (its
// pid never used here, its exit restarting it at home).

import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { makeLinkIdentity, type LinkIdentity } from '@mcl/broker';
import { KeptClones, KEEP_LINE_BYTES, type KeepRequest } from '../src/lifecycle/kept';
import { RemoteClone, RemoteWatch, request } from '../src/lifecycle/migrate-out';
import { pinnedConnect, pinnedServer, type MigrationIdentity } from '../src/vm/migrate';
import type { CloneHandle, CloneRequest, ExitInfo, IncomingHandle } from '../src/lifecycle/guest-runtime';
import { Supervisor } from '../src/lifecycle/supervisor';
import { forgetMoved, migrateIn, migrateOut, withMoved } from '../src/lifecycle/migrate-commands';
import { acquireLock, emptyState, readState, writeState } from '@mcl/plan/state-store';
import type { BackendEvent } from '../src/lifecycle/events';
import { chan, FakeBroker, FakeRuntime, inst, plan } from './fixtures/fakes';

let home: LinkIdentity;
let dest: LinkIdentity;
let intruder: LinkIdentity;
let dir: string;
const closers: (() => unknown)[] = [];

beforeAll(() => {
  [home, dest, intruder] = ['node1', 'node2', 'intruder'].map((n) => makeLinkIdentity(n));
}, 60_000);

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'mcl-keep-'));
});

afterEach(async () => {
  for (const f of closers.splice(0).reverse()) await f();
  rmSync(dir, { recursive: true, force: true });
});

/** A unix socket standing for one of the kept QEMU's sockets: records what arrives. */
async function fakeSocket(file: string): Promise<{ received: () => string; connections: () => number }> {
  let got = '';
  let n = 0;
  const server = net.createServer((s) => {
    n++;
    s.on('data', (d) => (got += d.toString()));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(file, r));
  closers.push(() => server.close());
  return { received: () => got, connections: () => n };
}

/** A runtime whose incoming clone is a pair of fake sockets; `load()` and `die()` drive it. */
function fakeIncoming() {
  let onLoaded!: () => void;
  let onExit!: (i: ExitInfo) => void;
  const exited = new Promise<ExitInfo>((r) => (onExit = r));
  const state = { killed: 0, finished: 0, dir: '' };
  const handle = (d: string): IncomingHandle => {
    state.dir = d;
    return {
      pid: process.pid,
      portSockets: { kv: path.join(d, 'p1.sock') },
      loaded: new Promise<void>((r) => (onLoaded = r)),
      exited,
      finish: async () => {
        state.finished++;
        return { pid: process.pid, startTime: null, portSockets: {}, consoleLog: '', exited, resume: async () => undefined, stop: async () => void onExit({ code: null, signal: 'SIGKILL' }) } as CloneHandle;
      },
      kill: async () => {
        state.killed++;
        onExit({ code: null, signal: 'SIGKILL' });
      },
    };
  };
  return { handle, load: () => onLoaded(), die: (i: ExitInfo) => onExit(i), state };
}

async function keeper(opts: { graceMs?: number } = {}) {
  const inc = fakeIncoming();
  const rt = new FakeRuntime();
  const records: { event: string; fields: Record<string, unknown> }[] = [];
  const logs: string[] = [];
  const p = plan([inst('db', { template: 't1' })], [chan('app', 'db', 'db', 'kv')]);
  p.templates = [{ id: 't1' } as never];
  const kept = new KeptClones({
    runtime: {
      ...rt,
      prepare: rt.prepare.bind(rt),
      incoming: async (req: CloneRequest) => inc.handle(req.dir),
    } as never,
    runDir: dir,
    plan: () => p,
    identity: () => ({ key: dest.key, cert: dest.cert }),
    log: (s) => logs.push(s),
    record: (event, fields) => records.push({ event, fields }),
    ...(opts.graceMs ? { watchGraceMs: opts.graceMs } : {}),
  });
  closers.push(() => kept.stopAll());
  const req: KeepRequest = { instance: 'db', clone: 0, target: 'node2', from: { target: 'node1', cert: home.cert }, listen: { host: '127.0.0.1', port: 0 }, mode: 'precopy', readyTimeoutMs: 1000 };
  const events: BackendEvent[] = [];
  const r = await kept.keep(req, (e) => events.push(e));
  const kv = await fakeSocket(path.join(inc.state.dir, 'p1.sock'));
  return { kept, inc, r, records, logs, kv, to: { host: '127.0.0.1', port: r.port } };
}

const homeId = (): MigrationIdentity => ({ key: home.key, cert: home.cert, peerCert: dest.cert });

/** Opens a connection with `line` first and `then` after, and resolves with what came back before it closed. */
function exchange(identity: MigrationIdentity, to: { host: string; port: number }, first: string | Buffer, then = ''): Promise<string> {
  return new Promise((resolve) => {
    const t = pinnedConnect(identity, to);
    let got = '';
    t.on('secureConnect', () => {
      t.write(first);
      if (then) t.write(then);
    });
    t.on('data', (d) => (got += d.toString()));
    t.on('error', () => undefined);
    t.on('close', () => resolve(got));
    setTimeout(() => t.destroy(), 2_000);
  });
}

const until = async (cond: () => boolean, ms = 5_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('the endpoint of a kept clone (destination)', () => {
  it('pipes `port NAME` into the kept QEMU\'s port and answers the watch', async () => {
    const k = await keeper();
    expect(k.r.template_built).toBe(false);
    const t = pinnedConnect(homeId(), k.to, 'port kv');
    t.on('secureConnect', () => t.write('{"t":"call"}\n'));
    closers.push(() => t.destroy());
    await until(() => k.kv.received() === '{"t":"call"}\n');
    expect(k.kept.status()).toEqual([{ instance: 'db', clone: 0, from: 'node1', pid: process.pid, state: 'incoming' }]);
    const w = new RemoteWatch(homeId(), k.to);
    closers.push(() => w.close());
    k.inc.load();
    await w.loaded;
    expect(await request(homeId(), k.to, 'finish')).toBe(`ok ${process.pid}`);
    expect(k.kept.status()[0].state).toBe('running');
    expect(k.records.map((r) => r.event)).toEqual(['kept']);
  });

  it('refuses a host whose certificate is not the pinned one: nothing reaches the clone', async () => {
    const k = await keeper();
    const got = await exchange({ key: intruder.key, cert: intruder.cert, peerCert: dest.cert }, k.to, 'port kv\n', '{"t":"call"}\n');
    expect(got).toBe('');
    expect(k.kv.connections()).toBe(0);
    expect(k.logs.join('\n')).toMatch(/refused/);
  });

  it('closes a connection whose first line is unknown, names no port, or is too long', async () => {
    const k = await keeper();
    for (const first of ['GET / HTTP/1.1\r\n', 'port nosuch\n', 'port ../../etc\n', 'x'.repeat(KEEP_LINE_BYTES + 10)]) {
      expect(await exchange(homeId(), k.to, first, 'payload\n')).toBe('');
    }
    expect(k.kv.connections()).toBe(0);
    const log = k.logs.join('\n');
    expect(log).toMatch(/unknown first line "GET/);
    expect(log).toMatch(/no data port nosuch/);
    expect(log).toMatch(new RegExp(`no first line of at most ${KEEP_LINE_BYTES} bytes`));
  });

  it('stops a kept clone whose home host keeps no watch open, and records why', async () => {
    const k = await keeper({ graceMs: 300 });
    await until(() => k.inc.state.killed > 0, 5_000);
    expect(k.records.find((r) => r.event === 'kept_stopped')?.fields.why).toMatch(/no watch connection open and answering/);
    await until(() => k.kept.status()[0]?.state === 'exited');
    // The stop is followed by exactly one exit record, on which the supervisor releases the clone's cgroups once.
    expect(k.records.map((r) => r.event)).toEqual(['kept', 'kept_stopped', 'kept_exit']);
  });

  it('reports the kept QEMU\'s exit on the watch, and the remote handle ends with it', async () => {
    const k = await keeper();
    const w = new RemoteWatch(homeId(), k.to);
    const remote = new RemoteClone(w, homeId(), { target: 'node2', ...k.to }, {}, '', [], new Date().toISOString());
    k.inc.load();
    await w.loaded;
    k.inc.die({ code: 1, signal: null });
    expect(await remote.exited).toEqual({ code: 1, signal: null });
  });

  it('a move that fails before the state arrived rejects the watch\'s loaded', async () => {
    const k = await keeper();
    const w = new RemoteWatch(homeId(), k.to);
    closers.push(() => w.close());
    k.inc.die({ code: null, signal: 'SIGKILL' });
    await expect(w.loaded).rejects.toThrow(/exited|dropped/);
  });
});

describe('the home host\'s watch of a moved clone', () => {
  it('takes a destination silent for the grace time for gone, as not the clone\'s fault', async () => {
    // Nothing listens there: the watch never connects.
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    server.close();
    const w = new RemoteWatch(homeId(), { host: '127.0.0.1', port }, 200);
    const info = await w.exited;
    expect(info.helper).toMatch(/did not answer/);
  });
});

describe('a watch that stays open but silent', () => {
  it('is taken for a gone host at home', async () => {
    // The destination accepts the watch and never answers (a hung host, a connection not yet timed out).
    const held: net.Socket[] = [];
    const server = pinnedServer({ key: dest.key, cert: dest.cert, peerCert: home.cert }, (sock) => held.push(sock));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => {
      for (const h of held) h.destroy();
      server.close();
    });
    const w = new RemoteWatch(homeId(), { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port }, 300);
    const info = await w.exited;
    expect(held.length).toBeGreaterThan(0);
    expect(info.helper).toMatch(/did not answer/);
  });
});

describe('the supervisor holding a moved clone', () => {
  let rt: FakeRuntime;
  let sup: Supervisor;
  const emit = () => undefined;
  beforeEach(() => {
    rt = new FakeRuntime();
    FakeBroker.all = [];
    sup = new Supervisor({ runtime: rt, brokerFactory: (p, h) => new FakeBroker(p, h), runDir: dir, backoffMs: 5, maxBackoffMs: 20 });
  });
  afterEach(async () => {
    await sup.shutdown();
  });

  /** A remote handle like RemoteClone's: pid NaN, the clone's host in `remote`, stop and exit driven by the test. */
  function fakeRemote() {
    let onExit!: (i: ExitInfo) => void;
    const h = {
      pid: NaN,
      startTime: null,
      portSockets: { kv: path.join(dir, 'relay.sock') },
      consoleLog: '',
      exited: new Promise<ExitInfo>((r) => (onExit = r)),
      remote: { target: 'node2', at: '2026-12-06T09:00:00.000Z', pid: 4242 },
      stops: 0,
      resume: async () => undefined,
      stop: async () => {
        h.stops++;
        onExit({ code: null, signal: 'SIGKILL' });
      },
      memory: () => ({ rss_bytes: 1, pss_bytes: 2, private_bytes: 3 }),
      cpuMs: () => 7,
    };
    return { h, exit: (i: ExitInfo) => onExit(i) };
  }

  it('never uses the moved clone\'s pid here: not recorded, not probed, not signalled; its figures come from its host', async () => {
    await sup.apply(plan([inst('db'), inst('app')], [chan('app', 'db', 'db', 'kv')]), { replace: [], readyTimeoutMs: 1000 }, emit);
    const local = rt.live('db')[0];
    const r = fakeRemote();
    const kill = vi.spyOn(process, 'kill');
    const result = await sup.migrate({ instance: 'db', clone: 0, to: 'node2' }, async (handle) => {
      expect(handle).toBe(local);
      // The move kills the source; that exit is the move's, not a crash.
      local.crash({ code: null, signal: 'SIGKILL' });
      return { remote: r.h as CloneHandle, result: 'moved' };
    });
    expect(result).toBe('moved');
    expect(sup.processes().map((p) => p.instance)).toEqual(['app']);
    expect(sup.liveClones().map((c) => c.instance)).toEqual(['app']);
    const db = sup.instanceStatus().find((i) => i.id === 'db')!.clones[0];
    expect(db).toMatchObject({ state: 'running', moved_to: { target: 'node2', at: r.h.remote.at }, rss_bytes: 1, private_bytes: 3, cpu_ms: 7 });
    expect(db.pid).toBeUndefined();
    expect(sup.moved()).toEqual([{ instance: 'db', clone: 0, to: 'node2', at: r.h.remote.at }]);
    expect(rt.log.filter((l) => l.startsWith('fork db'))).toHaveLength(1);
    Object.assign(FakeBroker.all[0], { hold: () => undefined, resume: () => undefined, checkpointState: () => ({ format: 1, counters: {}, ports: [], next_session: 0 }) });
    await expect(sup.checkpoint({ dir, instances: ['db'] }, emit)).rejects.toThrow(/runs on node2/);
    await expect(sup.migrate({ instance: 'db', clone: 0, to: 'node3' }, async () => ({ remote: r.h as CloneHandle, result: 'x' }))).rejects.toThrow(/moved to node2 already/);
    await sup.destroy(emit);
    expect(r.h.stops).toBe(1);
    expect(kill.mock.calls.filter(([pid]) => Number.isNaN(pid) || pid === 4242)).toEqual([]);
    kill.mockRestore();
  });

  it('restarts a moved clone at home when it exits there, and the move is over', async () => {
    await sup.apply(plan([inst('db')]), { replace: [], readyTimeoutMs: 1000 }, emit);
    const r = fakeRemote();
    await sup.migrate({ instance: 'db', clone: 0, to: 'node2' }, async () => {
      rt.live('db')[0].crash({ code: null, signal: 'SIGKILL' });
      return { remote: r.h as CloneHandle, result: null };
    });
    r.exit({ code: 1, signal: null });
    await until(() => rt.live('db').length === 1);
    await until(() => sup.instanceStatus()[0].clones[0].state === 'running');
    const c = sup.instanceStatus()[0].clones[0];
    expect(c.moved_to).toBeUndefined();
    expect(c.pid).toBe(rt.live('db')[0].pid);
    expect(sup.moved()).toEqual([]);
  });

  it('keeps the clone at home when the move fails, and refuses what cannot move', async () => {
    await sup.apply(plan([inst('db'), inst('s', { mode: 'per_session', replicas: 1 })]), { replace: [], readyTimeoutMs: 1000 }, emit);
    const local = rt.live('db')[0];
    await expect(sup.migrate({ instance: 'db', clone: 0, to: 'node2' }, async () => Promise.reject(new Error('the destination died; the clone goes on running on the source')))).rejects.toThrow(/goes on running/);
    expect(sup.processes().find((p) => p.instance === 'db')?.pid).toBe(local.pid);
    await expect(sup.migrate({ instance: 'nope', clone: 0, to: 'node2' }, async () => Promise.reject(new Error('no')))).rejects.toThrow(/no instance nope/);
    await expect(sup.migrate({ instance: 'db', clone: 3, to: 'node2' }, async () => Promise.reject(new Error('no')))).rejects.toThrow(/no clone 3/);
    await expect(sup.migrate({ instance: 's', clone: 0, to: 'node2' }, async () => Promise.reject(new Error('no')))).rejects.toThrow(/per-session/);
  });
});

describe('migrateIn and migrateOut before any supervisor is asked', () => {
  const base = () => ({ workspace: dir, stateFile: path.join(dir, '.mcl', 'state.json'), lockTimeoutMs: 0, supervisorCommand: ['false'], signal: new AbortController().signal, automation: true });
  const inOpts = (planDigest: string) => ({
    ...base(),
    planDigest,
    instance: 'db',
    clone: 0,
    target: 'node2',
    from: { target: 'node1', cert: home.cert },
    listen: { host: '127.0.0.1', port: 0 },
    mode: 'precopy' as const,
  });
  const deployed = () => {
    const p = plan([inst('db')], [], 'p1');
    writeState(base().stateFile, { ...emptyState('kvm'), serial: 3, plan_digest: 'p1', system: 'S', instances: p.instances });
  };

  it('the destination refuses a plan it does not run (stale), and a deployment with no supervisor here', async () => {
    await expect(migrateIn(inOpts('p1'), () => undefined)).rejects.toMatchObject({ kind: 'stale', message: expect.stringMatching(/runs no plan/) });
    deployed();
    await expect(migrateIn(inOpts('p2'), () => undefined)).rejects.toMatchObject({ kind: 'stale', message: expect.stringMatching(/not plan p2/) });
    await expect(migrateIn(inOpts('p1'), () => undefined)).rejects.toMatchObject({ kind: 'failure', message: expect.stringMatching(/nothing of this deployment runs on this host/) });
  });

  it('the home host refuses an instance it does not run, and records a move in the state\'s moved', async () => {
    deployed();
    const out = { ...base(), instance: 'nope', clone: 0, to: { target: 'node2', host: '127.0.0.1', port: 1, cert: dest.cert }, mode: 'precopy' as const };
    await expect(migrateOut(out, () => undefined)).rejects.toMatchObject({ kind: 'usage', message: expect.stringMatching(/no instance nope/) });
    const st = readState(base().stateFile)!;
    const at = '2026-12-06T09:00:00.000Z';
    const once = withMoved(st, [{ instance: 'db', clone: 0, to: 'node2', at }]);
    expect(once).toMatchObject({ serial: 4, moved: [{ instance: 'db', clone: 0, to: 'node2', at }] });
    expect(withMoved(once, [{ instance: 'db', clone: 0, to: 'node3', at }]).moved).toEqual([{ instance: 'db', clone: 0, to: 'node3', at }]);
  });
});

describe('the end of a move in the state', () => {
  it('removes the clone from moved under the lock, and leaves it to the command holding the lock', async () => {
    const stateFile = path.join(dir, '.mcl', 'state.json');
    const at = '2026-12-06T09:00:00.000Z';
    writeState(stateFile, {
      ...emptyState('kvm'),
      serial: 5,
      moved: [
        { instance: 'db', clone: 0, to: 'node2', at },
        { instance: 'db', clone: 1, to: 'node2', at },
      ],
    });
    const held = await acquireLock(stateFile, { operation: 'apply', timeoutMs: 0 });
    expect(await forgetMoved(stateFile, 'db', 0)).toBe(false);
    held.release();
    expect(await forgetMoved(stateFile, 'db', 0)).toBe(true);
    expect(readState(stateFile)).toMatchObject({ serial: 6, moved: [{ instance: 'db', clone: 1 }] });
    expect(await forgetMoved(stateFile, 'db', 1)).toBe(true);
    expect(readState(stateFile)?.moved).toBeUndefined();
    expect(await forgetMoved(stateFile, 'db', 1)).toBe(false);
  });
});
