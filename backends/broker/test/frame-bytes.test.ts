// The bytes the broker counts for the calls and sends it writes to a provider are the bytes on the
// wire: the size is counted from the frame's parts (the head's constant parts, the operation's
// name, the call id's digits, the body), so it must stay equal to the written frame's for every id
// (each digit count), small bodies written as text and large ones written as bytes.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decimalDigits } from '../src/frames';
import { largeBodyPorts, settle } from './helpers';

describe('decimalDigits', () => {
  it("is the length of String's decimal text for every safe integer", () => {
    const edges = [0, 1, 9, 10, 11, 99, 100, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER - 1];
    for (let p = 1; p <= 1e16; p *= 10) edges.push(p - 1, p, p + 1);
    for (const n of edges) if (Number.isSafeInteger(n)) expect(decimalDigits(n)).toBe(String(n).length);
    fc.assert(fc.property(fc.maxSafeNat(), (n) => decimalDigits(n) === String(n).length), { numRuns: 5000 });
  });
});

describe('bytes counted to the provider', () => {
  it('are the bytes written, for call ids of every digit count and bodies in text and in bytes', async () => {
    const { broker, client, db } = await largeBodyPorts();
    let written = 0;
    let frames = 0;
    const take = (): string[] => {
      const lines: string[] = [];
      for (const w of db.writes.splice(0)) {
        written += w.length;
        lines.push(...w.toString('utf8').split('\n').filter((l) => l.length > 0));
      }
      frames += lines.length;
      return lines;
    };
    // Calls (the ids given to the provider run from 1 to three digits), some with a body large enough to go on as bytes;
    // each is answered before the next, so that the in-flight bound is never reached.
    for (let i = 1; i <= 120; i++) {
      const value = i % 7 === 0 ? 'w'.repeat(3000 + i) : `v${i}`;
      client.toBroker.write(JSON.stringify({ t: 'call', op: 'put', id: i, body: { key: `k${i}`, value } }) + '\n');
      await settle();
      for (const line of take()) db.toBroker.write(JSON.stringify({ t: 'reply', id: (JSON.parse(line) as { id: number }).id, body: { ok: true } }) + '\n');
    }
    await settle();
    take();
    // A send.
    client.toBroker.write(JSON.stringify({ t: 'send', op: 'log', body: { message: 'hello' } }) + '\n');
    await settle();
    take();
    const c = broker.counters().find((x) => x.channel === 'client.rep->rep.kv')!;
    expect(c.violations_total).toBe(0);
    expect(frames).toBe(121);
    expect(c.frames_to_provider).toBe(121);
    expect(c.bytes_to_provider).toBe(written);
    await broker.close();
  });
});
