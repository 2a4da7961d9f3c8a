// A body that a peer sent exactly as the broker would write it is taken from the frame's line
// (bodyFromLine) rather than encoded again, and a large one goes on as the bytes it came in
// (receivedBody). Neither shortcut may change a byte: whatever line they are given, they either
// decline (null) or give JSON.stringify's text of the parsed body (its UTF-8), which is what the
// broker writes otherwise. The checks do not depend on them (the text is the same), so they
// cannot change what is admitted or refused either.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { bodyFromLine, encode, encodePlain, plainLine, plainMatch, receivedBody } from '../src/frames';
import { largeBodyPorts, settle } from './helpers';

/** A body as a peer might send it: any JSON value, strings from ASCII, the whole of Unicode or long runs. */
const bodyValue = fc.oneof(
  fc.jsonValue({ maxDepth: 5 }),
  fc.jsonValue({ maxDepth: 3, stringUnit: 'binary' }),
  fc.record({ key: fc.string({ minLength: 1, maxLength: 8 }), value: fc.string({ minLength: 16, maxLength: 64 }).map((s) => s.repeat(40)) }),
);

/**
 * The body's text in one of the forms JSON allows for the same value: the broker's own (compact),
 * indented, with spaces after separators, with a number written otherwise, with a key repeated,
 * or with one character changed (kept only when the line still parses).
 */
function variants(body: unknown): fc.Arbitrary<string> {
  const compact = JSON.stringify(body);
  return fc.oneof(
    fc.constant(compact),
    fc.constant(JSON.stringify(body, null, 1)),
    fc.constant(compact.replace(/([,:])(?=[^"]*(?:"[^"]*"[^"]*)*$)/g, '$1 ')),
    fc.constant(compact.replace(/(?<=[:[,])(\d+)(?=[,\]}])/, '$1.0')),
    fc.constant(compact.replace(/(?<=[:[,])(\d)(\d*)(?=[,\]}])/, (_m, a: string, b: string) => `${a}.${b}e${b.length}`)),
    fc.constant(compact.startsWith('{"') ? compact.replace(/^\{("[^"]*":)/, '{$1 0,$1') : compact),
    fc.tuple(fc.nat(), fc.constantFrom(' ', '0', '1', 'e', '"', ',', '}', ']', 'a')).map(([i, c]) => {
      const at = i % (compact.length + 1);
      return compact.slice(0, at) + c + compact.slice(at + 1);
    }),
  );
}

/**
 * A call frame around a body text: the body last (as the broker writes it), elsewhere, or followed
 * by a field of the same shape whose letters differ (what a check of the shape alone would take).
 */
const frameAround = (bodyText: string, where: number) =>
  where === 0
    ? `{"t":"call","op":"put","id":7,"body":${bodyText}}`
    : where === 1
      ? `{"t":"call","body":${bodyText},"op":"put","id":7}`
      : `{"t":"call","op":"put","id":7,"body":${bodyText},"x":${bodyText.replace(/[a-y]/g, 'z')}}`;

describe('bodyFromLine and receivedBody', () => {
  it('decline, or give exactly the text and bytes the broker would encode, for every line they are given', () => {
    fc.assert(
      fc.property(
        bodyValue.chain((b) => fc.tuple(fc.constant(b), variants(b), fc.integer({ min: 0, max: 2 }))),
        ([, text, where]) => {
          // As the broker gets it: decoded from UTF-8 (which holds no lone surrogate; an invalid sequence is U+FFFD).
          const line = Buffer.from(frameAround(text, where), 'utf8').toString('utf8');
          let frame: { body: unknown };
          try {
            frame = JSON.parse(line) as { body: unknown };
          } catch {
            return; // Not JSON: refused before any body is looked at.
          }
          fc.pre(plainLine(line));
          const expected = encode(frame.body)!;
          const fromLine = bodyFromLine(frame.body, line);
          if (fromLine !== null) expect(fromLine).toBe(expected);
          const bodyJson = fromLine ?? encodePlain(frame.body)!;
          const raw = Buffer.from('junk before\n' + line + '\r\n', 'utf8');
          const got = receivedBody(bodyJson, line, raw, 12, Buffer.byteLength(line));
          if (got !== null) expect(got.equals(Buffer.from(expected, 'utf8'))).toBe(true);
          // The broker's own form of a body, sent last, is always taken as it came (as bytes when it is ASCII).
          if (where === 0 && text === expected) {
            expect(fromLine).not.toBeNull();
            if (Buffer.byteLength(line) === line.length) expect(got).not.toBeNull();
          }
        },
      ),
      { numRuns: 4000 },
    );
  });

  it('declines a body whose text differs from the broker\'s form in ways that keep its length', () => {
    const cases = [
      ['{"b":1,"1":2}', '{"t":"call","op":"put","id":7,"body":{"b":1,"1":2}}'], // integer-like keys come first once parsed
      ['{"a":100}', '{"t":"call","op":"put","id":7,"body":{"a":1e2}}'], // another way to write the same number
      ['"call"', '{"t":"call","id":7,"body":"abcd","op":"call"}'], // the body is not last
      ['{"a":1}', '{"t":"call","op":"put","id":7,"body":{"a":2,"a":1}}'], // a repeated key
    ];
    for (const [, line] of cases) {
      const body = (JSON.parse(line) as { body: unknown }).body;
      expect(bodyFromLine(body, line)).toBeNull();
      expect(receivedBody(encodePlain(body)!, line, Buffer.from(line), 0, line.length)).toBeNull();
    }
    expect(plainMatch({ a: 100 }, '{"a":1e2}', 0)).toBe(-1);
    expect(plainMatch('abcd', '"call"', 0)).toBe(-1);
    const text = `{"a":"${'x'.repeat(40)}"}`;
    expect(plainMatch({ a: 'x'.repeat(40) }, text, 0)).toBe(text.length);
  });

  it('takes the text of a line that is not ASCII, but not its bytes, whose positions are not its characters\'', () => {
    const line = `{"t":"call","op":"put","id":7,"body":{"key":"é","value":"${'v'.repeat(3000)}"}}`;
    const body = (JSON.parse(line) as { body: unknown }).body;
    expect(bodyFromLine(body, line)).toBe(JSON.stringify(body));
    expect(receivedBody(encodePlain(body)!, line, Buffer.from(line), 0, Buffer.byteLength(line))).toBeNull();
  });
});

describe('large calls through the broker', () => {
  it('reach the provider as JSON.stringify of the checked body, however the requester wrote them, and are refused alike', async () => {
    const { broker, client, db } = await largeBodyPorts();
    const entry = fc.record({
      key: fc.stringMatching(/^[a-z0-9]{1,12}$/),
      value: fc.oneof(fc.string({ minLength: 8, maxLength: 40 }), fc.string({ minLength: 8, maxLength: 40, unit: 'binary' })).map((s) => s.repeat(Math.ceil(2100 / s.length)).slice(0, 4000)),
    });
    const forms = (e: { key: string; value: string }) =>
      fc.constantFrom(
        `{"t":"call","op":"put","id":ID,"body":${JSON.stringify(e)}}`,
        `{"t":"call","op":"put","id":ID,"body":{"value":${JSON.stringify(e.value)},"key":${JSON.stringify(e.key)}}}`,
        `{"t":"call","op":"put","id":ID,"body": ${JSON.stringify(e)} }`,
        `{"t":"call","body":${JSON.stringify(e)},"op":"put","id":ID}`,
        `{"t":"call","op":"put","id":ID,"body":{"key":"dup","key":${JSON.stringify(e.key)},"value":${JSON.stringify(e.value)}}}`,
        `{"t":"call","op":"put","id":ID,"body":${JSON.stringify({ ...e, extra: 1 })}}`,
      );
    let id = 0;
    await fc.assert(
      fc.asyncProperty(entry.chain((e) => fc.tuple(fc.constant(e), forms(e))), async ([, form]) => {
        id++;
        const line = form.replace('"id":ID', `"id":${id}`);
        const body = (JSON.parse(line) as { body: { key: string; value: string } }).body;
        const before = broker.violations().length;
        db.writes.length = 0;
        client.toBroker.write(line + '\n');
        // Until the frame was forwarded or refused (a few turns of the event loop, or 50 ms when the
        // refusals so far put the requester over its violation budget and it is read later).
        const until = Date.now() + 2000;
        while (Date.now() < until && broker.violations().length === before && !Buffer.concat(db.writes).includes(10)) await new Promise((r) => setTimeout(r, 1));
        const refused = broker.violations().length > before;
        // Refused exactly when the schema refuses the body (an unknown field, a value over 4096 bytes), whatever its form.
        expect(refused, JSON.stringify(broker.violations().slice(before))).toBe('extra' in body || Buffer.byteLength(body.value) > 4096);
        if (refused) {
          expect(db.writes).toHaveLength(0);
          return;
        }
        const sent = Buffer.concat(db.writes).toString('utf8');
        const pid = /^\{"t":"call","op":"put","id":(\d+),"body":/.exec(sent)![1];
        expect(sent).toBe(`{"t":"call","op":"put","id":${pid},"body":${JSON.stringify(body)}}\n`);
        // Answer it, so that in-flight calls do not pile up.
        db.toBroker.write(`{"t":"reply","id":${pid},"body":{"ok":true}}\n`);
        await settle();
      }),
      { numRuns: 300 },
    );
    await broker.close();
  });
});
