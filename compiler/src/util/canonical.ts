// Canonical JSON as digests are computed: object keys sorted by UTF-16 code
// units (JavaScript's default sort, as RFC 8785), no whitespace, numbers in
// ECMAScript's shortest round-trip form, `undefined` properties left out.
// This is the same form as `canonicalJson` of @mcl/plan (a test checks they
// agree byte for byte); the compiler keeps its own copy because it must not
// throw. The fast path is the native serializer with a replacer that only
// reorders keys (JSON.stringify already prints -0 as 0, drops undefined
// properties and turns non-finite numbers into null). Objects whose keys look
// like array indices cannot be reordered that way (engines enumerate them
// first, in numeric order), so such values take the slower hand-written path.

const INDEX_KEY = /^(?:0|[1-9]\d{0,9})$/;

let sawIndexKey = false;

function sortKeys(this: unknown, _key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  let sorted = true;
  for (let i = 0; i < keys.length; i++) {
    if (INDEX_KEY.test(keys[i])) sawIndexKey = true;
    if (i > 0 && keys[i - 1] > keys[i]) sorted = false;
  }
  if (sorted) return value;
  keys.sort();
  // A null prototype keeps a `__proto__` key an ordinary property.
  const out: Record<string, unknown> = Object.create(null);
  for (const k of keys) out[k] = obj[k];
  return out;
}

export function canonicalJson(value: unknown): string {
  sawIndexKey = false;
  const fast = JSON.stringify(value, sortKeys) ?? 'null';
  if (!sawIndexKey) return fast;
  const out: string[] = [];
  write(value, out);
  return out.join('');
}

function write(value: unknown, out: string[]): void {
  if (value === null || value === undefined || typeof value === 'function' || typeof value === 'symbol') {
    out.push('null');
    return;
  }
  if (typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    write((value as { toJSON: () => unknown }).toJSON(), out);
    return;
  }
  switch (typeof value) {
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'number':
      out.push(Number.isFinite(value) ? JSON.stringify(value) : 'null');
      return;
    case 'string':
      out.push(JSON.stringify(value));
      return;
    case 'bigint':
      out.push('null');
      return;
    default:
      break;
  }
  if (Array.isArray(value)) {
    out.push('[');
    for (let i = 0; i < value.length; i++) {
      if (i) out.push(',');
      const v = value[i];
      write(v === undefined || typeof v === 'function' || typeof v === 'symbol' ? null : v, out);
    }
    out.push(']');
    return;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined && typeof obj[k] !== 'function' && typeof obj[k] !== 'symbol')
    .sort();
  out.push('{');
  for (let i = 0; i < keys.length; i++) {
    if (i) out.push(',');
    out.push(JSON.stringify(keys[i]), ':');
    write(obj[keys[i]], out);
  }
  out.push('}');
}
