// Canonical JSON: the one way plans, states and digests are serialised.
//
// Object keys are sorted by UTF-16 code units (the order of JavaScript's
// default sort, as in RFC 8785), numbers use ECMAScript's shortest
// round-trip form (so 1.0 prints as 1 and -0 as 0), and properties whose
// value is `undefined` are left out. The same value therefore always gives
// the same bytes, which is what makes plan digests reproducible.

export class CanonicalJsonError extends Error {
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(`${message} at ${path}`);
  }
}

/** Compact canonical JSON (no whitespace): the form digests are computed over. */
export function canonicalJson(value: unknown): string {
  return write(value, '$', null, '');
}

/** Canonical JSON indented by two spaces, with a trailing newline: the form written to files. */
export function prettyJson(value: unknown): string {
  return write(value, '$', '  ', '') + '\n';
}

function write(value: unknown, path: string, indent: string | null, current: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError(`${value} has no JSON form`, path);
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
        const items = value.map((v, i) => (v === undefined ? 'null' : write(v, `${path}[${i}]`, indent, inner)));
        return '[' + open + items.join(sep) + close + ']';
      }
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      if (keys.length === 0) return '{}';
      const parts = keys.map((k) => JSON.stringify(k) + colon + write(obj[k], `${path}.${k}`, indent, inner));
      return '{' + open + parts.join(sep) + close + '}';
    }
    default:
      throw new CanonicalJsonError(`a ${typeof value} has no JSON form`, path);
  }
}
