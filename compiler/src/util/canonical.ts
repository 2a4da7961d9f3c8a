// Canonical JSON as digests are computed: object keys sorted by UTF-16 code
// units (JavaScript's default sort, as RFC 8785), no whitespace, numbers in
// ECMAScript's shortest round-trip form, `undefined` properties left out.
// This is the same form as `canonicalJson` of @mcl/plan; the compiler keeps
// its own copy because it must not throw (a non-finite number becomes null
// here, which the planner never produces).

export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  write(value, out);
  return out.join('');
}

function write(value: unknown, out: string[]): void {
  if (value === null || value === undefined) {
    out.push('null');
    return;
  }
  switch (typeof value) {
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'number':
      out.push(!Number.isFinite(value) ? 'null' : Object.is(value, -0) ? '0' : String(value));
      return;
    case 'string':
      out.push(JSON.stringify(value));
      return;
    case 'object': {
      if (Array.isArray(value)) {
        out.push('[');
        for (let i = 0; i < value.length; i++) {
          if (i) out.push(',');
          write(value[i], out);
        }
        out.push(']');
        return;
      }
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      out.push('{');
      for (let i = 0; i < keys.length; i++) {
        if (i) out.push(',');
        out.push(JSON.stringify(keys[i]), ':');
        write(obj[keys[i]], out);
      }
      out.push('}');
      return;
    }
    default:
      out.push('null');
  }
}
