// What dom0 of the nested-Xen test bed needs to run this repository's mclc
// with the Xen backend (spec/xen-testing.md, "mcl in dom0"): the CLI bundle
// (cli/dist/mclc.mjs and its chunks, built by `npm run build`), the files it finds from its
// installation directory at run time (the standard library, the guest agent,
// the broker's guest tools, the Xen backend's native sources and FLASK
// policy sources), an `mclc` command, and the backend's two C programs built
// here (dom0 has no compiler) and named to the backend by MCL_XEN_HELPER and
// MCL_XEN_VCHAN. They go into the per-run cpio archive (NestedXenOptions.files),
// so a change of the code under test never rebuilds the cached dom0 initramfs.

import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { CpioEntry } from '../../../kvm/src/image/cpio';
import { GUEST_CLIENT, HELPER, nativeProgram } from '../../src/native';
import { repoRoot } from '../../../kvm/test/fixtures/plans';

/** Where mcl is installed in dom0 (its MCL_HOME). */
export const MCL_IN_DOM0 = '/opt/mcl';

/** Folders of the repository the CLI reads at run time, copied whole. */
const TREES = ['stdlib', 'backends/kvm/guest', 'backends/broker/guest', 'backends/xen/native', 'backends/xen/flask'];

/** The environment every mclc command in dom0 runs with. */
export const MCL_ENV: Record<string, string> = {
  MCL_HOME: MCL_IN_DOM0,
  MCL_CACHE_DIR: '/var/cache/mcl',
  MCL_XEN_HELPER: '/usr/local/bin/mcl-xen',
  MCL_XEN_VCHAN: '/usr/local/lib/mcl/mcl-vchan',
  // Guests of a guest under TCG, on a machine other jobs share: a template's boot takes minutes, not seconds.
  MCL_XEN_BOOT_TIMEOUT_MS: '1200000',
  // And starting node twice (the supervisor's watchdog, then the supervisor) in that dom0: minutes at worst.
  MCL_XEN_SUPERVISOR_START_MS: '600000',
};

function tree(dir: string, into: string, out: CpioEntry[]): void {
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) tree(p, `${into}/${name}`, out);
    else if (st.isFile()) out.push({ kind: 'file', path: `${into}/${name}`, mode: st.mode & 0o111 ? 0o755 : 0o644, data: readFileSync(p) });
  }
}

/** The shared libraries `bin` loads that the cached dom0 may not have (the same paths there: later entries win). */
function librariesOf(bin: string): CpioEntry[] {
  const out: CpioEntry[] = [];
  for (const line of execFileSync('ldd', [bin], { encoding: 'utf8' }).split('\n')) {
    const m = /^\s*(\S+) => (\/\S+) \(/.exec(line);
    if (m) out.push({ kind: 'file', path: `lib/x86_64-linux-gnu/${path.basename(m[1])}`, mode: 0o755, data: readFileSync(m[2]) });
  }
  return out;
}

/** The files of mcl for dom0, and the environment its commands need. */
export async function mclFiles(options: { cacheDir?: string } = {}): Promise<CpioEntry[]> {
  const dist = path.join(repoRoot, 'cli', 'dist');
  const bundle = path.join(dist, 'mclc.mjs');
  if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run npm run build first`);
  // The entry and the chunks it loads (what only some commands need is split off by the build); not the source maps.
  const files: CpioEntry[] = readdirSync(dist)
    .filter((n) => n.endsWith('.mjs'))
    .sort()
    .map((n) => ({ kind: 'file', path: `${MCL_IN_DOM0}/cli/dist/${n}`, mode: 0o644, data: readFileSync(path.join(dist, n)) }));
  // `mclc doctor` loads every backend: the KubeVirt one is a bundle of its own, found from the CLI's place.
  const kubevirt = path.join(repoRoot, 'backends', 'kubevirt', 'dist', 'index.mjs');
  if (!existsSync(kubevirt)) throw new Error(`${kubevirt} is missing: run npm run build first`);
  files.push({ kind: 'file', path: `${MCL_IN_DOM0}/backends/kubevirt/dist/index.mjs`, mode: 0o644, data: readFileSync(kubevirt) });
  for (const t of TREES) tree(path.join(repoRoot, t), `${MCL_IN_DOM0}/${t}`, files);
  files.push({ kind: 'file', path: '/usr/local/bin/mclc', mode: 0o755, data: Buffer.from(`#!/bin/sh\nexec /usr/bin/node ${MCL_IN_DOM0}/cli/dist/mclc.mjs "$@"\n`) });
  const helper = await nativeProgram(HELPER, options);
  const client = await nativeProgram(GUEST_CLIENT, options);
  files.push({ kind: 'file', path: MCL_ENV.MCL_XEN_HELPER, mode: 0o755, data: readFileSync(helper) });
  files.push({ kind: 'file', path: MCL_ENV.MCL_XEN_VCHAN, mode: 0o755, data: readFileSync(client) });
  files.push(...librariesOf(helper));
  return files.map((f) => ({ ...f, path: f.path.replace(/^\/+/, '') }));
}
