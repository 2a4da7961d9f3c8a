// The hand-written lexer. It produces Chevrotain `IToken` objects for the
// parser, the comments of the file (for the formatter) and lexical diagnostics.
// Chevrotain's regular-expression lexer is several times slower than a
// character loop for this token set, and lexing is a large share of parse time.
//
// The lexer never fails: an invalid character is reported and skipped, an
// unterminated string or comment ends at the end of the line or file, and a
// number with an unknown unit becomes the literal the unit most likely meant.

import type { IToken, TokenType } from 'chevrotain';
import type { Comment, DurationUnit, RateUnit, SizeUnit, Span } from './ast';
import { Codes } from './codes';
import { makeDiagnostic, type Diagnostic, type DiagnosticInfo, type Fix } from './diagnostics';
import * as T from './tokens';

/** Decoded value of a literal token. */
export type LiteralPayload =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'size'; amount: number; unit: SizeUnit; bytes: number }
  | { kind: 'duration'; amount: number; unit: DurationUnit; ms: number }
  | { kind: 'rate'; count: number; per: RateUnit; perSecond: number };

/** A token as the parser sees it: a Chevrotain token plus the decoded literal and the attached doc comment. */
export interface Token extends IToken {
  tokenTypeIdx: number;
  /** Inclusive, as Chevrotain expects. */
  endOffset: number;
  /** Text of the `///` comments directly before this token, markers stripped, joined by "\n". */
  doc: string | undefined;
  payload: LiteralPayload | undefined;
}

/**
 * Tokens are instances of one class rather than object literals. V8 may decide,
 * by how many objects from one object literal survive a minor collection, to
 * allocate that literal's objects in the old generation from then on
 * (pretenuring). A file's tokens all live until it is parsed, so early in a
 * process the token literal often qualified, and in those processes lexing and
 * collection ran four to six times slower for good (parse-bench: about 360 ms
 * instead of 60 in a third to a half of the runs; none in 6 runs with
 * `--no-allocation-site-pretenuring`, none in 18 with this class). Objects made
 * by `new` are not pretenured, and the class costs no more per token.
 */
class TokenObject {
  tokenTypeIdx: number;
  payload: LiteralPayload | undefined = undefined;
  constructor(
    public tokenType: TokenType,
    public image: string,
    public startOffset: number,
    public endOffset: number,
    public doc: string | undefined,
  ) {
    this.tokenTypeIdx = tokenType.tokenTypeIdx!;
  }
}
function makeToken(tokenType: TokenType, image: string, startOffset: number, endOffset: number, doc: string | undefined): Token {
  return new TokenObject(tokenType, image, startOffset, endOffset, doc);
}

export interface LexResult {
  tokens: Token[];
  comments: Comment[];
  diagnostics: Diagnostic[];
}

/**
 * The lexer's result is an instance of a class of its own, not an object
 * literal. Object literals that start with the same property share V8's
 * hidden-class transitions with every other `{ tokens: ... }` in the process
 * (Chevrotain builds some), and the type V8 recorded for that field changed
 * when the lexer first returned its own token array: a change that threw away
 * the optimised lexer the JIT was compiling at that moment (about 300 ms of
 * compiler thread on a loaded machine, `--trace-opt`: "Bailed out due to
 * dependency change"), so that a cold process lexed its first few dozen
 * files in the slow baseline tier while the lexer was compiled again.
 */
class LexResultObject implements LexResult {
  constructor(
    public tokens: Token[],
    public comments: Comment[],
    public diagnostics: Diagnostic[],
  ) {}
}

const SIZE_FACTORS: Record<SizeUnit, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };
const DURATION_FACTORS: Record<DurationUnit, number> = { ms: 1, s: 1000, min: 60_000, h: 3_600_000 };
const RATE_SECONDS: Record<RateUnit, number> = { s: 1, min: 60, h: 3600 };

/** Units people write by habit, mapped to the unit mcl spells that way. */
const UNIT_SUGGESTIONS: Record<string, { unit: string; note?: string }> = {
  b: { unit: 'B' }, byte: { unit: 'B' }, bytes: { unit: 'B' },
  K: { unit: 'KiB' }, k: { unit: 'KiB' }, KB: { unit: 'KiB' }, kB: { unit: 'KiB' }, kb: { unit: 'KiB' }, Kb: { unit: 'KiB' },
  KIB: { unit: 'KiB' }, kib: { unit: 'KiB' }, Ki: { unit: 'KiB' },
  M: { unit: 'MiB' }, MB: { unit: 'MiB' }, mb: { unit: 'MiB' }, Mb: { unit: 'MiB' }, MIB: { unit: 'MiB' }, mib: { unit: 'MiB' }, Mi: { unit: 'MiB' },
  G: { unit: 'GiB' }, g: { unit: 'GiB' }, GB: { unit: 'GiB' }, gb: { unit: 'GiB' }, Gb: { unit: 'GiB' }, GIB: { unit: 'GiB' }, gib: { unit: 'GiB' }, Gi: { unit: 'GiB' },
  T: { unit: 'TiB' }, TB: { unit: 'TiB' }, tb: { unit: 'TiB' }, TIB: { unit: 'TiB' }, tib: { unit: 'TiB' }, Ti: { unit: 'TiB' },
  sec: { unit: 's' }, secs: { unit: 's' }, second: { unit: 's' }, seconds: { unit: 's' }, S: { unit: 's' },
  msec: { unit: 'ms' }, msecs: { unit: 'ms' }, millis: { unit: 'ms' }, MS: { unit: 'ms' },
  m: { unit: 'min', note: 'write `min` for minutes or `MiB` for mebibytes' },
  mins: { unit: 'min' }, minute: { unit: 'min' }, minutes: { unit: 'min' },
  hr: { unit: 'h' }, hrs: { unit: 'h' }, hour: { unit: 'h' }, hours: { unit: 'h' }, H: { unit: 'h' },
};

const SIZE_UNITS = new Set<string>(['B', 'KiB', 'MiB', 'GiB', 'TiB']);
const DURATION_UNITS = new Set<string>(['ms', 's', 'min', 'h']);
const RATE_UNITS = new Set<string>(['s', 'min', 'h']);

/**
 * Characters that continue a name, by UTF-16 code unit, for the loop that scans
 * names (which runs for most characters of a file): one load instead of four
 * range tests.
 */
const IDENT_PART = new Uint8Array(65536);
for (let c = 0; c < 128; c++) IDENT_PART[c] = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || (c >= 48 && c <= 57) ? 1 : 0;

function isSpace(c: number): boolean {
  return c === 32 || c === 10 || c === 9 || c === 13 || c === 12 || c === 11;
}

function isIdentStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;
}
function isIdentPart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || (c >= 48 && c <= 57);
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isLetter(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90);
}
function isHexDigit(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}

const PUNCT: (TokenType | undefined)[] = [];
PUNCT[123] = T.LBrace;
PUNCT[125] = T.RBrace;
PUNCT[40] = T.LParen;
PUNCT[41] = T.RParen;
PUNCT[91] = T.LBracket;
PUNCT[93] = T.RBracket;
PUNCT[60] = T.Lt;
PUNCT[62] = T.Gt;
PUNCT[44] = T.Comma;
PUNCT[59] = T.Semi;
PUNCT[58] = T.Colon;
PUNCT[61] = T.Eq;
PUNCT[124] = T.Pipe;
PUNCT[42] = T.Star;
PUNCT[43] = T.Plus;
PUNCT[63] = T.Question;

/** Keywords by length, then by the code of their first character. */
const KEYWORD_BUCKETS: ({ word: string; type: TokenType }[] | undefined)[][] = [];
for (const [word, type] of T.KEYWORDS) {
  while (KEYWORD_BUCKETS.length <= word.length) KEYWORD_BUCKETS.push([]);
  (KEYWORD_BUCKETS[word.length][word.charCodeAt(0)] ??= []).push({ word, type });
}

/**
 * Whether `word` is at `start` of `text`, its first character already known to
 * match: a character loop the optimiser inlines, where `startsWith` is a call
 * and was the lexer's costliest line.
 */
function sameRest(text: string, start: number, word: string): boolean {
  for (let k = 1; k < word.length; k++) if (text.charCodeAt(start + k) !== word.charCodeAt(k)) return false;
  return true;
}

/** Slots of a scanner's cache of token texts (a power of two). */
const INTERN_SLOTS = 1024;
/**
 * Longer string literals are not interned: hashing one costs a pass over it, and long texts
 * (scripts, certificates) seldom repeat.
 */
const MAX_INTERNED_STRING = 64;

const PUNCT_IMAGE: string[] = PUNCT.map((_, c) => String.fromCharCode(c));

/** Lexes a whole file. `path` is only used to label diagnostics. */
export function lex(text: string, path: string): LexResult {
  return new Scanner(text, path).run();
}

/**
 * The lexer's state. A class with small methods rather than one function with
 * nested closures: V8 compiles and inlines small methods quickly, where the single
 * large function took hundreds of milliseconds to optimise and ran in slower
 * tiers meanwhile, which dominated the lexing of a cold process.
 */
class Scanner {
  /**
   * Allocated for about one token per eight characters (generated workspaces
   * have one per five or six) and filled by index, then cut to `count`: growing
   * the array by `push` from empty cost about 5 of the lexer's 36 ms on the
   * 10,000-component benchmark workspace.
   */
  readonly tokens: Token[];
  count = 0;
  readonly comments: Comment[] = [];
  readonly diagnostics: Diagnostic[] = [];
  readonly n: number;
  pendingDoc: string[] | undefined = undefined;
  badStart = -1;
  /** See intern(). */
  private readonly interned: (string | undefined)[] = new Array<string | undefined>(INTERN_SLOTS).fill(undefined);

  constructor(
    readonly text: string,
    readonly path: string,
  ) {
    this.n = text.length;
    this.tokens = new Array(Math.min(text.length >> 3, 50_000));
  }

  /**
   * The text of [start, end), shared with an earlier occurrence of the same
   * text in this file while the cache still holds it. Names, numbers and units
   * become the syntax tree's strings, which live as long as the tree; most are
   * short and repeated (port, parameter and type names, small numbers, units),
   * and a fresh copy of each was about 400,000 of the 1.9 million objects the
   * tree of a 10,000-component workspace kept, every one of them copied by the
   * young-generation collector. The cache is direct-mapped: a miss costs one
   * slice, as before.
   */
  private intern(start: number, end: number): string {
    const text = this.text;
    let h = end - start;
    for (let k = start; k < end; k++) h = (Math.imul(h, 31) + text.charCodeAt(k)) | 0;
    const slot = (h ^ (h >>> 15)) & (INTERN_SLOTS - 1);
    const cached = this.interned[slot];
    if (cached !== undefined && cached.length === end - start && text.startsWith(cached, start)) return cached;
    const image = text.slice(start, end);
    this.interned[slot] = image;
    return image;
  }

  run(): LexResult {
    const text = this.text;
    const n = this.n;
    let i = 0;
    if (text.charCodeAt(0) === 0xfeff) i = 1;

    while (i < n) {
      const c = text.charCodeAt(i);
      // Whitespace.
      if (isSpace(c)) {
        if (this.badStart >= 0) this.flushBad(i);
        // The whole run at once: indentation is most of the whitespace.
        i++;
        while (i < n && isSpace(text.charCodeAt(i))) i++;
        continue;
      }
      if (isIdentStart(c)) {
        if (this.badStart >= 0) this.flushBad(i);
        const start = i;
        i++;
        while (i < n && IDENT_PART[text.charCodeAt(i)] === 1) i++;
        const len = i - start;
        if (len === 2 && c === 111 && text.charCodeAt(start + 1) === 110 && text.startsWith('-failure', i) && !(i + 8 < n && isIdentPart(text.charCodeAt(i + 8)))) {
          i += 8;
          this.push(T.OnFailure, start, i, 'on-failure');
          continue;
        }
        // Keywords are found by length and first letter, comparing in place: hashing a
        // freshly sliced string for a map lookup was the lexer's largest cost.
        const bucket = len < KEYWORD_BUCKETS.length ? KEYWORD_BUCKETS[len][c] : undefined;
        let kw: { word: string; type: TokenType } | undefined;
        if (bucket !== undefined) {
          for (let b = 0; b < bucket.length && kw === undefined; b++) if (sameRest(text, start, bucket[b].word)) kw = bucket[b];
        }
        if (kw !== undefined) this.push(kw.type, start, i, kw.word);
        else this.push(T.Name, start, i, this.intern(start, i));
        continue;
      }
      if (isDigit(c) || (c === 45 && isDigit(text.charCodeAt(i + 1)))) {
        if (this.badStart >= 0) this.flushBad(i);
        i = this.lexNumber(i);
        continue;
      }
      if (c === 34) {
        if (this.badStart >= 0) this.flushBad(i);
        i = text.startsWith('"""', i) ? this.lexRawString(i) : this.lexString(i);
        continue;
      }
      if (c === 47) {
        const c2 = text.charCodeAt(i + 1);
        if (c2 === 47) {
          if (this.badStart >= 0) this.flushBad(i);
          const start = i;
          while (i < n && text.charCodeAt(i) !== 10 && text.charCodeAt(i) !== 13) i++;
          const body = text.slice(start, i);
          const isDoc = body.startsWith('///') && !body.startsWith('////');
          this.comments.push({ kind: isDoc ? 'doc' : 'line', text: body, span: { start, end: i } });
          if (isDoc) {
            let line = body.slice(3);
            if (line.charCodeAt(0) === 32) line = line.slice(1);
            (this.pendingDoc ??= []).push(line);
          }
          continue;
        }
        if (c2 === 42) {
          if (this.badStart >= 0) this.flushBad(i);
          const start = i;
          const close = text.indexOf('*/', i + 2);
          if (close < 0) {
            i = n;
            this.report(
              Codes.UnterminatedComment,
              start,
              start + 2,
              'this block comment is never closed',
              'end the comment with `*/` (block comments do not nest)',
            );
          } else i = close + 2;
          this.comments.push({ kind: 'block', text: text.slice(start, i), span: { start, end: i } });
          continue;
        }
      }
      const p = c < 128 ? PUNCT[c] : undefined;
      if (p !== undefined) {
        if (this.badStart >= 0) this.flushBad(i);
        this.push(p, i, i + 1, PUNCT_IMAGE[c]);
        i++;
        continue;
      }
      if (c === 46) {
        if (this.badStart >= 0) this.flushBad(i);
        if (text.charCodeAt(i + 1) === 46) {
          this.push(T.DotDot, i, i + 2);
          i += 2;
        } else {
          this.push(T.Dot, i, i + 1);
          i++;
        }
        continue;
      }
      if (c === 45 && text.charCodeAt(i + 1) === 62) {
        if (this.badStart >= 0) this.flushBad(i);
        this.push(T.Arrow, i, i + 2);
        i += 2;
        continue;
      }
      // Anything else is invalid; a run of invalid characters is reported once.
      if (this.badStart < 0) this.badStart = i;
      i += c >= 0xd800 && c <= 0xdbff && i + 1 < n ? 2 : 1;
    }
    if (this.badStart >= 0) this.flushBad(n);
    this.tokens.length = this.count;
    return new LexResultObject(this.tokens, this.comments, this.diagnostics);
  }

  report(info: DiagnosticInfo, start: number, end: number, message: string, hint?: string, fixes?: Fix[]): void {
    this.diagnostics.push(makeDiagnostic(info, message, this.path, { start, end }, { hint, fixes }));
  }

  push(type: TokenType, start: number, end: number, image?: string): Token {
    const text = this.text, n = this.n;
    let doc: string | undefined;
    if (this.pendingDoc !== undefined) {
      doc = this.pendingDoc.join('\n');
      this.pendingDoc = undefined;
    }
    const tok = makeToken(type, image ?? text.slice(start, end), start, end - 1, doc);
    this.tokens[this.count++] = tok;
    return tok;
  }

  flushBad(end: number): void {
    const text = this.text;
    if (this.badStart < 0) return;
    const s = text.slice(this.badStart, end);
    const first = s.codePointAt(0)!;
    let hint = 'remove it';
    if (first === 39 || first === 96) hint = 'strings are written in double quotes: "text"';
    else if (first === 35) hint = 'comments start with `//`';
    else if (first === 45) hint = 'a `-` only appears in `->`, `on-failure` and negative numbers';
    else if (first === 47) hint = 'comments start with `//`; a rate is written `500/s` with no spaces';
    else if (first > 127) hint = 'names use ASCII letters, digits and `_`; other characters belong in strings';
    const shown = s.length > 12 ? s.slice(0, 12) + '…' : s;
    this.report(
      Codes.InvalidCharacter,
      this.badStart,
      end,
      s.length === 1 || [...s].length === 1 ? `invalid character ${describeChar(s)}` : `invalid characters ${JSON.stringify(shown)}`,
      hint,
    );
    this.badStart = -1;
  }


  lexNumber(start: number): number {
    const text = this.text, n = this.n, path = this.path;
    let j = start;
    if (text.charCodeAt(j) === 45) j++;
    let isFloat = false;
    let malformed: string | undefined;
    let value: number;
    if (text.charCodeAt(j) === 48 && (text.charCodeAt(j + 1) === 120 || text.charCodeAt(j + 1) === 88)) {
      j += 2;
      const ds = j;
      while (j < n && (isHexDigit(text.charCodeAt(j)) || text.charCodeAt(j) === 95)) j++;
      const digits = text.slice(ds, j);
      if (!/[0-9a-fA-F]/.test(digits)) malformed = 'a hexadecimal number needs at least one digit after `0x`';
      else if (/^_|_$|__/.test(digits)) malformed = 'underscores in a number go between digits';
      value = parseInt(digits.replace(/_/g, '') || '0', 16);
      if (text.charCodeAt(start) === 45) value = -value;
    } else {
      const ds = j;
      // Integers are accumulated while scanning; only floats and numbers with `_` are re-read.
      let acc = 0;
      let underscore = false;
      for (; j < n; j++) {
        const d = text.charCodeAt(j);
        if (d >= 48 && d <= 57) acc = acc * 10 + (d - 48);
        else if (d === 95) underscore = true;
        else break;
      }
      if (text.charCodeAt(j) === 46 && isDigit(text.charCodeAt(j + 1))) {
        isFloat = true;
        j++;
        while (j < n && (isDigit(text.charCodeAt(j)) || text.charCodeAt(j) === 95)) j++;
      }
      const e = text.charCodeAt(j);
      if (e === 101 || e === 69) {
        const s = text.charCodeAt(j + 1);
        if (isDigit(s) || ((s === 43 || s === 45) && isDigit(text.charCodeAt(j + 2)))) {
          isFloat = true;
          j += s === 43 || s === 45 ? 2 : 1;
          while (j < n && isDigit(text.charCodeAt(j))) j++;
        }
      }
      if (underscore || isFloat || acc > Number.MAX_SAFE_INTEGER) {
        const digits = text.slice(ds, j);
        if (underscore && /(^|[^0-9])_|_($|[^0-9])/.test(digits)) malformed = 'underscores in a number go between digits';
        value = Number(text.slice(start, j).replace(/_/g, ''));
      } else {
        value = text.charCodeAt(start) === 45 ? -acc : acc;
      }
    }
    const numberEnd = j;
    // A unit attached to the number: `64KiB`, `2s`, `500/s`.
    let unit: string | undefined;
    let isRate = false;
    if (isLetter(text.charCodeAt(j))) {
      const us = j;
      while (j < n && isLetter(text.charCodeAt(j))) j++;
      unit = this.intern(us, j);
    } else if (text.charCodeAt(j) === 47 && isLetter(text.charCodeAt(j + 1))) {
      isRate = true;
      const us = j + 1;
      j = us;
      while (j < n && isLetter(text.charCodeAt(j))) j++;
      unit = this.intern(us, j);
    } else if (text.charCodeAt(j) === 47 && text.charCodeAt(j + 1) !== 47 && text.charCodeAt(j + 1) !== 42) {
      // `500/` with the unit forgotten: report it here rather than as a stray `/`.
      j++;
      this.report(
        Codes.UnknownUnit,
        start,
        j,
        `the rate \`${text.slice(start, j)}\` is missing its unit`,
        `write \`${text.slice(start, j)}s\`, \`${text.slice(start, j)}min\` or \`${text.slice(start, j)}h\``,
        [{ title: 'Per second', edits: [{ file: path, span: { start: j, end: j }, newText: 's' }] }],
      );
      const tok = this.push(T.RateLit, start, j, this.intern(start, j));
      tok.payload = { kind: 'rate', count: value, per: 's', perSecond: value };
      return j;
    }
    // Letters or digits glued to the unit (`64KiB2`, `10s_x`) make the whole run one malformed literal.
    while (j < n && isIdentPart(text.charCodeAt(j))) {
      j++;
      malformed ??= 'a number and its unit must be followed by a space or punctuation';
    }
    const end = j;
    if (malformed) this.report(Codes.MalformedNumber, start, end, `malformed number \`${text.slice(start, end)}\`: ${malformed}`, 'write the number as digits, e.g. `1_000` or `0x1f`, followed directly by a unit if it has one');

    if (unit === undefined) {
      if (isFloat) {
        const tok = this.push(T.FloatLit, start, end, this.intern(start, end));
        if (!Number.isFinite(value)) this.report(Codes.NumberOutOfRange, start, end, `the number \`${tok.image}\` is too large`, 'use a smaller number');
        tok.payload = { kind: 'float', value };
      } else {
        const tok = this.push(T.IntLit, start, end, this.intern(start, end));
        this.checkSafe(tok, value);
        tok.payload = { kind: 'int', value };
      }
      return end;
    }

    const unitStart = isRate ? numberEnd + 1 : numberEnd;
    const unitEnd = unitStart + unit.length;
    let resolved = unit;
    const known = isRate ? RATE_UNITS.has(unit) : SIZE_UNITS.has(unit) || DURATION_UNITS.has(unit);
    if (!known) {
      const s = UNIT_SUGGESTIONS[unit];
      const fits = s && (isRate ? RATE_UNITS.has(s.unit) : true);
      const raw = text.slice(start, end);
      const units = isRate ? 'per-second `s`, per-minute `min`, per-hour `h`' : 'sizes `B KiB MiB GiB TiB`, durations `ms s min h`';
      if (fits) {
        resolved = s.unit;
        const fix: Fix = {
          title: `Replace \`${unit}\` with \`${s.unit}\``,
          edits: [{ file: path, span: { start: unitStart, end: unitEnd }, newText: s.unit }],
        };
        this.report(
          Codes.UnknownUnit,
          start,
          end,
          `unknown unit \`${unit}\` in \`${raw}\``,
          s.note ?? `write \`${text.slice(start, numberEnd)}${isRate ? '/' : ''}${s.unit}\`${SIZE_UNITS.has(s.unit) ? ' (sizes are binary: 1KiB is 1024 bytes)' : ''}`,
          [fix],
        );
      } else {
        this.report(Codes.UnknownUnit, start, end, `unknown unit \`${unit}\` in \`${raw}\``, `the units are ${units}`);
        const tok = this.push(isFloat ? T.FloatLit : T.IntLit, start, end, this.intern(start, end));
        tok.payload = isFloat ? { kind: 'float', value } : { kind: 'int', value };
        return end;
      }
    }
    if (isFloat || !Number.isFinite(value)) {
      this.report(
        Codes.MalformedNumber,
        start,
        end,
        `\`${text.slice(start, end)}\` has a fractional amount, but sizes, durations and rates are whole numbers`,
        'use a smaller unit, e.g. `1536MiB` instead of `1.5GiB`',
      );
      value = Math.round(value);
      if (!Number.isFinite(value)) value = 0;
    }
    if (isRate) {
      const per = resolved as RateUnit;
      const tok = this.push(T.RateLit, start, end, this.intern(start, end));
      this.checkSafe(tok, value);
      tok.payload = { kind: 'rate', count: value, per, perSecond: value / RATE_SECONDS[per] };
    } else if (SIZE_UNITS.has(resolved)) {
      const u = resolved as SizeUnit;
      const tok = this.push(T.SizeLit, start, end, this.intern(start, end));
      const bytes = value * SIZE_FACTORS[u];
      this.checkSafe(tok, bytes);
      tok.payload = { kind: 'size', amount: value, unit: u, bytes };
    } else {
      const u = resolved as DurationUnit;
      const tok = this.push(T.DurationLit, start, end, this.intern(start, end));
      const ms = value * DURATION_FACTORS[u];
      this.checkSafe(tok, ms);
      tok.payload = { kind: 'duration', amount: value, unit: u, ms };
    }
    return end;
  }

  checkSafe(tok: Token, value: number): void {
    if (!Number.isSafeInteger(value)) {
      this.report(
        Codes.NumberOutOfRange,
        tok.startOffset,
        tok.endOffset + 1,
        `\`${tok.image}\` is outside the range of exact integers (±9007199254740991)`,
        'use a smaller value or a larger unit',
      );
    }
  }

  lexString(start: number): number {
    const text = this.text, n = this.n;
    let j = start + 1;
    let value = '';
    let chunk = j;
    let terminated = false;
    while (j < n) {
      const c = text.charCodeAt(j);
      if (c === 34) {
        terminated = true;
        break;
      }
      if (c === 10 || c === 13) break;
      if (c === 92) {
        value += text.slice(chunk, j);
        const e = text.charCodeAt(j + 1);
        let len = 2;
        switch (e) {
          case 110: value += '\n'; break;
          case 116: value += '\t'; break;
          case 114: value += '\r'; break;
          case 48: value += '\0'; break;
          case 34: value += '"'; break;
          case 92: value += '\\'; break;
          case 117: {
            // \u{1F600}
            const m = /^\{([0-9a-fA-F]{1,6})\}/.exec(text.slice(j + 2, j + 11));
            const cp = m ? parseInt(m[1], 16) : NaN;
            if (m && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) {
              value += String.fromCodePoint(cp);
              len = 2 + m[0].length;
            } else {
              this.report(Codes.InvalidEscape, j, j + 2 + (m ? m[0].length : 0), 'invalid unicode escape', 'write a code point in hexadecimal between braces, e.g. `\\u{1F600}`');
            }
            break;
          }
          default: {
            if (j + 1 >= n || e === 10 || e === 13) {
              len = 1;
              break;
            }
            const shown = String.fromCodePoint(text.codePointAt(j + 1)!);
            this.report(
              Codes.InvalidEscape,
              j,
              j + 1 + shown.length,
              `invalid escape \`\\${shown}\` in a string`,
              'the escapes are \\" \\\\ \\n \\t \\r \\0 and \\u{...}; use a raw string """...""" for text with many backslashes',
            );
            value += shown;
            len = 1 + shown.length;
          }
        }
        j += len;
        chunk = j;
        continue;
      }
      j++;
    }
    // A string without escapes is its text: shared, with its image, with an earlier literal of the
    // same text in this file (intern), as names are. Labels, images and arguments repeat within a
    // file (20,800 distinct of 50,200 literals in the 10,000-component workspace).
    value = chunk === start + 1 && j - start <= MAX_INTERNED_STRING ? this.intern(chunk, j) : value + text.slice(chunk, j);
    if (terminated) j++;
    else
      this.report(
        Codes.UnterminatedString,
        start,
        j,
        'this string is never closed',
        'end it with `"` on the same line, or use a raw string """...""" for text that spans lines',
      );
    const tok = this.push(T.StringLit, start, j, j - start <= MAX_INTERNED_STRING ? this.intern(start, j) : undefined);
    tok.payload = { kind: 'string', value };
    return j;
  }

  lexRawString(start: number): number {
    const text = this.text, n = this.n;
    const close = text.indexOf('"""', start + 3);
    const end = close < 0 ? n : close + 3;
    if (close < 0)
      this.report(Codes.UnterminatedString, start, start + 3, 'this raw string is never closed', 'end it with `"""`');
    let value = text.slice(start + 3, close < 0 ? n : close);
    // A raw string that starts on a new line does not include that first line break.
    if (value.startsWith('\r\n')) value = value.slice(2);
    else if (value.startsWith('\n')) value = value.slice(1);
    const tok = this.push(T.StringLit, start, end);
    tok.payload = { kind: 'string', value };
    return end;
  }
}

function describeChar(s: string): string {
  const cp = s.codePointAt(0)!;
  if (cp < 32 || cp === 127) return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  return `\`${s}\``;
}

/** Describes a token for messages: `` `}` ``, `the name \`foo\``, `the end of the file`. */
export function describeToken(tok: IToken | undefined): string {
  if (!tok || tok.tokenType === undefined || tok.tokenType.name === 'EOF' || Number.isNaN(tok.startOffset)) return 'the end of the file';
  const info = T.tokenInfo(tok.tokenType);
  const img = tok.image.length > 24 ? tok.image.slice(0, 24) + '…' : tok.image;
  if (!info) return `\`${img}\``;
  switch (info.kind) {
    case 'identifier':
      return `the name \`${img}\``;
    case 'string':
      return `the string ${img}`;
    case 'int':
    case 'float':
      return `the number \`${img}\``;
    case 'size':
    case 'duration':
    case 'rate':
      return `the ${info.kind} \`${img}\``;
    default:
      return `\`${img}\``;
  }
}

export type { Span };

/** A token for editors: its kind, span and text. Comments are included, in source order. */
export interface LexicalToken {
  kind: T.TokenKind | 'comment' | 'docComment';
  span: Span;
  text: string;
}

/**
 * Tokenises a file for editors (semantic tokens, bracket matching). Contextual
 * keywords are reported as `contextualKeyword`; whether one is used as a name
 * is known only to the parser (an `Ident` node covers it then).
 */
export function tokenize(text: string): LexicalToken[] {
  const { tokens, comments } = lex(text, '');
  const out: LexicalToken[] = [];
  let c = 0;
  for (const tok of tokens) {
    while (c < comments.length && comments[c].span.start < tok.startOffset) pushComment(comments[c++]);
    out.push({ kind: T.tokenInfo(tok.tokenType)?.kind ?? 'identifier', span: { start: tok.startOffset, end: tok.endOffset + 1 }, text: tok.image });
  }
  while (c < comments.length) pushComment(comments[c++]);
  return out;

  function pushComment(cm: Comment): void {
    out.push({ kind: cm.kind === 'doc' ? 'docComment' : 'comment', span: cm.span, text: cm.text });
  }
}
