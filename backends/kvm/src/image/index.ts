// Guest images: the distribution's kernel plus a reproducible initramfs.
//
// The initramfs holds busybox-static (with a symlink per applet), the kernel
// modules the guest needs (with their dependencies, loaded in dependency order
// at boot), the guest agent (guest/agent.sh as /usr/sbin/mcl-agent, started by
// busybox init), the broker's guest tools in /usr/bin/, and the image's extra
// files. The archive is built by our own newc writer (sorted entries, zero
// mtimes, root owner) and gzip-compressed by zlib (zero mtime, no file name),
// so the same inputs always give the same bytes. Images are cached under
// <cache>/images/ by a hash of the inputs.

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { execa } from 'execa';
import type { PlanImage } from '@mcl/plan';
import { cacheDir, which } from '../vm/paths';
import type { BuildImageOptions, BuiltImage, ImageSpec } from '../vm/types';
import { writeCpio, type CpioEntry } from './cpio';

/** Bumped when the layout of the image changes, so old cache entries are not reused. */
const IMAGE_FORMAT = 1;

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * The repository root: the nearest ancestor of this module holding
 * backends/kvm/guest/agent.sh. This module runs both from its source file
 * (backends/kvm/src/image/) and bundled into the CLI (cli/dist/), so a fixed
 * relative path would be right in only one of the two. MCL_HOME overrides it
 * for installs that keep the guest files elsewhere.
 */
function findRepoRoot(): string {
  if (process.env.MCL_HOME) return path.resolve(process.env.MCL_HOME);
  for (let dir = here; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'backends', 'kvm', 'guest', 'agent.sh'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(here, '../../../..');
  }
}
const repoRoot = findRepoRoot();
/** backends/kvm/guest/ (the agent) and backends/broker/guest/ (the broker's guest tools). */
export const GUEST_DIR = path.join(repoRoot, 'backends', 'kvm', 'guest');
export const BROKER_GUEST_DIR = path.join(repoRoot, 'backends', 'broker', 'guest');

/** Modules every image loads: the virtio transports (PCI for pc/q35, MMIO for microvm) and the console driver. */
export const BASE_MODULES = ['virtio_pci', 'virtio_mmio', 'virtio_console'];

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/**
 * Reads the release string embedded in an x86 bzImage (the setup header's
 * kernel_version pointer at 0x20E), e.g. `6.1.0-56-cloud-amd64`.
 */
export async function kernelRelease(kernelPath: string): Promise<string | null> {
  const buf = await readFile(kernelPath);
  if (buf.length < 0x210 || buf.toString('latin1', 0x202, 0x206) !== 'HdrS') return null;
  const off = buf.readUInt16LE(0x20e) + 0x200;
  const end = buf.indexOf(0, off);
  const version = buf.toString('latin1', off, end > off ? end : off + 64);
  return version.split(' ')[0] || null;
}

/** Compares Debian kernel releases such as 6.1.0-56-cloud-amd64 numerically. */
function compareRelease(a: string, b: string): number {
  const na = a.match(/\d+/g)?.map(Number) ?? [];
  const nb = b.match(/\d+/g)?.map(Number) ?? [];
  for (let i = 0; i < Math.max(na.length, nb.length); i++) {
    const d = (na[i] ?? -1) - (nb[i] ?? -1);
    if (d !== 0) return d;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Resolves a plan's kernel selector to a path and release. `debian-cloud` is
 * the newest /boot/vmlinuz-*-cloud-amd64 (`$MCL_BOOT_DIR` overrides /boot).
 */
export async function resolveKernel(selector: string): Promise<{ path: string; release: string }> {
  if (selector === 'debian-cloud') {
    const boot = process.env.MCL_BOOT_DIR ?? '/boot';
    const names = existsSync(boot) ? readdirSync(boot).filter((n) => /^vmlinuz-.*-cloud-amd64$/.test(n)) : [];
    if (names.length === 0) {
      throw Object.assign(new Error(`no Debian cloud kernel (vmlinuz-*-cloud-amd64) in ${boot}`), {
        kind: 'failure' as const, hint: 'install it: apt-get install linux-image-cloud-amd64 (backends/kvm/scripts/install-deps.sh)',
      });
    }
    names.sort((a, b) => compareRelease(a.slice(8), b.slice(8)));
    const name = names[names.length - 1];
    const p = path.join(boot, name);
    return { path: p, release: (await kernelRelease(p)) ?? name.slice('vmlinuz-'.length) };
  }
  if (!path.isAbsolute(selector)) {
    throw Object.assign(new Error(`kernel ${JSON.stringify(selector)} is neither "debian-cloud" nor an absolute path`), {
      kind: 'failure' as const, hint: 'write kernel "debian-cloud" or an absolute path to a bzImage in the image declaration',
    });
  }
  if (!existsSync(selector)) throw Object.assign(new Error(`kernel ${selector} does not exist`), { kind: 'failure' as const, hint: 'check the path in the image declaration' });
  const release = await kernelRelease(selector);
  if (!release) throw Object.assign(new Error(`${selector} is not an x86 bzImage (no HdrS setup header)`), { kind: 'failure' as const, hint: 'point kernel at a vmlinuz file' });
  return { path: selector, release };
}

const modName = (file: string) => path.basename(file).replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');

/**
 * Orders modules so that every module comes after its dependencies (from
 * modules.dep, which lists each module's full dependency closure). Modules
 * built into the kernel (modules.builtin) are skipped.
 */
export function resolveModules(
  wanted: string[],
  modulesDep: string,
  builtin: string,
): { order: { name: string; file: string }[]; missing: string[] } {
  const deps = new Map<string, { file: string; deps: string[] }>();
  for (const line of modulesDep.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const file = line.slice(0, colon).trim();
    const ds = line.slice(colon + 1).trim().split(/\s+/).filter(Boolean);
    deps.set(modName(file), { file, deps: ds.map(modName) });
  }
  const builtins = new Set(builtin.split('\n').filter(Boolean).map(modName));
  const order: { name: string; file: string }[] = [];
  const seen = new Set<string>();
  const missing: string[] = [];
  const visit = (raw: string) => {
    const name = raw.replace(/-/g, '_');
    if (seen.has(name)) return;
    seen.add(name);
    const m = deps.get(name);
    if (!m) {
      if (!builtins.has(name)) missing.push(raw);
      return;
    }
    // modules.dep lists the closure with the deepest dependency last; visiting
    // in reverse loads the deepest first, and the recursion fixes any order.
    for (const d of [...m.deps].reverse()) visit(d);
    order.push({ name, file: m.file });
  };
  for (const w of wanted) visit(w);
  return { order, missing };
}

async function readModule(file: string): Promise<Buffer> {
  if (file.endsWith('.ko')) return readFile(file);
  if (file.endsWith('.gz')) return gunzipSync(await readFile(file));
  const tool = file.endsWith('.xz') ? 'xz' : file.endsWith('.zst') ? 'zstd' : null;
  if (!tool) throw new Error(`unknown module compression: ${file}`);
  const r = await execa(tool, ['-dc', file], { encoding: 'buffer', stripFinalNewline: false });
  return Buffer.from(r.stdout);
}

/** Finds the busybox-static binary (`$MCL_BUSYBOX`, /bin/busybox, or busybox on $PATH) and checks it is static. */
export async function findBusybox(): Promise<string> {
  const candidates = [process.env.MCL_BUSYBOX, '/bin/busybox', '/usr/bin/busybox', which('busybox')].filter(
    (x): x is string => !!x && existsSync(x),
  );
  for (const c of candidates) {
    const head = await readFile(c).then((b) => b.subarray(0, 4096));
    // A dynamic executable names its interpreter (ld-linux) in PT_INTERP; a static one does not.
    if (!head.includes(Buffer.from('ld-linux'))) return c;
  }
  throw Object.assign(new Error('no static busybox found (a dynamically linked one cannot run in the guest)'), {
    kind: 'failure' as const, hint: 'install it: apt-get install busybox-static',
  });
}

const INITTAB = [
  '# Written by mcl: the agent sets the guest up once, then serves the control port.',
  '::sysinit:/usr/sbin/mcl-agent setup',
  '::respawn:/usr/sbin/mcl-agent serve',
  '::ctrlaltdel:/bin/poweroff -f',
  '',
].join('\n');

/** Gathers the entries of the initramfs; returned sorted-independent (writeCpio sorts). */
async function imageEntries(
  spec: ImageSpec,
  release: string,
  guestToolsDir: string | null,
): Promise<{ entries: CpioEntry[]; modules: string[] }> {
  const entries: CpioEntry[] = [];
  const busybox = await findBusybox();
  entries.push({ kind: 'file', path: 'bin/busybox', mode: 0o755, data: await readFile(busybox) });
  const list = await execa(busybox, ['--list-full']);
  for (const applet of list.stdout.split('\n').map((s) => s.trim()).filter(Boolean).sort()) {
    if (applet === 'bin/busybox' || applet === 'linuxrc') continue;
    entries.push({ kind: 'symlink', path: applet, target: '/bin/busybox' });
  }
  entries.push({ kind: 'symlink', path: 'init', target: '/sbin/init' });
  for (const d of ['dev', 'proc', 'sys', 'tmp', 'run', 'root', 'mcl', 'var/log', 'etc/mcl']) {
    entries.push({ kind: 'dir', path: d, mode: d === 'tmp' ? 0o1777 : 0o755 });
  }
  entries.push({ kind: 'chardev', path: 'dev/console', mode: 0o600, major: 5, minor: 1 });
  entries.push({ kind: 'chardev', path: 'dev/null', mode: 0o666, major: 1, minor: 3 });
  entries.push({ kind: 'file', path: 'etc/inittab', mode: 0o644, data: Buffer.from(INITTAB) });
  entries.push({ kind: 'file', path: 'etc/passwd', mode: 0o644, data: Buffer.from('root:x:0:0:root:/root:/bin/sh\n') });
  entries.push({ kind: 'file', path: 'etc/group', mode: 0o644, data: Buffer.from('root:x:0:\n') });
  entries.push({ kind: 'file', path: 'usr/sbin/mcl-agent', mode: 0o755, data: await readFile(path.join(GUEST_DIR, 'agent.sh')) });

  const modDir = path.join(process.env.MCL_MODULES_DIR ?? '/lib/modules', release);
  const wanted = [...BASE_MODULES, ...spec.modules];
  const depText = await readFile(path.join(modDir, 'modules.dep'), 'utf8').catch(() => {
    throw Object.assign(new Error(`no modules.dep for kernel ${release} in ${modDir}`), {
      kind: 'failure' as const, hint: 'install the modules of the kernel (the linux-image package provides /lib/modules/<release>)',
    });
  });
  const builtinText = await readFile(path.join(modDir, 'modules.builtin'), 'utf8').catch(() => '');
  const { order, missing } = resolveModules(wanted, depText, builtinText);
  if (missing.length > 0) {
    throw Object.assign(new Error(`kernel ${release} has no module(s) ${missing.join(', ')}`), {
      kind: 'failure' as const, hint: `check the module names in the image declaration against ${modDir}/modules.dep`,
    });
  }
  for (const m of order) {
    entries.push({ kind: 'file', path: `lib/mcl-modules/${m.name}.ko`, mode: 0o644, data: await readModule(path.join(modDir, m.file)) });
  }
  entries.push({ kind: 'file', path: 'etc/mcl/modules', mode: 0o644, data: Buffer.from(order.map((m) => m.name).join('\n') + '\n') });

  if (guestToolsDir && existsSync(guestToolsDir)) {
    for (const name of readdirSync(guestToolsDir).sort()) {
      const p = path.join(guestToolsDir, name);
      if (!statSync(p).isFile()) continue;
      entries.push({ kind: 'file', path: `usr/bin/${name}`, mode: 0o755, data: await readFile(p) });
    }
  }
  for (const f of spec.files) {
    if (!path.isAbsolute(f.path)) throw Object.assign(new Error(`image file ${f.path} is not an absolute path`), { kind: 'failure' as const, hint: 'guest paths start with /' });
    entries.push({ kind: 'file', path: f.path, mode: parseInt(f.mode, 8), data: Buffer.from(f.content, 'utf8') });
  }
  return { entries, modules: order.map((m) => m.name) };
}

/** Accepts a plan image (with digest) or a bare spec. */
function toSpec(image: ImageSpec | PlanImage): ImageSpec {
  return { name: image.name, kernel: image.kernel, modules: [...image.modules], files: [...image.files] };
}

/**
 * Builds the initramfs of an image, or returns it from the cache when an
 * image with the same inputs was built before. The cache key covers the
 * kernel release, every file's path, mode and content, and the format version.
 */
export async function buildImage(image: ImageSpec | PlanImage, options: BuildImageOptions = {}): Promise<BuiltImage> {
  const start = Date.now();
  const spec = toSpec(image);
  const kernel = await resolveKernel(spec.kernel);
  const toolsDir = options.guestToolsDir === undefined ? BROKER_GUEST_DIR : options.guestToolsDir;
  const { entries, modules } = await imageEntries(spec, kernel.release, toolsDir);

  const keyInput = entries
    .map((e) => {
      const p = e.path.replace(/^\/+/, '');
      switch (e.kind) {
        case 'file':
          return `f ${p} ${e.mode.toString(8)} ${sha256(e.data)}`;
        case 'dir':
          return `d ${p} ${e.mode.toString(8)}`;
        case 'symlink':
          return `l ${p} ${e.target}`;
        case 'chardev':
          return `c ${p} ${e.mode.toString(8)} ${e.major}:${e.minor}`;
      }
    })
    .sort()
    .join('\n');
  const key = sha256(`mcl-image ${IMAGE_FORMAT}\nkernel ${kernel.release}\n${keyInput}\n`);
  const dir = path.join(cacheDir(options), 'images');
  const initrdPath = path.join(dir, `${key}.cpio.gz`);
  const metaPath = path.join(dir, `${key}.json`);
  const result = (initrdSha256: string, cached: boolean): BuiltImage => ({
    name: spec.name,
    kernelPath: kernel.path,
    kernelRelease: kernel.release,
    initrdPath,
    initrdSha256,
    key,
    modules,
    cached,
    elapsedMs: Date.now() - start,
  });

  if (existsSync(initrdPath) && existsSync(metaPath)) {
    const meta = JSON.parse(await readFile(metaPath, 'utf8')) as { initrd_sha256: string };
    return result(meta.initrd_sha256, true);
  }
  // Level 6 keeps the build fast; the guest decompresses it once per template.
  const gz = gzipSync(writeCpio(entries), { level: 6 });
  const digest = sha256(gz);
  await mkdir(dir, { recursive: true });
  const tmp = `${initrdPath}.${process.pid}.tmp`;
  await writeFile(tmp, gz);
  await rename(tmp, initrdPath);
  const meta = { name: spec.name, kernel: kernel.path, kernel_release: kernel.release, modules, initrd_sha256: digest };
  await writeFile(`${metaPath}.${process.pid}.tmp`, JSON.stringify(meta, null, 2) + '\n');
  await rename(`${metaPath}.${process.pid}.tmp`, metaPath);
  return result(digest, false);
}
