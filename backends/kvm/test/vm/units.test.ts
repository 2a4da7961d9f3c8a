// Pure parts of the substrate: the cpio writer, module ordering, smaps parsing, QEMU arguments.

import { describe, expect, it } from 'vitest';
import { writeCpio } from '../../src/image/cpio';
import { resolveModules } from '../../src/image/index';
import { parseSmapsRollup } from '../../src/vm/memory';
import { qemuArgs } from '../../src/vm/qemu';

describe('writeCpio', () => {
  it('is independent of entry order and adds parent directories', () => {
    const a = writeCpio([
      { kind: 'file', path: '/b/x', mode: 0o644, data: Buffer.from('x') },
      { kind: 'symlink', path: 'a', target: '/b/x' },
    ]);
    const b = writeCpio([
      { kind: 'symlink', path: 'a', target: '/b/x' },
      { kind: 'file', path: 'b/x', mode: 0o644, data: Buffer.from('x') },
    ]);
    expect(a).toEqual(b);
    const text = a.toString('latin1');
    expect(text.startsWith('070701')).toBe(true);
    expect(text.indexOf('a\0')).toBeLessThan(text.indexOf('b\0'));
    expect(text.indexOf('b\0')).toBeLessThan(text.indexOf('b/x\0'));
    expect(text).toContain('TRAILER!!!\0');
    expect(a.length % 4).toBe(0);
  });

  it('refuses paths that climb out of the archive', () => {
    expect(() => writeCpio([{ kind: 'dir', path: '../etc', mode: 0o755 }])).toThrow(/must not contain/);
  });
});

describe('resolveModules', () => {
  const dep = [
    'kernel/drivers/virtio/virtio_ring.ko.xz:',
    'kernel/drivers/virtio/virtio.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz',
    'kernel/drivers/char/virtio_console.ko.xz: kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz',
  ].join('\n');
  it('orders dependencies first and skips built-ins', () => {
    const r = resolveModules(['virtio-console', 'crc32c'], dep, 'kernel/lib/crc32c.ko\n');
    expect(r.order.map((m) => m.name)).toEqual(['virtio_ring', 'virtio', 'virtio_console']);
    expect(r.missing).toEqual([]);
  });
  it('reports unknown modules', () => {
    expect(resolveModules(['nope'], dep, '').missing).toEqual(['nope']);
  });
});

describe('parseSmapsRollup', () => {
  it('reads kB values as bytes', () => {
    const m = parseSmapsRollup('Rss:  2048 kB\nPss:  1024 kB\nShared_Clean: 512 kB\nShared_Dirty: 0 kB\nPrivate_Clean: 256 kB\nPrivate_Dirty: 1280 kB\nSwap: 0 kB\n');
    expect(m).toEqual({ rss: 2048 * 1024, pss: 1024 * 1024, shared: 512 * 1024, private: 1536 * 1024, swap: 0 });
  });
});

describe('qemuArgs', () => {
  const layout = { machine: 'pc' as const, accel: 'tcg' as const, memoryBytes: 128 << 20, vcpus: 1, portSlots: 2, kernelPath: '/k', initrdPath: '/i', memPath: '/dev/shm/m' };
  const inst = { name: 'a', controlSocket: '/r/c', dataPortSockets: ['/r/p1'], logFile: '/r/l', qmpSocket: '/r/q' };
  it('gives a template and its clones the same devices', () => {
    const t = qemuArgs(layout, { ...inst, shareMemory: true, dataPortSockets: [] });
    const c = qemuArgs(layout, { ...inst, shareMemory: false, incomingStatePath: '/s' });
    const devices = (a: string[]) => a.filter((_, i) => a[i - 1] === '-device');
    expect(devices(c)).toEqual(devices(t));
    expect(t.join(' ')).toContain('share=on');
    expect(c.join(' ')).toContain('share=off');
    expect(c).toContain('defer');
    expect(c.join(' ')).toContain('socket,id=p1,path=/r/p1,server=on,wait=off');
    expect(c.join(' ')).toContain('null,id=p2');
  });
});

describe('pruneTemplates', () => {
  it('removes superseded and broken builds and keeps the newest', async () => {
    const { mkdtemp, mkdir, writeFile, rm } = await import('node:fs/promises');
    const { existsSync } = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const { pruneTemplates } = await import('../../src/vm/template');
    const cache = await mkdtemp(path.join(os.tmpdir(), 'mcl-prune-'));
    const make = async (name: string, id: string, created: string, withMem: boolean) => {
      const dir = path.join(cache, 'templates', name);
      await mkdir(dir, { recursive: true });
      const mem = path.join(cache, `${name}.mem`);
      if (withMem) await writeFile(mem, 'x');
      await writeFile(path.join(dir, 'template.json'), JSON.stringify({ format: 1, id, key: name, mem_path: mem, created_at: created }));
      return { dir, mem };
    };
    const old = await make('old', 'a', '2026-01-01T00:00:00Z', true);
    const cur = await make('new', 'a', '2026-02-01T00:00:00Z', true);
    const broken = await make('broken', 'b', '2026-02-01T00:00:00Z', false);
    const other = await make('other', 'c', '2025-01-01T00:00:00Z', true);
    const removed = await pruneTemplates({ cacheDir: cache });
    expect(removed.sort()).toEqual([broken.dir, old.dir].sort());
    expect(existsSync(old.mem)).toBe(false);
    expect(existsSync(cur.dir) && existsSync(cur.mem)).toBe(true);
    expect(existsSync(other.dir)).toBe(true);
    await rm(cache, { recursive: true, force: true });
  });
});
