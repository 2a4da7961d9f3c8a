// Property tests: validation never throws, whatever it is given, and what it
// accepts survives a canonical round trip unchanged.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, prettyJson, prettyJsonParts } from '../src/canonical';
import { diffPlan } from '../src/diff';
import { validatePlan, validateState } from '../src/validate';
import { stateOf, webstackPlan } from './fixtures';

/** Replaces the value at a random path of a JSON tree with another value. */
function mutate(tree: unknown, choices: number[], replacement: unknown): unknown {
  if (choices.length === 0 || tree === null || typeof tree !== 'object') return replacement;
  const [c, ...rest] = choices;
  if (Array.isArray(tree)) {
    if (tree.length === 0) return replacement;
    const copy = [...tree];
    const i = c % copy.length;
    copy[i] = mutate(copy[i], rest, replacement);
    return copy;
  }
  const keys = Object.keys(tree);
  if (keys.length === 0) return replacement;
  const k = keys[c % keys.length];
  return { ...(tree as Record<string, unknown>), [k]: mutate((tree as Record<string, unknown>)[k], rest, replacement) };
}

/** The same value with every object's keys inserted in reverse order. */
function reversedKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reversedKeys);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).reverse().map((k) => [k, reversedKeys((v as Record<string, unknown>)[k])]));
  }
  return v;
}

/** An independent, obviously correct (and slow) canonical writer to compare with. */
function reference(v: unknown): string {
  if (Array.isArray(v)) return '[' + v.map(reference).join(',') + ']';
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).filter((k) => o[k] !== undefined);
    keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return '{' + keys.map((k) => JSON.stringify(k) + ':' + reference(o[k])).join(',') + '}';
  }
  return typeof v === 'number' && Object.is(v, -0) ? '0' : JSON.stringify(v);
}

describe('properties', () => {
  it('canonical JSON matches a reference writer, ignores key order, and parses back to the value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = canonicalJson(v);
        expect(canonicalJson(reversedKeys(v))).toBe(text);
        expect(prettyJson(reversedKeys(v))).toBe(prettyJson(v));
        expect(JSON.parse(prettyJson(v))).toEqual(JSON.parse(text));
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(v)));
        expect(text).toBe(reference(v));
      }),
      { numRuns: 1000 },
    );
  });

  it('prettyJsonParts emits pieces that join to exactly prettyJson, at every splitting depth', () => {
    const joined = (v: unknown, depth: number): string => {
      const parts: string[] = [];
      prettyJsonParts(v, (p) => parts.push(p), depth);
      return parts.join('');
    };
    fc.assert(
      fc.property(fc.jsonValue(), fc.integer({ min: 0, max: 4 }), (v, depth) => {
        expect(joined(reversedKeys(v), depth)).toBe(prettyJson(v));
      }),
      { numRuns: 1000 },
    );
    // What JSON leaves out or rewrites (undefined members and entries, -0), and keys that the engine orders first.
    for (const v of [{ b: 1, a: [1, undefined, { z: [], y: {} }], c: undefined }, [undefined, -0], { '1': 2, a: 1 }, { 'é"\n': 'ü\u2028😀' }]) {
      for (const depth of [0, 1, 2, 3]) expect(joined(v, depth)).toBe(prettyJson(v));
    }
    expect(joined(webstackPlan(), 2)).toBe(prettyJson(webstackPlan()));
  });

  it('validatePlan and validateState never throw on arbitrary values', () => {
    fc.assert(
      fc.property(fc.anything(), (v) => {
        const r = validatePlan(v);
        expect(r.plan === undefined).toBe(r.errors.length > 0);
        validateState(v);
      }),
      { numRuns: 500 },
    );
  });

  it('validatePlan never throws on mutated plans, and an accepted plan round-trips through canonical JSON', () => {
    const base = webstackPlan();
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 8 }), fc.jsonValue(), (path, replacement) => {
        const doc = mutate(base, path, replacement);
        const r = validatePlan(doc);
        if (r.plan) {
          expect(JSON.parse(prettyJson(r.plan))).toEqual(JSON.parse(canonicalJson(r.plan)));
          // A valid plan can always be diffed, against nothing and against itself.
          expect(diffPlan(null, r.plan).counts.create).toBe(r.plan.instances.length);
          expect(diffPlan(stateOf(r.plan), r.plan).has_changes).toBe(false);
        }
      }),
      { numRuns: 1500 },
    );
  });
});
