// The deployment plan: the contract between the compiler and the backends.
//
// A plan is a self-describing JSON document. It is deterministic (the same
// sources give a byte-identical plan), versioned by `format_version`
// (major.minor: a minor bump only adds optional fields; a reader rejects an
// unknown major), and carries digests of what it was computed from, so a
// backend can refuse a plan that no longer matches its state.
//
// Backends and the broker depend on this package only, never on the language.
// The JSON Schema in spec/plan.schema.json describes the same shape and a test
// keeps the two in step.
//
// Naming: JSON fields use snake_case, as in Terraform's machine-readable output.

/**
 * The newest plan format this code reads and writes.
 * 1.1 added `policies` (the rules the checks were computed from, so `apply` can check them again).
 * 1.2 added the `kubevirt` backend and its target settings (`target.namespace`, `target.context`, `target.registry`).
 * The compiler writes the lowest version that describes a plan (`planFormatVersion`): a plan for
 * the KVM backend stays 1.1, byte for byte what an mclc before 1.2 wrote, so that older readers
 * keep reading it; only a kubevirt plan says 1.2, which an older mclc then rejects by its
 * backend name instead of tripping over fields it does not know.
 */
export const PLAN_FORMAT_VERSION = '1.2';

/** The format version a plan with this target is written in (see PLAN_FORMAT_VERSION). */
export function planFormatVersion(target: PlanTarget): string {
  return target.backend === 'kubevirt' || target.namespace !== undefined || target.context !== undefined || target.registry !== undefined ? '1.2' : '1.1';
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export type BackendName = 'kvm' | 'xen' | 'kubevirt';

export interface Plan {
  format_version: string;
  /** Version of mclc that produced the plan. */
  mclc_version: string;
  /** Qualified name of the root system, e.g. `Shop` or `shop.Shop` for a system in module `shop`. */
  system: string;
  target: PlanTarget;
  /**
   * A deploy to several targets (`deploy S to [a, b]`): every target, in deploy order (the first is
   * `target`); each instance names the one it is placed on (`instances[].target`). Absent for a deploy
   * to one target, so such plans stay byte for byte what they were (spec/hosts.md, "Placement").
   */
  targets?: PlanTarget[];
  /** sha256 digests: of the sources (all files read, in path order), of the checked invariants, and of the plan body. */
  digests: PlanDigests;
  /** Every source file the plan was computed from, sorted by path. */
  sources: PlanSource[];
  /** Base images the backend must build (kernel + initramfs), sorted by name. */
  images: PlanImage[];
  /** One template per distinct (image, memory, vcpus, device layout), sorted by id. */
  templates: PlanTemplate[];
  /** Logical instances, sorted by id. A replicated instance is one entry with `replicas > 1`. */
  instances: PlanInstance[];
  /** Channels between a `require` port and a `provide` port, sorted by id. */
  channels: PlanChannel[];
  /** Host TCP ports relayed into provided ports, sorted by host port. */
  exposures: PlanExposure[];
  /**
   * Required ports whose traffic leaves for an address outside the deployment, through the broker
   * (`egress` in a system), sorted by name; absent when there are none.
   */
  egresses?: PlanEgress[];
  /** Compiled message schemas, by qualified type name (sorted keys). */
  schemas: Record<string, MessageSchema>;
  /** Result of every static check, sorted by id. */
  checks: PlanCheck[];
  /** Static resource estimate for the target host. */
  resources: PlanResources;
  /**
   * The policy rules and label order `checks` were computed from, so that
   * `mclc apply` can run the checks again over the plan's own instances,
   * channels and exposures (format 1.1; absent in 1.0 plans).
   */
  policies?: PlanPolicies;
  /**
   * The deployment state the plan was computed against (`mclc plan --state`), or null.
   * `apply` refuses the plan when the state's lineage or serial has changed since.
   */
  prior_state: { lineage: string; serial: number } | null;
  /**
   * A plan over several targets: the state of each target's deployment it was computed against
   * (null: none), by target name, so that it is stale when any of them moved on. Optional.
   */
  prior_states?: Record<string, { lineage: string; serial: number } | null>;
  /**
   * Only in the part of a plan over several targets that one host applies (`planPart`), when some
   * of its channels cross to another target: the instances at the far ends of those channels, as
   * the whole plan has them, each with its `target`. The host's broker and link use them (ports,
   * types, placement); the backend does not start, diff, record or report them. Optional.
   */
  remote_instances?: PlanInstance[];
}

export interface PlanTarget {
  name: string;
  backend: BackendName;
  /** Host capacity the plan was checked against. */
  memory_bytes: number;
  vcpus: number;
  /** vCPU overcommit factor allowed (committed vcpus <= vcpus * overcommit). */
  vcpu_overcommit: number;
  /** kubevirt (format 1.2): the Kubernetes namespace the deployment lives in; required for that backend. */
  namespace?: string;
  /** kubevirt (format 1.2): the kubeconfig context to use; absent means the kubeconfig's current context. */
  context?: string;
  /** kubevirt (format 1.2): the container registry (and path) guest and broker images are pulled from. */
  registry?: string;
  /**
   * kvm, xen: the host the deployment runs on, reached over SSH (`ssh://[user@]host[:port][/path]`,
   * see host.ts); absent means the machine `mclc apply` runs on. Optional, so format 1.1 and 1.2 plans may carry it.
   */
  host?: string;
  /**
   * kvm: where the target's link between hosts is reached (`host:port`, `[ipv6]:port`, or `:port` for
   * its SSH host's address; see host.ts parseLinkAddress); absent means its SSH host's address and the
   * port `mclc apply` uses for every link (7411, or `MCL_LINK_PORT`).
   */
  link?: string;
}

export interface PlanDigests {
  /** sha256 over the sorted (path, content) pairs of `sources`. */
  sources: string;
  /** sha256 over the canonical JSON of `checks` and of every channel's `invariants`. */
  invariants: string;
  /** sha256 over the canonical JSON of the plan with `digests.plan` set to "". */
  plan: string;
}

export interface PlanSource {
  /** Workspace-relative path, or `std:<module>`. */
  path: string;
  sha256: string;
}

export interface PlanImage {
  name: string;
  /** What the initramfs is built from; `busybox-static` is the only base today. */
  base: 'busybox-static';
  /** Kernel selector: `debian-cloud` (the distribution's cloud kernel) or an absolute path on the host. */
  kernel: string;
  /** Kernel modules the initramfs loads, in load order. */
  modules: string[];
  /** Extra files baked into the image (rare: most programs come per instance). */
  files: PlanFile[];
  /** sha256 of this entry's canonical JSON: the build cache key. */
  digest: string;
}

export interface PlanTemplate {
  /** Stable id derived from the fields below, e.g. `busybox-256m-1c-4p`. */
  id: string;
  image: string;
  memory_bytes: number;
  vcpus: number;
  /** Number of virtio-serial ports every clone of this template gets (the device layout must match exactly across a fork). */
  port_slots: number;
  /** How many instances fork from it (for the memory estimate). */
  instance_count: number;
}

/** `created`: instances a factory port of another instance creates at run time (none at deploy). */
export type InstanceMode = 'single' | 'replicas' | 'per_session' | 'created';

export interface PlanInstance {
  /** Dotted path from the root system, e.g. `app` or `shop.app` for nested systems. */
  id: string;
  /** Qualified name of the component it instantiates. */
  component: string;
  template: string;
  memory_bytes: number;
  vcpus: number;
  mode: InstanceMode;
  /** Number of clones for `replicas`; 1 for `single`; the warm pool size for `per_session`. */
  replicas: number;
  /** For `per_session`: the most concurrent sessions (and clones). */
  max_sessions?: number;
  /** For `created`: the factory port that creates the instances and what it may choose (format 1.x, optional). */
  created_by?: PlanCreatedBy;
  /** For `created`: the most clones alive at once, every clone of the creator at its factory's bound. */
  max_instances?: number;
  restart: { policy: 'always' | 'on_failure' | 'never'; max_retries: number };
  /** Information-flow label, if any. */
  label?: string;
  /**
   * Labels this instance may declassify: data with `from` leaves it as `to`;
   * with `ports`, only what leaves through those ports (sorted names).
   */
  declassifies: { from: string; to: string; ports?: string[] }[];
  /** Resolved parameter values (defaults applied, overrides merged). Sensitive values are included here and redacted in `redacted`. */
  params: Record<string, JsonValue>;
  /** Names of parameters marked `sensitive`; their values are never printed by the CLI. */
  sensitive_params: string[];
  program: PlanProgram;
  /** Ports in declaration order; `slot` is the virtio-serial port index (0 is the control port, so slots start at 1). */
  ports: PlanPort[];
  /** sha256 of this entry's canonical JSON without `digest`; a change means the instance must be replaced. */
  digest: string;
  /** The target (by name, one of the plan's `targets`) the instance runs on; only in a plan with `targets`. */
  target?: string;
}

export interface PlanCreatedBy {
  /** Instance id of the creator. */
  instance: string;
  /** The creator's factory port. */
  port: string;
  /** The most instances one clone of the creator may have alive at once. */
  max: number;
  /** Parameters the creator chooses at creation, by name (sorted), with the schema of their declared types the broker checks them against. */
  params: Record<string, MessageSchema>;
  /** Created instances outlive their creator (otherwise they are destroyed with it). */
  detached: boolean;
}

export interface PlanProgram {
  /** argv to execute in the guest. A `script` becomes `["/bin/sh", "/mcl/program/<name>"]`. */
  argv: string[];
  env: Record<string, string>;
  files: PlanFile[];
}

export interface PlanFile {
  /** Absolute path in the guest. */
  path: string;
  /** File content, UTF-8 text. */
  content: string;
  /** Octal permission string such as "0755". */
  mode: string;
}

export interface PlanPort {
  name: string;
  direction: 'provide' | 'require';
  /** Qualified protocol name. */
  protocol: string;
  slot: number;
  /** Channels on this port (a provide port may serve several; a require port has at most one). */
  channels: string[];
  /** Host TCP port if this provided port is exposed. */
  exposed_on?: number;
  /** The egress (its name in `Plan.egresses`) this required port's traffic leaves through, if any. */
  egress?: string;
}

export interface PlanEndpoint {
  instance: string;
  port: string;
}

export interface PlanChannel {
  /** `<from.instance>.<from.port>-><to.instance>.<to.port>` */
  id: string;
  /** The requiring side (sends requests). */
  from: PlanEndpoint;
  /** The providing side (serves requests). */
  to: PlanEndpoint;
  protocol: string;
  /** The operations this channel carries, after `allow` filtering, sorted by name. */
  ops: PlanOperation[];
  invariants: ChannelInvariants;
  /** The channel's own declassifications: data labelled `from` it delivers (either way) arrives as `to`. */
  declassifies?: { from: string; to: string }[];
  /** `query`: the requests carry no data of the requiring side; only responses and notifications flow. */
  query?: true;
  /**
   * Late binding (`connect a.db -> x.sql | y.sql`): present on every candidate channel of the
   * requiring port (the port lists them all); `initial` on the one it is bound to at deploy. The
   * requirer moves its channel to another candidate with a `rebind` frame (spec/factories.md).
   */
  candidate?: { initial: boolean };
}

export interface PlanOperation {
  name: string;
  kind: 'call' | 'send' | 'notify';
  /** Schema name (key of `plan.schemas`) of the message from the sender. */
  input: string;
  /** For `call`: schema name of the response. */
  output?: string;
}

export interface ChannelInvariants {
  /** Largest frame payload in bytes (the encoded message body), default 1 MiB. */
  max_message_bytes: number;
  /** Token bucket on frames from the requiring side; null when unlimited. */
  rate: { per_second: number; burst: number } | null;
  /** A call with no response within this time is failed by the broker; default 30 s. */
  timeout_ms: number;
  /** Outstanding calls at most, default 64. */
  max_inflight: number;
  /**
   * Allowed order of operations as a DFA over operation names (from the requiring side's view),
   * or null when any order is allowed. State 0 is the start state.
   */
  order: OrderAutomaton | null;
}

export interface OrderAutomaton {
  /** transitions[state][op] = next state */
  transitions: Record<string, number>[];
  accepting: number[];
}

export interface PlanExposure {
  host_port: number;
  transport: 'tcp';
  instance: string;
  port: string;
  protocol: string;
  /**
   * Every operation of the protocol, sorted by name, as a channel carries them: each TCP connection is
   * a requiring side of its own, and the broker checks its frames exactly as a channel's.
   */
  ops: PlanOperation[];
  /**
   * As a channel's: the exposure's attributes (`on tcp N { rate ...; max_message ... }`) or the defaults,
   * and the protocol's order automaton (per connection).
   */
  invariants: ChannelInvariants;
  /** Limits on the exposure's TCP connections, when its attributes set any (absent: the broker's defaults). */
  connections?: ExposureConnections;
}

/**
 * An egress: the broker opens the connections to `destination` itself (guests have no network
 * device) and checks every frame of the required port as a channel's, with `ops` and `invariants`.
 */
export interface PlanEgress {
  /** The egress's name, with the instance-id prefix of the system that declared it (`mail`, `shop.mail`). */
  name: string;
  /** The required port whose traffic leaves. */
  instance: string;
  port: string;
  /** The port's protocol; `kind` says how the broker carries it. */
  protocol: string;
  /** `tcp`: a byte stream (std.tcp.Stream frames); `http`: HTTP requests (std.http.Http calls). */
  kind: 'tcp' | 'http';
  destination: PlanEgressDestination;
  /** The destination's label, when the egress declares one (else the bottom label). */
  label?: string;
  /** Every operation of the protocol (or those `allow` keeps), sorted by name. */
  ops: PlanOperation[];
  invariants: ChannelInvariants;
  /** Limits on the connections the broker opens, when the egress sets any. */
  connections?: ExposureConnections;
}

export interface PlanEgressDestination {
  scheme: 'tcp' | 'http' | 'https';
  /** A DNS name (lower case), an IPv4 address, or an IPv6 address (without brackets). */
  host: string;
  port: number;
  /** HTTP only: the path every request's path must start with (`/` when none is written). */
  path?: string;
}

/** Limits on the TCP connections of one exposure; each field is present only when set. */
export interface ExposureConnections {
  /** Connections open at once at most: one more is refused (closed on arrival). */
  max?: number;
  /** New connections (token bucket): one over it is refused (closed on arrival). */
  rate?: { per_second: number; burst: number };
  /** Bytes a second the broker reads from each connection's client; past it, it stops reading until the budget refills. */
  bytes_per_second?: number;
  /** A connection with nothing outstanding and no bytes either way for this long is closed. */
  idle_timeout_ms?: number;
}

export type CheckStatus = 'pass' | 'fail' | 'warn';

export interface PlanCheck {
  /** Stable id such as `reach:db-only-from:app` or `flow:lattice`. */
  id: string;
  kind: 'reachability' | 'exposure' | 'flow' | 'resources' | 'call-cycles' | 'wiring' | 'capability' | 'placement';
  status: CheckStatus;
  /** One line a person can read. */
  summary: string;
  /** For a failure: the chain of instances and channels that breaks the invariant. */
  counterexample?: { instance?: string; channel?: string; note?: string }[];
}

export interface PlanPolicies {
  /** Every `policy` rule of the deployed system and the systems in it, in the order the checker runs them. */
  rules: PlanPolicyRule[];
  /** The declared labels (sorted) and `lower < higher` pairs (not closed transitively). */
  labels: { labels: string[]; edges: [string, string][] };
}

/**
 * A policy rule as written, with `scope`, the instance-id prefix of the
 * system that wrote it ("" for the root system): a name `x` in the rule means
 * the instance `scope.x` (spec/policy.md).
 */
export type PlanPolicyRule =
  | { kind: 'only'; scope: string; mode: 'from' | 'through' | 'to'; target: string; sources: string[] }
  | { kind: 'no_path'; scope: string; from: string; to: string }
  | { kind: 'exposed_only'; scope: string; ports: { instance: string; port: string }[] }
  | { kind: 'egress_only'; scope: string; names: string[] }
  | { kind: 'no_flow'; scope: string; label: string; to: string }
  | { kind: 'budget'; scope: string; resource: 'memory' | 'vcpus'; value: number; raw: string }
  | { kind: 'apart'; scope: string; instances: string[] }
  | { kind: 'label_on'; scope: string; label: string; targets: string[] };

export interface PlanResources {
  /** Sum of template memory (each counted once: the shared, copy-on-write base). */
  template_memory_bytes: number;
  /** Estimated private memory of all clones (dirty pages; see spec/policy.md). */
  estimated_private_bytes: number;
  /** template + estimated private: what the check compares with the host. */
  estimated_total_bytes: number;
  /** Every clone fully dirtied: the worst case, reported beside the estimate. */
  worst_case_bytes: number;
  committed_vcpus: number;
}

// ---------------------------------------------------------------------------
// Message schemas, compiled from `.mcl` types for the broker to check frames.
// Messages travel as JSON; `bytes` values are base64 strings and their size
// bounds apply to the decoded length.

export type MessageSchema =
  | { kind: 'bool' }
  | { kind: 'int'; min?: number; max?: number }
  /** A 64-bit integer: a decimal string on the wire, or a JSON number when exact (see int64.ts); bounds are exact numbers. */
  | { kind: 'int64'; min?: number; max?: number }
  | { kind: 'float'; min?: number; max?: number }
  | { kind: 'string'; min_len?: number; max_len?: number; pattern?: string }
  | { kind: 'bytes'; min_len?: number; max_len?: number }
  | { kind: 'list'; element: MessageSchema; min_items?: number; max_items?: number }
  | { kind: 'map'; key: MessageSchema; value: MessageSchema; min_entries?: number; max_entries?: number }
  | { kind: 'record'; fields: { name: string; optional: boolean; type: MessageSchema }[] }
  | { kind: 'enum'; members: string[] }
  | { kind: 'union'; variants: { name: string; type?: MessageSchema }[] }
  | { kind: 'ref'; name: string };

// ---------------------------------------------------------------------------
// Deployment state, written by a backend after apply.

export const STATE_FORMAT_VERSION = '1.0';

export interface DeploymentState {
  format_version: string;
  /** UUID fixed at the first apply of a deployment. */
  lineage: string;
  /** Incremented by every apply or destroy that changed something. */
  serial: number;
  backend: BackendName;
  /** Digest of the plan last applied (digests.plan), or null after destroy. */
  plan_digest: string | null;
  system: string | null;
  /** The applied plan's instances, channels and exposures, for diffing the next plan. */
  instances: PlanInstance[];
  channels: PlanChannel[];
  exposures: PlanExposure[];
  /**
   * Clones that `mclc migrate` moved from this host to another target of the deployment, while
   * the plan's placement still names this one: the next `mclc plan` shows each as drift
   * ("moved: node1 -> node2, by mclc migrate") instead of planning to move it back. Absent when none.
   */
  moved?: { instance: string; clone: number; to: string; at: string }[];
  /** Backend-private data (process ids, paths); never read by the compiler. */
  backend_data?: JsonValue;
}
