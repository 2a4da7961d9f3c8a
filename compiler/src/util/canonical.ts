// Canonical JSON as digests are computed: object keys sorted by UTF-16 code
// units (JavaScript's default sort, as RFC 8785), no whitespace, numbers in
// ECMAScript's shortest round-trip form, `undefined` properties left out.
// This is the same form as `canonicalJson` of @mcl/plan (a test checks they
// agree byte for byte); the compiler keeps its own copy because it must not
// throw, and builds it with the native serializer for speed: the replacer
// only reorders keys, and JSON.stringify already prints -0 as 0, drops
// undefined properties and turns non-finite numbers into null.

function sortKeys(this: unknown, _key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  let sorted = true;
  for (let i = 1; i < keys.length; i++) {
    if (keys[i - 1] > keys[i]) {
      sorted = false;
      break;
    }
  }
  if (sorted) return value;
  keys.sort();
  const out: Record<string, unknown> = {};
  for (const k of keys) out[k] = obj[k];
  return out;
}

export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, sortKeys) ?? 'null';
}
