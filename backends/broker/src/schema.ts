// Compiles the plan's MessageSchema trees into validator closures.
//
// A schema is compiled once per broker; checking a frame is then a walk of
// closures with no allocation on success. A validator returns undefined when
// the value conforms, or a message naming the path of the first offending value
// (for example `items[2].quantity: 200 is above the maximum 100`).
//
// JSON encoding of message values (also in spec/broker.md):
// - bool, int (a safe integer), float (any finite number), string;
// - int64: a decimal string (`"-9223372036854775808"`), or a JSON number that
//   is a safe integer; a larger number is refused, since JSON parsing has
//   already rounded it (@mcl/plan's int64.ts); bounds are compared exactly;
// - bytes: a base64 string (standard alphabet, padding optional); length bounds
//   apply to the decoded length;
// - string length bounds count UTF-8 bytes; patterns are anchored (the whole
//   value must match);
// - list: a JSON array; map: a JSON object (keys that are not strings in the
//   schema are written as strings: ints in decimal, bools as true/false);
// - record: a JSON object; optional fields may be absent or null; unknown fields
//   are refused (records are closed);
// - enum: the member's name as a string;
// - union: an object with exactly one key, the variant name, whose value is the
//   payload (`{"hit": {...}}`); a variant without payload is `{"miss": null}`
//   or, equally, the bare string `"miss"`.

import { int64FromJson, type MessageSchema } from '@mcl/plan';

/** Returns undefined when `value` conforms, else what is wrong and where. */
export type Validator = (value: unknown) => string | undefined;

export interface CompiledSchemas {
  /** The validator of a named schema; unknown names give a validator that refuses everything. */
  get(name: string): Validator;
  /** Problems found while compiling (bad patterns, dangling references). */
  problems: string[];
}

const hasOwn = Object.prototype.hasOwnProperty;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return v.length > 40 ? `a string` : JSON.stringify(v);
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/** A peer-chosen name (field, map key) as it appears in a message: quoted, and cut when long. */
function quoteName(k: string): string {
  return JSON.stringify(k.length > 64 ? k.slice(0, 64) + '...' : k);
}

function prefix(name: string, err: string): string {
  // Join path segments so that `a.b[3]: ...` reads naturally.
  if (err.startsWith('[') || err.startsWith(':')) return name + err;
  return name + '.' + err;
}

/** UTF-8 byte length without allocating: counts surrogate pairs as 4 bytes. */
export function utf8Length(s: string): number {
  let n = s.length;
  // Fast path: pure ASCII strings are the common case.
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 2;
        i++;
        continue;
      }
      n += 2;
    } else n += 2;
  }
  return n;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

/** Decoded length of a base64 string, or -1 when it is not base64. */
export function base64DecodedLength(s: string): number {
  if (!BASE64.test(s)) return -1;
  let pad = 0;
  if (s.endsWith('==')) pad = 2;
  else if (s.endsWith('=')) pad = 1;
  const len = s.length - pad;
  return Math.floor((len * 3) / 4);
}

function compilePattern(pattern: string): RegExp {
  // Anchor the pattern so that it must match the whole value; try Unicode mode
  // first (code points, strict escapes) and fall back to the legacy mode for
  // patterns that only the latter accepts.
  const src = `^(?:${pattern})$`;
  try {
    return new RegExp(src, 'u');
  } catch {
    return new RegExp(src);
  }
}

export function compileSchemas(schemas: Record<string, MessageSchema>): CompiledSchemas {
  const problems: string[] = [];
  const named = new Map<string, Validator>();
  // References are resolved lazily through this table so that recursive types
  // compile without looping.
  const slots = new Map<string, { v: Validator | undefined }>();

  function refValidator(name: string): Validator {
    let slot = slots.get(name);
    if (!slot) {
      slot = { v: undefined };
      slots.set(name, slot);
    }
    const s = slot;
    return (value) => {
      if (s.v === undefined) return `type ${name} is not in the plan's schemas`;
      return s.v(value);
    };
  }

  function compile(schema: MessageSchema, where: string): Validator {
    switch (schema.kind) {
      case 'bool':
        return (v) => (typeof v === 'boolean' ? undefined : `: expected true or false, got ${describe(v)}`);
      case 'int': {
        const { min, max } = schema;
        return (v) => {
          if (typeof v !== 'number' || !Number.isSafeInteger(v)) return `: expected an integer, got ${describe(v)}`;
          if (min !== undefined && v < min) return `: ${v} is below the minimum ${min}`;
          if (max !== undefined && v > max) return `: ${v} is above the maximum ${max}`;
          return undefined;
        };
      }
      case 'int64': {
        // Compared as big integers: bounds are exact numbers, values may exceed 2^53.
        const { min, max } = schema;
        return (v) => {
          const n = int64FromJson(v);
          if (typeof n === 'string') return `: ${n}, got ${describe(v)}`;
          if (min !== undefined && n < min) return `: ${n} is below the minimum ${min}`;
          if (max !== undefined && n > max) return `: ${n} is above the maximum ${max}`;
          return undefined;
        };
      }
      case 'float': {
        const { min, max } = schema;
        return (v) => {
          if (typeof v !== 'number' || !Number.isFinite(v)) return `: expected a number, got ${describe(v)}`;
          if (min !== undefined && v < min) return `: ${v} is below the minimum ${min}`;
          if (max !== undefined && v > max) return `: ${v} is above the maximum ${max}`;
          return undefined;
        };
      }
      case 'string': {
        const { min_len, max_len } = schema;
        let re: RegExp | undefined;
        if (schema.pattern !== undefined) {
          try {
            re = compilePattern(schema.pattern);
          } catch (e) {
            problems.push(`${where}: pattern ${JSON.stringify(schema.pattern)} does not compile: ${(e as Error).message}`);
            return () => `: the pattern of this type does not compile, so every value is refused`;
          }
        }
        const pat = schema.pattern;
        return (v) => {
          if (typeof v !== 'string') return `: expected a string, got ${describe(v)}`;
          if (min_len !== undefined || max_len !== undefined) {
            // String length is at most 3 bytes per UTF-16 unit: skip the exact count when that bound already decides.
            const n = v.length * 3 <= (max_len ?? Infinity) && v.length >= (min_len ?? 0) ? -1 : utf8Length(v);
            if (n >= 0) {
              if (min_len !== undefined && n < min_len) return `: string of ${n} bytes is shorter than the minimum ${min_len}`;
              if (max_len !== undefined && n > max_len) return `: string of ${n} bytes is longer than the maximum ${max_len}`;
            }
          }
          if (re !== undefined && !re.test(v)) return `: ${describe(v)} does not match the pattern ${JSON.stringify(pat)}`;
          return undefined;
        };
      }
      case 'bytes': {
        const { min_len, max_len } = schema;
        return (v) => {
          if (typeof v !== 'string') return `: expected base64 bytes, got ${describe(v)}`;
          const n = base64DecodedLength(v);
          if (n < 0) return `: not valid base64`;
          if (min_len !== undefined && n < min_len) return `: ${n} bytes is shorter than the minimum ${min_len}`;
          if (max_len !== undefined && n > max_len) return `: ${n} bytes is longer than the maximum ${max_len}`;
          return undefined;
        };
      }
      case 'list': {
        const el = compile(schema.element, where + '[]');
        const { min_items, max_items } = schema;
        return (v) => {
          if (!Array.isArray(v)) return `: expected a list, got ${describe(v)}`;
          if (min_items !== undefined && v.length < min_items) return `: ${v.length} items, fewer than the minimum ${min_items}`;
          if (max_items !== undefined && v.length > max_items) return `: ${v.length} items, more than the maximum ${max_items}`;
          for (let i = 0; i < v.length; i++) {
            const e = el(v[i]);
            if (e !== undefined) return prefix(`[${i}]`, e);
          }
          return undefined;
        };
      }
      case 'map': {
        const keyV = compileMapKey(schema.key, where + '{}');
        const valV = compile(schema.value, where + '{}');
        const { min_entries, max_entries } = schema;
        return (v) => {
          if (typeof v !== 'object' || v === null || Array.isArray(v)) return `: expected a map (JSON object), got ${describe(v)}`;
          let n = 0;
          for (const k in v) {
            if (!hasOwn.call(v, k)) continue;
            n++;
            const ke = keyV(k);
            if (ke !== undefined) return `[${quoteName(k)}] (key)${ke}`;
            const ve = valV((v as Record<string, unknown>)[k]);
            if (ve !== undefined) return prefix(`[${quoteName(k)}]`, ve);
          }
          if (min_entries !== undefined && n < min_entries) return `: ${n} entries, fewer than the minimum ${min_entries}`;
          if (max_entries !== undefined && n > max_entries) return `: ${n} entries, more than the maximum ${max_entries}`;
          return undefined;
        };
      }
      case 'record': {
        const fields = schema.fields.map((f) => ({ name: f.name, optional: f.optional, v: compile(f.type, `${where}.${f.name}`) }));
        const known = new Set(fields.map((f) => f.name));
        return (v) => {
          if (typeof v !== 'object' || v === null || Array.isArray(v)) return `: expected a record (JSON object), got ${describe(v)}`;
          const o = v as Record<string, unknown>;
          let present = 0;
          for (let i = 0; i < fields.length; i++) {
            const f = fields[i];
            const fv = o[f.name];
            if (fv === undefined || !hasOwn.call(o, f.name)) {
              if (!f.optional) return `${f.name}: required field is missing`;
              continue;
            }
            present++;
            if (fv === null && f.optional) continue;
            const e = f.v(fv);
            if (e !== undefined) return prefix(f.name, e);
          }
          // Closed records: count keys only when needed to find the extra one.
          let total = 0;
          for (const k in o) if (hasOwn.call(o, k)) total++;
          if (total !== present) {
            for (const k in o) if (hasOwn.call(o, k) && !known.has(k)) return `${k.length > 64 ? quoteName(k) : k}: unknown field (records are closed)`;
          }
          return undefined;
        };
      }
      case 'enum': {
        const members = new Set(schema.members);
        const list = schema.members.join(', ');
        return (v) => (typeof v === 'string' && members.has(v) ? undefined : `: ${describe(v)} is not one of ${list}`);
      }
      case 'union': {
        const variants = new Map<string, Validator | null>();
        for (const variant of schema.variants) {
          variants.set(variant.name, variant.type ? compile(variant.type, `${where}.${variant.name}`) : null);
        }
        const names = schema.variants.map((x) => x.name).join(', ');
        return (v) => {
          if (typeof v === 'string') {
            if (variants.has(v) && variants.get(v) === null) return undefined;
            if (variants.has(v)) return `: variant ${v} carries a value: write {"${v}": ...}`;
            return `: ${describe(v)} is not a variant (${names})`;
          }
          if (typeof v !== 'object' || v === null || Array.isArray(v)) return `: expected a union {"<variant>": value}, got ${describe(v)}`;
          let name: string | undefined;
          for (const k in v) {
            if (!hasOwn.call(v, k)) continue;
            if (name !== undefined) return `: a union value has exactly one key, the variant name`;
            name = k;
          }
          if (name === undefined) return `: a union value has exactly one key, the variant name`;
          if (!variants.has(name)) return `: ${quoteName(name)} is not a variant (${names})`;
          const pv = variants.get(name);
          const payload = (v as Record<string, unknown>)[name];
          if (pv === null) return payload === null ? undefined : prefix(name, `: variant ${name} carries no value: write {"${name}": null}`);
          const e = pv!(payload);
          return e === undefined ? undefined : prefix(name, e);
        };
      }
      case 'ref':
        return refValidator(schema.name);
      default: {
        problems.push(`${where}: unknown schema kind ${JSON.stringify((schema as { kind: unknown }).kind)}`);
        return () => `: this type has an unknown schema kind, so every value is refused`;
      }
    }
  }

  function compileMapKey(schema: MessageSchema, where: string): (k: string) => string | undefined {
    // Map keys travel as JSON object keys (strings); decode them to the key type before checking.
    const target = schema.kind === 'ref' ? schemas[schema.name] : schema;
    const inner = compile(schema, where);
    if (target?.kind === 'int' || target?.kind === 'float') {
      return (k) => {
        const n = k.trim() === '' ? NaN : Number(k);
        return Number.isNaN(n) ? `: ${quoteName(k)} is not a number` : inner(n);
      };
    }
    if (target?.kind === 'bool') return (k) => (k === 'true' || k === 'false' ? undefined : `: expected true or false`);
    return inner;
  }

  for (const name of Object.keys(schemas).sort()) {
    const v = compile(schemas[name], name);
    named.set(name, v);
    const slot = slots.get(name);
    if (slot) slot.v = v;
    else slots.set(name, { v });
  }
  for (const [name, slot] of slots) {
    if (slot.v === undefined) problems.push(`type ${name} is referenced but not in the plan's schemas`);
  }

  return {
    get(name: string): Validator {
      const v = named.get(name);
      if (!v) return () => `type ${name} is not in the plan's schemas`;
      // Recursive types recurse as deep as the value: a value nested deeper than the stack allows is refused, not a crash.
      return (value) => {
        try {
          return v(value);
        } catch {
          return ': the value is nested too deeply';
        }
      };
    },
    problems,
  };
}

/** Compiles one schema (with the named schemas its references point to). */
export function compileSchema(schema: MessageSchema, schemas: Record<string, MessageSchema> = {}): Validator {
  const key = '\u0000root';
  return compileSchemas({ ...schemas, [key]: schema }).get(key);
}
