// plainMatch visits a body's keys with for-in (no list of them built per call): for-in visits the
// own enumerable keys in Object.keys' order, then inherited enumerable ones, which encodePlain does
// not write. An inherited key is therefore no match, so the broker never forwards a text other than
// encodePlain's, even when something has made a property of every object enumerable. parseLine,
// which looks for its mark among the frame's members the same way, takes own members only (they
// come first, and the mark is always one of them where it splices; the check is kept all the same).

import { describe, expect, it } from 'vitest';
import { bodyFromLine, encodePlain, parseLine } from '../src/frames';

describe('bodyFromLine with an enumerable property inherited by every object', () => {
  it('declines a body rather than take a text with the inherited key, which the broker would not write', () => {
    const proto = Object.prototype as Record<string, unknown>;
    Object.defineProperty(proto, 'extra', { value: 1, enumerable: true, configurable: true, writable: true });
    try {
      // The line holds the inherited key too: matching it would forward a text that encodePlain (own keys) does not give.
      const body = { a: 1 };
      expect(bodyFromLine(body, '{"t":"call","op":"put","id":7,"body":{"a":1,"extra":1}}')).toBeNull();
      // Without it in the line, the body is declined all the same, and encoded (to its own keys) instead.
      expect(bodyFromLine(body, '{"t":"call","op":"put","id":7,"body":{"a":1}}')).toBeNull();
      expect(encodePlain(body)).toBe('{"a":1}');
    } finally {
      delete proto.extra;
    }
    expect(bodyFromLine({ a: 1 }, '{"t":"call","op":"put","id":7,"body":{"a":1}}')).toBe('{"a":1}');
  });

  it('takes the own keys in the order encodePlain writes them (integer-like keys first)', () => {
    const line = '{"t":"call","op":"put","id":7,"body":{"2":"b","1":"a","z":{"y":[1,{"x":null}]},"__proto__":true}}';
    const body = (JSON.parse(line) as { body: unknown }).body;
    expect(bodyFromLine(body, line)).toBeNull();
    const ordered = `{"t":"call","op":"put","id":7,"body":${encodePlain(body)}}`;
    expect(bodyFromLine(body, ordered)).toBe(encodePlain(body));
    expect(encodePlain(body)).toBe(JSON.stringify(body));
  });
});

describe('parseLine with an enumerable property inherited by every object', () => {
  it("splices the long string into the frame's own member, never into an inherited object holding the mark", () => {
    const value = 'v'.repeat(2048);
    const text = `{"t":"call","op":"put","id":7,"body":{"key":"k","value":"${value}"}}`;
    const raw = Buffer.from(text);
    const proto = Object.prototype as Record<string, unknown>;
    // An inherited member that looks like the spliced one: an object whose member is the mark.
    const decoy = { value: '~mcl-spliced~' };
    Object.defineProperty(proto, 'aaa', { value: decoy, enumerable: true, configurable: true, writable: true });
    try {
      const frame = parseLine(text, raw, 0, raw.length) as { body: { value: string } };
      expect(frame.body.value).toBe(value);
      expect(decoy.value).toBe('~mcl-spliced~');
      expect(Object.keys(frame)).toEqual(['t', 'op', 'id', 'body']);
    } finally {
      delete proto.aaa;
    }
    expect(parseLine(text, raw, 0, raw.length)).toEqual(JSON.parse(text));
  });
});
