// QEMU processes started ahead of time (ClonePool) on real QEMU: a pooled
// process becomes a clone at the caller's paths, unused slots are closed, the
// pool refills, its processes are forked from the template's zygote, and
// pooled processes never outlive their owner.
//
// Uses the template of substrate.vm.test.ts (same spec, so the same cache
// entry in $MCL_CACHE_DIR or <tmp>/mcl-vm-test-cache).

import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClonePool, connectUnix, type Clone, type Template } from '../../src/vm/index';
import { alive, testTemplate, until } from '../fixtures/vm';

const cacheDir = process.env.MCL_CACHE_DIR ?? path.join(os.tmpdir(), 'mcl-vm-test-cache');
let template: Template;
let run: string;
const clones: Clone[] = [];
const pools: ClonePool[] = [];

function ppid(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
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
  template = await testTemplate(cacheDir);
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
    // Started with the template's state on fd 3, loaded while it waits but never continued: no guest code has run.
    expect(cmdline(waiting)).toContain('-incoming defer');
    // One directory for the waiting process, one the zygote it was forked from runs in.
    const entries = await readdir(dir);
    expect(entries.filter((e) => e.startsWith('.zygote-'))).toHaveLength(1);
    const poolDirs = entries.filter((e) => e.startsWith('.pool-'));
    expect(poolDirs).toHaveLength(1);
    const poolDir = path.join(dir, poolDirs[0]);
    // The console is a socket the owner reads (console-log.ts); console.log holds QEMU's own messages until then.
    expect((await readdir(poolDir)).sort()).toEqual(['con.sock', 'console.log', 'ctl.sock', 'p1.sock', 'p2.sock', 'qemu.pid', 'qmp.sock']);

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
    expect((await readdir(own)).sort()).toEqual(['console.log', 'ctl', 'ctl.con', 'p1', 'qemu.pid', 'qmp']);
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

  it('loads the template state while a process waits, so that a take only continues it', async () => {
    const pool = new ClonePool(template, { dir: path.join(run, 'preload'), size: 1 });
    pools.push(pool);
    await pool.fill();
    const [waiting] = pool.pids();
    // The state file came in on descriptor 3: loaded, it was read to its end (or closed once read); unloaded, its offset is 0.
    const info = (() => {
      try {
        return readFileSync(`/proc/${waiting}/fdinfo/3`, 'utf8');
      } catch {
        return null;
      }
    })();
    if (info !== null) expect(Number(/^pos:\s+(\d+)/m.exec(info)?.[1])).toBe(statSync(template.statePath).size);
    const own = path.join(run, 'preload-own');
    await mkdir(own);
    const clone = await pool.take({ name: 'preloaded#0', controlSocket: path.join(own, 'ctl'), dataPortSockets: [], logFile: path.join(own, 'console.log') });
    clones.push(clone);
    expect(clone.pid).toBe(waiting);
    expect((await clone.qmp.execute<{ status: string }>('query-status')).status).toBe('running');
    expect(await clone.control.ping()).toBeGreaterThanOrEqual(0);
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

  it('forks from the zygote when no process waits', async () => {
    const pool = new ClonePool(template, { dir: path.join(run, 'c'), size: 0 });
    pools.push(pool);
    const clone = await pool.take({ name: 'forked#0', controlSocket: path.join(run, 'z0.ctl'), dataPortSockets: [], logFile: path.join(run, 'z0.log') });
    clones.push(clone);
    expect(clone.pooled).toBe(true);
    expect(pool.available).toBe(0);
    // The clone's QEMU is a child of the zygote, not of this process.
    const zygote = await pool.zygotePid();
    expect(zygote).not.toBeNull();
    expect(ppid(clone.pid)).toBe(zygote);
    await clone.control.ping();
  }, 60_000);

  it('forks directly when no process waits and zygotes are off', async () => {
    const pool = new ClonePool(template, { dir: path.join(run, 'c2'), size: 0, zygote: false });
    pools.push(pool);
    const clone = await pool.take({ name: 'direct#0', controlSocket: path.join(run, 'd0.ctl'), dataPortSockets: [], logFile: path.join(run, 'd0.log') });
    clones.push(clone);
    expect(clone.pooled).toBe(false);
    expect(await pool.zygotePid()).toBeNull();
    expect(ppid(clone.pid)).toBe(process.pid);
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
    const { pids, zygote, dieWithParent } = JSON.parse(line) as { pids: number[]; zygote: number | null; dieWithParent: boolean };
    expect(pids).toHaveLength(2);
    expect(dieWithParent).toBe(true);
    // The pooled processes were forked from the zygote, which the owner started.
    expect(zygote).not.toBeNull();
    expect(pids.map(ppid)).toEqual([zygote, zygote]);
    expect([...pids, zygote!].every(alive)).toBe(true);
    child.kill('SIGKILL');
    await exited;
    await until('the zygote and the pooled QEMU processes to die with their owner', () => [...pids, zygote!].every((p) => !alive(p)), 10_000);
  }, 120_000);
});
