// Message types: resolving type expressions, checking constraints, detecting
// types with no finite value, and compiling types into the broker's message
// schemas. Also checks parameter values against their types.

import type {
  Constraint,
  Expr,
  NumberLike,
  TypeDecl,
  TypeExpr,
} from '@mcl/language';
import { Codes, utf8Length } from '@mcl/language';
import { INT64_MAX, INT64_MIN, parseInt64, type JsonValue, type MessageSchema } from '@mcl/plan';
import { Ctx, related, type DeclEntry, type Module } from '../context';
import { resolveRef } from '../resolve/scope';
import { didYouMean } from '../util/suggest';

export type RType =
  | { k: 'bool' }
  | { k: 'int' | 'int64' | 'float'; min?: number; max?: number }
  | { k: 'string' | 'bytes'; min?: number; max?: number; pattern?: string }
  | { k: 'list'; el: RType; min?: number; max?: number }
  | { k: 'map'; key: RType; value: RType; min?: number; max?: number }
  | { k: 'record'; fields: { name: string; optional: boolean; type: RType }[] }
  | { k: 'enum'; members: string[]; entry?: DeclEntry }
  | { k: 'union'; variants: { name: string; type?: RType }[] }
  | { k: 'named'; entry: DeclEntry }
  | { k: 'error' };

const PRIMITIVES = ['bool', 'int', 'int64', 'float', 'string', 'bytes'];
const ERROR: RType = { k: 'error' };

/** Where symbols of members of an anonymous type are declared: the symbol path prefix and its container. */
interface SymCtx {
  path: string;
  container: string;
  qname: string;
}

const INDEX_KEY = /^(?:0|[1-9]\d{0,9})$/;

/** A copy with keys in sorted order (null prototype, so `__proto__` stays data). */
function sortedObject(obj: Record<string, JsonValue>): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = Object.create(null);
  for (const k of Object.keys(obj).sort()) out[k] = obj[k];
  return out;
}

export class Types {
  /**
   * Whether any object value built so far has a key that looks like an array
   * index: engines enumerate such keys first whatever the insertion order, so
   * objects holding them are not in canonical order by construction.
   */
  sawIndexKey = false;
  /** Resolved bodies of type declarations. */
  private readonly bodies = new Map<DeclEntry, RType>();
  private readonly checking = new Set<DeclEntry>();
  /** Compiled regular expressions of patterns (null when invalid). */
  private readonly regexes = new Map<string, RegExp | null>();

  constructor(private readonly ctx: Ctx) {}

  /**
   * Takes over the checked bodies of an earlier compile's declarations that
   * `keep` accepts (declarations of modules whose text and dependencies did
   * not change), so they are not checked again (incremental.ts).
   */
  adopt(prior: Types, keep: (e: DeclEntry) => boolean): void {
    // forEach, not for-of: the language server runs this once per edit over every type declaration of the
    // workspace, and for-of makes an iterator result and an entry array per entry until V8 optimises the
    // function (the first edits after the server starts), which are collected inside the compile.
    prior.bodies.forEach((t, e) => {
      if (keep(e)) this.bodies.set(e, t);
    });
    if (prior.sawIndexKey) this.sawIndexKey = true;
  }

  /** Checks every type declaration of every module and reports those without a finite value. */
  checkAll(): void {
    // forEach for the reason given in adopt.
    this.ctx.modules.forEach((m) =>
      m.decls.forEach((e) => {
        if (e.kind === 'type') this.body(e);
      }),
    );
    this.reportUninhabited();
  }

  /** The resolved body of a type declaration (checked on first use). */
  body(e: DeclEntry): RType {
    const done = this.bodies.get(e);
    if (done) return done;
    if (this.checking.has(e)) return { k: 'named', entry: e };
    this.checking.add(e);
    const d = e.decl as TypeDecl;
    const t = this.check(d.type, e.module, { path: e.name, container: e.symbol, qname: e.qname }, e);
    this.bodies.set(e, t);
    this.checking.delete(e);
    return t;
  }

  /** Follows named references to a structural type (bounded, so alias cycles end in `error`). */
  deref(t: RType): RType {
    let cur = t;
    for (let i = 0; i < 64 && cur.k === 'named'; i++) cur = this.body(cur.entry);
    return cur.k === 'named' ? ERROR : cur;
  }

  /** Resolves and checks a type expression written in module `m`. */
  check(t: TypeExpr, m: Module, sym?: SymCtx, owner?: DeclEntry): RType {
    // Deeply nested input is checked iteratively only where it matters; types nest shallowly in practice,
    // and the parser bounds nesting depth.
    switch (t.kind) {
      case 'PrimitiveType':
        return this.primitive(t.name, t.constraints, m);
      case 'NamedType': {
        const parts = t.name.parts;
        if (parts.length === 1 && PRIMITIVES.includes(parts[0].name)) return { k: parts[0].name as 'int' } as RType;
        const e = resolveRef(this.ctx, m, t.name, ['type'], 'type', PRIMITIVES);
        if (!e) return ERROR;
        return { k: 'named', entry: e };
      }
      case 'ListType': {
        const el = this.check(t.element, m, sym && { ...sym, path: sym.path + '[]', qname: sym.qname + '[]' });
        const b = this.bounds(t.constraints, 'list', m);
        return { k: 'list', el, ...b };
      }
      case 'MapType': {
        const key = this.check(t.key, m);
        const value = this.check(t.value, m, sym && { ...sym, path: sym.path + '{}', qname: sym.qname + '{}' });
        const kd = this.deref(key);
        if (kd.k !== 'string' && kd.k !== 'enum' && kd.k !== 'error') {
          this.ctx.report(Codes.InvalidMapKeyType, `map keys must be strings or enum members, not ${describe(kd)}`, m.file, t.key.span, {
            hint: 'messages travel as JSON, whose object keys are strings: use `string` (with a pattern) or an enum',
          });
        }
        const b = this.bounds(t.constraints, 'map', m);
        return { k: 'map', key, value, ...b };
      }
      case 'RecordType': {
        const fields: { name: string; optional: boolean; type: RType }[] = [];
        const seen = new Map<string, { start: number; end: number }>();
        for (const f of t.fields) {
          const name = f.name.name;
          if (!name) continue;
          const prev = seen.get(name);
          if (prev) {
            this.ctx.report(Codes.DuplicateField, `field \`${name}\` is declared twice`, m.file, f.name.span, {
              hint: 'remove or rename one of the fields',
              related: [related(m.file, prev, 'first declared here')],
            });
            continue;
          }
          seen.set(name, f.name.span);
          let sub: SymCtx | undefined;
          if (sym) {
            const id = this.ctx.declare('field', m.file, `${sym.path}.${name}`, f.name, f.span, `${sym.qname}.${name}`, () => `${name}${f.optional ? '?' : ''}: ${typeText(f.type, m)}`, f.doc, sym.container);
            sub = { path: `${sym.path}.${name}`, container: id, qname: `${sym.qname}.${name}` };
          }
          fields.push({ name, optional: f.optional, type: this.check(f.type, m, sub) });
        }
        return { k: 'record', fields };
      }
      case 'EnumType': {
        const members: string[] = [];
        const seen = new Map<string, { start: number; end: number }>();
        for (const mem of t.members) {
          if (!mem.name) continue;
          const prev = seen.get(mem.name);
          if (prev) {
            this.ctx.report(Codes.DuplicateEnumMember, `enum member \`${mem.name}\` is listed twice`, m.file, mem.span, {
              hint: 'remove the repeated member',
              related: [related(m.file, prev, 'first listed here')],
            });
            continue;
          }
          seen.set(mem.name, mem.span);
          members.push(mem.name);
          if (sym) this.ctx.declare('enum-member', m.file, `${sym.path}.${mem.name}`, mem, mem.span, `${sym.qname}.${mem.name}`, () => `enum member ${mem.name}`, undefined, sym.container);
        }
        if (t.members.length === 0) {
          this.ctx.report(Codes.EmptyEnumOrUnion, 'an enum needs at least one member', m.file, t.span, { hint: 'list the members: `enum { a, b }`' });
        }
        return { k: 'enum', members, entry: owner };
      }
      case 'UnionType': {
        const variants: { name: string; type?: RType }[] = [];
        const seen = new Map<string, { start: number; end: number }>();
        for (const v of t.variants) {
          const name = v.name.name;
          if (!name) continue;
          const prev = seen.get(name);
          if (prev) {
            this.ctx.report(Codes.DuplicateVariant, `variant \`${name}\` is declared twice`, m.file, v.name.span, {
              hint: 'remove or rename one of the variants',
              related: [related(m.file, prev, 'first declared here')],
            });
            continue;
          }
          seen.set(name, v.name.span);
          let sub: SymCtx | undefined;
          if (sym) {
            const id = this.ctx.declare('variant', m.file, `${sym.path}.${name}`, v.name, v.span, `${sym.qname}.${name}`, () => v.type ? `${name}: ${typeText(v.type, m)}` : name, undefined, sym.container);
            sub = { path: `${sym.path}.${name}`, container: id, qname: `${sym.qname}.${name}` };
          }
          variants.push(v.type ? { name, type: this.check(v.type, m, sub) } : { name });
        }
        if (t.variants.length === 0) {
          this.ctx.report(Codes.EmptyEnumOrUnion, 'a union needs at least one variant', m.file, t.span, { hint: 'list the variants: `union { ok: Result, none }`' });
        }
        return { k: 'union', variants };
      }
      case 'MissingType':
      default:
        return ERROR;
    }
  }

  private primitive(name: string, constraints: Constraint[], m: Module): RType {
    if (name === 'bool') {
      for (const c of constraints) {
        this.ctx.report(Codes.ConstraintNotApplicable, '`bool` takes no constraints', m.file, c.span, { hint: 'remove the constraint' });
      }
      return { k: 'bool' };
    }
    const kind = name as 'int' | 'int64' | 'float' | 'string' | 'bytes';
    const b = this.bounds(constraints, kind, m);
    return { k: kind, ...b } as RType;
  }

  /** Checks constraints for a type kind and returns the resolved bounds and pattern. */
  private bounds(
    constraints: Constraint[],
    kind: 'int' | 'int64' | 'float' | 'string' | 'bytes' | 'list' | 'map',
    m: Module,
  ): { min?: number; max?: number; pattern?: string } {
    const out: { min?: number; max?: number; pattern?: string } = {};
    const isLength = kind !== 'int' && kind !== 'int64' && kind !== 'float';
    let minSpan: { start: number; end: number } | undefined;
    let maxSpan: { start: number; end: number } | undefined;
    let patSpan: { start: number; end: number } | undefined;
    const what = isLength ? (kind === 'list' || kind === 'map' ? 'item count' : 'length') : 'value';
    const num = (v: NumberLike | undefined): number | undefined => {
      if (!v || v.kind === 'MissingExpr') return undefined;
      const n = v.kind === 'Size' ? v.bytes : v.value;
      if (kind === 'float') {
        if (v.kind === 'Size') {
          this.ctx.report(Codes.ConstraintBoundOutOfRange, 'a `float` bound cannot be a size', m.file, v.span, { hint: 'write a plain number' });
          return undefined;
        }
        return n;
      }
      if ((kind === 'int' || kind === 'int64') && v.kind === 'Float') {
        this.ctx.report(Codes.ConstraintBoundOutOfRange, `an \`${kind}\` bound must be an integer, not \`${v.raw}\``, m.file, v.span, { hint: 'write a whole number, or make the type `float`' });
        return undefined;
      }
      if (isLength && v.kind === 'Float') {
        this.ctx.report(Codes.ConstraintBoundOutOfRange, `a ${what} must be a whole number, not \`${v.raw}\``, m.file, v.span, { hint: 'write a whole number or a size such as `64KiB`' });
        return undefined;
      }
      if (!Number.isSafeInteger(n)) {
        this.ctx.report(Codes.ConstraintBoundOutOfRange, `\`${'raw' in v ? v.raw : n}\` is outside the range of exact integers`, m.file, v.span, {
          hint:
            kind === 'int64'
              ? `use a bound between -${Number.MAX_SAFE_INTEGER} and ${Number.MAX_SAFE_INTEGER}, or leave that end open: an \`int64\` is already bounded by its 64 bits`
              : `use a bound between -${Number.MAX_SAFE_INTEGER} and ${Number.MAX_SAFE_INTEGER}`,
        });
        return undefined;
      }
      if (isLength && n < 0) {
        this.ctx.report(Codes.ConstraintBoundOutOfRange, `a ${what} cannot be negative (\`${'raw' in v ? v.raw : n}\`)`, m.file, v.span, { hint: 'use 0 or more' });
        return undefined;
      }
      if (kind === 'int' && v.kind === 'Size' && !isLength) return n;
      return n;
    };
    const setMin = (n: number | undefined, span: { start: number; end: number }) => {
      if (minSpan) {
        this.ctx.report(Codes.DuplicateConstraint, `the minimum ${what} is given twice`, m.file, span, { hint: 'keep one bound', related: [related(m.file, minSpan, 'first given here')] });
        return;
      }
      minSpan = span;
      if (n !== undefined) out.min = n;
    };
    const setMax = (n: number | undefined, span: { start: number; end: number }) => {
      if (maxSpan) {
        this.ctx.report(Codes.DuplicateConstraint, `the maximum ${what} is given twice`, m.file, span, { hint: 'keep one bound', related: [related(m.file, maxSpan, 'first given here')] });
        return;
      }
      maxSpan = span;
      if (n !== undefined) out.max = n;
    };
    let rangeSpan: { start: number; end: number } | undefined;
    for (const c of constraints) {
      switch (c.kind) {
        case 'Range':
          if (c.min) setMin(num(c.min), c.span);
          if (c.max) setMax(num(c.max), c.span);
          rangeSpan = c.span;
          break;
        case 'Bound':
          if (c.bound === 'min') setMin(num(c.value), c.span);
          else setMax(num(c.value), c.span);
          break;
        case 'Pattern': {
          if (kind !== 'string') {
            this.ctx.report(Codes.ConstraintNotApplicable, `\`pattern\` applies only to \`string\`, not to \`${kind}\``, m.file, c.span, {
              hint: kind === 'int' || kind === 'int64' ? 'bound the value with a range such as `0..100` instead' : 'remove the pattern',
            });
            break;
          }
          if (patSpan) {
            this.ctx.report(Codes.DuplicateConstraint, 'the pattern is given twice', m.file, c.span, { hint: 'combine them into one regular expression', related: [related(m.file, patSpan, 'first given here')] });
            break;
          }
          patSpan = c.span;
          const p = c.pattern.value;
          if (this.regex(p) === null) {
            let reason = 'invalid';
            try {
              new RegExp(p, 'u');
            } catch (e) {
              reason = e instanceof Error ? e.message.replace(/^Invalid regular expression: /, '') : String(e);
            }
            this.ctx.report(Codes.InvalidRegex, `invalid regular expression: ${reason}`, m.file, c.pattern.span, {
              hint: 'patterns use ECMAScript regular expression syntax (with the `u` flag); escape special characters with `\\\\`',
            });
          } else out.pattern = p;
          break;
        }
      }
    }
    if (out.min !== undefined && out.max !== undefined && out.min > out.max) {
      const span = rangeSpan && minSpan === rangeSpan && maxSpan === rangeSpan ? rangeSpan : { start: Math.min(minSpan!.start, maxSpan!.start), end: Math.max(minSpan!.end, maxSpan!.end) };
      this.ctx.report(Codes.EmptyRange, `the ${what} range ${out.min}..${out.max} is empty: its minimum is above its maximum`, m.file, span, {
        hint: `did you mean \`${out.max}..${out.min}\`?`,
      });
    }
    return out;
  }

  /** The compiled pattern (anchored to the whole value), or null when it is not a valid regular expression. */
  regex(p: string): RegExp | null {
    let r = this.regexes.get(p);
    if (r !== undefined) return r;
    try {
      new RegExp(p, 'u');
      r = new RegExp(`^(?:${p})$`, 'u');
    } catch {
      r = null;
    }
    this.regexes.set(p, r);
    return r;
  }

  /** Reports type declarations that have no finite value (recursion through required fields, alias cycles). */
  private reportUninhabited(): void {
    // The declarations found inhabited so far; one without a checked body counts as inhabited. Every
    // body is walked from the map itself, not from a copy of its keys and a map of them all: the
    // language server does this on every edit, over every type declaration of the workspace.
    const bodies = this.bodies;
    const inh = new Set<DeclEntry>();
    const inhabited = (t: RType, depth: number): boolean => {
      if (depth > 200) return true;
      switch (t.k) {
        case 'named':
          return inh.has(t.entry) || !bodies.has(t.entry);
        case 'record':
          return t.fields.every((f) => f.optional || inhabited(f.type, depth + 1));
        case 'union':
          return t.variants.length === 0 || t.variants.some((v) => !v.type || inhabited(v.type, depth + 1));
        default:
          return true;
      }
    };
    for (let changed = true; changed; ) {
      changed = false;
      bodies.forEach((t, e) => {
        if (!inh.has(e) && inhabited(t, 0)) {
          inh.add(e);
          changed = true;
        }
      });
    }
    // Nearly always none is left: the map is then not walked once more.
    if (inh.size === bodies.size) return;
    for (const e of bodies.keys()) {
      if (inh.has(e)) continue;
      const body = (e.decl as TypeDecl).type;
      const alias = body.kind === 'NamedType';
      this.ctx.report(Codes.RecursiveType, alias ? `type \`${e.name}\` is defined only in terms of itself` : `type \`${e.name}\` has no finite value: it contains itself through required fields`, e.module.file, e.decl.name.span, {
        hint: alias ? 'give the type a structure: a record, a union or a primitive' : 'make a field on the cycle optional (`next?: ...`), or hold it in a list, a map or a union',
      });
    }
  }

  // -------------------------------------------------------------------------
  // Schemas

  /** Compiles a resolved type into a message schema; named types become refs and are added to `refs`. */
  schema(t: RType, refs: Set<DeclEntry>, depth = 0): MessageSchema {
    if (depth > 200) return { kind: 'record', fields: [] };
    switch (t.k) {
      case 'bool':
        return { kind: 'bool' };
      case 'int':
      case 'int64':
      case 'float':
        return { kind: t.k, ...(t.min !== undefined ? { min: t.min } : {}), ...(t.max !== undefined ? { max: t.max } : {}) };
      case 'string':
        return { kind: 'string', ...(t.min !== undefined ? { min_len: t.min } : {}), ...(t.max !== undefined ? { max_len: t.max } : {}), ...(t.pattern !== undefined ? { pattern: t.pattern } : {}) };
      case 'bytes':
        return { kind: 'bytes', ...(t.min !== undefined ? { min_len: t.min } : {}), ...(t.max !== undefined ? { max_len: t.max } : {}) };
      case 'list':
        return { kind: 'list', element: this.schema(t.el, refs, depth + 1), ...(t.min !== undefined ? { min_items: t.min } : {}), ...(t.max !== undefined ? { max_items: t.max } : {}) };
      case 'map':
        return { kind: 'map', key: this.schema(t.key, refs, depth + 1), value: this.schema(t.value, refs, depth + 1), ...(t.min !== undefined ? { min_entries: t.min } : {}), ...(t.max !== undefined ? { max_entries: t.max } : {}) };
      case 'record':
        return { kind: 'record', fields: t.fields.map((f) => ({ name: f.name, optional: f.optional, type: this.schema(f.type, refs, depth + 1) })) };
      case 'enum':
        return { kind: 'enum', members: [...t.members] };
      case 'union':
        return { kind: 'union', variants: t.variants.map((v) => (v.type ? { name: v.name, type: this.schema(v.type, refs, depth + 1) } : { name: v.name })) };
      case 'named':
        refs.add(t.entry);
        return { kind: 'ref', name: t.entry.qname };
      case 'error':
      default:
        return { kind: 'record', fields: [] };
    }
  }

  // -------------------------------------------------------------------------
  // Values

  /**
   * Checks a value against a type and converts it to JSON; reports and returns
   * undefined when it does not fit. `what` names the value in messages.
   */
  value(e: Expr, t: RType, m: Module, what: string, depth = 0): JsonValue | undefined {
    const d = this.deref(t);
    const file = m.file;
    const wrong = (expected: string) => {
      this.ctx.report(Codes.WrongValueType, `${what} must be ${expected}, not ${exprText(e)}`, file, e.span, {
        hint: `write ${exampleOf(d)}`,
      });
      return undefined;
    };
    if (e.kind === 'MissingExpr' || d.k === 'error' || depth > 100) return undefined;
    switch (d.k) {
      case 'bool':
        return e.kind === 'Bool' ? e.value : wrong('`true` or `false`');
      case 'int': {
        let n: number;
        if (e.kind === 'Int') n = e.value;
        else if (e.kind === 'Size') n = e.bytes;
        else if (e.kind === 'Duration') n = e.ms;
        else return wrong('an integer');
        if (!Number.isSafeInteger(n)) return wrong('an exact integer');
        return this.inRange(n, d, e, m, what, 'value') ? n : undefined;
      }
      case 'int64': {
        // Integers beyond 2^53-1 cannot be written as literals (the lexer
        // keeps integers exact), so they are written as decimal strings, the
        // form they travel in on the wire (spec/types.md).
        if (e.kind === 'String') {
          const v = parseInt64(e.value);
          if (v === undefined) {
            this.ctx.report(Codes.WrongValueType, `${what} must be a 64-bit integer; ${JSON.stringify(e.value)} is not one`, file, e.span, {
              hint: `write a decimal integer between ${INT64_MIN} and ${INT64_MAX}, as a number or a string`,
            });
            return undefined;
          }
          if (!this.inRange(v, d, e, m, what, 'value')) return undefined;
          // Canonical JSON: a number when it is exact as one, the decimal string otherwise.
          return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
        }
        let n: number;
        if (e.kind === 'Int') n = e.value;
        else if (e.kind === 'Size') n = e.bytes;
        else if (e.kind === 'Duration') n = e.ms;
        else return wrong('a 64-bit integer');
        if (!Number.isSafeInteger(n)) return wrong('an exact integer');
        return this.inRange(n, d, e, m, what, 'value') ? n : undefined;
      }
      case 'float': {
        if (e.kind !== 'Int' && e.kind !== 'Float') return wrong('a number');
        return this.inRange(e.value, d, e, m, what, 'value') ? e.value : undefined;
      }
      case 'string':
      case 'bytes': {
        if (e.kind !== 'String') return wrong('a string');
        const len = utf8Length(e.value);
        if (!this.inRange(len, d, e, m, what, 'length in bytes')) return undefined;
        if (d.k === 'string' && d.pattern !== undefined) {
          const r = this.regex(d.pattern);
          if (r && !r.test(e.value)) {
            this.ctx.report(Codes.ConstraintViolated, `${what} ${JSON.stringify(e.value)} does not match the pattern ${JSON.stringify(d.pattern)}`, file, e.span, {
              hint: 'change the value so the whole of it matches the pattern',
            });
            return undefined;
          }
        }
        return e.value;
      }
      case 'enum': {
        if (e.kind !== 'Ref' && e.kind !== 'String') return wrong(`one of ${d.members.map((x) => `\`${x}\``).join(', ')}`);
        const parts = e.kind === 'Ref' ? e.name.parts : [];
        const name = e.kind === 'Ref' ? parts[parts.length - 1]?.name ?? '' : e.value;
        if (!d.members.includes(name)) {
          const s = didYouMean(name, d.members);
          this.ctx.report(Codes.UnknownEnumMember, `\`${name}\` is not a member of ${d.entry ? `\`${d.entry.name}\`` : 'the enum'}`, file, e.span, {
            hint: s ?? `use one of ${d.members.map((x) => `\`${x}\``).join(', ')}`,
          });
          return undefined;
        }
        if (e.kind === 'Ref' && d.entry && parts.length) {
          const id = `${d.entry.module.file}#enum-member:${d.entry.name}.${name}`;
          if (this.ctx.program.symbols.has(id)) this.ctx.reference(file, parts[parts.length - 1].span, id);
        }
        return name;
      }
      case 'list': {
        if (e.kind !== 'List') return wrong('a list `[...]`');
        if (!this.inRange(e.items.length, d, e, m, what, 'number of items')) return undefined;
        const out: JsonValue[] = [];
        let ok = true;
        e.items.forEach((item, i) => {
          const v = this.value(item, d.el, m, `item ${i + 1} of ${what}`, depth + 1);
          if (v === undefined) ok = false;
          else out.push(v);
        });
        return ok ? out : undefined;
      }
      case 'map': {
        if (e.kind !== 'Map') return wrong('a map `{ "key": value }`');
        if (!this.inRange(e.entries.length, d, e, m, what, 'number of entries')) return undefined;
        const out: Record<string, JsonValue> = Object.create(null); // user keys such as `__proto__` stay data
        let ok = true;
        const keyT = this.deref(d.key);
        for (const en of e.entries) {
          const key = en.key.kind === 'String' ? en.key.value : en.key.name;
          if (Object.prototype.hasOwnProperty.call(out, key)) {
            this.ctx.report(Codes.WrongValueType, `${what} has the key ${JSON.stringify(key)} twice`, file, en.key.span, { hint: 'remove one of the entries' });
            ok = false;
            continue;
          }
          const keyExpr: Expr = en.key.kind === 'String' ? en.key : { kind: 'String', raw: JSON.stringify(key), value: key, span: en.key.span };
          const kv = keyT.k === 'enum' ? this.value({ kind: 'Ref', name: { kind: 'QualifiedName', parts: [{ kind: 'Ident', name: key, span: en.key.span }], span: en.key.span }, span: en.key.span }, keyT, m, `a key of ${what}`, depth + 1) : this.value(keyExpr, d.key, m, `the key ${JSON.stringify(key)} of ${what}`, depth + 1);
          const vv = this.value(en.value, d.value, m, `the value of ${JSON.stringify(key)} in ${what}`, depth + 1);
          if (kv === undefined || vv === undefined) ok = false;
          else out[key] = vv;
          if (INDEX_KEY.test(key)) this.sawIndexKey = true;
        }
        return ok ? sortedObject(out) : undefined;
      }
      case 'record': {
        if (e.kind !== 'Map') return wrong('a record `{ field: value }`');
        const out: Record<string, JsonValue> = Object.create(null); // user keys such as `__proto__` stay data
        let ok = true;
        const byName = new Map(d.fields.map((f) => [f.name, f]));
        for (const en of e.entries) {
          const key = en.key.kind === 'String' ? en.key.value : en.key.name;
          const f = byName.get(key);
          if (!f) {
            this.ctx.report(Codes.WrongValueType, `${what} has no field \`${key}\``, file, en.key.span, { hint: didYouMean(key, byName.keys()) ?? `the fields are ${[...byName.keys()].map((x) => `\`${x}\``).join(', ') || 'none'}` });
            ok = false;
            continue;
          }
          const v = this.value(en.value, f.type, m, `field \`${key}\` of ${what}`, depth + 1);
          if (v === undefined) ok = false;
          else out[key] = v;
        }
        for (const f of d.fields) {
          if (!f.optional && !(f.name in out) && ok && !e.entries.some((en) => (en.key.kind === 'String' ? en.key.value : en.key.name) === f.name)) {
            this.ctx.report(Codes.WrongValueType, `${what} is missing the required field \`${f.name}\``, file, e.span, { hint: `add \`${f.name}: ...\`` });
            ok = false;
          }
        }
        return ok ? sortedObject(out) : undefined;
      }
      case 'union': {
        // A payload-less variant is written as its name; a variant with a payload as `{ variant: value }`.
        if (e.kind === 'Ref' && e.name.parts.length === 1) {
          const name = e.name.parts[0].name;
          const v = d.variants.find((x) => x.name === name);
          if (v && !v.type) return { [name]: null };
          if (v) return wrong(`\`{ ${name}: ... }\` (the variant carries a value)`);
          this.ctx.report(Codes.UnknownEnumMember, `\`${name}\` is not a variant of the union`, file, e.span, { hint: didYouMean(name, d.variants.map((x) => x.name)) ?? `use one of ${d.variants.map((x) => `\`${x.name}\``).join(', ')}` });
          return undefined;
        }
        if (e.kind !== 'Map' || e.entries.length !== 1) return wrong('a variant name or `{ variant: value }`');
        const en = e.entries[0];
        const key = en.key.kind === 'String' ? en.key.value : en.key.name;
        const v = d.variants.find((x) => x.name === key);
        if (!v) {
          this.ctx.report(Codes.UnknownEnumMember, `\`${key}\` is not a variant of the union`, file, en.key.span, { hint: didYouMean(key, d.variants.map((x) => x.name)) ?? `use one of ${d.variants.map((x) => `\`${x.name}\``).join(', ')}` });
          return undefined;
        }
        if (!v.type) return wrong(`\`${key}\` alone (the variant carries no value)`);
        if (INDEX_KEY.test(key)) this.sawIndexKey = true;
        const val = this.value(en.value, v.type, m, `variant \`${key}\` of ${what}`, depth + 1);
        return val === undefined ? undefined : Object.assign(Object.create(null), { [key]: val });
      }
      default:
        return undefined;
    }
  }

  private inRange(n: number | bigint, d: { min?: number; max?: number }, e: Expr, m: Module, what: string, measure: string): boolean {
    if ((d.min !== undefined && n < d.min) || (d.max !== undefined && n > d.max)) {
      const range = d.min === undefined ? `at most ${d.max}` : d.max === undefined ? `at least ${d.min}` : `in ${d.min}..${d.max}`;
      this.ctx.report(Codes.ConstraintViolated, `${what} has ${measure} ${n}; it must be ${range}`, m.file, e.span, {
        hint: `use a ${measure} ${range}`,
      });
      return false;
    }
    return true;
  }
}

function describe(t: RType): string {
  switch (t.k) {
    case 'named':
      return `\`${t.entry.name}\``;
    case 'error':
      return 'an unknown type';
    default:
      return `\`${t.k}\``;
  }
}

function exampleOf(t: RType): string {
  switch (t.k) {
    case 'bool':
      return '`true` or `false`';
    case 'int':
    case 'int64':
      return t.min !== undefined ? `an integer such as \`${t.min}\`` : 'an integer such as `42`';
    case 'float':
      return 'a number such as `1.5`';
    case 'string':
    case 'bytes':
      return 'a string in double quotes, e.g. `"text"`';
    case 'enum':
      return `one of ${t.members.map((x) => `\`${x}\``).join(', ')}`;
    case 'list':
      return 'a list such as `[a, b]`';
    case 'map':
      return 'a map such as `{ "key": value }`';
    case 'record':
      return 'a record such as `{ field: value }`';
    case 'union':
      return 'a variant name or `{ variant: value }`';
    default:
      return 'a value of the declared type';
  }
}

export function exprText(e: Expr): string {
  switch (e.kind) {
    case 'Int':
    case 'Float':
    case 'Size':
    case 'Rate':
    case 'Duration':
      return `\`${e.raw}\``;
    case 'String':
      return e.value.length > 40 ? 'a string' : `\`${JSON.stringify(e.value)}\``;
    case 'Bool':
      return `\`${e.value}\``;
    case 'List':
      return 'a list';
    case 'Map':
      return 'a map';
    case 'Ref':
      return `\`${e.name.parts.map((p) => p.name).join('.')}\``;
    default:
      return 'nothing';
  }
}

/** The type as written, for hover details. */
export function typeText(t: TypeExpr, m: Module): string {
  const s = m.text.slice(t.span.start, t.span.end).replace(/\s+/g, ' ');
  return s.length > 80 ? s.slice(0, 77) + '...' : s;
}
