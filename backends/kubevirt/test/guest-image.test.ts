// The guest image of a kubevirt target, as `mclc render --format
// containerdisk` builds it: the KVM backend's initramfs of the plan's image
// with the network driver a KubeVirt machine's pod interface needs. The
// initramfs is read back (gzip, newc cpio) to see what the guest will load.

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { buildImage } from '@mcl/backend-kvm/vm';
import { GUEST_NET_MODULES, guestImageSpec } from '../src/render';
import { examplePlan } from './plans';

/** The files of a newc cpio archive by path. */
function readCpio(buf: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  let off = 0;
  const pad4 = (n: number) => (n + 3) & ~3;
  while (off + 110 <= buf.length) {
    const h = buf.subarray(off, off + 110).toString('latin1');
    if (!h.startsWith('070701')) throw new Error(`no newc header at ${off}`);
    const field = (i: number) => parseInt(h.slice(6 + i * 8, 14 + i * 8), 16);
    const fileSize = field(6);
    const nameSize = field(11);
    const name = buf.subarray(off + 110, off + 110 + nameSize - 1).toString('utf8');
    const dataAt = pad4(off + 110 + nameSize);
    if (name === 'TRAILER!!!') break;
    files.set(name, buf.subarray(dataAt, dataAt + fileSize));
    off = pad4(dataAt + fileSize);
  }
  return files;
}

/** The image build needs the Debian cloud kernel with its modules (scripts/setup.sh installs them). */
const kernel = existsSync('/boot') ? readdirSync('/boot').find((n) => /^vmlinuz-.*-cloud-amd64$/.test(n)) : undefined;
const haveKernel = kernel !== undefined && existsSync(join('/lib/modules', kernel.slice('vmlinuz-'.length), 'modules.dep'));

const cache = mkdtempSync(join(tmpdir(), 'mcl-kubevirt-image-'));
afterAll(() => rmSync(cache, { recursive: true, force: true }));

describe.skipIf(!haveKernel)('the guest image of a kubevirt target', () => {
  it('has virtio_net, net_failover and failover, listed for the agent to load at boot after their dependencies; the KVM image of the same plan does not', async () => {
    const plan = examplePlan('webstack').plan!;
    const image = plan.images[0];
    const built = await buildImage(guestImageSpec(image), { cacheDir: cache });
    const files = readCpio(gunzipSync(readFileSync(built.initrdPath)));
    for (const m of GUEST_NET_MODULES) expect(files.has(`lib/mcl-modules/${m}.ko`), m).toBe(true);
    const order = files.get('etc/mcl/modules')!.toString('utf8').trim().split('\n');
    for (const m of GUEST_NET_MODULES) expect(order).toContain(m);
    expect(order.indexOf('failover')).toBeLessThan(order.indexOf('net_failover'));
    expect(order.indexOf('net_failover')).toBeLessThan(order.indexOf('virtio_net'));
    expect(order.indexOf('virtio_pci')).toBeLessThan(order.indexOf('virtio_net'));
    expect(built.modules).toEqual(order);
    // The agent that loads them and brings eth0 up in the TCP transport is in the same image.
    expect(files.get('usr/sbin/mcl-agent')!.toString('utf8')).toContain('net_up');

    const kvm = await buildImage(image, { cacheDir: cache });
    expect(kvm.modules).not.toContain('virtio_net');
    // A plan image that names the driver itself gets it once.
    expect(guestImageSpec({ ...image, modules: ['virtio_net'] }).modules).toEqual(['virtio_net', 'failover', 'net_failover']);
  }, 120_000);
});
