// The nested-Xen test bed: Debian's real Xen 4.17 booted as a multiboot
// kernel under QEMU TCG, with a PV dom0 that runs the Xen daemons, the host's
// node binary and whatever a test puts there (spec/xen-testing.md).
//
// TCG emulates AMD SVM with nested paging (`-cpu qemu64,+svm,+npt`), so the
// hypervisor gets HVM and HAP and runs PVH guests; it has no VMX, so memory
// sharing (Intel only) is out of reach here.
//
// What it builds, from packages apt-get downloads (fetch-debs.sh) and unpacks
// without installing:
// - the dom0 initramfs: busybox, the Xen tools and daemons from xen-utils-4.17
//   with the libraries they link, node with its libraries, the Xen and virtio
//   modules of the dom0 kernel, the control agent (dom0-agent.mjs), the smoke
//   test's vchan server, the guest kernel (the host's Debian cloud kernel) and
//   a small guest initramfs. It is cached under
//   `$MCL_CACHE_DIR/xen-nested/dom0-<key>.cpio` (the key: dom0Key below);
// - a second cpio archive per run with the test's own files (`files`),
//   appended to the first (Linux unpacks concatenated archives), so a change
//   of the code under test does not rebuild the large one.
//
// What it runs: one QEMU process, in a fresh run directory, started with a
// parent-death signal so it dies with the test process. Its serial line (Xen's
// and dom0's messages) goes to a capped log; the host talks to dom0's agent
// over a virtio-serial port (JSON lines); QEMU's user-mode network forwards
// 127.0.0.1 ports of the host to dom0 only where a test asks. `close()` kills
// QEMU and removes the run directory, and a deadline kills QEMU even when no
// one calls it.

import { createHash } from 'node:crypto';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { LineSplitter } from '@mcl/broker/lines';
import { writeCpio, type CpioEntry } from '../../../kvm/src/image/cpio';
import { BASE_MODULES, findBusybox, resolveKernel, resolveModules } from '../../../kvm/src/image/index';
import { XEN_GUEST_MODULES } from '../../src/image';
import { ConsoleLog } from '../../../kvm/src/vm/console-log';
import { cacheDir } from '../../../kvm/src/vm/paths';
import { launchCommand, launchHost, requireQemu } from '../../../kvm/src/vm/qemu';
import { connectUnix } from '../../../kvm/src/vm/qmp';

/**
 * This directory (fetch-debs.sh, the dom0 and guest scripts, the probes): the
 * nearest ancestor of this module's location that holds
 * backends/xen/test/nested. A benchmark bundled by scripts/run-ts.mjs sees
 * its own entry's location as import.meta.url, not this file's.
 */
const here = (() => {
  const self = path.dirname(fileURLToPath(import.meta.url));
  if (existsSync(path.join(self, 'dom0-agent.mjs'))) return self;
  for (let dir = self; path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    const p = path.join(dir, 'backends', 'xen', 'test', 'nested');
    if (existsSync(path.join(p, 'dom0-agent.mjs'))) return p;
  }
  return self;
})();

/** Bumped when the layout of the dom0 initramfs changes, so old cache entries are not reused. */
const DOM0_FORMAT = 2;
/** The Xen tools' directory, in the package and in dom0 (libxl finds its helpers there). */
const XEN_BIN = 'usr/lib/xen-4.17/bin';
/** Modules of the dom0 kernel, loaded in dependency order by dom0-rc.sh. */
const DOM0_MODULES = ['xen-evtchn', 'xen-privcmd', 'xenfs', 'xen-gntdev', 'xen-gntalloc', 'virtio_pci', 'virtio_console', 'virtio_net'];
/** Modules of the guest kernel the smoke guest loads for its vchan. */
const GUEST_MODULES = XEN_GUEST_MODULES;
/** Modules of the guest kernel in dom0, for the backend's images: every image's, the Xen guest's, and the grant allocator. */
const GUEST_IMAGE_MODULES = [...BASE_MODULES, ...XEN_GUEST_MODULES, 'xen-gntalloc'];
/** The guest kernel and the smoke guest's initramfs, in dom0. */
export const GUEST_KERNEL = '/boot/nx-guest-vmlinuz';
export const SMOKE_GUEST_INITRD = '/boot/nx-smoke-guest.cpio.gz';
const MIB = 1024 * 1024;

/**
 * The xl.cfg of the test bed's own PVH guest (the host's cloud kernel and the
 * smoke guest's initramfs): no network, no disk, its console to xenconsoled.
 */
export function pvhConfig(name: string, memoryMiB = 128): string {
  return [
    `name = "${name}"`,
    'type = "pvh"',
    `kernel = "${GUEST_KERNEL}"`,
    `ramdisk = "${SMOKE_GUEST_INITRD}"`,
    'cmdline = "console=hvc0 loglevel=4"',
    `memory = ${memoryMiB}`,
    `maxmem = ${memoryMiB}`,
    'vcpus = 1',
    'vif = []',
    'disk = []',
    'on_poweroff = "destroy"',
    'on_reboot = "destroy"',
    'on_crash = "destroy"',
    '',
  ].join('\n');
}

export interface NestedXenOptions {
  /** Cache directory; default `$MCL_CACHE_DIR`, else `~/.cache/mcl`. */
  cacheDir?: string;
  /** RAM of the QEMU machine in MiB (default 3072); dom0 gets `dom0MemMiB` of it, guests the rest. */
  memoryMiB?: number;
  /** Dom0's memory in MiB (default 1024). */
  dom0MemMiB?: number;
  /** Dom0 TCP ports that get a host port on 127.0.0.1 (see hostPort()). */
  forwards?: number[];
  /** Extra files for dom0 (absolute paths there), in a cpio archive of their own appended to the cached one. */
  files?: CpioEntry[];
  /** How long the boot may take until dom0's agent answers, in ms (default 240 s). */
  bootTimeoutMs?: number;
  /** QEMU is killed after this many ms whatever happens (default 20 minutes). */
  deadlineMs?: number;
  /** Where the run directory goes (default the system's temporary directory). */
  runParent?: string;
  /** Progress messages (default: none). */
  log?: (line: string) => void;
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  truncated: boolean;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  timeoutMs?: number;
  env?: Record<string, string>;
  cwd?: string;
  stdin?: string;
}

/** The cache of the test bed: downloaded packages, unpacked trees, the hypervisor and the dom0 initramfs. */
export function nestedCacheDir(given?: string): string {
  return path.join(cacheDir({ cacheDir: given }), 'xen-nested');
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** Runs fetch-debs.sh unless every package is there already; returns the directory holding the .deb files. */
export function ensureDebs(cache: string): string {
  const debs = path.join(cache, 'debs');
  execFileSync('bash', [path.join(here, 'fetch-debs.sh'), debs], { stdio: ['ignore', 'pipe', 'inherit'] });
  return debs;
}

/** Unpacks a .deb once into `<cache>/pkgs/<file name>`; returns that directory. */
function unpack(cache: string, deb: string): string {
  const dir = path.join(cache, 'pkgs', path.basename(deb, '.deb'));
  if (existsSync(path.join(dir, '.unpacked'))) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  execFileSync('dpkg-deb', ['-x', deb, dir]);
  writeFileSync(path.join(dir, '.unpacked'), '');
  return dir;
}

function debOf(debs: string, pkg: RegExp): string {
  const names = readdirSync(debs).filter((n) => pkg.test(n)).sort();
  if (names.length === 0) throw new Error(`no ${pkg} in ${debs}; run ${path.join(here, 'fetch-debs.sh')}`);
  return path.join(debs, names[names.length - 1]);
}

export interface Dom0Inputs {
  /** The hypervisor, decompressed: a multiboot ELF QEMU loads with -kernel. */
  xen: string;
  /** The dom0 kernel (bzImage). */
  dom0Kernel: string;
  /** Xen's version from the package name, for reports. */
  xenPackage: string;
  dom0KernelRelease: string;
}

/** Downloads and unpacks what the test bed boots. */
export function ensureInputs(cache: string): Dom0Inputs & { utils: string; kernelTree: string } {
  const debs = ensureDebs(cache);
  const hvDeb = debOf(debs, /^xen-hypervisor-4\.17-amd64_.*\.deb$/);
  const hv = unpack(cache, hvDeb);
  const utils = unpack(cache, debOf(debs, /^xen-utils-4\.17_.*\.deb$/));
  const kernelTree = unpack(cache, debOf(debs, /^linux-image-[0-9].*-amd64_.*\.deb$/));
  const xen = path.join(hv, 'boot', 'xen-4.17-amd64');
  if (!existsSync(xen)) writeFileSync(xen, gunzipSync(readFileSync(path.join(hv, 'boot', 'xen-4.17-amd64.gz'))));
  const boot = path.join(kernelTree, 'boot');
  const vmlinuz = readdirSync(boot).find((n) => n.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new Error(`no vmlinuz in ${boot}`);
  const release = vmlinuz.slice('vmlinuz-'.length);
  // The package leaves modules.dep to depmod at installation; it runs here on the unpacked tree instead.
  if (!existsSync(path.join(kernelTree, 'lib', 'modules', release, 'modules.dep'))) {
    execFileSync('depmod', ['-b', kernelTree, release]);
  }
  return { xen, dom0Kernel: path.join(boot, vmlinuz), xenPackage: path.basename(hvDeb, '.deb'), dom0KernelRelease: release, utils, kernelTree };
}

const isElf = (file: string) => {
  try {
    return readFileSync(file).subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } catch {
    return false;
  }
};

/** The shared libraries `bins` load (by ldd on this host), as [path in dom0, file here]. */
function libraries(bins: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const b of bins) {
    const text = execFileSync('ldd', [b], { encoding: 'utf8' });
    for (const line of text.split('\n')) {
      const m = /^\s*(\S+) => (\/\S+) \(/.exec(line);
      if (m) out.set(`lib/x86_64-linux-gnu/${path.basename(m[1])}`, m[2]);
      else if (/^\s*not found|=> not found/.test(line)) throw new Error(`${b}: ${line.trim()} (is libxen-dev installed?)`);
    }
  }
  // glibc loads libgcc_s at run time for thread cancellation and unwinding: ldd does not list it.
  out.set('lib/x86_64-linux-gnu/libgcc_s.so.1', '/lib/x86_64-linux-gnu/libgcc_s.so.1');
  out.set('lib64/ld-linux-x86-64.so.2', '/lib64/ld-linux-x86-64.so.2');
  return out;
}

async function moduleEntries(modDir: string, wanted: string[], into: string): Promise<{ entries: CpioEntry[]; order: string[] }> {
  const dep = readFileSync(path.join(modDir, 'modules.dep'), 'utf8');
  const builtin = existsSync(path.join(modDir, 'modules.builtin')) ? readFileSync(path.join(modDir, 'modules.builtin'), 'utf8') : '';
  const { order, missing } = resolveModules(wanted, dep, builtin);
  if (missing.length > 0) throw new Error(`kernel modules ${missing.join(', ')} not in ${modDir}`);
  const entries: CpioEntry[] = [];
  for (const m of order) {
    const file = path.join(modDir, m.file);
    let data = readFileSync(file);
    if (file.endsWith('.xz')) data = execFileSync('xz', ['-dc', file], { maxBuffer: 64 * MIB });
    else if (file.endsWith('.gz')) data = gunzipSync(data);
    entries.push({ kind: 'file', path: `${into}/${m.name}.ko`, mode: 0o644, data });
  }
  return { entries, order: order.map((m) => m.name) };
}

/** Compiles a probe from probes/ into `out` (cached by the source's hash). */
function compileProbe(cache: string, name: string, flags: string[]): string {
  const src = path.join(here, 'probes', `${name}.c`);
  const key = sha256(readFileSync(src) + flags.join(' ')).slice(0, 16);
  const out = path.join(cache, 'probes', `${name}-${key}`);
  if (existsSync(out)) return out;
  mkdirSync(path.dirname(out), { recursive: true });
  const cc = process.env.CC || 'cc';
  try {
    execFileSync(cc, ['-Wall', '-Wextra', '-O2', src, '-o', `${out}.tmp`, ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: Buffer };
    throw new Error(`building ${name} failed (libxen-dev installed?):\n${err.stderr?.toString() ?? String(e)}`);
  }
  renameSync(`${out}.tmp`, out);
  return out;
}

const VCHAN_LIBS = ['-lxenvchan', '-lxengnttab', '-lxenevtchn', '-lxenstore', '-lxentoolcore', '-lxentoollog'];

async function busyboxEntries(): Promise<CpioEntry[]> {
  const busybox = await findBusybox();
  const entries: CpioEntry[] = [{ kind: 'file', path: 'bin/busybox', mode: 0o755, data: readFileSync(busybox) }];
  const list = execFileSync(busybox, ['--list-full'], { encoding: 'utf8' });
  for (const applet of list.split('\n').map((s) => s.trim()).filter(Boolean).sort()) {
    if (applet === 'bin/busybox' || applet === 'linuxrc') continue;
    entries.push({ kind: 'symlink', path: applet, target: '/bin/busybox' });
  }
  return entries;
}

/** The smoke test's guest initramfs: busybox, the vchan modules and nx-vchan-echo. */
async function smokeGuestInitrd(cache: string, guestRelease: string): Promise<Buffer> {
  const modDir = path.join(process.env.MCL_MODULES_DIR ?? '/lib/modules', guestRelease);
  const mods = await moduleEntries(modDir, GUEST_MODULES, 'mods');
  const echo = compileProbe(cache, 'nx-vchan-echo', ['-static', '-s', ...VCHAN_LIBS]);
  const entries: CpioEntry[] = [
    ...(await busyboxEntries()),
    ...mods.entries,
    ...['proc', 'sys', 'dev', 'tmp'].map((d): CpioEntry => ({ kind: 'dir', path: d, mode: 0o755 })),
    { kind: 'file', path: 'etc/nx-modules', mode: 0o644, data: Buffer.from(mods.order.join('\n') + '\n') },
    { kind: 'file', path: 'bin/nx-vchan-echo', mode: 0o755, data: readFileSync(echo) },
    { kind: 'file', path: 'init', mode: 0o755, data: readFileSync(path.join(here, 'guest-init.sh')) },
    { kind: 'chardev', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
  ];
  return gzipSync(writeCpio(entries), { level: 6 });
}

const INITTAB = [
  '::sysinit:/etc/nx/rc',
  '::respawn:/usr/bin/node /opt/nx/dom0-agent.mjs',
  '::ctrlaltdel:/bin/poweroff -f',
  '',
].join('\n');

/** Every entry of the cached dom0 initramfs. */
async function dom0Entries(cache: string, inputs: ReturnType<typeof ensureInputs>): Promise<CpioEntry[]> {
  const entries: CpioEntry[] = await busyboxEntries();
  entries.push({ kind: 'symlink', path: 'init', target: '/sbin/init' });
  for (const d of ['dev', 'proc', 'sys', 'run', 'root', 'var/lib/xen', 'var/log/xen', 'etc/xen/scripts']) entries.push({ kind: 'dir', path: d, mode: 0o755 });
  entries.push({ kind: 'dir', path: 'tmp', mode: 0o1777 });
  entries.push({ kind: 'symlink', path: 'var/run', target: '/run' });
  entries.push({ kind: 'chardev', path: 'dev/console', mode: 0o600, major: 5, minor: 1 });
  entries.push({ kind: 'chardev', path: 'dev/null', mode: 0o666, major: 1, minor: 3 });
  const text = (p: string, s: string, mode = 0o644) => entries.push({ kind: 'file', path: p, mode, data: Buffer.from(s) });
  text('etc/inittab', INITTAB);
  text('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
  text('etc/group', 'root:x:0:\n');
  text('etc/hosts', '127.0.0.1 localhost\n');
  // Dom0's memory is fixed (dom0_mem=...,max:...): xl must not try to balloon it down for guests.
  text('etc/xen/xl.conf', 'autoballoon="off"\n');
  entries.push({ kind: 'file', path: 'etc/nx/rc', mode: 0o755, data: readFileSync(path.join(here, 'dom0-rc.sh')) });
  entries.push({ kind: 'file', path: 'opt/nx/dom0-agent.mjs', mode: 0o644, data: readFileSync(path.join(here, 'dom0-agent.mjs')) });

  const elves: string[] = [process.execPath];
  entries.push({ kind: 'file', path: 'usr/bin/node', mode: 0o755, data: readFileSync(process.execPath) });
  const xenBin = path.join(inputs.utils, XEN_BIN);
  for (const n of readdirSync(xenBin).sort()) {
    const f = path.join(xenBin, n);
    if (!statSync(f).isFile() || !isElf(f)) continue;
    elves.push(f);
    entries.push({ kind: 'file', path: `${XEN_BIN}/${n}`, mode: 0o755, data: readFileSync(f) });
  }
  for (const [name, libs] of [['nx-vchan-serve', ['-lxenvchan']], ['nx-domstat', ['-lxenctrl']]] as const) {
    const bin = compileProbe(cache, name, [...libs]);
    elves.push(bin);
    entries.push({ kind: 'file', path: `usr/bin/${name}`, mode: 0o755, data: readFileSync(bin) });
  }
  for (const [to, from] of libraries(elves)) entries.push({ kind: 'file', path: to, mode: 0o755, data: readFileSync(from) });

  const mods = await moduleEntries(path.join(inputs.kernelTree, 'lib', 'modules', inputs.dom0KernelRelease), DOM0_MODULES, 'lib/nx-modules');
  entries.push(...mods.entries);
  text('etc/nx/modules', mods.order.join('\n') + '\n');

  // The guest kernel where the backend's image builder looks for it (/boot/vmlinuz-*-cloud-amd64, with its
  // modules.dep and the modules a Xen guest image loads), and under a fixed name for the test bed's own guests.
  const guest = await resolveKernel('debian-cloud');
  entries.push({ kind: 'file', path: `boot/vmlinuz-${guest.release}`, mode: 0o644, data: readFileSync(guest.path) });
  entries.push({ kind: 'symlink', path: GUEST_KERNEL.slice(1), target: `vmlinuz-${guest.release}` });
  const guestMods = path.join(process.env.MCL_MODULES_DIR ?? '/lib/modules', guest.release);
  for (const f of ['modules.dep', 'modules.builtin']) {
    if (existsSync(path.join(guestMods, f))) entries.push({ kind: 'file', path: `lib/modules/${guest.release}/${f}`, mode: 0o644, data: readFileSync(path.join(guestMods, f)) });
  }
  const { order } = resolveModules(GUEST_IMAGE_MODULES, readFileSync(path.join(guestMods, 'modules.dep'), 'utf8'), '');
  for (const m of order) entries.push({ kind: 'file', path: `lib/modules/${guest.release}/${m.file}`, mode: 0o644, data: readFileSync(path.join(guestMods, m.file)) });
  entries.push({ kind: 'file', path: SMOKE_GUEST_INITRD.slice(1), mode: 0o644, data: await smokeGuestInitrd(cache, guest.release) });
  return entries;
}

export interface BuiltDom0 extends Dom0Inputs {
  /** The cached dom0 initramfs (uncompressed cpio: dom0 unpacks it faster under TCG than a gzip one). */
  initrd: string;
  cached: boolean;
  buildMs: number;
}

/**
 * The cache key of the dom0 initramfs, from what goes into it without reading
 * it all: the package files, the size and modification time of the large
 * host files (node, busybox, the guest kernel, the C library and Xen's
 * libraries, which apt replaces on upgrade), and the content of this
 * directory's own sources. Hashing the 120 MiB of entries took longer than
 * the boot's first seconds.
 */
async function dom0Key(inputs: ReturnType<typeof ensureInputs>): Promise<string> {
  const stamp = (f: string) => {
    try {
      const st = statSync(f);
      return `${f} ${st.size} ${st.mtimeMs}`;
    } catch {
      return `${f} -`;
    }
  };
  const own = ['harness.ts', 'dom0-rc.sh', 'dom0-agent.mjs', 'guest-init.sh', ...readdirSync(path.join(here, 'probes')).sort().map((n) => `probes/${n}`)];
  const guest = await resolveKernel('debian-cloud');
  const lines = [
    `nx-dom0 ${DOM0_FORMAT}`,
    inputs.xenPackage,
    inputs.dom0KernelRelease,
    path.basename(inputs.utils),
    stamp(process.execPath),
    stamp(await findBusybox()),
    stamp(guest.path),
    stamp(path.join(process.env.MCL_MODULES_DIR ?? '/lib/modules', guest.release, 'modules.dep')),
    stamp('/lib/x86_64-linux-gnu/libc.so.6'),
    ...readdirSync('/usr/lib/x86_64-linux-gnu').filter((n) => /^libxen.*\.so\.[0-9.]+$/.test(n)).sort().map((n) => stamp(path.join('/usr/lib/x86_64-linux-gnu', n))),
    ...own.map((f) => `${f} ${sha256(readFileSync(path.join(here, f)))}`),
  ];
  return sha256(lines.join('\n')).slice(0, 32);
}

/** Builds the dom0 initramfs, or finds it in the cache. */
export async function ensureDom0(options: { cacheDir?: string } = {}): Promise<BuiltDom0> {
  const start = Date.now();
  const cache = nestedCacheDir(options.cacheDir);
  mkdirSync(cache, { recursive: true });
  const inputs = ensureInputs(cache);
  const key = await dom0Key(inputs);
  const initrd = path.join(cache, `dom0-${key}.cpio`);
  const result = (cached: boolean): BuiltDom0 => ({ xen: inputs.xen, dom0Kernel: inputs.dom0Kernel, xenPackage: inputs.xenPackage, dom0KernelRelease: inputs.dom0KernelRelease, initrd, cached, buildMs: Date.now() - start });
  if (existsSync(initrd)) return result(true);
  const entries = await dom0Entries(cache, inputs);
  // Older builds of the same cache are replaced: each is about 120 MiB.
  // Another process may have built this key meanwhile and be copying it: only other keys go.
  for (const n of readdirSync(cache)) if (/^dom0-[0-9a-f]+\.cpio$/.test(n) && n !== path.basename(initrd)) rmSync(path.join(cache, n), { force: true });
  const tmp = `${initrd}.${process.pid}.tmp`;
  writeFileSync(tmp, writeCpio(entries));
  renameSync(tmp, initrd);
  return result(false);
}

/** A free TCP port on 127.0.0.1 (free when asked: QEMU binds it a moment later). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

interface Pending {
  resolve: (v: Record<string, unknown>) => void;
  reject: (e: Error) => void;
}

/** The largest line the host accepts from dom0's agent (its output is capped at 1 MiB per stream). */
const MAX_REPLY = 8 * MIB;

/** Test beds of this process not yet closed: a signal or an exit kills their QEMU and removes their directories. */
const live = new Set<NestedXen>();
let handlersInstalled = false;

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const nx of live) nx.closeSync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      for (const nx of live) nx.closeSync();
      // Then die of the signal as the process would have without this handler.
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/** True while a process with this pid exists. */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the run directories of test beds whose owner died without closing
 * them (SIGKILL): each names its owner's pid in `owner`. QEMU itself died with
 * its owner (the parent-death signal), so only files are left.
 */
export function sweepStaleRunDirs(parent: string): string[] {
  const removed: string[] = [];
  for (const n of readdirSync(parent)) {
    if (!/^mcl-nx-[A-Za-z0-9]+$/.test(n)) continue;
    const dir = path.join(parent, n);
    let owner = NaN;
    try {
      owner = Number(readFileSync(path.join(dir, 'owner'), 'utf8').trim());
    } catch {
      continue;
    }
    if (Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) {
      rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    }
  }
  return removed;
}

export class NestedXen {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closed = false;
  private readonly deadline: NodeJS.Timeout;
  private readonly exited: Promise<void>;
  private exitNote: string | null = null;
  /** When the boot began and when dom0's agent first answered (ms since the epoch). */
  readonly startedAt: number;
  readyAt = 0;

  private constructor(
    readonly runDir: string,
    readonly dom0: BuiltDom0,
    private readonly qemu: ChildProcess,
    private readonly ports: Map<number, number>,
    private readonly serial: Promise<ConsoleLog | null>,
    deadlineMs: number,
  ) {
    this.startedAt = Date.now();
    this.exited = new Promise((resolve) => {
      qemu.once('exit', (code, signal) => {
        this.exitNote = `QEMU exited (${signal ?? `code ${code}`})`;
        for (const p of this.pending.values()) p.reject(new Error(`${this.exitNote}\n${this.serialTail()}`));
        this.pending.clear();
        resolve();
      });
    });
    this.deadline = setTimeout(() => {
      this.qemu.kill('SIGKILL');
    }, deadlineMs);
    this.deadline.unref();
    live.add(this);
    installExitHandlers();
  }

  /**
   * Builds (or finds) the dom0 initramfs, boots Xen under QEMU and waits until
   * dom0's agent answers. On any failure QEMU is killed and the run directory
   * removed before the error is thrown.
   */
  static async start(options: NestedXenOptions = {}): Promise<NestedXen> {
    const log = options.log ?? (() => undefined);
    const dom0 = await ensureDom0(options);
    log(`dom0 initramfs ${dom0.cached ? 'cached' : 'built'} in ${dom0.buildMs} ms (${(statSync(dom0.initrd).size / MIB).toFixed(0)} MiB)`);
    const parent = options.runParent ?? os.tmpdir();
    for (const d of sweepStaleRunDirs(parent)) log(`removed ${d}, left by a test bed whose owner died`);
    const runDir = mkdtempSync(path.join(parent, 'mcl-nx-'));
    writeFileSync(path.join(runDir, 'owner'), `${process.pid}\n`);
    if (runDir.includes(',')) throw new Error(`the run directory ${runDir} contains a comma, which QEMU's -initrd list cannot hold`);
    let nx: NestedXen | undefined;
    let qemu: ChildProcess | undefined;
    try {
      // The test's files: a second archive after the cached one.
      const initrd = path.join(runDir, 'dom0.cpio');
      const extra = options.files && options.files.length > 0 ? writeCpio(options.files) : Buffer.alloc(0);
      execFileSync('cp', [dom0.initrd, initrd]);
      if (extra.length > 0) writeFileSync(initrd, extra, { flag: 'a' });

      const ports = new Map<number, number>();
      const hostfwd: string[] = [];
      for (const g of options.forwards ?? []) {
        const h = await freePort();
        ports.set(g, h);
        hostfwd.push(`hostfwd=tcp:127.0.0.1:${h}-10.0.2.15:${g}`);
      }
      const mem = options.memoryMiB ?? 3072;
      const dom0Mem = options.dom0MemMiB ?? 1024;
      const args = [
        '-accel', 'tcg', '-cpu', 'qemu64,+svm,+npt', '-machine', 'q35', '-m', String(mem), '-smp', '2',
        '-display', 'none', '-nodefaults', '-no-user-config', '-no-reboot',
        '-chardev', `socket,id=ser0,path=${path.join(runDir, 'serial.sock')},server=on,wait=off`, '-serial', 'chardev:ser0',
        '-device', 'virtio-serial-pci,id=vs0',
        '-chardev', `socket,id=ctl,path=${path.join(runDir, 'ctl.sock')},server=on,wait=off`,
        '-device', 'virtserialport,bus=vs0.0,chardev=ctl,name=org.mcl.nx.ctl',
        // restrict=on: dom0 reaches nothing outside; only the forwarded ports reach in.
        '-netdev', ['user,id=n0,restrict=on', ...hostfwd].join(','), '-device', 'virtio-net-pci,netdev=n0,romfile=',
        '-kernel', dom0.xen,
        '-append', `console=com1 com1=115200,8n1 dom0_mem=${dom0Mem}M,max:${dom0Mem}M loglvl=warning guest_loglvl=warning noreboot bootscrub=false`,
        '-initrd', `${dom0.dom0Kernel} console=hvc0 loglevel=4,${initrd}`,
      ];
      const launch = launchCommand(requireQemu(), args, { ...launchHost(), keepThp: true, ksm: false }, { dieWithParent: true });
      qemu = spawn(launch.file, launch.args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: runDir });
      const stderr: Buffer[] = [];
      qemu.stderr!.on('data', (d: Buffer) => {
        if (stderr.reduce((s, b) => s + b.length, 0) < 64 * 1024) stderr.push(d);
      });
      const bootTimeout = options.bootTimeoutMs ?? 240_000;
      const serial = ConsoleLog.connect(path.join(runDir, 'serial.sock'), path.join(runDir, 'serial.log'), {
        timeoutMs: 30_000,
        limits: { maxBytes: 4 * MIB, files: 1, bytesPerSecond: 4 * MIB },
      }).catch(() => null);
      nx = new NestedXen(runDir, dom0, qemu, ports, serial, options.deadlineMs ?? 20 * 60_000);
      await serial;
      const ready = await Promise.race([
        nx.connectControl(bootTimeout),
        nx.exited.then(() => {
          throw new Error(`${nx!.exitNote}: ${Buffer.concat(stderr).toString().trim()}`);
        }),
      ]);
      nx.readyAt = Date.now();
      log(`dom0 ready ${((nx.readyAt - nx.startedAt) / 1000).toFixed(1)} s after QEMU started (dom0 uptime ${ready.uptime_s} s)`);
      return nx;
    } catch (e) {
      const tail = nx ? nx.serialTail() : '';
      if (nx) await nx.close();
      else {
        qemu?.kill('SIGKILL');
        rmSync(runDir, { recursive: true, force: true });
      }
      throw new Error(`nested Xen did not come up: ${(e as Error).message}${tail ? `\n--- serial (last lines) ---\n${tail}` : ''}`);
    }
  }

  private socket: net.Socket | null = null;

  private connectControl(timeoutMs: number): Promise<{ uptime_s: number }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`dom0's agent did not answer within ${timeoutMs / 1000} s`)), timeoutMs);
      connectUnix(path.join(this.runDir, 'ctl.sock'), 30_000).then((s) => {
        this.socket = s;
        const splitter = new LineSplitter(MAX_REPLY, {
          line: (text) => {
            let msg: Record<string, unknown>;
            try {
              msg = JSON.parse(text) as Record<string, unknown>;
            } catch {
              return;
            }
            if (msg.t === 'ready') {
              clearTimeout(timer);
              resolve(msg as { uptime_s: number });
              return;
            }
            const p = typeof msg.id === 'number' ? this.pending.get(msg.id) : undefined;
            if (!p) return;
            this.pending.delete(msg.id as number);
            if (msg.ok) p.resolve(msg);
            else p.reject(new Error(`dom0: ${String(msg.error)}`));
          },
          oversize: () => undefined,
        });
        s.on('data', (d: Buffer) => splitter.push(d));
        s.on('error', () => undefined);
      }, reject);
    });
  }

  private request(msg: Record<string, unknown>, timeoutMs: number): Promise<Record<string, unknown>> {
    if (this.closed || !this.socket) return Promise.reject(new Error('the nested Xen is closed'));
    if (this.exitNote) return Promise.reject(new Error(this.exitNote));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`dom0 did not answer ${String(msg.op)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket!.write(JSON.stringify({ ...msg, id }) + '\n');
    });
  }

  /** Runs a command in dom0 and returns its exit and (capped) output. */
  async exec(argv: string[], o: ExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = o.timeoutMs ?? 60_000;
    // The agent kills the command at timeoutMs; the host waits a little longer for that answer.
    return (await this.request({ op: 'exec', argv, env: o.env, cwd: o.cwd, stdin: o.stdin, timeoutMs }, timeoutMs + 15_000)) as unknown as ExecResult;
  }

  /** Runs a shell script in dom0 and returns its stdout; throws with its output when it fails. */
  async sh(script: string, o: ExecOptions = {}): Promise<string> {
    const r = await this.exec(['/bin/sh', '-c', script], o);
    if (r.code !== 0) throw new Error(`dom0: ${script.split('\n')[0]} ${r.timedOut ? 'timed out' : `exited ${r.code ?? r.signal}`}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  /** Writes a file in dom0. */
  async put(file: string, data: Buffer | string, mode = 0o644): Promise<void> {
    await this.request({ op: 'put', path: file, mode, data: Buffer.from(data).toString('base64') }, 120_000);
  }

  /**
   * The host port (on 127.0.0.1) that reaches dom0's `port` on its loopback:
   * QEMU forwards it to dom0's network address, where the agent relays it.
   */
  async hostPort(port: number): Promise<number> {
    const h = this.ports.get(port);
    if (h === undefined) throw new Error(`dom0 port ${port} was not in the forwards given at start`);
    await this.request({ op: 'forward', port }, 30_000);
    return h;
  }

  /** The last lines of the serial log (Xen's and dom0's console). */
  serialTail(lines = 40): string {
    try {
      const text = readFileSync(path.join(this.runDir, 'serial.log'), 'latin1');
      return text.split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** The whole serial log as kept (at most its cap). */
  serialLog(): string {
    try {
      return readFileSync(path.join(this.runDir, 'serial.log'), 'latin1');
    } catch {
      return '';
    }
  }

  /** What an exit or a signal of the owner does: kill QEMU and remove the run directory, synchronously. */
  closeSync(): void {
    live.delete(this);
    if (this.closed) return;
    this.closed = true;
    this.qemu.kill('SIGKILL');
    if (process.env.MCL_NX_KEEP !== '1') rmSync(this.runDir, { recursive: true, force: true });
  }

  /** Kills QEMU and removes the run directory (set MCL_NX_KEEP=1 to keep it, for a look at the logs). */
  async close(): Promise<void> {
    live.delete(this);
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.deadline);
    this.socket?.destroy();
    if (!this.exitNote) this.qemu.kill('SIGKILL');
    await this.exited;
    (await this.serial)?.close();
    if (process.env.MCL_NX_KEEP === '1') return;
    rmSync(this.runDir, { recursive: true, force: true });
  }
}
