// Types of the VM substrate: images, templates, copy-on-write clones, the
// guest control channel, the accelerator probe and memory accounting.
//
// The lifecycle code (apply, the supervisor) builds on these; nothing here
// knows about deployments or state files.

import type { PlanFile, PlanProgram } from '@mcl/plan';
import type { QmpClient } from './qmp';
import type { ControlChannel } from './control';
import type { ConsoleLogLimits } from './console-log';

/** Where built images, templates and the accelerator probe are cached. */
export interface CacheOptions {
  /** Cache directory; default `$MCL_CACHE_DIR`, else `~/.cache/mcl`. */
  cacheDir?: string;
}

// ---------------------------------------------------------------------------
// Images

/** What an image is built from (the shape of a plan's `PlanImage`, minus the digest). */
export interface ImageSpec {
  name: string;
  /** `debian-cloud` (the newest /boot/vmlinuz-*-cloud-amd64) or an absolute path to a kernel. */
  kernel: string;
  /**
   * Kernel modules to load (names as in modules.dep, `-` and `_` are equivalent).
   * Their dependencies are added and everything is loaded in dependency order.
   * The virtio transports (virtio_pci, virtio_mmio) and virtio_console are always included.
   */
  modules: string[];
  /** Extra files baked into the image. */
  files: PlanFile[];
}

export interface BuildImageOptions extends CacheOptions {
  /**
   * Directory whose files are copied into the image's /usr/bin/ (mode 0755).
   * Default: backends/broker/guest/ of this repository, when it exists.
   */
  guestToolsDir?: string | null;
}

/** A built image: a kernel plus a reproducible initramfs in the cache. */
export interface BuiltImage {
  name: string;
  /** Absolute path of the kernel (not copied). */
  kernelPath: string;
  /** Kernel release, e.g. `6.1.0-56-cloud-amd64` (selects /lib/modules/<release>). */
  kernelRelease: string;
  /** Absolute path of the gzip-compressed newc cpio in the cache. */
  initrdPath: string;
  /** sha256 (hex) of the initramfs bytes. */
  initrdSha256: string;
  /** sha256 (hex) over everything the image was built from (the cache key). */
  key: string;
  /** Modules loaded at boot, in load order. */
  modules: string[];
  /** True when the initramfs came from the cache. */
  cached: boolean;
  elapsedMs: number;
}

// ---------------------------------------------------------------------------
// Accelerator

export type AccelName = 'kvm' | 'tcg';

export interface AccelProbe {
  accel: AccelName;
  /** Why this accelerator was chosen, one sentence a person can read. */
  reason: string;
  /** True when the result came from the per-boot cache. */
  cached: boolean;
}

// ---------------------------------------------------------------------------
// Templates

export type MachineType = 'microvm' | 'pc' | 'q35';

/** Everything that determines a template (and therefore its cache key). */
export interface TemplateSpec {
  /** Plan template id, e.g. `busybox-256m-1c-4p`; used in file names and messages only. */
  id: string;
  image: BuiltImage;
  memoryBytes: number;
  vcpus: number;
  /** Data port slots (1..portSlots); slot 0 is the control port and always present. */
  portSlots: number;
  /** Default: the result of probeAccelerator(). */
  accel?: AccelName;
  /** Default: `$MCL_MACHINE`, else `pc` (microvm stalls under TCG; see spec/guest.md). */
  machine?: MachineType;
}

export interface TemplateOptions extends CacheOptions {
  /** Bound for the cold boot to the agent's ready line; default 60 s. */
  bootTimeoutMs?: number;
  /** Rebuild even when a cached template exists. */
  force?: boolean;
  /** The template's console is written here (default: <template dir>/console.log). */
  logFile?: string;
  signal?: AbortSignal;
}

/**
 * A saved template: device state on disk plus guest RAM in a shared memory file.
 * Clones map the RAM file privately (copy-on-write), so the file must stay in
 * place while clones live; `removeTemplate` deletes both.
 */
export interface Template {
  id: string;
  /** sha256 over everything that affects the template (hex). */
  key: string;
  spec: TemplateSpec;
  accel: AccelName;
  machine: MachineType;
  /** Directory holding the device state, the console log and `template.json`. */
  dir: string;
  /** Guest RAM (on tmpfs, /dev/shm by default, or $MCL_SHM_DIR). */
  memPath: string;
  /** Device state written by `migrate` (RAM excluded by x-ignore-shared). */
  statePath: string;
  /**
   * A stub kernel for clones: the real kernel's setup header with no payload.
   * QEMU keeps the whole `-kernel` file in memory (14 MB of private memory per
   * process) although a clone never boots it; the stub keeps the firmware
   * layout identical while costing nothing. `clone-initrd` beside it does the
   * same for the initramfs.
   */
  cloneKernelPath: string;
  /** True when loaded from the cache rather than booted now. */
  cached: boolean;
  /** Cold boot to ready, ms (from when the template was built). */
  bootMs: number;
  /** Time to save the device state, ms (from when the template was built). */
  saveMs: number;
}

// ---------------------------------------------------------------------------
// Clones

export interface CloneOptions {
  /** Name shown by QEMU (`-name`) and in messages, e.g. `shop.app#0`. */
  name: string;
  /**
   * Host end of each data port: `dataPortSockets[i]` is slot `i + 1`. QEMU
   * listens on each path (`server=on,wait=off`); the broker connects as a client
   * and may reconnect at any time. `null` attaches a sink (nothing can talk on
   * it). Fewer entries than the template's slots leave the rest as sinks.
   */
  dataPortSockets: (string | null)[];
  /** Host end of the control port (slot 0); QEMU listens, this module connects. */
  controlSocket: string;
  /** The guest console (kernel messages, agent messages, program stdout/stderr), capped and rotated (console-log.ts). */
  logFile: string;
  /** The console's unix socket, which QEMU listens on and the clone's owner reads `logFile` from; default `<controlSocket>.con`. */
  consoleSocket?: string;
  /** Size, number and rate of the console log files; default: consoleLogLimits(). */
  consoleLimits?: ConsoleLogLimits;
  /** A line written to the console log before anything of the guest (e.g. why the clone was started again). */
  consoleHeader?: string;
  /** QMP socket path; default `<controlSocket>.qmp`. */
  qmpSocket?: string;
  /** QEMU writes its pid here (`-pidfile`), for reconciling after a crash of the owner. */
  pidFile?: string;
  /** Bound for resume + control handshake; default 20 s. */
  readyTimeoutMs?: number;
  /** Start the clone paused (for a warm pool); `resume()` continues it. Default false. */
  paused?: boolean;
  signal?: AbortSignal;
}

/** What a clone is told after the fork so it stops being a copy of the template. */
export interface GuestIdentity {
  /** Instance id from the plan, e.g. `shop.app`. */
  instanceId: string;
  /** Clone index within the instance (replicas, sessions). */
  clone?: number;
  /** Default: instance id with dots replaced by dashes, plus `-<clone>` when clone > 0. */
  hostname?: string;
  /** Fresh entropy written into /dev/urandom; default 64 random bytes. */
  seed?: Buffer;
  /** Data ports: the agent creates /dev/mcl/<name> for each, linked to the slot's device. */
  ports: { name: string; slot: number }[];
  /** The program to start; files are written before it starts. Omit to start nothing. */
  program?: PlanProgram;
}

export interface CloneExit {
  /** QEMU's exit code, or null when killed by a signal. */
  code: number | null;
  signal: string | null;
  /** Killed because the zygote it was forked from died (its parent-death signal), not by anything of its own. */
  zygoteDied?: boolean;
}

export interface Clone {
  name: string;
  pid: number;
  template: Template;
  /** QMP client connected to this clone's QEMU. */
  qmp: QmpClient;
  /** The control channel (slot 0), already past the handshake. */
  control: ControlChannel;
  /**
   * Time from the fork call (forkClone, or ClonePool.take) to the guest
   * answering on the control port, ms. For a pooled clone it leaves out the
   * QEMU start, which happened ahead of time.
   */
  readyMs: number;
  /**
   * Where readyMs went. connectMs: QEMU start until QMP and control connected
   * (forkClone), or the renaming of a pooled process's sockets and files to
   * the clone's paths (take); loadMs: the state load; handshakeMs: `cont`
   * and the control handshake, sent together (a TCG guest spends most of it
   * translating the code that wakes it and answers).
   */
  phases: { connectMs: number; loadMs: number; handshakeMs: number };
  /** True when the QEMU process came from a ClonePool (started before the fork was asked for). */
  pooled: boolean;
  /** Sends the identity, waits until the agent applied it and (if any) started the program. */
  sendIdentity(identity: GuestIdentity, timeoutMs?: number): Promise<{ programPid: number | null }>;
  /** Continues a clone started with `paused: true`. */
  resume(): Promise<void>;
  /** Kills QEMU (SIGKILL by default) and waits until it exited; idempotent. */
  kill(signal?: NodeJS.Signals): Promise<CloneExit>;
  /** Resolves when QEMU exits, for whatever reason. Never rejects. */
  exited: Promise<CloneExit>;
  /** RSS/PSS/private memory of the QEMU process. */
  memory(): Promise<MemoryUsage>;
}

// ---------------------------------------------------------------------------
// Memory

/** From /proc/<pid>/smaps_rollup, in bytes. */
export interface MemoryUsage {
  rss: number;
  pss: number;
  /** Private_Clean + Private_Dirty. */
  private: number;
  /** Private_Dirty: the private pages that are not clean file pages (page cache only this process maps). */
  privateDirty: number;
  /** Pss_Anon: anonymous memory, each page shared with other processes counted in part. */
  anonPss: number;
  /** Shared_Clean + Shared_Dirty. */
  shared: number;
  swap: number;
}

// ---------------------------------------------------------------------------
// Doctor

export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
  /** How to fix it, when not ok. */
  hint?: string;
}

export interface DoctorReport {
  qemu: { path: string | null; version: string | null };
  kernel: { path: string | null; release: string | null };
  busybox: { path: string | null; version: string | null };
  kvm: { devicePresent: boolean; accessible: boolean };
  accelerator: AccelProbe | null;
  vhostVsock: boolean;
  cacheDir: string;
  shmDir: string;
  checks: DoctorCheck[];
}
