// Semantic tokens: every resolved name coloured by what it names (a port
// named `log` is a port, not a keyword), declarations and standard library
// names marked with modifiers; keywords, literals, operators and comments
// from the language's tokenizer, with `///` doc comments marked as
// documentation.

import type { SymbolKind as McSymbolKind } from '@mcl/compiler';
import type { SemanticTokens, SemanticTokensLegend } from 'vscode-languageserver';
import type { Snapshot } from '../analysis';
import type { ServerContext } from '../service';
import { lexicalTokens } from '../lexical';

const TOKEN_TYPES = [
  'namespace',
  'type',
  'class',
  'enum',
  'interface',
  'struct',
  'parameter',
  'variable',
  'property',
  'enumMember',
  'method',
  'keyword',
  'comment',
  'string',
  'number',
  'operator',
] as const;
const TOKEN_MODIFIERS = ['declaration', 'defaultLibrary', 'readonly', 'documentation'] as const;

export const SEMANTIC_LEGEND: SemanticTokensLegend = { tokenTypes: [...TOKEN_TYPES], tokenModifiers: [...TOKEN_MODIFIERS] };

type TokenType = (typeof TOKEN_TYPES)[number];
const typeIndex = (t: TokenType): number => TOKEN_TYPES.indexOf(t);
const MOD = { declaration: 1, defaultLibrary: 2, readonly: 4, documentation: 8 };

const KIND_TO_TYPE: Record<McSymbolKind, TokenType> = {
  module: 'namespace',
  type: 'type',
  field: 'property',
  variant: 'enumMember',
  'enum-member': 'enumMember',
  protocol: 'interface',
  operation: 'method',
  component: 'class',
  system: 'namespace',
  param: 'parameter',
  port: 'property',
  instance: 'variable',
  export: 'property',
  egress: 'variable',
  image: 'struct',
  label: 'enumMember',
  target: 'variable',
};

interface RawToken {
  start: number;
  end: number;
  type: number;
  mods: number;
}

export function semanticTokens(s: Snapshot, _c: ServerContext, file: string): SemanticTokens {
  const text = s.text(file);
  const lines = s.lines(file);
  if (text === undefined || !lines) return { data: [] };
  const raw: RawToken[] = [];
  const covered = new Set<number>();

  for (const sym of s.refs.declarationsIn(file)) {
    pushName(raw, covered, text, sym.nameSpan, KIND_TO_TYPE[sym.kind], MOD.declaration | (file.startsWith('std:') ? MOD.defaultLibrary : 0));
  }
  for (const ref of s.refs.inFile(file)) {
    const sym = s.program.symbols.get(ref.symbol);
    if (!sym) continue;
    const mods = sym.file.startsWith('std:') ? MOD.defaultLibrary : 0;
    pushName(raw, covered, text, ref.span, KIND_TO_TYPE[sym.kind], mods);
  }
  for (const t of lexicalTokens(text)) {
    switch (t.kind) {
      case 'comment':
      case 'docComment':
        raw.push({ start: t.start, end: t.end, type: typeIndex('comment'), mods: t.kind === 'docComment' ? MOD.documentation : 0 });
        break;
      case 'keyword':
        raw.push({ start: t.start, end: t.end, type: typeIndex('keyword'), mods: 0 });
        break;
      case 'contextualKeyword':
        // A contextual keyword used as a name is already covered by that name.
        if (!covered.has(t.start)) raw.push({ start: t.start, end: t.end, type: typeIndex('keyword'), mods: 0 });
        break;
      case 'string':
        raw.push({ start: t.start, end: t.end, type: typeIndex('string'), mods: 0 });
        break;
      case 'number':
        raw.push({ start: t.start, end: t.end, type: typeIndex('number'), mods: 0 });
        break;
      case 'operator':
        raw.push({ start: t.start, end: t.end, type: typeIndex('operator'), mods: 0 });
        break;
      default:
        break;
    }
  }

  raw.sort((a, b) => a.start - b.start || b.end - a.end);
  const data: number[] = [];
  let prevLine = 0;
  let prevChar = 0;
  let lastEnd = -1;
  for (const t of raw) {
    // Overlaps (a name inside a comment from a recovered parse) are dropped.
    if (t.start < lastEnd || t.end <= t.start) continue;
    lastEnd = t.end;
    // Tokens may not span lines: a block comment is sent line by line.
    let start = t.start;
    while (start < t.end) {
      const line = lines.lineOf(start);
      const lineEnd = Math.min(t.end, lines.lineStart(line) + lines.lineText(line).length);
      const char = start - lines.lineStart(line);
      const length = lineEnd - start;
      if (length > 0) {
        data.push(line - prevLine, line === prevLine ? char - prevChar : char, length, t.type, t.mods);
        prevLine = line;
        prevChar = char;
      }
      if (line + 1 >= lines.lineCount) break;
      start = lines.lineStart(line + 1);
    }
  }
  return { data };
}

/**
 * Adds a token for a name. A qualified reference (`std.http.Request`) colours
 * the module parts as namespaces and the last part as the symbol.
 */
function pushName(raw: RawToken[], covered: Set<number>, text: string, span: { start: number; end: number }, type: TokenType, mods: number): void {
  if (covered.has(span.start) || span.end <= span.start) return;
  const written = text.slice(span.start, span.end);
  // A quoted name (`"a.b": int`) is one name even when it holds a dot.
  if (!written.includes('.') || written.startsWith('"')) {
    covered.add(span.start);
    raw.push({ start: span.start, end: span.end, type: typeIndex(type), mods });
    return;
  }
  let pos = span.start;
  const parts = written.split('.');
  parts.forEach((part, i) => {
    const lead = part.length - part.trimStart().length;
    const name = part.trim();
    const start = pos + lead;
    if (name && !covered.has(start)) {
      covered.add(start);
      raw.push({ start, end: start + name.length, type: typeIndex(i === parts.length - 1 ? type : 'namespace'), mods });
    }
    pos += part.length + 1;
  });
}
