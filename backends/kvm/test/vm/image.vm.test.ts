// Image builds on this host's busybox-static and kernel: reproducible bytes and the cache.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import { BROKER_GUEST_DIR } from '../../src/image/index';
import { buildImage, doctor, probeAccelerator } from '../../src/vm/index';

const dirs: string[] = [];
const fresh = async () => {
  const d = await mkdtemp(path.join(os.tmpdir(), 'mcl-img-'));
  dirs.push(d);
  return d;
};
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const spec = { name: 'busybox', kernel: 'debian-cloud', modules: ['virtio_console'], files: [{ path: '/etc/motd', content: 'hi\n', mode: '0644' }] };

describe('buildImage', () => {
  it('gives identical bytes twice and hits the cache the second time', async () => {
    const a = await fresh();
    const first = await buildImage(spec, { cacheDir: a });
    const second = await buildImage(spec, { cacheDir: a });
    expect(first.cached).toBe(false);
    expect(second.cached).toBe(true);
    expect(second.initrdSha256).toBe(first.initrdSha256);
    const b = await fresh();
    const elsewhere = await buildImage(spec, { cacheDir: b });
    expect(elsewhere.cached).toBe(false);
    expect(await readFile(elsewhere.initrdPath)).toEqual(await readFile(first.initrdPath));
  });

  it('loads modules in dependency order and carries the agent', async () => {
    const img = await buildImage(spec, { cacheDir: await fresh() });
    expect(img.modules.indexOf('virtio_ring')).toBeLessThan(img.modules.indexOf('virtio'));
    expect(img.modules.indexOf('virtio')).toBeLessThan(img.modules.indexOf('virtio_console'));
    const cpio = gunzipSync(await readFile(img.initrdPath)).toString('latin1');
    for (const p of ['usr/sbin/mcl-agent', 'etc/inittab', 'bin/busybox', 'sbin/init', 'lib/mcl-modules/virtio_console.ko', 'etc/motd']) {
      expect(cpio).toContain(p + '\0');
    }
    // The CRNG reseed helper is generated for x86-64 kernels, the only ones these hosts boot.
    if (process.arch === 'x64') expect(cpio).toContain('bin/mcl-reseed\0');
    // Every file of the broker's guest folder lands in /usr/bin.
    for (const f of existsSync(BROKER_GUEST_DIR) ? readdirSync(BROKER_GUEST_DIR) : []) expect(cpio).toContain(`usr/bin/${f}\0`);
  });

  it('changes the key when an input changes', async () => {
    const dir = await fresh();
    const a = await buildImage(spec, { cacheDir: dir });
    const b = await buildImage({ ...spec, files: [{ path: '/etc/motd', content: 'hello\n', mode: '0644' }] }, { cacheDir: dir });
    expect(b.key).not.toBe(a.key);
    expect(b.cached).toBe(false);
  });

  it('explains an unknown module', async () => {
    await expect(buildImage({ ...spec, modules: ['no_such_module'] }, { cacheDir: await fresh() })).rejects.toThrow(/no module\(s\) no_such_module/);
  });
});

describe('host checks', () => {
  it('probes the accelerator once per boot and explains the choice', async () => {
    const dir = await fresh();
    const first = await probeAccelerator({ cacheDir: dir });
    expect(['kvm', 'tcg']).toContain(first.accel);
    expect(first.reason.length).toBeGreaterThan(10);
    expect(first.cached).toBe(false);
    const again = await probeAccelerator({ cacheDir: dir });
    expect(again).toEqual({ ...first, cached: true });
  }, 30_000);

  it('doctor reports QEMU, the kernel and busybox', async () => {
    const r = await doctor({ probe: false });
    expect(r.qemu.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(r.kernel.path).toMatch(/vmlinuz/);
    expect(r.busybox.path).toBeTruthy();
    expect(r.checks.find((c) => c.name === 'qemu')?.ok).toBe(true);
    expect(r.checks.every((c) => c.ok || c.hint)).toBe(true);
  });
});
