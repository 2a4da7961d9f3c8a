// Document symbols (the outline, from the parsed tree so it works while the
// file has errors elsewhere) and workspace symbols (from the checked Program).

import type { Decl, LineIndex, Span } from '@mcl/language';
import { SymbolKind, type DocumentSymbol, type SymbolInformation } from 'vscode-languageserver';
import type { SymbolKind as McSymbolKind } from '@mcl/compiler';
import type { ParsedDocument, Snapshot } from '../analysis';
import { toRange } from '../convert';
import type { ServerContext } from '../service';

/** Symbols in one outline reply at most; a generated file with more gets the first ones and a note in the log. */
export const MAX_DOCUMENT_SYMBOLS = 10_000;

export function documentSymbols(doc: ParsedDocument): DocumentSymbol[] {
  const out: DocumentSymbol[] = [];
  let count = 0;
  for (const d of doc.ast.decls) {
    const s = declSymbol(d, doc.lines);
    if (!s) continue;
    count += 1 + (s.children?.length ?? 0);
    if (count > MAX_DOCUMENT_SYMBOLS) break;
    out.push(s);
  }
  return out;
}

/** The outline as a flat list, for clients without hierarchical document symbols. */
export function flatDocumentSymbols(symbols: DocumentSymbol[], uri: string): SymbolInformation[] {
  const out: SymbolInformation[] = [];
  const add = (list: DocumentSymbol[], container: string | undefined): void => {
    for (const s of list) {
      out.push({ name: s.name, kind: s.kind, location: { uri, range: s.range }, containerName: container });
      if (s.children) add(s.children, s.name);
    }
  };
  add(symbols, undefined);
  return out;
}

function sym(
  lines: LineIndex,
  name: string,
  kind: SymbolKind,
  span: Span,
  nameSpan: Span,
  detail?: string,
  children?: DocumentSymbol[],
): DocumentSymbol | undefined {
  if (!name) return undefined;
  const range = toRange(lines, span);
  let selectionRange = toRange(lines, nameSpan);
  // The selection must lie inside the range; recovered nodes may break that.
  if (nameSpan.start < span.start || nameSpan.end > span.end) selectionRange = range;
  return { name, kind, range, selectionRange, detail, children: children && children.length > 0 ? children : undefined };
}

function compact<T>(items: (T | undefined)[]): T[] {
  return items.filter((x): x is T => x !== undefined);
}

function declSymbol(d: Decl, lines: LineIndex): DocumentSymbol | undefined {
  switch (d.kind) {
    case 'TypeDecl': {
      const t = d.type;
      let children: DocumentSymbol[] = [];
      if (t.kind === 'RecordType') {
        children = compact(t.fields.map((f) => sym(lines, f.name.name, SymbolKind.Field, f.span, f.name.span, f.optional ? 'optional' : undefined)));
      } else if (t.kind === 'EnumType') {
        children = compact(t.members.map((m) => sym(lines, m.name, SymbolKind.EnumMember, m.span, m.span)));
      } else if (t.kind === 'UnionType') {
        children = compact(t.variants.map((v) => sym(lines, v.name.name, SymbolKind.EnumMember, v.span, v.name.span)));
      }
      const kind = t.kind === 'EnumType' || t.kind === 'UnionType' ? SymbolKind.Enum : t.kind === 'RecordType' ? SymbolKind.Struct : SymbolKind.TypeParameter;
      return sym(lines, d.name.name, kind, d.span, d.name.span, 'type', children);
    }
    case 'ProtocolDecl':
      return sym(
        lines,
        d.name.name,
        SymbolKind.Interface,
        d.span,
        d.name.span,
        'protocol',
        compact(d.ops.map((o) => sym(lines, o.name.name, SymbolKind.Method, o.span, o.name.span, o.opKind))),
      );
    case 'ComponentDecl': {
      const children: (DocumentSymbol | undefined)[] = [];
      for (const m of d.members) {
        if (m.kind === 'ParamDecl') children.push(sym(lines, m.name.name, SymbolKind.Property, m.span, m.name.span, 'param'));
        else if (m.kind === 'PortDecl')
          children.push(sym(lines, m.name.name, SymbolKind.Interface, m.span, m.name.span, `${m.expose ? 'expose' : m.direction} ${m.protocol.parts.map((p) => p.name).join('.')}`));
      }
      return sym(lines, d.name.name, SymbolKind.Class, d.span, d.name.span, 'component', compact(children));
    }
    case 'SystemDecl': {
      const children: (DocumentSymbol | undefined)[] = [];
      for (const m of d.members) {
        if (m.kind === 'InstanceDecl')
          children.push(sym(lines, m.name.name, SymbolKind.Object, m.span, m.name.span, m.component.parts.map((p) => p.name).join('.')));
        else if (m.kind === 'ConnectDecl') {
          const name = `${m.from.instance.name}.${m.from.port.name} -> ${m.to.instance.name}.${m.to.port.name}`;
          children.push(sym(lines, name, SymbolKind.Event, m.span, m.span, 'connect'));
        } else if (m.kind === 'ExportDecl') children.push(sym(lines, m.name.name, SymbolKind.Interface, m.span, m.name.span, 'export'));
        else if (m.kind === 'EgressDecl')
          children.push(sym(lines, m.name.name, SymbolKind.Event, m.span, m.name.span, `egress ${m.destination.kind === 'String' ? m.destination.value : ''}`.trim()));
        else if (m.kind === 'PolicyBlock') children.push(sym(lines, 'policy', SymbolKind.Namespace, m.span, m.span));
      }
      return sym(lines, d.name.name, SymbolKind.Module, d.span, d.name.span, 'system', compact(children));
    }
    case 'ImageDecl':
      return sym(lines, d.name.name, SymbolKind.File, d.span, d.name.span, 'image');
    case 'TargetDecl':
      return sym(lines, d.name.name, SymbolKind.Constant, d.span, d.name.span, 'target');
    case 'LabelsDecl':
      return sym(lines, 'labels', SymbolKind.Enum, d.span, d.span, d.chains.map((c) => c.map((l) => l.name).join(' < ')).join('; '));
    case 'DeployDecl':
      return sym(lines, `deploy ${d.system.parts.map((p) => p.name).join('.')}`, SymbolKind.Event, d.span, d.system.span, d.targets ? d.targets.map((t) => t.name).join(', ') : d.target?.name);
  }
}

const KIND_MAP: Record<McSymbolKind, SymbolKind> = {
  module: SymbolKind.Module,
  type: SymbolKind.Struct,
  field: SymbolKind.Field,
  variant: SymbolKind.EnumMember,
  'enum-member': SymbolKind.EnumMember,
  protocol: SymbolKind.Interface,
  operation: SymbolKind.Method,
  component: SymbolKind.Class,
  system: SymbolKind.Namespace,
  param: SymbolKind.Property,
  port: SymbolKind.Interface,
  instance: SymbolKind.Object,
  export: SymbolKind.Interface,
  egress: SymbolKind.Event,
  image: SymbolKind.File,
  label: SymbolKind.Constant,
  target: SymbolKind.Constant,
};

export function lspSymbolKind(kind: McSymbolKind): SymbolKind {
  return KIND_MAP[kind] ?? SymbolKind.Variable;
}

/** Case-insensitive subsequence match, the usual fuzzy match of symbol pickers. */
export function fuzzyMatch(query: string, name: string): boolean {
  const q = query.toLowerCase();
  const n = name.toLowerCase();
  let i = 0;
  for (let j = 0; j < n.length && i < q.length; j++) if (n[j] === q[i]) i++;
  return i === q.length;
}

export function workspaceSymbols(s: Snapshot, c: ServerContext, query: string): SymbolInformation[] {
  const out: SymbolInformation[] = [];
  for (const sym of s.program.symbols.values()) {
    if (sym.kind === 'module') continue;
    if (!fuzzyMatch(query, sym.name)) continue;
    const lines = s.lines(sym.file);
    if (!lines) continue;
    const container = sym.container ? s.program.symbols.get(sym.container)?.name : undefined;
    out.push({
      name: sym.name,
      kind: lspSymbolKind(sym.kind),
      location: { uri: c.paths.toUri(sym.file), range: toRange(lines, sym.nameSpan) },
      containerName: container,
    });
    if (out.length >= 1000) break;
  }
  // Workspace declarations before the standard library, then by name.
  out.sort((a, b) => Number(a.location.uri.includes('/stdlib/')) - Number(b.location.uri.includes('/stdlib/')) || a.name.localeCompare(b.name));
  return out;
}
