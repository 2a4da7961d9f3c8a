// Lookup structures over a compiled Program: which symbol is named at an
// offset, and every use of a symbol. Built once per build and shared by all
// requests that read the same snapshot.

import type { Program, Reference, SymbolInfo } from '@mcl/compiler';

export class ReferenceIndex {
  // Each lookup structure is built when a request first needs it: after an
  // edit, the requests that follow (semantic tokens, hover, completion in one
  // file) group the workspace's references by file once and sort only their
  // own file's, instead of sorting every file's and indexing every symbol's uses.
  private byFileMap: Map<string, Reference[]> | undefined;
  private readonly sorted = new Set<string>();
  private bySymbolMap: Map<string, Reference[]> | undefined;
  /** Symbols declared in each file. */
  private declsByFileMap: Map<string, SymbolInfo[]> | undefined;
  /** Symbols by their container id ("" for top-level declarations). */
  private byContainerMap: Map<string, SymbolInfo[]> | undefined;

  constructor(readonly program: Program) {}

  private get byFile(): Map<string, Reference[]> {
    if (!this.byFileMap) {
      this.byFileMap = new Map();
      for (const r of this.program.references) push(this.byFileMap, r.file, r);
    }
    return this.byFileMap;
  }

  private get bySymbol(): Map<string, Reference[]> {
    if (!this.bySymbolMap) {
      this.bySymbolMap = new Map();
      for (const r of this.program.references) push(this.bySymbolMap, r.symbol, r);
    }
    return this.bySymbolMap;
  }

  private get declsByFile(): Map<string, SymbolInfo[]> {
    if (!this.declsByFileMap) {
      this.declsByFileMap = new Map();
      for (const s of this.program.symbols.values()) push(this.declsByFileMap, s.file, s);
    }
    return this.declsByFileMap;
  }

  private get byContainer(): Map<string, SymbolInfo[]> {
    if (!this.byContainerMap) {
      this.byContainerMap = new Map();
      for (const s of this.program.symbols.values()) push(this.byContainerMap, s.container ?? '', s);
    }
    return this.byContainerMap;
  }

  symbol(id: string): SymbolInfo | undefined {
    return this.program.symbols.get(id);
  }

  /**
   * The reference at an offset (the cursor may sit just after the name, as
   * when a word was just typed). The innermost reference wins.
   */
  at(file: string, offset: number): Reference | undefined {
    const refs = this.inFile(file);
    if (refs.length === 0) return undefined;
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
    const refs = this.byFile.get(file);
    if (!refs) return [];
    if (!this.sorted.has(file)) {
      refs.sort((a, b) => a.span.start - b.span.start || b.span.end - a.span.end);
      this.sorted.add(file);
    }
    return refs;
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
