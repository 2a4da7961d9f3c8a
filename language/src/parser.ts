// The grammar of `.mcl`, as a Chevrotain embedded-actions parser that builds
// the AST of ast.ts directly (no concrete syntax tree in between).
//
// Recovery works on three levels:
//  1. Chevrotain's in-rule recovery inserts or deletes a single token (a
//     missing `:` or `}`, a stray `,`); brackets and declaration keywords are
//     never deleted (`canTokenTypeBeDeletedInRecovery`).
//  2. A failing rule stops as soon as the next token can follow it (at the end
//     of the input every rule stops), returning
//     the node it registered when it started, with `Missing*` placeholders in
//     the required fields it never reached. After a member fails, the rest of
//     its line is skipped (see LINE_RULES), so one mistake gives one message.
//  3. Every block has an alternative that swallows tokens which cannot start a
//     member of that block (the `Stray*` token categories), reports them once,
//     and lets the block continue at the next member.
//
// Rules read the results of sub-rules only through helpers that tolerate the
// grammar-recording phase, in which Chevrotain runs every rule once with dummy
// tokens and placeholder sub-rule results.

import {
  EmbeddedActionsParser,
  EOF,
  LLkLookaheadStrategy,
  tokenMatcher,
  type ILookaheadStrategy,
  type IOrAlt,
  type IParserErrorMessageProvider,
  type IToken,
  type ParserMethod,
  type TokenType,
} from 'chevrotain';
import type * as A from './ast';
import * as B from './build';
import { Codes } from './codes';
import type { Diagnostic, DiagnosticInfo, Fix } from './diagnostics';
import { describeToken, type Token } from './lexer';
import * as T from './tokens';

const { K } = T;

// The literal kinds settings accept (`memory` takes a size, ...).
const KIND_INT: 'Int'[] = ['Int'];
const KIND_SIZE: 'Size'[] = ['Size'];
const KIND_DURATION: 'Duration'[] = ['Duration'];
const KIND_RATE: 'Rate'[] = ['Rate'];

// The options of DSL calls that say what was expected, phrased for messages
// (parse.ts builds the sentence around them). They are allocated once, not on
// every call, and named for the place in the grammar they describe.

/** A missing name, by the place a name is expected. */
const NAME = {
  afterDot: { ERR_MSG: 'a name after `.`' },
  instance: { ERR_MSG: 'an instance name' },
  port: { ERR_MSG: 'a port name' },
  modulePath: { ERR_MSG: 'a module path' },
  moduleAfterDot: { ERR_MSG: 'a module name after `.`' },
  imported: { ERR_MSG: 'a declaration name to import' },
  alias: { ERR_MSG: 'a new name after `as`' },
  type: { ERR_MSG: 'a type name' },
  field: { ERR_MSG: 'a field name' },
  enumMember: { ERR_MSG: 'an enum member' },
  variant: { ERR_MSG: 'a variant name' },
  key: { ERR_MSG: 'a key' },
  protocol: { ERR_MSG: 'a protocol name' },
  operation: { ERR_MSG: 'an operation name' },
  component: { ERR_MSG: 'a component name' },
  label: { ERR_MSG: 'a label name' },
  param: { ERR_MSG: 'a parameter name' },
  system: { ERR_MSG: 'a system name' },
  exportedPort: { ERR_MSG: 'the name of the exported port' },
  egress: { ERR_MSG: 'the name of the egress' },
  ruleInstance: { ERR_MSG: 'an instance name (or `outside`)' },
  image: { ERR_MSG: 'an image name' },
  target: { ERR_MSG: 'a target name' },
  property: { ERR_MSG: 'a property name' },
  labelAfterLt: { ERR_MSG: 'a label name after `<`' },
};

/** A missing part read by a sub-rule, by what the part is. */
const ARG = {
  instance: { ARGS: ['an instance name'] as [string] },
  ruleInstance: { ARGS: ['an instance name (or `outside`)'] as [string] },
  target: { ARGS: ['a target name'] as [string] },
  type: { ARGS: ['a type'] as [string] },
  protocol: { ARGS: ['a protocol name'] as [string] },
  image: { ARGS: ['an image name'] as [string] },
  size: { ARGS: ['a size such as `256MiB`'] as [string] },
  integer: { ARGS: ['an integer'] as [string] },
  defaultValue: { ARGS: ['a default value'] as [string] },
  tcpPort: { ARGS: ['a TCP port number'] as [string] },
  replicas: { ARGS: ['the number of replicas'] as [string] },
  warmClones: { ARGS: ['the number of warm clones'] as [string] },
  maxSessions: { ARGS: ['the maximum number of sessions'] as [string] },
  factoryMax: { ARGS: ['the most instances the factory may create'] as [string] },
  createdComponent: { ARGS: ['the component the factory creates'] as [string] },
  restarts: { ARGS: ['the number of restarts'] as [string] },
  componentOrSystem: { ARGS: ['a component or system name'] as [string] },
  rate: { ARGS: ['a rate such as `500/s`'] as [string] },
  duration: { ARGS: ['a duration such as `2s`'] as [string] },
  propertyValue: { ARGS: ['a value for the property'] as [string] },
  deployedSystem: { ARGS: ['the name of the system to deploy'] as [string] },
  egress: { ARGS: ['the name of an egress'] as [string] },
};

/** A missing token, by where it belongs. */
const EXPECT = {
  portAfterDot: { ERR_MSG: '`.` and a port name (`instance.port`)' },
  portIndexClose: { ERR_MSG: '`]` to close the element index (`shards[2]`)' },
  portListClose: { ERR_MSG: '`]` to close the list of ports' },
  importsClose: { ERR_MSG: '`}` to close the import list' },
  typeEquals: { ERR_MSG: '`=` and the type' },
  listOpen: { ERR_MSG: '`<` and the element type (`list<T>`)' },
  listClose: { ERR_MSG: '`>` to close `list<...>`' },
  mapOpen: { ERR_MSG: '`<` and the key and value types (`map<K, V>`)' },
  mapComma: { ERR_MSG: '`,` and the value type (`map<K, V>`)' },
  mapClose: { ERR_MSG: '`>` to close `map<...>`' },
  constraintsClose: { ERR_MSG: '`)` to close the constraints' },
  pattern: { ERR_MSG: 'a regular expression in a string' },
  recordClose: { ERR_MSG: '`}` to close the record' },
  fieldColon: { ERR_MSG: '`:` and the field type' },
  enumOpen: { ERR_MSG: '`{` and the enum members' },
  enumClose: { ERR_MSG: '`}` to close the enum' },
  unionOpen: { ERR_MSG: '`{` and the union variants' },
  unionClose: { ERR_MSG: '`}` to close the union' },
  listValueClose: { ERR_MSG: '`]` to close the list' },
  mapValueClose: { ERR_MSG: '`}` to close the map' },
  protocolOpen: { ERR_MSG: '`{` and the operations' },
  protocolClose: { ERR_MSG: '`}` to close the protocol' },
  messageTypeClose: { ERR_MSG: '`)` after the message type' },
  groupClose: { ERR_MSG: '`)` to close the group' },
  componentOpen: { ERR_MSG: '`{` and the component members' },
  componentClose: { ERR_MSG: '`}` to close the component' },
  declassifiesArrow: { ERR_MSG: '`->` and the label it declassifies to' },
  paramColon: { ERR_MSG: '`:` and the parameter type' },
  portColon: { ERR_MSG: '`:` and the protocol of the port' },
  tcp: { ERR_MSG: '`tcp`' },
  session: { ERR_MSG: '`session`' },
  createdBy: { ERR_MSG: '`by` and the factory port (`created by coord.workers`)' },
  factoryClose: { ERR_MSG: '`}` to close the factory settings' },
  programOpen: { ERR_MSG: '`{` and the program entries' },
  programClose: { ERR_MSG: '`}` to close the program' },
  scriptPath: { ERR_MSG: 'the script path as a string' },
  guestPath: { ERR_MSG: 'the guest path as a string' },
  fileContents: { ERR_MSG: 'the file contents as a string' },
  workspacePath: { ERR_MSG: 'a workspace path as a string' },
  systemOpen: { ERR_MSG: '`{` and the system members' },
  systemClose: { ERR_MSG: '`}` to close the system' },
  instanceEquals: { ERR_MSG: '`=` and the component to instantiate' },
  settingsClose: { ERR_MSG: '`}` to close the instance settings' },
  overrideEquals: { ERR_MSG: '`=` and the parameter value' },
  connectArrow: { ERR_MSG: '`->` and the providing port' },
  channelClose: { ERR_MSG: '`}` to close the channel attributes' },
  exposureClose: { ERR_MSG: '`}` to close the exposure attributes' },
  exportEquals: { ERR_MSG: '`=` and the inner port (`instance.port`)' },
  policyOpen: { ERR_MSG: '`{` and the policy rules' },
  policyClose: { ERR_MSG: '`}` to close the policy' },
  targetsClose: { ERR_MSG: '`]` to close the list of targets' },
  hostsOpen: { ERR_MSG: '`[` and the targets (`only on [node1]`)' },
  placeOn: { ERR_MSG: '`on` and the target (`place db on node1`)' },
  labelOnlyOn: { ERR_MSG: '`only on` and the targets (`label secret only on [node1]`)' },
  deployClose: { ERR_MSG: '`}` to close the placements' },
  only: { ERR_MSG: '`only`' },
  pathArrow: { ERR_MSG: '`->` and the destination instance' },
  flowArrow: { ERR_MSG: '`->` and the instance the label must not reach' },
  exposuresOpen: { ERR_MSG: '`[` and the allowed exposures' },
  exposuresClose: { ERR_MSG: '`]` to close the list of exposures' },
  egressColon: { ERR_MSG: '`:` and the required port (`egress mail: relay.smtp -> "tcp://host:25"`)' },
  egressArrow: { ERR_MSG: '`->` and the destination address' },
  egressDestination: { ERR_MSG: 'the destination address as a string, such as `"tcp://smtp.example.com:25"`' },
  egressClose: { ERR_MSG: '`}` to close the egress attributes' },
  egressesOpen: { ERR_MSG: '`[` and the allowed egresses' },
  egressesClose: { ERR_MSG: '`]` to close the list of egresses' },
  propertiesOpen: { ERR_MSG: '`{` and the properties' },
  blockClose: { ERR_MSG: '`}` to close the block' },
  labelsOpen: { ERR_MSG: '`{` and the label order' },
  labelsClose: { ERR_MSG: '`}` to close the labels' },
};

/** Rule nesting beyond which nested types, values and order expressions are cut off and reported. */
export const MAX_NESTING = 120;

/** The most elements a port array has (`require shards: Kv[64]`); each element is a port of the guest. */
export const MAX_PORT_ARRAY = 64;

// Placeholders for required fields a failed rule never reached. `fixMissing`
// replaces them with `Missing*` nodes (or empty names) positioned where the
// parser stopped.
const { M_IDENT, M_QNAME, M_TYPE, M_EXPR, M_STRING, M_LIST, M_MAP, M_PORTREF, M_EXPOSE } = B;

function placeholderFor(v: unknown, pos: number): unknown {
  const span = { start: pos, end: pos };
  switch (v) {
    case M_IDENT:
      return { kind: 'Ident', name: '', span };
    case M_QNAME:
      return { kind: 'QualifiedName', parts: [{ kind: 'Ident', name: '', span: { start: pos, end: pos } }], span };
    case M_TYPE:
      return { kind: 'MissingType', span };
    case M_EXPR:
      return { kind: 'MissingExpr', span };
    case M_STRING:
      return { kind: 'String', raw: '', value: '', span };
    case M_LIST:
      return { kind: 'List', items: [], span };
    case M_MAP:
      return { kind: 'Map', entries: [], span };
    case M_PORTREF:
      return {
        kind: 'PortRef',
        instance: { kind: 'Ident', name: '', span: { start: pos, end: pos } },
        port: { kind: 'Ident', name: '', span: { start: pos, end: pos } },
        span,
      };
    case M_EXPOSE:
      return { kind: 'ExposeSpec', transport: 'tcp', port: { kind: 'MissingExpr', span: { start: pos, end: pos } }, span };
    default:
      return undefined;
  }
}

function fixMissing(node: Record<string, unknown>, pos: number): void {
  for (const key in node) {
    const v = node[key];
    if (v === null || typeof v !== 'object') continue;
    const p = placeholderFor(v, pos);
    if (p !== undefined) node[key] = p;
    else if (key === 'source') fixMissing(v as Record<string, unknown>, pos);
  }
}

/** What the parser expects at a point, phrased for messages, with the hint shown when it is missing. */
export const EXPECTATIONS: Record<string, string> = {
  'a declaration': 'a file contains imports and `type`, `protocol`, `component`, `system`, `image`, `labels`, `target` and `deploy` declarations',
  'a component member': 'component members are `image`, `memory`, `vcpus`, `label`, `declassifies`, `param`, `provide`, `require`, `expose`, `single`, `replicas`, `per session`, `restart` and `program`',
  'a system member': 'system members are instances (`name = Component`), `connect`, `expose`, `export` and `policy`',
  'a channel attribute': 'channel attributes are `rate`, `max_message`, `timeout`, `allow`, `max_inflight`, `declassifies` and `query`; an exposure also takes `max_connections`, `connection_rate`, `bandwidth` and `idle_timeout`',
  'a program entry': 'program entries are `script`, `exec`, `file` and `env`',
  'an operation': 'operations are `call name(Input) -> Output`, `send name(Input)` and `notify name(Input)`, plus one optional `order`',
  'a policy rule': 'policy rules are `x only from a, b`, `x only through a`, `x only to a, b`, `no path a -> b`, `no flow label -> x`, `exposed only [a.p]` and `budget memory 1GiB`',
  'an instance setting': 'instance settings are parameter overrides (`name = value`), `single`, `replicas`, `per session`, `restart`, `memory`, `vcpus` and `label`',
  'a field': 'a field is `name: Type` or `name?: Type`',
  'an enum member': 'enum members are names separated by `,`',
  'a union variant': 'a variant is `name: Type`, or just `name` when it carries nothing',
  'a property': 'a property is a name followed by a value, e.g. `memory 4GiB`',
  'a label chain': 'a chain orders labels from least to most confidential, e.g. `public < internal < secret`',
  'a type': 'a type is `bool`, `int`, `float`, `string`, `bytes`, `list<T>`, `map<K, V>`, `{ fields }`, `enum { ... }`, `union { ... }` or a type name',
  'a value': 'a value is a number, string, `true`/`false`, a size (`64KiB`), duration (`2s`), rate (`500/s`), `[list]`, `{ map }` or a name',
  'a constraint': 'constraints are ranges `0..100`, bounds `max 64` / `min 1`, and `pattern "regex"`',
  'a size such as `256MiB`': 'sizes are written with a unit attached: `512B`, `64KiB`, `256MiB`, `2GiB`',
  'an integer': 'write a whole number such as `2`',
  'a duration such as `2s`': 'durations are written with a unit attached: `200ms`, `2s`, `5min`, `1h`',
  'a rate such as `500/s`': 'rates are written `count/unit`: `500/s`, `30/min`, `1000/h`',
  'a string': 'strings are written in double quotes',
  '`always`, `on-failure` or `never`': 'write `restart always`, `restart on-failure max 5` or `restart never`',
  '`tcp`': 'only TCP exposures exist: `on tcp 8080`',
  '`session`': 'write `per session`, optionally followed by `pool N` and `max N`',
  '`.{...}` or `.*` after the module path': 'write `import std.http.{Http, Request}` or `import std.http.*`',
  '`memory` or `vcpus`': 'write `budget memory 1GiB` or `budget vcpus 4`',
  '`from`, `through` or `to`': 'write `db only from app, admin`, `db only through app` or `app only to db, log`',
  '`only`': 'policy rules that start with an instance name read `db only from app`, `db only through app` or `app only to db`',
  '`path` or `flow`': 'write `no path a -> b` or `no flow secret -> web`',
  '`=` or `from`': 'write `file "/etc/app.conf" = "text"` or `file "/srv/index.html" from "www/index.html"`',
};

/** Chevrotain's error messages are replaced by descriptions of what was expected; parse.ts composes the sentence. */
export const errorMessageProvider: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected }) {
    return describeExpected(expected);
  },
  buildNotAllInputParsedMessage() {
    return 'the end of the file';
  },
  buildNoViableAltMessage({ expectedPathsPerAlt, customUserDescription }) {
    if (customUserDescription) return customUserDescription;
    const firsts = new Set<string>();
    for (const alt of expectedPathsPerAlt) for (const path of alt) if (path[0]) firsts.add(describeExpected(path[0]));
    return oneOf([...firsts]);
  },
  buildEarlyExitMessage({ expectedIterationPaths, customUserDescription }) {
    if (customUserDescription) return customUserDescription;
    const firsts = new Set<string>();
    for (const path of expectedIterationPaths) if (path[0]) firsts.add(describeExpected(path[0]));
    return oneOf([...firsts]);
  },
};

function oneOf(items: string[]): string {
  if (items.length <= 1) return items[0] ?? 'something else';
  return items.slice(0, -1).join(', ') + ' or ' + items[items.length - 1];
}

export function describeExpected(type: TokenType): string {
  if (type === T.Identifier) return 'a name';
  const info = T.tokenInfo(type);
  if (!info) return type.name;
  switch (info.kind) {
    case 'keyword':
    case 'contextualKeyword':
    case 'punctuation':
    case 'operator':
    case 'bool':
      return '`' + info.text + '`';
    default:
      return info.text;
  }
}

type Partial = { span: A.Span } & Record<string, unknown>;

/** How many tokens the parser looks ahead at most to choose an alternative. */
const MAX_LOOKAHEAD = 3;

/**
 * Chevrotain's LL(k) lookahead, with each decision's function built the first
 * time the parser reaches that decision rather than all of them when the
 * parser is constructed. Building every one up front was three quarters of
 * the parser's construction (about 360 of 475 ms of a cold process on a
 * loaded machine), and a file uses only the part of the grammar it contains.
 * The function built is the same one, from the same grammar, so choices do
 * not change; the grammar validations (run by a test) are the LL(k) ones.
 */
class LazyLookahead implements ILookaheadStrategy {
  private readonly llk = new LLkLookaheadStrategy({ maxLookahead: MAX_LOOKAHEAD });

  validate(options: Parameters<ILookaheadStrategy['validate']>[0]): ReturnType<ILookaheadStrategy['validate']> {
    return this.llk.validate(options);
  }

  buildLookaheadForAlternation(options: Parameters<ILookaheadStrategy['buildLookaheadForAlternation']>[0]): (orAlts?: IOrAlt<unknown>[]) => number | undefined {
    const llk = this.llk;
    let built: ((orAlts?: IOrAlt<unknown>[]) => number | undefined) | undefined;
    return function (this: unknown, orAlts) {
      built ??= llk.buildLookaheadForAlternation(options);
      return built.call(this, orAlts);
    };
  }

  buildLookaheadForOptional(options: Parameters<ILookaheadStrategy['buildLookaheadForOptional']>[0]): () => boolean {
    const llk = this.llk;
    let built: (() => boolean) | undefined;
    return function (this: unknown) {
      built ??= llk.buildLookaheadForOptional(options);
      return built.call(this);
    };
  }
}

export class McParser extends EmbeddedActionsParser {
  /** Diagnostics reported by grammar actions (literal kinds, nesting, strays). */
  diags: Diagnostic[] = [];
  path = '';
  private text = '';
  private partials: (Partial | undefined)[] = [];
  /** Offset of the last token reported as stray, so one bad token is reported once. */
  private lastStrayReport = -1;
  private seenDecl = false;

  /**
   * `validate` runs Chevrotain's grammar validations (ambiguities, left
   * recursion, unreachable alternatives). They cost more than the rest of the
   * grammar analysis together and find nothing in a grammar that passed them
   * once, so the shared parser skips them and a test builds one with them on.
   */
  constructor(options: { validate?: boolean } = {}) {
    super(T.allTokenTypes, {
      recoveryEnabled: true,
      maxLookahead: MAX_LOOKAHEAD,
      // The validating parser (a test) builds every decision up front, as Chevrotain does by default, so
      // that comparing the two shows that building them lazily chooses the same alternatives.
      lookaheadStrategy: options.validate ? new LLkLookaheadStrategy({ maxLookahead: MAX_LOOKAHEAD }) : new LazyLookahead(),
      errorMessageProvider,
      skipValidations: !options.validate,
    });
    // Recovery policy. Chevrotain's default resynchronisation picks one follow
    // token type for the whole rule stack, which with token categories often
    // unwinds to the declaration and loses everything after the error. Here a
    // failing rule instead stops where it is, returning its partial node, as
    // soon as the next token can follow it; the enclosing block's stray
    // alternative then deals with whatever cannot continue. At the end of the
    // input every rule stops, so no declaration is lost.
    //
    // Which tokens single-token recovery may delete is the public hook
    // `canTokenTypeBeDeletedInRecovery` below. Chevrotain 11 has no public hook
    // for choosing where a failed rule resynchronises, nor for caching the
    // follow sets of in-rule recovery, so those two are done by overriding its
    // methods (`findReSyncTokenType`, `isInCurrentRuleReSyncSet`,
    // `getFollowsForInRuleRecovery`); a test builds the parser with Chevrotain's
    // grammar validations on, and the recovery tests pin what they do.
    const self = this as unknown as {
      isInCurrentRuleReSyncSet(this: McParser, type: TokenType): boolean;
      findReSyncTokenType(this: McParser): TokenType;
      getFollowsForInRuleRecovery(this: McParser, type: TokenType, idx: number): TokenType[];
      getCurrFollowKey(): unknown;
      getFollowSetFromFollowKey(key: unknown): TokenType[];
    };
    // The tokens that may follow a terminal depend only on the rule path and the
    // terminal; Chevrotain walks the grammar for them on every error, which made
    // broken files an order of magnitude slower to parse than valid ones.
    const followsOf = self.getFollowsForInRuleRecovery;
    const followCache = new Map<string, TokenType[]>();
    self.getFollowsForInRuleRecovery = function (type, idx) {
      const s = this as unknown as { RULE_STACK: number[]; RULE_OCCURRENCE_STACK: number[] };
      const key = `${s.RULE_STACK.join(',')}|${s.RULE_OCCURRENCE_STACK.join(',')}|${type.tokenTypeIdx}|${idx}`;
      let follows = followCache.get(key);
      if (follows === undefined) {
        follows = followsOf.call(this, type, idx);
        if (followCache.size > 20_000) followCache.clear();
        followCache.set(key, follows);
      }
      return follows;
    };
    self.findReSyncTokenType = function () {
      return this.LA(1).tokenType;
    };
    self.isInCurrentRuleReSyncSet = function () {
      const next = this.LA(1);
      if (next.tokenType === EOF) return true;
      const s = this as unknown as typeof self;
      const follows = s.getFollowSetFromFollowKey(s.getCurrFollowKey());
      for (const t of follows) if (this.tokenMatches(next, t)) return true;
      return false;
    };
    this.performSelfAnalysis();
  }

  /**
   * Deleting a bracket or a declaration keyword to make the next token fit
   * throws the structure of the file away (`connect a.x -> { rate ...` would
   * read `rate` as an instance). Chevrotain passes the expected token type;
   * the token that would be deleted is the next one.
   */
  override canTokenTypeBeDeletedInRecovery(_expected: TokenType): boolean {
    return !NEVER_DELETED.has(this.LA(1).tokenType);
  }

  /** Prepares the parser for a new file. */
  begin(tokens: IToken[], path: string, text: string): void {
    this.input = tokens;
    this.text = text;
    this.diags = [];
    this.path = path;
    this.partials = [];
    this.lastStrayReport = -1;
    this.seenDecl = false;
  }

  // -------------------------------------------------------------------------
  // Helpers

  private get depth(): number {
    return (this as unknown as { RULE_STACK: number[] }).RULE_STACK.length;
  }

  private skipToken(): void {
    (this as unknown as { SKIP_TOKEN(): IToken }).SKIP_TOKEN();
  }

  /** Offset just past the last consumed token. */
  private endPos(): number {
    const t = this.LA(0);
    const e = t.endOffset;
    return e === undefined || Number.isNaN(e) || e < 0 ? (Number.isNaN(t.startOffset) ? 0 : Math.max(0, t.startOffset)) : e + 1;
  }

  /** Offset of the next token (or the end of the last one at the end of the input). */
  private startPos(): number {
    const t = this.LA(1);
    return Number.isNaN(t.startOffset) ? this.endPos() : t.startOffset;
  }

  /** Registers the node a rule is building so that recovery can return it. */
  private open<N extends object>(node: N): N {
    this.partials[this.depth - 1] = node as unknown as Partial;
    return node;
  }

  /**
   * The node the running rule registered with `open`: alternatives built once
   * (not per call) reach the node of the current call through it.
   */
  private current<N>(): N {
    return this.partials[this.depth - 1] as unknown as N;
  }

  private done<N extends { span: A.Span }>(node: N): N {
    const end = this.endPos();
    node.span.end = end < node.span.start ? node.span.start : end;
    return node;
  }

  /** The recovery value of every rule: the partial node, completed with placeholders. */
  private recovered = (): unknown => {
    const i = this.depth - 1;
    const node = this.partials[i];
    this.partials[i] = undefined;
    if (!node) return undefined;
    const pos = this.endPos();
    if (LINE_RULES.has((this as unknown as { getCurrRuleFullName(): string }).getCurrRuleFullName())) this.skipRestOfLine();
    if (node.kind === 'MissingType' || node.kind === 'MissingExpr' || (node.kind === 'Ident' && node.name === '')) {
      node.span.start = pos;
      node.span.end = pos;
      return node;
    }
    fixMissing(node, pos);
    // A qualified name always has at least one part, even if it is an empty name.
    if (node.kind === 'QualifiedName' && (node.parts as A.Ident[]).length === 0) {
      (node.parts as A.Ident[]).push({ kind: 'Ident', name: '', span: { start: pos, end: pos } });
      node.span.start = pos;
    }
    if (pos > node.span.start) node.span.end = pos;
    else node.span.end = node.span.start;
    return node;
  };

  /**
   * After a member failed, the rest of its line is almost always part of the
   * same mistake (`expose a.web on udp 53`); skipping it avoids a cascade of
   * follow-up errors. Bracketed groups are skipped whole.
   */
  private skipRestOfLine(): void {
    let depth = 0;
    for (;;) {
      const prev = this.LA(0);
      const t = this.LA(1);
      if (t.tokenType === EOF || Number.isNaN(t.startOffset)) return;
      if (depth === 0) {
        const from = Number.isNaN(prev.startOffset) || prev.endOffset === undefined || prev.endOffset < 0 ? t.startOffset : prev.endOffset + 1;
        if (hasNewline(this.text, from, t.startOffset)) return;
        if (t.tokenType === T.Semi || t.tokenType === T.Comma) return;
        if (closes(t)) return;
        if (T.DECL_START_WORDS.has(t.image)) return;
      }
      if (opens(t)) depth++;
      else if (closes(t)) depth--;
      this.skipToken();
    }
  }

  /**
   * Defines a rule. Rules that build a node register it with `open` before
   * they can fail, and recover to it; rules that return a single token's node
   * or a list name what they recover to instead, so that nothing is allocated
   * for recovery on the path without errors.
   */
  private rule<F extends (...args: any[]) => any>(name: string, impl: F, missing?: 'Ident' | 'MissingType' | 'MissingExpr' | 'list') {
    const recoveryValueFunc = missing === undefined ? this.recovered : () => this.recoveredMissing(missing);
    return this.RULE(name, impl, { recoveryValueFunc: recoveryValueFunc as () => ReturnType<F> });
  }

  private recoveredMissing(kind: 'Ident' | 'MissingType' | 'MissingExpr' | 'list'): unknown {
    if (kind === 'list') return [];
    const pos = this.endPos();
    return kind === 'Ident' ? { kind, name: '', span: { start: pos, end: pos } } : { kind, span: { start: pos, end: pos } };
  }

  private consumeMsgs = new Map<string, { ERR_MSG: string }>();
  private consumeMsg(what: string): { ERR_MSG: string } {
    let o = this.consumeMsgs.get(what);
    if (!o) this.consumeMsgs.set(what, (o = { ERR_MSG: what }));
    return o;
  }

  private orMsgs = new Map<unknown, Map<string, object>>();
  /** An OR option object with a custom message, built once per alternatives and message. */
  private orMsg<T>(alts: T, what: string): { DEF: T; ERR_MSG: string } {
    let m = this.orMsgs.get(alts);
    if (!m) this.orMsgs.set(alts, (m = new Map()));
    let o = m.get(what);
    if (!o) m.set(what, (o = { DEF: alts, ERR_MSG: what }));
    return o as { DEF: T; ERR_MSG: string };
  }

  private report(info: DiagnosticInfo, span: A.Span, message: string, hint?: string, fixes?: Fix[]): void {
    if (this.RECORDING_PHASE) return;
    const d: Diagnostic = { code: info.code, severity: info.severity, message, file: this.path, span };
    if (hint) d.hint = hint;
    if (fixes) d.fixes = fixes;
    this.diags.push(d);
  }

  private docOf(): string | undefined {
    return (this.LA(1) as Token).doc;
  }

  private mkIdent(tok: IToken): A.Ident {
    // While Chevrotain records the grammar, CONSUME returns its own token, whose offsets V8 holds as
    // boxed doubles (it shares a hidden class with the end-of-input token, whose offsets are NaN): a
    // span made from it would make V8 keep the `end` of every later span of the process boxed too, a
    // second heap object per span of every syntax tree. Like tokSpan, the throwaway node has none of it.
    if (this.RECORDING_PHASE) return { kind: 'Ident', name: '', span: { start: 0, end: 0 } };
    if (tok.isInsertedInRecovery || Number.isNaN(tok.startOffset)) {
      const p = this.endPos();
      return { kind: 'Ident', name: '', span: { start: p, end: p } };
    }
    return B.ident(tok as Token);
  }

  private tokSpan(tok: IToken): A.Span {
    // While the grammar is recorded an alternative's result stands for the token, with no offsets.
    if (this.RECORDING_PHASE) return { start: 0, end: 0 };
    if (tok.isInsertedInRecovery || Number.isNaN(tok.startOffset)) {
      const p = this.endPos();
      return { start: p, end: p };
    }
    return { start: tok.startOffset, end: tok.endOffset! + 1 };
  }

  /**
   * Consumes a run of tokens that cannot start a member of the current block,
   * keeping brackets balanced and stopping at declaration keywords, and
   * reports the run once.
   */
  private stray(first: IToken, category: TokenType, what: string): void {
    if (this.RECORDING_PHASE) return;
    const start = first.startOffset;
    let end = first.endOffset! + 1;
    let depth = opens(first) ? 1 : 0;
    for (;;) {
      const t = this.LA(1);
      if (t.tokenType === undefined || t.tokenType.name === 'EOF') break;
      if (T.DECL_START_WORDS.has(t.image) && !(t.tokenType === K.image && category === T.StrayComponent)) break;
      // At the top level a stray `}` belongs to the run too; inside a block it ends the block.
      const fits = this.tokenMatches(t, category) || (category === T.StrayTop && t.tokenType === T.RBrace);
      if (depth === 0 && !fits) break;
      if (opens(t)) depth++;
      else if (closes(t) && depth > 0) depth--;
      end = t.endOffset! + 1;
      this.skipToken();
    }
    if (this.lastStrayReport === start) return;
    this.lastStrayReport = start;
    // A misspelt keyword (`componet`, `requires`) gets a suggestion and a quick fix.
    const keywords = STRAY_KEYWORDS.get(category);
    const guess = keywords && this.tokenMatches(first, T.Identifier) ? closestWord(first.image, keywords) : undefined;
    const span = { start: first.startOffset, end: first.endOffset! + 1 };
    this.report(
      Codes.UnexpectedToken,
      { start, end },
      `expected ${what}, found ${describeToken(first)}`,
      guess ? `did you mean \`${guess}\`?` : EXPECTATIONS[what],
      guess ? [{ title: `Change to \`${guess}\``, edits: [{ file: this.path, span, newText: guess }] }] : undefined,
    );
  }

  tokenMatches(t: IToken, type: TokenType): boolean {
    return t.tokenTypeIdx === type.tokenTypeIdx || (type.categoryMatchesMap?.[t.tokenTypeIdx!] ?? false);
  }

  /**
   * Cuts off a construct nested beyond MAX_NESTING: reports it and skips to the
   * end of the innermost enclosing bracket, so that the stack stays bounded.
   */
  private tooDeep(): boolean {
    if (this.RECORDING_PHASE || this.depth < MAX_NESTING) return false;
    const start = this.startPos();
    let depth = 0;
    for (;;) {
      const t = this.LA(1);
      if (t.tokenType === undefined || t.tokenType.name === 'EOF') break;
      if (depth === 0 && (t.tokenType === T.Comma || t.tokenType === T.Semi)) break;
      if (opens(t) || t.tokenType === T.Lt) depth++;
      else if (closes(t) || t.tokenType === T.Gt) {
        if (depth === 0) break;
        depth--;
      }
      this.skipToken();
    }
    const end = Math.max(start, this.endPos());
    this.report(
      Codes.NestingTooDeep,
      { start, end },
      `nesting is too deep here (more than ${MAX_NESTING} levels of rules)`,
      'flatten the structure, e.g. by naming an inner type with `type Name = ...`',
    );
    return true;
  }

  /** Builds a literal expression from a literal token. */
  private literalFrom(tok: IToken): A.Expr {
    const span = this.tokSpan(tok);
    if (tok.isInsertedInRecovery) {
      if (tok.tokenType === K.true || tok.tokenType === K.false) return { kind: 'Bool', value: tok.tokenType === K.true, span };
      return { kind: 'MissingExpr', span };
    }
    return B.literal(tok as Token, span);
  }

  /** Checks that a value has the literal kind a setting needs; a wrong kind becomes a MissingExpr with a diagnostic. */
  private expectKind<K extends A.Expr['kind']>(
    e: A.Expr,
    kinds: K[],
    what: string,
    setting: string,
  ): Extract<A.Expr, { kind: K }> | A.MissingExpr {
    if (this.RECORDING_PHASE || !e || typeof e !== 'object' || !('kind' in e)) return e as A.MissingExpr;
    if (B.hasKind(e, kinds)) return e as Extract<A.Expr, { kind: K }>;
    let hint = EXPECTATIONS[what];
    let fixes: Fix[] | undefined;
    if (e.kind === 'Int' && (kinds as string[]).includes('Size')) {
      hint = `add a unit, e.g. \`${e.raw}MiB\``;
      fixes = [{ title: `Write \`${e.raw}MiB\``, edits: [{ file: this.path, span: e.span, newText: e.raw + 'MiB' }] }];
    } else if (e.kind === 'Int' && (kinds as string[]).includes('Duration')) {
      hint = `add a unit, e.g. \`${e.raw}s\``;
      fixes = [{ title: `Write \`${e.raw}s\``, edits: [{ file: this.path, span: e.span, newText: e.raw + 's' }] }];
    } else if (e.kind === 'Int' && (kinds as string[]).includes('Rate')) {
      hint = `add a unit, e.g. \`${e.raw}/s\``;
      fixes = [{ title: `Write \`${e.raw}/s\``, edits: [{ file: this.path, span: e.span, newText: e.raw + '/s' }] }];
    }
    this.report(Codes.WrongLiteralKind, e.span, `\`${setting}\` takes ${what}, found ${describeExpr(e)}`, hint, fixes);
    return { kind: 'MissingExpr', span: e.span };
  }

  private sepAlts = [alt(() => this.CONSUME9(T.Semi)), alt(() => this.CONSUME9(T.Comma))];

  private sep(): void {
    this.OR9(this.sepAlts);
  }


  // Alternatives of the block repetitions, built once: Chevrotain would otherwise
  // allocate every closure and array on each iteration.
  private componentMemberAlts = [
    alt(() => this.SUBRULE(this.imageMember)),
    alt(() => this.SUBRULE(this.memoryMember)),
    alt(() => this.SUBRULE(this.vcpusMember)),
    alt(() => this.SUBRULE(this.labelMember)),
    alt(() => this.SUBRULE(this.declassifyMember)),
    alt(() => this.SUBRULE(this.paramDecl)),
    alt(() => this.SUBRULE(this.portDecl)),
    alt(() => this.SUBRULE(this.instancesMember)),
    alt(() => this.SUBRULE(this.restartMember)),
    alt(() => this.SUBRULE(this.programMember)),
    alt(() => this.sep()),
    alt(() => this.stray(this.CONSUME(T.StrayComponent), T.StrayComponent, 'a component member')),
  ];
  private programEntryAlts = [
    alt(() => this.SUBRULE(this.scriptEntry)),
    alt(() => this.SUBRULE(this.execEntry)),
    alt(() => this.SUBRULE(this.fileEntry)),
    alt(() => this.SUBRULE(this.envEntry)),
    alt(() => this.sep()),
    alt(() => this.stray(this.CONSUME(T.StrayProgram), T.StrayProgram, 'a program entry')),
  ];
  // `egress` is a contextual keyword: followed by `=` it names an instance (`egress = Gateway`); the
  // second token tells the two apart.
  private systemMemberAlts = {
    DEF: [
      alt(() => this.SUBRULE(this.paramDecl)),
      alt(() => this.SUBRULE(this.egressDecl)),
      alt(() => this.SUBRULE(this.instanceDecl)),
      alt(() => this.SUBRULE(this.connectDecl)),
      alt(() => this.SUBRULE(this.exposeDecl)),
      alt(() => this.SUBRULE(this.exportDecl)),
      alt(() => this.SUBRULE(this.policyBlock)),
      alt(() => this.sep()),
      alt(() => this.stray(this.CONSUME(T.StraySystem), T.StraySystem, 'a system member')),
    ],
  };
  // An egress block takes `label` besides a channel's attributes; `label` is otherwise a stray attribute.
  private egressAttrAlts = [
    { ALT: () => this.SUBRULE(this.labelMember), IGNORE_AMBIGUITIES: true },
    ...this.channelAttrAltsList(),
  ];
  // Instance settings and policy rules are told apart by their second or third
  // token; the gates decide on those tokens directly so that a rule that is
  // wrong after its first word still goes to the rule it was meant to be and
  // gets a precise message (`a only b` -> "expected `from`, `through` or `to`").
  private instanceSettingAlts = {
    MAX_LOOKAHEAD: 1,
    DEF: [
      { GATE: () => this.LA(2).tokenType !== T.Eq, ALT: () => this.SUBRULE(this.instancesMember) },
      { GATE: () => this.LA(2).tokenType !== T.Eq, ALT: () => this.SUBRULE(this.restartMember) },
      { GATE: () => this.LA(2).tokenType !== T.Eq, ALT: () => this.SUBRULE(this.memoryMember) },
      { GATE: () => this.LA(2).tokenType !== T.Eq, ALT: () => this.SUBRULE(this.vcpusMember) },
      { GATE: () => this.LA(2).tokenType !== T.Eq, ALT: () => this.SUBRULE(this.labelMember) },
      alt(() => this.SUBRULE(this.paramOverride)),
      alt(() => this.sep()),
      alt(() => this.stray(this.CONSUME(T.StraySettings), T.StraySettings, 'an instance setting')),
    ],
  };
  private channelAttrAlts = this.channelAttrAltsList();
  private channelAttrAltsList() {
    return [
    alt(() => this.SUBRULE(this.rateAttr)),
    alt(() => this.SUBRULE(this.maxMessageAttr)),
    alt(() => this.SUBRULE(this.timeoutAttr)),
    alt(() => this.SUBRULE(this.allowAttr)),
    alt(() => this.SUBRULE(this.maxInflightAttr)),
    alt(() => this.SUBRULE(this.declassifyAttr)),
    alt(() => this.SUBRULE(this.queryAttr)),
    alt(() => this.SUBRULE(this.connectionAttr)),
    alt(() => this.sep()),
    alt(() => this.stray(this.CONSUME(T.StrayAttr), T.StrayAttr, 'a channel attribute')),
    ];
  }
  private policyRuleAlts = {
    MAX_LOOKAHEAD: 1,
    DEF: [
      // A dot after the first word makes it the start of a path (`no.web only from a`), so the only-rule.
      {
        GATE: () => this.LA(2).tokenType !== K.only && this.LA(2).tokenType !== T.Dot,
        ALT: () => this.SUBRULE(this.noRule),
      },
      {
        GATE: () => this.LA(3).tokenType !== K.from && this.LA(3).tokenType !== K.through && this.LA(3).tokenType !== K.to && this.LA(2).tokenType !== T.Dot,
        ALT: () => this.SUBRULE(this.exposedOnlyRule),
      },
      {
        GATE: () => this.LA(2).tokenType !== K.only && this.LA(2).tokenType !== T.Dot,
        ALT: () => this.SUBRULE(this.budgetRule),
      },
      // `egress only [` is the egress list; `egress only from a` is a rule about an instance named `egress`.
      {
        GATE: () => this.LA(3).tokenType === T.LBracket,
        ALT: () => this.SUBRULE(this.egressOnlyRule),
        IGNORE_AMBIGUITIES: true,
      },
      {
        GATE: () => this.LA(2).tokenType !== K.only && this.LA(2).tokenType !== T.Dot,
        ALT: () => this.SUBRULE(this.apartRule),
      },
      {
        GATE: () => this.LA(2).tokenType !== K.only && this.LA(2).tokenType !== T.Dot,
        ALT: () => this.SUBRULE(this.labelOnRule),
      },
      alt(() => this.SUBRULE(this.onlyRule)),
      alt(() => this.sep()),
      alt(() => this.stray(this.CONSUME(T.StrayIdentBlock), T.StrayIdentBlock, 'a policy rule')),
    ],
  };

  // -------------------------------------------------------------------------
  // Names

  qualifiedName = this.rule('qualifiedName', (what?: string): A.QualifiedName => {
    const node = this.open(B.qualifiedName(this.startPos()));
    // A list made with its first part, not grown from empty: V8 gives an empty array room for 17
    // elements on its first push, and nearly every qualified name has one part (the tree keeps them all).
    node.parts = [this.mkIdent(this.CONSUME(T.Identifier, this.consumeMsg(what ?? 'a name')))];
    this.MANY(this.qualifiedNamePart);
    this.done(node);
    // A name of one part covers exactly its part, so the two share one span object: about 40,000
    // fewer objects in the trees of a 10,000-component workspace, each of which the young-generation
    // collector would copy. Nothing changes a span once its rule is done.
    const first = node.parts[0];
    if (node.parts.length === 1 && first.span.start === node.span.start && first.span.end === node.span.end) node.span = first.span;
    return node;
  });

  // The bodies of repetitions and options of the most frequent rules are built once, not on every
  // call; they reach the node of the current call through `current`.
  private qualifiedNamePart = (): void => {
    this.CONSUME(T.Dot);
    this.current<A.QualifiedName>().parts.push(this.mkIdent(this.CONSUME2(T.Identifier, NAME.afterDot)));
  };

  /**
   * A name in a policy rule or after `deploy ... to`: one name, or a dotted
   * path (`farm.web`). A path is one Ident whose `name` is the joined path and
   * whose `parts` are the segments, so that code reading a plain name keeps
   * working and code that resolves paths can point at the segment at fault.
   */
  namePath = this.rule('namePath', (what?: string): A.Ident => {
    const first = this.mkIdent(this.CONSUME(T.Identifier, this.consumeMsg(what ?? 'a name')));
    const parts = [first];
    this.MANY(() => {
      this.CONSUME(T.Dot);
      parts.push(this.mkIdent(this.CONSUME2(T.Identifier, NAME.afterDot)));
    });
    if (parts.length === 1) return first;
    return { kind: 'Ident', name: parts.map((p) => p.name).join('.'), span: { start: first.span.start, end: parts[parts.length - 1].span.end }, parts };
  }, 'Ident');

  portRef = this.rule('portRef', (): A.PortRef => {
    const node = this.open(B.portRef(this.startPos()));
    node.instance = this.mkIdent(this.CONSUME(T.Identifier, NAME.instance));
    this.CONSUME(T.Dot, EXPECT.portAfterDot);
    node.port = this.mkIdent(this.CONSUME2(T.Identifier, NAME.port));
    this.OPTION(this.portRefIndex);
    return this.done(node);
  });

  private portRefIndex = (): void => {
    this.current<A.PortRef>().index = this.SUBRULE(this.portIndex);
  };

  /** `[2]` or `[*]` after a port name: an element of a port array, or all of them (a fan-out). */
  portIndex = this.rule('portIndex', (): A.PortIndex => {
    const start = this.startPos();
    this.CONSUME(T.LBracket);
    let value: number | '*' = -1;
    this.OR([
      alt(() => (this.CONSUME(T.Star), (value = '*'))),
      alt(() => {
        const lit = this.literalFrom(this.CONSUME(T.IntLit));
        if (lit.kind === 'Int' && Number.isSafeInteger(lit.value) && lit.value >= 0) value = lit.value;
        else if (!this.RECORDING_PHASE) this.report(Codes.PortIndexInvalid, lit.span, 'an element index is a whole number from 0', 'write the element as `port[0]`, `port[1]`, ...');
      }),
    ]);
    this.CONSUME(T.RBracket, EXPECT.portIndexClose);
    return { kind: 'PortIndex', value, span: { start, end: this.endPos() } };
  });

  /** `[a.p, b.q]`: the ports a fan-out connects the elements of a port array to, in order. */
  portRefList = this.rule('portRefList', (): A.PortRef[] => {
    const out: A.PortRef[] = [];
    this.CONSUME(T.LBracket);
    this.commaSeparated(this.portRef, 'ports', (r) => out.push(r));
    this.CONSUME(T.RBracket, EXPECT.portListClose);
    return out;
  });

  // -------------------------------------------------------------------------
  // File

  sourceFile = this.rule('sourceFile', (): { imports: A.ImportDecl[]; decls: A.Decl[] } => {
    const imports: A.ImportDecl[] = [];
    const decls: A.Decl[] = [];
    this.fileImports = imports;
    this.fileDecls = decls;
    this.open({ imports, decls, span: { start: 0, end: 0 } });
    this.MANY(() => {
      this.OR(this.topLevelAlts);
    });
    // The shared parser would otherwise keep the file's lists alive until the next file.
    this.fileImports = this.fileDecls = [];
    return { imports, decls };
  });

  /** The lists `sourceFile` fills, for its alternatives, which are built once. */
  private fileImports: A.ImportDecl[] = [];
  private fileDecls: A.Decl[] = [];

  private addDecl(d: A.Decl | undefined): void {
    if (d && !this.RECORDING_PHASE) {
      this.fileDecls.push(d);
      this.seenDecl = true;
    }
  }

  private topLevelAlts = [
    alt(() => {
      const imp = this.SUBRULE(this.importDecl);
      if (imp && !this.RECORDING_PHASE) {
        if (this.seenDecl)
          this.report(
            Codes.ImportAfterDeclaration,
            imp.span,
            'imports belong before the declarations of a file',
            'move this import to the top of the file',
          );
        this.fileImports.push(imp);
      }
    }),
    alt(() => this.addDecl(this.SUBRULE(this.typeDecl))),
    alt(() => this.addDecl(this.SUBRULE(this.protocolDecl))),
    alt(() => this.addDecl(this.SUBRULE(this.componentDecl))),
    alt(() => this.addDecl(this.SUBRULE(this.systemDecl))),
    alt(() => this.addDecl(this.SUBRULE(this.imageDecl))),
    alt(() => this.addDecl(this.SUBRULE(this.labelsDecl))),
    alt(() => this.addDecl(this.SUBRULE(this.targetDecl))),
    alt(() => this.addDecl(this.SUBRULE(this.deployDecl))),
    alt(() => this.sep()),
    // A stray `}` at the top level is reported like any other stray token.
    alt(() => this.stray(this.CONSUME(T.RBrace), T.StrayTop, 'a declaration')),
    alt(() => this.stray(this.CONSUME(T.StrayTop), T.StrayTop, 'a declaration')),
  ];

  importDecl = this.rule('importDecl', (): A.ImportDecl => {
    const start = this.startPos();
    this.CONSUME(K.import);
    const modStart = this.startPos();
    const module = B.modulePath(modStart);
    const node = this.open(B.importDecl(start, module));
    module.parts.push(this.mkIdent(this.CONSUME(T.Identifier, NAME.modulePath)));
    this.MANY(() => {
      this.CONSUME(T.Dot);
      module.parts.push(this.mkIdent(this.CONSUME2(T.Identifier, NAME.moduleAfterDot)));
    });
    if (!this.RECORDING_PHASE) B.closeModulePath(module);
    let hasItems = false;
    this.OPTION(() => {
      this.CONSUME2(T.Dot);
      hasItems = true;
      this.OR([
        alt(() => (node.items = this.SUBRULE(this.importItems) ?? [])),
        alt(() => (this.CONSUME(T.Star), (node.items = '*'))),
      ]);
    });
    if (!hasItems && !this.RECORDING_PHASE) {
      // `import a.b.C` names a single declaration: accept it as `import a.b.{C}` and say how to write it.
      if (module.parts.length >= 2) {
        const last = module.parts.pop()!;
        module.span.end = module.parts[module.parts.length - 1].span.end;
        node.items = [{ kind: 'ImportItem', name: last, span: last.span }];
        this.report(
          Codes.MissingImportItems,
          { start, end: this.endPos() },
          `an import lists what it takes from the module in braces`,
          `write \`import ${module.parts.map((p) => p.name).join('.')}.{${last.name}}\``,
          [
            {
              title: `Write \`.{${last.name}}\``,
              edits: [{ file: this.path, span: last.span, newText: `{${last.name}}` }],
            },
          ],
        );
      } else
        this.report(
          Codes.MissingImportItems,
          { start, end: this.endPos() },
          'an import lists what it takes from the module: `.{Name, ...}` or `.*`',
          EXPECTATIONS['`.{...}` or `.*` after the module path'],
        );
    }
    return this.done(node);
  });

  importItems = this.rule('importItems', (): A.ImportItem[] => {
    const items: A.ImportItem[] = [];
    this.CONSUME(T.LBrace);
    this.commaSeparated(this.importItem, 'import items', (item) => items.push(item));
    this.CONSUME(T.RBrace, EXPECT.importsClose);
    return items;
  }, 'list');

  /**
   * Items separated by commas, as in `[a, b]`: a trailing comma is allowed and a
   * missing one is reported (`what` names the items) without failing the list.
   * Each rule calls it once, so its MANY and OR are that rule's first occurrences.
   */
  private commaSeparated<N>(item: ParserMethod<[], N>, what: string, add: (item: N) => void): void {
    let needComma = false;
    // Built once per list, not once per element or comma.
    const alts = [
      alt(() => (this.CONSUME(T.Comma), (needComma = false))),
      alt(() => {
        const at = this.LA(1);
        const prev = this.LA(0);
        const x = this.SUBRULE(item);
        if (needComma) this.missingComma(at, prev, what);
        add(x);
        needComma = true;
      }),
    ];
    this.MANY(() => {
      this.OR(alts);
    });
  }

  private missingComma(at: IToken, prev: IToken, what: string): void {
    if (this.RECORDING_PHASE) return;
    const prevEnd = this.tokSpan(prev).end;
    this.report(
      Codes.MissingComma,
      this.tokSpan(at),
      `expected \`,\` between ${what}, found ${describeToken(at)}`,
      `separate ${what} with commas`,
      [{ title: 'Insert `,`', edits: [{ file: this.path, span: { start: prevEnd, end: prevEnd }, newText: ',' }] }],
    );
  }

  importItem = this.rule('importItem', (): A.ImportItem => {
    const node = this.open(B.importItem(this.startPos()));
    node.name = this.mkIdent(this.CONSUME(T.Identifier, NAME.imported));
    this.OPTION(() => {
      this.CONSUME(K.as);
      node.alias = this.mkIdent(this.CONSUME2(T.Identifier, NAME.alias));
    });
    return this.done(node);
  });

  // -------------------------------------------------------------------------
  // Types

  typeDecl = this.rule('typeDecl', (): A.TypeDecl => {
    const node = this.open(B.typeDecl(this.startPos(), this.docOf()));
    this.CONSUME(K.type);
    node.name = this.mkIdent(this.CONSUME(T.Identifier, NAME.type));
    this.CONSUME(T.Eq, EXPECT.typeEquals);
    node.type = this.SUBRULE(this.typeExpr);
    return this.done(node);
  });

  private typeAlts = [
    alt(() => this.SUBRULE(this.primitiveType)),
    alt(() => this.SUBRULE(this.listType)),
    alt(() => this.SUBRULE(this.mapType)),
    alt(() => this.SUBRULE(this.recordType)),
    alt(() => this.SUBRULE(this.enumType)),
    alt(() => this.SUBRULE(this.unionType)),
    alt((): A.NamedType => {
        const start = this.startPos();
        const name = this.SUBRULE(this.qualifiedName, ARG.type);
        return B.namedType(name, start, this.endPos());
      }),
  ];
  private typeOr = { DEF: this.typeAlts, ERR_MSG: 'a type' };

  typeExpr = this.rule(
    'typeExpr',
    (): A.TypeExpr => {
      if (this.tooDeep()) return { kind: 'MissingType', span: { start: this.endPos(), end: this.endPos() } };
      return this.OR(this.typeOr) as A.TypeExpr;
    },
    'MissingType',
  );

  private primitiveAlts = [
    alt(() => this.CONSUME(K.bool)),
    alt(() => this.CONSUME(K.int)),
    alt(() => this.CONSUME(K.int64)),
    alt(() => this.CONSUME(K.float)),
    alt(() => this.CONSUME(K.string)),
    alt(() => this.CONSUME(K.bytes)),
  ];

  primitiveType = this.rule('primitiveType', (): A.PrimitiveType => {
    const node = this.open(B.primitiveType(this.startPos()));
    const tok = this.OR(this.primitiveAlts);
    node.name = tok.image as A.PrimitiveName;
    this.OPTION(this.primitiveConstraints);
    return this.done(node);
  });

  private primitiveConstraints = (): void => {
    this.current<A.PrimitiveType>().constraints = this.SUBRULE(this.constraints) ?? [];
  };

  listType = this.rule('listType', (): A.ListType => {
    const node = this.open(B.listType(this.startPos()));
    this.CONSUME(K.list);
    this.CONSUME(T.Lt, EXPECT.listOpen);
    node.element = this.SUBRULE(this.typeExpr);
    this.CONSUME(T.Gt, EXPECT.listClose);
    this.OPTION(() => (node.constraints = this.SUBRULE(this.constraints) ?? []));
    return this.done(node);
  });

  mapType = this.rule('mapType', (): A.MapType => {
    const node = this.open(B.mapType(this.startPos()));
    this.CONSUME(K.map);
    this.CONSUME(T.Lt, EXPECT.mapOpen);
    node.key = this.SUBRULE(this.typeExpr);
    this.CONSUME(T.Comma, EXPECT.mapComma);
    node.value = this.SUBRULE2(this.typeExpr);
    this.CONSUME(T.Gt, EXPECT.mapClose);
    this.OPTION(() => (node.constraints = this.SUBRULE(this.constraints) ?? []));
    return this.done(node);
  });

  constraints = this.rule('constraints', (): A.Constraint[] => {
    // Made with its first constraint, not grown from empty (as a qualified name's parts): nearly every
    // list of constraints has one (20,600 of 21,000 in the 10,000-component workspace).
    let list: A.Constraint[] | undefined;
    this.CONSUME(T.LParen);
    this.commaSeparated(this.constraint, 'constraints', (c) => {
      if (c) {
        if (list) list.push(c);
        else list = [c];
      }
    });
    this.CONSUME(T.RParen, EXPECT.constraintsClose);
    return list ?? [];
  }, 'list');

  constraint = this.rule('constraint', (): A.Constraint => {
    this.open(B.rangeConstraint(this.startPos()));
    return this.OR(this.constraintAlts);
  });

  private boundAlts = [alt(() => this.CONSUME(K.max)), alt(() => this.CONSUME(K.min))];

  /** The forms of a constraint, built once; each reaches the constraint being built through `current`. */
  private constraintAlts = {
    DEF: [
      alt(() => {
        const start = this.current<A.RangeConstraint>().span.start;
        const tok = this.OR2(this.boundAlts);
        const value = this.SUBRULE(this.numberLike);
        return this.done(B.boundConstraint(tok.image as 'min' | 'max', value, start));
      }),
      alt(() => {
        const start = this.current<A.RangeConstraint>().span.start;
        this.CONSUME(K.pattern);
        const tok = this.CONSUME(T.StringLit, EXPECT.pattern);
        return this.done(B.patternConstraint(this.literalFrom(tok), start));
      }),
      alt(() => {
        const node = this.current<A.RangeConstraint>();
        node.min = this.SUBRULE2(this.numberLike);
        let isRange = false;
        this.OPTION(() => {
          this.CONSUME(T.DotDot);
          isRange = true;
          this.OPTION2(() => (node.max = this.SUBRULE3(this.numberLike)));
        });
        this.done(node);
        if (!isRange && !this.RECORDING_PHASE) {
          const raw = (node.min as { raw?: string }).raw ?? '';
          this.report(
            Codes.InvalidConstraint,
            node.span,
            `a single number is not a constraint`,
            `write \`max ${raw}\` for an upper bound, \`${raw}..${raw}\` for an exact value, or \`${raw}..\` for a lower bound`,
            [{ title: `Write \`max ${raw}\``, edits: [{ file: this.path, span: node.span, newText: `max ${raw}` }] }],
          );
          node.max = node.min;
        }
        return node;
      }),
      alt(() => {
        const node = this.current<A.RangeConstraint>();
        this.CONSUME2(T.DotDot);
        node.max = this.SUBRULE4(this.numberLike);
        return this.done(node);
      }),
    ],
    ERR_MSG: 'a constraint',
  };

  private numberOr = {
    DEF: [alt(() => this.CONSUME(T.IntLit)), alt(() => this.CONSUME(T.FloatLit)), alt(() => this.CONSUME(T.SizeLit))],
    ERR_MSG: 'a number or size',
  };

  numberLike = this.rule(
    'numberLike',
    (): A.NumberLike => {
      const tok = this.OR(this.numberOr);
      return this.literalFrom(tok) as A.NumberLike;
    },
    'MissingExpr',
  );

  /**
   * The name of a record field, union variant or enum member: a name, or a
   * string for a wire name that is a reserved word or not a name at all
   * (`"type": string`, `"@id": string`). A bare reserved word is parsed as
   * the name it would be and reported, with the quoted form as the fix.
   */
  memberName = this.rule(
    'memberName',
    (what?: string): A.Ident =>
      this.OR<A.Ident>([
        alt(() => this.mkIdent(this.CONSUME(T.Identifier))),
        alt(() => this.quotedIdent(this.CONSUME(T.StringLit))),
        alt(() => this.reservedAsName(this.CONSUME(T.ReservedWord), what)),
      ]),
    'Ident',
  );

  /**
   * A bare reserved word where a member name or a map key is expected: parsed
   * as the name it would be and reported (MCL0130), with the quoted form as
   * the fix, since the quoted form is what the language accepts there.
   */
  private reservedAsName(tok: IToken, what?: string): A.Ident {
    const id = this.mkIdent(tok);
    if (!this.RECORDING_PHASE && id.name !== '') {
      const quoted = JSON.stringify(id.name);
      this.report(
        Codes.ReservedWordAsName,
        id.span,
        `\`${id.name}\` is a reserved word and cannot be ${what ?? 'a name'} as it stands`,
        `quote it: \`${quoted}\` (the name on the wire stays \`${id.name}\`)`,
        [{ title: `Quote \`${id.name}\``, edits: [{ file: this.path, span: id.span, newText: quoted }] }],
      );
    }
    return id;
  }

  /** A quoted name: the string's value, marked as quoted; an empty one is reported. */
  private quotedIdent(tok: IToken): A.Ident {
    const lit = this.literalFrom(tok);
    if (lit.kind !== 'String') return this.mkIdent(tok);
    const id: A.Ident = { kind: 'Ident', name: lit.value, span: lit.span, quoted: true };
    if (!this.RECORDING_PHASE && lit.value === '') {
      this.report(Codes.ReservedWordAsName, lit.span, 'a quoted name must not be empty', 'write the name between the quotes');
    }
    return id;
  }

  /**
   * Whether the next token can start a member name here: anything but a
   * reserved word, which only when the token after it is one that may follow
   * the name (so that `type X = ...` after an unclosed record still ends it).
   */
  private nameAhead(follow: ReadonlySet<TokenType> | 'member'): boolean {
    if (!tokenMatcher(this.LA(1), T.ReservedWord)) return true;
    if (follow !== 'member') return follow.has(this.LA(2).tokenType);
    // Enum members and variants may be separated by newlines alone, so the
    // next token says little; a reserved word is a member unless it starts
    // what reads as a declaration (`type U =`, `component C {`, ...).
    const second = this.LA(2);
    const third = this.LA(3).tokenType;
    const named = tokenMatcher(second, T.Identifier);
    switch (this.LA(1).image) {
      case 'type':
        return !(named && third === T.Eq);
      case 'component':
      case 'system':
      case 'protocol':
      case 'image':
      case 'target':
        return !(named && third === T.LBrace);
      case 'import':
        return !(named && third === T.Dot);
      case 'labels':
        return second.tokenType !== T.LBrace;
      case 'deploy':
        return !named;
      default:
        return true;
    }
  }

  private fieldAlts = [
    { GATE: () => this.nameAhead(NAME_FOLLOW.field), ALT: () => this.SUBRULE(this.field), IGNORE_AMBIGUITIES: true },
    alt(() => this.sep()),
    alt(() => this.stray(this.CONSUME(T.StrayIdentBlock), T.StrayIdentBlock, 'a field')),
  ];

  recordType = this.rule('recordType', (): A.RecordType => {
    const node = this.open(B.recordType(this.startPos()));
    this.CONSUME(T.LBrace);
    this.MANY({ GATE: () => this.nameAhead(NAME_FOLLOW.field), DEF: () => {
      const f = this.OR(this.fieldAlts) as A.Field | undefined;
      if (f && !this.RECORDING_PHASE) node.fields.push(f);
    } });
    this.CONSUME(T.RBrace, EXPECT.recordClose);
    return this.done(node);
  });

  field = this.rule('field', (): A.Field => {
    const node = this.open(B.field(this.startPos(), this.docOf()));
    node.name = this.SUBRULE(this.memberName, { ARGS: ['a field name'] });
    this.OPTION(() => (this.CONSUME(T.Question), (node.optional = true)));
    this.CONSUME(T.Colon, EXPECT.fieldColon);
    node.type = this.SUBRULE(this.typeExpr);
    return this.done(node);
  });

  enumType = this.rule('enumType', (): A.EnumType => {
    const node = this.open(B.enumType(this.startPos()));
    this.CONSUME(K.enum);
    this.CONSUME(T.LBrace, EXPECT.enumOpen);
    this.MANY({ GATE: () => this.nameAhead('member'), DEF: () => {
      this.OR([
        {
          GATE: () => this.nameAhead('member'),
          ALT: () => node.members.push(this.SUBRULE(this.memberName, { ARGS: ['an enum member'] })),
          IGNORE_AMBIGUITIES: true,
        },
        alt(() => this.sep()),
        alt(() => this.stray(this.CONSUME(T.StrayIdentBlock), T.StrayIdentBlock, 'an enum member')),
      ]);
    } });
    this.CONSUME(T.RBrace, EXPECT.enumClose);
    return this.done(node);
  });

  unionType = this.rule('unionType', (): A.UnionType => {
    const node = this.open(B.unionType(this.startPos()));
    this.CONSUME(K.union);
    this.CONSUME(T.LBrace, EXPECT.unionOpen);
    this.MANY({ GATE: () => this.nameAhead('member'), DEF: () => {
      this.OR([
        {
          GATE: () => this.nameAhead('member'),
          ALT: () => node.variants.push(this.SUBRULE(this.variant)),
          IGNORE_AMBIGUITIES: true,
        },
        alt(() => this.sep()),
        alt(() => this.stray(this.CONSUME(T.StrayIdentBlock), T.StrayIdentBlock, 'a union variant')),
      ]);
    } });
    this.CONSUME(T.RBrace, EXPECT.unionClose);
    return this.done(node);
  });

  variant = this.rule('variant', (): A.Variant => {
    const node = this.open(B.variant(this.startPos()));
    node.name = this.SUBRULE(this.memberName, { ARGS: ['a variant name'] });
    this.OPTION(() => {
      this.CONSUME(T.Colon);
      node.type = this.SUBRULE(this.typeExpr);
    });
    return this.done(node);
  });

  // -------------------------------------------------------------------------
  // Values

  private exprAlts = [
    alt(() => this.SUBRULE(this.literal)),
    alt(() => this.SUBRULE(this.listExpr)),
    alt(() => this.SUBRULE(this.mapExpr)),
    alt((): A.RefExpr => {
        const start = this.startPos();
        const name = this.SUBRULE(this.qualifiedName);
        return B.ref(name, start, this.endPos());
      }),
  ];

  expr = this.rule(
    'expr',
    (what?: string): A.Expr => {
      if (this.tooDeep()) return { kind: 'MissingExpr', span: { start: this.endPos(), end: this.endPos() } };
      return this.OR(this.orMsg(this.exprAlts, what ?? 'a value')) as A.Expr;
    },
    'MissingExpr',
  );

  private literalAlts = [
    alt(() => this.CONSUME(T.IntLit)),
    alt(() => this.CONSUME(T.FloatLit)),
    alt(() => this.CONSUME(T.StringLit)),
    alt(() => this.CONSUME(T.SizeLit)),
    alt(() => this.CONSUME(T.DurationLit)),
    alt(() => this.CONSUME(T.RateLit)),
    alt(() => this.CONSUME(K.true)),
    alt(() => this.CONSUME(K.false)),
  ];

  /** A single literal token (no lists, maps or names): used where a setting takes a number, size, duration or rate. */
  literal = this.rule(
    'literal',
    (what?: string): A.Expr => {
      const tok = this.OR(this.orMsg(this.literalAlts, what ?? 'a value')) as IToken;
      return this.literalFrom(tok);
    },
    'MissingExpr',
  );

  /**
   * The value of a setting that takes a number or a size (`replicas`, `memory`,
   * `vcpus`, `budget`): a literal, or the name of a parameter of the enclosing
   * system (`replicas n`), which the compiler substitutes per instantiation.
   */
  settingValue = this.rule(
    'settingValue',
    (what?: string): A.Expr =>
      this.OR(this.orMsg(this.settingValueAlts, what ?? 'a value')) as A.Expr,
    'MissingExpr',
  );

  private settingValueAlts = [
    alt(() => this.SUBRULE(this.literal)),
    {
      // A word that starts a member, on a line of its own, is that member: `vcpus` alone on a line is a
      // missing value, and the next line's `label secret` stays a member. Any other name may follow on
      // the next line (after a comment, say), as a number may.
      GATE: () => !(this.lineBreakBefore() && (T.MEMBER_KEYWORDS.component.has(this.LA(1).image) || T.MEMBER_KEYWORDS.system.has(this.LA(1).image))),
      ALT: (): A.RefExpr => {
        const id = this.mkIdent(this.CONSUME(T.Identifier));
        return B.ref({ kind: 'QualifiedName', parts: [id], span: id.span }, id.span.start, id.span.end);
      },
    },
  ];

  /** Whether a line break separates the next token from the one before it. */
  private lineBreakBefore(): boolean {
    const prev = this.LA(0);
    const t = this.LA(1);
    if (Number.isNaN(prev.startOffset) || prev.endOffset === undefined || prev.endOffset < 0 || Number.isNaN(t.startOffset)) return false;
    return hasNewline(this.text, prev.endOffset + 1, t.startOffset);
  }

  listExpr = this.rule('listExpr', (): A.ListExpr => {
    const node = this.open(B.listExpr(this.startPos()));
    this.CONSUME(T.LBracket);
    this.commaSeparated(this.expr, 'list items', (item) => node.items.push(item));
    this.CONSUME(T.RBracket, EXPECT.listValueClose);
    return this.done(node);
  });

  mapExpr = this.rule('mapExpr', (): A.MapExpr => {
    const node = this.open(B.mapExpr(this.startPos()));
    this.CONSUME(T.LBrace);
    // The first entry replaces the empty list rather than growing it, as for constraints (a map of one
    // entry is the most common: 10,000 of the workspace's 10,000 maps).
    this.commaSeparated(this.mapEntry, 'map entries', (entry) => {
      if (node.entries.length === 0) node.entries = [entry];
      else node.entries.push(entry);
    });
    this.CONSUME(T.RBrace, EXPECT.mapValueClose);
    return this.done(node);
  });

  mapEntry = this.rule('mapEntry', (): A.MapEntry => {
    const node = this.open(B.mapEntry(this.startPos()));
    this.OR([
      alt(() => (node.key = this.literalFrom(this.CONSUME(T.StringLit)) as A.StringLiteral)),
      alt(() => (node.key = this.mkIdent(this.CONSUME(T.Identifier, NAME.key)))),
      {
        // A reserved word as a key (`{ type: "x" }`, a record value whose field is written `"type"`)
        // is the quoted key misspelt: it is read as that key and reported, with the quoted form as the fix.
        GATE: () => tokenMatcher(this.LA(2), T.Colon) || tokenMatcher(this.LA(2), T.Eq),
        ALT: () => (node.key = this.reservedAsName(this.CONSUME(T.ReservedWord), 'a key')),
      },
    ]);
    this.OR2({ DEF: [alt(() => this.CONSUME(T.Colon)), alt(() => this.CONSUME(T.Eq))], ERR_MSG: '`:` or `=` and the value' });
    node.value = this.SUBRULE(this.expr);
    return this.done(node);
  });

  // -------------------------------------------------------------------------
  // Protocols

  protocolDecl = this.rule('protocolDecl', (): A.ProtocolDecl => {
    const node = this.open(B.protocolDecl(this.startPos(), this.docOf()));
    this.CONSUME(K.protocol);
    node.name = this.mkIdent(this.CONSUME(T.Identifier, NAME.protocol));
    this.CONSUME(T.LBrace, EXPECT.protocolOpen);
    this.MANY(() => {
      this.OR([
        alt(() => node.ops.push(this.SUBRULE(this.operation))),
        alt(() => {
            const kw = this.CONSUME(K.order);
            const order = this.SUBRULE(this.orderAlt);
            if (this.RECORDING_PHASE) return;
            if (node.order)
              this.report(
                Codes.DuplicateOrder,
                { start: kw.startOffset, end: this.endPos() },
                'a protocol has at most one `order` clause',
                'combine the orders into one expression, e.g. with `|`',
              );
            else node.order = order;
          }),
        alt(() => this.sep()),
        alt(() => this.stray(this.CONSUME(T.StrayProtocol), T.StrayProtocol, 'an operation')),
      ]);
    });
    this.CONSUME(T.RBrace, EXPECT.protocolClose);
    return this.done(node);
  });

  private opKindAlts = [alt(() => this.CONSUME(K.call)), alt(() => this.CONSUME(K.send)), alt(() => this.CONSUME(K.notify))];

  operation = this.rule('operation', (): A.Operation => {
    const node = this.open(B.operation(this.startPos(), this.docOf()));
    const kw = this.OR(this.opKindAlts);
    node.opKind = kw.image as A.OperationKind;
    node.name = this.mkIdent(this.CONSUME(T.Identifier, NAME.operation));
    this.OPTION(() => {
      this.CONSUME(T.LParen);
      this.OPTION2(() => (node.input = this.SUBRULE(this.typeExpr)));
      this.CONSUME(T.RParen, EXPECT.messageTypeClose);
    });
    this.OPTION3(() => {
      const arrow = this.CONSUME(T.Arrow);
      const start = arrow.startOffset;
      node.output = this.SUBRULE2(this.typeExpr);
      if (!this.RECORDING_PHASE && node.opKind !== 'call') {
        this.report(
          Codes.ResponseOnOneWay,
          { start, end: this.endPos() },
          `\`${node.opKind}\` operations are one-way and have no response type`,
          'use `call` for an operation that answers, or remove `-> ...`',
        );
        delete node.output;
      }
    });
    return this.done(node);
  });

  orderAlt = this.rule('orderAlt', (): A.OrderExpr => {
    const start = this.startPos();
    const node = this.open(B.orderAlt(start));
    node.options.push(this.SUBRULE(this.orderSeq));
    this.MANY(() => {
      this.CONSUME(T.Pipe);
      node.options.push(this.SUBRULE2(this.orderSeq));
    });
    if (node.options.length === 1) return node.options[0];
    return this.done(node);
  });

  orderSeq = this.rule('orderSeq', (): A.OrderExpr => {
    const start = this.startPos();
    const node = this.open(B.orderSeq(start));
    node.items.push(this.SUBRULE(this.orderPostfix));
    // An operation keyword ends the expression: `order` is usually followed by more operations.
    this.MANY({
      GATE: () => !isOpKeyword(this.LA(1)),
      DEF: () => node.items.push(this.SUBRULE2(this.orderPostfix)),
    });
    if (node.items.length === 1) return node.items[0];
    return this.done(node);
  });

  orderPostfix = this.rule('orderPostfix', (): A.OrderExpr => {
    const start = this.startPos();
    this.open(B.orderOp(start));
    let expr = this.SUBRULE(this.orderAtom);
    this.MANY(() => {
      const op = this.OR([
        alt(() => this.CONSUME(T.Star)),
        alt(() => this.CONSUME(T.Plus)),
        alt(() => this.CONSUME(T.Question)),
      ]);
      expr = B.orderRepeat(expr, op.image as '*' | '+' | '?', start, this.endPos());
    });
    return expr;
  });

  orderAtom = this.rule('orderAtom', (): A.OrderExpr => {
    const start = this.startPos();
    const node = this.open(B.orderOp(start));
    if (this.tooDeep()) {
      fixMissing(node as unknown as Record<string, unknown>, this.endPos());
      return this.done(node);
    }
    return this.OR({
      DEF: [
        alt(() => {
            node.name = this.mkIdent(this.CONSUME(T.Identifier, NAME.operation));
            return this.done(node);
          }),
        alt(() => {
            this.CONSUME(T.LParen);
            const inner = this.SUBRULE(this.orderAlt);
            this.CONSUME(T.RParen, EXPECT.groupClose);
            return inner;
          }),
      ],
      ERR_MSG: 'an operation name or `(`',
    });
  });

  // -------------------------------------------------------------------------
  // Components

  componentDecl = this.rule('componentDecl', (): A.ComponentDecl => {
    const node = this.open(B.componentDecl(this.startPos(), this.docOf()));
    this.CONSUME(K.component);
    node.name = this.mkIdent(this.CONSUME(T.Identifier, NAME.component));
    this.CONSUME(T.LBrace, EXPECT.componentOpen);
    this.MANY(this.componentMember);
    this.CONSUME(T.RBrace, EXPECT.componentClose);
    return this.done(node);
  });

  private componentMember = (): void => {
    const m = this.OR(this.componentMemberAlts) as A.ComponentMember | undefined;
    if (m && !this.RECORDING_PHASE) this.current<A.ComponentDecl>().members.push(m);
  };

  imageMember = this.rule('imageMember', (): A.ImageMember => {
    const node = this.open(B.imageMember(this.startPos()));
    this.CONSUME(K.image);
    node.image = this.SUBRULE(this.qualifiedName, ARG.image);
    return this.done(node);
  });

  memoryMember = this.rule('memoryMember', (): A.MemoryMember => {
    const node = this.open(B.memoryMember(this.startPos()));
    this.CONSUME(K.memory);
    const v = this.SUBRULE(this.settingValue, ARG.size);
    node.value = v.kind === 'Ref' ? v : this.expectKind(v, KIND_SIZE, 'a size such as `256MiB`', 'memory');
    return this.done(node);
  });

  vcpusMember = this.rule('vcpusMember', (): A.VcpusMember => {
    const node = this.open(B.vcpusMember(this.startPos()));
    this.CONSUME(K.vcpus);
    const v = this.SUBRULE(this.settingValue, ARG.integer);
    node.value = v.kind === 'Ref' ? v : this.expectKind(v, KIND_INT, 'an integer', 'vcpus');
    return this.done(node);
  });

  labelMember = this.rule('labelMember', (): A.LabelMember => {
    const node = this.open(B.labelMember(this.startPos()));
    this.CONSUME(K.label);
    node.label = this.mkIdent(this.CONSUME(T.Identifier, NAME.label));
    return this.done(node);
  });

  declassifyMember = this.rule('declassifyMember', (): A.DeclassifyMember => {
    const node = this.open(B.declassifyMember(this.startPos()));
    this.CONSUME(K.declassifies);
    node.from = this.mkIdent(this.CONSUME(T.Identifier, NAME.label));
    this.CONSUME(T.Arrow, EXPECT.declassifiesArrow);
    node.to = this.mkIdent(this.CONSUME2(T.Identifier, NAME.label));
    this.OPTION(() => {
      this.CONSUME(K.on);
      const ports: A.Ident[] = [this.mkIdent(this.CONSUME3(T.Identifier, NAME.port))];
      this.MANY(() => {
        this.CONSUME(T.Comma);
        ports.push(this.mkIdent(this.CONSUME4(T.Identifier, NAME.port)));
      });
      node.ports = ports;
    });
    return this.done(node);
  });

  paramDecl = this.rule('paramDecl', (): A.ParamDecl => {
    const node = this.open(B.paramDecl(this.startPos(), this.docOf()));
    this.CONSUME(K.param);
    node.name = this.mkIdent(this.CONSUME(T.Identifier, NAME.param));
    this.CONSUME(T.Colon, EXPECT.paramColon);
    node.type = this.SUBRULE(this.typeExpr);
    this.OPTION(this.paramDefault);
    this.OPTION2(this.paramSensitive);
    return this.done(node);
  });

  private paramDefault = (): void => {
    const node = this.current<A.ParamDecl>();
    this.CONSUME(T.Eq);
    node.default = this.SUBRULE(this.expr, ARG.defaultValue);
  };
  private paramSensitive = (): void => {
    this.CONSUME(K.sensitive);
    this.current<A.ParamDecl>().sensitive = true;
  };

  private portKindAlts = [alt(() => this.CONSUME(K.provide)), alt(() => this.CONSUME(K.require)), alt(() => this.CONSUME(K.expose))];

  portDecl = this.rule('portDecl', (): A.PortDecl => {
    const node = this.open(B.portDecl(this.startPos(), this.docOf()));
    const kw = this.OR(this.portKindAlts);
    const isExpose = kw.tokenType === K.expose;
    node.direction = kw.tokenType === K.require ? 'require' : 'provide';
    if (isExpose) node.expose = M_EXPOSE;
    node.name = this.mkIdent(this.CONSUME(T.Identifier, NAME.port));
    this.CONSUME(T.Colon, EXPECT.portColon);
    // `factory` followed by a name is a factory port; alone it is a protocol called `factory`.
    this.OR2(this.portTypeAlts);
    this.OPTION3(this.portCount);
    this.OPTION(this.portOptional);
    // `expose name: P on tcp N` requires the exposure; on `provide` it is accepted too.
    this.OPTION2(this.portExposure);
    if (isExpose && node.expose === M_EXPOSE && !this.RECORDING_PHASE) {
      const p = this.endPos();
      this.report(
        Codes.ExpectedToken,
        { start: p, end: p },
        'expected `on tcp <port>` after an exposed port',
        'write `expose http: Http on tcp 8080`',
      );
      node.expose = placeholderFor(M_EXPOSE, p) as A.ExposeSpec;
    }
    return this.done(node);
  });

  // `Kv[4]`: a port array of four elements.
  private portCount = (): void => {
    const node = this.current<A.PortDecl>();
    this.CONSUME(T.LBracket);
    const lit = this.literalFrom(this.CONSUME(T.IntLit));
    this.CONSUME(T.RBracket, EXPECT.portIndexClose);
    node.count = lit.kind === 'Int' ? lit : { kind: 'MissingExpr', span: lit.span };
    if (!this.RECORDING_PHASE && !(lit.kind === 'Int' && Number.isInteger(lit.value) && lit.value >= 1 && lit.value <= MAX_PORT_ARRAY)) {
      this.report(Codes.PortArrayLength, lit.span, `a port array has 1 to ${MAX_PORT_ARRAY} elements`, `write the number of elements, such as \`[4]\``);
    }
  };
  private portOptional = (): void => {
    this.CONSUME(K.optional);
    this.current<A.PortDecl>().optional = true;
  };
  private portExposure = (): void => {
    this.current<A.PortDecl>().expose = this.SUBRULE(this.exposeSpec);
  };

  private portTypeAlts = {
    MAX_LOOKAHEAD: 1,
    // A missing type is reported as the usual missing protocol (a factory is the rarer case).
    ERR_MSG: 'a protocol name',
    DEF: [
      {
        GATE: () => this.LA(1).tokenType === K.factory && tokenMatcher(this.LA(2), T.Identifier),
        ALT: () => (this.current<A.PortDecl>().factory = this.SUBRULE(this.factorySpec)),
      },
      alt(() => (this.current<A.PortDecl>().protocol = this.SUBRULE(this.qualifiedName, ARG.protocol))),
    ],
  };

  factorySpec = this.rule('factorySpec', (): A.FactorySpec => {
    const node = this.open(B.factorySpec(this.startPos()));
    this.CONSUME(K.factory);
    node.component = this.SUBRULE(this.qualifiedName, ARG.createdComponent);
    this.OPTION(() => {
      this.CONSUME(T.LBrace);
      this.MANY(() => {
        this.OR([
          alt(() => {
              this.CONSUME(K.max);
              node.max = M_EXPR;
              const v = this.SUBRULE(this.literal, ARG.factoryMax);
              node.max = this.expectKind(v, KIND_INT, 'an integer', 'max');
            }),
          alt(() => {
              this.CONSUME(K.param);
              node.params.push(this.mkIdent(this.CONSUME(T.Identifier, NAME.param)));
              this.MANY2(() => {
                this.CONSUME(T.Comma);
                node.params.push(this.mkIdent(this.CONSUME2(T.Identifier, NAME.param)));
              });
            }),
          alt(() => (this.CONSUME(K.detached), (node.detached = true))),
          alt(() => this.sep()),
        ]);
      });
      this.CONSUME(T.RBrace, EXPECT.factoryClose);
    });
    return this.done(node);
  });

  exposeSpec = this.rule('exposeSpec', (): A.ExposeSpec => {
    const node = this.open(B.exposeSpec(this.startPos()));
    this.CONSUME(K.on);
    this.CONSUME(K.tcp, EXPECT.tcp);
    const v = this.SUBRULE(this.literal, ARG.tcpPort);
    node.port = this.expectKind(v, KIND_INT, 'an integer', 'on tcp');
    // The exposure's attributes: the same block, and the same attributes, as a channel's, plus connection limits.
    this.OPTION(() => {
      this.CONSUME(T.LBrace);
      const attrs: A.ChannelAttr[] = [];
      this.MANY(() => {
        const a = this.OR(this.channelAttrAlts) as A.ChannelAttr | undefined;
        if (a && !this.RECORDING_PHASE) attrs.push(a);
      });
      this.CONSUME(T.RBrace, EXPECT.exposureClose);
      if (!this.RECORDING_PHASE) node.attrs = attrs;
    });
    return this.done(node);
  });

  instancesMember = this.rule('instancesMember', (): A.InstancesMember => {
    const node = this.open(B.instancesMember(this.startPos()));
    this.OR([
      alt(() => this.CONSUME(K.single)),
      alt(() => {
          this.CONSUME(K.replicas);
          node.mode = 'replicas';
          node.count = M_EXPR;
          const v = this.SUBRULE(this.settingValue, ARG.replicas);
          node.count = v.kind === 'Ref' ? v : this.expectKind(v, KIND_INT, 'an integer', 'replicas');
        }),
      alt(() => {
          this.CONSUME(K.created);
          node.mode = 'created';
          this.CONSUME(K.by, EXPECT.createdBy);
          node.creator = this.SUBRULE(this.portRef);
        }),
      alt(() => {
          this.CONSUME(K.per);
          node.mode = 'per_session';
          this.CONSUME(K.session, EXPECT.session);
          this.MANY(() => {
            this.OR2([
              alt(() => {
                  this.CONSUME(K.pool);
                  node.pool = M_EXPR;
                  const v = this.SUBRULE2(this.literal, ARG.warmClones);
                  node.pool = this.expectKind(v, KIND_INT, 'an integer', 'pool');
                }),
              alt(() => {
                  this.CONSUME(K.max);
                  node.max = M_EXPR;
                  const v = this.SUBRULE3(this.literal, ARG.maxSessions);
                  node.max = this.expectKind(v, KIND_INT, 'an integer', 'max');
                }),
            ]);
          });
        }),
    ]);
    return this.done(node);
  });

  restartMember = this.rule('restartMember', (): A.RestartMember => {
    const node = this.open(B.restartMember(this.startPos()));
    this.CONSUME(K.restart);
    this.OR(this.restartPolicyAlts);
    return this.done(node);
  });

  private restartPolicyAlts = {
    DEF: [
      alt(() => this.CONSUME(K.always)),
      alt(() => (this.CONSUME(K.never), (this.current<A.RestartMember>().policy = 'never'))),
      alt(() => {
        const node = this.current<A.RestartMember>();
        this.CONSUME(T.OnFailure);
        node.policy = 'on_failure';
        this.OPTION(() => {
          this.CONSUME(K.max);
          node.maxRetries = M_EXPR;
          const v = this.SUBRULE(this.literal, ARG.restarts);
          node.maxRetries = this.expectKind(v, KIND_INT, 'an integer', 'max');
        });
      }),
    ],
    ERR_MSG: '`always`, `on-failure` or `never`',
  };

  programMember = this.rule('programMember', (): A.ProgramMember => {
    const node = this.open(B.programMember(this.startPos()));
    this.CONSUME(K.program);
    this.CONSUME(T.LBrace, EXPECT.programOpen);
    this.MANY(this.programEntry);
    this.CONSUME(T.RBrace, EXPECT.programClose);
    return this.done(node);
  });

  private programEntry = (): void => {
    const e = this.OR(this.programEntryAlts) as A.ProgramEntry | undefined;
    if (e && !this.RECORDING_PHASE) this.current<A.ProgramMember>().entries.push(e);
  };

  private stringArg(tok: IToken): A.StringLiteral {
    return B.stringArg(this.literalFrom(tok));
  }

  scriptEntry = this.rule('scriptEntry', (): A.ScriptEntry => {
    const node = this.open(B.scriptEntry(this.startPos()));
    this.CONSUME(K.script);
    node.path = this.stringArg(this.CONSUME(T.StringLit, EXPECT.scriptPath));
    return this.done(node);
  });

  execEntry = this.rule('execEntry', (): A.ExecEntry => {
    const node = this.open(B.execEntry(this.startPos()));
    this.CONSUME(K.exec);
    node.argv = this.SUBRULE(this.listExpr);
    return this.done(node);
  });

  fileEntry = this.rule('fileEntry', (): A.FileEntry => {
    const node = this.open(B.fileEntry(this.startPos()));
    this.CONSUME(K.file);
    node.guestPath = this.stringArg(this.CONSUME(T.StringLit, EXPECT.guestPath));
    this.OR({ DEF: [
        alt(() => {
            this.CONSUME(T.Eq);
            node.source = { kind: 'inline', text: this.stringArg(this.CONSUME2(T.StringLit, EXPECT.fileContents)) };
          }),
        alt(() => {
            this.CONSUME(K.from);
            node.source = { kind: 'workspace', path: this.stringArg(this.CONSUME3(T.StringLit, EXPECT.workspacePath)) };
          }),
      ], ERR_MSG: '`=` or `from`' });
    return this.done(node);
  });

  envEntry = this.rule('envEntry', (): A.EnvEntry => {
    const node = this.open(B.envEntry(this.startPos()));
    this.CONSUME(K.env);
    node.vars = this.SUBRULE(this.mapExpr);
    return this.done(node);
  });

  // -------------------------------------------------------------------------
  // Systems

  systemDecl = this.rule('systemDecl', (): A.SystemDecl => {
    const node = this.open(B.systemDecl(this.startPos(), this.docOf()));
    this.CONSUME(K.system);
    node.name = this.mkIdent(this.CONSUME(T.Identifier, NAME.system));
    this.CONSUME(T.LBrace, EXPECT.systemOpen);
    this.MANY(() => {
      const m = this.OR(this.systemMemberAlts as never) as A.SystemMember | undefined;
      if (m && !this.RECORDING_PHASE) node.members.push(m);
    });
    this.CONSUME(T.RBrace, EXPECT.systemClose);
    return this.done(node);
  });

  instanceDecl = this.rule('instanceDecl', (): A.InstanceDecl => {
    const node = this.open(B.instanceDecl(this.startPos(), this.docOf()));
    node.name = this.mkIdent(this.CONSUME(T.Identifier, NAME.instance));
    this.CONSUME(T.Eq, EXPECT.instanceEquals);
    node.component = this.SUBRULE(this.qualifiedName, ARG.componentOrSystem);
    this.OPTION(() => {
      this.CONSUME(T.LBrace);
      this.MANY(() => {
        const s = this.OR(this.instanceSettingAlts) as A.InstanceSetting | undefined;
        if (s && !this.RECORDING_PHASE) node.settings.push(s);
      });
      this.CONSUME(T.RBrace, EXPECT.settingsClose);
    });
    return this.done(node);
  });

  paramOverride = this.rule('paramOverride', (): A.ParamOverride => {
    const node = this.open(B.paramOverride(this.startPos()));
    node.name = this.mkIdent(this.CONSUME(T.Identifier, NAME.param));
    this.CONSUME(T.Eq, EXPECT.overrideEquals);
    node.value = this.SUBRULE(this.expr);
    return this.done(node);
  });

  connectDecl = this.rule('connectDecl', (): A.ConnectDecl => {
    const node = this.open(B.connectDecl(this.startPos()));
    this.CONSUME(K.connect);
    node.from = this.SUBRULE(this.portRef);
    this.CONSUME(T.Arrow, EXPECT.connectArrow);
    // A list (a fan-out) or one port. Not an OR: a missing port must keep the
    // in-rule recovery of `portRef`, so that `connect a.x -> { rate 5/s }` still
    // parses its block.
    let listed = false;
    this.OPTION2(() => {
      const list = this.SUBRULE(this.portRefList);
      listed = true;
      if (this.RECORDING_PHASE) return;
      if (list.length > 0) {
        node.to = list[0];
        node.fanout = list.slice(1);
      } else this.report(Codes.FanOutForm, { start: this.LA(0).startOffset, end: this.endPos() }, 'the list of a fan-out names at least one port', 'list the ports the elements connect to: `-> [s0.kv, s1.kv]`');
    });
    if (this.RECORDING_PHASE || !listed) node.to = this.SUBRULE2(this.portRef);
    // Late binding: `| other.port` names further candidates of the channel.
    this.MANY2(() => {
      this.CONSUME(T.Pipe);
      const c = this.SUBRULE3(this.portRef);
      if (!this.RECORDING_PHASE) (node.candidates ??= []).push(c);
    });
    if (!this.RECORDING_PHASE) this.checkFanOut(node);
    this.OPTION(() => {
      this.CONSUME(T.LBrace);
      this.MANY(() => {
        const a = this.OR(this.channelAttrAlts) as A.ChannelAttr | undefined;
        if (a && !this.RECORDING_PHASE) node.attrs.push(a);
      });
      this.CONSUME(T.RBrace, EXPECT.channelClose);
    });
    return this.done(node);
  });

  /**
   * A fan-out has `[*]` on its left and a list on its right, and nothing else
   * does: `[*]` is where every element is wired, the list is where to.
   */
  private checkFanOut(node: A.ConnectDecl): void {
    const star = node.from.index?.value === '*';
    if (star && !node.fanout && node.to !== M_PORTREF) {
      this.report(Codes.FanOutForm, node.from.index!.span, '`[*]` connects every element of a port array, so the right-hand side is a list of ports', `write \`-> [a.p, b.p, ...]\` with one port per element, or name one element: \`${node.from.port.name}[0]\``);
    } else if (!star && node.fanout) {
      this.report(Codes.FanOutForm, node.from.span, 'a list of ports on the right connects the elements of a port array: write `[*]` after the array', `write \`connect ${node.from.instance.name}.${node.from.port.name}[*] -> [...]\``);
    }
    if (node.to.index?.value === '*') this.report(Codes.FanOutForm, node.to.index.span, '`[*]` belongs on the required port array of a fan-out, on the left', 'name the provided ports in a list on the right');
    for (const r of node.fanout ?? []) if (r.index?.value === '*') this.report(Codes.FanOutForm, r.index.span, '`[*]` belongs on the required port array of a fan-out, on the left', 'name one port per element');
  }

  rateAttr = this.rule('rateAttr', (): A.RateAttr => {
    const node = this.open(B.rateAttr(this.startPos()));
    this.CONSUME(K.rate);
    const v = this.SUBRULE(this.settingValue, ARG.rate);
    node.rate = v.kind === 'Ref' ? v : this.expectKind(v, KIND_RATE, 'a rate such as `500/s`', 'rate');
    this.OPTION(() => {
      this.CONSUME(K.burst);
      node.burst = M_EXPR;
      const b = this.SUBRULE2(this.literal, ARG.integer);
      node.burst = this.expectKind(b, KIND_INT, 'an integer', 'burst');
    });
    return this.done(node);
  });

  maxMessageAttr = this.rule('maxMessageAttr', (): A.MaxMessageAttr => {
    const node = this.open(B.maxMessageAttr(this.startPos()));
    this.CONSUME(K.max_message);
    const v = this.SUBRULE(this.literal, ARG.size);
    node.size = this.expectKind(v, KIND_SIZE, 'a size such as `256MiB`', 'max_message');
    return this.done(node);
  });

  timeoutAttr = this.rule('timeoutAttr', (): A.TimeoutAttr => {
    const node = this.open(B.timeoutAttr(this.startPos()));
    this.CONSUME(K.timeout);
    const v = this.SUBRULE(this.literal, ARG.duration);
    node.duration = this.expectKind(v, KIND_DURATION, 'a duration such as `2s`', 'timeout');
    return this.done(node);
  });

  allowAttr = this.rule('allowAttr', (): A.AllowAttr => {
    const node = this.open(B.allowAttr(this.startPos()));
    this.CONSUME(K.allow);
    node.ops.push(this.mkIdent(this.CONSUME(T.Identifier, NAME.operation)));
    this.MANY(() => {
      this.CONSUME(T.Comma);
      node.ops.push(this.mkIdent(this.CONSUME2(T.Identifier, NAME.operation)));
    });
    return this.done(node);
  });

  connectionAttr = this.rule('connectionAttr', (): A.ConnectionAttr => {
    const node = this.open(B.connectionAttr(this.startPos()));
    // One alternative per attribute, so that the grammar (not a runtime branch) says which value each takes.
    this.OR([
      alt(() => {
        this.CONSUME(K.max_connections);
        node.name = 'max_connections';
        const v = this.SUBRULE(this.literal, ARG.integer);
        node.value = this.expectKind(v, KIND_INT, 'an integer', 'max_connections');
      }),
      alt(() => {
        this.CONSUME(K.connection_rate);
        node.name = 'connection_rate';
        const v = this.SUBRULE2(this.literal, ARG.rate);
        node.value = this.expectKind(v, KIND_RATE, 'a rate such as `500/s`', 'connection_rate');
        this.OPTION(() => {
          this.CONSUME(K.burst);
          node.burst = M_EXPR;
          const b = this.SUBRULE3(this.literal, ARG.integer);
          node.burst = this.expectKind(b, KIND_INT, 'an integer', 'burst');
        });
      }),
      alt(() => {
        this.CONSUME(K.bandwidth);
        node.name = 'bandwidth';
        const v = this.SUBRULE4(this.literal, ARG.size);
        node.value = this.expectKind(v, KIND_SIZE, 'a size such as `256MiB`', 'bandwidth');
      }),
      alt(() => {
        this.CONSUME(K.idle_timeout);
        node.name = 'idle_timeout';
        const v = this.SUBRULE5(this.literal, ARG.duration);
        node.value = this.expectKind(v, KIND_DURATION, 'a duration such as `2s`', 'idle_timeout');
      }),
    ]);
    return this.done(node);
  });

  maxInflightAttr = this.rule('maxInflightAttr', (): A.MaxInflightAttr => {
    const node = this.open(B.maxInflightAttr(this.startPos()));
    this.CONSUME(K.max_inflight);
    const v = this.SUBRULE(this.literal, ARG.integer);
    node.count = this.expectKind(v, KIND_INT, 'an integer', 'max_inflight');
    return this.done(node);
  });

  declassifyAttr = this.rule('declassifyAttr', (): A.DeclassifyAttr => {
    const node = this.open(B.declassifyAttr(this.startPos()));
    this.CONSUME(K.declassifies);
    node.from = this.mkIdent(this.CONSUME(T.Identifier, NAME.label));
    this.CONSUME(T.Arrow, EXPECT.declassifiesArrow);
    node.to = this.mkIdent(this.CONSUME2(T.Identifier, NAME.label));
    return this.done(node);
  });

  queryAttr = this.rule('queryAttr', (): A.QueryAttr => {
    const node = this.open(B.queryAttr(this.startPos()));
    this.CONSUME(K.query);
    return this.done(node);
  });

  exposeDecl = this.rule('exposeDecl', (): A.ExposeDecl => {
    const node = this.open(B.exposeDecl(this.startPos()));
    this.CONSUME(K.expose);
    node.port = this.SUBRULE(this.portRef);
    node.spec = this.SUBRULE(this.exposeSpec);
    return this.done(node);
  });

  egressDecl = this.rule('egressDecl', (): A.EgressDecl => {
    const node = this.open(B.egressDecl(this.startPos()));
    this.CONSUME(K.egress);
    node.name = this.mkIdent(this.CONSUME(T.Identifier, NAME.egress));
    this.CONSUME(T.Colon, EXPECT.egressColon);
    node.port = this.SUBRULE(this.portRef);
    this.CONSUME(T.Arrow, EXPECT.egressArrow);
    const dest = this.CONSUME(T.StringLit, EXPECT.egressDestination);
    // A destination the parser had to invent is missing, not an empty address (that would be a second error).
    if (!dest.isInsertedInRecovery) node.destination = this.stringArg(dest);
    this.OPTION(() => {
      this.CONSUME(T.LBrace);
      this.MANY(() => {
        const a = this.OR(this.egressAttrAlts) as A.EgressAttr | undefined;
        if (a && !this.RECORDING_PHASE) node.attrs.push(a);
      });
      this.CONSUME(T.RBrace, EXPECT.egressClose);
    });
    return this.done(node);
  });

  exportDecl = this.rule('exportDecl', (): A.ExportDecl => {
    const node = this.open(B.exportDecl(this.startPos()));
    this.CONSUME(K.export);
    node.name = this.mkIdent(this.CONSUME(T.Identifier, NAME.exportedPort));
    this.CONSUME(T.Eq, EXPECT.exportEquals);
    node.port = this.SUBRULE(this.portRef);
    return this.done(node);
  });

  policyBlock = this.rule('policyBlock', (): A.PolicyBlock => {
    const node = this.open(B.policyBlock(this.startPos()));
    this.CONSUME(K.policy);
    this.CONSUME(T.LBrace, EXPECT.policyOpen);
    this.MANY(() => {
      const r = this.OR(this.policyRuleAlts as never) as A.PolicyRule | undefined;
      if (r && !this.RECORDING_PHASE) node.rules.push(r);
    });
    this.CONSUME(T.RBrace, EXPECT.policyClose);
    return this.done(node);
  });

  onlyRule = this.rule('onlyRule', (): A.OnlyRule => {
    const node = this.open(B.onlyRule(this.startPos()));
    node.target = this.SUBRULE(this.namePath, ARG.instance);
    this.CONSUME(K.only, EXPECT.only);
    this.OR({
      DEF: [alt(() => this.CONSUME(K.from)), alt(() => (this.CONSUME(K.through), (node.mode = 'through'))), alt(() => (this.CONSUME(K.to), (node.mode = 'to')))],
      ERR_MSG: '`from`, `through` or `to`',
    });
    node.sources.push(this.SUBRULE2(this.namePath, ARG.instance));
    this.MANY(() => {
      this.CONSUME(T.Comma);
      node.sources.push(this.SUBRULE3(this.namePath, ARG.instance));
    });
    return this.done(node);
  });

  noRule = this.rule('noRule', (): A.NoPathRule | A.NoFlowRule => {
    const start = this.startPos();
    const node = this.open(B.noPathRule(start));
    this.CONSUME(K.no);
    return this.OR({ DEF: [
        alt(() => {
            this.CONSUME(K.path);
            node.from = this.SUBRULE(this.namePath, ARG.ruleInstance);
            this.CONSUME(T.Arrow, EXPECT.pathArrow);
            node.to = this.SUBRULE2(this.namePath, ARG.instance);
            return this.done(node);
          }),
        alt(() => {
            this.CONSUME(K.flow);
            const flow = this.open(B.noFlowRule(start));
            flow.label = this.mkIdent(this.CONSUME3(T.Identifier, NAME.label));
            this.CONSUME2(T.Arrow, EXPECT.flowArrow);
            flow.to = this.SUBRULE3(this.namePath, ARG.instance);
            return this.done(flow);
          }),
      ], ERR_MSG: '`path` or `flow`' });
  });

  exposedOnlyRule = this.rule('exposedOnlyRule', (): A.ExposedOnlyRule => {
    const node = this.open(B.exposedOnlyRule(this.startPos()));
    this.CONSUME(K.exposed);
    this.CONSUME(K.only);
    this.CONSUME(T.LBracket, EXPECT.exposuresOpen);
    this.commaSeparated(this.portRef, 'exposures', (p) => node.ports.push(p));
    this.CONSUME(T.RBracket, EXPECT.exposuresClose);
    return this.done(node);
  });

  egressOnlyRule = this.rule('egressOnlyRule', (): A.EgressOnlyRule => {
    const node = this.open(B.egressOnlyRule(this.startPos()));
    this.CONSUME(K.egress);
    this.CONSUME(K.only);
    this.CONSUME(T.LBracket, EXPECT.egressesOpen);
    this.commaSeparated(this.egressName, 'egresses', (n) => node.names.push(n));
    this.CONSUME(T.RBracket, EXPECT.egressesClose);
    return this.done(node);
  });

  // An egress of a nested system is named by a dotted path (`shop.mail`), as instances are in rules.
  egressName = this.rule('egressName', (): A.Ident => this.SUBRULE(this.namePath, ARG.egress));

  apartRule = this.rule('apartRule', (): A.ApartRule => {
    const node = this.open(B.apartRule(this.startPos()));
    this.CONSUME(K.apart);
    node.instances.push(this.SUBRULE(this.namePath, ARG.instance));
    this.MANY(() => {
      this.CONSUME(T.Comma);
      node.instances.push(this.SUBRULE2(this.namePath, ARG.instance));
    });
    return this.done(node);
  });

  labelOnRule = this.rule('labelOnRule', (): A.LabelOnRule => {
    const node = this.open(B.labelOnRule(this.startPos()));
    this.CONSUME(K.label);
    node.label = this.mkIdent(this.CONSUME(T.Identifier, NAME.label));
    this.CONSUME(K.only, EXPECT.labelOnlyOn);
    this.CONSUME(K.on, EXPECT.labelOnlyOn);
    this.CONSUME(T.LBracket, EXPECT.hostsOpen);
    this.commaSeparated(this.targetName, 'targets', (t) => node.targets.push(t));
    this.CONSUME(T.RBracket, EXPECT.targetsClose);
    return this.done(node);
  });

  /** `[node1, node2]` after `deploy ... to`. */
  targetList = this.rule('targetList', (): A.Ident[] => {
    const targets: A.Ident[] = [];
    this.CONSUME(T.LBracket);
    this.commaSeparated(this.targetName, 'targets', (t) => targets.push(t));
    this.CONSUME(T.RBracket, EXPECT.targetsClose);
    return targets;
  }, 'list');

  /** A target's name in a list of targets: one name or a dotted path, as after `deploy ... to`. */
  targetName = this.rule('targetName', (): A.Ident => this.SUBRULE(this.namePath, ARG.target), 'Ident');

  budgetRule = this.rule('budgetRule', (): A.BudgetRule => {
    const node = this.open(B.budgetRule(this.startPos()));
    this.CONSUME(K.budget);
    this.OR({ DEF: [
        alt(() => {
            this.CONSUME(K.memory);
            const v = this.SUBRULE(this.settingValue, ARG.size);
            node.value = v.kind === 'Ref' ? v : this.expectKind(v, KIND_SIZE, 'a size such as `256MiB`', 'budget memory');
          }),
        alt(() => {
            this.CONSUME(K.vcpus);
            node.resource = 'vcpus';
            const v = this.SUBRULE2(this.settingValue, ARG.integer);
            node.value = v.kind === 'Ref' ? v : this.expectKind(v, KIND_INT, 'an integer', 'budget vcpus');
          }),
      ], ERR_MSG: '`memory` or `vcpus`' });
    return this.done(node);
  });

  // -------------------------------------------------------------------------
  // Images, labels, targets, deploy

  imageDecl = this.rule('imageDecl', (): A.ImageDecl => {
    const node = this.open(B.imageDecl(this.startPos(), this.docOf()));
    this.CONSUME(K.image);
    node.name = this.mkIdent(this.CONSUME(T.Identifier, NAME.image));
    node.props = this.SUBRULE(this.propertyBlock) ?? [];
    return this.done(node);
  });

  targetDecl = this.rule('targetDecl', (): A.TargetDecl => {
    const node = this.open(B.targetDecl(this.startPos(), this.docOf()));
    this.CONSUME(K.target);
    node.name = this.mkIdent(this.CONSUME(T.Identifier, NAME.target));
    node.props = this.SUBRULE(this.propertyBlock) ?? [];
    return this.done(node);
  });

  propertyBlock = this.rule('propertyBlock', (): A.Property[] => {
    const props: A.Property[] = [];
    this.CONSUME(T.LBrace, EXPECT.propertiesOpen);
    this.MANY(() => {
      this.OR([
        alt(() => props.push(this.SUBRULE(this.property))),
        alt(() => this.sep()),
        alt(() => this.stray(this.CONSUME(T.StrayIdentBlock), T.StrayIdentBlock, 'a property')),
      ]);
    });
    this.CONSUME(T.RBrace, EXPECT.blockClose);
    return props;
  }, 'list');

  property = this.rule('property', (): A.Property => {
    const node = this.open(B.property(this.startPos()));
    node.key = this.mkIdent(this.CONSUME(T.Identifier, NAME.property));
    node.value = this.SUBRULE(this.expr, ARG.propertyValue);
    return this.done(node);
  });

  labelsDecl = this.rule('labelsDecl', (): A.LabelsDecl => {
    const node = this.open(B.labelsDecl(this.startPos(), this.docOf()));
    this.CONSUME(K.labels);
    this.CONSUME(T.LBrace, EXPECT.labelsOpen);
    this.MANY(() => {
      this.OR([
        alt(() => {
            const chain: A.Ident[] = [this.mkIdent(this.CONSUME(T.Identifier, NAME.label))];
            this.MANY2(() => {
              this.CONSUME(T.Lt);
              chain.push(this.mkIdent(this.CONSUME2(T.Identifier, NAME.labelAfterLt)));
            });
            node.chains.push(chain);
          }),
        alt(() => this.sep()),
        alt(() => this.stray(this.CONSUME(T.StrayIdentBlock), T.StrayIdentBlock, 'a label chain')),
      ]);
    });
    this.CONSUME(T.RBrace, EXPECT.labelsClose);
    return this.done(node);
  });

  deployDecl = this.rule('deployDecl', (): A.DeployDecl => {
    const node = this.open(B.deployDecl(this.startPos(), this.docOf()));
    this.CONSUME(K.deploy);
    node.system = this.SUBRULE(this.qualifiedName, ARG.deployedSystem);
    this.OPTION(() => {
      this.CONSUME(K.to);
      this.OR([
        alt(() => (node.target = this.SUBRULE2(this.namePath, ARG.target))),
        alt(() => {
            const targets = this.SUBRULE(this.targetList);
            if (!this.RECORDING_PHASE) node.targets = targets;
          }),
      ]);
    });
    this.OPTION2(() => {
      this.CONSUME(T.LBrace);
      const placements: A.Placement[] = [];
      this.MANY(() => {
        this.OR2([
          alt(() => placements.push(this.SUBRULE(this.placeMember))),
          alt(() => this.sep()),
          alt(() => this.stray(this.CONSUME(T.StrayIdentBlock), T.StrayIdentBlock, 'a placement (`place db on node1`)')),
        ]);
      });
      this.CONSUME(T.RBrace, EXPECT.deployClose);
      if (!this.RECORDING_PHASE) node.placements = placements;
    });
    return this.done(node);
  });

  placeMember = this.rule('placeMember', (): A.Placement => {
    const node = this.open(B.placement(this.startPos()));
    this.CONSUME(K.place);
    node.instance = this.SUBRULE(this.namePath, ARG.instance);
    this.CONSUME(K.on, EXPECT.placeOn);
    node.target = this.SUBRULE2(this.namePath, ARG.target);
    return this.done(node);
  });
}

const NEVER_DELETED = new Set<TokenType>([
  T.LBrace, T.RBrace, T.LParen, T.RParen, T.LBracket, T.RBracket,
  K.import, K.type, K.protocol, K.component, K.system, K.image, K.labels, K.target, K.deploy,
  K.connect, K.expose, K.export, K.policy, K.param, K.provide, K.require,
]);

/** Rules of one member or declaration: after one of them fails, the rest of its line is skipped. */
const LINE_RULES = new Set([
  'importDecl', 'typeDecl', 'deployDecl', 'field', 'variant', 'operation',
  'imageMember', 'memoryMember', 'vcpusMember', 'labelMember', 'declassifyMember', 'paramDecl', 'portDecl', 'factorySpec',
  'instancesMember', 'restartMember', 'scriptEntry', 'execEntry', 'fileEntry', 'envEntry',
  'instanceDecl', 'connectDecl', 'exposeDecl', 'egressDecl', 'exportDecl', 'paramOverride',
  'rateAttr', 'maxMessageAttr', 'timeoutAttr', 'allowAttr', 'maxInflightAttr', 'declassifyAttr', 'queryAttr', 'connectionAttr',
  'onlyRule', 'noRule', 'exposedOnlyRule', 'egressOnlyRule', 'budgetRule', 'apartRule', 'labelOnRule', 'placeMember', 'property',
]);

function hasNewline(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 13) return true;
  }
  return false;
}

/**
 * One alternative of an OR. Written as a call rather than an object literal so
 * that bundlers which preserve function names (tsx, esbuild's keepNames) do not
 * wrap every alternative in a naming call each time a rule runs.
 */
/** The tokens that may follow a field name: a reserved word followed by one of these is taken as a name. */
const NAME_FOLLOW = {
  field: new Set<TokenType>([T.Colon, T.Question]),
};

function alt<R>(ALT: () => R): { ALT: () => R } {
  return { ALT };
}

const STRAY_KEYWORDS = new Map<TokenType, ReadonlySet<string>>([
  [T.StrayTop, T.MEMBER_KEYWORDS.top],
  [T.StrayComponent, T.MEMBER_KEYWORDS.component],
  [T.StrayAttr, T.MEMBER_KEYWORDS.attr],
  [T.StrayProgram, T.MEMBER_KEYWORDS.program],
  [T.StrayProtocol, T.MEMBER_KEYWORDS.protocol],
]);

/** The keyword closest to `word` by edit distance, if it is close enough to be a typo. */
export function closestWord(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance > 0 && bestDistance <= Math.max(1, Math.floor(best.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return Infinity;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

function opens(t: IToken): boolean {
  const ty = t.tokenType;
  return ty === T.LBrace || ty === T.LParen || ty === T.LBracket;
}
function closes(t: IToken): boolean {
  const ty = t.tokenType;
  return ty === T.RBrace || ty === T.RParen || ty === T.RBracket;
}
function isOpKeyword(t: IToken): boolean {
  const ty = t.tokenType;
  return ty === K.call || ty === K.send || ty === K.notify || ty === K.order;
}

function describeExpr(e: A.Expr): string {
  switch (e.kind) {
    case 'Int':
      return `the integer \`${e.raw}\``;
    case 'Float':
      return `the number \`${e.raw}\``;
    case 'String':
      return `the string ${e.raw}`;
    case 'Bool':
      return `\`${e.value}\``;
    case 'Size':
      return `the size \`${e.raw}\``;
    case 'Duration':
      return `the duration \`${e.raw}\``;
    case 'Rate':
      return `the rate \`${e.raw}\``;
    case 'List':
      return 'a list';
    case 'Map':
      return 'a map';
    case 'Ref':
      return `the name \`${e.name.parts.map((p) => p.name).join('.')}\``;
    case 'MissingExpr':
      return 'nothing';
  }
}
