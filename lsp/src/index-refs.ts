// Lookup structures over a compiled Program: which symbol is named at an
// offset, and every use of a symbol. Built once per build and shared by all
// requests that read the same snapshot.

import type { Program, Reference, SymbolInfo } from '@mcl/compiler';

export class ReferenceIndex {
  private readonly byFile = new Map<string, Reference[]>();
  private readonly bySymbol = new Map<string, Reference[]>();
  /** Symbols declared in each file. */
  private readonly declsByFile = new Map<string, SymbolInfo[]>();
  /** Symbols by their container id ("" for top-level declarations). */
  private readonly byContainer = new Map<string, SymbolInfo[]>();

  constructor(readonly program: Program) {
    for (const r of program.references) {
      push(this.byFile, r.file, r);
      push(this.bySymbol, r.symbol, r);
    }
    for (const refs of this.byFile.values()) refs.sort((a, b) => a.span.start - b.span.start || b.span.end - a.span.end);
    for (const s of program.symbols.values()) {
      push(this.declsByFile, s.file, s);
      push(this.byContainer, s.container ?? '', s);
    }
  }

  symbol(id: string): SymbolInfo | undefined {
    return this.program.symbols.get(id);
  }

  /**
   * The reference at an offset (the cursor may sit just after the name, as
   * when a word was just typed). The innermost reference wins.
   */
  at(file: string, offset: number): Reference | undefined {
    const refs = this.byFile.get(file);
    if (!refs) return undefined;
    let lo = 0;
    let hi = refs.length - 1;
    let last = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (refs[mid].span.start <= offset) {
        last = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    let best: Reference | undefined;
    // References do not nest deeply; a short walk back finds any enclosing one.
    for (let i = last; i >= 0 && i > last - 32; i--) {
      const r = refs[i];
      if (r.span.start <= offset && offset <= r.span.end) {
        if (!best || r.span.end - r.span.start < best.span.end - best.span.start) best = r;
      }
    }
    return best;
  }

  /** The symbol declared or used at an offset. */
  symbolAt(file: string, offset: number): { ref: Reference; symbol: SymbolInfo } | undefined {
    const ref = this.at(file, offset);
    if (!ref) {
      // A declaration whose name is not listed among the references still counts.
      for (const s of this.declsByFile.get(file) ?? []) {
        if (s.nameSpan.start <= offset && offset <= s.nameSpan.end && s.nameSpan.end > s.nameSpan.start) {
          return { ref: { file, span: s.nameSpan, symbol: s.id }, symbol: s };
        }
      }
      return undefined;
    }
    const symbol = this.program.symbols.get(ref.symbol);
    return symbol ? { ref, symbol } : undefined;
  }

  /** Every reference in a file, by position. */
  inFile(file: string): Reference[] {
    return this.byFile.get(file) ?? [];
  }

  references(symbolId: string): Reference[] {
    return this.bySymbol.get(symbolId) ?? [];
  }

  declarationsIn(file: string): SymbolInfo[] {
    return this.declsByFile.get(file) ?? [];
  }

  children(containerId: string): SymbolInfo[] {
    return this.byContainer.get(containerId) ?? [];
  }

  /** The symbol a span in a file refers to (a QualifiedName's last part, usually). */
  resolveSpan(file: string, span: { start: number; end: number }): SymbolInfo | undefined {
    const r = this.at(file, Math.max(span.start, span.end - 1));
    return r ? this.program.symbols.get(r.symbol) : undefined;
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
