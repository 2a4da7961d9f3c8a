// cgroups: what the host offers (v2, v1, none) from its mounts and our own
// cgroup, the limits a plan gives each system and clone, and the files the
// deployment writes (under a directory standing in for the controllers).

import { mkdirSync, mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Cgroups, cloneLimits, detectCgroups, planLimits, QEMU_OVERHEAD_BYTES } from '../src/lifecycle/cgroups';
import { inst, plan } from './fixtures/fakes';

const files = (m: Record<string, string>) => (p: string) => {
  if (p in m) return m[p];
  throw new Error(`ENOENT ${p}`);
};

describe('detecting cgroups', () => {
  it('prefers v2 with cpu and memory delegated to our cgroup', () => {
    const read = files({
      '/proc/self/mounts': 'cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n',
      '/proc/self/cgroup': '0::/user.slice/me\n',
      '/sys/fs/cgroup/user.slice/me/cgroup.controllers': 'cpu io memory pids\n',
    });
    expect(detectCgroups(read, () => true)).toEqual({ version: 'v2', cpu: '/sys/fs/cgroup/user.slice/me', memory: '/sys/fs/cgroup/user.slice/me', missing: [] });
  });

  it('falls back to the v1 cpu and memory hierarchies under our own cgroups, saying why v2 is not used (as on this host)', () => {
    const read = files({
      '/proc/self/mounts':
        'cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\ncgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n',
      '/proc/self/cgroup': '4:memory:/process_api/x\n1:cpu:/\n0::/\n',
      '/sys/fs/cgroup/unified/cgroup.controllers': 'hugetlb\n',
    });
    const s = detectCgroups(read, () => true);
    expect(s).toMatchObject({ version: 'v1', cpu: '/sys/fs/cgroup/cpu', memory: '/sys/fs/cgroup/memory/process_api/x' });
    expect(s.missing[0]).toMatch(/v2 at \/sys\/fs\/cgroup\/unified has only the hugetlb controller/);
  });

  it('says what is missing when no cgroup can be made', () => {
    const read = files({ '/proc/self/mounts': 'cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n', '/proc/self/cgroup': '1:cpu:/\n' });
    const s = detectCgroups(read, () => false);
    expect(s.version).toBe('none');
    expect(s.missing.join('; ')).toMatch(/cannot make cgroups in \/sys\/fs\/cgroup\/cpu.*no cgroup v1 memory hierarchy is mounted/);
  });
});

describe('limits from the plan', () => {
  const p = () => {
    const x = plan([inst('a.job', { vcpus: 2, memory_bytes: 256 << 20, replicas: 2, mode: 'replicas' }), inst('a.store'), inst('b.job')]);
    x.policies = {
      rules: [
        { kind: 'budget', scope: 'a', resource: 'vcpus', value: 3, raw: '3' },
        { kind: 'budget', scope: 'a', resource: 'memory', value: 512 << 20, raw: '512MiB' },
        { kind: 'budget', scope: 'b', resource: 'vcpus', value: 1, raw: '1' },
      ],
      labels: { labels: [], edges: [] },
    };
    return x;
  };

  it("gives each system with a budget a parent cgroup and each clone its vCPUs and memory plus QEMU's overhead", () => {
    const l = planLimits(p());
    // a's memory: its budget plus QEMU's overhead for each of its 3 clones.
    expect(l.get('a')).toEqual({ cpu_quota_us: 300_000, memory_bytes: (512 << 20) + 3 * QEMU_OVERHEAD_BYTES });
    expect(l.get('b')).toEqual({ cpu_quota_us: 100_000, memory_bytes: null });
    expect(cloneLimits(p().instances[0])).toEqual({ cpu_quota_us: 200_000, memory_bytes: (256 << 20) + QEMU_OVERHEAD_BYTES });
  });

  describe('written to the controllers', () => {
    let root: string;
    beforeEach(() => {
      root = mkdtempSync(join(tmpdir(), 'mcl-cg-'));
      mkdirSync(join(root, 'cpu'));
      mkdirSync(join(root, 'memory'));
    });
    afterEach(() => rmSync(root, { recursive: true, force: true }));

    it('v1: a parent per system with its budget, the clone under it with its limits and its process', () => {
      const log: string[] = [];
      const cg = new Cgroups({ version: 'v1', cpu: join(root, 'cpu'), memory: join(root, 'memory'), missing: [] }, 'mcl-t', (s) => log.push(s));
      cg.apply(p());
      cg.place('a.job', 1, 4242);
      const r = (f: string) => readFileSync(join(root, f), 'utf8').trim();
      expect(r('cpu/mcl-t/a/cpu.cfs_quota_us')).toBe('300000');
      expect(r('memory/mcl-t/a/memory.limit_in_bytes')).toBe(String((512 << 20) + 3 * QEMU_OVERHEAD_BYTES));
      expect(r('memory/mcl-t/memory.use_hierarchy')).toBe('1');
      expect(r('cpu/mcl-t/a/job.1/cpu.cfs_quota_us')).toBe('200000');
      expect(r('cpu/mcl-t/a/job.1/cgroup.procs')).toBe('4242');
      expect(r('memory/mcl-t/a/job.1/memory.limit_in_bytes')).toBe(String((256 << 20) + QEMU_OVERHEAD_BYTES));
      expect(r('memory/mcl-t/a/job.1/memory.move_charge_at_immigrate')).toBe('3');
      expect(r('memory/mcl-t/a/job.1/cgroup.procs')).toBe('4242');
      expect(cg.memoryLimit('a.job', 1)).toBe((256 << 20) + QEMU_OVERHEAD_BYTES);
      expect(log).toEqual([]);
    });

    it('v2: cpu.max and memory.max in one tree with the controllers enabled for the children', () => {
      const cg = new Cgroups({ version: 'v2', cpu: root, memory: root, missing: [] }, 'mcl-t', () => undefined);
      cg.apply(p());
      cg.place('b.job', 0, 77);
      const r = (f: string) => readFileSync(join(root, f), 'utf8').trim();
      expect(r('mcl-t/cgroup.subtree_control')).toBe('+cpu +memory');
      expect(r('mcl-t/b/cpu.max')).toBe('100000 100000');
      expect(r('mcl-t/b/job.0/memory.max')).toBe(String((128 << 20) + QEMU_OVERHEAD_BYTES));
      expect(r('mcl-t/b/job.0/cgroup.procs')).toBe('77');
    });

    it('gives a clone moved here from another host the limits of its instance there', () => {
      const cg = new Cgroups({ version: 'v1', cpu: join(root, 'cpu'), memory: join(root, 'memory'), missing: [] }, 'mcl-t', () => undefined);
      const plan = p();
      // This host's part runs only b.job; a.job runs on another host, whose clone 1 was moved here.
      const [a, b] = [plan.instances.find((i) => i.id === 'a.job')!, plan.instances.find((i) => i.id === 'b.job')!];
      plan.instances = [b];
      plan.remote_instances = [{ ...a, target: 'node2' }];
      cg.apply(plan);
      expect(cg.place('a.job', 1, 4343)).toHaveLength(2);
      const r = (f: string) => readFileSync(join(root, f), 'utf8').trim();
      expect(r('memory/mcl-t/a/job.1/memory.limit_in_bytes')).toBe(String((256 << 20) + QEMU_OVERHEAD_BYTES));
      expect(r('cpu/mcl-t/a/job.1/cgroup.procs')).toBe('4343');
      // An instance of neither list gets nothing.
      expect(cg.place('c.job', 0, 1)).toEqual([]);
    });

    it('does nothing, and says so through enforced, without cgroups', () => {
      const cg = new Cgroups({ version: 'none', cpu: null, memory: null, missing: ['x'] }, 'mcl-t', () => undefined);
      cg.apply(p());
      expect(cg.place('a.job', 0, 1)).toEqual([]);
      expect(cg.enforced).toBe(false);
      expect(existsSync(join(root, 'cpu', 'mcl-t'))).toBe(false);
    });
  });
});
