// The shapes of the syntax tree's nodes, built from tokens by the grammar's
// actions (parser.ts). Building every node here keeps field names, field order
// (the golden trees are JSON) and spans in one place, apart from the grammar.
//
// A node that a rule fills in as it goes is created with placeholders in its
// required fields (the frozen `M_*` objects): the Chevrotain parser registers the
// node before its children are parsed so that recovery can return it, and
// replaces any placeholder left when a rule fails. Optional fields are added by
// the rules in the order the source mentions them.

import type * as A from './ast';
import type { LiteralPayload, Token } from './lexer';
import { K } from './tokens';

type Tok = Pick<Token, 'image' | 'startOffset' | 'endOffset' | 'tokenType'> & { payload?: LiteralPayload };

export const M_IDENT = Object.freeze({ kind: 'Ident', name: '', span: { start: -1, end: -1 } }) as unknown as A.Ident;
export const M_QNAME = Object.freeze({ kind: 'QualifiedName', parts: [], span: { start: -1, end: -1 } }) as unknown as A.QualifiedName;
export const M_TYPE = Object.freeze({ kind: 'MissingType', span: { start: -1, end: -1 } }) as unknown as A.MissingType;
export const M_EXPR = Object.freeze({ kind: 'MissingExpr', span: { start: -1, end: -1 } }) as unknown as A.MissingExpr;
export const M_STRING = Object.freeze({ kind: 'String', raw: '', value: '', span: { start: -1, end: -1 } }) as unknown as A.StringLiteral;
export const M_LIST = Object.freeze({ kind: 'List', items: [], span: { start: -1, end: -1 } }) as unknown as A.ListExpr;
export const M_MAP = Object.freeze({ kind: 'Map', entries: [], span: { start: -1, end: -1 } }) as unknown as A.MapExpr;
export const M_PORTREF = Object.freeze({ kind: 'PortRef', span: { start: -1, end: -1 } }) as unknown as A.PortRef;
export const M_EXPOSE = Object.freeze({ kind: 'ExposeSpec', span: { start: -1, end: -1 } }) as unknown as A.ExposeSpec;

/** The span of one token (token end offsets are inclusive, spans are not). */
export function tokenSpan(tok: Tok): A.Span {
  return { start: tok.startOffset, end: tok.endOffset + 1 };
}

export function ident(tok: Tok): A.Ident {
  return { kind: 'Ident', name: tok.image, span: { start: tok.startOffset, end: tok.endOffset + 1 } };
}

/** A literal expression from a literal token (`true`/`false` carry no payload). */
export function literal(tok: Tok, span: A.Span = tokenSpan(tok)): A.Expr {
  const p = tok.payload;
  if (p === undefined) {
    if (tok.tokenType === K.true || tok.tokenType === K.false) return { kind: 'Bool', value: tok.tokenType === K.true, span };
    return { kind: 'MissingExpr', span };
  }
  const raw = tok.image;
  switch (p.kind) {
    case 'int':
      return { kind: 'Int', raw, value: p.value, span };
    case 'float':
      return { kind: 'Float', raw, value: p.value, span };
    case 'string':
      return { kind: 'String', raw, value: p.value, span };
    case 'size':
      return { kind: 'Size', raw, amount: p.amount, unit: p.unit, bytes: p.bytes, span };
    case 'duration':
      return { kind: 'Duration', raw, amount: p.amount, unit: p.unit, ms: p.ms, span };
    case 'rate':
      return { kind: 'Rate', raw, count: p.count, per: p.per, perSecond: p.perSecond, span };
  }
}

/** A string argument (`script "x"`): anything else becomes an empty string at the same place. */
export function stringArg(e: A.Expr): A.StringLiteral {
  return e.kind === 'String' ? e : ({ kind: 'String', raw: '', value: '', span: e.span } as A.StringLiteral);
}

/** Whether a setting's value has the literal kind it needs; a missing value is never reported twice. */
export function hasKind(e: A.Expr, kinds: readonly string[]): boolean {
  return kinds.includes(e.kind) || e.kind === 'MissingExpr';
}

function sp(start: number): A.Span {
  return { start, end: 0 };
}

function withDoc<N extends { doc?: string }>(node: N, doc: string | undefined): N {
  if (doc !== undefined) node.doc = doc;
  return node;
}

// Names

export const qualifiedName = (start: number): A.QualifiedName => ({ kind: 'QualifiedName', parts: [], span: sp(start) });
export const portRef = (start: number): A.PortRef => ({ kind: 'PortRef', instance: M_IDENT, port: M_IDENT, span: sp(start) });

// Imports

/** The module path of an import: its span is set from its parts once they are known. */
export const modulePath = (start: number): A.QualifiedName => ({ kind: 'QualifiedName', parts: [], span: { start, end: start } });
export const importDecl = (start: number, module: A.QualifiedName): A.ImportDecl => ({ kind: 'Import', module, items: [], span: sp(start) });
export const importItem = (start: number): A.ImportItem => ({ kind: 'ImportItem', name: M_IDENT, span: sp(start) });
export function closeModulePath(module: A.QualifiedName): void {
  module.span = { start: module.parts[0].span.start, end: module.parts[module.parts.length - 1].span.end };
}

// Types

export const typeDecl = (start: number, doc: string | undefined): A.TypeDecl =>
  withDoc<A.TypeDecl>({ kind: 'TypeDecl', name: M_IDENT, type: M_TYPE, span: sp(start) }, doc);
export const namedType = (name: A.QualifiedName, start: number, end: number): A.NamedType => ({ kind: 'NamedType', name, span: { start, end } });
export const primitiveType = (start: number): A.PrimitiveType => ({ kind: 'PrimitiveType', name: 'int', constraints: [], span: sp(start) });
export const listType = (start: number): A.ListType => ({ kind: 'ListType', element: M_TYPE, constraints: [], span: sp(start) });
export const mapType = (start: number): A.MapType => ({ kind: 'MapType', key: M_TYPE, value: M_TYPE, constraints: [], span: sp(start) });
export const rangeConstraint = (start: number): A.RangeConstraint => ({ kind: 'Range', span: { start, end: start } });
export const boundConstraint = (bound: 'min' | 'max', value: A.NumberLike, start: number): A.BoundConstraint => ({ kind: 'Bound', bound, value, span: sp(start) });
export const patternConstraint = (pattern: A.Expr, start: number): A.PatternConstraint => ({
  kind: 'Pattern',
  pattern: pattern.kind === 'String' ? pattern : { ...M_STRING, span: pattern.span },
  span: sp(start),
});
export const recordType = (start: number): A.RecordType => ({ kind: 'RecordType', fields: [], span: sp(start) });
export const field = (start: number, doc: string | undefined): A.Field =>
  withDoc<A.Field>({ kind: 'Field', name: M_IDENT, optional: false, type: M_TYPE, span: sp(start) }, doc);
export const enumType = (start: number): A.EnumType => ({ kind: 'EnumType', members: [], span: sp(start) });
export const unionType = (start: number): A.UnionType => ({ kind: 'UnionType', variants: [], span: sp(start) });
export const variant = (start: number): A.Variant => ({ kind: 'Variant', name: M_IDENT, span: sp(start) });

// Values

export const ref = (name: A.QualifiedName, start: number, end: number): A.RefExpr => ({ kind: 'Ref', name, span: { start, end } });
export const listExpr = (start: number): A.ListExpr => ({ kind: 'List', items: [], span: sp(start) });
export const mapExpr = (start: number): A.MapExpr => ({ kind: 'Map', entries: [], span: sp(start) });
export const mapEntry = (start: number): A.MapEntry => ({ kind: 'MapEntry', key: M_IDENT, value: M_EXPR, span: sp(start) });

// Protocols

export const protocolDecl = (start: number, doc: string | undefined): A.ProtocolDecl =>
  withDoc<A.ProtocolDecl>({ kind: 'ProtocolDecl', name: M_IDENT, ops: [], span: sp(start) }, doc);
export const operation = (start: number, doc: string | undefined): A.Operation =>
  withDoc<A.Operation>({ kind: 'Operation', opKind: 'call', name: M_IDENT, span: sp(start) }, doc);
export const orderAlt = (start: number): A.OrderAlt => ({ kind: 'OrderAlt', options: [], span: sp(start) });
export const orderSeq = (start: number): A.OrderSeq => ({ kind: 'OrderSeq', items: [], span: sp(start) });
export const orderOp = (start: number): A.OrderOp => ({ kind: 'OrderOp', name: M_IDENT, span: { start, end: start } });
export const orderRepeat = (expr: A.OrderExpr, op: '*' | '+' | '?', start: number, end: number): A.OrderRepeat => ({
  kind: 'OrderRepeat',
  expr,
  op,
  span: { start, end },
});

// Components

export const componentDecl = (start: number, doc: string | undefined): A.ComponentDecl =>
  withDoc<A.ComponentDecl>({ kind: 'ComponentDecl', name: M_IDENT, members: [], span: sp(start) }, doc);
export const imageMember = (start: number): A.ImageMember => ({ kind: 'ImageMember', image: M_QNAME, span: sp(start) });
export const memoryMember = (start: number): A.MemoryMember => ({ kind: 'MemoryMember', value: M_EXPR, span: sp(start) });
export const vcpusMember = (start: number): A.VcpusMember => ({ kind: 'VcpusMember', value: M_EXPR, span: sp(start) });
export const labelMember = (start: number): A.LabelMember => ({ kind: 'LabelMember', label: M_IDENT, span: sp(start) });
export const declassifyMember = (start: number): A.DeclassifyMember => ({ kind: 'DeclassifyMember', from: M_IDENT, to: M_IDENT, span: sp(start) });
export const paramDecl = (start: number, doc: string | undefined): A.ParamDecl =>
  withDoc<A.ParamDecl>({ kind: 'ParamDecl', name: M_IDENT, type: M_TYPE, sensitive: false, span: sp(start) }, doc);
export const portDecl = (start: number, doc: string | undefined): A.PortDecl =>
  withDoc<A.PortDecl>({ kind: 'PortDecl', direction: 'provide', name: M_IDENT, protocol: M_QNAME, optional: false, span: sp(start) }, doc);
export const exposeSpec = (start: number): A.ExposeSpec => ({ kind: 'ExposeSpec', transport: 'tcp', port: M_EXPR, span: sp(start) });
export const factorySpec = (start: number): A.FactorySpec => ({ kind: 'FactorySpec', component: M_QNAME, params: [], detached: false, span: sp(start) });
export const instancesMember = (start: number): A.InstancesMember => ({ kind: 'InstancesMember', mode: 'single', span: sp(start) });
export const restartMember = (start: number): A.RestartMember => ({ kind: 'RestartMember', policy: 'always', span: sp(start) });
export const programMember = (start: number): A.ProgramMember => ({ kind: 'ProgramMember', entries: [], span: sp(start) });
export const scriptEntry = (start: number): A.ScriptEntry => ({ kind: 'ScriptEntry', path: M_STRING, span: sp(start) });
export const execEntry = (start: number): A.ExecEntry => ({ kind: 'ExecEntry', argv: M_LIST, span: sp(start) });
export const fileEntry = (start: number): A.FileEntry => ({
  kind: 'FileEntry',
  guestPath: M_STRING,
  source: { kind: 'inline', text: M_STRING },
  span: sp(start),
});
export const envEntry = (start: number): A.EnvEntry => ({ kind: 'EnvEntry', vars: M_MAP, span: sp(start) });

// Systems

export const systemDecl = (start: number, doc: string | undefined): A.SystemDecl =>
  withDoc<A.SystemDecl>({ kind: 'SystemDecl', name: M_IDENT, members: [], span: sp(start) }, doc);
export const instanceDecl = (start: number, doc: string | undefined): A.InstanceDecl =>
  withDoc<A.InstanceDecl>({ kind: 'InstanceDecl', name: M_IDENT, component: M_QNAME, settings: [], span: sp(start) }, doc);
export const paramOverride = (start: number): A.ParamOverride => ({ kind: 'ParamOverride', name: M_IDENT, value: M_EXPR, span: sp(start) });
// `candidates` is created before `attrs` so that traversal (visit.ts) meets the nodes in source order.
export const connectDecl = (start: number): A.ConnectDecl => ({ kind: 'ConnectDecl', from: M_PORTREF, to: M_PORTREF, candidates: undefined, attrs: [], span: sp(start) });
export const rateAttr = (start: number): A.RateAttr => ({ kind: 'RateAttr', rate: M_EXPR, span: sp(start) });
export const maxMessageAttr = (start: number): A.MaxMessageAttr => ({ kind: 'MaxMessageAttr', size: M_EXPR, span: sp(start) });
export const timeoutAttr = (start: number): A.TimeoutAttr => ({ kind: 'TimeoutAttr', duration: M_EXPR, span: sp(start) });
export const allowAttr = (start: number): A.AllowAttr => ({ kind: 'AllowAttr', ops: [], span: sp(start) });
export const connectionAttr = (start: number): A.ConnectionAttr => ({ kind: 'ConnectionAttr', name: 'max_connections', value: M_EXPR, span: sp(start) });
export const maxInflightAttr = (start: number): A.MaxInflightAttr => ({ kind: 'MaxInflightAttr', count: M_EXPR, span: sp(start) });
export const declassifyAttr = (start: number): A.DeclassifyAttr => ({ kind: 'DeclassifyAttr', from: M_IDENT, to: M_IDENT, span: sp(start) });
export const queryAttr = (start: number): A.QueryAttr => ({ kind: 'QueryAttr', span: sp(start) });
export const exposeDecl = (start: number): A.ExposeDecl => ({ kind: 'ExposeDecl', port: M_PORTREF, spec: M_EXPOSE, span: sp(start) });
export const egressDecl = (start: number): A.EgressDecl => ({ kind: 'EgressDecl', name: M_IDENT, port: M_PORTREF, destination: M_EXPR, attrs: [], span: sp(start) });
export const exportDecl = (start: number): A.ExportDecl => ({ kind: 'ExportDecl', name: M_IDENT, port: M_PORTREF, span: sp(start) });
export const policyBlock = (start: number): A.PolicyBlock => ({ kind: 'PolicyBlock', rules: [], span: sp(start) });
export const onlyRule = (start: number): A.OnlyRule => ({ kind: 'OnlyRule', target: M_IDENT, mode: 'from', sources: [], span: sp(start) });
export const noPathRule = (start: number): A.NoPathRule => ({ kind: 'NoPathRule', from: M_IDENT, to: M_IDENT, span: sp(start) });
export const noFlowRule = (start: number): A.NoFlowRule => ({ kind: 'NoFlowRule', label: M_IDENT, to: M_IDENT, span: sp(start) });
export const exposedOnlyRule = (start: number): A.ExposedOnlyRule => ({ kind: 'ExposedOnlyRule', ports: [], span: sp(start) });
export const egressOnlyRule = (start: number): A.EgressOnlyRule => ({ kind: 'EgressOnlyRule', names: [], span: sp(start) });
export const apartRule = (start: number): A.ApartRule => ({ kind: 'ApartRule', instances: [], span: sp(start) });
export const labelOnRule = (start: number): A.LabelOnRule => ({ kind: 'LabelOnRule', label: M_IDENT, targets: [], span: sp(start) });
export const placement = (start: number): A.Placement => ({ kind: 'Placement', instance: M_IDENT, target: M_IDENT, span: sp(start) });
export const budgetRule = (start: number): A.BudgetRule => ({ kind: 'BudgetRule', resource: 'memory', value: M_EXPR, span: sp(start) });

// Images, labels, targets, deploy

export const imageDecl = (start: number, doc: string | undefined): A.ImageDecl =>
  withDoc<A.ImageDecl>({ kind: 'ImageDecl', name: M_IDENT, props: [], span: sp(start) }, doc);
export const targetDecl = (start: number, doc: string | undefined): A.TargetDecl =>
  withDoc<A.TargetDecl>({ kind: 'TargetDecl', name: M_IDENT, props: [], span: sp(start) }, doc);
export const property = (start: number): A.Property => ({ kind: 'Property', key: M_IDENT, value: M_EXPR, span: sp(start) });
export const labelsDecl = (start: number, doc: string | undefined): A.LabelsDecl =>
  withDoc<A.LabelsDecl>({ kind: 'LabelsDecl', chains: [], span: sp(start) }, doc);
export const deployDecl = (start: number, doc: string | undefined): A.DeployDecl =>
  withDoc<A.DeployDecl>({ kind: 'DeployDecl', system: M_QNAME, span: sp(start) }, doc);
