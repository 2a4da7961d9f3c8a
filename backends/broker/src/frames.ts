// Frame envelopes: the closed shapes of the frames peers send (spec/broker.md,
// "Frames"), and the small text helpers the checks use. Pure: no IO, no state.

/** Longest error text a provider may send; longer ones are cut. */
export const MAX_ERROR_TEXT = 1024;

export interface Envelope {
  t: 'call' | 'send' | 'reply' | 'error' | 'notify' | 'open' | 'close' | 'create' | 'destroy' | 'list' | 'rebind';
  op?: string;
  id?: number | string;
  body?: unknown;
  error?: string;
  /** On a factory port (spec/factories.md): the created instance a call or send goes to. */
  to?: number;
  /** `destroy`: the created instance. */
  handle?: number;
  /** `create`: the parameters chosen at run time. */
  params?: Record<string, unknown>;
  /** `rebind` (late binding): the candidate the port moves to, `instance` or `instance.port`. */
  candidate?: string;
}

const ENVELOPE_KEYS: Record<Envelope['t'], { need: string[]; may: string[] }> = {
  call: { need: ['op', 'id', 'body'], may: ['to'] },
  send: { need: ['op', 'body'], may: ['to'] },
  create: { need: ['id'], may: ['params'] },
  destroy: { need: ['id', 'handle'], may: [] },
  list: { need: ['id'], may: [] },
  rebind: { need: ['id', 'candidate'], may: [] },
  reply: { need: ['id', 'body'], may: [] },
  error: { need: ['id', 'error'], may: [] },
  notify: { need: ['op', 'body'], may: [] },
  open: { need: [], may: ['id'] },
  close: { need: [], may: ['id'] },
};

/** Fields that hold the handle of a created instance. */
const HANDLE_FIELDS = ['to', 'handle'] as const;

/** Checks a frame's envelope; returns what is wrong as a string. */
export function envelope(frame: unknown): Envelope | string {
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) return 'a frame is a JSON object such as {"t":"call","op":"...","id":1,"body":{...}}';
  const f = frame as Record<string, unknown>;
  const t = f.t;
  if (typeof t !== 'string' || !Object.prototype.hasOwnProperty.call(ENVELOPE_KEYS, t)) {
    const shown = typeof t === 'string' ? JSON.stringify(t.slice(0, 32)) : t === undefined ? 'none' : typeof t;
    return `unknown frame type ${shown} (expected call, send, reply, error, notify, open, close, create, destroy, list or rebind)`;
  }
  const spec = ENVELOPE_KEYS[t as Envelope['t']];
  for (const k of spec.need) if (!(k in f)) return `a ${t} frame needs "${k}"`;
  for (const k in f) {
    if (k !== 't' && !spec.need.includes(k) && !spec.may.includes(k)) return `a ${t} frame has no field "${k}"`;
  }
  if ('op' in f && (typeof f.op !== 'string' || f.op.length === 0 || f.op.length > 128)) return `"op" must be an operation name`;
  if ('id' in f) {
    const id = f.id;
    const okNum = typeof id === 'number' && Number.isSafeInteger(id) && id >= 0;
    const okStr = typeof id === 'string' && id.length > 0 && id.length <= 64;
    if (!okNum && !okStr) return `"id" must be a non-negative integer or a string of at most 64 characters`;
  }
  for (const k of HANDLE_FIELDS) {
    if (k in f && !(typeof f[k] === 'number' && Number.isSafeInteger(f[k]) && (f[k] as number) >= 0)) return `"${k}" must be the handle of a created instance (a non-negative integer)`;
  }
  if ('candidate' in f && !(typeof f.candidate === 'string' && f.candidate.length > 0 && f.candidate.length <= 256)) return `"candidate" must name a candidate of the port, \`instance\` or \`instance.port\``;
  if ('params' in f && (typeof f.params !== 'object' || f.params === null || Array.isArray(f.params))) return `"params" must be an object of parameter values`;
  if (t === 'error') {
    if (typeof f.error !== 'string') return `"error" must be a string`;
    if (f.error.length > MAX_ERROR_TEXT) f.error = f.error.slice(0, MAX_ERROR_TEXT);
  }
  return f as unknown as Envelope;
}

/** JSON text of a checked body, or null when it is nested too deeply to encode. */
export function encode(body: unknown): string | null {
  try {
    return JSON.stringify(body);
  } catch {
    return null;
  }
}

/**
 * JSON text of a checked body parsed from a line that holds no backslash,
 * equal to `encode(body)` but without its per-character escape scan: in JSON
 * a string can hold `"`, `\`, a control character or a lone surrogate only
 * through an escape, which starts with a backslash, and a line decoded from
 * UTF-8 holds no lone surrogate either (an invalid sequence becomes U+FFFD).
 * So every string (key or value) of such a body is written as it is between
 * quotes. Keys come in the order JSON.stringify takes them (Object.keys: own
 * enumerable keys, integer-like ones first), numbers as String() writes them
 * (which is JSON.stringify's form for the finite numbers JSON.parse yields).
 * A body nested deeper than this recursion goes is handed to `encode`, so
 * that the answer, including null for the too deeply nested, is encode's.
 */
export function encodePlain(body: unknown): string | null {
  try {
    return plainJson(body);
  } catch {
    return encode(body);
  }
}

function plainJson(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return '"' + v + '"';
    case 'number':
      return String(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) {
        if (v.length === 0) return '[]';
        let s = '[' + plainJson(v[0]);
        for (let i = 1; i < v.length; i++) s += ',' + plainJson(v[i]);
        return s + ']';
      }
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o);
      if (keys.length === 0) return '{}';
      let s = '{"' + keys[0] + '":' + plainJson(o[keys[0]]);
      for (let i = 1; i < keys.length; i++) s += ',"' + keys[i] + '":' + plainJson(o[keys[i]]);
      return s + '}';
    }
    default:
      // Not a value JSON.parse yields: let JSON.stringify decide.
      throw new TypeError('not a parsed JSON value');
  }
}

/**
 * The UTF-8 bytes of `encodePlain(body)`, written piece by piece into one
 * buffer, or null when encodePlain would not answer with plainJson's text (a
 * body nested too deeply: the caller keeps the text). Forwarding a large body
 * as a string makes the engine copy the whole frame into one flat string on
 * the heap before a socket can take it (and the young generation fills, and is
 * collected, that much sooner); here every piece (a key, a string value, a
 * number's text, punctuation) is already flat and goes straight into the
 * buffer, outside the heap. The bytes are the same: each piece is encoded as
 * it would be within the whole text, and no piece ends inside a surrogate pair.
 */
export function encodePlainBytes(body: unknown): Buffer | null {
  const pieces: string[] = [];
  try {
    plainPieces(body, pieces);
  } catch {
    return null;
  }
  let n = 0;
  for (let i = 0; i < pieces.length; i++) n += Buffer.byteLength(pieces[i], 'utf8');
  const out = Buffer.allocUnsafe(n);
  let at = 0;
  for (let i = 0; i < pieces.length; i++) at += out.write(pieces[i], at, 'utf8');
  return out;
}

/** plainJson's text as the list of its pieces, in order (see encodePlainBytes). */
function plainPieces(v: unknown, out: string[]): void {
  switch (typeof v) {
    case 'string':
      out.push('"', v, '"');
      return;
    case 'number':
      out.push(String(v));
      return;
    case 'boolean':
      out.push(v ? 'true' : 'false');
      return;
    case 'object': {
      if (v === null) {
        out.push('null');
        return;
      }
      if (Array.isArray(v)) {
        out.push('[');
        for (let i = 0; i < v.length; i++) {
          if (i > 0) out.push(',');
          plainPieces(v[i], out);
        }
        out.push(']');
        return;
      }
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o);
      out.push('{');
      for (let i = 0; i < keys.length; i++) {
        out.push(i > 0 ? ',"' : '"', keys[i], '":');
        plainPieces(o[keys[i]], out);
      }
      out.push('}');
      return;
    }
    default:
      throw new TypeError('not a parsed JSON value');
  }
}

/**
 * Where the text of `encodePlain(body)` ends when `line` holds it from `at` on,
 * or -1 when it does not (or when encodePlain would not answer with plainJson's
 * text: a body nested too deeply). It compares plainJson's pieces (keys,
 * strings, numbers' text, punctuation) with the line in place, building none
 * of them but numbers' text, so a frame whose body a peer already sent in the
 * form the broker writes can go on as the bytes it came in.
 */
export function plainMatch(body: unknown, line: string, at: number): number {
  try {
    return matchPlain(body, line, at);
  } catch {
    return -1;
  }
}

/**
 * Whether `line` holds `s` at `at`. A long string is compared as a slice (the engine compares
 * flat strings a block at a time; startsWith goes a character at a time, some 70 times slower
 * on a 4 KiB value), a short one in place (a short slice is a copy).
 */
function holds(line: string, s: string, at: number): boolean {
  return s.length < 16 ? line.startsWith(s, at) : line.slice(at, at + s.length) === s;
}

const hasOwn = Object.prototype.hasOwnProperty;

/** plainJson's text compared with `line` from `at`: the end of the match, or -1 (see plainMatch). */
function matchPlain(v: unknown, line: string, at: number): number {
  if (at < 0) return -1;
  switch (typeof v) {
    case 'string':
      if (line.charCodeAt(at) !== 34 || !holds(line, v, at + 1) || line.charCodeAt(at + 1 + v.length) !== 34) return -1;
      return at + v.length + 2;
    case 'number': {
      const text = String(v);
      return line.startsWith(text, at) ? at + text.length : -1;
    }
    case 'boolean': {
      const text = v ? 'true' : 'false';
      return line.startsWith(text, at) ? at + text.length : -1;
    }
    case 'object': {
      if (v === null) return line.startsWith('null', at) ? at + 4 : -1;
      if (Array.isArray(v)) {
        if (line.charCodeAt(at) !== 91) return -1; // [
        let pos = at + 1;
        for (let i = 0; i < v.length; i++) {
          if (i > 0) {
            if (line.charCodeAt(pos) !== 44) return -1; // ,
            pos++;
          }
          pos = matchPlain(v[i], line, pos);
          if (pos < 0) return -1;
        }
        return line.charCodeAt(pos) === 93 ? pos + 1 : -1; // ]
      }
      const o = v as Record<string, unknown>;
      if (line.charCodeAt(at) !== 123) return -1; // {
      let pos = at + 1;
      let first = true;
      // The keys in plainJson's order (Object.keys) without building their list: for-in visits the own
      // enumerable keys in that same order, then inherited ones, which plainJson does not write, so one
      // of those is no match (the caller then encodes the body, which leaves it out).
      for (const k in o) {
        if (!hasOwn.call(o, k)) return -1;
        if (!first) {
          if (line.charCodeAt(pos) !== 44) return -1; // ,
          pos++;
        }
        first = false;
        if (line.charCodeAt(pos) !== 34 || !holds(line, k, pos + 1)) return -1;
        pos += k.length + 1;
        if (line.charCodeAt(pos) !== 34 || line.charCodeAt(pos + 1) !== 58) return -1; // ":
        pos = matchPlain(o[k], line, pos + 2);
        if (pos < 0) return -1;
      }
      return line.charCodeAt(pos) === 125 ? pos + 1 : -1; // }
    }
    default:
      throw new TypeError('not a parsed JSON value');
  }
}

/**
 * The text of `encodePlain(body)` taken from the frame's line, when the line ends with it and a
 * closing brace after the first `"body":` (a peer that writes its frames as the broker does), else
 * null. The answer is a slice of the line, which the engine keeps as a view of it: the broker
 * builds no string per key, value and punctuation of the body, as encodePlain would.
 */
export function bodyFromLine(body: unknown, line: string): string | null {
  const end = line.length - 1;
  if (line.charCodeAt(end) !== 125) return null; // }
  const key = line.indexOf('"body":');
  if (key < 0) return null;
  return plainMatch(body, line, key + 7) === end ? line.slice(key + 7, end) : null;
}

/**
 * The bytes of `bodyJson` (encodePlain's text of the frame's body) taken from the received line
 * itself, when the line ends with exactly that text and a closing brace, else null. The line is
 * `raw[rawStart, rawStart + bytes)` decoded, and must be ASCII (as many bytes as characters), so
 * that a character's position is its byte's. The answer is a view of `raw`, valid while `raw` is.
 */
export function receivedBody(bodyJson: string, line: string, raw: Buffer, rawStart: number, bytes: number): Buffer | null {
  const end = line.length - 1;
  const start = end - bodyJson.length;
  if (line.length !== bytes || start < 0 || line.charCodeAt(end) !== 125 || line.slice(start, end) !== bodyJson) return null;
  return raw.subarray(rawStart + start, rawStart + end);
}

/** Lines shorter than this are parsed by JSON.parse alone: the splice below pays only for a long string. */
const SPLICE_MIN_LINE = 1024;
/** The shortest final string the splice takes out of the parse (shorter ones cost JSON.parse little to scan). */
const SPLICE_MIN_STRING = 512;
/**
 * What stands in for the long string while the rest of the line is parsed. It starts with a character that may
 * not follow a string in JSON, so that it can only be parsed as the contents of a string opened just before it.
 */
const SPLICE_MARK = '~mcl-spliced~';

/**
 * `JSON.parse(line)`, the same value or the same throw, for a frame's line whose bytes are
 * `raw[rawStart, rawStart + bytes)`. JSON.parse reads a string a character at a time (some 3 us for a
 * 4 KiB value) and copies it; a frame whose body ends with one long string (`..."value":"<long>"}}`,
 * the shape of a large call or reply) is parsed without it: the rest of the line is parsed with a mark
 * in the string's place, and the mark is replaced by a slice of the line (no copy). The result is
 * JSON.parse's whenever the splice is taken:
 * - the line holds no backslash, so the string (from the last quote before the closing `"}}`) holds
 *   no escape and no quote, and is its characters as they are;
 * - the line has as many characters as bytes (each character is one byte), and no byte of the string
 *   is below 0x20 (JSON refuses a raw control character in a string), checked four bytes at a time;
 * - the rest parses with the mark in place, and the mark is a member's value (a mark right after a
 *   closed string is not JSON), the last member of an object that is the last member of the frame
 *   (the line ends there), so no duplicate key replaces it; the mark occurs nowhere before the string
 *   (searched backwards from its opening quote: no occurrence can straddle a quote), so the member
 *   found holding it is that one.
 * Anything else is parsed by JSON.parse alone.
 */
export function parseLine(line: string, raw: Buffer, rawStart: number, bytes: number, plain = plainLine(line)): unknown {
  const n = line.length;
  if (n < SPLICE_MIN_LINE || n !== bytes || line.charCodeAt(n - 1) !== 125 || line.charCodeAt(n - 2) !== 125 || line.charCodeAt(n - 3) !== 34) return JSON.parse(line);
  const end = n - 3;
  // The opening quote, found in the bytes (a byte search; the string's backwards search goes a character at a time).
  const open = raw.lastIndexOf(34, rawStart + end - 1) - rawStart;
  if (open < 0 || end - open - 1 < SPLICE_MIN_STRING || !plain || line.lastIndexOf(SPLICE_MARK, open) >= 0 || controlByte(raw, rawStart + open + 1, rawStart + end)) return JSON.parse(line);
  let frame: unknown;
  try {
    frame = JSON.parse(line.slice(0, open + 1) + SPLICE_MARK + '"}}');
  } catch {
    // Not JSON with the mark, so not JSON as it is either (the mark is a string's valid contents): JSON.parse's own error.
    return JSON.parse(line);
  }
  if (typeof frame === 'object' && frame !== null && !Array.isArray(frame)) {
    const f = frame as Record<string, unknown>;
    // Own members only, as Object.keys gives them, without building their lists: an inherited enumerable
    // property (something may have made one on every object) is none of the frame's.
    for (const k in f) {
      if (!hasOwn.call(f, k)) continue;
      const o = f[k];
      if (typeof o !== 'object' || o === null || Array.isArray(o)) continue;
      const inner = o as Record<string, unknown>;
      for (const m in inner) {
        if (!hasOwn.call(inner, m) || inner[m] !== SPLICE_MARK) continue;
        // An own member (even one named `__proto__`, which JSON.parse defines as a member) is assigned as it is.
        inner[m] = line.slice(open + 1, end);
        return frame;
      }
    }
  }
  // The mark was not where the splice needs it: the line is not of the shape it takes.
  return JSON.parse(line);
}

/**
 * Whether a byte of `raw[start, end)` is below 0x20. Four bytes at a time: `(w - 0x20202020) & ~w`
 * has a byte's high bit set for some byte of the word exactly when one of its bytes is below 0x20.
 */
export function controlByte(raw: Buffer, start: number, end: number): boolean {
  let a = start;
  while (a < end && ((raw.byteOffset + a) & 3) !== 0) {
    if (raw[a] < 32) return true;
    a++;
  }
  const words = (end - a) >> 2;
  if (words === 0) {
    for (; a < end; a++) if (raw[a] < 32) return true;
    return false;
  }
  const w = new Int32Array(raw.buffer, raw.byteOffset + a, words);
  let acc = 0;
  let i = 0;
  for (; i + 4 <= words; i += 4) {
    const x = w[i];
    const y = w[i + 1];
    const z = w[i + 2];
    const u = w[i + 3];
    acc |= ((x - 0x20202020) & ~x) | ((y - 0x20202020) & ~y) | ((z - 0x20202020) & ~z) | ((u - 0x20202020) & ~u);
  }
  for (; i < words; i++) acc |= (w[i] - 0x20202020) & ~w[i];
  if ((acc & 0x80808080) !== 0) return true;
  for (let j = a + words * 4; j < end; j++) if (raw[j] < 32) return true;
  return false;
}

/** Whether the strings of a frame parsed from `line` need no escaping when encoded again (see encodePlain). */
export function plainLine(line: string): boolean {
  return line.indexOf('\\') < 0;
}

/**
 * How many digits a non-negative safe integer has in decimal, as String writes it (never in exponent form below
 * 1e21). The powers of ten it compares with are exact in floating point.
 */
export function decimalDigits(n: number): number {
  let d = 1;
  for (let p = 10; n >= p; p *= 10) d++;
  return d;
}

/** The id of a frame whose envelope may be broken, when it is one a `denied` notice can echo. */
export function frameId(frame: unknown): number | string | undefined {
  if (typeof frame !== 'object' || frame === null) return undefined;
  const id = (frame as Record<string, unknown>).id;
  if ((typeof id === 'number' && Number.isSafeInteger(id)) || (typeof id === 'string' && id.length <= 64)) return id;
  return undefined;
}

/** A validator's path (`key: ...`, `[2]: ...`, `: ...`) as a path from the body. */
export function prefixBody(err: string): string {
  return err.startsWith(':') || err.startsWith('[') ? `body${err}` : `body.${err}`;
}

/** At most 60 characters of what a peer sent, quoted, for a violation's detail. */
export function snippet(s: string): string {
  return s.length > 60 ? JSON.stringify(s.slice(0, 60)) + '...' : JSON.stringify(s);
}
