// The accelerator probe: does a guest actually run under KVM on this host?
//
// /dev/kvm can exist and KVM_CREATE_VM succeed while guests hang right after
// the kernel's real-mode setup (seen on nested-virtualization hosts). The only
// reliable test is a short boot: the kernel is started without an initramfs
// and `panic=-1 -no-reboot`, so a working guest panics ("unable to mount
// root") and QEMU exits within about a second; a hung one does not.
// The result is cached per host boot (keyed by /proc/sys/kernel/random/boot_id).

import { constants, existsSync } from 'node:fs';
import { access, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { resolveKernel } from '../image/index';
import { cacheDir } from './paths';
import { requireQemu } from './qemu';
import type { AccelProbe, CacheOptions } from './types';

export interface ProbeOptions extends CacheOptions {
  /** How long the KVM boot may take before KVM counts as hung; default 8 s. */
  timeoutMs?: number;
  /** Ignore the cached result. */
  fresh?: boolean;
}

async function bootId(): Promise<string> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => 'unknown')).trim();
}

async function runProbe(timeoutMs: number): Promise<{ accel: 'kvm' | 'tcg'; reason: string }> {
  if (!existsSync('/dev/kvm')) return { accel: 'tcg', reason: '/dev/kvm does not exist (no KVM on this host); using TCG emulation' };
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { accel: 'tcg', reason: '/dev/kvm is not accessible to this user (add it to the kvm group); using TCG emulation' };
  }
  const qemu = requireQemu();
  const kernel = await resolveKernel('debian-cloud');
  const start = Date.now();
  const r = await execa(
    qemu,
    ['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-machine', 'pc,accel=kvm', '-m', '128M',
      '-kernel', kernel.path, '-append', 'console=ttyS0 panic=-1', '-serial', 'stdio'],
    { reject: false, timeout: timeoutMs, stdin: 'ignore', killSignal: 'SIGKILL' },
  );
  const elapsed = Date.now() - start;
  if (r.timedOut) {
    return { accel: 'tcg', reason: `/dev/kvm is present but a KVM guest did not finish a test boot within ${timeoutMs} ms (it hangs on this host); using TCG emulation` };
  }
  if (/Linux version/.test(r.stdout) && /Kernel panic|VFS|end Kernel panic/.test(r.stdout)) {
    return { accel: 'kvm', reason: `a KVM test boot completed in ${elapsed} ms` };
  }
  const why = (r.stderr || r.stdout).split('\n').filter(Boolean).slice(-2).join(' ');
  return { accel: 'tcg', reason: `/dev/kvm is present but a KVM test boot failed (${why || `exit code ${r.exitCode}`}); using TCG emulation` };
}

/**
 * Chooses the accelerator. `$MCL_ACCEL=kvm|tcg` forces one without probing.
 * Otherwise a short KVM boot decides, and the result is cached for this host boot.
 */
export async function probeAccelerator(options: ProbeOptions = {}): Promise<AccelProbe> {
  const forced = process.env.MCL_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return { accel: forced, reason: `forced by MCL_ACCEL=${forced}`, cached: false };
  const file = path.join(cacheDir(options), `accel-${await bootId()}.json`);
  if (!options.fresh) {
    const cached = await readFile(file, 'utf8').then((t) => JSON.parse(t) as { accel: 'kvm' | 'tcg'; reason: string }, () => null);
    if (cached && (cached.accel === 'kvm' || cached.accel === 'tcg')) return { ...cached, cached: true };
  }
  const result = await runProbe(options.timeoutMs ?? 8_000);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(`${file}.${process.pid}.tmp`, JSON.stringify(result) + '\n');
  await rename(`${file}.${process.pid}.tmp`, file);
  return { ...result, cached: false };
}
