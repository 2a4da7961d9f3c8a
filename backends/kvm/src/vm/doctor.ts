// Doctor data: what the substrate needs on this host and whether it is there.

import { constants, existsSync, readFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { execa } from 'execa';
import { findBusybox, resolveKernel } from '../image/index';
import { probeAccelerator } from './accel';
import { cacheDir, findQemu, freeBytes, shmDir } from './paths';
import { launchHost, qemuVersion } from './qemu';
import { buildZygoteLib, zygoteEnabled } from './zygote';
import type { AccelProbe, CacheOptions, DoctorCheck, DoctorReport } from './types';

const INSTALL = 'run backends/kvm/scripts/install-deps.sh (as root)';

/** Gathers the report; never throws (a failing probe becomes a failed check). */
export async function doctor(options: CacheOptions & { probe?: boolean } = {}): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const qemuPath = findQemu();
  const version = await qemuVersion().catch(() => null);
  checks.push(
    qemuPath && version
      ? { name: 'qemu', ok: true, detail: `${qemuPath} ${version}` }
      : { name: 'qemu', ok: false, detail: 'qemu-system-x86_64 not found', hint: INSTALL },
  );

  let kernel: { path: string | null; release: string | null } = { path: null, release: null };
  try {
    const k = await resolveKernel('debian-cloud');
    kernel = { path: k.path, release: k.release };
    checks.push({ name: 'kernel', ok: true, detail: `${k.path} (${k.release})` });
  } catch (err) {
    checks.push({ name: 'kernel', ok: false, detail: (err as Error).message, hint: INSTALL });
  }
  if (kernel.release) {
    const dep = `/lib/modules/${kernel.release}/modules.dep`;
    checks.push(existsSync(dep) ? { name: 'modules', ok: true, detail: dep } : { name: 'modules', ok: false, detail: `${dep} missing`, hint: INSTALL });
  }

  let busybox: { path: string | null; version: string | null } = { path: null, version: null };
  try {
    const p = await findBusybox();
    const r = await execa(p, [], { reject: false });
    busybox = { path: p, version: /BusyBox v([^\s]+)/.exec(r.stdout)?.[1] ?? null };
    checks.push({ name: 'busybox', ok: true, detail: `${p} ${busybox.version ?? ''}`.trim() });
  } catch (err) {
    checks.push({ name: 'busybox', ok: false, detail: (err as Error).message, hint: INSTALL });
  }

  const devicePresent = existsSync('/dev/kvm');
  const accessible = devicePresent && (await access('/dev/kvm', constants.R_OK | constants.W_OK).then(() => true, () => false));
  checks.push({
    name: 'kvm-device',
    ok: accessible,
    detail: devicePresent ? (accessible ? '/dev/kvm is accessible' : '/dev/kvm is not accessible') : '/dev/kvm does not exist',
    hint: accessible ? undefined : 'guests run under TCG emulation (slower); enable KVM or add the user to the kvm group',
  });

  let accelerator: AccelProbe | null = null;
  if (options.probe !== false && qemuPath && kernel.path) {
    try {
      accelerator = await probeAccelerator(options);
      checks.push({ name: 'accelerator', ok: true, detail: `${accelerator.accel}: ${accelerator.reason}` });
    } catch (err) {
      checks.push({ name: 'accelerator', ok: false, detail: `probe failed: ${(err as Error).message}` });
    }
  }

  const vhostVsock = existsSync('/dev/vhost-vsock');
  checks.push({ name: 'vhost-vsock', ok: true, detail: vhostVsock ? 'available (not needed: ports use virtio-serial)' : 'not available (not needed: ports use virtio-serial)' });

  checks.push(ksmCheck(readKsmHost(), process.env.MCL_QEMU_KSM === '1', !!launchHost().mergeAnyInherited));
  checks.push(await zygoteCheck(options));

  const shm = shmDir();
  const free = freeBytes(shm);
  checks.push(
    free !== null
      ? { name: 'shm', ok: free > 256 * 1024 * 1024, detail: `${shm}: ${Math.round(free / 1048576)} MiB free for template RAM`, hint: free > 256 * 1024 * 1024 ? undefined : 'set MCL_SHM_DIR to a larger tmpfs' }
      : { name: 'shm', ok: false, detail: `${shm} is not readable`, hint: 'set MCL_SHM_DIR to a tmpfs directory' },
  );

  return {
    qemu: { path: qemuPath, version },
    kernel,
    busybox,
    kvm: { devicePresent, accessible },
    accelerator,
    vhostVsock,
    cacheDir: cacheDir(options),
    shmDir: shm,
    checks,
  };
}

/** What the kernel offers for same-page merging, from /sys/kernel/mm/ksm. */
export interface KsmHost {
  /** /sys/kernel/mm/ksm/run: 0 stopped, 1 running, 2 stopped and unmerged; null without KSM. */
  run: number | null;
  /** The kernel has prctl(PR_SET_MEMORY_MERGE) (Linux 6.4, which also added general_profit). */
  processMerge: boolean;
}

export function readKsmHost(dir = '/sys/kernel/mm/ksm'): KsmHost {
  let run: number | null = null;
  try {
    run = Number(readFileSync(`${dir}/run`, 'utf8').trim());
  } catch {
    // No KSM in this kernel.
  }
  return { run: Number.isInteger(run) ? run : null, processMerge: existsSync(`${dir}/general_profit`) };
}

/**
 * The KSM line of the report. Merging QEMU's own memory is opt-in
 * (MCL_QEMU_KSM=1, see qemu.ts): the check fails only when it was asked for
 * and cannot happen; otherwise it says what the host does. `inherited`: this
 * process is mergeable as a whole, and so QEMU is too. Guest RAM is kept out
 * of KSM either way.
 */
export function ksmCheck(host: KsmHost, optIn: boolean, inherited = false): DoctorCheck {
  const guest = 'guest RAM is never merged';
  if (host.run === null) {
    return optIn
      ? { name: 'ksm', ok: false, detail: 'MCL_QEMU_KSM=1 but this kernel has no KSM (/sys/kernel/mm/ksm)', hint: 'unset MCL_QEMU_KSM, or use a kernel built with CONFIG_KSM' }
      : { name: 'ksm', ok: true, detail: 'not in this kernel (not needed)' };
  }
  const state = host.run === 1 ? 'ksmd running' : `ksmd stopped (run=${host.run})`;
  if (!optIn && inherited) return { name: 'ksm', ok: true, detail: `${state}; QEMU's own memory offered to it (inherited: this process is mergeable as a whole); ${guest}` };
  if (!optIn) return { name: 'ksm', ok: true, detail: `${state}; QEMU's own memory not offered to it (MCL_QEMU_KSM=1 would); ${guest}` };
  if (!host.processMerge) {
    return { name: 'ksm', ok: false, detail: `MCL_QEMU_KSM=1 but this kernel has no prctl(PR_SET_MEMORY_MERGE) (Linux 6.4 or later); ${state}`, hint: 'unset MCL_QEMU_KSM, or use Linux 6.7 or later' };
  }
  if (host.run !== 1) {
    return { name: 'ksm', ok: false, detail: `MCL_QEMU_KSM=1 but ${state}: nothing is merged`, hint: 'as root: echo 1 > /sys/kernel/mm/ksm/run (see spec/guest.md for the CPU it costs)' };
  }
  return { name: 'ksm', ok: true, detail: `${state}; QEMU's own memory offered to it (MCL_QEMU_KSM=1); ${guest}` };
}

/**
 * The zygote line of the report: whether clones can be forked from one QEMU
 * process per template (zygote.ts), which needs perl (for the parent-death
 * signal) and a C compiler (for the preloaded library, built once and cached).
 */
async function zygoteCheck(options: CacheOptions): Promise<DoctorCheck> {
  const saves = 'clones share QEMU\'s relocated pages, about 4.5 MiB each';
  if (!zygoteEnabled()) return { name: 'zygote', ok: true, detail: `off (MCL_QEMU_ZYGOTE=0): each clone's QEMU is started directly` };
  if (!launchHost().perl) return { name: 'zygote', ok: false, detail: 'perl not found: clones start QEMU directly', hint: `install perl; with it ${saves}` };
  try {
    const lib = await buildZygoteLib(options);
    return { name: 'zygote', ok: true, detail: `${lib}: ${saves}` };
  } catch (err) {
    return { name: 'zygote', ok: false, detail: `${(err as Error).message.split('\n')[0]}: clones start QEMU directly`, hint: (err as { hint?: string }).hint };
  }
}
