// The Prettier printer for `.mcl`.
//
// Layout rules, chosen so that formatting is idempotent and diffs stay small:
// - Top-level imports stay together; every other declaration is separated by
//   one blank line.
// - Declaration bodies (component, system, protocol, policy, labels, image,
//   target) always put one member per line.
// - Small inner blocks (records, enums, unions, instance settings, channel
//   attributes, program blocks, lists, maps) stay on one line when they fit,
//   with `,` or `;` separators, and otherwise break to one item per line with
//   no separators (the language makes separators optional in blocks);
//   `env { ... }` maps keep their commas, which maps require.
// - One blank line between members is kept where the author left one.
// - Literals are printed as written (`1_000`, `0x1f`, `64KiB`, raw strings).
// Comments are attached by Prettier's own algorithm (leading, trailing and
// dangling), corrected for line comments inside constructs
// (attachLineComment), and a comment that could only be attached to a node as
// a whole is printed after it (printWithDangling): every comment the grammar
// allows survives, and a second run changes nothing. `///` doc comments are
// printed as comments, never from the `doc` fields, so they cannot be
// duplicated.

import { doc, util, type AstPath, type Doc, type ParserOptions, type Printer } from 'prettier';
import type * as A from '@mcl/language';

const { group, indent, line, softline, hardline, join, ifBreak } = doc.builders;

type AnyNode = A.Node | A.SourceFile;
type Opts = ParserOptions<AnyNode>;
type Print = (path: AstPath<any>) => Doc;

/** Keys that never hold child nodes (or hold comments, which Prettier handles separately). */
const NON_CHILD_KEYS = new Set(['span', 'doc', 'comments', 'kind', 'raw', 'name', 'value', 'path']);

export function getVisitorKeys(node: any): string[] {
  const keys: string[] = [];
  for (const key of Object.keys(node)) {
    if (key === 'span' || key === 'doc' || key === 'comments') continue;
    const v = node[key];
    if (v && typeof v === 'object') {
      if (Array.isArray(v)) {
        // `labels` chains are arrays of arrays; everything else is a flat node list.
        if (v.length > 0 && v.every((x) => x && typeof x === 'object' && !Array.isArray(x) && 'kind' in x)) keys.push(key);
      } else if ('kind' in v) {
        keys.push(key);
      }
    }
  }
  // `name` may be an Ident node (declarations) or a string (primitive types); keep only node-valued keys.
  return keys.filter((k) => !(NON_CHILD_KEYS.has(k) && typeof node[k] !== 'object'));
}

function isComment(node: any): boolean {
  return node && (node.kind === 'line' || node.kind === 'block' || node.kind === 'doc') && typeof node.text === 'string';
}

export const printer: Printer<AnyNode> = {
  print: printWithDangling as any,
  getVisitorKeys,
  canAttachComment(node: any) {
    return !!node && typeof node.kind === 'string' && !!node.span && !isComment(node) && node.kind !== 'SourceFile';
  },
  isBlockComment(node: any) {
    return node?.kind === 'block';
  },
  printComment(path) {
    const c = path.node as unknown as A.Comment;
    if (c.kind === 'block') return c.text;
    return c.text.replace(/[ \t]+$/, '');
  },
  handleComments: {
    ownLine: attachLineComment,
    endOfLine: attachLineComment,
    remaining: () => false,
  },
};

/**
 * Where a line comment goes, for the cases Prettier's own placement gets
 * wrong in this language (each would move or lose the comment, or move it
 * again on the next run). A line comment printed after a node floats to the
 * end of its output line; that is right between two members or items
 * (`memory 64MiB // why`), but not inside a construct:
 * - where tokens other than separators stand between the nodes on either side
 *   (`type T // c` then `= {`), or that are not items of a list or block
 *   (`map<K, // c` then `V>`), the output line would end after those tokens,
 *   possibly after a `{` that opens a block, and the next run would attach
 *   the comment elsewhere; the comment leads the next node instead, printed
 *   right before it and followed by a line break;
 * - where no node follows it inside its construct but tokens do (`log({...}`,
 *   the comment, then `)`), it would end up on the same output line as any
 *   comment after those tokens and merge into it; it leads the whole member
 *   (declaration, member, rule, item) instead, on a line of its own.
 */
function attachLineComment(comment: any, text: string, _options: unknown, ast: any): boolean {
  if (comment.kind === 'block') return false;
  const { precedingNode, followingNode, enclosingNode } = comment;
  if (followingNode) {
    if (!precedingNode || comment.placement === 'ownLine') return false;
    // A protocol's order expression starts, as a member, at its `order` keyword (which no node covers).
    const followingStart =
      enclosingNode?.kind === 'ProtocolDecl' && enclosingNode.order === followingNode
        ? text.lastIndexOf('order', followingNode.span.start)
        : followingNode.span.start;
    const betweenItems = !enclosingNode || LINE_PARENTS.has(enclosingNode.kind) || enclosingNode.kind === 'List' || enclosingNode.kind === 'Import';
    if (betweenItems && onlySeparators(text, precedingNode.span.end, comment.span.start) && onlySeparators(text, comment.span.end, followingStart)) return false;
    util.addLeadingComment(followingNode, comment);
    return true;
  }
  if (!enclosingNode) return false;
  const rest = withoutComments(text.slice(comment.span.end, enclosingNode.span.end));
  if (/^[\s;,]*$/.test(rest)) return false;
  if (LINE_PARENTS.has(enclosingNode.kind) && /^[\s;,]*\}\s*$/.test(rest)) return false;
  const item = lineItemAround(ast, comment.span);
  if (!item) return false;
  util.addLeadingComment(item, comment);
  return true;
}

/** Nodes whose child lists print one item per line (or break to that). */
const LINE_PARENTS = new Set([
  'SourceFile',
  'ProtocolDecl',
  'ComponentDecl',
  'SystemDecl',
  'ImageDecl',
  'TargetDecl',
  'PolicyBlock',
  'ProgramMember',
  'RecordType',
  'EnumType',
  'UnionType',
  'InstanceDecl',
  'ConnectDecl',
  'ExposeSpec',
  'EgressDecl',
  'Map',
]);

/** The innermost member, declaration or block item whose span contains `span`. */
function lineItemAround(ast: any, span: A.Span): any {
  let node = ast;
  let item: any;
  for (;;) {
    let next: any;
    for (const key of getVisitorKeys(node)) {
      const value = node[key];
      const children = Array.isArray(value) ? value : [value];
      for (const child of children) {
        if (!child?.span || child.span.start > span.start || child.span.end < span.end) continue;
        next = child;
        if ((Array.isArray(value) && LINE_PARENTS.has(node.kind)) || (key === 'order' && node.kind === 'ProtocolDecl')) item = child;
      }
    }
    if (!next) return item;
    node = next;
  }
}

function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n\r]*/g, '');
}

/** True when the text between two offsets holds nothing but whitespace, separators and comments. */
function onlySeparators(text: string, from: number, to: number): boolean {
  return /^[\s;,]*$/.test(withoutComments(text.slice(from, to)));
}

/** Node kinds whose printers place their own dangling comments (inside their braces or brackets). */
const PRINTS_DANGLING = new Set([
  'SourceFile',
  'ProtocolDecl',
  'ComponentDecl',
  'SystemDecl',
  'ImageDecl',
  'TargetDecl',
  'LabelsDecl',
  'RecordType',
  'EnumType',
  'UnionType',
  'ProgramMember',
  'InstanceDecl',
  'ConnectDecl',
  'ExposeSpec',
  'EgressDecl',
  'PolicyBlock',
  'Map',
  'List',
  'ExposedOnlyRule',
  'EgressOnlyRule',
  'LabelOnRule',
  'DeployDecl',
]);

/**
 * Prints a node, then any comment Prettier could attach only to the node as a
 * whole (one between two of its keywords, as in `restart /* why *\/ always`,
 * where no child node stands on either side). Those follow the node, a line
 * comment at the end of its output line, so no comment is ever lost and the
 * next run attaches it as a trailing comment of the node, where it stays.
 */
function printWithDangling(path: AstPath<any>, options: Opts, print: Print): Doc {
  const node = path.node;
  let printed = printNode(path, options, print);
  if (path.key === 'order' && path.parent?.kind === 'ProtocolDecl') printed = ['order ', printed];
  if (PRINTS_DANGLING.has(node.kind)) return printed;
  const comments = (node.comments ?? []).filter((c: any) => !c.leading && !c.trailing && !c.printed);
  if (comments.length === 0) return printed;
  const parts: Doc[] = [printed];
  for (const c of comments) {
    c.printed = true;
    const text = c.kind === 'block' ? c.text : c.text.replace(/[ \t]+$/, '');
    parts.push(c.kind === 'block' ? [' ', text] : [doc.builders.lineSuffix([' ', text]), doc.builders.breakParent]);
  }
  return parts;
}

function printNode(path: AstPath<any>, options: Opts, print: Print): Doc {
  const node = path.node;
  switch (node.kind as string) {
    case 'SourceFile':
      return printSourceFile(path, options, print);
    case 'Ident':
      // A quoted name (`"type": string`) keeps its string exactly as written, like a string literal; a dotted
      // path (`farm.web` in a rule) prints its segments, so that a comment attached to one is kept.
      if (node.quoted) return options.originalText.slice(node.span.start, node.span.end);
      return node.parts ? join('.', path.map(print, 'parts')) : node.name;
    case 'QualifiedName':
      return join('.', path.map(print, 'parts'));
    case 'Import': {
      const mod = path.call(print, 'module');
      if (node.items === '*') return ['import ', mod, '.*'];
      return group(['import ', mod, '.{', indent([softline, join([',', line], path.map(print, 'items'))]), softline, '}']);
    }
    case 'ImportItem':
      return node.alias ? [path.call(print, 'name'), ' as ', path.call(print, 'alias')] : path.call(print, 'name');

    // Declarations
    case 'TypeDecl':
      return ['type ', path.call(print, 'name'), ' = ', path.call(print, 'type')];
    case 'ProtocolDecl': {
      const body = itemsWithBlankLines(path, options, print, 'ops');
      // The order expression prints its own `order` keyword, so that a comment line above `order` stays above it.
      if (node.order) body.push(...(node.ops.length ? [hardline] : []), path.call(print, 'order'));
      return ['protocol ', path.call(print, 'name'), ' ', hardBlock(path, options, body)];
    }
    case 'ComponentDecl':
      return ['component ', path.call(print, 'name'), ' ', hardBlock(path, options, itemsWithBlankLines(path, options, print, 'members'))];
    case 'SystemDecl':
      return ['system ', path.call(print, 'name'), ' ', hardBlock(path, options, itemsWithBlankLines(path, options, print, 'members'))];
    case 'ImageDecl':
      return ['image ', path.call(print, 'name'), ' ', hardBlock(path, options, itemsWithBlankLines(path, options, print, 'props'))];
    case 'TargetDecl':
      return ['target ', path.call(print, 'name'), ' ', hardBlock(path, options, itemsWithBlankLines(path, options, print, 'props'))];
    case 'LabelsDecl': {
      const chains = (node as A.LabelsDecl).chains.map((chain) => join(' < ', chain.map((id) => id.name)));
      return ['labels ', hardBlock(path, options, join(hardline, chains))];
    }
    case 'DeployDecl': {
      const d = node as A.DeployDecl;
      // A comment left inside the brackets or braces goes into the block of placements when there is one.
      const targets = d.targets ? path.map(print, 'targets') : [];
      const to = d.targets
        ? [' to ', d.placements ? group(['[', indent([softline, join([',', line], targets)]), softline, ']']) : bracketList(path, options, targets)]
        : d.target
          ? [' to ', path.call(print, 'target')]
          : [];
      const block = d.placements ? [' ', hardBlock(path, options, itemsWithBlankLines(path, options, print, 'placements'))] : [];
      return ['deploy ', path.call(print, 'system'), ...to, ...block];
    }
    case 'Placement':
      return ['place ', path.call(print, 'instance'), ' on ', path.call(print, 'target')];
    case 'Property':
      return [path.call(print, 'key'), ' ', path.call(print, 'value')];

    // Types
    case 'PrimitiveType':
      return [node.name, printConstraints(path, print)];
    case 'NamedType':
      return path.call(print, 'name');
    case 'ListType':
      return ['list<', path.call(print, 'element'), '>', printConstraints(path, print)];
    case 'MapType':
      return ['map<', path.call(print, 'key'), ', ', path.call(print, 'value'), '>', printConstraints(path, print)];
    case 'RecordType':
      return softBlock(path, options, path.map(print, 'fields'), ',');
    case 'Field':
      return [path.call(print, 'name'), node.optional ? '?' : '', ': ', path.call(print, 'type')];
    case 'EnumType':
      return ['enum ', softBlock(path, options, path.map(print, 'members'), ',')];
    case 'UnionType':
      return ['union ', softBlock(path, options, path.map(print, 'variants'), ',')];
    case 'Variant':
      return node.type ? [path.call(print, 'name'), ': ', path.call(print, 'type')] : path.call(print, 'name');
    case 'MissingType':
    case 'MissingExpr':
      return '';
    case 'Range':
      return [node.min ? path.call(print, 'min') : '', '..', node.max ? path.call(print, 'max') : ''];
    case 'Bound':
      return [node.bound, ' ', path.call(print, 'value')];
    case 'Pattern':
      return ['pattern ', path.call(print, 'pattern')];

    // Expressions
    case 'Int':
    case 'Float':
    case 'String':
    case 'Size':
    case 'Rate':
    case 'Duration':
      return node.raw;
    case 'Bool':
      return node.value ? 'true' : 'false';
    case 'List':
      return bracketList(path, options, path.map(print, 'items'));
    case 'Map':
      // Environment maps print like program blocks, `KEY = "value"` entries, but keep the commas a map requires.
      if (path.parent?.kind === 'EnvEntry') return softBlock(path, options, path.map(print, 'entries'), ',', undefined, true);
      if (node.entries.length === 0 && !hasDangling(node)) return '{}';
      return group(['{', indent([line, join([',', line], path.map(print, 'entries')), printDangling(path, options) ?? '']), line, '}']);
    case 'MapEntry':
      return [path.call(print, 'key'), path.grandparent?.kind === 'EnvEntry' ? ' = ' : ': ', path.call(print, 'value')];
    case 'Ref':
      return path.call(print, 'name');

    // Protocols
    case 'Operation': {
      const parts: Doc[] = [node.opKind, ' ', path.call(print, 'name'), '(', node.input ? path.call(print, 'input') : '', ')'];
      if (node.opKind === 'call' && node.output) parts.push(' -> ', path.call(print, 'output'));
      return parts;
    }
    case 'OrderSeq':
      return join(' ', path.map((p) => wrapOrder(p, print, 'seq'), 'items'));
    case 'OrderAlt':
      return join(' | ', path.map((p) => wrapOrder(p, print, 'alt'), 'options'));
    case 'OrderRepeat':
      return [wrapOrder(path as AstPath<any>, print, 'repeat', 'expr'), node.op];
    case 'OrderOp':
      return path.call(print, 'name');

    // Component members
    case 'ImageMember':
      return ['image ', path.call(print, 'image')];
    case 'MemoryMember':
      return ['memory ', path.call(print, 'value')];
    case 'VcpusMember':
      return ['vcpus ', path.call(print, 'value')];
    case 'LabelMember':
      return ['label ', path.call(print, 'label')];
    case 'DeclassifyMember':
      return node.ports
        ? ['declassifies ', path.call(print, 'from'), ' -> ', path.call(print, 'to'), ' on ', join(', ', path.map(print, 'ports'))]
        : ['declassifies ', path.call(print, 'from'), ' -> ', path.call(print, 'to')];
    case 'ParamDecl': {
      const parts: Doc[] = ['param ', path.call(print, 'name'), ': ', path.call(print, 'type')];
      if (node.default) parts.push(' = ', path.call(print, 'default'));
      if (node.sensitive) parts.push(' sensitive');
      return parts;
    }
    case 'PortDecl': {
      const head = node.expose ? 'expose' : node.direction;
      const parts: Doc[] = [head, ' ', path.call(print, 'name'), ': ', path.call(print, node.factory ? 'factory' : 'protocol')];
      if (node.count) parts.push('[', path.call(print, 'count'), ']');
      if (node.optional) parts.push(' optional');
      if (node.expose) parts.push(' ', path.call(print, 'expose'));
      return parts;
    }
    case 'ExposeSpec': {
      const head: Doc[] = ['on ', node.transport, ' ', path.call(print, 'port')];
      if (!node.attrs && !hasDangling(node)) return head;
      return [head, ' ', softBlock(path, options, node.attrs ? path.map(print, 'attrs') : [], ';', node.port.span.end)];
    }
    case 'FactorySpec': {
      // The settings in the order the grammar documents them; a parameter list ends at its line or `;`.
      const items: Doc[] = [];
      if (node.max) items.push(['max ', path.call(print, 'max')]);
      if (node.params.length) items.push(['param ', join(', ', path.map(print, 'params'))]);
      if (node.detached) items.push('detached');
      const head: Doc[] = ['factory ', path.call(print, 'component')];
      return items.length ? [...head, ' ', softBlock(path, options, items, ';', node.component.span.end)] : head;
    }
    case 'InstancesMember': {
      if (node.mode === 'single') return 'single';
      if (node.mode === 'replicas') return ['replicas ', node.count ? path.call(print, 'count') : ''];
      if (node.mode === 'created') return ['created by ', node.creator ? path.call(print, 'creator') : ''];
      const parts: Doc[] = ['per session'];
      if (node.pool) parts.push(' pool ', path.call(print, 'pool'));
      if (node.max) parts.push(' max ', path.call(print, 'max'));
      return parts;
    }
    case 'RestartMember': {
      const policy = node.policy === 'on_failure' ? 'on-failure' : node.policy;
      return node.maxRetries ? ['restart ', policy, ' max ', path.call(print, 'maxRetries')] : ['restart ', policy];
    }
    case 'ProgramMember':
      return ['program ', softBlock(path, options, path.map(print, 'entries'), ';')];
    case 'ScriptEntry':
      return ['script ', path.call(print, 'path')];
    case 'ExecEntry':
      return ['exec ', path.call(print, 'argv')];
    case 'FileEntry':
      return node.source.kind === 'inline'
        ? ['file ', path.call(print, 'guestPath'), ' = ', path.call(print, 'source', 'text')]
        : ['file ', path.call(print, 'guestPath'), ' from ', path.call(print, 'source', 'path')];
    case 'EnvEntry':
      return ['env ', path.call(print, 'vars')];

    // System members
    case 'InstanceDecl': {
      const head: Doc[] = [path.call(print, 'name'), ' = ', path.call(print, 'component')];
      if (node.settings.length === 0 && !hasDangling(node)) return head;
      return [head, ' ', softBlock(path, options, path.map(print, 'settings'), ';', node.component.span.end)];
    }
    case 'ParamOverride':
      return [path.call(print, 'name'), ' = ', path.call(print, 'value')];
    case 'PortRef':
      return node.index ? [path.call(print, 'instance'), '.', path.call(print, 'port'), path.call(print, 'index')] : [path.call(print, 'instance'), '.', path.call(print, 'port')];
    case 'PortIndex':
      return ['[', String(node.value), ']'];
    case 'ConnectDecl': {
      // A fan-out's list is its first port (`to`) and the ports after it (`fanout`).
      const to: Doc = node.fanout ? ['[', join(', ', [path.call(print, 'to'), ...path.map(print, 'fanout')]), ']'] : path.call(print, 'to');
      const head: Doc[] = ['connect ', path.call(print, 'from'), ' -> ', to];
      // Late binding: the further candidates, `| db2.sql`, on the same line.
      if (node.candidates?.length) head.push(...path.map((c) => [' | ', print(c)], 'candidates'));
      if (node.attrs.length === 0 && !hasDangling(node)) return head;
      const last = node.candidates?.length ? node.candidates[node.candidates.length - 1] : node.fanout?.length ? node.fanout[node.fanout.length - 1] : node.to;
      return [head, ' ', softBlock(path, options, path.map(print, 'attrs'), ';', last.span.end)];
    }
    case 'RateAttr':
      return node.burst ? ['rate ', path.call(print, 'rate'), ' burst ', path.call(print, 'burst')] : ['rate ', path.call(print, 'rate')];
    case 'MaxMessageAttr':
      return ['max_message ', path.call(print, 'size')];
    case 'TimeoutAttr':
      return ['timeout ', path.call(print, 'duration')];
    case 'AllowAttr':
      return ['allow ', join(', ', path.map(print, 'ops'))];
    case 'MaxInflightAttr':
      return ['max_inflight ', path.call(print, 'count')];
    case 'DeclassifyAttr':
      return ['declassifies ', path.call(print, 'from'), ' -> ', path.call(print, 'to')];
    case 'QueryAttr':
      return 'query';
    case 'ConnectionAttr':
      return node.burst ? [node.name, ' ', path.call(print, 'value'), ' burst ', path.call(print, 'burst')] : [node.name, ' ', path.call(print, 'value')];
    case 'ExposeDecl':
      return ['expose ', path.call(print, 'port'), ' ', path.call(print, 'spec')];
    case 'EgressDecl': {
      const head: Doc[] = ['egress ', path.call(print, 'name'), ': ', path.call(print, 'port'), ' -> ', path.call(print, 'destination')];
      if (node.attrs.length === 0 && !hasDangling(node)) return head;
      return [head, ' ', softBlock(path, options, path.map(print, 'attrs'), ';', node.destination.span.end)];
    }
    case 'ExportDecl':
      return ['export ', path.call(print, 'name'), ' = ', path.call(print, 'port')];
    case 'PolicyBlock':
      return ['policy ', hardBlock(path, options, itemsWithBlankLines(path, options, print, 'rules'))];
    case 'OnlyRule':
      return [path.call(print, 'target'), ' only ', node.mode, ' ', join(', ', path.map(print, 'sources'))];
    case 'NoPathRule':
      return ['no path ', path.call(print, 'from'), ' -> ', path.call(print, 'to')];
    case 'ExposedOnlyRule':
      return ['exposed only ', bracketList(path, options, path.map(print, 'ports'))];
    case 'EgressOnlyRule':
      return ['egress only ', bracketList(path, options, path.map(print, 'names'))];
    case 'NoFlowRule':
      return ['no flow ', path.call(print, 'label'), ' -> ', path.call(print, 'to')];
    case 'BudgetRule':
      return ['budget ', node.resource, ' ', path.call(print, 'value')];
    case 'ApartRule':
      return ['apart ', join(', ', path.map(print, 'instances'))];
    case 'LabelOnRule':
      return ['label ', path.call(print, 'label'), ' only on ', bracketList(path, options, path.map(print, 'targets'))];
    default:
      // An unknown node kind means the printer and the AST are out of step; fail loudly in tests.
      throw new Error(`mcl printer: unknown node kind ${String(node.kind)}`);
  }
}

function printSourceFile(path: AstPath<any>, options: Opts, print: Print): Doc {
  const file = path.node as A.SourceFile;
  const parts: Doc[] = [];
  const imports = path.map(print, 'imports');
  if (imports.length) parts.push(join(hardline, imports));
  const decls = path.map(print, 'decls');
  if (decls.length) {
    if (parts.length) parts.push(hardline, hardline);
    parts.push(join([hardline, hardline], decls));
  }
  const dangling = printDangling(path, options);
  if (dangling) parts.push(parts.length ? [hardline, hardline, dangling] : dangling);
  if (file.imports.length === 0 && file.decls.length === 0 && !dangling) return '';
  return [...parts, hardline];
}

/** Members of a declaration body, one per line, keeping single blank lines the author left. */
function itemsWithBlankLines(path: AstPath<any>, options: Opts, print: Print, key: string): Doc[] {
  const out: Doc[] = [];
  const items: any[] = path.node[key];
  path.each((p, i) => {
    out.push(print(p));
    if (i < items.length - 1) {
      out.push(hardline);
      if (util.isNextLineEmpty(options.originalText, endOfNodeWithComments(items[i]))) out.push(hardline);
    }
  }, key);
  return out;
}

/** End offset of a node including comments Prettier attached after it on the same line. */
function endOfNodeWithComments(node: any): number {
  let end = node.span.end;
  for (const c of node.comments ?? []) if (c.trailing && c.span.end > end) end = c.span.end;
  return end;
}

/** `{ ... }` that always breaks: one member per line. */
function hardBlock(path: AstPath<any>, options: Opts, body: Doc | Doc[]): Doc {
  const dangling = printDangling(path, options);
  const content: Doc[] = Array.isArray(body) ? body : [body];
  const empty = content.length === 0 || (content.length === 1 && content[0] === '');
  if (empty && !dangling) return '{}';
  const inner: Doc[] = empty ? [dangling!] : dangling ? [...content, hardline, dangling] : content;
  return ['{', indent([hardline, ...inner]), hardline, '}'];
}

/**
 * `{ a, b }` on one line when it fits, else one item per line without
 * separators. As Prettier does for object literals, a block whose author put a
 * line break right after `{` stays broken, so a record written one field per
 * line keeps that shape; this choice is stable, so formatting stays idempotent.
 */
function softBlock(path: AstPath<any>, options: Opts, items: Doc[], sep: ',' | ';', searchFrom?: number, sepRequired = false): Doc {
  const dangling = printDangling(path, options);
  if (items.length === 0 && !dangling) return '{}';
  const inner: Doc[] = [join([sepRequired ? sep : ifBreak('', sep), line], items)];
  if (dangling) inner.push(items.length ? hardline : '', dangling);
  const shouldBreak = brokenAfterBrace(options.originalText, searchFrom ?? path.node.span.start);
  return group(['{', indent([line, ...inner]), line, '}'], { shouldBreak });
}

/** True when the first `{` at or after `from` is followed by a line break before any other text. */
function brokenAfterBrace(text: string, from: number): boolean {
  const brace = text.indexOf('{', from);
  if (brace < 0) return false;
  for (let i = brace + 1; i < text.length; i++) {
    const c = text[i];
    if (c === '\n' || c === '\r') return true;
    if (c === ' ' || c === '\t') continue;
    return false;
  }
  return false;
}

/** `[a, b]` on one line when it fits, else one item per line; comments in an empty list stay inside it. */
function bracketList(path: AstPath<any>, options: Opts, items: Doc[]): Doc {
  const dangling = printDangling(path, options);
  return group(['[', indent([softline, join([',', line], items), dangling ?? '']), softline, ']']);
}

function printConstraints(path: AstPath<any>, print: Print): Doc {
  const node = path.node;
  if (!node.constraints || node.constraints.length === 0) return '';
  return group(['(', indent([softline, join([',', line], path.map(print, 'constraints'))]), softline, ')']);
}

/** Parenthesises an order sub-expression where precedence requires it. */
function wrapOrder(path: AstPath<any>, print: Print, context: 'seq' | 'alt' | 'repeat', key?: string): Doc {
  const child = key ? path.node[key] : path.node;
  const printed = key ? path.call(print, key) : print(path);
  const needs =
    (context === 'seq' && child.kind === 'OrderAlt') ||
    (context === 'repeat' && (child.kind === 'OrderAlt' || child.kind === 'OrderSeq' || child.kind === 'OrderRepeat'));
  return needs ? ['(', printed, ')'] : printed;
}

function hasDangling(node: any): boolean {
  return (node.comments ?? []).some((c: any) => !c.leading && !c.trailing);
}

/** Prints comments attached to a node as dangling (inside an empty or trailing part of a block). */
function printDangling(path: AstPath<any>, options: Opts): Doc | null {
  const node = path.node;
  const comments = (node.comments ?? []).filter((c: any) => !c.leading && !c.trailing);
  if (comments.length === 0) return null;
  const printed: Doc[] = [];
  for (const c of comments) {
    c.printed = true;
    printed.push(c.kind === 'block' ? c.text : c.text.replace(/[ \t]+$/, ''));
  }
  void options;
  return [join(hardline, printed), comments.some((c: any) => c.kind !== 'block') ? doc.builders.breakParent : ''];
}
