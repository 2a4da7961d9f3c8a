// Templates: a cold-booted guest, stopped once its agent is ready, whose
// device state is saved to a file while its RAM stays in a shared memory file.
// Clones map that file privately (copy-on-write) and load the device state.
//
// Templates are cached under <cache>/templates/<key>/ where the key hashes
// everything that affects the guest: QEMU version, machine, accelerator,
// kernel and initramfs contents, memory, vcpus, port slots and the command
// line. A template is valid while its RAM file exists (tmpfs is emptied by a
// reboot, which makes the next ensureTemplate rebuild it).

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readFile, readdir, rename, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { probeAccelerator } from './accel';
import { ControlChannel } from './control';
import { cacheDir, freeBytes, shmDir } from './paths';
import { KERNEL_CMDLINE, launchCommand, MAX_DATA_PORT_SLOTS, MAX_SERIAL_DEVICES, PORTS_PER_SERIAL_DEVICE, qemuArgs, qemuVersion, requireQemu, shQuote, type QemuLayout } from './qemu';
import { QmpClient } from './qmp';
import type { MachineType, Template, TemplateOptions, TemplateSpec } from './types';

/** Bumped when the template layout or boot procedure changes. */
const TEMPLATE_FORMAT = 1;

/**
 * Default machine type: `pc`. `microvm` (virtio-mmio, no PCI) is selectable
 * with `$MCL_MACHINE=microvm`, but with the Debian cloud kernel under TCG it
 * stalls at boot: without kvmclock or HPET the kernel has no clock source
 * and never reaches init (QEMU 7.2; see spec/guest.md). `q35` is accepted but
 * not measured.
 */
export function defaultMachine(): MachineType {
  const m = process.env.MCL_MACHINE;
  return m === 'microvm' || m === 'q35' || m === 'pc' ? m : 'pc';
}

interface TemplateMeta {
  format: number;
  id: string;
  key: string;
  accel: 'kvm' | 'tcg';
  machine: MachineType;
  mem_path: string;
  boot_ms: number;
  save_ms: number;
  created_at: string;
}

async function sha256File(p: string): Promise<string> {
  return createHash('sha256').update(await readFile(p)).digest('hex');
}

const kernelHashes = new Map<string, string>();

/** The cache key of a template (hex sha256). */
export async function templateKey(spec: TemplateSpec, accel: string, machine: MachineType): Promise<string> {
  const kstat = statSync(spec.image.kernelPath);
  const kid = `${spec.image.kernelPath}:${kstat.size}:${kstat.mtimeMs}`;
  let khash = kernelHashes.get(kid);
  if (!khash) kernelHashes.set(kid, (khash = await sha256File(spec.image.kernelPath)));
  const input = {
    format: TEMPLATE_FORMAT,
    qemu: await qemuVersion(),
    machine,
    accel,
    kernel: khash,
    initrd: spec.image.initrdSha256,
    memory: spec.memoryBytes,
    vcpus: spec.vcpus,
    port_slots: spec.portSlots,
    cmdline: KERNEL_CMDLINE,
  };
  return createHash('sha256').update(JSON.stringify(input)).digest('hex');
}

/** A lock file taken with O_EXCL; a lock whose holder pid is gone is taken over. */
async function withLock<T>(file: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fh = await open(file, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(await readFile(file, 'utf8').catch(() => '0'));
      let alive = false;
      if (holder > 0) {
        try {
          process.kill(holder, 0);
          alive = true;
        } catch {
          alive = false;
        }
      }
      if (!alive) {
        await unlink(file).catch(() => undefined);
        continue;
      }
      if (Date.now() > deadline) {
        throw Object.assign(new Error(`template lock ${file} is held by process ${holder}`), {
          kind: 'failure' as const, hint: 'another mcl process is building the same template; wait for it or kill it',
        });
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(file).catch(() => undefined);
  }
}

function templateFromMeta(spec: TemplateSpec, dir: string, meta: TemplateMeta, cached: boolean): Template {
  return {
    id: spec.id,
    key: meta.key,
    spec,
    accel: meta.accel,
    machine: meta.machine,
    dir,
    memPath: meta.mem_path,
    statePath: path.join(dir, 'state.bin'),
    cloneKernelPath: path.join(dir, 'clone-kernel'),
    cached,
    bootMs: meta.boot_ms,
    saveMs: meta.save_ms,
  };
}

async function readValid(dir: string, spec: TemplateSpec): Promise<Template | null> {
  const metaPath = path.join(dir, 'template.json');
  for (const f of ['template.json', 'state.bin', 'clone-kernel', 'clone-initrd']) if (!existsSync(path.join(dir, f))) return null;
  const meta = JSON.parse(await readFile(metaPath, 'utf8')) as TemplateMeta;
  if (meta.format !== TEMPLATE_FORMAT || !existsSync(meta.mem_path)) return null;
  const st = statSync(meta.mem_path);
  if (st.size !== spec.memoryBytes) return null;
  // A RAM file an earlier version left readable by others is made private (only its owner can).
  if ((st.mode & 0o077) !== 0 && st.uid === process.geteuid?.()) await chmod(meta.mem_path, 0o600).catch(() => undefined);
  return templateFromMeta(spec, dir, meta, true);
}

/**
 * Writes the clone stub kernel: the bzImage's real-mode setup sectors (which
 * QEMU parses to lay out the boot firmware) followed by one empty page of
 * protected-mode payload.
 */
export async function writeStubKernel(kernelPath: string, out: string): Promise<void> {
  const k = await readFile(kernelPath);
  const setupSects = k[0x1f1] || 4;
  const setupBytes = (setupSects + 1) * 512;
  await writeFile(`${out}.tmp`, Buffer.concat([k.subarray(0, setupBytes), Buffer.alloc(4096)]));
  await rename(`${out}.tmp`, out);
}

/** The QEMU layout of a template (`forClone`: with the stub kernel). */
export function layoutOf(t: Pick<Template, 'spec' | 'accel' | 'machine' | 'memPath' | 'cloneKernelPath'>, forClone = false): QemuLayout {
  return {
    machine: t.machine,
    accel: t.accel,
    memoryBytes: t.spec.memoryBytes,
    vcpus: t.spec.vcpus,
    portSlots: t.spec.portSlots,
    kernelPath: forClone ? t.cloneKernelPath : t.spec.image.kernelPath,
    // Like the kernel, QEMU holds the initramfs in memory; a clone never unpacks it.
    initrdPath: forClone ? path.join(path.dirname(t.cloneKernelPath), 'clone-initrd') : t.spec.image.initrdPath,
    memPath: t.memPath,
  };
}

function tail(text: string, lines = 15): string {
  return text.split('\n').slice(-lines).join('\n');
}

/**
 * Returns a valid cached template for the spec, or cold-boots the guest, waits
 * for its agent, stops it and saves its device state (x-ignore-shared: the RAM
 * stays in the memory file). Concurrent callers for the same key wait for one
 * another through a lock file.
 */
export async function ensureTemplate(spec: TemplateSpec, options: TemplateOptions = {}): Promise<Template> {
  if (spec.portSlots < 0 || !Number.isInteger(spec.portSlots) || spec.portSlots > MAX_DATA_PORT_SLOTS) {
    throw Object.assign(new Error(`template ${spec.id}: ${spec.portSlots} port slots is out of range 0..${MAX_DATA_PORT_SLOTS}`), {
      kind: 'failure' as const,
      hint: `a guest has at most ${MAX_SERIAL_DEVICES} virtio-serial devices of ${PORTS_PER_SERIAL_DEVICE} ports, one of which is the control port`,
    });
  }
  if (spec.memoryBytes < 64 * 1024 * 1024 || spec.memoryBytes % (1024 * 1024) !== 0) {
    throw Object.assign(new Error(`template ${spec.id}: memory ${spec.memoryBytes} bytes must be a whole number of MiB, at least 64 MiB`), {
      kind: 'failure' as const, hint: 'declare memory such as 128MiB',
    });
  }
  const accel = spec.accel ?? (await probeAccelerator(options)).accel;
  const machine = spec.machine ?? defaultMachine();
  const key = await templateKey(spec, accel, machine);
  const root = path.join(cacheDir(options), 'templates');
  const dir = path.join(root, key.slice(0, 32));
  await mkdir(dir, { recursive: true });
  if (!options.force) {
    const t = await readValid(dir, spec);
    if (t) return t;
  }
  return withLock(path.join(dir, 'lock'), (options.bootTimeoutMs ?? 60_000) * 3, async () => {
    if (!options.force) {
      const t = await readValid(dir, spec);
      if (t) return t;
    }
    // One retry: an emulated guest on a starved host can fail its cold boot once (a timer check, a
    // stalled device) and succeed the next time; a second failure is reported.
    try {
      return await bootTemplate(spec, key, accel, machine, dir, options);
    } catch (err) {
      if (options.signal?.aborted) throw err;
      return bootTemplate(spec, key, accel, machine, dir, options);
    }
  });
}

async function bootTemplate(
  spec: TemplateSpec,
  key: string,
  accel: 'kvm' | 'tcg',
  machine: MachineType,
  dir: string,
  options: TemplateOptions,
): Promise<Template> {
  const qemu = requireQemu();
  const shm = shmDir();
  const free = freeBytes(shm);
  if (free !== null && free < spec.memoryBytes) {
    throw Object.assign(new Error(`${shm} has ${free} bytes free, the template needs ${spec.memoryBytes}`), {
      kind: 'failure' as const, hint: 'free space on it or point MCL_SHM_DIR at a larger tmpfs',
    });
  }
  // A fresh RAM file name each time: clones of an older build may still map the old one.
  const memPath = path.join(shm, `mcl-${key.slice(0, 16)}-${randomBytes(4).toString('hex')}.mem`);
  const oldMeta = await readFile(path.join(dir, 'template.json'), 'utf8').then((t) => JSON.parse(t) as TemplateMeta, () => null);
  const run = await mkdtemp(path.join(os.tmpdir(), 'mcl-tpl-'));
  const logFile = options.logFile ?? path.join(dir, 'console.log');
  await writeFile(logFile, '');
  const statePath = path.join(dir, 'state.bin');
  const layout: QemuLayout = {
    machine,
    accel,
    memoryBytes: spec.memoryBytes,
    vcpus: spec.vcpus,
    portSlots: spec.portSlots,
    kernelPath: spec.image.kernelPath,
    initrdPath: spec.image.initrdPath,
    memPath,
  };
  const args = qemuArgs(layout, {
    name: `mcl-template-${spec.id}`,
    shareMemory: true,
    controlSocket: path.join(run, 'ctl'),
    dataPortSockets: [],
    logFile,
    qmpSocket: path.join(run, 'qmp'),
  });
  // QEMU would create the RAM file world-readable (0644 under the usual umask); created here first, private to
  // this user, QEMU opens it as it is. The template's memory is the guest's, and its clones' start from it.
  await (await open(memPath, 'wx', 0o600)).close();
  const start = Date.now();
  const launch = launchCommand(qemu, args);
  const proc = execa(launch.file, launch.args, { reject: false, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe', cancelSignal: options.signal });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  let exited = false;
  const exitedP = proc.then(() => {
    exited = true;
  });
  const timeoutMs = options.bootTimeoutMs ?? 60_000;
  let control: ControlChannel | null = null;
  let qmp: QmpClient | null = null;
  const failure = async (what: string) => {
    const log = await readFile(logFile, 'utf8').catch(() => '');
    return Object.assign(new Error(`template ${spec.id}: ${what}\n${tail(stderr + log)}`), {
      kind: 'failure' as const, hint: `see ${logFile}`,
    });
  };
  try {
    const died = exitedP.then(async () => {
      throw await failure(`QEMU exited during the cold boot`);
    });
    died.catch(() => undefined);
    control = await Promise.race([ControlChannel.connect(path.join(run, 'ctl'), 10_000, options.signal), died]);
    const ctl = control;
    // The agent says `ready boot` when it starts serving (its write blocks until we are connected, so the
    // line cannot be missed once the waiter is registered); the handshake then proves the read loop runs.
    const boot = ctl.waitFor((w) => w[0] === 'ready' && w[1] === 'boot', timeoutMs, 'boot');
    boot.catch(() => undefined);
    qmp = await Promise.race([QmpClient.connect(path.join(run, 'qmp'), { timeoutMs: 10_000 }), died]);
    await Promise.race([boot, died]);
    await Promise.race([ctl.handshake(10_000), died]);
    const bootMs = Date.now() - start;
    // Let the guest settle into its idle read so every clone wakes up in the same place.
    await new Promise((r) => setTimeout(r, 300));
    const saveStart = Date.now();
    await qmp.execute('stop');
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: true }] });
    const tmpState = `${statePath}.tmp`;
    await qmp.execute('migrate', { uri: `exec:cat > ${shQuote(tmpState)}` });
    for (;;) {
      const st = await qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
      if (st.status === 'completed') break;
      if (st.status === 'failed' || st.status === 'cancelled') throw await failure(`saving the template failed: ${st['error-desc'] ?? st.status}`);
      if (Date.now() - saveStart > 30_000) throw await failure('saving the template took more than 30 s');
      await new Promise((r) => setTimeout(r, 5));
    }
    const saveMs = Date.now() - saveStart;
    await qmp.execute('quit').catch(() => undefined);
    await Promise.race([exitedP, new Promise((r) => setTimeout(r, 5_000))]);
    await rename(tmpState, statePath);
    await writeStubKernel(spec.image.kernelPath, path.join(dir, 'clone-kernel'));
    await writeFile(path.join(dir, 'clone-initrd'), Buffer.alloc(4096));
    const meta: TemplateMeta = {
      format: TEMPLATE_FORMAT,
      id: spec.id,
      key,
      accel,
      machine,
      mem_path: memPath,
      boot_ms: bootMs,
      save_ms: saveMs,
      created_at: new Date().toISOString(),
    };
    await writeFile(path.join(dir, 'template.json.tmp'), JSON.stringify(meta, null, 2) + '\n');
    await rename(path.join(dir, 'template.json.tmp'), path.join(dir, 'template.json'));
    // The previous RAM file is unlinked; clones still mapping it keep their pages.
    if (oldMeta && oldMeta.mem_path !== memPath) await unlink(oldMeta.mem_path).catch(() => undefined);
    // Older builds of this template id (another image or QEMU) no clone maps any more are garbage now.
    await pruneTemplates(options).catch(() => undefined);
    return templateFromMeta(spec, dir, meta, false);
  } catch (err) {
    await unlink(memPath).catch(() => undefined);
    throw err;
  } finally {
    control?.close();
    qmp?.close();
    if (!exited) proc.kill('SIGKILL');
    await exitedP;
    await rm(run, { recursive: true, force: true });
  }
}

/** Deletes a template's files (state, RAM file). No clone of it may be running. */
export async function removeTemplate(template: Template): Promise<void> {
  await unlink(template.memPath).catch(() => undefined);
  await rm(template.dir, { recursive: true, force: true });
}

/** True when some process maps `file` (a clone of the template is running). */
async function isMapped(file: string): Promise<boolean> {
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const maps = await readFile(`/proc/${pid}/maps`, 'utf8').catch(() => '');
    if (maps.includes(file)) return true;
  }
  return false;
}

/**
 * Deletes cached templates that nothing can use any more: those whose RAM file
 * is gone, and older builds of a template id that has a newer build, unless a
 * running process (a clone) still maps their RAM file. Template RAM lives on
 * tmpfs, so stale builds would otherwise hold host memory until a reboot.
 * Returns the directories removed.
 */
export async function pruneTemplates(options: { cacheDir?: string } = {}): Promise<string[]> {
  const root = path.join(cacheDir(options), 'templates');
  const metas: { dir: string; meta: TemplateMeta }[] = [];
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const dir = path.join(root, name);
    const meta = await readFile(path.join(dir, 'template.json'), 'utf8').then((t) => JSON.parse(t) as TemplateMeta, () => null);
    if (meta) metas.push({ dir, meta });
  }
  const newest = new Map<string, string>();
  for (const { meta } of metas) {
    const cur = newest.get(meta.id);
    if (!cur || meta.created_at > cur) newest.set(meta.id, meta.created_at);
  }
  const removed: string[] = [];
  for (const { dir, meta } of metas) {
    const stale = !existsSync(meta.mem_path) || meta.created_at < (newest.get(meta.id) ?? '');
    if (!stale || existsSync(path.join(dir, 'lock')) || (existsSync(meta.mem_path) && (await isMapped(meta.mem_path)))) continue;
    await unlink(meta.mem_path).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}

/** Cached templates (their metadata), for `doctor`, cleanup and status. */
export async function listTemplates(options: { cacheDir?: string } = {}): Promise<{ dir: string; id: string; key: string; memPath: string; valid: boolean }[]> {
  const root = path.join(cacheDir(options), 'templates');
  const out: { dir: string; id: string; key: string; memPath: string; valid: boolean }[] = [];
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const dir = path.join(root, name);
    const meta = await readFile(path.join(dir, 'template.json'), 'utf8').then((t) => JSON.parse(t) as TemplateMeta, () => null);
    if (!meta) continue;
    out.push({ dir, id: meta.id, key: meta.key, memPath: meta.mem_path, valid: existsSync(meta.mem_path) && existsSync(path.join(dir, 'state.bin')) });
  }
  return out.sort((a, b) => (a.dir < b.dir ? -1 : 1));
}

