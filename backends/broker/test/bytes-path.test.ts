// A large body of a line without a backslash is forwarded as bytes (encodePlainBytes) rather than
// as a string: the bytes a provider receives must be exactly those of the string path, the UTF-8
// of JSON.stringify of the checked body, for every such body, and frames written both ways in one
// batch must leave in order, in one write.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encode, encodePlain, encodePlainBytes, plainLine } from '../src/frames';
import { largeBodyPorts, settle } from './helpers';

/** A JSON text as a peer might send it: any value, keys and strings drawn from the whole of Unicode. */
const jsonText = fc.oneof(fc.jsonValue({ maxDepth: 6 }), fc.jsonValue({ maxDepth: 4, stringUnit: 'binary' }), fc.jsonValue({ maxDepth: 3, stringUnit: 'grapheme' })).map((v) => JSON.stringify(v));

describe('encodePlainBytes', () => {
  it('gives the UTF-8 bytes of the text encodePlain (and JSON.stringify) gives, for every body parsed from a line without a backslash', () => {
    fc.assert(
      fc.property(jsonText, (text) => {
        fc.pre(plainLine(text));
        const body = JSON.parse(text) as unknown;
        const bytes = encodePlainBytes(body);
        expect(bytes).not.toBeNull();
        expect(bytes!.equals(Buffer.from(encodePlain(body)!, 'utf8'))).toBe(true);
        expect(bytes!.equals(Buffer.from(encode(body)!, 'utf8'))).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('keeps key order, number forms, special keys and characters outside the BMP', () => {
    const texts = [
      '{"b":1,"a":2,"10":3,"2":4,"-1":5,"01":6}',
      '{"__proto__":{"x":1},"constructor":"c","toJSON":"t"}',
      '[-0,0.1,1e21,1e-7,123456789012345678901234567890,5e-324,1.7976931348623157e308,-1.5E+3]',
      '{"":"","é":"ü 😀 \u2028\u2029","😀":["😀x","x😀"],"a":[],"b":{},"c":null,"d":true,"e":false}',
      '"just a string"',
      '42',
      'null',
    ];
    for (const t of texts) {
      const body = JSON.parse(t) as unknown;
      expect(encodePlainBytes(body)!.toString('utf8')).toBe(JSON.stringify(body));
    }
  });

  it('leaves a body nested too deeply to the text path', () => {
    const depth = 200_000;
    expect(encodePlainBytes(JSON.parse('['.repeat(depth) + ']'.repeat(depth)))).toBeNull();
  });
});

describe('calls and sends with large bodies', () => {
  it('reach the provider as the same bytes as small ones would, in order with them, in one write', async () => {
    const { broker, client, db } = await largeBodyPorts();
    // Values of up to 4096 UTF-8 bytes (the schema's bound): ASCII, two-, three- and four-byte characters, and short ones.
    const values = ['v'.repeat(4096), 'é'.repeat(2048), '€'.repeat(1365), '😀'.repeat(1024), 'short', 'x'.repeat(3000) + '\u2028'];
    const calls = values.map((value, i) => ({ t: 'call', op: 'put', id: i + 1, body: { key: `k${i}`, value } }));
    const send = { t: 'send', op: 'log', body: { message: 'm'.repeat(200) } };
    const lines = [calls[0], calls[4], calls[1], send, calls[2], calls[3], calls[5]].map((f) => JSON.stringify(f) + '\n');
    client.toBroker.write(lines.join(''));
    await settle();
    expect(broker.violations()).toEqual([]);
    expect(db.writes).toHaveLength(1);
    const got = db.writes[0].toString('utf8').split('\n').filter(Boolean);
    // What the string path writes: the body re-encoded by JSON.stringify, under the broker's ids in order.
    const expected = [calls[0], calls[4], calls[1], send, calls[2], calls[3], calls[5]].map((f, i) => {
      if (f.t === 'send') return `{"t":"send","op":"log","body":${JSON.stringify(f.body)}}`;
      const pid = [calls[0], calls[4], calls[1]].includes(f as (typeof calls)[number]) ? i + 1 : i;
      return `{"t":"call","op":"put","id":${pid},"body":${JSON.stringify(f.body)}}`;
    });
    expect(got.length).toBe(expected.length);
    for (let i = 0; i < expected.length; i++) expect(got[i] === expected[i], `frame ${i}`).toBe(true);
    expect(db.writes[0].equals(Buffer.from(expected.join('\n') + '\n', 'utf8'))).toBe(true);
    await broker.close();
  });
});
