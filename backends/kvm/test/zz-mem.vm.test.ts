import { it } from 'vitest';
import { buildImage, ensureTemplate, forkClone } from '../src/vm/index';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
it('memory sizes', async () => {
  const cacheDir = process.env.MCL_CACHE_DIR!;
  const image = await buildImage({ name: 'busybox', kernel: 'debian-cloud', modules: ['virtio_console'], files: [] }, { cacheDir });
  for (const mib of (process.env.SIZES ?? '64,72,80,96').split(',').map(Number)) {
    const t0 = Date.now();
    try {
      const tpl = await ensureTemplate({ id: `mem-${mib}`, image, memoryBytes: mib * 1024 * 1024, vcpus: 1, portSlots: 4 }, { cacheDir, bootTimeoutMs: 90_000, logFile: `/tmp/super-flood/mem-${mib}.log` });
      const dir = mkdtempSync(join(tmpdir(), 'mcl-mem-'));
      const c = await forkClone(tpl, { name: 'm', controlSocket: join(dir, 'ctl'), dataPortSockets: [], logFile: join(dir, 'console.log') });
      await c.sendIdentity({ instanceId: 'm', ports: [], program: { argv: ['/bin/sh', '-c', 'echo hi; sleep 5'], env: {}, files: [] } });
      await c.kill();
      console.error(`MEM ${mib} MiB: boots and forks (${Date.now() - t0} ms)`);
    } catch (e) {
      console.error(`MEM ${mib} MiB: FAILS: ${String((e as Error).message).split('\n').slice(0, 6).join(' | ')}`);
    }
  }
}, 900_000);
