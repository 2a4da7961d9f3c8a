// A hostile or copied workspace must not reach beyond its own deployment:
// planted state files and run directories, a copied workspace, shared base
// directories made by someone else, an interrupted apply, a corrupt state.
// Guests are real (fake-QEMU) processes under a real detached supervisor.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { apply, destroy, status } from '../src/lifecycle/commands';
import { callControl } from '../src/lifecycle/control';
import { DEPLOYMENT_ENV, ensureRunDir, findRunDir, runDirCandidates, type RunDir } from '../src/lifecycle/rundir';
import { SOCKET, supervisorAlive } from '../src/lifecycle/daemon';
import type { ApplyOptions, BackendEvent } from '../src/lifecycle/events';
import { readState } from '@mcl/plan/state-store';
import { chan, inst, plan } from './fixtures/fakes';

const supervisorCommand = [process.execPath, '--import', 'tsx', join(__dirname, 'fixtures/supervisor-entry.ts')];
const channels = [chan('web', 'app', 'app', 'api'), chan('app', 'db', 'db', 'kv')];
const thePlan = (pd = 'p1', digestOf: Record<string, string> = {}) =>
  plan(['web', 'app', 'db'].map((id) => inst(id, digestOf[id] ? { digest: digestOf[id] } : {})), channels, pd);

function running(pid: number): boolean {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].startsWith('Z');
  } catch {
    return false;
  }
}

const cleanup: (() => void | Promise<unknown>)[] = [];
let ws: string;
const optsFor = (w: string, over: Partial<ApplyOptions> = {}): ApplyOptions => ({
  workspace: w,
  stateFile: join(w, '.mcl', 'state.json'),
  lockTimeoutMs: 0,
  supervisorCommand,
  signal: new AbortController().signal,
  automation: true,
  replace: [],
  readyTimeoutMs: 10_000,
  ...over,
});
const opts = (over: Partial<ApplyOptions> = {}) => optsFor(ws, over);

function own(w = ws): RunDir {
  const f = findRunDir(join(w, '.mcl', 'state.json'));
  if (f.kind !== 'ours') throw new Error(`no run directory of ${w}: ${f.kind}`);
  return f;
}

function recordedPids(w = ws): number[] {
  return (readState(join(w, '.mcl', 'state.json'))!.backend_data as { processes: { pid: number }[] }).processes.map((p) => p.pid).sort();
}

/** A process of the user that no deployment started: what a planted file would name. */
function victim(): ChildProcess {
  const c = spawn('sleep', ['1000'], { argv0: 'qemu-system-victim', stdio: 'ignore' });
  cleanup.push(() => {
    c.kill('SIGKILL');
  });
  return c;
}

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  cleanup.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

beforeEach(() => {
  ws = tempDir('mcl-hw-');
  process.env.MCL_TEST_FAKE_TAG = basename(ws);
});
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** Destroys a workspace's deployment at the end of the test. */
function destroyLater(w: string): void {
  cleanup.push(() => destroy(optsFor(w), () => undefined).catch(() => undefined));
}

describe('a planted state', () => {
  it('names a directory and processes of the user: destroy, status and apply touch none of them', async () => {
    const precious = tempDir('mcl-precious-');
    writeFileSync(join(precious, 'thesis.tex'), 'years of work');
    const v = victim();
    const server = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    let connections = 0;
    await new Promise<void>((r) => server.listen(join(precious, SOCKET), r));
    cleanup.push(() => new Promise((r) => server.close(r)));
    writeFileSync(join(precious, 'supervisor.json'), JSON.stringify({ pid: v.pid, start_time: null, started_at: 'x' }));
    writeFileSync(join(precious, 'processes.json'), JSON.stringify([{ instance: 'db', clone: 0, pid: v.pid, start_time: null, dir: precious }]));
    // The state an archive or a cloned repository could carry, and a run directory beside it naming the victim too.
    mkdirSync(join(ws, '.mcl', 'run'), { recursive: true });
    for (const f of ['supervisor.json', 'processes.json']) writeFileSync(join(ws, '.mcl', 'run', f), readFileSync(join(precious, f)));
    writeFileSync(join(ws, '.mcl', 'run', 'deployment.json'), JSON.stringify({ token: 'a'.repeat(32), dev: '1', ino: '2', created_at: 'x' }));
    const st = { ...readStateShape(), backend_data: { run_dir: precious, supervisor: { pid: v.pid, start_time: null }, processes: [{ instance: 'db', clone: 0, pid: v.pid, start_time: null, dir: precious }], accelerator: null } };
    writeFileSync(join(ws, '.mcl', 'state.json'), JSON.stringify(st));

    const s = await status(opts());
    expect(s.supervisor.running).toBe(false);
    expect(s.warnings?.[0].message).toMatch(/state records 3 instance\(s\), but nothing of this state runs/);
    const warnings: string[] = [];
    const d = await destroy(opts(), (e) => e.type === 'warning' && warnings.push(e.message));
    expect(d.destroyed).toEqual([]);
    expect(warnings.join('\n')).toMatch(/nothing of this state runs: .*\.mcl\/run (is accessible to group or others|has no valid deployment\.json).*left as it is/);
    // Nothing outside was touched: the victim runs, the directory and its files are there, no connection was made.
    expect(running(v.pid!)).toBe(true);
    expect(readFileSync(join(precious, 'thesis.tex'), 'utf8')).toBe('years of work');
    expect(existsSync(join(precious, 'supervisor.json'))).toBe(true);
    expect(connections).toBe(0);
    // The planted run directory is not this deployment's: apply refuses it, naming it and what to do.
    const err = await apply(thePlan(), opts(), () => undefined).catch((e) => e);
    expect(err).toMatchObject({ kind: 'failure' });
    expect(err.message).toContain(join(ws, '.mcl', 'run'));
    expect(err.hint).toMatch(/remove what is named/);
    expect(running(v.pid!)).toBe(true);
    expect(connections).toBe(0);
  }, 60_000);

  it('a planted owner record that is endless, a FIFO or huge is not read', async () => {
    const run = join(ws, '.mcl', 'run');
    mkdirSync(run, { recursive: true, mode: 0o700 });
    chmodSync(run, 0o700);
    const record = join(run, 'deployment.json');
    const tries: (() => void)[] = [
      () => symlinkSync('/dev/zero', record),
      () => expect(spawnSync('mkfifo', [record]).status).toBe(0),
      () => writeFileSync(record, `{"token": "${'a'.repeat(32)}", "pad": "${'x'.repeat(1 << 20)}"}`),
    ];
    for (const plant of tries) {
      rmSync(record, { force: true });
      plant();
      const started = Date.now();
      expect(findRunDir(opts().stateFile)).toMatchObject({ kind: 'foreign' });
      await expect(apply(thePlan(), opts(), () => undefined)).rejects.toMatchObject({ kind: 'failure' });
      expect(Date.now() - started).toBeLessThan(5_000);
    }
  }, 60_000);

  it('a state directory that is a symbolic link to another deployment is refused', async () => {
    const other = tempDir('mcl-other-');
    await apply(thePlan(), optsFor(other), () => undefined);
    destroyLater(other);
    const pids = recordedPids(other);
    symlinkSync(join(other, '.mcl'), join(ws, '.mcl'));
    const err = await destroy(opts(), () => undefined).catch((e) => e);
    expect(err).toMatchObject({ kind: 'failure' });
    expect(err.message).toMatch(/state directory .* is a symbolic link/);
    await expect(status(opts())).rejects.toMatchObject({ kind: 'failure' });
    for (const p of pids) expect(running(p)).toBe(true);
  }, 60_000);
});

/** A minimal valid state recording the three instances of thePlan. */
function readStateShape() {
  const p = thePlan();
  return { format_version: '1.0', lineage: '00000000-0000-4000-8000-000000000000', serial: 1, backend: 'kvm', plan_digest: 'p1', system: 'S', instances: p.instances, channels: p.channels, exposures: [] };
}

describe('a copied workspace', () => {
  it('cp -a ws ws2; destroy in ws2 leaves ws running, and ws2 gets a deployment of its own', async () => {
    await apply(thePlan(), opts(), () => undefined);
    destroyLater(ws);
    const pids = recordedPids();
    const sup = supervisorAlive(own())!;
    const parent = tempDir('mcl-hw-copy-');
    const ws2 = join(parent, 'w');
    expect(spawnSync('cp', ['-a', ws, ws2]).status).toBe(0);
    const warnings: string[] = [];
    const d = await destroy(optsFor(ws2), (e) => e.type === 'warning' && warnings.push(e.message));
    expect(d.destroyed).toEqual([]);
    expect(warnings.join('\n')).toMatch(/was created as another directory/);
    expect(running(sup.pid)).toBe(true);
    for (const p of pids) expect(running(p)).toBe(true);
    expect((await status(opts())).instances.map((i) => i.health)).toEqual(['healthy', 'healthy', 'healthy']);
    // The copied run directory is left for the user to remove; then ws2 deploys on its own.
    expect(existsSync(join(ws2, '.mcl', 'run', 'supervisor.json'))).toBe(true);
    rmSync(join(ws2, '.mcl', 'run'), { recursive: true });
    const r = await apply(thePlan(), optsFor(ws2), () => undefined);
    destroyLater(ws2);
    expect(r.created).toHaveLength(3);
    expect(own(ws2).token).not.toBe(own().token);
    await destroy(optsFor(ws2), () => undefined);
    for (const p of pids) expect(running(p)).toBe(true);
    expect(running(sup.pid)).toBe(true);
  }, 60_000);

  it('with a long path (run directory under the shared base), the copy finds nothing of the original', async () => {
    const xdg = tempDir('mcl-xdg-');
    chmodSync(xdg, 0o700);
    const saved = process.env.XDG_RUNTIME_DIR;
    process.env.XDG_RUNTIME_DIR = xdg;
    cleanup.push(() => {
      if (saved === undefined) delete process.env.XDG_RUNTIME_DIR;
      else process.env.XDG_RUNTIME_DIR = saved;
    });
    const long = join(ws, 'a-workspace-with-a-long-name-as-real-ones-have');
    mkdirSync(long);
    await apply(thePlan(), optsFor(long), () => undefined);
    destroyLater(long);
    const rd = own(long);
    expect(rd.dir.startsWith(join(xdg, 'mcl') + '/')).toBe(true);
    expect(lstatSync(join(xdg, 'mcl')).mode & 0o777).toBe(0o700);
    expect(lstatSync(rd.dir).mode & 0o777).toBe(0o700);
    const pids = recordedPids(long);
    const long2 = join(ws, 'a-workspace-with-a-long-name-as-real-ones-have-2');
    expect(spawnSync('cp', ['-a', long, long2]).status).toBe(0);
    const d = await destroy(optsFor(long2), () => undefined);
    expect(d.destroyed).toEqual([]);
    for (const p of pids) expect(running(p)).toBe(true);
  }, 60_000);
});

describe('shared base directories', () => {
  let saved: { xdg?: string; tmp?: string };
  let base: string;
  beforeEach(() => {
    saved = { xdg: process.env.XDG_RUNTIME_DIR, tmp: process.env.TMPDIR };
    const t = tempDir('mcl-tmpbase-');
    delete process.env.XDG_RUNTIME_DIR;
    process.env.TMPDIR = t;
    base = join(t, `mcl-${process.geteuid!()}`);
  });
  afterEach(() => {
    for (const [k, v] of [['XDG_RUNTIME_DIR', saved.xdg], ['TMPDIR', saved.tmp]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  const longState = () => join(ws, 'a-workspace-with-a-long-name-as-real-ones-have', '.mcl', 'state.json');

  it('are created 0700 and used when they are private', () => {
    const rd = ensureRunDir(longState());
    expect(rd.dir.startsWith(base + '/')).toBe(true);
    expect(lstatSync(base).mode & 0o777).toBe(0o700);
    expect(lstatSync(rd.dir).mode & 0o777).toBe(0o700);
    expect(lstatSync(join(rd.dir, 'deployment.json')).mode & 0o777).toBe(0o600);
    expect(ensureRunDir(longState())).toMatchObject(rd);
  });

  it.each([
    ['made by another user', () => (mkdirSync(base, { mode: 0o700 }), chownSync(base, 65534, 65534)), /belongs to uid 65534/],
    ['open to group and others', () => (mkdirSync(base), chmodSync(base, 0o755)), /accessible to group or others \(mode 755\)/],
    ['a symbolic link', () => symlinkSync(tempDir('mcl-elsewhere-'), base), /is a symbolic link/],
  ])('are refused when %s', (_what, make, why) => {
    make();
    expect(() => ensureRunDir(longState())).toThrow(why);
    expect(findRunDir(longState()).kind).toBe('foreign');
  });

  it('prefer XDG_RUNTIME_DIR, and fall back when it is not private', () => {
    const xdg = tempDir('mcl-xdg-');
    chmodSync(xdg, 0o700);
    process.env.XDG_RUNTIME_DIR = xdg;
    expect(runDirCandidates(longState())[0].startsWith(join(xdg, 'mcl') + '/')).toBe(true);
    expect(ensureRunDir(longState()).dir.startsWith(join(xdg, 'mcl') + '/')).toBe(true);
    const open = tempDir('mcl-xdg-open-');
    chmodSync(open, 0o777);
    process.env.XDG_RUNTIME_DIR = open;
    expect(ensureRunDir(longState()).dir.startsWith(base + '/')).toBe(true);
  });

  it('apply refuses a base made by another user and sends the plan nowhere', async () => {
    mkdirSync(base, { mode: 0o700 });
    const name = basename(runDirCandidates(longState())[0]);
    // The other user's fake supervisor, listening where ours would.
    mkdirSync(join(base, name), { mode: 0o700 });
    let received = '';
    const server = net.createServer((s) => s.on('data', (d) => (received += d)));
    await new Promise<void>((r) => server.listen(join(base, name, SOCKET), r));
    cleanup.push(() => new Promise((r) => server.close(r)));
    chownSync(join(base, name), 65534, 65534);
    chownSync(base, 65534, 65534);
    const w = join(ws, 'a-workspace-with-a-long-name-as-real-ones-have');
    mkdirSync(w);
    const err = await apply(thePlan(), optsFor(w), () => undefined).catch((e) => e);
    expect(err).toMatchObject({ kind: 'failure' });
    expect(err.message).toMatch(/belongs to uid 65534/);
    await expect(status(optsFor(w))).resolves.toMatchObject({ supervisor: { running: false } });
    expect(received).toBe('');
  });
});

describe('processes are recognised by their token', () => {
  it('every process of the deployment carries it, and the supervisor refuses a directory without it', async () => {
    await apply(thePlan(), opts(), () => undefined);
    destroyLater(ws);
    const rd = own();
    const env = (pid: number) => readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
    for (const p of [supervisorAlive(rd)!.pid, ...recordedPids()]) expect(env(p)).toContain(`${DEPLOYMENT_ENV}=${rd.token}`);
    // A supervisor started on the directory without the token (by hand, or by a planted command) serves nothing.
    const r = spawnSync(supervisorCommand[0], [...supervisorCommand.slice(1), '__supervise', rd.dir], { env: { ...process.env, [DEPLOYMENT_ENV]: 'b'.repeat(32) }, encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toMatch(/refusing .*does not carry the token/);
    for (const p of recordedPids()) expect(running(p)).toBe(true);
  }, 60_000);
});

describe('a state that does not match what runs', () => {
  it('after an apply interrupted once the supervisor converged, status reports what runs and says to apply again', async () => {
    await apply(thePlan('p1'), opts(), () => undefined);
    destroyLater(ws);
    // What a killed `mclc apply` leaves: the supervisor converged to p2, the state still records p1.
    const p2 = { ...thePlan('p2', { app: 'app2' }), prior_state: { lineage: readState(opts().stateFile)!.lineage, serial: 1 } };
    await callControl(join(own().dir, SOCKET), { op: 'apply', plan: p2, replace: [], readyTimeoutMs: 10_000 });
    const s = await status(opts());
    expect(s.warnings?.[0].message).toMatch(/runs S \(plan p2, 3 instance\(s\)\), but the state records plan p1/);
    expect(s.warnings?.[0].hint).toMatch(/mclc apply.* again with the same plan/);
    const r = await apply(p2, opts(), () => undefined);
    expect(r.unchanged).toHaveLength(3);
    expect((await status(opts())).warnings).toBeUndefined();
  }, 60_000);

  it('with the state file deleted, status reports the live deployment and destroy stops it', async () => {
    await apply(thePlan(), opts(), () => undefined);
    const pids = recordedPids();
    rmSync(opts().stateFile);
    const s = await status(opts());
    expect(s.deployed).toBe(true);
    expect(s.system).toBe('S');
    expect(s.instances.map((i) => i.health)).toEqual(['healthy', 'healthy', 'healthy']);
    expect(s.warnings?.[0].message).toMatch(/there is no state file/);
    const d = await destroy(opts(), () => undefined);
    expect(d.destroyed).toEqual(['app', 'db', 'web']);
    await new Promise((r) => setTimeout(r, 100));
    for (const p of pids) expect(running(p)).toBe(false);
  }, 60_000);

  it('a corrupt state: the hint gives an order of commands that works', async () => {
    await apply(thePlan(), opts(), () => undefined);
    destroyLater(ws);
    const pids = recordedPids();
    const file = opts().stateFile;
    writeFileSync(file, '{"format_version": "1.0", "lineage": "x", "serial": 1, "instances": null');
    const err = await status(opts()).catch((e) => e);
    expect(err).toMatchObject({ kind: 'failure' });
    expect(err.hint).toMatch(/^move it aside \(mv .*state\.json .*state\.json\.corrupt\) and run `mclc status`.*then `mclc destroy` stops it/);
    // Following the hint works.
    renameSync(file, `${file}.corrupt`);
    expect((await status(opts())).deployed).toBe(true);
    expect((await destroy(opts(), () => undefined)).destroyed).toEqual(['app', 'db', 'web']);
    await new Promise((r) => setTimeout(r, 100));
    for (const p of pids) expect(running(p)).toBe(false);
  }, 60_000);

  it('instances: null is refused as corrupt, not a crash', async () => {
    await apply(thePlan(), opts(), () => undefined);
    destroyLater(ws);
    const file = opts().stateFile;
    const st = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(file, JSON.stringify({ ...st, instances: null }));
    for (const run of [() => status(opts()), () => destroy(opts(), () => undefined), () => apply(thePlan(), opts(), () => undefined)]) {
      const err = await run().catch((e) => e);
      expect(err).toMatchObject({ kind: 'failure' });
      expect(err.message).toMatch(/is not a valid deployment state: \$\.instances: instances must be an array/);
    }
    writeFileSync(file, JSON.stringify(st));
  }, 60_000);
});

describe('a run directory that disappears', () => {
  it('stops the deployment rather than leaving it out of reach', async () => {
    await apply(thePlan(), opts(), () => undefined);
    destroyLater(ws);
    const rd = own();
    const sup = supervisorAlive(rd)!;
    const pids = recordedPids();
    // What a cleaner of /tmp or the end of a login session does.
    rmSync(rd.dir, { recursive: true });
    const deadline = Date.now() + 15_000;
    while (running(sup.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(running(sup.pid)).toBe(false);
    for (const p of pids) expect(running(p)).toBe(false);
    // The next apply starts afresh, with a new token.
    const r = await apply(thePlan(), opts(), () => undefined);
    expect(r.created).toHaveLength(3);
    expect(own().token).not.toBe(rd.token);
  }, 60_000);
});

describe('a failed first apply', () => {
  it('leaves no idle supervisor behind', async () => {
    process.env.MCL_TEST_PREPARE_FAIL = 'no QEMU here';
    let err: unknown;
    try {
      err = await apply(thePlan(), opts(), () => undefined).catch((e) => e);
    } finally {
      delete process.env.MCL_TEST_PREPARE_FAIL;
    }
    expect(err).toMatchObject({ kind: 'failure' });
    expect((err as Error).message).toMatch(/no QEMU here/);
    expect(supervisorAlive(own())).toBeNull();
    // Its log is kept for the failure's hint; the next apply starts a supervisor again.
    expect(readFileSync(join(own().dir, 'supervisor.log'), 'utf8')).toMatch(/stopping: destroyed/);
    const r = await apply(thePlan(), opts(), () => undefined);
    destroyLater(ws);
    expect(r.created).toHaveLength(3);
  }, 60_000);
});
