// Token types shared by the lexer and the parser.
//
// The lexer is hand-written (see lexer.ts) and produces Chevrotain `IToken`
// objects directly, so every token type here has the pattern `Lexer.NA`.
// Contextual keywords carry the `Identifier` category: the parser consumes them
// as keywords where the grammar expects one and as names everywhere else.
//
// The `Stray*` categories drive error recovery. Each block kind (component body,
// system body, ...) has a category holding every token that can neither start a
// member of that block nor end it. The block's repetition has an alternative that
// consumes such a token, reports it once and skips the rest of the run, so the
// parser resynchronises at the next member boundary instead of giving up on the
// whole declaration.

import { createToken, Lexer, type TokenType } from 'chevrotain';

export const Identifier = createToken({ name: 'Identifier', pattern: Lexer.NA });

export const StrayTop = createToken({ name: 'StrayTop', pattern: Lexer.NA });
export const StrayComponent = createToken({ name: 'StrayComponent', pattern: Lexer.NA });
export const StraySystem = createToken({ name: 'StraySystem', pattern: Lexer.NA });
export const StrayIdentBlock = createToken({ name: 'StrayIdentBlock', pattern: Lexer.NA });
export const StrayAttr = createToken({ name: 'StrayAttr', pattern: Lexer.NA });
export const StrayProgram = createToken({ name: 'StrayProgram', pattern: Lexer.NA });
export const StrayProtocol = createToken({ name: 'StrayProtocol', pattern: Lexer.NA });
export const StraySettings = createToken({ name: 'StraySettings', pattern: Lexer.NA });
/**
 * Every reserved word. Where a record field, union variant or enum member is
 * expected, a reserved word is parsed as one and reported (it must be quoted,
 * `"type": string`), so the message says "reserved word" instead of
 * "unexpected input".
 */
export const ReservedWord = createToken({ name: 'ReservedWord', pattern: Lexer.NA });

/** How a token is classified for editors (semantic tokens) and for messages. */
export type TokenKind =
  | 'keyword'
  | 'contextualKeyword'
  | 'identifier'
  | 'string'
  | 'int'
  | 'float'
  | 'size'
  | 'duration'
  | 'rate'
  | 'bool'
  | 'punctuation'
  | 'operator';

export interface TokenInfo {
  type: TokenType;
  kind: TokenKind;
  /** The exact text for keywords and punctuation, a description otherwise. */
  text: string;
}

const infos: TokenInfo[] = [];
const byName = new Map<string, TokenType>();

/** Token types whose tokens can start a member of each block; they are excluded from that block's stray category. */
const starters: Record<string, Set<string>> = {
  top: new Set(['import', 'type', 'protocol', 'component', 'system', 'image', 'labels', 'target', 'deploy']),
  component: new Set([
    'image', 'memory', 'vcpus', 'label', 'declassifies', 'param', 'provide', 'require', 'expose',
    'single', 'replicas', 'per', 'restart', 'program',
  ]),
  system: new Set(['connect', 'expose', 'export', 'policy', 'egress']),
  attr: new Set(['rate', 'max_message', 'timeout', 'allow', 'max_inflight', 'declassifies', 'query', 'max_connections', 'connection_rate', 'bandwidth', 'idle_timeout']),
  program: new Set(['script', 'exec', 'file', 'env']),
  protocol: new Set(['call', 'send', 'notify', 'order']),
};

/** Tokens that never count as stray: block ends, separators, and declaration keywords (where recovery resynchronises). */
const neverStray = new Set(['}', ';', ',', ...starters.top]);

function define(name: string, kind: TokenKind, text: string): TokenType {
  const identLike = kind === 'contextualKeyword' || kind === 'identifier';
  const categories: TokenType[] = [];
  if (identLike) categories.push(Identifier);
  if ((kind === 'keyword' || kind === 'bool') && text !== 'on-failure') categories.push(ReservedWord);
  if (!neverStray.has(text)) {
    categories.push(StrayTop);
    if (!starters.component.has(text)) categories.push(StrayComponent);
    if (!identLike && !starters.system.has(text)) categories.push(StraySystem);
    if (!identLike) categories.push(StrayIdentBlock, StraySettings);
    if (!starters.attr.has(text)) categories.push(StrayAttr);
    if (!starters.program.has(text)) categories.push(StrayProgram);
    if (!starters.protocol.has(text)) categories.push(StrayProtocol);
  }
  const type = createToken({ name, pattern: Lexer.NA, categories });
  infos.push({ type, kind, text });
  byName.set(name, type);
  return type;
}

/**
 * A plain name. `Identifier` is only a category (categories are transitive in
 * Chevrotain, so it must not carry the stray categories itself); grammar rules
 * that accept a name consume `Identifier`, which matches plain names and
 * contextual keywords alike.
 */
export const Name = define('Name', 'identifier', 'a name');

export const RESERVED_WORDS = [
  'import', 'type', 'protocol', 'component', 'system', 'image', 'labels', 'target', 'deploy', 'enum', 'union',
  'list', 'map', 'bool', 'int', 'int64', 'float', 'string', 'bytes', 'true', 'false', 'connect', 'export', 'policy',
  'param', 'provide', 'require', 'expose',
] as const;

export const CONTEXTUAL_KEYWORDS = [
  'as', 'memory', 'vcpus', 'label', 'declassifies', 'optional', 'on', 'tcp', 'replicas', 'per', 'session', 'pool',
  'max', 'min', 'single', 'restart', 'always', 'never', 'program', 'script', 'exec', 'file', 'from', 'env', 'call',
  'send', 'notify', 'order', 'only', 'through', 'no', 'path', 'flow', 'exposed', 'budget', 'rate', 'burst',
  'max_message', 'timeout', 'allow', 'max_inflight', 'sensitive', 'to', 'pattern', 'query', 'max_connections',
  'connection_rate', 'bandwidth', 'idle_timeout', 'factory', 'created', 'by', 'detached', 'egress', 'place', 'apart',
] as const;

function keywordName(word: string): string {
  return 'Kw_' + word;
}

/** Reserved words and contextual keywords by their text. */
export const KEYWORDS = new Map<string, TokenType>();
for (const w of RESERVED_WORDS) KEYWORDS.set(w, define(keywordName(w), w === 'true' || w === 'false' ? 'bool' : 'keyword', w));
for (const w of CONTEXTUAL_KEYWORDS) KEYWORDS.set(w, define(keywordName(w), 'contextualKeyword', w));

/** `on-failure` is one token: it is a keyword of `restart` and cannot be a name. */
export const OnFailure = define('OnFailure', 'keyword', 'on-failure');

export const IntLit = define('IntLit', 'int', 'an integer');
export const FloatLit = define('FloatLit', 'float', 'a number');
export const StringLit = define('StringLit', 'string', 'a string');
export const SizeLit = define('SizeLit', 'size', 'a size');
export const DurationLit = define('DurationLit', 'duration', 'a duration');
export const RateLit = define('RateLit', 'rate', 'a rate');

export const LBrace = define('LBrace', 'punctuation', '{');
export const RBrace = define('RBrace', 'punctuation', '}');
export const LParen = define('LParen', 'punctuation', '(');
export const RParen = define('RParen', 'punctuation', ')');
export const LBracket = define('LBracket', 'punctuation', '[');
export const RBracket = define('RBracket', 'punctuation', ']');
export const Lt = define('Lt', 'operator', '<');
export const Gt = define('Gt', 'operator', '>');
export const Comma = define('Comma', 'punctuation', ',');
export const Semi = define('Semi', 'punctuation', ';');
export const Colon = define('Colon', 'punctuation', ':');
export const Dot = define('Dot', 'punctuation', '.');
export const DotDot = define('DotDot', 'operator', '..');
export const Eq = define('Eq', 'operator', '=');
export const Arrow = define('Arrow', 'operator', '->');
export const Pipe = define('Pipe', 'operator', '|');
export const Star = define('Star', 'operator', '*');
export const Plus = define('Plus', 'operator', '+');
export const Question = define('Question', 'operator', '?');

function kw(word: string): TokenType {
  const t = KEYWORDS.get(word);
  if (!t) throw new Error(`no keyword ${word}`);
  return t;
}

/** Keyword token types by their text, for the grammar. */
export const K = {
  import: kw('import'), type: kw('type'), protocol: kw('protocol'), component: kw('component'), system: kw('system'),
  image: kw('image'), labels: kw('labels'), target: kw('target'), deploy: kw('deploy'), enum: kw('enum'),
  union: kw('union'), list: kw('list'), map: kw('map'), bool: kw('bool'), int: kw('int'), int64: kw('int64'), float: kw('float'),
  string: kw('string'), bytes: kw('bytes'), true: kw('true'), false: kw('false'), connect: kw('connect'),
  export: kw('export'), policy: kw('policy'), param: kw('param'), provide: kw('provide'), require: kw('require'),
  expose: kw('expose'), as: kw('as'), memory: kw('memory'), vcpus: kw('vcpus'), label: kw('label'),
  declassifies: kw('declassifies'), optional: kw('optional'), on: kw('on'), tcp: kw('tcp'), replicas: kw('replicas'),
  per: kw('per'), session: kw('session'), pool: kw('pool'), max: kw('max'), min: kw('min'), single: kw('single'),
  restart: kw('restart'), always: kw('always'), never: kw('never'), program: kw('program'), script: kw('script'),
  exec: kw('exec'), file: kw('file'), from: kw('from'), env: kw('env'), call: kw('call'), send: kw('send'),
  notify: kw('notify'), order: kw('order'), only: kw('only'), through: kw('through'), no: kw('no'), path: kw('path'),
  flow: kw('flow'), exposed: kw('exposed'), budget: kw('budget'), rate: kw('rate'), burst: kw('burst'),
  max_message: kw('max_message'), timeout: kw('timeout'), allow: kw('allow'), max_inflight: kw('max_inflight'),
  sensitive: kw('sensitive'), to: kw('to'), pattern: kw('pattern'), query: kw('query'), max_connections: kw('max_connections'),
  connection_rate: kw('connection_rate'), bandwidth: kw('bandwidth'), idle_timeout: kw('idle_timeout'),
  factory: kw('factory'), created: kw('created'), by: kw('by'), detached: kw('detached'),
  egress: kw('egress'), place: kw('place'), apart: kw('apart'),
} as const;

/** Every concrete token type, in a fixed order (the parser's vocabulary). */
export const allTokenTypes: TokenType[] = [
  Identifier,
  ...infos.map((i) => i.type),
  StrayTop, StrayComponent, StraySystem, StrayIdentBlock, StrayAttr, StrayProgram, StrayProtocol, StraySettings,
  ReservedWord,
];

const infoByType = new Map<TokenType, TokenInfo>(infos.map((i) => [i.type, i]));

export function tokenInfo(type: TokenType): TokenInfo | undefined {
  return infoByType.get(type);
}

/** Words that begin a top-level declaration or import. */
export const DECL_START_WORDS = starters.top;

/** The keywords that start a member of each block kind, for "did you mean" suggestions. */
export const MEMBER_KEYWORDS: Readonly<Record<'top' | 'component' | 'system' | 'attr' | 'program' | 'protocol', ReadonlySet<string>>> = starters as never;
