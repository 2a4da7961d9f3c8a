// The interface between `mclc` and a deployment backend.
//
// The lifecycle commands (`apply`, `destroy`, `status`, `logs`, `doctor`, and
// the hidden `__supervise`) delegate to a backend module. The CLI loads it
// lazily with `import('@mcl/backend-kvm')`, so every other command works even
// when the backend is missing or broken. The module must export the functions
// of `BackendModule` below as named exports (backends/kvm/src/index.ts).
//
// The contract lives in @mcl/plan (as `@mcl/plan/backend`), between the CLI
// and the backends, so a backend implements it without depending on the CLI.
//
// Division of work:
// - The CLI parses options, validates the plan file with `validatePlan` and
//   verifies it (its signature when required, every digest, the policy checks
//   run again over the plan itself; spec/cli.md, "What apply verifies") before
//   calling `apply`, renders events and reports for people (or prints them as
//   JSON), redacts sensitive parameters, and maps failures to exit codes.
// - The backend owns the state file (reading under the lock, writing
//   atomically), refuses stale plans, and never writes to stdout or stderr
//   itself: everything it wants a person to see goes through `onEvent` (apply,
//   destroy) or the returned report. The supervisor process is the exception;
//   it runs detached and writes where it likes.
//
// Failures: a backend signals an expected failure by throwing (or rejecting
// with) an Error that has a string `kind` from `BackendErrorKind` and an
// optional `hint`. The CLI maps the kind to an exit code and prints the
// message and hint without a stack trace. Anything else thrown is reported as
// "the backend failed: <message>" with exit code 5 (its stack only with
// MCL_DEBUG=1).

import type { DeploymentState, JsonValue, Plan } from '@mcl/plan';

// ---------------------------------------------------------------------------
// Options shared by every lifecycle command.

export interface BackendOptions {
  /** Absolute path of the workspace root (`--root`, default the current directory). */
  workspace: string;
  /** Absolute path of the state file (`--state`, default `<workspace>/.mcl/state.json`). */
  stateFile: string;
  /** How long to wait for the state lock held by another process before failing with kind `locked` (`--lock-timeout`, default 0: fail at once). */
  lockTimeoutMs: number;
  /**
   * How the supervisor process is started: `spawn(command[0], [...command.slice(1), '__supervise', dir], { detached: true })`.
   * The CLI passes `[process.execPath, <absolute path of the running mclc.mjs>]`
   * (or, when run from source, `[process.execPath, '--import', 'tsx', <main.ts>]`).
   */
  supervisorCommand: string[];
  /** Aborted on SIGINT/SIGTERM; a backend stops at the next safe point and leaves a consistent state. */
  signal: AbortSignal;
  /** True when `MCL_IN_AUTOMATION` or `CI` is set: never prompt or wait for a person. */
  automation: boolean;
  /**
   * For a backend that keeps its deployment in a cluster (kubevirt): where it
   * is (`--namespace`, `--context`). `apply` takes both from the plan's target
   * unless given here; `destroy`, `status` and `logs` need the namespace, as
   * the cluster, not the workspace, holds the state.
   */
  cluster?: { namespace?: string; context?: string };
}

// ---------------------------------------------------------------------------
// apply

export interface ApplyOptions extends BackendOptions {
  /** Replace these instance ids even when their digest is unchanged (`--replace ID`, repeatable). */
  replace: string[];
  /** Per-command wall-clock bound for waiting on a guest to become ready, in ms (`--ready-timeout`, default 60 000). */
  readyTimeoutMs: number;
  /**
   * Where the supervisor serves its metrics (`--metrics [ADDR]`): `HOST:PORT` on a loopback address, `off`,
   * or undefined to leave the endpoint as it is (off for a new supervisor).
   */
  metrics?: string;
}

export interface ApplyResult {
  /** The state written at the end of the apply. */
  state: DeploymentState;
  /** Instance ids by what was done to them (sorted). */
  created: string[];
  replaced: string[];
  deleted: string[];
  unchanged: string[];
  /** Host TCP ports now listening for exposures. */
  exposures: { host_port: number; instance: string; port: string }[];
  /** Accelerator the guests run on, e.g. `kvm` or `tcg`, and why when it is not the preferred one. */
  accelerator: { name: string; note?: string };
  elapsed_ms: number;
}

// ---------------------------------------------------------------------------
// Progress events (apply, destroy). With `--json` the CLI prints each event as
// one JSON line on stdout (adding nothing but `"@timestamp"`); otherwise it
// prints `message` on stderr, prefixed with the instance/channel when set.

export type BackendEventType =
  /** A step of the algorithm started or finished (`phase` says which, e.g. `lock`, `images`, `templates`, `supervisor`, `instances`, `channels`, `exposures`, `state`). */
  | 'phase'
  | 'image'
  | 'template'
  | 'instance'
  | 'channel'
  | 'exposure'
  /** Something a person should notice but that does not stop the command (e.g. falling back to TCG). */
  | 'warning'
  /** Free-form detail, shown only with `--verbose`. */
  | 'debug';

export interface BackendEvent {
  type: BackendEventType;
  /** One line a person can read, without a trailing newline. */
  message: string;
  /** What happened to the subject: `start`, `done`, `cached`, `built`, `booted`, `create`, `replace`, `delete`, `keep`, `ready`, `failed`, `wired`, `listening`, `removed`, ... */
  action?: string;
  phase?: string;
  image?: string;
  template?: string;
  instance?: string;
  /** Clone index within a replicated or per-session instance. */
  clone?: number;
  channel?: string;
  host_port?: number;
  elapsed_ms?: number;
  /** Anything else worth recording in the JSON stream. */
  data?: JsonValue;
}

export type EventSink = (event: BackendEvent) => void;

// ---------------------------------------------------------------------------
// destroy

export interface DestroyResult {
  /** Instance ids that were running and are now stopped (sorted). */
  destroyed: string[];
  /** The state written (serial + 1, no instances), or null when there was no deployment. */
  state: DeploymentState | null;
  elapsed_ms: number;
}

// ---------------------------------------------------------------------------
// status

export type CloneState = 'starting' | 'running' | 'paused' | 'restarting' | 'crashed' | 'stopped';

export interface CloneStatus {
  index: number;
  state: CloneState;
  pid?: number;
  /** Times this clone was restarted by the restart policy. */
  restarts: number;
  uptime_ms?: number;
  /** From /proc/<pid>/smaps_rollup. */
  rss_bytes?: number;
  pss_bytes?: number;
  private_bytes?: number;
  /** User + system CPU time from /proc/<pid>/stat. */
  cpu_ms?: number;
  /** Session id for a per-session clone. */
  session?: string;
  /** For a clone created at run time: its creator clone, `instance[clone]`. */
  created_by?: string;
  /**
   * Set when `mclc migrate` moved this clone to another host of the deployment: the target it
   * runs on now. Its channels are still brokered here (spec/hosts.md, "Live migration").
   */
  moved_to?: { target: string; at: string };
  /** Last exit, e.g. "program exited with status 1", "killed by SIGKILL" or "QEMU exit code 1". */
  last_exit?: string;
  /** While the clone is down: why the last restart failed (the fork's error). */
  last_error?: string;
  /** While a restart is scheduled (state `restarting`): ms until it is attempted. */
  next_restart_in_ms?: number;
  /** Why the clone stays down: the restart policy does not restart it (policy `never`, a successful exit under `on-failure`, the retry limit). */
  not_restarted?: string;
  /** How the clone is as seen from outside its guest (absent when the backend cannot tell). */
  health?: CloneHealth;
}

export interface CloneHealth {
  /**
   * `ok`: QEMU runs the vCPUs and the guest agent answers; `paused`: a warm clone; `program_exited`: the program
   * ended and the guest was alive to report its status (it crashed, or finished); `guest_hung`: the vCPUs run but
   * the agent does not answer; `guest_crashed`: QEMU reports the guest panicked or stopped on an error;
   * `qemu_hung`: QEMU itself does not answer; `qemu_gone`: the QEMU process ended with no report from the guest;
   * `unknown`: not probed yet.
   */
  verdict: 'ok' | 'paused' | 'program_exited' | 'guest_hung' | 'guest_crashed' | 'qemu_hung' | 'qemu_gone' | 'unknown';
  /** One line a person can read. */
  detail: string;
  /** QEMU's run state at the last probe (QMP `query-status`), null when it did not answer. */
  vcpu?: string | null;
  /** The agent's answer time at the last probe in ms, null when it did not answer. */
  agent_ms?: number | null;
  /** ISO times: the last probe, and the last time the agent answered. */
  checked_at?: string;
  agent_seen_at?: string;
  /** The last lines of the clone's console, when the verdict is not `ok`. */
  console_tail?: string[];
}

export interface InstanceStatus {
  id: string;
  component: string;
  mode: 'single' | 'replicas' | 'per_session' | 'created';
  /** For a created instance: the instance id of its creator. */
  created_by?: string;
  /** `healthy`: every wanted clone running; `degraded`: some are not; `failed`: none is and restarts are exhausted. */
  health: 'healthy' | 'degraded' | 'failed' | 'stopped';
  label?: string;
  clones: CloneStatus[];
}

export interface ViolationRecord {
  /** ISO 8601 time. */
  time: string;
  /** The broker's violation kind, e.g. `schema`, `oversize`, `rate`, `order`, `order_incomplete` (a session ended where the protocol order may not), `direction`, `unwired`. */
  kind: string;
  detail: string;
  instance?: string;
  clone?: number;
}

export interface ChannelStatus {
  id: string;
  protocol: string;
  /** Frames and bytes relayed, per direction. */
  frames_forward: number;
  frames_backward: number;
  bytes_forward: number;
  bytes_backward: number;
  /** Frames denied by the broker, in total. */
  violations: number;
  /** The most recent violations (at most 20), newest last. */
  recent_violations: ViolationRecord[];
}

export interface ExposureStatus {
  host_port: number;
  instance: string;
  port: string;
  listening: boolean;
  connections_total: number;
  connections_open: number;
}

/**
 * The link from this host's broker to another host of the deployment, which
 * carries the channels whose ends are placed on the two hosts (spec/broker.md,
 * "Links between hosts").
 */
export interface LinkStatus {
  /** The other host's target name. */
  peer: string;
  /** `host:port` this host dials, or `(listening)` when the peer dials this host. */
  address: string;
  state: 'up' | 'down';
  /** When the state last changed (ms since the epoch). */
  since: number;
  bytes_out: number;
  bytes_in: number;
  frames_out: number;
  frames_in: number;
  /** Round trip of the last ping frame, and p50/p99 over the last 64, in ms (null before the first answer). */
  latency_ms: number | null;
  latency_p50_ms: number | null;
  latency_p99_ms: number | null;
  /** How many times the link came up. */
  connects: number;
  /** Frames and connections refused, by kind (`handshake`, `unknown_peer`, `greeting`, `sequence`, `forged`, `oversize`, `streams`, `stale`, `peer_denied`). */
  refused: Partial<Record<string, number>>;
  /** The cross-host channels it carries. */
  channels: string[];
}

/** An egress at run time: the connections (or HTTP requests) the broker opened to its destination. */
export interface EgressStatus {
  name: string;
  instance: string;
  port: string;
  /** `scheme://host:port[/path]`. */
  destination: string;
  connections_open: number;
  connections_total: number;
  /** Refused by `max_connections` or `connection_rate`. */
  connections_refused: number;
  /** Closed by the idle timeout. */
  timed_out: number;
  violations: number;
}

export interface StatusReport {
  /** False when neither the state nor a live supervisor has instances; the other fields are then empty. */
  deployed: boolean;
  system: string | null;
  lineage: string | null;
  serial: number | null;
  plan_digest: string | null;
  /** `restarts`: how many times a watchdog started the supervisor again after it died (absent when none). */
  supervisor: { running: boolean; pid?: number; uptime_ms?: number; restarts?: number };
  accelerator?: { name: string; note?: string };
  instances: InstanceStatus[];
  channels: ChannelStatus[];
  exposures: ExposureStatus[];
  /** The links to the deployment's other hosts (absent on a deployment on one host). */
  links?: LinkStatus[];
  /** The deployment's egresses, when it has some (absent otherwise). */
  egresses?: EgressStatus[];
  /** Violations not tied to a channel (a write to a port that is not wired). */
  unwired_violations: ViolationRecord[];
  /** The supervisor's metrics endpoint (Prometheus text), when it serves one. */
  metrics?: { url: string };
  /** Totals over all clones. */
  totals: { clones: number; rss_bytes: number; pss_bytes: number; private_bytes: number };
  /**
   * Processes the backend runs besides the clones, for the clones (the KVM
   * backend: a QEMU zygote per template that forks the clones' processes,
   * and processes started ahead for the next forks), with their memory.
   * Absent when the backend has none or its supervisor is not running.
   */
  helpers?: HelperStatus[];
  /**
   * Clones of this deployment that other hosts moved here with `mclc migrate`: this host runs
   * their QEMU, their home host's broker serves their channels (absent when there are none).
   */
  kept?: { instance: string; clone: number; from: string; pid: number; state: 'incoming' | 'running' | 'exited' }[];
  /**
   * What the user must know about this report, with what to do: e.g. the
   * supervisor runs a deployment the state does not record (an apply was
   * interrupted after it converged, or the state file was removed).
   */
  warnings?: { message: string; hint?: string }[];
}

export interface HelperStatus {
  /** `zygote`: forks the clones' processes; `waiting`: started ahead for the next fork. */
  role: 'zygote' | 'waiting';
  /** The template it serves. */
  template: string;
  pid: number;
  rss_bytes?: number;
  pss_bytes?: number;
  private_bytes?: number;
}

// ---------------------------------------------------------------------------
// logs

export interface LogsOptions extends BackendOptions {
  /** Keep printing new output until aborted (`--follow`). */
  follow: boolean;
  /** Print only the last N lines first (`--tail N`); undefined means everything kept. */
  tail?: number;
  /** Only this clone of a replicated instance (`--clone N`); undefined means all, interleaved. */
  clone?: number;
}

export interface LogLine {
  instance: string;
  clone: number;
  /** `console`: the guest kernel console; `program`: the component program's stdout/stderr. */
  stream: 'console' | 'program';
  /** ISO 8601 time, when known. */
  time?: string;
  text: string;
}

export type LogSink = (line: LogLine) => void;

// ---------------------------------------------------------------------------
// doctor

export interface DoctorCheck {
  /** Stable id, e.g. `qemu`, `kvm`, `kernel`, `busybox`, `shm`, `state`. */
  id: string;
  status: 'ok' | 'warn' | 'fail';
  summary: string;
  /** How to fix a warn/fail. */
  hint?: string;
}

export interface DoctorReport {
  checks: DoctorCheck[];
}

// ---------------------------------------------------------------------------
// audit (optional: a backend without an audit trail leaves these out)

export interface AuditOptions extends BackendOptions {
  /** Keep printing records as they are appended until aborted (`--follow`). */
  follow: boolean;
  /** Only the last N records first (`--tail N`). */
  tail?: number;
}

/** One record of the audit trail as written: `seq`, `time`, `event`, `prev` (the hash of the line before) and the event's fields. */
export interface AuditRecord {
  seq: number;
  time: string;
  event: string;
  prev: string;
  [field: string]: unknown;
}

/** Where the chain breaks, or another problem `audit verify` found. */
export interface AuditProblem {
  file: string;
  /** 1-based line number in `file`, or null for the head file. */
  line: number | null;
  seq: number | null;
  problem: string;
}

export interface AuditVerification {
  ok: boolean;
  /** The trail's files, oldest first. */
  files: string[];
  lines: number;
  first_seq: number | null;
  last_seq: number | null;
  /** The hash of the newest line: kept elsewhere, it shows later whether the history was rewritten. */
  head_hash: string | null;
  /** Set when the oldest kept record is not the first one written (older files were rotated away). */
  note?: string;
  problems: AuditProblem[];
}

// ---------------------------------------------------------------------------
// usage (optional: the accounting ledger)

export type UsageGrouping = 'instance' | 'system' | 'label' | 'clone';

export interface UsageOptions extends BackendOptions {
  by: UsageGrouping;
  /** Only what was used from this time on. */
  since: Date | null;
}

export interface UsageRow {
  /** The instance id, system name, label (`(none)` for unlabelled instances) or `instance#clone`. */
  key: string;
  cpu_seconds: number;
  /** PSS held over time, in byte-seconds. */
  memory_byte_seconds: number;
  /** The highest sum of the group's PSS at one sample. */
  peak_pss_bytes: number;
  /** The highest peak resident size (VmHWM) of one of the group's processes. */
  peak_rss_bytes: number;
  uptime_seconds: number;
  forks: number;
  restarts: number;
  /** Frames of the group's instances that the broker refused. */
  denials: number;
  frames_sent: number;
  bytes_sent: number;
  frames_received: number;
  bytes_received: number;
}

export interface UsageChannelRow {
  channel: string;
  /** The requiring instance (`tcp:<port>` for the clients of an exposure) and the providing one. */
  from: string;
  to: string;
  frames_forward: number;
  bytes_forward: number;
  frames_backward: number;
  bytes_backward: number;
  denials: number;
}

export interface UsageReport {
  /** The ledger file read. */
  ledger: string;
  by: UsageGrouping;
  since: string | null;
  /** Times of the first and last record counted. */
  first: string | null;
  last: string | null;
  records: number;
  /** Lines that are not ledger records, skipped. */
  skipped: number;
  rows: UsageRow[];
  /** The sum of the rows; its peaks are the highest of the whole deployment at one sample. */
  total: UsageRow;
  channels: UsageChannelRow[];
}

// ---------------------------------------------------------------------------
// Failures

/**
 * The kinds of expected failure, and the exit code each gets:
 * - `failure`: the backend could not do what was asked (QEMU failed, a guest never became ready...): exit code 5.
 * - `stale`: the plan was made against another state than the current one (its prior_state does not match, or it was made with no state and the state now records a deployment), or the state is another backend's: exit code 6.
 * - `locked`: another process holds the state lock past `lockTimeoutMs`: exit code 6. The message names the holder (pid, since).
 * - `usage`: bad request: an unknown instance for `logs`, an unknown `--replace` id: exit code 1.
 */
export const BACKEND_ERROR_KINDS = ['failure', 'stale', 'locked', 'usage'] as const;

export type BackendErrorKind = (typeof BACKEND_ERROR_KINDS)[number];

export interface BackendError extends Error {
  kind: BackendErrorKind;
  hint?: string;
}

const ERROR_KINDS: readonly string[] = BACKEND_ERROR_KINDS;

/** True for an expected backend failure (see `BackendError`), whatever class it was built with. */
export function isBackendError(e: unknown): e is BackendError {
  const kind = e instanceof Error ? (e as unknown as { kind?: unknown }).kind : undefined;
  return typeof kind === 'string' && ERROR_KINDS.includes(kind);
}

// ---------------------------------------------------------------------------
// The module

export interface BackendModule {
  /** Converges the deployment to `plan`. The CLI has already validated the plan file and checked `plan.target.backend`. */
  apply(plan: Plan, opts: ApplyOptions, onEvent: EventSink): Promise<ApplyResult>;
  /** Stops everything of the deployment in `opts.workspace` and writes the emptied state. A no-op (not an error) when nothing is deployed. */
  destroy(opts: BackendOptions, onEvent: EventSink): Promise<DestroyResult>;
  /** A snapshot of the running deployment. Does not take the state lock for writing. */
  status(opts: BackendOptions): Promise<StatusReport>;
  /** Delivers the instance's logs to `onLine`; with `follow`, resolves when `opts.signal` is aborted. Unknown instance: a `usage` error. */
  logs(instanceId: string, opts: LogsOptions, onLine: LogSink): Promise<void>;
  /** Checks the host: QEMU, accelerator, kernel, busybox, /dev/shm, ... */
  doctor(): Promise<DoctorReport>;
  /** Entry of the hidden `mclc __supervise DIR` command; resolves when the supervisor exits. */
  runSupervisor(dir: string): Promise<void>;
  /** Delivers the audit trail's records, oldest first; with `follow`, resolves when `opts.signal` is aborted. */
  audit?(opts: AuditOptions, onRecord: (r: AuditRecord) => void): Promise<void>;
  /** Checks the audit trail's hash chain. */
  auditVerify?(opts: BackendOptions): Promise<AuditVerification>;
  /** Sums the accounting ledger. */
  usage?(opts: UsageOptions): Promise<UsageReport>;
  /**
   * Takes a consistent checkpoint of the running deployment (or of
   * `opts.instances`) into `opts.out` (spec/checkpoint.md). Optional: a
   * backend without it cannot take checkpoints, and the CLI says so.
   */
  checkpoint?(opts: CheckpointOptions, onEvent: EventSink): Promise<CheckpointResult>;
  /** Brings a deployment back from a checkpoint directory; refuses one that does not fit, changing nothing. Optional, as `checkpoint`. */
  restore?(dir: string, opts: RestoreOptions, onEvent: EventSink): Promise<RestoreResult>;
  /**
   * The deployment's link identity on this host for target `name` (spec/hosts.md, "Links
   * between hosts"): made on first use (the private key is written on this host only) and kept
   * until `destroy`; returns its certificate, which the other hosts pin. Optional: a backend
   * without it cannot carry channels between hosts.
   */
  linkIdentity?(opts: BackendOptions, name: string): Promise<{ cert: string }>;
  /** Writes this host's link configuration (its identity, the peers it pins, where it listens); `changed` when it differs from the one there. */
  linkConfig?(opts: BackendOptions, config: LinkConfigInput): Promise<{ changed: boolean }>;
  /**
   * On the destination host of `mclc migrate`: builds the clone's template here if it is not
   * cached (same content hash), starts a paused QEMU waiting for the clone's state and listens
   * for the source, accepting only its pinned certificate. Optional: a backend without it
   * cannot move clones, and the CLI says so.
   */
  migrateIn?(opts: MigrateInOptions, onEvent: EventSink): Promise<MigrateInResult>;
  /**
   * On the source host: moves the running clone to the destination prepared by `migrateIn`,
   * holding its channels' frames so that none is lost or duplicated; on failure the clone goes
   * on running here and the error says so.
   */
  migrateOut?(opts: MigrateOutOptions, onEvent: EventSink): Promise<MigrateOutResult>;
}

// ---------------------------------------------------------------------------
// moving a running clone to another host (spec/hosts.md, "Live migration")

/** How a clone's memory travels: QEMU's precopy (all of its RAM), or only its pages that differ from the template (the destination must hold the very same template boot). */
export const MIGRATION_MODES = ['precopy', 'pages'] as const;
/** One of MIGRATION_MODES. */
export type MigrationMode = (typeof MIGRATION_MODES)[number];

/** What the destination host is asked for: a place for clone `clone` of `instance` to move into. */
export interface MigrateInOptions extends BackendOptions {
  /**
   * The digest of this host's part of the plan the source runs (`mclc migrate` checks that both hosts run their
   * parts of that one plan): the destination refuses to take a clone when its state records another.
   */
  planDigest: string;
  instance: string;
  clone: number;
  /** This host's target name. */
  target: string;
  /** The source host: its target name and its link certificate, the only one the destination accepts. */
  from: { target: string; cert: string };
  /** Where this host listens for the source (its address; port 0 for any free port). */
  listen: { host: string; port: number };
  mode: MigrationMode;
}

export interface MigrateInResult {
  /** The port the destination listens on for this migration, and its link certificate (the source pins it). */
  port: number;
  cert: string;
  /** True when the template had to be built here first (from the same content hash); how long that took. */
  template_built: boolean;
  template_ms: number;
}

/** What the source host is asked for: move clone `clone` of `instance` to the destination that `migrateIn` prepared. */
export interface MigrateOutOptions extends BackendOptions {
  instance: string;
  clone: number;
  to: { target: string; host: string; port: number; cert: string };
  mode: MigrationMode;
}

export interface MigrateOutResult {
  instance: string;
  clone: number;
  from: string;
  to: string;
  mode: MigrationMode;
  /** From the start of the move to the clone answering on the destination, ms. */
  total_ms: number;
  /** How long the guest was stopped, and how long its channels' frames were held, ms. */
  downtime_ms: number;
  hold_ms: number;
  /** Bytes that crossed the connection between the hosts, and the clone's private memory on the source when the move began. */
  bytes_sent: number;
  source_private_bytes: number;
  attempts: number;
}

/** The longest PEM text (a link key or certificate) a host, a client or a link configuration may carry. */
export const LINK_MAX_PEM = 64 * 1024;

/** What `apply` tells a host about its links: the other hosts it pins and reaches, and where it listens. */
export interface LinkConfigInput {
  name: string;
  peers: { name: string; cert: string; host: string; port: number }[];
  listen?: { host: string; port: number };
}

// ---------------------------------------------------------------------------
// checkpoint and restore (spec/checkpoint.md)

export interface CheckpointOptions extends BackendOptions {
  /** The directory to write; it must not exist, or be empty. */
  out: string;
  /** Instances to checkpoint; empty means the whole deployment, broker included. */
  instances: string[];
}

export interface CheckpointResult {
  dir: string;
  scope: 'deployment' | 'instances';
  plan_digest: string;
  instances: string[];
  clones: number;
  /** How long every clone and the broker were paused, ms. */
  pause_ms: number;
  elapsed_ms: number;
  /** Size of the checkpoint's files; `ram_bytes` the guest pages, `device_state_bytes` the clones' device state. */
  bytes: number;
  ram_bytes: number;
  device_state_bytes: number;
}

export interface RestoreOptions extends BackendOptions {
  /** A restored clone must answer within this time. */
  readyTimeoutMs: number;
}

export interface RestoreResult {
  dir: string;
  plan_digest: string;
  instances: string[];
  clones: number;
  /** From the first clone's start until every restored clone answered, ms. */
  restore_ms: number;
  elapsed_ms: number;
  state: DeploymentState;
  warnings: string[];
}

/** The functions a backend module exports (checked when the CLI loads it). */
export const BACKEND_FUNCTIONS = ['apply', 'destroy', 'status', 'logs', 'doctor', 'runSupervisor'] as const satisfies readonly (keyof BackendModule)[];
