// Kernel same-page merging: the launcher's prctl, the QMP commands that keep
// guest RAM out of KSM, and the doctor's KSM line.

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { ksmCheck, readKsmHost } from '../../src/vm/doctor';
import { which } from '../../src/vm/paths';
import { parseKsmUsage } from '../../src/vm/memory';
import { GUEST_RAM_KSM_OFF, guestRamKsmOff, launchCommand, parseMergeAny, qemuArgs, type LaunchHost } from '../../src/vm/qemu';

const host: LaunchHost = { thpMode: 'madvise', arch: 'x64', perl: '/usr/bin/perl', keepThp: false, inherited: false, ksm: true };

describe('launchCommand with KSM asked for', () => {
  it('marks QEMU mergeable through perl (PR_SET_MEMORY_MERGE is 67)', () => {
    const l = launchCommand('/q', ['-m', '128M'], host);
    expect(l.ksm).toBe(true);
    expect(l.args[1]).toContain('syscall(157, 67, 1, 0, 0, 0)');
    expect(l.args[1]).toContain('syscall(157, 41, 1');
    expect(launchCommand('/q', [], { ...host, arch: 'arm64' }).args[1]).toContain('syscall(167, 67, 1');
  });
  it('uses perl for it even where THP needs no perl', () => {
    for (const h of [{ ...host, inherited: true }, { ...host, thpMode: 'never' }, { ...host, keepThp: true }]) {
      const l = launchCommand('/q', ['-m', '128M'], h);
      expect(l.file).toBe('/usr/bin/perl');
      expect(l.ksm).toBe(true);
      expect(l.args[1]).not.toContain(', 41, 1');
    }
  });
  it('does not ask for it unless told, and says so when it cannot', () => {
    expect(launchCommand('/q', [], { ...host, ksm: false }).args[1]).not.toContain(', 67, ');
    expect(launchCommand('/q', [], { ...host, ksm: undefined }).ksm).toBe(false);
    expect(launchCommand('/q', ['-m', '128M'], { ...host, perl: null })).toEqual({ file: '/q', args: ['-m', '128M'], thpOff: false, dieWithParent: false, ksm: false });
    expect(launchCommand('/q', [], { ...host, arch: 'mips' }).ksm).toBe(false);
  });
  const perl = which('perl');
  it.skipIf(!perl || !existsSync('/proc/self/ksm_stat') || process.arch !== 'x64')('leaves the started program mergeable as a whole on this kernel (kept across execve)', async () => {
    const l = launchCommand('/bin/sh', ['-c', 'cat /proc/self/ksm_stat'], { ...host, arch: process.arch, perl });
    const r = await execa(l.file, l.args);
    // Kernels before 6.10 lack the line; there the prctl's effect cannot be read back this way.
    if (/ksm_merge_any/.test(r.stdout)) expect(r.stdout).toMatch(/^ksm_merge_any: yes$/m);
    const plain = launchCommand('/bin/sh', ['-c', 'cat /proc/self/ksm_stat'], { ...host, ksm: false, arch: process.arch, perl });
    const p = await execa(plain.file, plain.args);
    if (/ksm_merge_any/.test(p.stdout)) expect(p.stdout).toMatch(/^ksm_merge_any: no$/m);
  });
});

describe('GUEST_RAM_KSM_OFF', () => {
  it('sets merge on and then off on the memory backend of qemuArgs, which starts with it off', () => {
    expect(GUEST_RAM_KSM_OFF.map((c) => [c.execute, c.arguments.path, c.arguments.property, c.arguments.value])).toEqual([
      ['qom-set', '/objects/mem', 'merge', true],
      ['qom-set', '/objects/mem', 'merge', false],
    ]);
    const args = qemuArgs(
      { machine: 'pc', accel: 'tcg', memoryBytes: 128 << 20, vcpus: 1, portSlots: 1, kernelPath: '/k', initrdPath: '/i', memPath: '/dev/shm/m' },
      { name: 'c', shareMemory: false, controlSocket: '/c', dataPortSockets: [null], logFile: '/l', qmpSocket: '/q' },
    );
    const backend = args.find((a) => a.startsWith('memory-backend-file'));
    expect(backend).toMatch(/^memory-backend-file,id=mem,.*,merge=off$/);
    expect(args).toContain('pc,memory-backend=mem');
  });
  it('is run where QEMU is mergeable as a whole, asked for or inherited, and only there', () => {
    const plain = { ...host, ksm: false, mergeAnyInherited: false };
    expect(guestRamKsmOff(plain)).toEqual([]);
    expect(guestRamKsmOff({ ...plain, mergeAnyInherited: undefined, ksm: undefined })).toEqual([]);
    expect(guestRamKsmOff({ ...plain, ksm: true })).toBe(GUEST_RAM_KSM_OFF);
    expect(guestRamKsmOff({ ...plain, mergeAnyInherited: true })).toBe(GUEST_RAM_KSM_OFF);
  });
});

describe('parseMergeAny', () => {
  it('reads ksm_merge_any, and counts a kernel that has the prctl but does not say as mergeable', () => {
    expect(parseMergeAny('ksm_rmap_items 0\nksm_merge_any: yes\nksm_mergeable: yes\n', true)).toBe(true);
    expect(parseMergeAny('ksm_rmap_items 0\nksm_merge_any: no\nksm_mergeable: no\n', true)).toBe(false);
    expect(parseMergeAny('ksm_rmap_items 0\nksm_merging_pages 0\n', true)).toBe(true);
    expect(parseMergeAny('ksm_rmap_items 0\n', false)).toBe(false);
    expect(parseMergeAny('', false)).toBe(false);
  });
});

describe('doctor: ksm', () => {
  it('reads run and whether the kernel has the prctl', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mcl-ksm-'));
    try {
      expect(readKsmHost(path.join(dir, 'none'))).toEqual({ run: null, processMerge: false });
      await mkdir(path.join(dir, 'ksm'));
      await writeFile(path.join(dir, 'ksm', 'run'), '1\n');
      expect(readKsmHost(path.join(dir, 'ksm'))).toEqual({ run: 1, processMerge: false });
      await writeFile(path.join(dir, 'ksm', 'general_profit'), '0\n');
      expect(readKsmHost(path.join(dir, 'ksm'))).toEqual({ run: 1, processMerge: true });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  it('fails only when merging was asked for and cannot happen', () => {
    expect(ksmCheck({ run: null, processMerge: false }, false).ok).toBe(true);
    expect(ksmCheck({ run: 0, processMerge: true }, false)).toMatchObject({ ok: true, detail: expect.stringContaining('stopped (run=0)') });
    expect(ksmCheck({ run: 1, processMerge: true }, true)).toMatchObject({ ok: true, detail: expect.stringContaining('offered to it') });
    expect(ksmCheck({ run: null, processMerge: false }, true).ok).toBe(false);
    expect(ksmCheck({ run: 1, processMerge: false }, true).ok).toBe(false);
    const stopped = ksmCheck({ run: 0, processMerge: true }, true);
    expect(stopped.ok).toBe(false);
    expect(stopped.hint).toContain('/sys/kernel/mm/ksm/run');
    for (const h of [{ run: 0, processMerge: true }, { run: 1, processMerge: true }]) expect(ksmCheck(h, false).detail).toContain('guest RAM is never merged');
    // A process mergeable as a whole passes it on to QEMU.
    expect(ksmCheck({ run: 1, processMerge: true }, false, true)).toMatchObject({ ok: true, detail: expect.stringContaining('inherited') });
    expect(ksmCheck({ run: 1, processMerge: true }, false, false).detail).toContain('not offered');
  });
});

describe('parseKsmUsage', () => {
  it('reads merged and zero pages, the process-wide setting and Pss_Anon', () => {
    const stat = 'ksm_rmap_items 3738\nksm_zero_pages 3\nksm_merging_pages 719\nksm_process_profit 2705792\nksm_merge_any: yes\nksm_mergeable: yes\n';
    const rollup = 'Rss:               24036 kB\nPss:               16560 kB\nPss_Anon:          12808 kB\nPss_File:           3700 kB\n';
    expect(parseKsmUsage(stat, rollup)).toEqual({ merged: 719 * 4096, zero: 3 * 4096, mergeAny: true, anonPss: 12808 * 1024 });
    expect(parseKsmUsage(stat.replace('any: yes', 'any: no'), rollup).mergeAny).toBe(false);
    // Older kernels: no ksm_stat, or one without the merge_any line.
    expect(parseKsmUsage('', rollup)).toEqual({ merged: 0, zero: 0, mergeAny: null, anonPss: 12808 * 1024 });
    expect(parseKsmUsage('ksm_rmap_items 0\n', '')).toMatchObject({ mergeAny: null, anonPss: 0 });
  });
});
