// Pure parts of the substrate: the cpio writer, module ordering, smaps parsing, QEMU arguments.

import { describe, expect, it } from 'vitest';
import { writeCpio } from '../../src/image/cpio';
import { resolveModules } from '../../src/image/index';
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { parseSmapsBreakdown, parseSmapsRollup } from '../../src/vm/memory';
import { launchCommand, MAX_DATA_PORT_SLOTS, MAX_SERIAL_DEVICES, parseThpMode, qemuArgs, type LaunchHost } from '../../src/vm/qemu';
import { which } from '../../src/vm/paths';

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
    const m = parseSmapsRollup('Rss:  2048 kB\nPss:  1024 kB\nPss_Anon:  768 kB\nShared_Clean: 512 kB\nShared_Dirty: 0 kB\nPrivate_Clean: 256 kB\nPrivate_Dirty: 1280 kB\nSwap: 0 kB\n');
    expect(m).toEqual({ rss: 2048 * 1024, pss: 1024 * 1024, shared: 512 * 1024, private: 1536 * 1024, privateDirty: 1280 * 1024, anonPss: 768 * 1024, swap: 0 });
  });
});

describe('parseSmapsBreakdown', () => {
  const block = (header: string, clean: number, dirty: number) => `${header}\nSize: 1024 kB\nRss: 512 kB\nPrivate_Clean: ${clean} kB\nPrivate_Dirty: ${dirty} kB\nVmFlags: rd wr\n`;
  it('sorts private memory by kind of mapping', () => {
    const text = [
      block('7f0000000000-7f0008000000 rw-p 00000000 00:1a 2                          /dev/shm/mcl-x.mem', 4, 400),
      block('7f0010000000-7f0050000000 rwxp 00000000 00:00 0 ', 0, 2800),
      block('55d000000000-55d001000000 rw-p 00000000 00:00 0                          [heap]', 0, 4400),
      block('55c000000000-55c000100000 rw-p 00de3000 fe:00 2170937                    /usr/bin/qemu-system-x86_64', 8, 1200),
      block('7f1000000000-7f1000100000 r--p 004a6000 fe:00 5595150                    /usr/lib/libcapstone.so.4', 0, 1300),
      block('7f2000000000-7f2000040000 rw-p 00000000 00:00 0 ', 0, 256),
      block('7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]', 0, 32),
      block('7f3000000000-7f3000100000 r-xp 00000000 fe:00 1                          /usr/lib/with space.so (deleted)', 0, 16),
    ].join('');
    expect(parseSmapsBreakdown(text, '/dev/shm/mcl-x.mem')).toEqual({
      guestRam: 404 * 1024,
      tcgCode: 2800 * 1024,
      heap: 4400 * 1024,
      binaries: (1208 + 1300 + 16) * 1024,
      other: (256 + 32) * 1024,
      total: (404 + 2800 + 4400 + 1208 + 1300 + 16 + 256 + 32) * 1024,
    });
  });
});

describe('launchCommand', () => {
  const host: LaunchHost = { thpMode: 'madvise', arch: 'x64', perl: '/usr/bin/perl', keepThp: false, inherited: false };
  it('starts QEMU through perl with THP turned off where the host has THP', () => {
    const l = launchCommand('/q', ['-m', '128M'], host);
    expect(l.file).toBe('/usr/bin/perl');
    expect(l.args.slice(-4)).toEqual(['--', '/q', '-m', '128M']);
    expect(l.args[1]).toContain('syscall(157, 41, 1');
    expect(l.thpOff).toBe(true);
    expect(launchCommand('/q', [], { ...host, arch: 'arm64' }).args[1]).toContain('syscall(167, 41, 1');
  });
  it('starts QEMU directly when there is nothing to turn off or no way to', () => {
    for (const h of [
      { ...host, thpMode: 'never' },
      { ...host, thpMode: null },
      { ...host, perl: null },
      { ...host, arch: 'mips' },
      { ...host, keepThp: true },
    ]) {
      expect(launchCommand('/q', ['-m', '128M'], h)).toEqual({ file: '/q', args: ['-m', '128M'], thpOff: false, dieWithParent: false, ksm: false });
    }
    // A parent that runs with THP off passes it on: no perl needed.
    expect(launchCommand('/q', ['-m', '128M'], { ...host, inherited: true })).toEqual({ file: '/q', args: ['-m', '128M'], thpOff: true, dieWithParent: false, ksm: false });
  });
  it('sets a parent-death signal through perl when asked, also where THP needs no perl', () => {
    for (const h of [host, { ...host, inherited: true }, { ...host, thpMode: 'never' }]) {
      const l = launchCommand('/q', ['-m', '128M'], h, { dieWithParent: true, parentPid: 4242 });
      expect(l.file).toBe('/usr/bin/perl');
      expect(l.dieWithParent).toBe(true);
      // PR_SET_PDEATHSIG (1) with SIGKILL (9), then the check that the owner is still the parent.
      expect(l.args[1]).toContain('syscall(157, 1, 9, 0, 0, 0) == 0');
      expect(l.args[1]).toContain('getppid() == 4242');
      expect(l.args.slice(-4)).toEqual(['--', '/q', '-m', '128M']);
    }
    expect(launchCommand('/q', [], { ...host, inherited: true }, { dieWithParent: true }).thpOff).toBe(true);
    expect(launchCommand('/q', [], { ...host, thpMode: 'never' }, { dieWithParent: true }).args[1]).not.toContain(', 41, 1');
    // No perl: QEMU starts directly and says it will not die with its parent.
    expect(launchCommand('/q', [], { ...host, perl: null }, { dieWithParent: true })).toEqual({ file: '/q', args: [], thpOff: false, dieWithParent: false, ksm: false });
  });
  it('reads the selected THP mode', () => {
    expect(parseThpMode('always [madvise] never\n')).toBe('madvise');
    expect(parseThpMode('[always] madvise never')).toBe('always');
    expect(parseThpMode('')).toBeNull();
  });
  const perl = which('perl');
  const hasThpField = process.platform === 'linux' && /THP_enabled:/.test(readFileSync('/proc/self/status', 'utf8'));
  it.skipIf(!perl || !hasThpField || !(process.arch in { x64: 1, arm64: 1 }))('runs the program with THP disabled, arguments intact', async () => {
    const l = launchCommand('/bin/sh', ['-c', 'grep THP_enabled /proc/self/status; printf "%s|" "$@"', 'sh', 'a b', '-c'], { ...host, arch: process.arch, perl });
    const r = await execa(l.file, l.args);
    expect(r.stdout).toBe('THP_enabled:\t0\na b|-c|');
  });
  it.skipIf(!perl || !(process.arch in { x64: 1, arm64: 1 }))('runs the program with the parent-death signal set, or not at all when the parent is not the owner', async () => {
    // Field 2 of PR_GET_PDEATHSIG is not in /proc; the shell's parent is perl's parent, so check the effect instead:
    // the program starts when the owner is its parent and refuses to when another pid was named.
    const ok = launchCommand('/bin/sh', ['-c', 'echo started'], { ...host, arch: process.arch, perl }, { dieWithParent: true });
    expect((await execa(ok.file, ok.args)).stdout).toBe('started');
    const wrong = launchCommand('/bin/sh', ['-c', 'echo started'], { ...host, arch: process.arch, perl }, { dieWithParent: true, parentPid: 1 });
    const r = await execa(wrong.file, wrong.args, { reject: false });
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/exited before QEMU started/);
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

  it('keeps the one-device layout up to 29 data slots and spreads more over devices of 30 ports', () => {
    const devices = (slots: number) => {
      const a = qemuArgs({ ...layout, portSlots: slots }, { ...inst, shareMemory: true, dataPortSockets: [] });
      return a.filter((_, i) => a[i - 1] === '-device');
    };
    // The layout a single device always had (templates cached before stay valid).
    expect(devices(2)).toEqual([
      'virtio-serial-pci,id=vser0,max_ports=4',
      'virtserialport,bus=vser0.0,nr=1,chardev=ctl,name=control',
      'virtserialport,bus=vser0.0,nr=2,chardev=p1,name=slot1',
      'virtserialport,bus=vser0.0,nr=3,chardev=p2,name=slot2',
    ]);
    expect(devices(29).filter((d) => d.startsWith('virtio-serial'))).toEqual(['virtio-serial-pci,id=vser0,max_ports=31']);
    // A guest whose device had max_ports=32 never completed a write on its control port: no device has more than 31.
    expect(devices(30).filter((d) => d.startsWith('virtio-serial'))).toEqual(['virtio-serial-pci,id=vser0,max_ports=31', 'virtio-serial-pci,id=vser1,max_ports=2']);
    const d40 = devices(40);
    expect(d40.filter((d) => d.startsWith('virtio-serial'))).toEqual(['virtio-serial-pci,id=vser0,max_ports=31', 'virtio-serial-pci,id=vser1,max_ports=12']);
    expect(d40).toContain('virtserialport,bus=vser0.0,nr=30,chardev=p29,name=slot29');
    expect(d40).toContain('virtserialport,bus=vser1.0,nr=1,chardev=p30,name=slot30');
    expect(d40).toContain('virtserialport,bus=vser1.0,nr=11,chardev=p40,name=slot40');
    // Every port has a distinct (device, nr) within its device's max_ports.
    for (const slots of [29, 30, 59, 60, MAX_DATA_PORT_SLOTS]) {
      const ds = devices(slots);
      const max = new Map(ds.filter((d) => d.startsWith('virtio-serial')).map((d) => [/id=(vser\d+)/.exec(d)![1], Number(/max_ports=(\d+)/.exec(d)![1])]));
      const seen = new Set<string>();
      for (const p of ds.filter((d) => d.startsWith('virtserialport'))) {
        const [, bus, nr] = /bus=(vser\d+)\.0,nr=(\d+)/.exec(p)!;
        expect(Number(nr)).toBeGreaterThan(0);
        expect(Number(nr)).toBeLessThan(max.get(bus)!);
        expect(max.get(bus)!).toBeLessThanOrEqual(31);
        expect(seen.has(`${bus}/${nr}`)).toBe(false);
        seen.add(`${bus}/${nr}`);
      }
      expect(seen.size).toBe(slots + 1);
      expect(max.size).toBeLessThanOrEqual(MAX_SERIAL_DEVICES);
    }
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
