// Property: the line splitter's text of a line (decodeLine, which reads a long all-ASCII line as
// Latin-1 rather than decode it as UTF-8) is UTF-8's text of the same bytes, for every line: long
// and short, ASCII, a byte of 0x80 or more anywhere (first, last, alone), multi-byte characters,
// encoded surrogates, invalid and truncated UTF-8, control bytes; and the lines handed out are the
// same whichever byte the stream is split at, and a long call reaches the provider as the same
// frame whichever byte its line is split at.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ASCII_DECODE_MIN, decodeLine, LineSplitter } from '../src/lines';
import { largeBodyPorts, settle } from './helpers';

/** Bytes of a line (no newline): ASCII runs with the hard cases mixed in. */
const piece = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 600 }).map((s) => Buffer.from(s, 'latin1')) },
  { weight: 1, arbitrary: fc.constantFrom(0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xff, 0x00, 0x01, 0x1f, 0x7f, 0x0d, 0x5c, 0x22).map((b) => Buffer.from([b])) },
  { weight: 1, arbitrary: fc.constantFrom('é', '€', '😀', '\u{10ffff}', '\ufeff').map((s) => Buffer.from(s, 'utf8')) },
  // A lone surrogate and a surrogate pair encoded one half at a time (CESU-8), which UTF-8 refuses.
  { weight: 1, arbitrary: fc.constantFrom([0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf], [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80]).map((b) => Buffer.from(b)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)) },
);
const lineBytes = fc.array(piece, { maxLength: 12 }).map((ps) => Buffer.concat(ps));

/** A long ASCII line with one byte replaced by `b` at `at` (a fraction of its length). */
function longWith(b: number, at: number, len = 4096): Buffer {
  const buf = Buffer.alloc(len, 0x76);
  buf[Math.min(len - 1, Math.floor(at * len))] = b;
  return buf;
}

/** The lines of `stream` as the splitter's contract has them: split at newlines, a final `\r` removed, blank ones skipped, UTF-8. */
function referenceLines(stream: Buffer): string[] {
  const out: string[] = [];
  let from = 0;
  for (let i = 0; i < stream.length; i++) {
    if (stream[i] !== 10) continue;
    let end = i;
    if (end > from && stream[end - 1] === 13) end--;
    if (end > from) out.push(stream.subarray(from, end).toString('utf8'));
    from = i + 1;
  }
  return out;
}

describe('decodeLine', () => {
  it('gives UTF-8 text for long and short, ASCII and non-ASCII lines', () => {
    fc.assert(
      fc.property(lineBytes, fc.boolean(), fc.nat(64), (tail, long, pad) => {
        // Half of them long, so that both decodings are on the path.
        const bytes = long ? Buffer.concat([Buffer.alloc(ASCII_DECODE_MIN, 0x7a), tail]) : tail;
        const raw = Buffer.concat([Buffer.alloc(pad, 0xff), bytes, Buffer.alloc(3, 0xe2)]);
        expect(decodeLine(raw, pad, pad + bytes.length)).toBe(bytes.toString('utf8'));
      }),
      { numRuns: 3000 },
    );
  });

  it('gives UTF-8 text when a single byte of a long line is not ASCII, wherever it is', () => {
    for (const b of [0x80, 0xc3, 0xe2, 0xed, 0xf0, 0xff]) {
      for (const at of [0, 0.5, 1]) {
        for (const len of [ASCII_DECODE_MIN - 1, ASCII_DECODE_MIN, ASCII_DECODE_MIN + 1, 4096]) {
          const bytes = longWith(b, at, len);
          expect(decodeLine(bytes, 0, bytes.length)).toBe(bytes.toString('utf8'));
        }
      }
    }
  });

  it('reads only the line: a non-ASCII byte just outside it does not change the text', () => {
    const line = Buffer.alloc(ASCII_DECODE_MIN, 0x61);
    const raw = Buffer.concat([Buffer.from([0xc3]), line, Buffer.from([0xa9])]);
    expect(decodeLine(raw, 1, 1 + line.length)).toBe(line.toString('utf8'));
  });
});

describe('LineSplitter', () => {
  it('hands out the same lines whichever byte the stream is split at', () => {
    fc.assert(
      fc.property(fc.array(lineBytes, { minLength: 1, maxLength: 4 }), fc.nat(), (lines, cutSeed) => {
        // Long lines too, so that both decodings are on the path.
        const all = lines.map((l, i) => (i % 2 === 0 ? Buffer.concat([Buffer.alloc(ASCII_DECODE_MIN, 0x78), l]) : l));
        const stream = Buffer.concat(all.flatMap((l) => [l, Buffer.from('\n')]));
        const expected = referenceLines(stream);
        const cut = cutSeed % (stream.length + 1);
        const got: string[] = [];
        const s = new LineSplitter(1 << 20, { line: (text, bytes, buf, start) => {
          expect(bytes).toBe(Buffer.byteLength(buf.subarray(start, start + bytes)));
          expect(buf.subarray(start, start + bytes).toString('utf8')).toBe(text);
          got.push(text);
        }, oversize: () => { throw new Error('no line is over the limit'); } });
        s.push(stream.subarray(0, cut));
        s.push(stream.subarray(cut));
        expect(got).toEqual(expected);
      }),
      { numRuns: 1500 },
    );
  });

  it('hands out the same lines for a stream of long and short, ASCII and other lines split at every byte', () => {
    const lines = [
      Buffer.alloc(ASCII_DECODE_MIN, 0x61),
      Buffer.concat([Buffer.alloc(ASCII_DECODE_MIN - 1, 0x62), Buffer.from([0xc3, 0xa9])]),
      Buffer.from('short é\r'),
      Buffer.concat([Buffer.from([0xed, 0xa0, 0x80]), Buffer.alloc(ASCII_DECODE_MIN, 0x63), Buffer.from([0xf0, 0x9f])]),
      Buffer.concat([Buffer.alloc(ASCII_DECODE_MIN + 7, 0x64), Buffer.from('\r')]),
      Buffer.alloc(0),
      Buffer.concat([Buffer.alloc(ASCII_DECODE_MIN, 0x65), Buffer.from([0x00, 0x1f, 0x7f, 0x80])]),
    ];
    const stream = Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')]));
    const expected = referenceLines(stream);
    for (let cut = 0; cut <= stream.length; cut++) {
      const got: string[] = [];
      const s = new LineSplitter(1 << 20, { line: (text) => got.push(text), oversize: () => {} });
      s.push(stream.subarray(0, cut));
      s.push(stream.subarray(cut));
      expect(got).toEqual(expected);
    }
  });

  it('hands out the same lines when a long line comes a byte at a time', () => {
    const line = Buffer.concat([Buffer.alloc(ASCII_DECODE_MIN, 0x61), Buffer.from('é€', 'utf8'), Buffer.from([0xed, 0xa0, 0x80, 0xff])]);
    const ascii = Buffer.alloc(ASCII_DECODE_MIN + 5, 0x62);
    const stream = Buffer.concat([line, Buffer.from('\n'), ascii, Buffer.from('\r\n')]);
    const got: string[] = [];
    const s = new LineSplitter(1 << 20, { line: (text) => got.push(text), oversize: () => {} });
    for (let i = 0; i < stream.length; i++) s.push(stream.subarray(i, i + 1));
    expect(got).toEqual([line.toString('utf8'), ascii.toString('utf8')]);
  });
});

describe('a long call through the broker', () => {
  it('reaches the provider as the same frame whichever byte its line is split at, ASCII or not', async () => {
    const { broker, client, db } = await largeBodyPorts();
    try {
      for (const value of ['a'.repeat(ASCII_DECODE_MIN + 100), 'é'.repeat(600), 'b'.repeat(ASCII_DECODE_MIN) + '\u0001']) {
        const body = { key: 'k', value };
        // The value written raw (JSON.stringify would escape the control character, which JSON refuses unescaped).
        const line = Buffer.from(`{"t":"call","op":"put","id":1,"body":{"key":"k","value":"${value}"}}\n`, 'utf8');
        // Every cut for the ASCII and non-ASCII lines (a raw control character is refused, cut or not: a few cuts do).
        const cuts = value.endsWith('\u0001') ? [0, 1, line.length >> 1, line.length - 2] : [...Array(line.length + 1).keys()];
        for (const cut of cuts) {
          client.toBroker.write(line.subarray(0, cut));
          await settle();
          client.toBroker.write(line.subarray(cut));
          await settle();
          const sent = Buffer.concat(db.writes.splice(0)).toString('utf8');
          if (value.endsWith('\u0001')) {
            expect(sent).toBe('');
            continue;
          }
          const call = JSON.parse(sent) as { id: number };
          expect(sent).toBe(`{"t":"call","op":"put","id":${call.id},"body":${JSON.stringify(body)}}\n`);
          db.toBroker.write(`{"t":"reply","id":${call.id},"body":{"ok":true}}\n`);
          await settle();
          expect(Buffer.concat(client.writes.splice(0)).toString('utf8')).toBe('{"t":"reply","id":1,"body":{"ok":true}}\n');
        }
      }
      const c = broker.counters().find((x) => x.channel === 'client.rep->rep.kv')!;
      expect(c.violations.malformed ?? 0).toBe(4);
    } finally {
      await broker.close();
    }
  }, 60_000);
});
