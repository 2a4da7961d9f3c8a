// Builds the backend's two C programs on the dom0 host, with its C compiler
// and Debian's libxen-dev, into the cache (keyed by source, compiler and
// flags, so a changed source is rebuilt and an unchanged one is not):
// - `mcl-xen`, the dom0 helper (check, list, fork, plumb, reset, destroy, relay);
// - `mcl-vchan`, the guest's vchan client, linked statically for the busybox initramfs.
// `MCL_XEN_HELPER` and `MCL_XEN_VCHAN` name prebuilt ones instead (a dom0
// without a compiler, as in the nested test harness).

import { join } from 'node:path';
import { buildC, mclHome } from '@mcl/backend-kvm/vm';

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

/** The path of a built program (built now when the cache has none: `<cache>/xen/bin/<key>/<name>`). */
export function nativeProgram(p: NativeProgram, opts: { cacheDir?: string } = {}): Promise<string> {
  const given = process.env[p.env];
  if (given) return Promise.resolve(given);
  return buildC({ name: p.name, source: join(NATIVE_DIR(), p.source), flags: p.flags, libs: p.libs, subdir: join('xen', 'bin') }, opts).catch((e: unknown) => {
    throw Object.assign(new Error(e instanceof Error ? e.message : String(e)), {
      kind: 'failure' as const,
      hint: `install the Xen development files and a C compiler (apt-get install libxen-dev gcc), or set ${p.env} to a prebuilt ${p.name}`,
    });
  });
}
