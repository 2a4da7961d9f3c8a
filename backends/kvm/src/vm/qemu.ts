// QEMU command lines for templates and clones.
//
// A clone must have exactly the machine and device layout of its template, so
// both command lines come from one function; only the memory backend's
// sharing, the chardevs behind the ports and the incoming migration differ.

import { existsSync, readFileSync } from 'node:fs';
import { execa } from 'execa';
import { findQemu, which } from './paths';
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
  /**
   * The console as a unix socket QEMU listens on, which the owner reads into
   * `logFile` with a cap (console-log.ts); without it QEMU appends to
   * `logFile` itself, unbounded (a template's cold boot).
   */
  consoleSocket?: string;
  qmpSocket: string;
  pidFile?: string;
  /** Device state file the caller will load over QMP (a clone): adds `-incoming defer`. */
  incomingStatePath?: string;
  /** Stay paused after loading the state. */
  paused?: boolean;
  /**
   * The incoming state is device state alone, as QEMU's
   * `xen-save-devices-state` writes it for a checkpoint (vm/checkpoint.ts):
   * such a stream has no configuration section, which QEMU expects unless
   * the migration object's `send-configuration` is off.
   */
  deviceStateOnly?: boolean;
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

/**
 * Ports of one virtio-serial device: `nr` 0 is kept for a console, and
 * `max_ports` stays at QEMU's default of 31, so a device carries the ports
 * `nr` 1..30. Measured under QEMU 7.2 (TCG, machine pc) with the Debian 6.1
 * cloud kernel: with `max_ports=32` the guest never completes a write on the
 * control port, with 31 it does, whatever the number of devices.
 */
export const PORTS_PER_SERIAL_DEVICE = 30;

/** The most virtio-serial devices a guest gets, and so the most data slots (the control port takes one port of device 0). */
export const MAX_SERIAL_DEVICES = 4;
export const MAX_DATA_PORT_SLOTS = MAX_SERIAL_DEVICES * PORTS_PER_SERIAL_DEVICE - 1;

/**
 * Where a port lives: the control port is the first port (`nr` 1) of device
 * 0 and data slot `slot` is port number `slot` after it, filling each device
 * before the next, so slots 1..29 are `nr` 2..30 of device 0 (the layout a
 * single device always had), slots 30..59 `nr` 1..30 of device 1, and so on.
 */
export function serialPortPlace(slot: number): { device: number; nr: number } {
  return { device: Math.floor(slot / PORTS_PER_SERIAL_DEVICE), nr: (slot % PORTS_PER_SERIAL_DEVICE) + 1 };
}

/** How many virtio-serial devices a guest with `portSlots` data slots has (at least one, for the control port). */
export function serialDeviceCount(portSlots: number): number {
  return serialPortPlace(portSlots).device + 1;
}

/** `max_ports` of device `d`: room for its highest `nr` plus the console's `nr` 0 (one more on a lone device, as it always had). */
function serialDeviceMaxPorts(portSlots: number, d: number): number {
  const last = serialDeviceCount(portSlots) - 1;
  if (d < last) return PORTS_PER_SERIAL_DEVICE + 1;
  if (last === 0) return portSlots + 2;
  return serialPortPlace(portSlots).nr + 1;
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
  // merge=off: QEMU does not offer guest RAM to KSM (see KSM below).
  args.push(
    '-object',
    `memory-backend-file,id=mem,size=${mem},mem-path=${opt(layout.memPath)},share=${inst.shareMemory ? 'on' : 'off'},merge=off`,
  );
  args.push('-kernel', layout.kernelPath, '-initrd', layout.initrdPath, '-append', KERNEL_CMDLINE);
  const con = inst.consoleSocket ? `socket,id=con,path=${opt(inst.consoleSocket)},server=on,wait=off` : `file,id=con,path=${opt(inst.logFile)},append=on`;
  args.push('-chardev', con, '-serial', 'chardev:con');
  const bus = layout.machine === 'microvm' ? 'virtio-serial-device' : 'virtio-serial-pci';
  // The ports are spread over as many virtio-serial devices as they need (serialPortPlace); the guest finds
  // a port by its name whatever device carries it. A guest with at most 29 data slots has one device, with
  // the command line it always had, so the templates cached before stay valid.
  const devices = serialDeviceCount(layout.portSlots);
  for (let d = 0; d < devices; d++) {
    args.push('-device', `${bus},id=vser${d},max_ports=${serialDeviceMaxPorts(layout.portSlots, d)}`);
  }
  args.push('-chardev', `socket,id=ctl,path=${opt(inst.controlSocket)},server=on,wait=off`);
  args.push('-device', 'virtserialport,bus=vser0.0,nr=1,chardev=ctl,name=control');
  for (let slot = 1; slot <= layout.portSlots; slot++) {
    const sock = inst.dataPortSockets[slot - 1] ?? null;
    const { device, nr } = serialPortPlace(slot);
    args.push('-chardev', sock ? `socket,id=p${slot},path=${opt(sock)},server=on,wait=off` : `null,id=p${slot}`);
    args.push('-device', `virtserialport,bus=vser${device}.0,nr=${nr},chardev=p${slot},name=slot${slot}`);
  }
  args.push('-qmp', `unix:${opt(inst.qmpSocket)},server=on,wait=off`);
  if (inst.pidFile) args.push('-pidfile', inst.pidFile);
  if (inst.incomingStatePath) {
    // The state is loaded over QMP (migrate-incoming) after x-ignore-shared is set: QEMU 7.2 has no
    // command-line property for that capability. -S keeps a clone paused after loading.
    args.push('-incoming', 'defer');
    if (inst.paused) args.push('-S');
    if (inst.deviceStateOnly) args.push('-global', 'migration.send-configuration=off');
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

// Transparent huge pages.
//
// QEMU asks for transparent huge pages (madvise MADV_HUGEPAGE) on its TCG
// translation buffer and on every RAM block, including the ACPI tables' ROM,
// which reserves 2 MiB for the 128 KiB a guest uses. Where the host enables
// THP (`madvise` or `always` in /sys/kernel/mm/transparent_hugepage/enabled),
// the first touch of such a region faults in a whole 2 MiB page: an idle clone
// then holds 4 MiB of translation buffer for under 3 MiB of code and 2 MiB for
// its ACPI tables, about 3 MiB of private memory (a fifth of it) that THP off
// saves. A clone's guest RAM is a private file mapping, which THP does not
// cover, so turning THP off costs the guest nothing; translated code ran no
// slower without it in a shell workload.
//
// QEMU has no option for this. prctl(PR_SET_THP_DISABLE) turns THP off for a
// process and survives execve, but Node cannot call prctl, so QEMU is started
// through perl (present on every Debian and Ubuntu system), which sets it and
// replaces itself with QEMU: same pid, same file descriptors. That costs about
// 15 ms of CPU per QEMU; a process that already runs with THP off (a
// supervisor started that way) passes the setting on to its children, and
// QEMU is then started directly, as it is without perl, with THP off on the
// host, or on an architecture whose syscall number is not listed here.
// `MCL_QEMU_THP=1` leaves THP alone.

/** The prctl syscall number per Node architecture (the generic Linux table is shared by arm64, riscv64 and loong64). */
const PRCTL_SYSCALL: Record<string, number> = { x64: 157, arm64: 167, riscv64: 167, loong64: 167 };
/** PR_SET_THP_DISABLE from <linux/prctl.h>. */
const PR_SET_THP_DISABLE = 41;

// Kernel same-page merging (KSM).
//
// Opt-in (`MCL_QEMU_KSM=1`, and ksmd running: /sys/kernel/mm/ksm/run = 1).
// prctl(PR_SET_MEMORY_MERGE, 1) (Linux 6.4; kept across execve since 6.7)
// marks every private mapping QEMU creates as mergeable, so ksmd can fold
// pages with equal contents into one read-only copy. ASLR makes pointers
// differ between processes, so little merges across clones (their ROMs and a
// few heap pages); most of what merges is duplicates inside each QEMU
// (pages of equal relocated pointers in libcapstone and QEMU, pages that
// TCG fills with one pattern). Measured with 8 and 32 idle clones of a
// 128 MiB guest: 15.1 -> 12.6 MiB of proportional anonymous memory per clone,
// ksmd 2.6% of a core at its default rate. See spec/guest.md.
//
// Guest RAM must never be merged: whether a write to a page takes a
// copy-on-write fault tells a guest that another guest holds a page of the
// same contents (the page-fusion side channel). The prctl would mark the
// clone's private mapping of the template RAM file too, and QEMU's
// `-machine mem-merge=off` only skips its own madvise: it does not undo the
// prctl. So the memory backend is started with `merge=off` (QEMU's default,
// `mem-merge=on`, would madvise guest RAM mergeable itself, which matters on
// any host that runs ksmd), and where QEMU's memory is mergeable as a whole,
// by MCL_QEMU_KSM=1 or because this process already is (a service started
// with systemd's MemoryKSM=yes passes the prctl on to its children), the
// commands of guestRamKsmOff(), run over QMP before the clone first runs, make
// QEMU call madvise(MADV_UNMERGEABLE) on guest RAM. That clears the mapping's
// mergeable flag for good (the prctl marks mappings only when they are
// created) and undoes any merge already made. It walks the whole guest RAM
// mapping (about 3 ms of QEMU CPU for 128 MiB), which is why it runs only
// then.

/** PR_SET_MEMORY_MERGE from <linux/prctl.h>. */
const PR_SET_MEMORY_MERGE = 67;

/** A QMP command and its arguments. */
export interface QmpCommand {
  execute: string;
  arguments: Record<string, unknown>;
}

/**
 * QMP commands that take a clone's guest RAM out of KSM. Setting the memory
 * backend's `merge` property to a new value makes QEMU madvise the whole RAM
 * block (hostmem.c, host_memory_backend_set_merge); setting the value it has
 * does nothing, hence on and then off.
 */
export const GUEST_RAM_KSM_OFF: readonly QmpCommand[] = [
  { execute: 'qom-set', arguments: { path: '/objects/mem', property: 'merge', value: true } },
  { execute: 'qom-set', arguments: { path: '/objects/mem', property: 'merge', value: false } },
];

/**
 * The commands to run before a clone first runs: GUEST_RAM_KSM_OFF where
 * QEMU's memory is mergeable as a whole (see KSM above), none otherwise.
 */
export function guestRamKsmOff(host: LaunchHost = launchHost()): readonly QmpCommand[] {
  return host.ksm || host.mergeAnyInherited ? GUEST_RAM_KSM_OFF : [];
}

export interface LaunchHost {
  /** The selected THP mode (`always`, `madvise`, `never`) or null when the kernel has no THP. */
  thpMode: string | null;
  /** process.arch */
  arch: string;
  /** Path of perl, or null. */
  perl: string | null;
  /** `MCL_QEMU_THP=1`: start QEMU as it is. */
  keepThp: boolean;
  /** This process runs with THP disabled (`THP_enabled: 0` in /proc/self/status), which its children inherit. */
  inherited: boolean;
  /** `MCL_QEMU_KSM=1`: offer QEMU's own memory to kernel same-page merging (see KSM above). */
  ksm?: boolean;
  /** This process is mergeable as a whole (`ksm_merge_any: yes` in /proc/self/ksm_stat), which its children inherit. */
  mergeAnyInherited?: boolean;
}

/** The selected mode in the text of /sys/kernel/mm/transparent_hugepage/enabled (`always [madvise] never`). */
export function parseThpMode(text: string): string | null {
  return /\[(\w+)\]/.exec(text)?.[1] ?? null;
}

/**
 * Whether a process is mergeable as a whole, from its /proc/<pid>/ksm_stat.
 * Kernels with the prctl but before the `ksm_merge_any` line (6.4 to 6.9;
 * `hasPrctl`: /sys/kernel/mm/ksm/general_profit exists) cannot tell, and count
 * as yes, so guest RAM is taken out of KSM there whatever the parent did.
 */
export function parseMergeAny(ksmStat: string, hasPrctl: boolean): boolean {
  const line = /^ksm_merge_any: (yes|no)$/m.exec(ksmStat);
  return line ? line[1] === 'yes' : hasPrctl;
}

let perlPath: string | null | undefined;
let selfThpOff: boolean | undefined;
let selfMergeAny: boolean | undefined;

/** What decides how QEMU is started on this host. */
export function launchHost(): LaunchHost {
  let thpMode: string | null = null;
  try {
    thpMode = parseThpMode(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'));
  } catch {
    // No THP support in this kernel: nothing to turn off.
  }
  if (perlPath === undefined) perlPath = which('perl');
  if (selfThpOff === undefined) {
    try {
      selfThpOff = /^THP_enabled:\s*0$/m.test(readFileSync('/proc/self/status', 'utf8'));
    } catch {
      selfThpOff = false;
    }
  }
  if (selfMergeAny === undefined) {
    let stat = '';
    try {
      stat = readFileSync('/proc/self/ksm_stat', 'utf8');
    } catch {
      // No KSM, or a kernel before 6.1: then there is no prctl either.
    }
    selfMergeAny = parseMergeAny(stat, existsSync('/sys/kernel/mm/ksm/general_profit'));
  }
  return {
    thpMode,
    arch: process.arch,
    perl: perlPath,
    keepThp: process.env.MCL_QEMU_THP === '1',
    inherited: selfThpOff,
    ksm: process.env.MCL_QEMU_KSM === '1',
    mergeAnyInherited: selfMergeAny,
  };
}

/** PR_SET_PDEATHSIG from <linux/prctl.h>, and SIGKILL. */
const PR_SET_PDEATHSIG = 1;
const SIGKILL = 9;

export interface LaunchOptions {
  /**
   * Kill QEMU (SIGKILL) when the thread that started it ends, for whatever
   * reason, SIGKILL included: prctl(PR_SET_PDEATHSIG) set by perl before it
   * execs QEMU. Linux counts the *thread* that forked as the parent, so the
   * caller must start QEMU from a thread that lives as long as it owns the
   * process (Node spawns from the thread running the event loop: the main
   * thread, or a worker that then owns the process). Without perl, or on an
   * architecture whose syscall number is not listed, QEMU starts without it
   * (`dieWithParent: false` in the result).
   */
  dieWithParent?: boolean;
  /** The pid QEMU's parent must have when the setting takes effect; default process.pid. */
  parentPid?: number;
}

export interface Launch {
  file: string;
  args: string[];
  /** QEMU runs with transparent huge pages off. */
  thpOff: boolean;
  /** QEMU is killed when the thread that started it ends. */
  dieWithParent: boolean;
  /** QEMU's own memory is offered to KSM (prctl(PR_SET_MEMORY_MERGE) asked for; see KSM above). */
  ksm: boolean;
}

/**
 * The program and arguments that start QEMU with `args`: QEMU itself, or perl
 * setting process attributes (transparent huge pages off, a parent-death
 * signal) and then running QEMU in its place.
 */
export function launchCommand(qemu: string, args: string[], host: LaunchHost = launchHost(), options: LaunchOptions = {}): Launch {
  const nr = PRCTL_SYSCALL[host.arch];
  const inherited = host.inherited && !host.keepThp;
  const setThp = !inherited && !host.keepThp && !!host.perl && nr !== undefined && host.thpMode !== null && host.thpMode !== 'never';
  const setDeath = !!options.dieWithParent && !!host.perl && nr !== undefined;
  const setKsm = !!host.ksm && !!host.perl && nr !== undefined;
  if (!setThp && !setDeath && !setKsm) return { file: qemu, args, thpOff: inherited, dieWithParent: false, ksm: false };
  let script = '';
  if (setDeath) {
    // The parent may have ended between fork and prctl; QEMU would then run on as an orphan the signal never
    // reaches, so it does not start at all.
    const parent = options.parentPid ?? process.pid;
    script += `syscall(${nr}, ${PR_SET_PDEATHSIG}, ${SIGKILL}, 0, 0, 0) == 0 or die "prctl(PR_SET_PDEATHSIG): $!\\n"; getppid() == ${parent} or die "the owner (pid ${parent}) exited before QEMU started\\n"; `;
  }
  // A failing prctl (a kernel older than 3.15) is ignored: QEMU then runs with THP as the host has it.
  if (setThp) script += `syscall(${nr}, ${PR_SET_THP_DISABLE}, 1, 0, 0, 0); `;
  // A failing prctl (a kernel older than 6.4) is ignored too: QEMU then runs with nothing of its own mergeable.
  if (setKsm) script += `syscall(${nr}, ${PR_SET_MEMORY_MERGE}, 1, 0, 0, 0); `;
  script += `exec { $ARGV[0] } @ARGV or die "cannot run $ARGV[0]: $!\\n";`;
  return { file: host.perl!, args: ['-e', script, '--', qemu, ...args], thpOff: setThp || inherited, dieWithParent: setDeath, ksm: setKsm };
}
