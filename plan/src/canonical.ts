// Canonical JSON: the one way plans, states and digests are serialised.
//
// Object keys are sorted by UTF-16 code units (the order of JavaScript's
// default sort, as in RFC 8785), numbers use ECMAScript's shortest
// round-trip form (so 1.0 prints as 1 and -0 as 0), and properties whose
// value is `undefined` are left out. The same value therefore always gives
// the same bytes, which is what makes plan digests reproducible.

export class CanonicalJsonError extends Error {
  /** JSON path of the offending value, e.g. `$.a[0]`; built only when an error happens. */
  path = '';

  constructor(readonly reason: string) {
    super(reason);
  }

  /** Adds the segment of an enclosing array or object as the error travels up. */
  within(segment: string): this {
    this.path = segment + this.path;
    this.message = `${this.reason} at $${this.path}`;
    return this;
  }
}

/**
 * Objects whose builder vouches that the engine's JSON.stringify already
 * writes them canonically (see `vouchCanonical`): the checks below take them
 * as they are, without walking them.
 */
const VOUCHED = new WeakSet<object>();

/**
 * Records that the engine's JSON.stringify of `value` is its canonical JSON:
 * its keys, all the way down, are in sorted order and none looks like an
 * array index, and it holds nothing without a JSON form. The compiler vouches
 * for the instances and channels whose digests it computed over exactly that
 * text (the lists of them, one entry each), so that writing the plan file
 * does not check the order of every key of a 10,000-instance plan a second
 * time (the walk was a fifth of the write). The value must not change
 * afterwards, as its digest would not.
 */
export function vouchCanonical(value: object): void {
  VOUCHED.add(value);
}

/** Compact canonical JSON (no whitespace): the form digests are computed over. */
export function canonicalJson(value: unknown): string {
  // Most values the compiler hands over are built with their keys in order:
  // checking that costs a walk, where the sorted copy costs an allocation per
  // object (for the invariants and checks of a 10,000-instance plan, most of
  // the time of their digest).
  if (isCanonical(value, 0)) return JSON.stringify(value);
  const sorted = sortedCopy(value);
  return sorted === UNSORTABLE ? write(value, null, '') : JSON.stringify(sorted);
}

/**
 * canonicalJson(obj) in pieces, in order: its keys sorted, each member's value serialised on its
 * own. For an object of a few large members that are canonical as they are beside one that is not
 * (the checks of `digests.invariants`, whose keys are not in sorted order): as one value it would be
 * walked whole to find that, then copied, every member walked a second time.
 */
export function canonicalJsonMembers(obj: Readonly<Record<string, unknown>>): string[] {
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  if (keys.some((k) => INDEX_KEY.test(k))) return [canonicalJson(obj)];
  const pieces: string[] = [];
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    let v: string;
    try {
      v = canonicalJson(obj[k]);
    } catch (e) {
      throw e instanceof CanonicalJsonError ? e.within(`.${k}`) : e;
    }
    pieces.push((i === 0 ? '{' : ',') + JSON.stringify(k) + ':', v);
  }
  pieces.push(keys.length === 0 ? '{}' : '}');
  return pieces;
}

/** Canonical JSON indented by two spaces, with a trailing newline: the form written to files. */
export function prettyJson(value: unknown): string {
  const sorted = sortedCopy(value);
  return (sorted === UNSORTABLE ? write(value, '  ', '') : JSON.stringify(sorted, null, 2)) + '\n';
}

/**
 * prettyJson's text in pieces, in order, for writing a large value to a file
 * without building it as one string: `emit` receives strings whose
 * concatenation is exactly `prettyJson(value)`. The entries of the value's
 * arrays and objects down to `depth` levels are serialised one by one, each by
 * the engine's JSON.stringify (inside a wrapper that gives it its indentation).
 * One 24 MB string for the plan of 10,000 instances was built by the engine
 * from many parts and flattened, copied whole, when it was first written, and
 * with the copy it held twice its size of memory until the write ended.
 */
export function prettyJsonParts(value: unknown, emit: (part: string) => void, depth = 2): void {
  const sorted = sortedCopy(value);
  if (sorted === UNSORTABLE) {
    emit(write(value, '  ', '') + '\n');
    return;
  }
  emitPretty(sorted, 0, depth, emit);
  emit('\n');
}

/** The indentation of each nesting level, and where a value nested that deep starts and ends in its wrapper's text. */
const SHELLS: { indent: string; prefix: number; suffix: number }[] = [];
function shell(level: number): { indent: string; prefix: number; suffix: number } {
  let s = SHELLS[level];
  if (s === undefined) {
    // `level` arrays around a marker: the marker's text is indented as a value at that level is.
    let wrapped: unknown = 0;
    for (let i = 0; i < level; i++) wrapped = [wrapped];
    const text = JSON.stringify(wrapped, null, 2);
    const at = text.indexOf('0');
    s = SHELLS[level] = { indent: '  '.repeat(level), prefix: at, suffix: text.length - at - 1 };
  }
  return s;
}

/** Emits an already canonical value as JSON.stringify(value, null, 2) nested `level` levels deep would write it. */
function emitPretty(value: unknown, level: number, depth: number, emit: (part: string) => void): void {
  if (value === null || typeof value !== 'object') {
    emit(JSON.stringify(value));
    return;
  }
  if (level >= depth) {
    if (level === 0) emit(JSON.stringify(value, null, 2));
    else {
      const sh = shell(level);
      let wrapped: unknown = value;
      for (let i = 0; i < level; i++) wrapped = [wrapped];
      const text = JSON.stringify(wrapped, null, 2);
      emit(text.slice(sh.prefix, text.length - sh.suffix));
    }
    return;
  }
  const inner = shell(level + 1).indent;
  const close = shell(level).indent;
  if (Array.isArray(value)) {
    if (value.length === 0) {
      emit('[]');
      return;
    }
    emit('[\n' + inner);
    for (let i = 0; i < value.length; i++) {
      if (i) emit(',\n' + inner);
      // The copy above turned `undefined` entries into null, as JSON.stringify writes them.
      emitPretty(value[i], level + 1, depth, emit);
    }
    emit('\n' + close + ']');
    return;
  }
  const obj = value as Record<string, unknown>;
  let first = true;
  for (const k of Object.keys(obj)) {
    const v = obj[k];
    // JSON.stringify leaves out what has no JSON form; the copy above let through only `undefined`.
    if (v === undefined) continue;
    emit((first ? '{\n' : ',\n') + inner + JSON.stringify(k) + ': ');
    first = false;
    emitPretty(v, level + 1, depth, emit);
  }
  emit(first ? '{}' : '\n' + close + '}');
}

/** Deeper values are left to the copy below, which reports what has no JSON form with its path. */
const MAX_CHECKED_DEPTH = 64;

/**
 * True when the native JSON.stringify already writes the value canonically:
 * every object's keys are in sorted order, none looks like an array index,
 * none is `__proto__` or holds `undefined`, no array holds `undefined`, no
 * number is non-finite, and there is nothing without a JSON form.
 */
function isCanonical(value: unknown, depth: number): boolean {
  if (value === null) return true;
  switch (typeof value) {
    case 'boolean':
    case 'string':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object': {
      if (depth > MAX_CHECKED_DEPTH) return false;
      if (VOUCHED.has(value)) return true;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (value[i] === undefined || !isCanonical(value[i], depth + 1)) return false;
        return true;
      }
      const obj = value as Record<string, unknown>;
      if (typeof (obj as { toJSON?: unknown }).toJSON === 'function') return false;
      let prev: string | undefined;
      for (const k in obj) {
        if (!Object.prototype.hasOwnProperty.call(obj, k)) return false;
        if (prev !== undefined && !(prev < k)) return false;
        const c = k.charCodeAt(0);
        if ((c >= 48 && c <= 57 && INDEX_KEY.test(k)) || k === '__proto__') return false;
        const v = obj[k];
        if (v === undefined || !isCanonical(v, depth + 1)) return false;
        prev = k;
      }
      return true;
    }
    default:
      return false;
  }
}

const UNSORTABLE = Symbol('unsortable');
const INDEX_KEY = /^(0|[1-9][0-9]*)$/;

/**
 * The value with every object's keys in sorted order, so that the engine's
 * JSON.stringify (an order of magnitude faster than writing the text here)
 * produces the canonical form. Objects and arrays that already are canonical
 * are returned as they are, and only those that are not (or contain one that
 * is not) are copied: the compiler builds most of a plan in canonical order,
 * and copying all of it before writing the plan file was a third of that
 * write's time and most of its garbage. Engines put keys that look like array
 * indices first whatever the insertion order, so a value with such a key is
 * written by the slower writer below instead (UNSORTABLE). Values with no
 * JSON form throw, with their path.
 */
function sortedCopy(value: unknown): unknown {
  try {
    return copy(value);
  } catch (e) {
    if (e === UNSORTABLE) return UNSORTABLE;
    throw e;
  }
}

function copy(value: unknown): unknown {
  if (value === null) return null;
  switch (typeof value) {
    case 'boolean':
    case 'string':
      return value;
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError(`${value} has no JSON form`).within('');
      return value;
    case 'object': {
      if (VOUCHED.has(value)) return value;
      if (Array.isArray(value)) {
        // Copied from the first element that changes (or is `undefined`, written as null).
        let out: unknown[] | undefined;
        for (let i = 0; i < value.length; i++) {
          const v = value[i];
          let w: unknown;
          try {
            w = v === undefined ? null : copy(v);
          } catch (e) {
            throw e instanceof CanonicalJsonError ? e.within(`[${i}]`) : e;
          }
          if (out === undefined && (w !== v || !(i in value))) out = value.slice(0, i);
          if (out !== undefined) out.push(w);
        }
        return out ?? value;
      }
      const obj = value as Record<string, unknown>;
      if (typeof (obj as { toJSON?: unknown }).toJSON === 'function') throw UNSORTABLE;
      // Nearly every object of a plan is already canonical: its keys are walked with for-in, which
      // needs no array of them (Object.keys made one per object, as many as the plan has objects),
      // until one is out of order, inherited or undefined, or its value needs a copy.
      let i = 0;
      let prev = '';
      for (const k in obj) {
        if (!Object.prototype.hasOwnProperty.call(obj, k) || (i > 0 && !(prev < k))) return copyObject(obj, -1, undefined);
        const c = k.charCodeAt(0);
        if (c >= 48 && c <= 57 && INDEX_KEY.test(k)) throw UNSORTABLE;
        const v = obj[k];
        if (v === undefined) return copyObject(obj, i, undefined);
        const w = copyValue(v, k);
        if (w !== v) return copyObject(obj, i, w);
        prev = k;
        i++;
      }
      return obj;
    }
    default:
      throw new CanonicalJsonError(`a ${typeof value} has no JSON form`).within('');
  }
}

/** The copy of an object's value `v` under key `k`, an error's path given that key. */
function copyValue(v: unknown, k: string): unknown {
  try {
    return copy(v);
  } catch (e) {
    throw e instanceof CanonicalJsonError ? e.within(`.${k}`) : e;
  }
}

/**
 * The copy of an object that is not canonical as it is. The first `known` of its own keys, in their
 * order, were found in sorted order and with values that need no copy, and the value of the next
 * key (in that order) was copied as `next` (undefined when it is undefined itself); -1 when the
 * keys are not in order or one is inherited, and nothing was copied yet. No value is copied twice,
 * even when keys after those turn out to be out of order: a copy made twice at every level of a
 * nesting would double at each.
 */
function copyObject(obj: Record<string, unknown>, known: number, next: unknown): Record<string, unknown> {
  const keys = Object.keys(obj);
  const nextKey = known >= 0 ? keys[known] : undefined;
  let inOrder = true;
  for (let i = 1; i < keys.length && inOrder; i++) inOrder = keys[i - 1] < keys[i];
  // Sorted, the keys whose values need no copy are no longer the first `known`: they are named.
  const unchanged = !inOrder && known > 0 ? new Set(keys.slice(0, known)) : undefined;
  if (!inOrder) keys.sort();
  // An ordinary object literal, not Object.create(null): objects without a
  // prototype are dictionaries in V8, slower to build and to stringify (the
  // copy and the write of a 10,000-instance plan took twice as long).
  const out: Record<string, unknown> = {};
  for (let ki = 0; ki < keys.length; ki++) {
    const k = keys[ki];
    const c = k.charCodeAt(0);
    if (c >= 48 && c <= 57 && INDEX_KEY.test(k)) throw UNSORTABLE;
    const v = obj[k];
    if (k === nextKey) {
      if (next !== undefined) assign(out, k, next);
    } else if (unchanged ? unchanged.has(k) : ki < known) assign(out, k, v);
    else if (v !== undefined) assign(out, k, copyValue(v, k));
  }
  return out;
}

function assign(out: Record<string, unknown>, k: string, v: unknown): void {
  // Assigning `__proto__` would set the prototype; define it as the ordinary property it is.
  if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  else out[k] = v;
}

function write(value: unknown, indent: string | null, current: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError(`${value} has no JSON form`).within('');
      return Object.is(value, -0) ? '0' : String(value);
    case 'string':
      return JSON.stringify(value);
    case 'object': {
      const inner = indent === null ? '' : current + indent;
      const open = indent === null ? '' : '\n' + inner;
      const sep = indent === null ? ',' : ',\n' + inner;
      const close = indent === null ? '' : '\n' + current;
      const colon = indent === null ? ':' : ': ';
      if (Array.isArray(value)) {
        if (value.length === 0) return '[]';
        let out = '[' + open;
        for (let i = 0; i < value.length; i++) {
          if (i) out += sep;
          try {
            out += value[i] === undefined ? 'null' : write(value[i], indent, inner);
          } catch (e) {
            throw e instanceof CanonicalJsonError ? e.within(`[${i}]`) : e;
          }
        }
        return out + close + ']';
      }
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj).sort();
      let out = '';
      let first = true;
      for (const k of keys) {
        const v = obj[k];
        if (v === undefined) continue;
        out += (first ? '{' + open : sep) + JSON.stringify(k) + colon;
        first = false;
        try {
          out += write(v, indent, inner);
        } catch (e) {
          throw e instanceof CanonicalJsonError ? e.within(`.${k}`) : e;
        }
      }
      return first ? '{}' : out + close + '}';
    }
    default:
      throw new CanonicalJsonError(`a ${typeof value} has no JSON form`).within('');
  }
}

/**
 * The `MCL_PARAM_<NAME>` value of a parameter: strings as they are, everything
 * else as canonical JSON. The compiler writes it into a plan's program
 * environment; a backend writes it for parameters chosen at run time.
 */
export function paramEnv(v: unknown): string {
  return typeof v === 'string' ? v : canonicalJson(v);
}

/** The environment variable that carries parameter `name` to a guest's program. */
export function paramEnvName(name: string): string {
  return `MCL_PARAM_${name.toUpperCase()}`;
}
