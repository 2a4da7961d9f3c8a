// The memory floor the compiler enforces for KVM guests (MCL0601,
// compiler/src/target/capabilities.ts) is what the template really needs: a
// guest of that size boots and runs a program, and one with 72MiB (the
// largest size measured to fail) never reaches the agent.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CAPABILITIES } from '../../../../compiler/src/target/capabilities';
import { buildImage, ensureTemplate, forkClone } from '../../src/vm/index';
import { until } from '../fixtures/vm';

const cacheDir = process.env.MCL_CACHE_DIR;
const dir = mkdtempSync(join(tmpdir(), 'mcl-minmem-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const image = () => buildImage({ name: 'busybox', kernel: 'debian-cloud', modules: ['virtio_console'], files: [] }, { cacheDir });

describe('the least guest memory', () => {
  it('boots a template with the floor the compiler enforces and runs a program in a clone of it', async () => {
    const mib = CAPABILITIES.kvm.minMemoryBytes / (1024 * 1024);
    const tpl = await ensureTemplate({ id: `floor-${mib}m`, image: await image(), memoryBytes: mib * 1024 * 1024, vcpus: 1, portSlots: 4 }, { cacheDir, bootTimeoutMs: 120_000 });
    const log = join(dir, 'floor.log');
    const clone = await forkClone(tpl, { name: 'floor', controlSocket: join(dir, 'floor.ctl'), dataPortSockets: [], logFile: log });
    try {
      await clone.sendIdentity({ instanceId: 'floor', ports: [], program: { argv: ['/bin/sh', '-c', 'echo "floor: $(cat /proc/meminfo | head -1)"; sleep 30'], env: {}, files: [] } });
      await until('the program output', () => readFileSync(log, 'utf8').includes('floor: MemTotal'), 30_000);
    } finally {
      await clone.kill();
    }
  }, 240_000);

  it('does not boot a template with 72MiB: the kernel runs out of memory unpacking the initramfs', async () => {
    const log = join(dir, 'tiny.log');
    await expect(ensureTemplate({ id: 'tiny-72m', image: await image(), memoryBytes: 72 * 1024 * 1024, vcpus: 1, portSlots: 4 }, { cacheDir, bootTimeoutMs: 120_000, logFile: log })).rejects.toThrow();
    expect(readFileSync(log, 'utf8')).toMatch(/Kernel panic|Out of memory|deadlocked on memory/);
  }, 240_000);
});
