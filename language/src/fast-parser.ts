// The fast path of the syntax layer: a hand-written recursive-descent
// recogniser for files without syntax errors.
//
// The Chevrotain parser (parser.ts) is the reference: it defines the grammar,
// recovers from errors and phrases every syntax diagnostic. Most files have no
// syntax errors, though, and for them Chevrotain's general machinery (rule
// invocation, lookahead functions, recovery bookkeeping) costs about as much as
// lexing. This recogniser reads the same token array, takes at every decision
// the branch the Chevrotain parser takes for the same tokens, and builds the
// nodes with the same builders (build.ts), so for every file it accepts the tree
// is exactly the Chevrotain parser's. It gives up (returns undefined) at the
// first token the grammar does not allow there, and wherever the Chevrotain
// parser would report a diagnostic of its own (a wrong literal kind, an import
// after a declaration, a missing comma, a stray token, nesting that is too deep,
// ...); `parse` then runs the Chevrotain parser on the file, which is the only
// place diagnostics come from. The differential property tests check the
// agreement on generated, mutated and real files.
//
// Lookahead mirrors Chevrotain's: a repetition or option with nothing after it
// in its rule continues on its first token alone (so `allow a, }` is an error,
// not a trailing separator), and the gated alternatives of instance settings
// and policy rules decide on the second or third token exactly as the gates do.

import type * as A from './ast';
import * as B from './build';
import type { Token } from './lexer';
import * as T from './tokens';

const { K } = T;

/** Thrown (never an Error, so it carries no stack trace) to abandon the fast path; caught in fastParse. */
const GIVE_UP = { giveUp: true };

// Token type indices, compared as small integers.
const idx = (t: { tokenTypeIdx?: number }): number => t.tokenTypeIdx!;
const LBRACE = idx(T.LBrace), RBRACE = idx(T.RBrace), LPAREN = idx(T.LParen), RPAREN = idx(T.RParen);
const LBRACKET = idx(T.LBracket), RBRACKET = idx(T.RBracket), LT = idx(T.Lt), GT = idx(T.Gt);
const COMMA = idx(T.Comma), SEMI = idx(T.Semi), COLON = idx(T.Colon), DOT = idx(T.Dot), DOTDOT = idx(T.DotDot);
const EQ = idx(T.Eq), ARROW = idx(T.Arrow), PIPE = idx(T.Pipe), STAR = idx(T.Star), PLUS = idx(T.Plus), QUESTION = idx(T.Question);
const INT = idx(T.IntLit), FLOAT = idx(T.FloatLit), STRING = idx(T.StringLit), SIZE = idx(T.SizeLit);
const DURATION = idx(T.DurationLit), RATE = idx(T.RateLit), ON_FAILURE = idx(T.OnFailure);
const KW = Object.fromEntries(Object.entries(K).map(([w, t]) => [w, idx(t)])) as Record<keyof typeof K, number>;

const size = T.allTokenTypes.reduce((n, t) => Math.max(n, idx(t) + 1), 0);
/** Token types that count as names: plain names and contextual keywords (the `Identifier` category). */
const IS_NAME = new Uint8Array(size);
IS_NAME[idx(T.Name)] = 1;
for (const w of T.CONTEXTUAL_KEYWORDS) IS_NAME[idx(T.KEYWORDS.get(w)!)] = 1;
/** Literal tokens (`literal` rule), and the number-like ones (`numberLike` rule). */
const IS_LITERAL = new Uint8Array(size);
for (const t of [INT, FLOAT, STRING, SIZE, DURATION, RATE, KW.true, KW.false]) IS_LITERAL[t] = 1;
const IS_NUMBER = new Uint8Array(size);
for (const t of [INT, FLOAT, SIZE]) IS_NUMBER[t] = 1;
/** First tokens of a type. */
const STARTS_TYPE = new Uint8Array(size);
for (const t of [KW.bool, KW.int, KW.float, KW.string, KW.bytes, KW.list, KW.map, LBRACE, KW.enum, KW.union]) STARTS_TYPE[t] = 1;
for (let i = 0; i < size; i++) if (IS_NAME[i]) STARTS_TYPE[i] = 1;
/** First tokens of a value. */
const STARTS_EXPR = new Uint8Array(size);
for (let i = 0; i < size; i++) if (IS_NAME[i] || IS_LITERAL[i]) STARTS_EXPR[i] = 1;
STARTS_EXPR[LBRACKET] = 1;
STARTS_EXPR[LBRACE] = 1;
/** First tokens of a constraint. */
const STARTS_CONSTRAINT = new Uint8Array(size);
for (const t of [KW.max, KW.min, KW.pattern, INT, FLOAT, SIZE, DOTDOT]) STARTS_CONSTRAINT[t] = 1;
/** First tokens of a map entry. */
const STARTS_ENTRY = new Uint8Array(size);
for (let i = 0; i < size; i++) if (IS_NAME[i]) STARTS_ENTRY[i] = 1;
STARTS_ENTRY[STRING] = 1;

/**
 * Nesting of types, values and order expressions beyond which the fast path
 * gives up. Each level costs the Chevrotain parser at most four rules on its
 * rule stack and a file at most six more, so the Chevrotain parser's own limit
 * (MAX_NESTING rules, which it reports) is never reached below this depth.
 */
const MAX_FAST_NESTING = 24;

/** Parses a file's tokens without error handling; undefined when the file needs the Chevrotain parser. */
export function fastParse(tokens: Token[]): { imports: A.ImportDecl[]; decls: A.Decl[] } | undefined {
  try {
    return new FastParser(tokens).sourceFile();
  } catch {
    // GIVE_UP, or (a bug here) anything else: the Chevrotain parser decides.
    return undefined;
  }
}

class FastParser {
  private i = 0;
  private nesting = 0;
  private readonly n: number;

  constructor(private readonly toks: Token[]) {
    this.n = toks.length;
  }

  // -------------------------------------------------------------------------
  // Token access

  /** Type index of the token `k` ahead (1 = next), -1 at the end of the input. */
  private la(k: number): number {
    const j = this.i + k - 1;
    return j < this.n ? this.toks[j].tokenTypeIdx : -1;
  }

  private next(): number {
    return this.i < this.n ? this.toks[this.i].tokenTypeIdx : -1;
  }

  /** Start of the next token; only called where one exists. */
  private start(): number {
    return this.toks[this.i].startOffset;
  }

  /** Just past the last consumed token. */
  private end(): number {
    return this.toks[this.i - 1].endOffset + 1;
  }

  private expect(type: number): Token {
    const t = this.toks[this.i];
    if (t === undefined || t.tokenTypeIdx !== type) throw GIVE_UP;
    this.i++;
    return t;
  }

  private name(): A.Ident {
    const t = this.toks[this.i];
    if (t === undefined || IS_NAME[t.tokenTypeIdx] !== 1) throw GIVE_UP;
    this.i++;
    return B.ident(t);
  }

  private done<N extends { span: A.Span }>(node: N): N {
    node.span.end = this.end();
    return node;
  }

  /** A `literal` whose kind the setting accepts; any other kind is a diagnostic, so the fast path gives up. */
  private literalOf(kinds: readonly string[]): A.Expr {
    const t = this.toks[this.i];
    if (t === undefined || IS_LITERAL[t.tokenTypeIdx] !== 1) throw GIVE_UP;
    this.i++;
    const e = B.literal(t);
    if (!B.hasKind(e, kinds)) throw GIVE_UP;
    return e;
  }

  private isSep(t: number): boolean {
    return t === SEMI || t === COMMA;
  }

  /**
   * Members that each start with a name (fields, enum members, variants,
   * properties, label chains), separated or not, up to the closing brace,
   * which it consumes.
   */
  private named<T>(out: T[], member: () => T): void {
    for (;;) {
      const t = this.next();
      if (t >= 0 && IS_NAME[t] === 1) out.push(member());
      else if (this.isSep(t)) this.i++;
      else break;
    }
    this.expect(RBRACE);
  }

  /**
   * Items separated by commas up to the closing bracket: a trailing comma is
   * fine, two items without a comma between them are a diagnostic.
   */
  private commaSeparated<N>(starts: Uint8Array, item: () => N, out: N[]): void {
    let needComma = false;
    for (;;) {
      const t = this.next();
      if (t === COMMA) {
        this.i++;
        needComma = false;
      } else if (t >= 0 && starts[t] === 1) {
        if (needComma) throw GIVE_UP;
        out.push(item());
        needComma = true;
      } else return;
    }
  }

  // -------------------------------------------------------------------------
  // Names

  private qualifiedName(): A.QualifiedName {
    const node = B.qualifiedName(this.start());
    node.parts.push(this.name());
    while (this.next() === DOT) {
      this.i++;
      node.parts.push(this.name());
    }
    return this.done(node);
  }

  private portRef = (): A.PortRef => {
    const node = B.portRef(this.start());
    node.instance = this.name();
    this.expect(DOT);
    node.port = this.name();
    return this.done(node);
  };

  // -------------------------------------------------------------------------
  // File

  sourceFile(): { imports: A.ImportDecl[]; decls: A.Decl[] } {
    const imports: A.ImportDecl[] = [];
    const decls: A.Decl[] = [];
    while (this.i < this.n) {
      const t = this.toks[this.i].tokenTypeIdx;
      if (t === KW.component) decls.push(this.componentDecl());
      else if (t === KW.system) decls.push(this.systemDecl());
      else if (t === KW.type) decls.push(this.typeDecl());
      else if (t === KW.protocol) decls.push(this.protocolDecl());
      else if (t === KW.import) {
        // An import after a declaration is reported.
        if (decls.length > 0) throw GIVE_UP;
        imports.push(this.importDecl());
      } else if (t === KW.image) decls.push(this.imageOrTarget(B.imageDecl));
      else if (t === KW.target) decls.push(this.imageOrTarget(B.targetDecl));
      else if (t === KW.labels) decls.push(this.labelsDecl());
      else if (t === KW.deploy) decls.push(this.deployDecl());
      else if (this.isSep(t)) this.i++;
      else throw GIVE_UP;
    }
    return { imports, decls };
  }

  private importDecl(): A.ImportDecl {
    const start = this.start();
    this.i++;
    if (this.i >= this.n) throw GIVE_UP;
    const module = B.modulePath(this.start());
    const node = B.importDecl(start, module);
    module.parts.push(this.name());
    while (this.next() === DOT && IS_NAME[this.la(2)] === 1) {
      this.i++;
      module.parts.push(this.name());
    }
    B.closeModulePath(module);
    // Without `.{...}` or `.*` the import is reported.
    this.expect(DOT);
    const t = this.next();
    if (t === LBRACE) {
      this.i++;
      const items: A.ImportItem[] = [];
      this.commaSeparated(IS_NAME, this.importItem, items);
      this.expect(RBRACE);
      node.items = items;
    } else if (t === STAR) {
      this.i++;
      node.items = '*';
    } else throw GIVE_UP;
    return this.done(node);
  }

  private importItem = (): A.ImportItem => {
    const node = B.importItem(this.start());
    node.name = this.name();
    if (this.next() === KW.as) {
      this.i++;
      node.alias = this.name();
    }
    return this.done(node);
  };

  // -------------------------------------------------------------------------
  // Types

  private typeDecl(): A.TypeDecl {
    const tok = this.toks[this.i];
    const node = B.typeDecl(tok.startOffset, tok.doc);
    this.i++;
    node.name = this.name();
    this.expect(EQ);
    node.type = this.typeExpr();
    return this.done(node);
  }

  private typeExpr = (): A.TypeExpr => {
    if (++this.nesting > MAX_FAST_NESTING) throw GIVE_UP;
    const t = this.next();
    let r: A.TypeExpr;
    if (t === KW.int || t === KW.string || t === KW.bool || t === KW.float || t === KW.bytes) r = this.primitiveType();
    else if (t === KW.list) r = this.listType();
    else if (t === KW.map) r = this.mapType();
    else if (t === LBRACE) r = this.recordType();
    else if (t === KW.enum) r = this.enumType();
    else if (t === KW.union) r = this.unionType();
    else if (t >= 0 && IS_NAME[t] === 1) {
      const start = this.start();
      const name = this.qualifiedName();
      r = B.namedType(name, start, this.end());
    } else throw GIVE_UP;
    this.nesting--;
    return r;
  };

  private primitiveType(): A.PrimitiveType {
    const tok = this.toks[this.i];
    const node = B.primitiveType(tok.startOffset);
    this.i++;
    node.name = tok.image as A.PrimitiveName;
    if (this.next() === LPAREN) node.constraints = this.constraints();
    return this.done(node);
  }

  private listType(): A.ListType {
    const node = B.listType(this.start());
    this.i++;
    this.expect(LT);
    node.element = this.typeExpr();
    this.expect(GT);
    if (this.next() === LPAREN) node.constraints = this.constraints();
    return this.done(node);
  }

  private mapType(): A.MapType {
    const node = B.mapType(this.start());
    this.i++;
    this.expect(LT);
    node.key = this.typeExpr();
    this.expect(COMMA);
    node.value = this.typeExpr();
    this.expect(GT);
    if (this.next() === LPAREN) node.constraints = this.constraints();
    return this.done(node);
  }

  private constraints(): A.Constraint[] {
    const list: A.Constraint[] = [];
    this.i++;
    this.commaSeparated(STARTS_CONSTRAINT, this.constraint, list);
    this.expect(RPAREN);
    return list;
  }

  private constraint = (): A.Constraint => {
    const tok = this.toks[this.i];
    const start = tok.startOffset;
    const t = tok.tokenTypeIdx;
    if (t === KW.max || t === KW.min) {
      this.i++;
      return this.done(B.boundConstraint(tok.image as 'min' | 'max', this.numberLike(), start));
    }
    if (t === KW.pattern) {
      this.i++;
      return this.done(B.patternConstraint(B.literal(this.expect(STRING)), start));
    }
    const node = B.rangeConstraint(start);
    if (t === DOTDOT) {
      this.i++;
      node.max = this.numberLike();
      return this.done(node);
    }
    node.min = this.numberLike();
    // A single number is reported.
    this.expect(DOTDOT);
    const u = this.next();
    if (u >= 0 && IS_NUMBER[u] === 1) node.max = this.numberLike();
    return this.done(node);
  };

  private numberLike(): A.NumberLike {
    const t = this.toks[this.i];
    if (t === undefined || IS_NUMBER[t.tokenTypeIdx] !== 1) throw GIVE_UP;
    this.i++;
    return B.literal(t) as A.NumberLike;
  }

  private recordType(): A.RecordType {
    const node = B.recordType(this.start());
    this.i++;
    this.named(node.fields, () => this.field());
    return this.done(node);
  }

  private field(): A.Field {
    const tok = this.toks[this.i];
    const node = B.field(tok.startOffset, tok.doc);
    node.name = this.name();
    if (this.next() === QUESTION) {
      this.i++;
      node.optional = true;
    }
    this.expect(COLON);
    node.type = this.typeExpr();
    return this.done(node);
  }

  private enumType(): A.EnumType {
    const node = B.enumType(this.start());
    this.i++;
    this.expect(LBRACE);
    this.named(node.members, () => this.name());
    return this.done(node);
  }

  private unionType(): A.UnionType {
    const node = B.unionType(this.start());
    this.i++;
    this.expect(LBRACE);
    this.named(node.variants, () => this.variant());
    return this.done(node);
  }

  private variant(): A.Variant {
    const node = B.variant(this.start());
    node.name = this.name();
    if (this.next() === COLON) {
      this.i++;
      node.type = this.typeExpr();
    }
    return this.done(node);
  }

  // -------------------------------------------------------------------------
  // Values

  private expr = (): A.Expr => {
    if (++this.nesting > MAX_FAST_NESTING) throw GIVE_UP;
    const tok = this.toks[this.i];
    if (tok === undefined) throw GIVE_UP;
    const t = tok.tokenTypeIdx;
    let r: A.Expr;
    if (IS_LITERAL[t] === 1) {
      this.i++;
      r = B.literal(tok);
    } else if (t === LBRACKET) r = this.listExpr();
    else if (t === LBRACE) r = this.mapExpr();
    else if (IS_NAME[t] === 1) {
      const start = tok.startOffset;
      const name = this.qualifiedName();
      r = B.ref(name, start, this.end());
    } else throw GIVE_UP;
    this.nesting--;
    return r;
  };

  private listExpr(): A.ListExpr {
    const node = B.listExpr(this.start());
    this.expect(LBRACKET);
    this.commaSeparated(STARTS_EXPR, this.expr, node.items);
    this.expect(RBRACKET);
    return this.done(node);
  }

  private mapExpr(): A.MapExpr {
    const node = B.mapExpr(this.start());
    this.expect(LBRACE);
    this.commaSeparated(STARTS_ENTRY, this.mapEntry, node.entries);
    this.expect(RBRACE);
    return this.done(node);
  }

  private mapEntry = (): A.MapEntry => {
    const tok = this.toks[this.i];
    const node = B.mapEntry(tok.startOffset);
    if (tok.tokenTypeIdx === STRING) {
      this.i++;
      node.key = B.literal(tok) as A.StringLiteral;
    } else node.key = this.name();
    const t = this.next();
    if (t !== COLON && t !== EQ) throw GIVE_UP;
    this.i++;
    node.value = this.expr();
    return this.done(node);
  };

  // -------------------------------------------------------------------------
  // Protocols

  private protocolDecl(): A.ProtocolDecl {
    const tok = this.toks[this.i];
    const node = B.protocolDecl(tok.startOffset, tok.doc);
    this.i++;
    node.name = this.name();
    this.expect(LBRACE);
    for (;;) {
      const t = this.next();
      if (t === KW.call || t === KW.send || t === KW.notify) node.ops.push(this.operation());
      else if (t === KW.order) {
        // A second `order` is reported.
        if (node.order) throw GIVE_UP;
        this.i++;
        node.order = this.orderAlt();
      } else if (this.isSep(t)) this.i++;
      else break;
    }
    this.expect(RBRACE);
    return this.done(node);
  }

  private operation(): A.Operation {
    const tok = this.toks[this.i];
    const node = B.operation(tok.startOffset, tok.doc);
    this.i++;
    node.opKind = tok.image as A.OperationKind;
    node.name = this.name();
    if (this.next() === LPAREN) {
      this.i++;
      const t = this.next();
      if (t >= 0 && STARTS_TYPE[t] === 1) node.input = this.typeExpr();
      this.expect(RPAREN);
    }
    if (this.next() === ARROW) {
      // A response type on a one-way operation is reported.
      if (node.opKind !== 'call') throw GIVE_UP;
      this.i++;
      node.output = this.typeExpr();
    }
    return this.done(node);
  }

  private orderAlt(): A.OrderExpr {
    const node = B.orderAlt(this.start());
    node.options.push(this.orderSeq());
    while (this.next() === PIPE) {
      this.i++;
      node.options.push(this.orderSeq());
    }
    if (node.options.length === 1) return node.options[0];
    return this.done(node);
  }

  private orderSeq(): A.OrderExpr {
    const node = B.orderSeq(this.start());
    node.items.push(this.orderPostfix());
    // An operation keyword ends the expression: `order` is usually followed by more operations.
    for (;;) {
      const t = this.next();
      if (t === KW.call || t === KW.send || t === KW.notify || t === KW.order) break;
      if (t === LPAREN || (t >= 0 && IS_NAME[t] === 1)) node.items.push(this.orderPostfix());
      else break;
    }
    if (node.items.length === 1) return node.items[0];
    return this.done(node);
  }

  private orderPostfix(): A.OrderExpr {
    const start = this.start();
    let expr = this.orderAtom();
    for (;;) {
      const t = this.next();
      if (t !== STAR && t !== PLUS && t !== QUESTION) break;
      const op = this.toks[this.i++];
      expr = B.orderRepeat(expr, op.image as '*' | '+' | '?', start, this.end());
    }
    return expr;
  }

  private orderAtom(): A.OrderExpr {
    if (++this.nesting > MAX_FAST_NESTING) throw GIVE_UP;
    const t = this.next();
    let r: A.OrderExpr;
    if (t === LPAREN) {
      this.i++;
      r = this.orderAlt();
      this.expect(RPAREN);
    } else {
      const node = B.orderOp(this.start());
      node.name = this.name();
      r = this.done(node);
    }
    this.nesting--;
    return r;
  }

  // -------------------------------------------------------------------------
  // Components

  private componentDecl(): A.ComponentDecl {
    const tok = this.toks[this.i];
    const node = B.componentDecl(tok.startOffset, tok.doc);
    this.i++;
    node.name = this.name();
    this.expect(LBRACE);
    const members = node.members;
    for (;;) {
      const t = this.next();
      if (t === KW.provide || t === KW.require || t === KW.expose) members.push(this.portDecl());
      else if (t === KW.param) members.push(this.paramDecl());
      else if (t === KW.image) members.push(this.imageMember());
      else if (t === KW.memory) members.push(this.memoryMember());
      else if (t === KW.vcpus) members.push(this.vcpusMember());
      else if (t === KW.label) members.push(this.labelMember());
      else if (t === KW.declassifies) members.push(this.declassifyMember());
      else if (t === KW.single || t === KW.replicas || t === KW.per) members.push(this.instancesMember());
      else if (t === KW.restart) members.push(this.restartMember());
      else if (t === KW.program) members.push(this.programMember());
      else if (this.isSep(t)) this.i++;
      else break;
    }
    this.expect(RBRACE);
    return this.done(node);
  }

  private imageMember(): A.ImageMember {
    const node = B.imageMember(this.start());
    this.i++;
    node.image = this.qualifiedName();
    return this.done(node);
  }

  private memoryMember(): A.MemoryMember {
    const node = B.memoryMember(this.start());
    this.i++;
    node.value = this.literalOf(KINDS_SIZE) as A.MemoryMember['value'];
    return this.done(node);
  }

  private vcpusMember(): A.VcpusMember {
    const node = B.vcpusMember(this.start());
    this.i++;
    node.value = this.literalOf(KINDS_INT) as A.VcpusMember['value'];
    return this.done(node);
  }

  private labelMember(): A.LabelMember {
    const node = B.labelMember(this.start());
    this.i++;
    node.label = this.name();
    return this.done(node);
  }

  private declassifyMember(): A.DeclassifyMember {
    const node = B.declassifyMember(this.start());
    this.i++;
    node.from = this.name();
    this.expect(ARROW);
    node.to = this.name();
    return this.done(node);
  }

  private paramDecl(): A.ParamDecl {
    const tok = this.toks[this.i];
    const node = B.paramDecl(tok.startOffset, tok.doc);
    this.i++;
    node.name = this.name();
    this.expect(COLON);
    node.type = this.typeExpr();
    if (this.next() === EQ) {
      this.i++;
      node.default = this.expr();
    }
    if (this.next() === KW.sensitive) {
      this.i++;
      node.sensitive = true;
    }
    return this.done(node);
  }

  private portDecl(): A.PortDecl {
    const tok = this.toks[this.i];
    const node = B.portDecl(tok.startOffset, tok.doc);
    this.i++;
    const isExpose = tok.tokenTypeIdx === KW.expose;
    node.direction = tok.tokenTypeIdx === KW.require ? 'require' : 'provide';
    if (isExpose) node.expose = B.M_EXPOSE;
    node.name = this.name();
    this.expect(COLON);
    node.protocol = this.qualifiedName();
    if (this.next() === KW.optional) {
      this.i++;
      node.optional = true;
    }
    if (this.next() === KW.on) node.expose = this.exposeSpec();
    // `expose` without `on tcp N` is reported.
    else if (isExpose) throw GIVE_UP;
    return this.done(node);
  }

  private exposeSpec(): A.ExposeSpec {
    const node = B.exposeSpec(this.start());
    this.i++;
    this.expect(KW.tcp);
    node.port = this.literalOf(KINDS_INT) as A.ExposeSpec['port'];
    return this.done(node);
  }

  private instancesMember(): A.InstancesMember {
    const tok = this.toks[this.i];
    const node = B.instancesMember(tok.startOffset);
    this.i++;
    const t = tok.tokenTypeIdx;
    if (t === KW.replicas) {
      node.mode = 'replicas';
      node.count = this.literalOf(KINDS_INT) as A.InstancesMember['count'];
    } else if (t === KW.per) {
      node.mode = 'per_session';
      this.expect(KW.session);
      for (;;) {
        const u = this.next();
        if (u === KW.pool) {
          this.i++;
          node.pool = this.literalOf(KINDS_INT) as A.InstancesMember['pool'];
        } else if (u === KW.max) {
          this.i++;
          node.max = this.literalOf(KINDS_INT) as A.InstancesMember['max'];
        } else break;
      }
    }
    return this.done(node);
  }

  private restartMember(): A.RestartMember {
    const node = B.restartMember(this.start());
    this.i++;
    const t = this.next();
    if (t === KW.always) this.i++;
    else if (t === KW.never) {
      this.i++;
      node.policy = 'never';
    } else if (t === ON_FAILURE) {
      this.i++;
      node.policy = 'on_failure';
      if (this.next() === KW.max) {
        this.i++;
        node.maxRetries = this.literalOf(KINDS_INT) as A.RestartMember['maxRetries'];
      }
    } else throw GIVE_UP;
    return this.done(node);
  }

  private programMember(): A.ProgramMember {
    const node = B.programMember(this.start());
    this.i++;
    this.expect(LBRACE);
    for (;;) {
      const t = this.next();
      if (t === KW.script) {
        const e = B.scriptEntry(this.start());
        this.i++;
        e.path = B.stringArg(B.literal(this.expect(STRING)));
        node.entries.push(this.done(e));
      } else if (t === KW.exec) {
        const e = B.execEntry(this.start());
        this.i++;
        e.argv = this.listExpr();
        node.entries.push(this.done(e));
      } else if (t === KW.file) node.entries.push(this.fileEntry());
      else if (t === KW.env) {
        const e = B.envEntry(this.start());
        this.i++;
        e.vars = this.mapExpr();
        node.entries.push(this.done(e));
      } else if (this.isSep(t)) this.i++;
      else break;
    }
    this.expect(RBRACE);
    return this.done(node);
  }

  private fileEntry(): A.FileEntry {
    const node = B.fileEntry(this.start());
    this.i++;
    node.guestPath = B.stringArg(B.literal(this.expect(STRING)));
    const t = this.next();
    if (t === EQ) {
      this.i++;
      node.source = { kind: 'inline', text: B.stringArg(B.literal(this.expect(STRING))) };
    } else if (t === KW.from) {
      this.i++;
      node.source = { kind: 'workspace', path: B.stringArg(B.literal(this.expect(STRING))) };
    } else throw GIVE_UP;
    return this.done(node);
  }

  // -------------------------------------------------------------------------
  // Systems

  private systemDecl(): A.SystemDecl {
    const tok = this.toks[this.i];
    const node = B.systemDecl(tok.startOffset, tok.doc);
    this.i++;
    node.name = this.name();
    this.expect(LBRACE);
    const members = node.members;
    for (;;) {
      const t = this.next();
      if (t >= 0 && IS_NAME[t] === 1) members.push(this.instanceDecl());
      else if (t === KW.connect) members.push(this.connectDecl());
      else if (t === KW.expose) {
        const e = B.exposeDecl(this.start());
        this.i++;
        e.port = this.portRef();
        if (this.next() !== KW.on) throw GIVE_UP;
        e.spec = this.exposeSpec();
        members.push(this.done(e));
      } else if (t === KW.export) {
        const e = B.exportDecl(this.start());
        this.i++;
        e.name = this.name();
        this.expect(EQ);
        e.port = this.portRef();
        members.push(this.done(e));
      } else if (t === KW.policy) members.push(this.policyBlock());
      else if (this.isSep(t)) this.i++;
      else break;
    }
    this.expect(RBRACE);
    return this.done(node);
  }

  private instanceDecl(): A.InstanceDecl {
    const tok = this.toks[this.i];
    const node = B.instanceDecl(tok.startOffset, tok.doc);
    node.name = this.name();
    this.expect(EQ);
    node.component = this.qualifiedName();
    if (this.next() === LBRACE) {
      this.i++;
      const settings = node.settings;
      for (;;) {
        const t = this.next();
        // The keyword settings yield to a parameter override of the same name (`single = 2`).
        const keyword = this.la(2) !== EQ;
        if (keyword && (t === KW.single || t === KW.replicas || t === KW.per)) settings.push(this.instancesMember());
        else if (keyword && t === KW.restart) settings.push(this.restartMember());
        else if (keyword && t === KW.memory) settings.push(this.memoryMember());
        else if (keyword && t === KW.vcpus) settings.push(this.vcpusMember());
        else if (keyword && t === KW.label) settings.push(this.labelMember());
        else if (t >= 0 && IS_NAME[t] === 1) {
          const o = B.paramOverride(this.start());
          o.name = this.name();
          this.expect(EQ);
          o.value = this.expr();
          settings.push(this.done(o));
        } else if (this.isSep(t)) this.i++;
        else break;
      }
      this.expect(RBRACE);
    }
    return this.done(node);
  }

  private connectDecl(): A.ConnectDecl {
    const node = B.connectDecl(this.start());
    this.i++;
    node.from = this.portRef();
    this.expect(ARROW);
    node.to = this.portRef();
    if (this.next() === LBRACE) {
      this.i++;
      const attrs = node.attrs;
      for (;;) {
        const t = this.next();
        if (t === KW.rate) {
          const a = B.rateAttr(this.start());
          this.i++;
          a.rate = this.literalOf(KINDS_RATE) as A.RateAttr['rate'];
          if (this.next() === KW.burst) {
            this.i++;
            a.burst = this.literalOf(KINDS_INT) as A.RateAttr['burst'];
          }
          attrs.push(this.done(a));
        } else if (t === KW.max_message) {
          const a = B.maxMessageAttr(this.start());
          this.i++;
          a.size = this.literalOf(KINDS_SIZE) as A.MaxMessageAttr['size'];
          attrs.push(this.done(a));
        } else if (t === KW.timeout) {
          const a = B.timeoutAttr(this.start());
          this.i++;
          a.duration = this.literalOf(KINDS_DURATION) as A.TimeoutAttr['duration'];
          attrs.push(this.done(a));
        } else if (t === KW.allow) {
          const a = B.allowAttr(this.start());
          this.i++;
          a.ops.push(this.name());
          while (this.next() === COMMA) {
            this.i++;
            a.ops.push(this.name());
          }
          attrs.push(this.done(a));
        } else if (t === KW.max_inflight) {
          const a = B.maxInflightAttr(this.start());
          this.i++;
          a.count = this.literalOf(KINDS_INT) as A.MaxInflightAttr['count'];
          attrs.push(this.done(a));
        } else if (this.isSep(t)) this.i++;
        else break;
      }
      this.expect(RBRACE);
    }
    return this.done(node);
  }

  private policyBlock(): A.PolicyBlock {
    const node = B.policyBlock(this.start());
    this.i++;
    this.expect(LBRACE);
    for (;;) {
      const t = this.next();
      // `no`, `exposed` and `budget` are also instance names (`no only from a`); the gates decide as in parser.ts.
      if (t === KW.no && this.la(2) !== KW.only) node.rules.push(this.noRule());
      else if (t === KW.exposed && this.la(3) !== KW.from && this.la(3) !== KW.through) node.rules.push(this.exposedOnlyRule());
      else if (t === KW.budget && this.la(2) !== KW.only) node.rules.push(this.budgetRule());
      else if (t >= 0 && IS_NAME[t] === 1) node.rules.push(this.onlyRule());
      else if (this.isSep(t)) this.i++;
      else break;
    }
    this.expect(RBRACE);
    return this.done(node);
  }

  private onlyRule(): A.OnlyRule {
    const node = B.onlyRule(this.start());
    node.target = this.name();
    this.expect(KW.only);
    const t = this.next();
    if (t === KW.through) node.mode = 'through';
    else if (t !== KW.from) throw GIVE_UP;
    this.i++;
    node.sources.push(this.name());
    while (this.next() === COMMA) {
      this.i++;
      node.sources.push(this.name());
    }
    return this.done(node);
  }

  private noRule(): A.NoPathRule | A.NoFlowRule {
    const start = this.start();
    this.i++;
    const t = this.next();
    if (t === KW.path) {
      const node = B.noPathRule(start);
      this.i++;
      node.from = this.name();
      this.expect(ARROW);
      node.to = this.name();
      return this.done(node);
    }
    if (t === KW.flow) {
      const node = B.noFlowRule(start);
      this.i++;
      node.label = this.name();
      this.expect(ARROW);
      node.to = this.name();
      return this.done(node);
    }
    throw GIVE_UP;
  }

  private exposedOnlyRule(): A.ExposedOnlyRule {
    const node = B.exposedOnlyRule(this.start());
    this.i++;
    this.expect(KW.only);
    this.expect(LBRACKET);
    this.commaSeparated(IS_NAME, this.portRef, node.ports);
    this.expect(RBRACKET);
    return this.done(node);
  }

  private budgetRule(): A.BudgetRule {
    const node = B.budgetRule(this.start());
    this.i++;
    const t = this.next();
    if (t === KW.memory) {
      this.i++;
      node.value = this.literalOf(KINDS_SIZE) as A.BudgetRule['value'];
    } else if (t === KW.vcpus) {
      this.i++;
      node.resource = 'vcpus';
      node.value = this.literalOf(KINDS_INT) as A.BudgetRule['value'];
    } else throw GIVE_UP;
    return this.done(node);
  }

  // -------------------------------------------------------------------------
  // Images, labels, targets, deploy

  private imageOrTarget<N extends A.ImageDecl | A.TargetDecl>(make: (start: number, doc: string | undefined) => N): N {
    const tok = this.toks[this.i];
    const node = make(tok.startOffset, tok.doc);
    this.i++;
    node.name = this.name();
    this.expect(LBRACE);
    const props: A.Property[] = [];
    this.named(props, () => {
      const p = B.property(this.start());
      p.key = this.name();
      p.value = this.expr();
      return this.done(p);
    });
    node.props = props;
    return this.done(node);
  }

  private labelsDecl(): A.LabelsDecl {
    const tok = this.toks[this.i];
    const node = B.labelsDecl(tok.startOffset, tok.doc);
    this.i++;
    this.expect(LBRACE);
    this.named(node.chains, () => {
      const chain: A.Ident[] = [this.name()];
      while (this.next() === LT) {
        this.i++;
        chain.push(this.name());
      }
      return chain;
    });
    return this.done(node);
  }

  private deployDecl(): A.DeployDecl {
    const tok = this.toks[this.i];
    const node = B.deployDecl(tok.startOffset, tok.doc);
    this.i++;
    node.system = this.qualifiedName();
    if (this.next() === KW.to) {
      this.i++;
      node.target = this.name();
    }
    return this.done(node);
  }
}

const KINDS_INT = ['Int'];
const KINDS_SIZE = ['Size'];
const KINDS_DURATION = ['Duration'];
const KINDS_RATE = ['Rate'];
