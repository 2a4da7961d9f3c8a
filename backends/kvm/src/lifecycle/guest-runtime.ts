// What the supervisor needs from the VM substrate and from the broker.
//
// The supervisor's logic (ordering, reconcile, restart policy, sessions) is
// written against these two narrow interfaces, so unit tests drive it with
// fakes and the real implementations (QEMU clones in ../vm, the broker in
// @mcl/broker) are plugged in by `runSupervisor`.

import type { Plan, PlanInstance } from '@mcl/plan';
import type { LinkStatus, MigrationMode } from '@mcl/plan/backend';
import type { BrokerCheckpoint, ChannelCounters, ExposureInfo, PortTarget, Violation } from '@mcl/broker';
import type { EventSink } from './events';

export interface CloneRequest {
  instance: PlanInstance;
  /** Clone index within the instance (0 for a single instance). */
  index: number;
  /** A directory of this clone's own for sockets, pid file and logs; it exists and is empty. */
  dir: string;
  /** The fork must be ready (the control port answered, the program started) within this time. */
  readyTimeoutMs: number;
  /** Leave the clone paused after the fork (a warm clone for a future session). */
  paused?: boolean;
  /** A line the console log begins with, before anything of the guest (why the clone was forked again). */
  consoleHeader?: string;
  /**
   * A directory on the file system of `dir` where the runtime may keep
   * processes started ahead of time for later forks, each in a subdirectory
   * with a `qemu.pid`, so a later supervisor reaps them like clones. Without
   * it every fork starts its process from scratch.
   */
  spareDir?: string;
}

export interface ExitInfo {
  /** QEMU's exit code, or null when it was killed by a signal. */
  code: number | null;
  signal: string | null;
  /** The guest program's exit status when the guest agent reported it (the program ending ends the clone). */
  program_code?: number;
  /**
   * Set when the clone died because a process of the runtime it depended on
   * died, not by anything of its own (e.g. "its QEMU zygote died"): such an
   * exit does not count against the instance's restart policy.
   */
  helper?: string;
}

export interface CloneHandle {
  readonly pid: number;
  /** Process start time in clock ticks since boot, recorded to tell a reused pid apart. */
  readonly startTime: number | null;
  /**
   * The host end of every data port, by port name: a unix socket the broker
   * connects to (QEMU), or a stream already connected to the guest (a Xen
   * vchan relay).
   */
  readonly portSockets: Readonly<Record<string, PortTarget>>;
  /** File the guest console (and the program's output, when the guest routes it there) is written to. */
  readonly consoleLog: string;
  /** File of the program's own output, when the substrate separates it from the console. */
  readonly programLog?: string;
  /**
   * What happened while the clone started that an operator should know,
   * one sentence each (Xen: a restored guest that died while resuming and
   * was restored again); reported as warnings and in the audit trail.
   */
  readonly startNotes?: readonly string[];
  /** Settles when the QEMU process has exited, for whatever reason. */
  readonly exited: Promise<ExitInfo>;
  /** Resumes a clone forked with `paused`. */
  resume(): Promise<void>;
  /** Stops the clone (gracefully if quick, else by SIGKILL) and resolves once the process is gone. */
  stop(): Promise<void>;
  /** The guest's memory when the substrate knows it better than /proc/<pid> (Xen: from the hypervisor). */
  memory?(): { rss_bytes: number; pss_bytes: number; private_bytes: number } | undefined;
  /** The guest's CPU time in ms when the substrate knows it better than /proc/<pid>. */
  cpuMs?(): number | undefined;
  /** Asks QEMU (QMP) and the guest agent (the control port) how the clone is, each within `timeoutMs`; see health.ts. */
  probe?(timeoutMs: number): Promise<GuestProbe>;
  /** Checkpoints (spec/checkpoint.md); absent where the runtime cannot take them. */
  readonly checkpoint?: CloneCheckpointing;
  /** The QEMU clone itself, for moving it to another host (lifecycle/migrate-out.ts); absent where the runtime cannot. */
  readonly migratable?: import('../vm/types').Clone;
  /**
   * Set when the clone runs on another host of the deployment (moved there by `mclc migrate`):
   * `pid` is then NaN, never a process of this host, and nothing here signals or reads it.
   */
  readonly remote?: { target: string; at: string; pid: number | null };
}

/**
 * A clone moving here from another host (lifecycle/kept.ts): its QEMU started
 * paused, waiting for the stream on the unix socket it was given.
 */
export interface IncomingHandle {
  readonly pid: number;
  /** Where the data ports' host ends are (unix sockets QEMU listens on). */
  readonly portSockets: Readonly<Record<string, string>>;
  /** Resolves once the clone's state arrived (the guest still paused); rejects when it failed or QEMU died. */
  readonly loaded: Promise<void>;
  /** Settles when QEMU exited, whenever that is (before or after finish). */
  readonly exited: Promise<ExitInfo>;
  /** Continues the guest (its ports connected) and waits for the agent's answer. */
  finish(): Promise<CloneHandle>;
  /** Kills QEMU. */
  kill(): Promise<void>;
}

/** What a checkpoint does with one clone, in the order it does it. */
export interface CloneCheckpointing {
  /** Stops the guest's CPUs (the clone keeps its process and sockets). */
  pause(): Promise<void>;
  /**
   * While paused: saves the device state into `dir` and reads the guest
   * pages the clone wrote; resolves with the step that writes those pages
   * (comparing them with the template and compressing them), which runs
   * after the clone continued.
   */
  capture(dir: string, name: string): Promise<() => Promise<CloneCheckpointFiles>>;
  /** Continues the guest after pause(). */
  cont(): Promise<void>;
}

/** The files of one clone in a checkpoint, named relative to its directory. */
export interface CloneCheckpointFiles {
  device_state: CheckpointFile;
  ram: CheckpointFile & { pages: number };
}

export interface CheckpointFile {
  file: string;
  sha256: string;
  bytes: number;
}

/** A clone to bring back from a checkpoint: like a fork request, plus the contents of its files as they were verified. */
export interface RestoreRequest extends CloneRequest {
  deviceState: Buffer;
  ram: Buffer;
  /** The RAM file's name in the checkpoint, for messages. */
  ramName: string;
}

/** What the host sees of a clone from outside its guest. */
export interface GuestProbe {
  /** QMP `query-status`'s status (`running`, `paused`, `guest-panicked`, `internal-error`, ...), or null when QMP did not answer. */
  vcpu: string | null;
  /** The agent's answer time to a ping on the control port in ms, or null when it did not answer. */
  agent_ms: number | null;
}

export interface GuestRuntime {
  /** The accelerator the guests run on, with the reason when it is not the preferred one. */
  accelerator(): Promise<{ name: string; note?: string }>;
  /** Builds (or finds cached) the images and boots and saves the templates with these ids. */
  prepare(plan: Plan, templateIds: readonly string[], onEvent: EventSink): Promise<void>;
  /** Forks a clone of the instance's template and starts its program. */
  fork(req: CloneRequest): Promise<CloneHandle>;
  /** Stops what the runtime keeps ready for later forks (processes started ahead of time); forks after it still work. */
  release?(): Promise<void>;
  /** The processes it runs besides the clones (zygotes, processes started ahead), for `status`. */
  helpers?(): Promise<HelperProcess[]>;
  /**
   * The identity of a prepared template's build: its key (what it is built
   * from) and `build` (a digest of this boot's saved state, since a clone's
   * pages only make sense over the very RAM they were forked from).
   */
  templateBuild?(plan: Plan, templateId: string): { key: string; build: string } | null;
  /** Starts a clone from a checkpoint, paused; its resume() continues it without starting its program again. */
  restore?(req: RestoreRequest): Promise<CloneHandle>;
  /**
   * Starts a clone of the instance's template paused, waiting for a moving
   * clone's state on the unix socket `incomingSocket`: QEMU's precopy stream,
   * or a move by the clone's own pages (`mode`). Absent where the runtime
   * cannot take a moving clone.
   */
  incoming?(req: CloneRequest, mode: MigrationMode, incomingSocket: string): Promise<IncomingHandle>;
  /**
   * Removes what an earlier supervisor of this deployment left behind that
   * is not a process (Xen domains), before the first apply; returns what it
   * removed, for the log.
   */
  reapOrphans?(): Promise<string[]>;
}

export interface HelperProcess {
  role: 'zygote' | 'waiting';
  template: string;
  pid: number;
}

/** The subset of @mcl/broker's Broker the supervisor uses. */
export interface BrokerLike {
  /**
   * Attaches one data port of a clone. The broker connects asynchronously; the
   * promise, when there is one, settles true once the connection is up (false
   * when the port was detached first). Without waiting for it, a request that
   * arrives right after apply could find no clone.
   */
  attachPort(instance: string, clone: number, port: string, target: PortTarget): void | Promise<boolean>;
  detachClone(instance: string, clone: number): void;
  /** A created clone is going away without its creator asking (an apply replaces its instance): its creator forgets it and is told. */
  createdGone?(instance: string, clone: number, reason: string): void;
  listenExposures(): Promise<ExposureInfo[] | void>;
  /** Checkpoints: stop relaying, the state to keep, continue from a kept state, relay again (spec/checkpoint.md). */
  hold?(): void;
  checkpointState?(): BrokerCheckpoint;
  restoreState?(state: BrokerCheckpoint): string[];
  resume?(): void;
  counters(): ChannelCounters[];
  violations(): Violation[];
  /** The links to the deployment's other hosts (spec/broker.md, "Links between hosts"). */
  linkStatus?(): LinkStatus[];
  /** Moving a clone (spec/hosts.md, "Live migration"): its frames held, moved to new targets, or released. */
  holdClone?(instance: string, clone: number): void;
  cloneQueued?(instance: string, clone: number): number;
  moveClone?(instance: string, clone: number, targets: Record<string, PortTarget>): Promise<void>;
  releaseClone?(instance: string, clone: number): void;
  close(): Promise<void>;
}

export interface BrokerHooks {
  onSessionOpen(instanceId: string): Promise<number>;
  onSessionClose(instanceId: string, clone: number): Promise<void>;
  /** A creator asked its factory port for an instance (spec/factories.md): fork it, attach it, resolve with its clone index. */
  onCreate?(instanceId: string, creator: { instance: string; clone: number }, params: Record<string, unknown>): Promise<number>;
  /** A created clone is destroyed (by its creator, or with it). */
  onDestroy?(instanceId: string, clone: number): Promise<void>;
  onViolation(v: Violation): void;
}

export type BrokerFactory = (plan: Plan, hooks: BrokerHooks) => BrokerLike;
