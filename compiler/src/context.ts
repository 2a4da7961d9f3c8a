// Shared state of one compilation: the host, the diagnostics sink, the
// Program being built for the language server (symbols and references), and
// the loaded modules. Each stage reads and extends it; nothing here does IO
// except through the host.

import { makeDiagnostic, type Decl, type Diagnostic, type DiagnosticExtra, type DiagnosticInfo, type Ident, type SourceFile, type Span } from '@mcl/language';
import type { CompilerHost, InstanceSettings, Program, Reference, SymbolInfo, SymbolKind } from './api';
import { pureSha256, type Sha256 } from '@mcl/plan';

export type DeclKind = 'type' | 'protocol' | 'component' | 'system' | 'image' | 'target';

export interface DeclEntry {
  kind: DeclKind;
  name: string;
  /** Module path + "." + name, e.g. `std.http.Request`. */
  qname: string;
  decl: Decl & { name: Ident };
  module: Module;
  symbol: string;
}

export interface ImportBinding {
  entry: DeclEntry;
  span: Span;
}

export interface Module {
  /** Dotted module path: `webstack`, `shop.types`, `std.http`. */
  path: string;
  /** Program file key: workspace-relative path or `std:<module>`. */
  file: string;
  ast: SourceFile;
  text: string;
  isStd: boolean;
  isEntry: boolean;
  /** Local declarations by name (the first one wins when duplicated). */
  decls: Map<string, DeclEntry>;
  /** Names bound by `import m.{A, B as C}`. */
  explicit: Map<string, ImportBinding>;
  /** Modules imported with `import m.*`. */
  globs: Module[];
  /** Module paths named by imports, in source order (for cycle detection). */
  importEdges: { target: string; span: Span }[];
  /** Every module path this module names (imports and qualified names such as `std.log.Logs`). */
  deps: string[];
  symbol: string;
}

export class Ctx {
  readonly diagnostics: Diagnostic[] = [];
  private readonly seen = new Set<string>();
  readonly program: Program = { files: new Map(), texts: new Map(), symbols: new Map(), references: [], instances: new Map() };
  /** Loaded modules by module path. */
  readonly modules = new Map<string, Module>();
  /** Loaded modules by file key. */
  readonly byFile = new Map<string, Module>();
  /**
   * Modules taken over from an earlier compile with their declarations,
   * bindings and checked results (incremental.ts): resolution skips them,
   * and the stages find their results already computed.
   */
  readonly reused = new Set<Module>();
  /**
   * The symbols this compile added to an index taken over from an earlier
   * compile (incremental.ts): what the next compile's index groups by file
   * without walking the symbols that were only taken over. Undefined when
   * the index was built from nothing.
   */
  addedSymbols: SymbolInfo[] | undefined = undefined;
  /** The instances' settings this compile added to a map taken over from an earlier compile, as `addedSymbols`. */
  addedInstances: [string, InstanceSettings][] | undefined = undefined;
  /**
   * The references taken over from an earlier compile, file by file, and how
   * many references this compile had recorded when they were taken over
   * (incremental.ts): they are joined into `program.references` only when a
   * caller reads it, so a compile whose index nobody reads (an edit whose
   * diagnostics are published before any request) copies none of them.
   */
  takenReferences: { at: number; lists: Reference[][] } | undefined = undefined;
  /** Extra files read for programs: path -> text (for the plan's `sources`). */
  readonly programFiles = new Map<string, string>();

  /** Hex SHA-256 of a text: the host's native implementation when it offers one. */
  readonly sha256: Sha256;
  /** The folder module and program paths resolve under (`CompilerHost.moduleRoot`). */
  readonly root: string;

  /**
   * @param indexing record symbols and references in `program` (the language
   *   server's index); without it `declare` only computes the symbol id.
   */
  constructor(
    readonly host: CompilerHost,
    readonly indexing: boolean,
  ) {
    this.root = host.moduleRoot ?? '';
    const native = host.sha256;
    this.sha256 = native ? (t) => native.call(host, t) : pureSha256;
  }

  /** Reports a diagnostic once (systems instantiated several times would otherwise repeat themselves). */
  report(info: DiagnosticInfo, message: string, file: string, span: Span, extra?: DiagnosticExtra): void {
    const key = `${info.code}\u0000${file}\u0000${span.start}\u0000${span.end}\u0000${message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.diagnostics.push(makeDiagnostic(info, message, file, span, extra));
  }

  addDiagnostics(ds: readonly Diagnostic[]): void {
    for (const d of ds) {
      const key = `${d.code}\u0000${d.file}\u0000${d.span.start}\u0000${d.span.end}\u0000${d.message}`;
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      this.diagnostics.push(d);
    }
  }

  /**
   * Declares a symbol (first declaration of an id wins) and records the
   * declaration's own name as a reference. Returns the symbol's id either way;
   * `detail` is a function so that its text is only built when indexing.
   */
  declare(
    kind: SymbolKind,
    file: string,
    path: string,
    name: Ident,
    span: Span,
    qualifiedName: string,
    detail: () => string,
    doc?: string,
    container?: string,
  ): string {
    const id = `${file}#${kind}:${path}`;
    if (!this.indexing) return id;
    if (!this.program.symbols.has(id)) {
      const info: SymbolInfo = {
        id,
        kind,
        name: name.name,
        qualifiedName,
        file,
        nameSpan: { start: name.span.start, end: name.span.end },
        span: { start: span.start, end: span.end },
        detail: detail(),
      };
      if (doc !== undefined) info.doc = doc;
      if (container !== undefined) info.container = container;
      this.program.symbols.set(id, info);
      this.addedSymbols?.push(info);
    }
    this.reference(file, name.span, id);
    return id;
  }

  /** Records the protocol of a port or export symbol (`SymbolInfo.protocol`) in the index. */
  protocolOf(symbol: string, protocol: string | undefined): void {
    if (!this.indexing || protocol === undefined) return;
    const info = this.program.symbols.get(symbol);
    if (info) info.protocol = protocol;
  }

  reference(file: string, span: Span, symbol: string): void {
    if (!this.indexing || span.end <= span.start) return;
    // Spans are shared with the (immutable) syntax tree rather than copied: there is one per name use.
    this.program.references.push({ file, span, symbol });
  }
}

export function related(file: string, span: Span, message: string) {
  return { file, span: { start: span.start, end: span.end }, message };
}

/** Text of a node in its file, for messages and fixes. */
export function textOf(m: Module, span: Span): string {
  return m.text.slice(span.start, span.end);
}
