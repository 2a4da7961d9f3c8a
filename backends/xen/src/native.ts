// Builds the backend's two C programs on the dom0 host, with its C compiler
// and Debian's libxen-dev, into the cache (keyed by source, compiler and
// flags, so a changed source is rebuilt and an unchanged one is not):
// - `mcl-xen`, the dom0 helper (check, list, fork, plumb, reset, destroy, relay);
// - `mcl-vchan`, the guest's vchan client, linked statically for the busybox initramfs.
// `MCL_XEN_HELPER` and `MCL_XEN_VCHAN` name prebuilt ones instead (a dom0
// without a compiler, as in the nested test harness).

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { cacheDir, mclHome } from '@mcl/backend-kvm/vm';

export interface NativeProgram {
  name: 'mcl-xen' | 'mcl-vchan';
  source: string;
  /** Compiler flags before the source. */
  flags: string[];
  /** Libraries after the source. */
  libs: string[];
  env: string;
}

export const NATIVE_DIR = (home = mclHome()) => join(home, 'backends', 'xen', 'native');

export const HELPER: NativeProgram = {
  name: 'mcl-xen',
  source: 'mcl-xen.c',
  flags: ['-std=gnu11', '-O2', '-Wall', '-Wextra'],
  libs: ['-lxenvchan', '-lxenctrl', '-lxenstore'],
  env: 'MCL_XEN_HELPER',
};

export const GUEST_CLIENT: NativeProgram = {
  name: 'mcl-vchan',
  source: 'mcl-vchan.c',
  flags: ['-std=gnu11', '-O2', '-Wall', '-Wextra', '-static', '-s'],
  libs: ['-lxenvchan', '-lxengnttab', '-lxenevtchn', '-lxenstore', '-lxentoolcore', '-lxentoollog'],
  env: 'MCL_XEN_VCHAN',
};

const builds = new Map<string, Promise<string>>();

/** The path of a built program (built now when the cache has none). */
export function nativeProgram(p: NativeProgram, opts: { cacheDir?: string } = {}): Promise<string> {
  const given = process.env[p.env];
  if (given) return Promise.resolve(given);
  const key = `${p.name}:${cacheDir(opts)}`;
  let b = builds.get(key);
  if (!b) {
    b = build(p, opts);
    builds.set(key, b);
    b.catch(() => builds.delete(key));
  }
  return b;
}

async function build(p: NativeProgram, opts: { cacheDir?: string }): Promise<string> {
  const src = join(NATIVE_DIR(), p.source);
  const cc = process.env.CC || 'cc';
  const text = readFileSync(src);
  const key = createHash('sha256').update(text).update(`\0${cc}\0${p.flags.join(' ')}\0${p.libs.join(' ')}\0${process.arch}`).digest('hex').slice(0, 24);
  const dir = join(cacheDir(opts), 'xen', 'bin', key);
  const out = join(dir, p.name);
  if (existsSync(out)) return out;
  await mkdir(dir, { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  const r = await execa(cc, [...p.flags, src, '-o', tmp, ...p.libs], { reject: false, all: true, timeout: 120_000 });
  if (r.exitCode !== 0) {
    throw Object.assign(new Error(`building ${p.name} failed (${cc}): ${String(r.all ?? r.shortMessage).slice(-2000)}`), {
      kind: 'failure' as const,
      hint: `install the Xen development files and a C compiler (apt-get install libxen-dev gcc), or set ${p.env} to a prebuilt ${p.name}`,
    });
  }
  await rename(tmp, out);
  return out;
}
