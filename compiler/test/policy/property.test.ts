// Property tests on random graphs: the checker never throws, is independent of
// input order, and agrees with brute-force definitions of `no path`,
// `only from`, `only through` and the label lattice.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PolicyRule } from '@mcl/language';
import { checkPolicies } from '../../src/policy';
import { InputBuilder, type OpKind } from './build';

const NAMES = ['a', 'b', 'c', 'd', 'e', 's.x', 's.y', 's.t.z', 'f', 'g'];
const LABELS = ['public', 'internal', 'secret', 'org'];

interface RandomSystem {
  count: number;
  labels: (number | null)[];
  declass: [number, number, number][];
  channels: [number, number, OpKind[]][];
  exposures: number[];
  rules: [number, number, number, number][];
}

const kinds = fc.subarray<OpKind>(['call', 'send', 'notify'], { minLength: 1 });

const system: fc.Arbitrary<RandomSystem> = fc.integer({ min: 1, max: NAMES.length }).chain((count) =>
  fc.record({
    count: fc.constant(count),
    labels: fc.array(fc.option(fc.integer({ min: 0, max: LABELS.length - 1 }), { nil: null }), { minLength: count, maxLength: count }),
    declass: fc.array(fc.tuple(fc.nat(count - 1), fc.nat(LABELS.length - 1), fc.nat(LABELS.length - 1)), { maxLength: 3 }),
    channels: fc.array(fc.tuple(fc.nat(count - 1), fc.nat(count - 1), kinds), { maxLength: 3 * count }),
    exposures: fc.uniqueArray(fc.nat(count - 1), { maxLength: 2 }),
    rules: fc.array(fc.tuple(fc.nat(3), fc.nat(count + 1), fc.nat(count + 1), fc.nat(count + 1)), { maxLength: 4 }),
  }),
);

/** Rule operand: an instance, the nested system `s`, or `outside`. */
function operand(count: number, k: number): string {
  if (k < count) return NAMES[k];
  return k === count ? 's' : 'outside';
}

function build(sys: RandomSystem): InputBuilder {
  const b = new InputBuilder().labels(['public', 'internal', 'secret'], ['public', 'org']);
  for (let i = 0; i < sys.count; i++) {
    const label = sys.labels[i];
    const declassifies = sys.declass.filter((d) => d[0] === i).map((d): [string, string] => [LABELS[d[1]], LABELS[d[2]]]);
    b.instance(NAMES[i], { ...(label === null ? {} : { label: LABELS[label] }), declassifies, ports: ['p'] });
  }
  sys.channels.forEach(([from, to, ks], k) => b.connect(`${NAMES[from]}.r${k}`, `${NAMES[to]}.p`, ks));
  sys.exposures.forEach((v, k) => b.expose(`${NAMES[v]}.p`, 8000 + k));
  for (const [kind, x, y, z] of sys.rules) {
    if (kind === 0) b.noPath(operand(sys.count, x), operand(sys.count, y));
    else if (kind === 1) b.onlyFrom(operand(sys.count, x), operand(sys.count, y), operand(sys.count, z));
    else if (kind === 2) b.onlyThrough(operand(sys.count, x), operand(sys.count, y));
    else b.noFlow(LABELS[x % LABELS.length], operand(sys.count, y));
  }
  return b;
}

/** Node sets of a rule operand, by brute force over the names. */
function members(count: number, name: string): number[] {
  if (name === 'outside') return [-1];
  return NAMES.slice(0, count).flatMap((n, i) => (n === name || n.startsWith(`${name}.`) ? [i] : []));
}

/** Plain adjacency lists; -1 is outside. */
function adjacency(sys: RandomSystem): Map<number, number[]> {
  const adj = new Map<number, number[]>();
  const add = (u: number, v: number) => adj.set(u, [...(adj.get(u) ?? []), v]);
  for (const [from, to] of sys.channels) add(from, to);
  for (const v of sys.exposures) add(-1, v);
  return adj;
}

/** Nodes reachable by at least one edge from `sources`, avoiding `blocked`. */
function reach(adj: Map<number, number[]>, sources: number[], blocked: Set<number> = new Set()): Set<number> {
  const seen = new Set<number>();
  const todo = [...sources];
  while (todo.length > 0) {
    const u = todo.pop()!;
    for (const v of adj.get(u) ?? []) {
      if (seen.has(v) || blocked.has(v)) continue;
      seen.add(v);
      todo.push(v);
    }
  }
  return seen;
}

function statusOf(result: ReturnType<typeof checkPolicies>, id: string): string | undefined {
  return result.checks.find((c) => c.id === id)?.status;
}

describe('policy checker on random graphs', () => {
  it('agrees with brute force, never throws and does not depend on input order', () => {
    fc.assert(
      fc.property(system, fc.nat(), (sys, seed) => {
        const b = build(sys);
        const result = checkPolicies(b.input);
        const count = sys.count;
        const adj = adjacency(sys);
        const reachCache = new Map<number, Set<number>>();
        const reachFrom = (i: number): Set<number> => {
          let r = reachCache.get(i);
          if (!r) reachCache.set(i, (r = reach(adj, [i])));
          return r;
        };
        const ids = result.checks.map((c) => c.id);
        expect(ids).toEqual([...ids].sort());
        expect(new Set(ids).size).toBe(ids.length);

        // Shuffled input order gives the same result.
        const shuffled = structuredClone(b.input);
        const rotate = <T>(xs: T[]) => (xs.length > 0 ? [...xs.slice(seed % xs.length), ...xs.slice(0, seed % xs.length)] : xs);
        shuffled.instances = rotate(shuffled.instances).reverse();
        shuffled.channels = rotate(shuffled.channels);
        shuffled.exposures = [...shuffled.exposures].reverse();
        expect(checkPolicies(shuffled).checks).toEqual(result.checks);

        const seenRules = new Map<string, number>();
        const idOf = (base: string) => {
          const n = (seenRules.get(base) ?? 0) + 1;
          seenRules.set(base, n);
          return n === 1 ? base : `${base}#${n}`;
        };
        for (const sr of b.input.rules) {
          const rule: PolicyRule = sr.rule;
          if (rule.kind === 'NoPathRule') {
            const id = idOf(`reach:no-path:${rule.from.name}->${rule.to.name}`);
            const from = members(count, rule.from.name);
            const to = members(count, rule.to.name);
            if (rule.to.name === 'outside' || (rule.from.name !== 'outside' && from.length === 0) || to.length === 0) {
              expect(statusOf(result, id)).toBe('fail');
              continue;
            }
            const reached = reach(adj, from);
            const expected = to.some((v) => reached.has(v)) ? 'fail' : 'pass';
            expect(statusOf(result, id)).toBe(expected);
            const c = result.checks.find((x) => x.id === id)!;
            if (expected === 'fail') {
              // The counterexample is a real chain of channels from `from` to `to`.
              const steps = c.counterexample!;
              const nodes = steps.filter((s) => s.channel === undefined).map((s) => (s.instance === undefined ? -1 : NAMES.indexOf(s.instance)));
              expect(from).toContain(nodes[0]);
              expect(to).toContain(nodes[nodes.length - 1]);
              for (let i = 0; i + 1 < nodes.length; i++) expect(adj.get(nodes[i]) ?? []).toContain(nodes[i + 1]);
            }
          } else if (rule.kind === 'OnlyRule') {
            const names = rule.sources.map((s) => s.name);
            const id = idOf(`reach:${rule.target.name}-only-${rule.mode}:${names.join(',')}`);
            const target = members(count, rule.target.name);
            const sources = names.map((n) => members(count, n));
            if (rule.target.name === 'outside' || target.length === 0 || sources.some((s) => s.length === 0)) {
              expect(statusOf(result, id)).toBe('fail');
              continue;
            }
            const allowed = new Set(sources.flat());
            const inTarget = new Set(target);
            let expected = 'pass';
            if (rule.mode === 'from') {
              for (const [u, vs] of adj) for (const v of vs) if (inTarget.has(v) && !inTarget.has(u) && !allowed.has(u)) expected = 'fail';
            } else {
              // Entry instances: nothing outside their own strongly connected component leads into them.
              const entries = NAMES.slice(0, count)
                .map((_, i) => i)
                .filter((i) => {
                  const fromI = reachFrom(i);
                  const scc = new Set([i, ...[...fromI].filter((j) => j >= 0 && reachFrom(j).has(i))]);
                  return [...adj.entries()].every(([u, vs]) => vs.every((v) => !scc.has(v) || scc.has(u)));
                });
              const starts = [-1, ...entries].filter((s) => !allowed.has(s) && !inTarget.has(s));
              const reached = reach(adj, starts, allowed);
              if (target.some((v) => reached.has(v))) expected = 'fail';
            }
            expect(statusOf(result, id)).toBe(expected);
          }
        }

        // The label lattice: a naive fixed point over label sets.
        const L = LABELS;
        const leq = (x: string, y: string) => x === y || x === 'public' || (x === 'internal' && y === 'secret');
        const own = (i: number) => (sys.labels[i] === null ? 'public' : L[sys.labels[i]!]);
        const decl = (i: number, l: string) => {
          const d = sys.declass.find((x) => x[0] === i && L[x[1]] === l);
          return d ? L[d[2]] : l;
        };
        const received = NAMES.slice(0, count).map(() => new Set<string>());
        let changed = true;
        while (changed) {
          changed = false;
          for (const [from, to, ks] of sys.channels) {
            const flows: [number, number][] = [];
            if (ks.includes('call') || ks.includes('send')) flows.push([from, to]);
            if (ks.includes('call') || ks.includes('notify')) flows.push([to, from]);
            for (const [u, v] of flows) {
              for (const l of [own(u), ...received[u]]) {
                const out = decl(u, l);
                if (!received[v].has(out)) {
                  received[v].add(out);
                  changed = true;
                }
              }
            }
          }
        }
        const violates = received.some((set, i) => [...set].some((l) => !leq(l, own(i))));
        expect(statusOf(result, 'flow:lattice')).toBe(violates ? 'fail' : 'pass');

        // `no flow L -> x`: no instance of x receives L or anything above it.
        const flowIds = new Map<string, number>();
        for (const sr of b.input.rules) {
          if (sr.rule.kind !== 'NoFlowRule') continue;
          const base = `flow:no-flow:${sr.rule.label.name}->${sr.rule.to.name}`;
          const n = (flowIds.get(base) ?? 0) + 1;
          flowIds.set(base, n);
          const id = n === 1 ? base : `${base}#${n}`;
          const label = sr.rule.label.name;
          let expected: string;
          if (sr.rule.to.name === 'outside') {
            const held = (i: number) => [own(i), ...received[i]];
            expected = sys.exposures.some((v) => held(v).some((l) => leq(label, decl(v, l)))) ? 'fail' : 'pass';
          } else {
            const target = members(count, sr.rule.to.name);
            expected =
              target.length === 0 ? 'fail' : target.some((v) => [...received[v]].some((l) => leq(label, l))) ? 'fail' : 'pass';
          }
          expect(statusOf(result, id)).toBe(expected);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('never throws on malformed input', () => {
    fc.assert(
      fc.property(fc.anything(), fc.anything(), (junk, more) => {
        const b = new InputBuilder().instance('a').instance('b').connect('a.x', 'b.y');
        const input = b.input as unknown as Record<string, unknown>;
        input.channels = [...b.input.channels, junk];
        input.rules = [{ rule: more, scope: '', file: 'x.mcl' }];
        const r = checkPolicies(b.input);
        expect(Array.isArray(r.checks)).toBe(true);
        expect(Array.isArray(r.diagnostics)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});
