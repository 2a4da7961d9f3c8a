// The plan's digests (src/digest.ts) and the pure-JS SHA-256 they default to.

import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../src/canonical';
import { digestMismatches, instanceJsonWithDigest, planDigest, planDigestParts, type Sha256 } from '../src/digest';
import { sha256Hex } from '../src/sha256';
import type { Plan } from '../src/types';
import { instance, webstackPlan, withDigests } from './fixtures';

const native: Sha256 = (t) => {
  const h = createHash('sha256');
  for (const p of typeof t === 'string' ? [t] : t) h.update(p, 'utf8');
  return h.digest('hex');
};

const digested = (): Plan => withDigests(webstackPlan());

describe('sha256Hex', () => {
  it('agrees with node:crypto on known vectors and random texts', () => {
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 300 }), (s) => {
        expect(sha256Hex(s)).toBe(native(s));
      }),
      { numRuns: 300, seed: 1 },
    );
    for (const n of [55, 56, 63, 64, 65, 119, 120, 1000]) expect(sha256Hex('x'.repeat(n))).toBe(native('x'.repeat(n)));
  });
});

describe('plan digests', () => {
  it('are over the canonical JSON spec/plan.md names, whichever hash computes them', () => {
    const plan = digested();
    const sha = (s: string) => native(s);
    expect(plan.digests.plan).toBe(sha(canonicalJson({ ...plan, digests: { ...plan.digests, plan: '' } })));
    expect(plan.digests.invariants).toBe(sha(canonicalJson({ channels: plan.channels.map((c) => [c.id, c.invariants]), exposures: plan.exposures.map((e) => [`${e.transport}:${e.host_port}`, e.invariants]), checks: plan.checks })));
    expect(plan.digests.sources).toBe(sha(canonicalJson(plan.sources.map((s) => [s.path, s.sha256]))));
    for (const i of plan.instances) {
      const { digest, ...rest } = i;
      expect(digest).toBe(sha(canonicalJson(rest)));
      expect(instanceJsonWithDigest(canonicalJson(rest), digest)).toBe(canonicalJson(i));
    }
    expect(planDigest(plan, native)).toBe(plan.digests.plan);
    expect(digestMismatches(plan, native)).toEqual([]);
  });

  it('hash the same text in pieces as whole, with or without the parts a compiler already wrote', () => {
    const plan = digested();
    // Enough instances for several 64 KiB pieces.
    plan.instances = Array.from({ length: 400 }, (_, n) => instance(`i${String(n).padStart(3, '0')}`, { params: { note: 'x'.repeat(300) } }));
    const whole = canonicalJson({ ...plan, digests: { ...plan.digests, plan: '' } });
    const parts = planDigestParts(plan);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.join('')).toBe(whole);
    const known = { instances: new Map(plan.instances.map((i) => [i.id, canonicalJson(i)])), channels: plan.channels.map((c) => canonicalJson(c)) };
    expect(planDigestParts(plan, known).join('')).toBe(whole);
    expect(planDigest(plan, native)).toBe(native(whole));
  });

  it('name every part that does not match', () => {
    const plan = digested();
    plan.instances[0].memory_bytes *= 2;
    plan.channels[0].invariants.rate = null;
    plan.images[0].kernel = 'other';
    plan.sources[0].sha256 = 'f'.repeat(64);
    expect(digestMismatches(plan, native)).toEqual([
      'digests.plan does not match the plan',
      "digests.invariants does not match the channels' and exposures' invariants and the checks",
      'digests.sources does not match the list of sources',
      `the digest of image \`${plan.images[0].name}\` does not match it`,
      `the digest of instance \`${plan.instances[0].id}\` does not match it`,
    ]);
  });
});
