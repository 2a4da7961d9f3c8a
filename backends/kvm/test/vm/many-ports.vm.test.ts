// A guest with more ports than one virtio-serial device carries (31 with the
// control port, 30 per device), on real QEMU: the template boots with its ports spread over
// several devices, a copy-on-write clone of it gets the same layout, and the
// guest finds every port by its name whatever device carries it, so ports on
// the first and on the second device answer alike.

import { mkdtemp, rm } from 'node:fs/promises';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, connectUnix, ensureTemplate, forkClone, type Clone, type Template } from '../../src/vm/index';
import { serialDeviceCount } from '../../src/vm/qemu';

const cacheDir = process.env.MCL_CACHE_DIR ?? path.join(os.tmpdir(), 'mcl-vm-test-cache');
const SLOTS = 40;
/** The slots the test uses: the first and last of device 0, the first and last data slot of device 1. */
const USED = [1, 29, 30, 40];
let template: Template;
let run: string;
const clones: Clone[] = [];

/** Sends one line and resolves with the first line that comes back. */
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
  run = await mkdtemp(path.join(os.tmpdir(), 'mcl-ports-'));
  const image = await buildImage({ name: 'busybox', kernel: 'debian-cloud', modules: ['virtio_console'], files: [] }, { cacheDir });
  template = await ensureTemplate({ id: `test-128m-1c-${SLOTS}p`, image, memoryBytes: 128 * 1024 * 1024, vcpus: 1, portSlots: SLOTS }, { cacheDir, bootTimeoutMs: 240_000 });
}, 900_000);

afterAll(async () => {
  await Promise.all(clones.map((c) => c.kill()));
  if (run) await rm(run, { recursive: true, force: true });
});

describe(`a guest with ${SLOTS} ports`, () => {
  it('spreads them over two virtio-serial devices', () => {
    expect(serialDeviceCount(SLOTS)).toBe(2);
  });

  it('forks a clone whose ports on both devices answer, each found by its name', async () => {
    const sockets = Array.from({ length: SLOTS }, (_, i) => (USED.includes(i + 1) ? path.join(run, `p${i + 1}`) : null));
    const clone = await forkClone(template, {
      name: 'ports#0',
      controlSocket: path.join(run, 'ctl'),
      dataPortSockets: sockets,
      logFile: path.join(run, 'console.log'),
    });
    clones.push(clone);
    expect(await clone.control.ping()).toBeGreaterThanOrEqual(0);
    // Connect the data ports before the program starts: a guest reading a port with no host gets end-of-file.
    const data = await Promise.all(USED.map((s) => connectUnix(path.join(run, `p${s}`), 5_000)));
    // One echo loop per used port, each tagging its answers with the port's name.
    const loops = USED.map((s) => `(exec 3<>/dev/mcl/port${s}; while read -r l <&3; do echo "port${s}:$l" >&3; done) &`).join(' ');
    await clone.sendIdentity({
      instanceId: 'ports',
      ports: USED.map((s) => ({ name: `port${s}`, slot: s })),
      program: { argv: ['/bin/sh', '-c', `${loops} wait`], env: {}, files: [] },
    });
    for (const [i, s] of USED.entries()) {
      expect(await roundTrip(data[i], `hello-${s}`)).toBe(`port${s}:hello-${s}`);
    }
    for (const d of data) d.destroy();
  }, 180_000);
});
