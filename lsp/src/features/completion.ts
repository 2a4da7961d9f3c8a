// Context-aware completion. The context (which block the cursor is in, what
// the statement so far looks like) is read from the language lexer's tokens
// before the cursor, because the text being typed is usually not valid yet; the
// candidates (types, components, ports, operations) come from the checked
// Program, so names are resolved exactly as the compiler resolves them.

import { BACKEND_NAMES, modulePathOfFile, TARGET_PROPERTIES, type SymbolInfo } from '@mcl/compiler';
import { tokenize, type InstanceDecl, type LexicalToken, type SystemDecl, type TokenKind } from '@mcl/language';
import { CompletionItemKind, InsertTextFormat, type CompletionItem, type CompletionList, type Position } from 'vscode-languageserver';
import type { Snapshot } from '../analysis';
import { nodesAt } from '../ast-util';
import { instanceTarget, operationsOf, portsOf, protocolOf } from '../model';
import { PathMapper } from '../paths';
import type { ServerContext } from '../service';

export const COMPLETION_TRIGGERS = ['.', ':', ' ', '='];

type Block =
  | 'top'
  | 'component'
  | 'system'
  | 'protocol'
  | 'record'
  | 'enum'
  | 'channel'
  | 'exposure'
  | 'egress'
  | 'instance'
  | 'policy'
  | 'program'
  | 'image'
  | 'target'
  | 'labels'
  | 'import'
  | 'other';

interface Tok {
  text: string;
  start: number;
  end: number;
  kind: 'ident' | 'punct' | 'string' | 'number';
  /** A line break separates this token from the previous one. */
  nl: boolean;
}

/**
 * The tokens of `text` before `limit`, from the language's own lexer (so
 * completion reads the text exactly as the parser does), comments left out,
 * each marked with whether a line break precedes it. `lexed` is the lexer's
 * output for the text up to the cursor, at or after `limit`.
 */
function tokensBefore(text: string, lexed: LexicalToken[], limit: number): Tok[] {
  const out: Tok[] = [];
  let last = 0;
  for (const t of lexed) {
    if (t.span.start >= limit) break;
    if (t.kind === 'comment' || t.kind === 'docComment') continue;
    out.push({ text: t.text, start: t.span.start, end: t.span.end, kind: TOK_KIND[t.kind], nl: text.slice(last, t.span.start).includes('\n') });
    last = t.span.end;
  }
  return out;
}

const TOK_KIND: Record<TokenKind, Tok['kind']> = {
  keyword: 'ident',
  contextualKeyword: 'ident',
  identifier: 'ident',
  bool: 'ident',
  string: 'string',
  int: 'number',
  float: 'number',
  size: 'number',
  duration: 'number',
  rate: 'number',
  punctuation: 'punct',
  operator: 'punct',
};

/**
 * True when `offset` is inside a comment or a string (where nothing is
 * offered): the lexer's last token before it (`lexed` is the text up to
 * `offset`) is a comment, or a string it had not finished.
 */
function inCommentOrString(text: string, lexed: LexicalToken[], offset: number): boolean {
  const t = lexed[lexed.length - 1];
  if (!t || t.span.end < offset) return false;
  const raw = text.slice(t.span.start, t.span.end);
  // A line comment runs to the end of its line; a block comment until its `*/`.
  if (t.kind === 'docComment' || t.kind === 'comment') return raw.startsWith('//') || raw.length < 4 || !raw.endsWith('*/');
  if (t.kind !== 'string') return false;
  const quote = raw.startsWith('"""') ? '"""' : '"';
  return raw.length < 2 * quote.length || !raw.endsWith(quote) || raw.endsWith('\\' + quote);
}

interface Frame {
  block: Block;
  /** Tokens of the current statement inside this block. */
  stmt: Tok[];
  /** The tokens that opened the block (`connect a.b -> c.d`), for channel blocks. */
  opener: Tok[];
}

/** The stack of blocks enclosing the end of `toks`, innermost last. */
function blockStack(toks: Tok[]): Frame[] {
  const stack: Frame[] = [{ block: 'top', stmt: [], opener: [] }];
  for (const t of toks) {
    const top = stack[stack.length - 1];
    if (t.text === '{') {
      const block = classify(top, top.stmt);
      stack.push({ block, stmt: [], opener: top.stmt.slice() });
    } else if (t.text === '}') {
      if (stack.length > 1) stack.pop();
      stack[stack.length - 1].stmt = [];
    } else if (t.text === ';' || (t.text === ',' && !['import', 'other'].includes(top.block) && !inBrackets(top.stmt) && !inNameList(top.stmt))) {
      top.stmt = [];
    } else if (startsStatement(top.block, t, top.stmt) || (t.nl && top.stmt.length > 0 && !continues(top.stmt[top.stmt.length - 1]))) {
      top.stmt = [t];
    } else {
      top.stmt.push(t);
    }
  }
  return stack;
}

/** Tokens after which a statement goes on past a line break. */
function continues(prev: Tok): boolean {
  return ['.', '->', ',', '=', ':', '(', '[', '<', '|', '..'].includes(prev.text);
}

/** `allow a, b` and `x only from a, b` take comma-separated lists, so a comma there does not end the statement. */
function inNameList(stmt: Tok[]): boolean {
  const words = stmt.map((t) => t.text);
  return words[0] === 'allow' || (words.includes('only') && (words.includes('from') || words.includes('through') || words.includes('to')));
}

function inBrackets(stmt: Tok[]): boolean {
  let depth = 0;
  for (const t of stmt) {
    if (t.text === '[' || t.text === '(') depth++;
    else if (t.text === ']' || t.text === ')') depth--;
  }
  return depth > 0;
}

const TOP_KEYWORDS = ['import', 'type', 'protocol', 'component', 'system', 'image', 'labels', 'target', 'deploy'];
const COMPONENT_KEYWORDS = ['image', 'memory', 'vcpus', 'label', 'declassifies', 'param', 'provide', 'require', 'expose', 'replicas', 'per', 'single', 'restart', 'program'];
const SYSTEM_KEYWORDS = ['param', 'connect', 'expose', 'egress', 'export', 'policy'];
const CHANNEL_KEYWORDS = ['rate', 'max_message', 'timeout', 'allow', 'max_inflight', 'declassifies', 'query'];
/** An exposure's block takes a channel's attributes and these limits on its connections. */
const EXPOSURE_KEYWORDS = [...CHANNEL_KEYWORDS, 'max_connections', 'connection_rate', 'bandwidth', 'idle_timeout'];
/** An egress's block takes an exposure's attributes and the destination's `label`. */
const EGRESS_KEYWORDS = [...EXPOSURE_KEYWORDS, 'label'];
const PROGRAM_KEYWORDS = ['script', 'exec', 'file', 'env'];
const PROTOCOL_KEYWORDS = ['call', 'send', 'notify', 'order'];
const INSTANCE_KEYWORDS = ['replicas', 'per', 'single', 'created', 'restart', 'memory', 'vcpus', 'label'];
const POLICY_KEYWORDS = ['no', 'exposed', 'egress', 'budget'];
const IMAGE_KEYWORDS = ['base', 'kernel', 'modules'];
// The compiler's lists, so that a property or backend it accepts is offered here too.
const TARGET_KEYWORDS = TARGET_PROPERTIES;
const PRIMITIVES = ['bool', 'int', 'int64', 'float', 'string', 'bytes', 'list', 'map', 'enum', 'union'];

/** Statements in blocks without separators start at a keyword that can only begin one. */
function startsStatement(block: Block, t: Tok, stmt: Tok[]): boolean {
  if (t.kind !== 'ident' || stmt.length === 0) return false;
  const prev = stmt[stmt.length - 1];
  // A word right after `.`, `:`, `=`, `->` or a keyword argument position continues the statement.
  if (['.', ':', '=', '->', '(', ',', '[', '<'].includes(prev.text)) return false;
  const starters: Partial<Record<Block, string[]>> = {
    top: TOP_KEYWORDS,
    component: COMPONENT_KEYWORDS.filter((k) => k !== 'single' && k !== 'per'),
    system: SYSTEM_KEYWORDS,
    channel: CHANNEL_KEYWORDS,
    exposure: EXPOSURE_KEYWORDS,
    egress: EGRESS_KEYWORDS,
    program: PROGRAM_KEYWORDS,
    protocol: PROTOCOL_KEYWORDS,
  };
  return starters[block]?.includes(t.text) ?? false;
}

function classify(parent: Frame, stmt: Tok[]): Block {
  const words = stmt.map((t) => t.text);
  const last = words[words.length - 1];
  if (last === '.' && words[0] === 'import') return 'import';
  if (last === 'program') return 'program';
  if (last === 'env') return 'other';
  if (last === 'policy') return 'policy';
  if (last === 'enum' || last === 'union') return 'enum';
  if (last === 'labels') return 'labels';
  if (words[0] === 'connect') return 'channel';
  if (words[0] === 'egress' && words.length >= 4) return 'egress';
  if (words.length >= 3 && words[words.length - 3] === 'on' && words[words.length - 2] === 'tcp') return 'exposure';
  if (last === ':') return 'record';
  if (parent.block === 'top') {
    const kw = words[0];
    if (kw === 'component') return 'component';
    if (kw === 'system') return 'system';
    if (kw === 'protocol') return 'protocol';
    if (kw === 'image') return 'image';
    if (kw === 'target') return 'target';
    if (kw === 'type' && last === '=') return 'record';
  }
  if (parent.block === 'system' && words.length >= 3 && words[1] === '=') return 'instance';
  if (parent.block === 'record' && last === ':') return 'record';
  return 'other';
}

function kw(label: string, detail?: string): CompletionItem {
  return { label, kind: CompletionItemKind.Keyword, detail };
}

function symbolItem(sym: SymbolInfo, kind: CompletionItemKind, sortPrefix = '1'): CompletionItem {
  return {
    label: sym.name,
    kind,
    detail: sym.detail || sym.qualifiedName,
    documentation: sym.doc,
    sortText: sortPrefix + sym.name,
  };
}

/** Top-level symbols of one kind that the file can name without qualification. */
function visible(s: Snapshot, file: string, kinds: string[]): SymbolInfo[] {
  const out = new Map<string, SymbolInfo>();
  // What the file declares itself and what it references anywhere (its imports) are visible;
  // the prelude's declarations are visible everywhere.
  for (const d of s.refs.declarationsIn(file)) if (!d.container && kinds.includes(d.kind)) out.set(d.name, d);
  for (const d of s.refs.declarationsIn('std:prelude')) if (!d.container && kinds.includes(d.kind) && !out.has(d.name)) out.set(d.name, d);
  const ast = s.program.files.get(file);
  for (const imp of ast?.imports ?? []) {
    for (const item of imp.items === '*' ? [] : imp.items) {
      const sym = s.refs.resolveSpan(file, item.name.span);
      if (sym && kinds.includes(sym.kind)) out.set(item.alias?.name ?? sym.name, { ...sym, name: item.alias?.name ?? sym.name });
    }
    if (imp.items === '*') {
      // The compiler resolved the module path of the import; its symbol names the module's file.
      const mod = s.refs.resolveSpan(file, imp.module.span);
      for (const d of mod?.kind === 'module' ? s.refs.declarationsIn(mod.file) : []) if (!d.container && kinds.includes(d.kind)) out.set(d.name, d);
    }
  }
  return [...out.values()];
}

/** The module path of a loaded file as seen from a project root, or undefined when the file is outside it. */
function modulePathFrom(root: string, file: string): string | undefined {
  return file.startsWith('std:') ? PathMapper.modulePath(file) : modulePathOfFile(file, root);
}

/** The file of a module path as seen from a project root, when the Program loaded it. */
function moduleFile(s: Snapshot, modulePath: string, root: string): string | undefined {
  for (const f of s.program.files.keys()) if (modulePathFrom(root, f) === modulePath) return f;
  return undefined;
}

/** The system declaration around an offset, and its instance of a given name. */
function findInstance(s: Snapshot, file: string, offset: number, name: string): InstanceDecl | undefined {
  const ast = s.program.files.get(file);
  if (!ast) return undefined;
  const path = nodesAt(ast, offset);
  const systems = path.filter((n): n is SystemDecl => n.kind === 'SystemDecl');
  const candidates = systems.length > 0 ? systems : ast.decls.filter((d): d is SystemDecl => d.kind === 'SystemDecl');
  for (const sys of candidates.reverse()) {
    const inst = sys.members.find((m): m is InstanceDecl => m.kind === 'InstanceDecl' && m.name.name === name);
    if (inst) return inst;
  }
  return undefined;
}

function instanceNames(s: Snapshot, file: string, offset: number): CompletionItem[] {
  const ast = s.program.files.get(file);
  if (!ast) return [];
  const sys = nodesAt(ast, offset).find((n): n is SystemDecl => n.kind === 'SystemDecl');
  if (!sys) return [];
  return sys.members
    .filter((m): m is InstanceDecl => m.kind === 'InstanceDecl' && m.name.name !== '')
    .map((m) => ({ label: m.name.name, kind: CompletionItemKind.Variable, detail: m.component.parts.map((p) => p.name).join('.') }));
}

/** The segments of the dotted path that ends with the last word before the trailing `.`: `[farm, inner]`. */
function pathBefore(words: string[]): string[] {
  const out: string[] = [];
  for (let i = words.length - 2; i >= 0; i -= 2) {
    out.unshift(words[i]);
    if (words[i - 1] !== '.') break;
  }
  return out;
}

/** The instances of the nested system a rule path leads to (`farm.` or `farm.inner.`), as the compiler declared them. */
function pathItems(s: Snapshot, file: string, offset: number, segments: string[]): CompletionItem[] {
  let inst = findInstance(s, file, offset, segments[0]);
  let instFile = file;
  for (let i = 0; inst; i++) {
    const target = instanceTarget(s, instFile, inst);
    if (!target || target.kind !== 'system') return [];
    const children = s.refs.children(target.id).filter((c) => c.kind === 'instance');
    if (i === segments.length - 1) return children.map((c) => symbolItem(c, CompletionItemKind.Variable));
    const next = children.find((c) => c.name === segments[i + 1]);
    const ast = next && s.program.files.get(next.file);
    if (!next || !ast) return [];
    inst = undefined;
    for (const d of ast.decls) {
      if (d.kind !== 'SystemDecl') continue;
      const m = d.members.find((x): x is InstanceDecl => x.kind === 'InstanceDecl' && x.name.span.start === next.nameSpan.start);
      if (m) inst = m;
    }
    instFile = next.file;
  }
  return [];
}

function portItems(s: Snapshot, file: string, offset: number, instanceName: string, want?: 'provide' | 'require'): CompletionItem[] {
  const inst = findInstance(s, file, offset, instanceName);
  if (!inst) return [];
  const target = instanceTarget(s, file, inst);
  if (!target) return [];
  return portsOf(s, target)
    .filter((p) => !want || p.kind === 'export' || p.detail.startsWith(want) || (want === 'provide' && p.detail.startsWith('expose')))
    .map((p) => symbolItem(p, CompletionItemKind.Interface));
}

export function completion(s: Snapshot, c: ServerContext, file: string, position: Position): CompletionList | null {
  // Module paths are relative to the root of the file's project.
  const root = c.analyzer.projectOf(file)?.root ?? '';
  const lines = s.lines(file);
  const text = s.text(file);
  if (!lines || text === undefined) return null;
  const offset = lines.offsetAt(position);
  // The word being typed is replaced by the completion; context is what precedes it.
  let wordStart = offset;
  while (wordStart > 0 && /[A-Za-z0-9_]/.test(text[wordStart - 1])) wordStart--;
  // One lexer pass over the text up to the cursor serves both questions below.
  const lexed = tokenize(text.slice(0, offset));
  const toks = tokensBefore(text, lexed, wordStart);
  const stack = blockStack(toks);
  const frame = stack[stack.length - 1];
  // A word typed at the start of a line begins a new statement unless the
  // previous line ends in the middle of one (`connect a.x ->`).
  const lastTok = frame.stmt[frame.stmt.length - 1];
  const stmt = lastTok && isFreshLine(text, wordStart) && !continues(lastTok) ? [] : frame.stmt;
  const words = stmt.map((t) => t.text);
  const prev = words[words.length - 1];
  const items = (list: CompletionItem[]): CompletionList => ({ isIncomplete: false, items: list });

  // Inside a string or a comment nothing is offered.
  if (inCommentOrString(text, lexed, offset)) return items([]);

  // `instance.` -> the instance's ports (connect, expose, export, exposed only [...]).
  if (prev === '.' && frame.block !== 'import' && words[0] !== 'import') {
    const qualifier = words[words.length - 2];
    // A rule other than `exposed only` names instances, and `farm.` continues a path into the nested system `farm`.
    if (frame.block === 'policy' && qualifier && words[0] !== 'exposed' && !(words[0] === 'no' && words[1] === 'flow' && words.length === 4)) {
      return items(pathItems(s, file, offset, pathBefore(words)));
    }
    if (['system', 'policy'].includes(frame.block) && qualifier) {
      const want = words[0] === 'connect' ? (words.includes('->') ? 'provide' : 'require') : words[0] === 'expose' || words[0] === 'exposed' ? 'provide' : undefined;
      return items(portItems(s, file, offset, qualifier, want));
    }
    // A qualified name `std.http.` or `shop.types.`: the module's declarations.
    const modulePath = qualifiedBefore(words);
    const mf = moduleFile(s, modulePath, root);
    if (mf) return items(s.refs.declarationsIn(mf).filter((d) => !d.container).map((d) => symbolItem(d, CompletionItemKind.Reference)));
    return items(moduleItems(s, modulePath, root));
  }

  // Imports: module paths, then the names a module declares.
  if (words[0] === 'import' || frame.block === 'import') {
    if (frame.block === 'import') {
      const opener = frame.opener.map((t) => t.text);
      const mf = moduleFile(s, qualifiedBefore(opener.slice(0, -1)).replace(/^import\.?/, ''), root);
      return items(mf ? s.refs.declarationsIn(mf).filter((d) => !d.container).map((d) => symbolItem(d, CompletionItemKind.Reference)) : []);
    }
    const path = prev === '.' ? qualifiedBefore(words.slice(1)) : '';
    return items(moduleItems(s, path, root));
  }

  switch (frame.block) {
    case 'channel': {
      if (words[0] === 'allow') {
        const opener = frame.opener.map((t) => t.text);
        const arrow = opener.indexOf('->');
        const toInst = opener[arrow + 1];
        const toPort = opener[arrow + 3];
        const inst = toInst ? findInstance(s, file, offset, toInst) : undefined;
        const target = inst ? instanceTarget(s, file, inst) : undefined;
        const port = target ? portsOf(s, target).find((p) => p.name === toPort) : undefined;
        const protocol = port ? protocolOf(s, port) : undefined;
        const already = new Set(words.slice(1));
        return items(protocol ? operationsOf(s, protocol).filter((o) => !already.has(o.name)).map((o) => symbolItem(o, CompletionItemKind.Method)) : []);
      }
      if (stmt.length === 0) return items(CHANNEL_KEYWORDS.map((k) => kw(k, 'channel attribute')));
      return items([]);
    }
    case 'exposure':
      return items(stmt.length === 0 ? EXPOSURE_KEYWORDS.map((k) => kw(k, 'exposure attribute')) : []);
    case 'egress':
      if (stmt.length === 1 && words[0] === 'label') return items(labelItems(s));
      return items(stmt.length === 0 ? EGRESS_KEYWORDS.map((k) => kw(k, 'egress attribute')) : []);
    case 'system': {
      if (words[0] === 'connect') {
        // After `->` and after each `|` of a late binding's candidates: the instances.
        if (stmt.length === 1 || prev === '->' || prev === '|') return items(instanceNames(s, file, offset));
        return items([]);
      }
      if ((words[0] === 'expose' || words[0] === 'export') && (stmt.length === 1 || prev === '=')) return items(instanceNames(s, file, offset));
      if (words[0] === 'egress' && prev === ':') return items(instanceNames(s, file, offset));
      if (stmt.length === 2 && prev === '=') {
        return items(visible(s, file, ['component', 'system']).map((d) => symbolItem(d, d.kind === 'system' ? CompletionItemKind.Module : CompletionItemKind.Class)));
      }
      if (stmt.length === 0) return items([...SYSTEM_KEYWORDS.map((k) => kw(k)), ...snippetItems('system', c)]);
      return items([]);
    }
    case 'instance': {
      if (stmt.length === 0) {
        const opener = frame.opener;
        const inst = findInstance(s, file, offset, opener[0]?.text ?? '');
        const target = inst ? instanceTarget(s, file, inst) : undefined;
        const params = target ? s.refs.children(target.id).filter((c) => c.kind === 'param').map((p) => symbolItem(p, CompletionItemKind.Property, '0')) : [];
        // A system instance takes only the system's parameters: keyword settings are for component instances.
        return items([...params, ...(target?.kind === 'system' ? [] : INSTANCE_KEYWORDS.map((k) => kw(k)))]);
      }
      return items(valueItems(words));
    }
    case 'component': {
      if (['provide', 'require', 'expose'].includes(words[0]) && prev === ':') {
        const factory = words[0] === 'require' ? [kw('factory')] : [];
        return items([...visible(s, file, ['protocol']).map((d) => symbolItem(d, CompletionItemKind.Interface)), ...factory]);
      }
      // `require p: factory |` names the component it creates.
      if (words[0] === 'require' && prev === 'factory') return items(visible(s, file, ['component']).map((d) => symbolItem(d, CompletionItemKind.Class)));
      if (words[0] === 'param' && (prev === ':' || prev === '<' || prev === ',')) return items(typeItems(s, file));
      if (words[0] === 'image' && stmt.length === 1) return items(visible(s, file, ['image']).map((d) => symbolItem(d, CompletionItemKind.File)));
      if ((words[0] === 'label' && stmt.length === 1) || (words[0] === 'declassifies' && (stmt.length === 1 || prev === '->'))) {
        return items(labelItems(s));
      }
      if (words[0] === 'restart' && stmt.length === 1) return items(['always', 'on-failure', 'never'].map((k) => kw(k)));
      if (stmt.length === 0) return items([...COMPONENT_KEYWORDS.map((k) => kw(k)), ...snippetItems('component', c)]);
      return items(valueItems(words));
    }
    case 'protocol': {
      if (words[0] === 'order') {
        const ops = protocolOpsAround(s, file, offset);
        return items(ops.map((o) => symbolItem(o, CompletionItemKind.Method)));
      }
      if (prev === '(' || prev === '->' || prev === '<' || prev === ',') return items(typeItems(s, file));
      if (stmt.length === 0) return items(PROTOCOL_KEYWORDS.map((k) => kw(k)));
      return items([]);
    }
    case 'record':
    case 'enum':
      if (prev === ':' || prev === '<' || prev === ',' || prev === '=') return items(typeItems(s, file));
      return items([]);
    case 'policy': {
      if (stmt.length === 0) return items([...instanceNames(s, file, offset), ...POLICY_KEYWORDS.map((k) => kw(k))]);
      if (words[0] === 'no' && stmt.length === 1) return items([kw('path'), kw('flow')]);
      if (words[0] === 'no' && words[1] === 'flow' && stmt.length === 2) return items(labelItems(s));
      if ((words[0] === 'no' && (prev === '->' || (words[1] === 'path' && stmt.length === 2))) || prev === 'from' || prev === 'through' || prev === ',') {
        return items([...instanceNames(s, file, offset), ...(words[1] === 'path' ? [kw('outside')] : [])]);
      }
      if (stmt.length === 1) return items([kw('only')]);
      if (prev === 'only' && words[0] !== 'exposed' && words[0] !== 'egress') return items([kw('from'), kw('through'), kw('to')]);
      if (words[0] === 'egress' && stmt.length === 1) return items([kw('only')]);
      if (words[0] === 'exposed' && stmt.length === 1) return items([kw('only')]);
      if (words[0] === 'budget' && stmt.length === 1) return items([kw('memory'), kw('vcpus')]);
      if (words[0] === 'exposed' && (prev === '[' || prev === ',')) return items(instanceNames(s, file, offset));
      return items([]);
    }
    case 'program':
      if (stmt.length === 0) return items(PROGRAM_KEYWORDS.map((k) => kw(k)));
      return items([]);
    case 'image':
      if (stmt.length === 0) return items(IMAGE_KEYWORDS.map((k) => kw(k)));
      return items([]);
    case 'target':
      if (stmt.length === 0) return items(TARGET_KEYWORDS.map((k) => kw(k)));
      if (words[0] === 'backend') return items(BACKEND_NAMES.map((b) => kw(b)));
      return items([]);
    case 'labels':
      return items(labelItems(s));
    case 'top': {
      if (words[0] === 'deploy') {
        if (stmt.length === 1) return items(visible(s, file, ['system']).map((d) => symbolItem(d, CompletionItemKind.Module)));
        if (prev !== 'to' && stmt.length >= 2 && words[words.length - 2] !== '.') return items([kw('to')]);
        if (prev === 'to') return items(visible(s, file, ['target']).map((d) => symbolItem(d, CompletionItemKind.Constant)));
      }
      if (words[0] === 'type' && (prev === '=' || prev === '<' || prev === ',')) return items(typeItems(s, file));
      if (stmt.length === 0) return items([...TOP_KEYWORDS.map((k) => kw(k)), ...snippetItems('top', c)]);
      return items([]);
    }
    default:
      return items([]);
  }
}

/** True when only whitespace precedes `offset` on its line (a new statement in a block without separators). */
function isFreshLine(text: string, offset: number): boolean {
  for (let i = offset - 1; i >= 0; i--) {
    const ch = text[i];
    if (ch === '\n') return true;
    if (ch !== ' ' && ch !== '\t' && ch !== '\r') return false;
  }
  return true;
}

/** `a . b . c .` -> `a.b.c` (the dotted path that ends just before the trailing dot). */
function qualifiedBefore(words: string[]): string {
  const parts: string[] = [];
  let i = words.length - 1;
  if (words[i] === '.') i--;
  while (i >= 0 && /^[A-Za-z_]/.test(words[i])) {
    parts.unshift(words[i]);
    if (words[i - 1] !== '.') break;
    i -= 2;
  }
  return parts.join('.');
}

/** Module path segments that continue `prefix` (`std.` -> `http`, `kv`, ...). */
function moduleItems(s: Snapshot, prefix: string, root: string): CompletionItem[] {
  const seen = new Set<string>();
  const out: CompletionItem[] = [];
  const known = new Set<string>();
  for (const f of s.program.files.keys()) {
    const m = modulePathFrom(root, f);
    if (m !== undefined) known.add(m);
  }
  // The stdlib modules are always importable, even when nothing loaded them yet.
  for (const m of ['std.http', 'std.kv', 'std.log', 'std.sql', 'std.blob']) known.add(m);
  for (const m of known) {
    if (m === 'std.prelude') continue;
    const rest = prefix ? (m.startsWith(prefix + '.') ? m.slice(prefix.length + 1) : undefined) : m;
    if (rest === undefined) continue;
    const seg = rest.split('.')[0];
    if (seen.has(seg)) continue;
    seen.add(seg);
    out.push({ label: seg, kind: CompletionItemKind.Module, detail: prefix ? `${prefix}.${seg}` : seg });
  }
  return out;
}

function typeItems(s: Snapshot, file: string): CompletionItem[] {
  return [
    ...visible(s, file, ['type']).map((d) => symbolItem(d, CompletionItemKind.Struct, '0')),
    ...PRIMITIVES.map((p) => ({ ...kw(p, 'built-in type'), sortText: '1' + p })),
  ];
}

function labelItems(s: Snapshot): CompletionItem[] {
  const seen = new Set<string>();
  const out: CompletionItem[] = [];
  for (const sym of s.program.symbols.values()) {
    if (sym.kind !== 'label' || seen.has(sym.name)) continue;
    seen.add(sym.name);
    out.push(symbolItem(sym, CompletionItemKind.EnumMember));
  }
  return out;
}

function valueItems(words: string[]): CompletionItem[] {
  if (words[0] === 'restart' && words.length === 1) return ['always', 'on-failure', 'never'].map((k) => kw(k));
  if (words[0] === 'per' && words.length === 1) return [kw('session')];
  return [];
}

function protocolOpsAround(s: Snapshot, file: string, offset: number): SymbolInfo[] {
  const ast = s.program.files.get(file);
  const decl = ast ? nodesAt(ast, offset).find((n) => n.kind === 'ProtocolDecl') : undefined;
  if (!decl || decl.kind !== 'ProtocolDecl') return [];
  const sym = s.refs.resolveSpan(file, decl.name.span);
  return sym ? operationsOf(s, sym) : [];
}

function snippet(label: string, body: string, detail: string): CompletionItem {
  return { label, kind: CompletionItemKind.Snippet, insertText: body, insertTextFormat: InsertTextFormat.Snippet, detail, sortText: '9' + label };
}

/** Snippets go only to clients that declared snippet support; others would insert `${1:Name}` literally. */
function snippetItems(block: 'top' | 'component' | 'system', c: ServerContext): CompletionItem[] {
  if (!c.client.snippets) return [];
  switch (block) {
    case 'top':
      return [
        snippet('component …', 'component ${1:Name} {\n\tmemory ${2:128MiB}\n\tprovide ${3:api}: ${4:Http}\n\t$0\n}', 'a component declaration'),
        snippet('system …', 'system ${1:Name} {\n\t${2:a} = ${3:Component}\n\t$0\n}', 'a system declaration'),
        snippet('protocol …', 'protocol ${1:Name} {\n\tcall ${2:op}(${3:Input}) -> ${4:Output}\n}', 'a protocol declaration'),
      ];
    case 'component':
      return [snippet('program …', 'program {\n\tscript "${1:guest/run.sh}"\n}', 'the guest program')];
    case 'system':
      return [snippet('connect …', 'connect ${1:a}.${2:port} -> ${3:b}.${4:port}', 'wire a required port to a provided port')];
  }
}
