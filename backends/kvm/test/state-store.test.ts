import { spawnSync } from 'node:child_process';
import { chownSync, closeSync, existsSync, ftruncateSync, lstatSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  acquireLock,
  bootId,
  emptyState,
  lockPath,
  MAX_STATE_BYTES,
  processAlive,
  processStartTime,
  readState,
  StateError,
  statePath,
  writeState,
} from '@mcl/plan/state-store';

let ws: string;
beforeEach(() => {
  ws = mkdtempSync(join(tmpdir(), 'mcl-state-'));
});
afterEach(() => rmSync(ws, { recursive: true, force: true }));

describe('state file', () => {
  it('reads null before the first apply and round-trips a written state', () => {
    expect(readState(statePath(ws))).toBeNull();
    const s = emptyState('kvm');
    s.serial = 3;
    s.system = 'Shop';
    writeState(statePath(ws), s);
    expect(readState(statePath(ws))).toEqual(s);
    // No temporary files are left next to the state.
    expect(readdirSync(join(ws, '.mcl')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('keeps a fixed lineage per empty state and a UUID shape', () => {
    const a = emptyState('kvm');
    const b = emptyState('kvm');
    expect(a.lineage).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.lineage).not.toBe(b.lineage);
    expect(emptyState('kvm', 'fixed').lineage).toBe('fixed');
  });

  it('rejects a torn or foreign file instead of starting over', () => {
    mkdirSync(join(ws, '.mcl'));
    writeFileSync(statePath(ws), '{"lineage": "x", "ser');
    expect(() => readState(statePath(ws))).toThrowError(StateError);
    try {
      readState(statePath(ws));
    } catch (e) {
      expect((e as StateError).code).toBe('corrupt');
    }
    writeFileSync(statePath(ws), JSON.stringify({ ...emptyState('kvm'), format_version: '9.0' }));
    expect(() => readState(statePath(ws))).toThrow(/state format 9.0/);
  });
});

describe('what the state store trusts on disk', () => {
  it('keeps the state private: the directory 0700, the file 0600', async () => {
    (await acquireLock(statePath(ws), { operation: 'apply' })).release();
    writeState(statePath(ws), emptyState('kvm'));
    expect(lstatSync(join(ws, '.mcl')).mode & 0o777).toBe(0o700);
    expect(lstatSync(statePath(ws)).mode & 0o777).toBe(0o600);
  });

  it('removes the temporaries of a writer killed mid-write, and only those', async () => {
    mkdirSync(join(ws, '.mcl'));
    const dir = join(ws, '.mcl');
    const dead = deadPid();
    // A copy of the state with its sensitive parameters, left by an apply killed before the rename.
    writeFileSync(join(dir, `.state.json.${process.pid}.0a1b2c3d.tmp`), '{"params": "secret"}', { mode: 0o600 });
    writeFileSync(join(dir, `.lock.${dead}.0a1b2c3d.tmp`), '{}');
    // A lock temporary of a live process (one trying the lock right now) and files of other names stay.
    writeFileSync(join(dir, `.lock.${process.pid}.0a1b2c3d.tmp`), '{}');
    writeFileSync(join(dir, `.other.json.${dead}.0a1b2c3d.tmp`), '{}');
    writeFileSync(join(dir, 'notes.tmp'), 'mine');
    // A symbolic link named like a temporary is removed itself; its target is not touched.
    const target = join(ws, 'target');
    writeFileSync(target, 'precious');
    symlinkSync(target, join(dir, `.state.json.1.deadbeef.tmp`));
    (await acquireLock(statePath(ws), { operation: 'apply' })).release();
    expect(readdirSync(dir).sort()).toEqual([`.lock.${process.pid}.0a1b2c3d.tmp`, `.other.json.${dead}.0a1b2c3d.tmp`, 'notes.tmp'].sort());
    expect(readFileSync(target, 'utf8')).toBe('precious');
  });

  it('refuses a symbolic link as state directory or state file, and a file of another user', () => {
    const elsewhere = join(ws, 'elsewhere');
    mkdirSync(elsewhere);
    writeState(join(elsewhere, 'state.json'), emptyState('kvm'));
    symlinkSync(elsewhere, join(ws, '.mcl'));
    expect(() => readState(statePath(ws))).toThrow(/state directory .*\.mcl is a symbolic link/);
    rmSync(join(ws, '.mcl'));
    mkdirSync(join(ws, '.mcl'));
    symlinkSync(join(elsewhere, 'state.json'), statePath(ws));
    expect(() => readState(statePath(ws))).toThrow(/state file .* is a symbolic link/);
    rmSync(statePath(ws));
    writeState(statePath(ws), emptyState('kvm'));
    chownSync(statePath(ws), 65534, 65534);
    const err = (() => {
      try {
        readState(statePath(ws));
      } catch (e) {
        return e as StateError;
      }
    })();
    expect(err?.code).toBe('unsafe');
    expect(err?.message).toMatch(/belongs to uid 65534/);
  });

  it('reads no more than a state can be, and never blocks on a FIFO', () => {
    mkdirSync(join(ws, '.mcl'));
    // Sparse: the size is what counts, nothing is read.
    const fd = openSync(statePath(ws), 'w');
    ftruncateSync(fd, MAX_STATE_BYTES + 1);
    closeSync(fd);
    expect(() => readState(statePath(ws))).toThrow(/more than a state can be/);
    rmSync(statePath(ws));
    expect(spawnSync('mkfifo', [statePath(ws)]).status).toBe(0);
    expect(() => readState(statePath(ws))).toThrow(/is not a regular file/);
  });
});

describe('process identity', () => {
  it('reads the start time of this process and tells a reused pid apart', () => {
    const t = processStartTime(process.pid);
    expect(t).toBeTypeOf('number');
    expect(processAlive(process.pid, t)).toBe(true);
    expect(processAlive(process.pid, (t ?? 0) + 1)).toBe(false);
  });
});

function deadPid(): number {
  // A child that has exited and been reaped: its pid is free.
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

describe('lock', () => {
  it('fails at once with the holder named when held and no timeout is given', async () => {
    const a = await acquireLock(statePath(ws), { operation: 'apply' });
    await expect(acquireLock(statePath(ws), { operation: 'destroy' })).rejects.toThrow(new RegExp(`locked by pid ${process.pid} on .*apply since`));
    a.release();
    const b = await acquireLock(statePath(ws), { operation: 'destroy' });
    b.release();
    expect(existsSync(lockPath(statePath(ws)))).toBe(false);
  });

  it('waits for a live holder up to the timeout', async () => {
    const a = await acquireLock(statePath(ws), { operation: 'apply' });
    let waitedFor = -1;
    const started = Date.now();
    setTimeout(() => a.release(), 150);
    const b = await acquireLock(statePath(ws), { operation: 'apply', timeoutMs: 5000, pollMs: 20, onWait: (h) => (waitedFor = h.pid) });
    expect(waitedFor).toBe(process.pid);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    b.release();
  });

  it('gives up after the timeout with a hint', async () => {
    const a = await acquireLock(statePath(ws), { operation: 'apply' });
    const err = await acquireLock(statePath(ws), { operation: 'apply', timeoutMs: 120, pollMs: 20 }).catch((e) => e);
    expect(err).toBeInstanceOf(StateError);
    expect(err.code).toBe('locked');
    expect(err.hint).toMatch(/waited 120 ms/);
    a.release();
  });

  it('takes over a lock left by a dead process', async () => {
    mkdirSync(join(ws, '.mcl'));
    const pid = deadPid();
    writeFileSync(
      lockPath(statePath(ws)),
      JSON.stringify({ pid, start_time: 1, boot_id: bootId(), host: hostname(), operation: 'apply', acquired_at: 'then' }),
    );
    const l = await acquireLock(ws + '/.mcl/state.json', { operation: 'apply' });
    expect(JSON.parse(readFileSync(lockPath(statePath(ws)), 'utf8')).pid).toBe(process.pid);
    l.release();
  });

  it('takes over a lock from before a reboot and an unreadable lock', async () => {
    mkdirSync(join(ws, '.mcl'));
    writeFileSync(
      lockPath(statePath(ws)),
      JSON.stringify({ pid: process.pid, start_time: processStartTime(process.pid), boot_id: 'another-boot', host: hostname(), operation: 'apply', acquired_at: 'then' }),
    );
    (await acquireLock(statePath(ws), { operation: 'apply' })).release();
    writeFileSync(lockPath(statePath(ws)), 'garbage');
    (await acquireLock(statePath(ws), { operation: 'apply' })).release();
  });

  it('lets exactly one of several processes hold the lock at a time', () => {
    // Each child takes the lock, increments a counter file non-atomically, and releases.
    const script = `
      import { acquireLock } from ${JSON.stringify(join(__dirname, '../../../plan/src/state-store.ts'))};
      import { readFileSync, writeFileSync } from 'node:fs';
      const ws = process.argv[2];
      for (let i = 0; i < 20; i++) {
        const l = await acquireLock(ws + '/.mcl/state.json', { operation: 'apply', timeoutMs: 20000, pollMs: 2 });
        const n = Number(readFileSync(ws + '/count', 'utf8'));
        writeFileSync(ws + '/count', String(n + 1));
        l.release();
      }`;
    writeFileSync(join(ws, 'count'), '0');
    writeFileSync(join(ws, 'child.mts'), script);
    const tsx = join(__dirname, '../../../node_modules/tsx/dist/cli.mjs');
    const r = spawnSync('sh', ['-c', `for i in 1 2 3; do "${process.execPath}" "${tsx}" "${ws}/child.mts" "${ws}" & done; wait`]);
    expect(r.status).toBe(0);
    expect(readFileSync(join(ws, 'count'), 'utf8')).toBe('60');
  }, 30_000);
});
