// QEMU command lines for templates and clones.
//
// A clone must have exactly the machine and device layout of its template, so
// both command lines come from one function; only the memory backend's
// sharing, the chardevs behind the ports and the incoming migration differ.

import { execa } from 'execa';
import { findQemu } from './paths';
import type { AccelName, MachineType } from './types';

export interface QemuLayout {
  machine: MachineType;
  accel: AccelName;
  memoryBytes: number;
  vcpus: number;
  portSlots: number;
  kernelPath: string;
  initrdPath: string;
  memPath: string;
}

export interface QemuInstanceArgs {
  name: string;
  /** true for the template (share=on: the guest writes into the file), false for a clone (private copy-on-write). */
  shareMemory: boolean;
  controlSocket: string;
  /** Per data slot (index 0 is slot 1): a unix socket QEMU listens on, or null for a sink. */
  dataPortSockets: (string | null)[];
  logFile: string;
  qmpSocket: string;
  pidFile?: string;
  /** Device state file the caller will load over QMP (a clone): adds `-incoming defer`. */
  incomingStatePath?: string;
  /** Stay paused after loading the state. */
  paused?: boolean;
}

/**
 * Kernel command line: quiet (serial output is slow under TCG), busybox init,
 * no reboot loops. `no_timer_check` skips the IO-APIC timer test, which panics
 * ("IO-APIC + timer doesn't work") when an emulated guest is starved of CPU on
 * a loaded host.
 */
export const KERNEL_CMDLINE = 'console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/sbin/init tsc=reliable no_timer_check';

/** QEMU's `exec:` migration runs `/bin/sh -c`: quote a path for it. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Escapes a value inside a QEMU option list (a comma is written twice). */
function opt(s: string): string {
  return s.replace(/,/g, ',,');
}

export function qemuArgs(layout: QemuLayout, inst: QemuInstanceArgs): string[] {
  const mem = `${Math.round(layout.memoryBytes / (1024 * 1024))}M`;
  const args: string[] = ['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-name', opt(inst.name)];
  const machineOpts = layout.machine === 'microvm' ? ',x-option-roms=off,isa-serial=on,rtc=on' : '';
  args.push('-machine', `${layout.machine},memory-backend=mem${machineOpts}`);
  // TCG's translation cache defaults to 1 GiB of address space; a bound keeps what an idle clone touches small.
  const tb = process.env.MCL_TCG_TB_MIB;
  args.push('-accel', layout.accel === 'tcg' ? `tcg${tb ? `,tb-size=${Number(tb)}` : ''}` : 'kvm');
  // TCG: `max` exposes RDRAND/RDSEED, which the guest uses to seed its RNG. KVM: the default model, since
  // `-cpu host` aborted on some hosts.
  if (layout.accel === 'tcg') args.push('-cpu', 'max');
  args.push('-smp', String(layout.vcpus), '-m', mem);
  args.push(
    '-object',
    `memory-backend-file,id=mem,size=${mem},mem-path=${opt(layout.memPath)},share=${inst.shareMemory ? 'on' : 'off'}`,
  );
  args.push('-kernel', layout.kernelPath, '-initrd', layout.initrdPath, '-append', KERNEL_CMDLINE);
  args.push('-chardev', `file,id=con,path=${opt(inst.logFile)},append=on`, '-serial', 'chardev:con');
  const bus = layout.machine === 'microvm' ? 'virtio-serial-device' : 'virtio-serial-pci';
  // nr 0 is reserved for consoles; the control port is nr 1 and data slot i is nr i + 1.
  args.push('-device', `${bus},id=vser0,max_ports=${layout.portSlots + 2}`);
  args.push('-chardev', `socket,id=ctl,path=${opt(inst.controlSocket)},server=on,wait=off`);
  args.push('-device', 'virtserialport,bus=vser0.0,nr=1,chardev=ctl,name=control');
  for (let slot = 1; slot <= layout.portSlots; slot++) {
    const sock = inst.dataPortSockets[slot - 1] ?? null;
    args.push('-chardev', sock ? `socket,id=p${slot},path=${opt(sock)},server=on,wait=off` : `null,id=p${slot}`);
    args.push('-device', `virtserialport,bus=vser0.0,nr=${slot + 1},chardev=p${slot},name=slot${slot}`);
  }
  args.push('-qmp', `unix:${opt(inst.qmpSocket)},server=on,wait=off`);
  if (inst.pidFile) args.push('-pidfile', inst.pidFile);
  if (inst.incomingStatePath) {
    // The state is loaded over QMP (migrate-incoming) after x-ignore-shared is set: QEMU 7.2 has no
    // command-line property for that capability. -S keeps a clone paused after loading.
    args.push('-incoming', 'defer');
    if (inst.paused) args.push('-S');
  }
  return args;
}

let versionCache: string | null | undefined;

/** `7.2.22` or null when QEMU is missing. */
export async function qemuVersion(): Promise<string | null> {
  if (versionCache !== undefined) return versionCache;
  const qemu = findQemu();
  if (!qemu) return (versionCache = null);
  const r = await execa(qemu, ['--version'], { reject: false });
  versionCache = /version (\d+\.\d+\.\d+)/.exec(r.stdout)?.[1] ?? null;
  return versionCache;
}

/** The QEMU binary or an error with an install hint. */
export function requireQemu(): string {
  const q = findQemu();
  if (!q) {
    throw Object.assign(new Error('qemu-system-x86_64 not found'), {
      kind: 'failure' as const, hint: 'install it: apt-get install qemu-system-x86 (backends/kvm/scripts/install-deps.sh)',
    });
  }
  return q;
}
