// The abstract syntax tree of a `.mcl` source file.
//
// Every node carries a `span` of UTF-16 offsets into the file's text (the
// diagnostics layer converts them to byte offsets, lines and columns). The tree
// is produced even for broken input: a node the parser could not complete is
// still present with whatever it recognised, and fields that were missing hold
// a `Missing` placeholder instead of being omitted, so later stages never have
// to guess whether a field was absent in the source or lost to an error.
//
// The tree is plain data (no classes, no parent pointers) so that it can be
// serialised to golden files and shared between the compiler, the language
// server and the formatter.

export interface Span {
  /** UTF-16 offset of the first character. */
  start: number;
  /** UTF-16 offset just past the last character. */
  end: number;
}

export interface NodeBase {
  span: Span;
}

/**
 * A name as written in source. `name` is "" when the parser recovered from a missing name.
 *
 * Where a dotted path is allowed in place of a name (an instance inside a
 * nested system in a policy rule, `farm.web`; a target from another module
 * after `deploy ... to`, `infra.big`), `name` is the whole path joined with
 * dots and `parts` holds its segments, each with its own span; `parts` is
 * absent for a plain name.
 */
export interface Ident extends NodeBase {
  kind: 'Ident';
  name: string;
  /** Written as a string (`"type"`): a field, variant or enum member whose name is a reserved word or not a name. */
  quoted?: true;
  parts?: Ident[];
}

/** `a.b.C`: a module path followed by a declaration name, or a plain name when `parts.length === 1`. */
export interface QualifiedName extends NodeBase {
  kind: 'QualifiedName';
  parts: Ident[];
}

export interface Comment {
  /** `//` line comment, `/* *\/` block comment, or `///` doc comment. */
  kind: 'line' | 'block' | 'doc';
  /** The full text including the comment markers. */
  text: string;
  span: Span;
}

// ---------------------------------------------------------------------------
// Files and imports

export interface SourceFile extends NodeBase {
  kind: 'SourceFile';
  /** Workspace-relative path with forward slashes, or `std:<module>` for the standard library. */
  path: string;
  imports: ImportDecl[];
  decls: Decl[];
  /** Every comment in the file in source order; doc comments are also attached to declarations. */
  comments: Comment[];
}

/**
 * `import std.http.{Http, Request as Req}` or `import shop.types.*`.
 * `module` holds the dotted module path (`std.http`); `items` is `'*'` for a glob import.
 */
export interface ImportDecl extends NodeBase {
  kind: 'Import';
  module: QualifiedName;
  items: ImportItem[] | '*';
}

export interface ImportItem extends NodeBase {
  kind: 'ImportItem';
  name: Ident;
  alias?: Ident;
}

/** The name an import item binds in the importing module: its alias, or else the imported name (empty when recovery left both empty). */
export function importedName(item: ImportItem): string {
  return item.alias?.name || item.name.name;
}

export type Decl =
  | TypeDecl
  | ProtocolDecl
  | ComponentDecl
  | SystemDecl
  | ImageDecl
  | LabelsDecl
  | TargetDecl
  | DeployDecl;

interface DeclBase extends NodeBase {
  /** Text of the `///` doc comments directly above the declaration, markers stripped, lines joined by "\n". */
  doc?: string;
}

// ---------------------------------------------------------------------------
// Message types

/** `type Name = <type>` */
export interface TypeDecl extends DeclBase {
  kind: 'TypeDecl';
  name: Ident;
  type: TypeExpr;
}

export type TypeExpr =
  | PrimitiveType
  | NamedType
  | ListType
  | MapType
  | RecordType
  | EnumType
  | UnionType
  | MissingType;

export type PrimitiveName = 'bool' | 'int' | 'int64' | 'float' | 'string' | 'bytes';

/** `int`, `int(0..100)`, `string(max 64, pattern "^[a-z]+$")`, `bytes(max 1MiB)` */
export interface PrimitiveType extends NodeBase {
  kind: 'PrimitiveType';
  name: PrimitiveName;
  constraints: Constraint[];
}

/** A reference to a declared type: `Request`, `std.http.Request`. */
export interface NamedType extends NodeBase {
  kind: 'NamedType';
  name: QualifiedName;
}

/** `list<T>` with optional constraints, e.g. `list<Item>(max 100)` */
export interface ListType extends NodeBase {
  kind: 'ListType';
  element: TypeExpr;
  constraints: Constraint[];
}

/** `map<K, V>` with optional constraints, e.g. `map<string(max 64), string>(max 32)` */
export interface MapType extends NodeBase {
  kind: 'MapType';
  key: TypeExpr;
  value: TypeExpr;
  constraints: Constraint[];
}

/** `{ name: string  age?: int(0..200) }` (fields separated by newlines, `,` or `;`) */
export interface RecordType extends NodeBase {
  kind: 'RecordType';
  fields: Field[];
}

export interface Field extends NodeBase {
  kind: 'Field';
  doc?: string;
  name: Ident;
  optional: boolean;
  type: TypeExpr;
}

/** `enum { GET, POST, PUT }` */
export interface EnumType extends NodeBase {
  kind: 'EnumType';
  members: Ident[];
}

/** `union { ok: Result, err: Error, empty }` (a tagged union; a variant may carry no payload) */
export interface UnionType extends NodeBase {
  kind: 'UnionType';
  variants: Variant[];
}

export interface Variant extends NodeBase {
  kind: 'Variant';
  name: Ident;
  type?: TypeExpr;
}

/** Stands where a type was required but the parser found none. */
export interface MissingType extends NodeBase {
  kind: 'MissingType';
}

/**
 * Constraints inside `( ... )` after a primitive, list or map type.
 * For `string`, `bytes`, `list` and `map` a range or max/min bounds the length
 * (bytes for strings and bytes, items for lists and maps); for `int` and `float` it bounds the value.
 */
export type Constraint = RangeConstraint | BoundConstraint | PatternConstraint;

/** `0..100`, `1..`, `..64`, `1KiB..1MiB` */
export interface RangeConstraint extends NodeBase {
  kind: 'Range';
  min?: NumberLike;
  max?: NumberLike;
}

/** `max 64`, `min 1`, `max 1MiB` */
export interface BoundConstraint extends NodeBase {
  kind: 'Bound';
  bound: 'min' | 'max';
  value: NumberLike;
}

/** `pattern "^[a-z]+$"` (ECMAScript regular expression syntax, matched against the whole value) */
export interface PatternConstraint extends NodeBase {
  kind: 'Pattern';
  pattern: StringLiteral;
}

// ---------------------------------------------------------------------------
// Expressions (parameter values, settings, properties)

export type Expr =
  | IntLiteral
  | FloatLiteral
  | StringLiteral
  | BoolLiteral
  | SizeLiteral
  | RateLiteral
  | DurationLiteral
  | ListExpr
  | MapExpr
  | RefExpr
  | MissingExpr;

export type NumberLike = IntLiteral | FloatLiteral | SizeLiteral | MissingExpr;

/** `42`, `-1`, `0x10` (value kept as written and as a number; integers are safe integers or flagged by the checker) */
export interface IntLiteral extends NodeBase {
  kind: 'Int';
  raw: string;
  value: number;
}

export interface FloatLiteral extends NodeBase {
  kind: 'Float';
  raw: string;
  value: number;
}

/** `"text"` with escapes `\" \\ \n \t \u{...}`, or `"""multi-line"""` (no escapes). `value` is the decoded text. */
export interface StringLiteral extends NodeBase {
  kind: 'String';
  raw: string;
  value: string;
}

export interface BoolLiteral extends NodeBase {
  kind: 'Bool';
  value: boolean;
}

export type SizeUnit = 'B' | 'KiB' | 'MiB' | 'GiB' | 'TiB';

/** `64KiB`, `256MiB`, `512B`; `bytes` is the value in bytes. */
export interface SizeLiteral extends NodeBase {
  kind: 'Size';
  raw: string;
  amount: number;
  unit: SizeUnit;
  bytes: number;
}

export type RateUnit = 's' | 'min' | 'h';

/** `500/s`, `30/min`, `1000/h`; `perSecond` is the normalised rate. */
export interface RateLiteral extends NodeBase {
  kind: 'Rate';
  raw: string;
  count: number;
  per: RateUnit;
  perSecond: number;
}

export type DurationUnit = 'ms' | 's' | 'min' | 'h';

/** `200ms`, `2s`, `5min`, `1h`; `ms` is the value in milliseconds. */
export interface DurationLiteral extends NodeBase {
  kind: 'Duration';
  raw: string;
  amount: number;
  unit: DurationUnit;
  ms: number;
}

/** `[a, b, c]` */
export interface ListExpr extends NodeBase {
  kind: 'List';
  items: Expr[];
}

/** `{ "key": value, other: value }` (keys are strings or bare identifiers) */
export interface MapExpr extends NodeBase {
  kind: 'Map';
  entries: MapEntry[];
}

export interface MapEntry extends NodeBase {
  kind: 'MapEntry';
  key: StringLiteral | Ident;
  value: Expr;
}

/** A name used as a value: an enum member (`GET`, `Method.GET`), an image, a backend name (`kvm`). */
export interface RefExpr extends NodeBase {
  kind: 'Ref';
  name: QualifiedName;
}

export interface MissingExpr extends NodeBase {
  kind: 'MissingExpr';
}

// ---------------------------------------------------------------------------
// Protocols

/**
 * ```
 * protocol Sql {
 *   call query(Query) -> Rows
 *   send log(Line)          // one-way, requirer -> provider
 *   notify changed(Notice)  // one-way, provider -> requirer
 *   order (query | exec)*   // optional: allowed sequences of operations, from the requirer's view
 * }
 * ```
 */
export interface ProtocolDecl extends DeclBase {
  kind: 'ProtocolDecl';
  name: Ident;
  ops: Operation[];
  order?: OrderExpr;
}

export type OperationKind = 'call' | 'send' | 'notify';

export interface Operation extends NodeBase {
  kind: 'Operation';
  doc?: string;
  opKind: OperationKind;
  name: Ident;
  /** The message type; omitted means an empty record `{}`. */
  input?: TypeExpr;
  /** Only for `call`: the response type; omitted means an empty record. */
  output?: TypeExpr;
}

/** A regular expression over operation names. */
export type OrderExpr = OrderSeq | OrderAlt | OrderRepeat | OrderOp;

export interface OrderSeq extends NodeBase {
  kind: 'OrderSeq';
  items: OrderExpr[];
}

export interface OrderAlt extends NodeBase {
  kind: 'OrderAlt';
  options: OrderExpr[];
}

export interface OrderRepeat extends NodeBase {
  kind: 'OrderRepeat';
  expr: OrderExpr;
  op: '*' | '+' | '?';
}

export interface OrderOp extends NodeBase {
  kind: 'OrderOp';
  name: Ident;
}

// ---------------------------------------------------------------------------
// Components

/**
 * ```
 * component Db {
 *   image busybox
 *   memory 256MiB
 *   vcpus 1
 *   label secret
 *   param max_conn: int(1..1000) = 100
 *   provide sql: Sql
 *   require log: Logs optional
 *   expose http: Http on tcp 8080       // sugar: provide + expose
 *   replicas 2 | per session [pool 4] [max 64] | single
 *   restart always | on-failure [max 5] | never
 *   declassifies secret -> internal
 *   program { script "db.sh"  env { MODE = "ro" } }
 * }
 * ```
 */
export interface ComponentDecl extends DeclBase {
  kind: 'ComponentDecl';
  name: Ident;
  members: ComponentMember[];
}

export type ComponentMember =
  | ImageMember
  | MemoryMember
  | VcpusMember
  | LabelMember
  | DeclassifyMember
  | ParamDecl
  | PortDecl
  | InstancesMember
  | RestartMember
  | ProgramMember;

/** `image busybox` */
export interface ImageMember extends NodeBase {
  kind: 'ImageMember';
  image: QualifiedName;
}

/** `memory 256MiB` */
export interface MemoryMember extends NodeBase {
  kind: 'MemoryMember';
  /** A name (`memory m`) is a parameter of the enclosing system, substituted per instantiation. */
  value: SizeLiteral | RefExpr | MissingExpr;
}

/** `vcpus 2` */
export interface VcpusMember extends NodeBase {
  kind: 'VcpusMember';
  value: IntLiteral | RefExpr | MissingExpr;
}

/** `label secret` */
export interface LabelMember extends NodeBase {
  kind: 'LabelMember';
  label: Ident;
}

/** `declassifies secret -> internal [on port, ...]`: on every port, or only on what leaves through the ports named. */
export interface DeclassifyMember extends NodeBase {
  kind: 'DeclassifyMember';
  from: Ident;
  to: Ident;
  ports?: Ident[];
}

/** `param name: type [= default] [sensitive]` */
export interface ParamDecl extends NodeBase {
  kind: 'ParamDecl';
  doc?: string;
  name: Ident;
  type: TypeExpr;
  default?: Expr;
  sensitive: boolean;
}

/**
 * `provide api: Http`, `require db: Sql [optional]`, or `expose http: Http on tcp 8080`
 * (which is `provide` plus an exposure of that port on a host TCP port).
 */
export interface PortDecl extends NodeBase {
  kind: 'PortDecl';
  doc?: string;
  direction: 'provide' | 'require';
  name: Ident;
  protocol: QualifiedName;
  optional: boolean;
  expose?: ExposeSpec;
  /**
   * On a factory port (`require workers: factory Worker { max 8 }`): what the
   * component may create at run time. `protocol` is then the missing name: the
   * channel's protocol is that of the created instance's port the system connects
   * the factory port to.
   */
  factory?: FactorySpec;
  /**
   * A port array (`require shards: Kv[4]`): `count` ports of the protocol,
   * elements `shards[0]`..`shards[3]` in connects, named `shards.0`..
   * `shards.3` in the plan, the broker and the guest. Required ports only.
   */
  count?: IntLiteral | MissingExpr;
}

/** An element of a port array named in a `connect` or `export`: `[2]`, or `[*]` for every element of a fan-out. */
export interface PortIndex extends NodeBase {
  kind: 'PortIndex';
  /** The element, or `*` for every element; -1 for a missing index (already reported). */
  value: number | '*';
}

/**
 * `factory Worker { max 8; param job, size; detached }`: instances of `Worker`
 * the component may create while the system runs, at most `max` at once, with
 * the listed parameters chosen at creation; `detached` ones outlive their creator.
 */
export interface FactorySpec extends NodeBase {
  kind: 'FactorySpec';
  component: QualifiedName;
  max?: IntLiteral | MissingExpr;
  params: Ident[];
  detached: boolean;
}

export interface ExposeSpec extends NodeBase {
  kind: 'ExposeSpec';
  transport: 'tcp';
  port: IntLiteral | MissingExpr;
  /**
   * `on tcp 2222 { max_connections 50; idle_timeout 10min }`: the exposure's
   * attributes, when a block is written: a channel's (`rate`, `max_message`,
   * `timeout`, `allow`, `max_inflight`) and the connection limits.
   */
  attrs?: ChannelAttr[];
}

/**
 * `single` (the default), `replicas 3`, `per session [pool 2] [max 64]`
 * (a fresh fork of the template for every session on a provided port, as Potemkin's flash cloning),
 * or, on an instance only, `created by coord.workers` (the instances a factory port creates at run time).
 */
export interface InstancesMember extends NodeBase {
  kind: 'InstancesMember';
  mode: 'single' | 'replicas' | 'per_session' | 'created';
  /** `replicas n`: a name is a parameter of the enclosing system. */
  count?: IntLiteral | RefExpr | MissingExpr;
  pool?: IntLiteral | MissingExpr;
  max?: IntLiteral | MissingExpr;
  /** For `created by`: the factory port that creates the instances. */
  creator?: PortRef;
}

/** `restart always`, `restart on-failure [max 5]`, `restart never` */
export interface RestartMember extends NodeBase {
  kind: 'RestartMember';
  policy: 'always' | 'on_failure' | 'never';
  maxRetries?: IntLiteral | MissingExpr;
}

/**
 * ```
 * program {
 *   script "web.sh"                 // a workspace file (relative to this .mcl file), run by /bin/sh
 *   exec ["/bin/httpd", "-f"]       // or an argv to execute
 *   file "/etc/app.conf" = "..."    // a file placed in the guest, inline text
 *   file "/srv/index.html" from "www/index.html"  // ... or copied from the workspace
 *   env { GREETING = "hello" }
 * }
 * ```
 * Parameters reach the program as environment variables `MCL_PARAM_<NAME>` (upper-cased).
 */
export interface ProgramMember extends NodeBase {
  kind: 'ProgramMember';
  entries: ProgramEntry[];
}

export type ProgramEntry = ScriptEntry | ExecEntry | FileEntry | EnvEntry;

export interface ScriptEntry extends NodeBase {
  kind: 'ScriptEntry';
  path: StringLiteral;
}

export interface ExecEntry extends NodeBase {
  kind: 'ExecEntry';
  argv: ListExpr;
}

export interface FileEntry extends NodeBase {
  kind: 'FileEntry';
  guestPath: StringLiteral;
  /** `= "inline text"` or `from "workspace/path"` */
  source: { kind: 'inline'; text: StringLiteral } | { kind: 'workspace'; path: StringLiteral };
}

export interface EnvEntry extends NodeBase {
  kind: 'EnvEntry';
  vars: MapExpr;
}

// ---------------------------------------------------------------------------
// Systems

/**
 * ```
 * system Shop {
 *   db = Db
 *   app = App { replicas 2; max_conn = 50 }
 *   web = Web
 *   connect web.app -> app.api { rate 500/s burst 50; max_message 64KiB; timeout 2s; allow request; max_inflight 8 }
 *   expose web.http on tcp 8080
 *   export api = web.http
 *   policy { ... }
 * }
 * ```
 * A system can be instantiated inside another system like a component; its
 * `export`ed ports are its ports there.
 */
export interface SystemDecl extends DeclBase {
  kind: 'SystemDecl';
  name: Ident;
  members: SystemMember[];
}

export type SystemMember = ParamDecl | InstanceDecl | ConnectDecl | ExposeDecl | EgressDecl | ExportDecl | PolicyBlock;

/** `name = Component` or `name = Component { settings and parameter overrides }` */
export interface InstanceDecl extends NodeBase {
  kind: 'InstanceDecl';
  doc?: string;
  name: Ident;
  component: QualifiedName;
  settings: InstanceSetting[];
}

export type InstanceSetting =
  | ParamOverride
  | InstancesMember
  | RestartMember
  | MemoryMember
  | VcpusMember
  | LabelMember;

/** `max_conn = 50` inside an instance's braces */
export interface ParamOverride extends NodeBase {
  kind: 'ParamOverride';
  name: Ident;
  value: Expr;
}

/** `instance.port` */
export interface PortRef extends NodeBase {
  kind: 'PortRef';
  instance: Ident;
  port: Ident;
  /** An element of a port array: `r.shards[2]`, `r.shards[*]`. */
  index?: PortIndex;
}

/**
 * `connect a.req -> b.prov { attrs }`: from a `require` port to a `provide` port.
 * A fan-out `connect r.shards[*] -> [s0.kv, s1.kv]` connects element i of
 * the array to the i-th port of the list: `to` is the list's first port (so
 * tools reading one end of a connect see a real port, and every node is
 * visited once) and `fanout` the ports after it; `fanout` is present exactly
 * when the right-hand side is a list.
 */
export interface ConnectDecl extends NodeBase {
  kind: 'ConnectDecl';
  from: PortRef;
  /** The provided port the channel goes to first (with `candidates`, the first candidate). */
  to: PortRef;
  fanout?: PortRef[];
  /**
   * Late binding, `connect a.db -> x.sql | y.sql`: the candidates after `to`,
   * in source order, to which the requirer may move its channel at run time
   * (spec/factories.md). Absent for an ordinary connection.
   */
  candidates?: PortRef[];
  attrs: ChannelAttr[];
}

export type ChannelAttr = RateAttr | MaxMessageAttr | TimeoutAttr | AllowAttr | MaxInflightAttr | DeclassifyAttr | QueryAttr | ConnectionAttr;

/**
 * A limit on the TCP connections of an exposure (parsed in channel blocks
 * too, where the compiler refuses it): `max_connections 100`,
 * `connection_rate 10/s [burst 5]` (new connections), `bandwidth 1MiB`
 * (bytes a second from each client), `idle_timeout 5min`.
 */
export interface ConnectionAttr extends NodeBase {
  kind: 'ConnectionAttr';
  name: 'max_connections' | 'connection_rate' | 'bandwidth' | 'idle_timeout';
  value: IntLiteral | RateLiteral | SizeLiteral | DurationLiteral | MissingExpr;
  burst?: IntLiteral | MissingExpr;
}

/** `rate 500/s [burst 50]` */
export interface RateAttr extends NodeBase {
  kind: 'RateAttr';
  /** A name (`rate r`) is a parameter of the enclosing system. */
  rate: RateLiteral | RefExpr | MissingExpr;
  burst?: IntLiteral | MissingExpr;
}

/** `max_message 64KiB` */
export interface MaxMessageAttr extends NodeBase {
  kind: 'MaxMessageAttr';
  size: SizeLiteral | MissingExpr;
}

/** `timeout 2s` */
export interface TimeoutAttr extends NodeBase {
  kind: 'TimeoutAttr';
  duration: DurationLiteral | MissingExpr;
}

/** `allow query, exec`: the subset of the protocol's operations this channel carries. */
export interface AllowAttr extends NodeBase {
  kind: 'AllowAttr';
  ops: Ident[];
}

/** `declassifies secret -> internal` on a channel: data labelled `secret` that this channel delivers (either way) arrives as `internal`. */
export interface DeclassifyAttr extends NodeBase {
  kind: 'DeclassifyAttr';
  from: Ident;
  to: Ident;
}

/** `query`: the requests on this channel carry no data of the requiring side (only responses flow, spec/policy.md). */
export interface QueryAttr extends NodeBase {
  kind: 'QueryAttr';
}

/** `max_inflight 8`: outstanding calls at most. */
export interface MaxInflightAttr extends NodeBase {
  kind: 'MaxInflightAttr';
  count: IntLiteral | MissingExpr;
}

/** `expose web.http on tcp 8080` */
export interface ExposeDecl extends NodeBase {
  kind: 'ExposeDecl';
  port: PortRef;
  spec: ExposeSpec;
}

/**
 * `egress mail: relay.smtp -> "tcp://smtp.example.com:25" { max_connections 4 }`: a required port whose
 * traffic leaves the system for an address outside it, through the broker (spec/syntax.md, "Egress").
 * The block takes a channel's attributes, an exposure's connection limits and `label`, the label of the
 * destination (the bottom label when absent).
 */
export interface EgressDecl extends NodeBase {
  kind: 'EgressDecl';
  name: Ident;
  port: PortRef;
  /** The destination as written: `tcp://host:port`, `http://host[:port][/path]` or `https://...`. */
  destination: StringLiteral | MissingExpr;
  /** The attribute block's entries in source order. */
  attrs: EgressAttr[];
}

export type EgressAttr = ChannelAttr | LabelMember;

/** `export api = web.http`: makes an inner port a port of the system. */
export interface ExportDecl extends NodeBase {
  kind: 'ExportDecl';
  name: Ident;
  port: PortRef;
}

/** `policy { rules }` */
export interface PolicyBlock extends NodeBase {
  kind: 'PolicyBlock';
  rules: PolicyRule[];
}

export type PolicyRule =
  | OnlyRule
  | NoPathRule
  | ExposedOnlyRule
  | EgressOnlyRule
  | NoFlowRule
  | BudgetRule
  | ApartRule
  | LabelOnRule;

/**
 * `db only from app, admin`: every channel into `db` comes from one of the listed instances.
 * `db only through app`: every path into `db` (from any other instance or from outside) passes through one of them.
 * `app only to db, log`: every channel out of `app` (or out of the instances labelled `app` or above, when `app`
 * names a label) goes to one of them.
 */
export interface OnlyRule extends NodeBase {
  kind: 'OnlyRule';
  target: Ident;
  mode: 'from' | 'through' | 'to';
  sources: Ident[];
}

/** `no path web -> db`: no chain of channels leads from `web` to `db`. `outside` names the exposures. */
export interface NoPathRule extends NodeBase {
  kind: 'NoPathRule';
  from: Ident;
  to: Ident;
}

/** `exposed only [web.http]` (or `exposed only []`): the allow-list of exposures. */
export interface ExposedOnlyRule extends NodeBase {
  kind: 'ExposedOnlyRule';
  ports: PortRef[];
}

/** `egress only [mail, pay]` (or `egress only []`): the allow-list of the system's egresses, by name. */
export interface EgressOnlyRule extends NodeBase {
  kind: 'EgressOnlyRule';
  names: Ident[];
}

/** `no flow secret -> web`: no data labelled `secret` (after declassification) reaches instance `web`. */
export interface NoFlowRule extends NodeBase {
  kind: 'NoFlowRule';
  label: Ident;
  to: Ident;
}

/** `budget memory 1GiB` / `budget vcpus 4`: this system's committed resources stay within the budget. */
export interface BudgetRule extends NodeBase {
  kind: 'BudgetRule';
  resource: 'memory' | 'vcpus';
  /** A name (`budget memory quota`) is a parameter of the enclosing system. */
  value: SizeLiteral | IntLiteral | RefExpr | MissingExpr;
}

/** `apart web, db`: no two of the named instances (or systems) run on the same host. */
export interface ApartRule extends NodeBase {
  kind: 'ApartRule';
  instances: Ident[];
}

/** `label secret only on [node1, node2]`: instances labelled `secret` run only on the named targets. */
export interface LabelOnRule extends NodeBase {
  kind: 'LabelOnRule';
  label: Ident;
  targets: Ident[];
}

// ---------------------------------------------------------------------------
// Images, labels, targets, deploy

/**
 * `image busybox { base "busybox-static"  kernel "debian-cloud"  modules ["virtio_console"] }`:
 * a base image a backend builds. Properties are checked by the compiler against the known keys.
 */
export interface ImageDecl extends DeclBase {
  kind: 'ImageDecl';
  name: Ident;
  props: Property[];
}

/** `key value` inside image and target blocks. */
export interface Property extends NodeBase {
  kind: 'Property';
  key: Ident;
  value: Expr;
}

/** `labels { public < internal < secret; public < org_a }`: chains of the information-flow order. */
export interface LabelsDecl extends DeclBase {
  kind: 'LabelsDecl';
  chains: Ident[][];
}

/** `target local { backend kvm  memory 8GiB  vcpus 2  overcommit 4 }` */
export interface TargetDecl extends DeclBase {
  kind: 'TargetDecl';
  name: Ident;
  props: Property[];
}

/**
 * `deploy Shop to local`: the root system of a plan and its target.
 * `deploy Shop to [node1, node2] { place db on node1 }`: several targets (`target` is the first,
 * `targets` all of them in order) and instances or systems pinned to one of them.
 */
export interface DeployDecl extends DeclBase {
  kind: 'DeployDecl';
  system: QualifiedName;
  /** `to node1`; absent when the targets are written as a list. */
  target?: Ident;
  /** Present when the targets are written as a list (`to [a, b]`), even of one (then `target` is absent). */
  targets?: Ident[];
  /** `place NAME on TARGET` lines of the deploy's block, in source order. */
  placements?: Placement[];
}

/** `place db on node1`: the instance (or every instance of the system) `db` runs on target `node1`. */
export interface Placement extends NodeBase {
  kind: 'Placement';
  instance: Ident;
  target: Ident;
}

/** Every node kind, for exhaustive visitors. */
export type Node =
  | SourceFile
  | ImportDecl
  | ImportItem
  | Decl
  | TypeExpr
  | Field
  | Variant
  | Constraint
  | Expr
  | MapEntry
  | Operation
  | OrderExpr
  | ComponentMember
  | ExposeSpec
  | FactorySpec
  | ProgramEntry
  | SystemMember
  | InstanceSetting
  | PortRef
  | PortIndex
  | ChannelAttr
  | PolicyRule
  | Placement
  | Property
  | Ident
  | QualifiedName;
