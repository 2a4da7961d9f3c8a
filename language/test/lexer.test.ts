// The lexer: tokens for editors, literal decoding, and lexical diagnostics with hints and fixes.

import { describe, expect, it } from 'vitest';
import { parse, tokenize, Codes, syntaxDiagnosticInfos } from '../src/index';
import { lex } from '../src/lexer';

function diags(text: string) {
  return parse(text, 'lex.mcl').diagnostics;
}
function valueDiags(v: string) {
  return diags(`target t { v ${v} }`);
}

describe('tokenize', () => {
  it('classifies tokens and includes comments in order', () => {
    const text = '/// doc\ncomponent memory { memory 1MiB } // end\n"s" 2s 5/s 1.5 true -> on-failure';
    const toks = tokenize(text);
    expect(toks.map((t) => [t.kind, t.text])).toEqual([
      ['docComment', '/// doc'],
      ['keyword', 'component'],
      ['contextualKeyword', 'memory'],
      ['punctuation', '{'],
      ['contextualKeyword', 'memory'],
      ['size', '1MiB'],
      ['punctuation', '}'],
      ['comment', '// end'],
      ['string', '"s"'],
      ['duration', '2s'],
      ['rate', '5/s'],
      ['float', '1.5'],
      ['bool', 'true'],
      ['operator', '->'],
      ['keyword', 'on-failure'],
    ]);
    for (const t of toks) expect(text.slice(t.span.start, t.span.end)).toBe(t.text);
  });

  it('keeps spans in UTF-16 offsets around astral characters', () => {
    const text = '"😀" x';
    const toks = tokenize(text);
    expect(toks[1]).toEqual({ kind: 'identifier', span: { start: 5, end: 6 }, text: 'x' });
  });

  it('treats CRLF line endings like LF', () => {
    const lf = 'component C {\n  // note\n  memory 1MiB\n  param p: string = """\nx\n"""\n}\n';
    const crlf = lf.replace(/\n/g, '\r\n');
    const b = parse(crlf, 'a.mcl');
    expect(b.diagnostics).toEqual([]);
    expect(b.file.comments[0].text).toBe('// note');
    const c = b.file.decls[0] as unknown as { members: { kind: string; default?: { value: string } }[] };
    expect(c.members.map((m) => m.kind)).toEqual(['MemoryMember', 'ParamDecl']);
    // The line break right after `"""` is dropped whole; the one before the closing quotes is kept.
    expect(c.members[1].default?.value).toBe('x\r\n');
  });

  it('skips a byte-order mark', () => {
    expect(diags('\uFEFFtype T = int')).toEqual([]);
  });
});

describe('lexical diagnostics', () => {
  it('suggests binary units for decimal ones, with a fix', () => {
    const [d] = valueDiags('64KB');
    expect(d).toMatchObject({ code: Codes.UnknownUnit.code, message: 'unknown unit `KB` in `64KB`', span: { start: 13, end: 17 } });
    expect(d.hint).toContain('64KiB');
    expect(d.fixes?.[0].edits[0]).toEqual({ file: 'lex.mcl', span: { start: 15, end: 17 }, newText: 'KiB' });
    const p = parse('target t { v 64KB }', 'lex.mcl').file.decls[0] as unknown as { props: { value: unknown }[] };
    expect(p.props[0].value).toMatchObject({ kind: 'Size', unit: 'KiB', bytes: 65536 });
  });

  it('suggests duration units and explains ambiguous ones', () => {
    expect(valueDiags('10sec')[0].hint).toContain('10s');
    expect(valueDiags('5m')[0].hint).toMatch(/min.*MiB/);
    expect(valueDiags('3hours')[0].hint).toContain('3h');
  });

  it('rejects unknown units and lists the real ones', () => {
    const [d] = valueDiags('12abc');
    expect(d.code).toBe(Codes.UnknownUnit.code);
    expect(d.hint).toContain('KiB');
  });

  it('rejects rates with unknown or missing units', () => {
    expect(valueDiags('5/sec')[0]).toMatchObject({ code: Codes.UnknownUnit.code });
    expect(valueDiags('5/d')[0].hint).toContain('per-second');
    expect(valueDiags('500/')[0]).toMatchObject({ code: Codes.UnknownUnit.code, message: 'the rate `500/` is missing its unit' });
  });

  it('flags integers outside the safe range and overflowing floats', () => {
    expect(valueDiags('99999999999999999999')[0].code).toBe(Codes.NumberOutOfRange.code);
    expect(valueDiags('9007199254740991')).toEqual([]);
    expect(valueDiags('-9007199254740991')).toEqual([]);
    expect(valueDiags('9007199254740992')[0].code).toBe(Codes.NumberOutOfRange.code);
    expect(valueDiags('1e999')[0].code).toBe(Codes.NumberOutOfRange.code);
    expect(valueDiags('9000000TiB')[0].code).toBe(Codes.NumberOutOfRange.code);
  });

  it('flags malformed numbers', () => {
    expect(valueDiags('1__0')[0].code).toBe(Codes.MalformedNumber.code);
    expect(valueDiags('1_')[0].code).toBe(Codes.MalformedNumber.code);
    expect(valueDiags('0x')[0].code).toBe(Codes.MalformedNumber.code);
    expect(valueDiags('1.5GiB')[0]).toMatchObject({ code: Codes.MalformedNumber.code });
    expect(valueDiags('64KiB2')[0].code).toBe(Codes.MalformedNumber.code);
  });

  it('reports invalid characters once per run, with a hint', () => {
    const ds = valueDiags("'x' @@@ # é");
    expect(ds.map((d) => d.code)).toEqual(Array(5).fill(Codes.InvalidCharacter.code));
    expect(ds[0].hint).toContain('double quotes');
    expect(ds[2]).toMatchObject({ message: 'invalid characters "@@@"', span: { start: 17, end: 20 } });
    expect(ds[3].hint).toContain('//');
    expect(ds[4].hint).toContain('ASCII');
    expect(valueDiags('\u0001')[0].message).toBe('invalid character U+0001');
  });

  it('reports unterminated strings and comments, and bad escapes', () => {
    expect(diags('type T = string(pattern "abc\n)')[0]).toMatchObject({ code: Codes.UnterminatedString.code, span: { start: 24, end: 28 } });
    expect(diags('target t { v """abc')[0]).toMatchObject({ code: Codes.UnterminatedString.code });
    expect(diags('type T = int /* open')[0]).toMatchObject({ code: Codes.UnterminatedComment.code, span: { start: 13, end: 15 } });
    expect(valueDiags('"\\q"')[0]).toMatchObject({ code: Codes.InvalidEscape.code, message: 'invalid escape `\\q` in a string' });
    expect(valueDiags('"\\u{110000}"')[0].code).toBe(Codes.InvalidEscape.code);
    expect(valueDiags('"\\u{D800}"')[0].code).toBe(Codes.InvalidEscape.code);
  });

  it('decodes every escape', () => {
    const t = parse('target t { v "\\" \\\\ \\n \\t \\r \\0 \\u{41}" }', 'x').file.decls[0] as unknown as { props: { value: { value: string } }[] };
    expect(t.props[0].value.value).toBe('" \\ \n \t \r \0 A');
  });
});

describe('the code registry', () => {
  it('has unique MCL01xx codes for the syntax stage', () => {
    const codes = syntaxDiagnosticInfos.map((i) => i.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const i of syntaxDiagnosticInfos) {
      expect(i.code).toMatch(/^MCL01\d\d$/);
      expect(i.stage).toBe('syntax');
      expect(i.title.length).toBeGreaterThan(5);
    }
  });
});

describe('lexer results', () => {
  // An object literal `{ tokens, ... }` would share its hidden class with every other such literal in the
  // process, and a change of that class's field types discarded the optimised lexer while it was being compiled.
  it('are instances of their own class, not object literals', () => {
    const r = lex('component A {}\n', 'a.mcl');
    expect(Object.getPrototypeOf(r)).not.toBe(Object.prototype);
    expect(r.tokens.map((t) => t.image)).toEqual(['component', 'A', '{', '}']);
    expect(Object.keys(r)).toEqual(['tokens', 'comments', 'diagnostics']);
  });
});
