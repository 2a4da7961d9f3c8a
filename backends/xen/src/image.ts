// What a Xen guest needs beyond the KVM image: the Xen guest modules (event
// channels and grant mapping for the vchan client; /dev/xen/xenbus is built
// into Debian's cloud kernel) and the static vchan client in /usr/bin, beside
// the broker's guest tools. The image itself is built by the KVM backend's
// builder, so the kernel, busybox, agent and reseed helper are the same bytes.

import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, mclHome } from '@mcl/backend-kvm/vm';

/** Loaded after the image's own modules. */
export const XEN_GUEST_MODULES = ['xen-evtchn', 'xen-gntdev'];

/**
 * A directory with the broker's guest tools and `mcl-vchan`, in the cache,
 * keyed by their contents (the image builder copies it into /usr/bin).
 */
export async function prepareGuestTools(vchanClient: string, opts: { cacheDir?: string } = {}): Promise<string> {
  const brokerTools = join(mclHome(), 'backends', 'broker', 'guest');
  const files: { name: string; path: string }[] = readdirSync(brokerTools)
    .filter((n) => statSync(join(brokerTools, n)).isFile())
    .sort()
    .map((n) => ({ name: n, path: join(brokerTools, n) }));
  files.push({ name: 'mcl-vchan', path: vchanClient });
  const h = createHash('sha256');
  for (const f of files) h.update(`${f.name}\0`).update(readFileSync(f.path)).update('\0');
  const dir = join(cacheDir(opts), 'xen', 'guest-tools', h.digest('hex').slice(0, 24));
  if (existsSync(dir)) return dir;
  const tmp = `${dir}.tmp${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  for (const f of files) copyFileSync(f.path, join(tmp, f.name));
  try {
    renameSync(tmp, dir);
  } catch {
    // Another build made it first: the same contents.
    rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}
