// QEMU processes started ahead of time (ClonePool) on real QEMU: a pooled
// process becomes a clone at the caller's paths, unused slots are closed, the
// pool refills, and pooled processes never outlive their owner.
//
// Uses the template of substrate.vm.test.ts (same spec, so the same cache
// entry in $MCL_CACHE_DIR or <tmp>/mcl-vm-test-cache).

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, ClonePool, connectUnix, ensureTemplate, type Clone, type Template } from '../../src/vm/index';
import { until } from '../fixtures/vm';

const cacheDir = process.env.MCL_CACHE_DIR ?? path.join(os.tmpdir(), 'mcl-vm-test-cache');
let template: Template;
let run: string;
const clones: Clone[] = [];
const pools: ClonePool[] = [];

/** True while the process runs (a zombie, killed and not yet reaped by its new parent, counts as dead). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

function cmdline(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
}

/** Sends one line on a socket and resolves with the first line that comes back. */
function roundTrip(sock: net.Socket, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`no answer to ${line}`)), 15_000);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i >= 0) {
        clearTimeout(t);
        resolve(buf.slice(0, i));
      }
    });
    sock.write(`${line}\n`);
  });
}

beforeAll(async () => {
  run = await mkdtemp(path.join(os.tmpdir(), 'mcl-pool-'));
  const image = await buildImage({ name: 'busybox', kernel: 'debian-cloud', modules: ['virtio_console'], files: [] }, { cacheDir });
  template = await ensureTemplate({ id: 'test-128m-1c-2p', image, memoryBytes: 128 * 1024 * 1024, vcpus: 1, portSlots: 2 }, { cacheDir });
}, 120_000);

afterAll(async () => {
  await Promise.all(clones.map((c) => c.kill()));
  await Promise.all(pools.map((p) => p.close()));
  if (run) await rm(run, { recursive: true, force: true });
});

describe('ClonePool', () => {
  it('makes a clone of a waiting process at the caller paths: control and data ports answer, the unused slot is gone', async () => {
    const dir = path.join(run, 'a');
    const pool = new ClonePool(template, { dir, size: 1 });
    pools.push(pool);
    await pool.fill();
    expect(pool.available).toBe(1);
    const [waiting] = pool.pids();
    // Started with the template's state waiting on fd 3 and nothing loaded: no guest code has run.
    expect(cmdline(waiting)).toContain('-incoming defer');
    const poolDirs = await readdir(dir);
    expect(poolDirs).toHaveLength(1);
    const poolDir = path.join(dir, poolDirs[0]);
    expect((await readdir(poolDir)).sort()).toEqual(['console.log', 'ctl.sock', 'p1.sock', 'p2.sock', 'qemu.pid', 'qmp.sock']);

    const own = path.join(run, 'own');
    await mkdir(own);
    const clone = await pool.take({
      name: 'pooled#0',
      controlSocket: path.join(own, 'ctl'),
      qmpSocket: path.join(own, 'qmp'),
      dataPortSockets: [path.join(own, 'p1'), null],
      logFile: path.join(own, 'console.log'),
      pidFile: path.join(own, 'qemu.pid'),
    });
    clones.push(clone);
    expect(clone.pooled).toBe(true);
    expect(clone.pid).toBe(waiting);
    expect(clone.phases.connectMs + clone.phases.loadMs + clone.phases.handshakeMs).toBe(clone.readyMs);
    // Everything moved: the pool's directory of this process is gone, the clone's files are where it asked.
    expect(existsSync(poolDir)).toBe(false);
    expect((await readdir(own)).sort()).toEqual(['console.log', 'ctl', 'p1', 'qemu.pid', 'qmp']);
    expect(readFileSync(path.join(own, 'qemu.pid'), 'utf8').trim()).toBe(String(clone.pid));
    expect((await clone.qmp.execute<{ status: string }>('query-status')).status).toBe('running');
    expect(await clone.control.ping()).toBeGreaterThanOrEqual(0);

    // The renamed data socket is the listener QEMU bound in the pool: the guest program answers on it.
    const data = await connectUnix(path.join(own, 'p1'), 5_000);
    await clone.sendIdentity({
      instanceId: 'pooled',
      ports: [{ name: 'echo', slot: 1 }],
      program: { argv: ['/bin/sh', '-c', 'exec 3<>/dev/mcl/echo; while read -r l <&3; do echo "echo:$l" >&3; done'], env: {}, files: [] },
    });
    expect(await roundTrip(data, 'over-the-renamed-socket')).toBe('echo:over-the-renamed-socket');
    data.destroy();
    // Slot 2 is unused: its socket file was unlinked, so nothing can connect to it; the guest cannot link it either.
    expect(existsSync(path.join(poolDir, 'p2.sock'))).toBe(false);
    // The console log QEMU opened in the pool is the clone's now: what the agent logs arrives there.
    await expect(clone.sendIdentity({ instanceId: 'pooled', ports: [{ name: 'x', slot: 9 }] })).rejects.toThrow(/no virtio-serial port for slot 9/);
    await until('the agent log line in the renamed console log', () => readFileSync(path.join(own, 'console.log'), 'utf8').includes('no virtio-serial port for slot 9'), 10_000);
  }, 120_000);

  it('refills after a take, with a process of its own', async () => {
    const dir = path.join(run, 'b');
    const pool = new ClonePool(template, { dir, size: 1 });
    pools.push(pool);
    await pool.fill();
    const [first] = pool.pids();
    const clone = await pool.take({ name: 'refill#0', controlSocket: path.join(run, 'r0.ctl'), dataPortSockets: [], logFile: path.join(run, 'r0.log') });
    clones.push(clone);
    expect(clone.pid).toBe(first);
    // The replacement is started in the background once the clone is ready; fill() waits for it.
    await pool.fill();
    expect(pool.available).toBe(1);
    const [second] = pool.pids();
    expect(second).not.toBe(first);
    expect(alive(second)).toBe(true);
    // The next take uses the refilled process.
    const next = await pool.take({ name: 'refill#1', controlSocket: path.join(run, 'r1.ctl'), dataPortSockets: [], logFile: path.join(run, 'r1.log') });
    clones.push(next);
    expect(next.pid).toBe(second);
    expect(next.pooled).toBe(true);
    await next.control.ping();
  }, 120_000);

  it('forks directly when no process waits', async () => {
    const pool = new ClonePool(template, { dir: path.join(run, 'c'), size: 0 });
    pools.push(pool);
    const clone = await pool.take({ name: 'direct#0', controlSocket: path.join(run, 'd0.ctl'), dataPortSockets: [], logFile: path.join(run, 'd0.log') });
    clones.push(clone);
    expect(clone.pooled).toBe(false);
    expect(pool.available).toBe(0);
    await clone.control.ping();
  }, 60_000);

  it('kills every waiting process on close', async () => {
    const dir = path.join(run, 'e');
    const pool = new ClonePool(template, { dir, size: 2 });
    await pool.fill();
    const pids = pool.pids();
    expect(pids).toHaveLength(2);
    expect(pids.every(alive)).toBe(true);
    await pool.close();
    expect(pids.filter(alive)).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
    await expect(pool.take({ name: 'closed', controlSocket: path.join(run, 'x.ctl'), dataPortSockets: [], logFile: path.join(run, 'x.log') })).rejects.toThrow(/closed/);
  }, 60_000);

  it('leaves no pooled QEMU behind when its owner is killed with SIGKILL', async () => {
    const dir = path.join(run, 'f');
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '../fixtures/pool-owner.ts'), cacheDir, dir, '2'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((r) => child.once('exit', r));
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
      });
      child.once('exit', (code) => reject(new Error(`the pool owner exited (${code}) before starting its pool`)));
    });
    const { pids, dieWithParent } = JSON.parse(line) as { pids: number[]; dieWithParent: boolean };
    expect(pids).toHaveLength(2);
    expect(dieWithParent).toBe(true);
    expect(pids.every(alive)).toBe(true);
    child.kill('SIGKILL');
    await exited;
    await until('the pooled QEMU processes to die with their owner', () => pids.every((p) => !alive(p)), 10_000);
  }, 120_000);
});
