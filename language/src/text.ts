// Conversions between the UTF-16 offsets stored in spans and the positions
// people and tools expect: 1-based lines and columns for code frames, UTF-8
// byte offsets for JSON and SARIF, and 0-based UTF-16 line/character pairs
// for the Language Server Protocol.

import type { Span } from './ast';

export interface Position {
  /** 1-based line. */
  line: number;
  /** 1-based column in Unicode code points. */
  column: number;
  /** 0-based UTF-8 byte offset from the start of the file. */
  byte: number;
  /** 0-based UTF-16 offset (the same unit as spans). */
  offset: number;
}

export class LineIndex {
  /** UTF-16 offset of the start of each line. */
  private readonly lineStarts: number[];

  constructor(readonly text: string) {
    const starts = [0];
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10) starts.push(i + 1);
      else if (c === 13) {
        if (text.charCodeAt(i + 1) === 10) i++;
        starts.push(i + 1);
      }
    }
    this.lineStarts = starts;
  }

  get lineCount(): number {
    return this.lineStarts.length;
  }

  /** 0-based line containing the UTF-16 offset. */
  lineOf(offset: number): number {
    const o = Math.max(0, Math.min(offset, this.text.length));
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid] <= o) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  lineStart(line: number): number {
    return this.lineStarts[Math.max(0, Math.min(line, this.lineStarts.length - 1))];
  }

  /** The text of a 0-based line without its line terminator. */
  lineText(line: number): string {
    const start = this.lineStart(line);
    const next = line + 1 < this.lineStarts.length ? this.lineStarts[line + 1] : this.text.length;
    return this.text.slice(start, next).replace(/\r?\n$|\r$/, '');
  }

  position(offset: number): Position {
    const o = Math.max(0, Math.min(offset, this.text.length));
    const line = this.lineOf(o);
    const start = this.lineStarts[line];
    const before = this.text.slice(start, o);
    return {
      line: line + 1,
      column: countCodePoints(before) + 1,
      byte: utf8Length(this.text.slice(0, o)),
      offset: o,
    };
  }

  /** LSP position: 0-based line and UTF-16 character. */
  lspPosition(offset: number): { line: number; character: number } {
    const o = Math.max(0, Math.min(offset, this.text.length));
    const line = this.lineOf(o);
    return { line, character: o - this.lineStarts[line] };
  }

  /** UTF-16 offset of an LSP position, clamped to the text. */
  offsetAt(pos: { line: number; character: number }): number {
    if (pos.line >= this.lineStarts.length) return this.text.length;
    const start = this.lineStarts[Math.max(0, pos.line)];
    const lineLen = this.lineText(Math.max(0, pos.line)).length;
    return start + Math.max(0, Math.min(pos.character, lineLen));
  }

  range(span: Span): { start: Position; end: Position } {
    return { start: this.position(span.start), end: this.position(span.end) };
  }
}

export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

function countCodePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) i++;
    n++;
  }
  return n;
}
