// `parse(text, path)`: the entry point of the syntax layer. It never throws and
// always returns a tree; every problem is a diagnostic.

import type { IRecognitionException, IToken } from 'chevrotain';
import type { SourceFile } from './ast';
import { Codes } from './codes';
import type { Diagnostic } from './diagnostics';
import { describeToken, lex, type Token } from './lexer';
import { EXPECTATIONS, McParser } from './parser';

export interface ParseResult {
  file: SourceFile;
  diagnostics: Diagnostic[];
}

/** Syntax diagnostics beyond this many in one file are summarised in one note. */
export const MAX_SYNTAX_DIAGNOSTICS = 1000;

let shared: McParser | undefined;

/** The parser is built once (grammar analysis is costly) and reused for every file. */
function parser(): McParser {
  shared ??= new McParser();
  return shared;
}

export function parse(text: string, path: string): ParseResult {
  return parseWith(parser(), text, path);
}

/** `parse` with a given parser instance (the grammar test compares differently built parsers). */
export function parseWith(p: McParser, text: string, path: string): ParseResult {
  const lexed = lex(text, path);
  p.begin(lexed.tokens, path, text);
  let result: ReturnType<McParser['sourceFile']> | undefined;
  const diagnostics: Diagnostic[] = [...lexed.diagnostics];
  // Chevrotain signals every syntax error with an exception; capturing a stack
  // trace for each one is most of the cost of parsing a broken file, and the
  // traces are never shown.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    result = p.sourceFile();
  } catch (e) {
    // The grammar is written not to throw; if it ever does, the file still gets a tree and a diagnostic.
    diagnostics.push({
      code: Codes.UnexpectedToken.code,
      severity: 'error',
      message: `the parser stopped unexpectedly: ${e instanceof Error ? e.message : String(e)}`,
      file: path,
      span: { start: 0, end: 0 },
      hint: 'this is a bug in mcl; please report it with this file',
    });
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
  diagnostics.push(...convertErrors(p.errors, lexed.tokens, text, path));
  diagnostics.push(...p.diags);
  // Free the token vector: the shared parser would otherwise keep the last file alive.
  p.input = [];

  const file: SourceFile = {
    kind: 'SourceFile',
    path,
    imports: result?.imports ?? [],
    decls: result?.decls ?? [],
    comments: lexed.comments,
    span: { start: 0, end: text.length },
  };
  return { file, diagnostics: finish(diagnostics, path) };
}

/** Turns Chevrotain's recognition exceptions into diagnostics with a sentence, a span and a hint. */
function convertErrors(errors: IRecognitionException[], tokens: Token[], text: string, path: string): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const e of errors) {
    if (e.name === 'NotAllInputParsedException') {
      // The top-level rule accepts every token, so this only follows another error; it adds nothing.
      continue;
    }
    const tok = e.token;
    const span = tokenSpan(tok, text);
    const expected = e.message;
    const prev = (e as IRecognitionException & { previousToken?: IToken }).previousToken;
    const after = prev && !Number.isNaN(prev.startOffset) && prev.tokenType?.name !== 'EOF' && prev.image ? ` after \`${clip(prev.image)}\`` : '';
    const d: Diagnostic = {
      code: Codes.ExpectedToken.code,
      severity: 'error',
      message: `expected ${expected}${after}, found ${describeToken(tok)}`,
      file: path,
      span,
    };
    const hint = EXPECTATIONS[expected] ?? hintFor(expected);
    if (hint) d.hint = hint;
    const closer = /^`([}\])>])`/.exec(expected);
    if (closer && e.name === 'MismatchedTokenException') {
      // A missing closing bracket is the one case where inserting the token is almost always right.
      const at = prev && !Number.isNaN(prev.endOffset!) ? prev.endOffset! + 1 : span.start;
      d.fixes = [{ title: `Insert \`${closer[1]}\``, edits: [{ file: path, span: { start: at, end: at }, newText: closer[1] }] }];
      const opener = unmatchedOpener(tokens, span.start, closer[1]);
      if (opener) d.related = [{ file: path, span: opener, message: `the \`${OPENERS[closer[1]]}\` that is not closed` }];
    }
    out.push(d);
  }
  return out;
}

const OPENERS: Record<string, string> = { '}': '{', ')': '(', ']': '[', '>': '<' };

/** The innermost bracket of the closer's kind that is still open before `offset`. */
function unmatchedOpener(tokens: Token[], offset: number, closer: string): { start: number; end: number } | undefined {
  const open = OPENERS[closer];
  // Binary search for the last token before the offset, then walk back over balanced pairs.
  let lo = 0;
  let hi = tokens.length - 1;
  let last = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (tokens[mid].startOffset < offset) {
      last = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  let depth = 0;
  for (let i = last; i >= 0; i--) {
    const img = tokens[i].image;
    if (img === closer) depth++;
    else if (img === open) {
      if (depth === 0) return { start: tokens[i].startOffset, end: tokens[i].endOffset + 1 };
      depth--;
    }
  }
  return undefined;
}

function hintFor(expected: string): string | undefined {
  if (expected.startsWith('`}`')) return 'every `{` needs a matching `}`';
  if (expected.startsWith('`)`')) return 'every `(` needs a matching `)`';
  if (expected.startsWith('`]`')) return 'every `[` needs a matching `]`';
  if (expected.startsWith('a name') || expected.includes(' name')) return 'names start with a letter or `_` and may not be reserved words such as `type` or `system`';
  if (expected.includes('string')) return 'strings are written in double quotes: "text"';
  if (expected.startsWith('`')) return `insert ${expected.split(' ')[0]} here`;
  return undefined;
}

function clip(s: string): string {
  return s.length > 24 ? s.slice(0, 24) + '…' : s;
}

function tokenSpan(tok: IToken | undefined, text: string): { start: number; end: number } {
  if (!tok || Number.isNaN(tok.startOffset) || tok.tokenType?.name === 'EOF') return { start: text.length, end: text.length };
  return { start: tok.startOffset, end: tok.endOffset! + 1 };
}

/**
 * Sorts, removes the second report of the same offending token (a failed rule
 * and the recovery that follows it often both notice it), and caps the count.
 */
function finish(diags: Diagnostic[], path: string): Diagnostic[] {
  diags.sort((a, b) => a.span.start - b.span.start || a.span.end - b.span.end);
  const out: Diagnostic[] = [];
  let lastErrorStart = -1;
  for (const d of diags) {
    if (d.severity === 'error' && d.span.start === lastErrorStart && isParserCode(d.code)) continue;
    if (d.severity === 'error' && isParserCode(d.code)) lastErrorStart = d.span.start;
    out.push(d);
  }
  if (out.length > MAX_SYNTAX_DIAGNOSTICS) {
    const rest = out.length - MAX_SYNTAX_DIAGNOSTICS;
    const last = out[MAX_SYNTAX_DIAGNOSTICS - 1];
    out.length = MAX_SYNTAX_DIAGNOSTICS;
    out.push({
      code: Codes.TooManyErrors.code,
      severity: Codes.TooManyErrors.severity,
      message: `${rest} more syntax problems in this file are not shown`,
      file: path,
      span: { start: last.span.end, end: last.span.end },
      hint: 'fix the problems above first; is this really an .mcl file?',
    });
  }
  return out;
}

const PARSER_CODES = new Set([Codes.ExpectedToken.code, Codes.UnexpectedToken.code, Codes.MissingComma.code]);
function isParserCode(code: string): boolean {
  return PARSER_CODES.has(code);
}
