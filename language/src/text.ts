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
  /**
   * UTF-8 byte offset of the start of each line, and whether the line is all
   * ASCII, computed on the first `position`: a byte offset then costs the
   * length of its line rather than of the whole text, and nothing at all on
   * an ASCII line, however long (renderers ask for a few per diagnostic, and
   * a generated file can hold thousands of diagnostics on one line).
   */
  private lineByteStarts: number[] | undefined;
  private asciiLines: Uint8Array | undefined;

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
    let end = line + 1 < this.lineStarts.length ? this.lineStarts[line + 1] : this.text.length;
    if (end > start && this.text.charCodeAt(end - 1) === 10) end--;
    if (end > start && this.text.charCodeAt(end - 1) === 13) end--;
    return this.text.slice(start, end);
  }

  position(offset: number): Position {
    const o = Math.max(0, Math.min(offset, this.text.length));
    const line = this.lineOf(o);
    const start = this.lineStarts[line];
    const byteStart = this.byteStarts()[line];
    if (this.asciiLines![line]) return { line: line + 1, column: o - start + 1, byte: byteStart + (o - start), offset: o };
    const before = this.text.slice(start, o);
    return {
      line: line + 1,
      column: countCodePoints(before) + 1,
      byte: byteStart + utf8Length(before),
      offset: o,
    };
  }

  private byteStarts(): number[] {
    if (!this.lineByteStarts) {
      const n = this.lineStarts.length;
      const bytes = new Array<number>(n);
      const ascii = new Uint8Array(n);
      bytes[0] = 0;
      for (let l = 0; l < n; l++) {
        const end = l + 1 < n ? this.lineStarts[l + 1] : this.text.length;
        const line = this.text.slice(this.lineStarts[l], end);
        const len = utf8Length(line);
        ascii[l] = len === line.length ? 1 : 0;
        if (l + 1 < n) bytes[l + 1] = bytes[l] + len;
      }
      this.lineByteStarts = bytes;
      this.asciiLines = ascii;
    }
    return this.lineByteStarts;
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

/** The number of Unicode code points in `s` (a surrogate pair counts once). */
export function countCodePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) i++;
    n++;
  }
  return n;
}
