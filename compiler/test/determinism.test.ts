// The same sources give byte-identical plans: compiling twice, listing the
// entries in another order, or handing the host its files in another order
// changes nothing. Also checks the digests are what spec/plan.md says.

import { describe, expect, test } from 'vitest';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { canonicalJson as planCanonical, digestMismatches, prettyJson } from '@mcl/plan';
import { compile, canonicalJson, planDigest } from '../src/index';
import { NodeHost } from '../src/node-host';
import { generateWorkspace } from '../bench/generate';
import { MemoryHost, readTree, REPO } from './helpers';

const files = readTree(join(REPO, 'examples', 'webstack'));

const MULTI: Record<string, string> = {
  'shop/types.mcl': 'type Item = { name: string(1..64), qty: int(1..10) }\nprotocol Store { call put(Item) -> {}\n call get({ name: string }) -> Item\n order (put | get)* }\n',
  'shop/parts.mcl': 'import shop.types.*\ncomponent Db { provide store: Store\n param size: int = 3 }\ncomponent App { require store: Store\n replicas 2 }\n',
  'main.mcl': 'import shop.parts.{Db, App}\nsystem Inner { db = Db { size = 4 }\n export store = db.store }\nsystem Main { inner = Inner\n app = App\n connect app.store -> inner.store { rate 30/min } }\n',
};

function shuffled<T>(xs: T[], seed: number): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

describe('determinism', () => {
  test('compiling twice gives identical bytes', () => {
    const a = compile(new MemoryHost(files), { entries: ['webstack.mcl'], mclcVersion: 'x' });
    const b = compile(new MemoryHost(files), { entries: ['webstack.mcl'], mclcVersion: 'x' });
    expect(a.plan).toBeDefined();
    expect(canonicalJson(a.plan)).toBe(canonicalJson(b.plan));
  });

  test('entry and file order do not matter', () => {
    const entries = Object.keys(MULTI);
    const base = compile(new MemoryHost(MULTI), { entries, mclcVersion: 'x' });
    expect(base.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(base.plan).toBeDefined();
    for (let seed = 1; seed <= 6; seed++) {
      const order = shuffled(entries, seed);
      const permuted: Record<string, string> = {};
      for (const k of shuffled(entries, seed + 100)) permuted[k] = MULTI[k];
      const r = compile(new MemoryHost(permuted), { entries: order, mclcVersion: 'x' });
      expect(canonicalJson(r.plan)).toBe(canonicalJson(base.plan));
    }
  });

  test('nested systems get dotted ids and channels through exports', () => {
    const r = compile(new MemoryHost(MULTI), { entries: ['main.mcl'], mclcVersion: 'x' });
    const plan = r.plan!;
    expect(plan.instances.map((i) => i.id)).toEqual(['app', 'inner.db']);
    expect(plan.channels.map((c) => c.id)).toEqual(['app.store->inner.db.store']);
    const ch = plan.channels[0];
    expect(ch.invariants.rate).toEqual({ per_second: 0.5, burst: 1 });
    expect(ch.invariants.order).toEqual({ transitions: [{ get: 0, put: 0 }], accepting: [0] });
    expect(plan.instances[1].params).toEqual({ size: 4 });
    expect(plan.instances[1].program.env).toEqual({ MCL_PARAM_SIZE: '4' });
    expect(plan.schemas['shop.types.Store.get.input']).toEqual({ kind: 'record', fields: [{ name: 'name', optional: false, type: { kind: 'string' } }] });
    expect(plan.schemas['shop.types.Item']).toBeDefined();
    expect(plan.templates).toEqual([{ id: 'busybox-128m-1c-2p', image: 'busybox', memory_bytes: 128 * 1024 * 1024, vcpus: 1, port_slots: 2, instance_count: 2 }]);
  });

  test('a prior state given to the compiler is recorded in the plan and covered by its digest', () => {
    const prior = { lineage: '0b3c8a52-6a43-4f7e-9d55-2f3a4f1e7c10', serial: 7 };
    const withState = compile(new MemoryHost(files), { entries: ['webstack.mcl'], mclcVersion: 'x', priorState: prior }).plan!;
    const without = compile(new MemoryHost(files), { entries: ['webstack.mcl'], mclcVersion: 'x' }).plan!;
    const sha = (s: string) => createHash('sha256').update(s).digest('hex');
    expect(withState.prior_state).toEqual(prior);
    expect(without.prior_state).toBeNull();
    expect(withState.digests.plan).toBe(sha(planCanonical({ ...withState, digests: { ...withState.digests, plan: '' } })));
    expect(withState.digests.plan).not.toBe(without.digests.plan);
    // Everything but prior_state and the plan digest is the same plan.
    expect({ ...withState, prior_state: null, digests: { ...withState.digests, plan: '' } }).toEqual({ ...without, digests: { ...without.digests, plan: '' } });
  });

  test('digests follow spec/plan.md', () => {
    const r = compile(new MemoryHost(files), { entries: ['webstack.mcl'], mclcVersion: 'x' });
    const plan = r.plan!;
    const sha = (s: string) => createHash('sha256').update(s).digest('hex');
    for (const s of plan.sources) {
      const text = s.path.startsWith('std:') ? r.program.texts.get(s.path)! : files[s.path];
      expect(s.sha256).toBe(sha(text));
    }
    expect(plan.digests.sources).toBe(sha(planCanonical(plan.sources.map((s) => [s.path, s.sha256]))));
    expect(plan.digests.invariants).toBe(sha(planCanonical({ checks: plan.checks, channels: plan.channels.map((c) => [c.id, c.invariants]), exposures: plan.exposures.map((e) => [`${e.transport}:${e.host_port}`, e.invariants]) })));
    expect(plan.digests.plan).toBe(sha(planCanonical({ ...plan, digests: { ...plan.digests, plan: '' } })));
    expect(planDigest(plan)).toBe(plan.digests.plan);
    expect(digestMismatches(plan)).toEqual([]);
    for (const i of plan.instances) {
      const { digest, ...rest } = i;
      expect(digest).toBe(sha(planCanonical(rest)));
    }
    // The spliced canonical form used for the plan digest is the plain one.
    const withEmpty = { ...plan, digests: { ...plan.digests, plan: '' } };
    expect(sha(planCanonical(withEmpty))).toBe(plan.digests.plan);
    // The compiler's canonical form is byte-for-byte the plan package's.
    expect(canonicalJson(plan)).toBe(planCanonical(plan));
  });

  test('a host hashing the plan in pieces gives the digest of the whole canonical JSON', () => {
    // Large enough for many 64 KiB pieces, so piece boundaries fall inside instances and channels.
    const ws = generateWorkspace(300);
    const host = Object.assign(new MemoryHost(ws.files), { sha256: NodeHost.prototype.sha256 });
    const r = compile(host, { entries: [ws.entry], mclcVersion: 'x' });
    const plan = r.plan!;
    expect(plan, r.diagnostics.map((d) => d.message).join('\n')).toBeDefined();
    const sha = (s: string) => createHash('sha256').update(s).digest('hex');
    const whole = planCanonical({ ...plan, digests: { ...plan.digests, plan: '' } });
    expect(whole.length).toBeGreaterThan(4 * 64 * 1024);
    expect(plan.digests.plan).toBe(sha(whole));
    // The same sources through the pure-JS digest give the same plan, digests included.
    const plain = compile(new MemoryHost(ws.files), { entries: [ws.entry], mclcVersion: 'x' }).plan!;
    expect(plain.digests).toEqual(plan.digests);
  });

  test('a changed program file changes the instance digest and the sources digest only where it should', () => {
    const a = compile(new MemoryHost(files), { entries: ['webstack.mcl'], mclcVersion: 'x' }).plan!;
    const b = compile(new MemoryHost({ ...files, 'guest/db.sh': files['guest/db.sh'] + '\n# changed\n' }), { entries: ['webstack.mcl'], mclcVersion: 'x' }).plan!;
    const digests = (p: typeof a) => Object.fromEntries(p.instances.map((i) => [i.id, i.digest]));
    const da = digests(a);
    const db = digests(b);
    expect(Object.keys(da).filter((k) => da[k] !== db[k])).toEqual(['db']);
    expect(a.digests.sources).not.toBe(b.digests.sources);
    expect(a.digests.invariants).toBe(b.digests.invariants);
  });

  test('exclude drops instances and the channels touching them', () => {
    const r = compile(new MemoryHost(files), { entries: ['webstack.mcl'], mclcVersion: 'x', exclude: ['audit'] });
    expect(r.plan!.instances.map((i) => i.id)).not.toContain('audit');
    expect(r.plan!.channels.some((c) => c.to.instance === 'audit')).toBe(false);
    expect(r.diagnostics.filter((d) => d.code === 'MCL0705')).toHaveLength(2);
  });

  test('emitPlan false checks without building a plan', () => {
    const r = compile(new MemoryHost(files), { entries: ['webstack.mcl'], mclcVersion: 'x', emitPlan: false });
    expect(r.plan).toBeUndefined();
    expect(r.diagnostics).toEqual([]);
  });
});

describe('instances and channels are built in canonical key order', () => {
  const PARAMS = `type Cfg = { zeta: int, alpha: string, mid?: map<string, int> }
component C {
  param cfg: Cfg = { zeta: 1, alpha: "a", mid: { "z": 1, "b": 2, "__proto__": 3 } }
  param tags: map<string, list<string>> = { "y": ["1"], "x": [] }
  param n: int = 3
  program { exec ["/bin/true"]  env { ZED = "1", ALPHA = "2" } }
}
system S { c = C }
`;
  const cases: [string, Record<string, string>, string][] = [
    ['webstack', files, 'webstack.mcl'],
    ['multi', MULTI, 'main.mcl'],
    ['params', { 'main.mcl': PARAMS }, 'main.mcl'],
    ['index-like keys', { 'main.mcl': PARAMS.replace('"z": 1', '"7": 1') }, 'main.mcl'],
  ];
  for (const [name, ws, entry] of cases) {
    test(name, () => {
      const r = compile(new MemoryHost(ws), { entries: [entry], mclcVersion: 'x' });
      expect(r.plan, r.diagnostics.map((d) => d.message).join('\n')).toBeDefined();
      for (const i of r.plan!.instances) {
        const { digest, ...rest } = i;
        const canonical = planCanonical(rest);
        if (name !== 'index-like keys') expect(JSON.stringify(rest)).toBe(canonical);
        // The digest too is in its place, so that the plan file is written without copying instances.
        if (name !== 'index-like keys') expect(JSON.stringify(i)).toBe(planCanonical(i));
        expect(digest).toBe(createHash('sha256').update(canonical).digest('hex'));
      }
      for (const c of r.plan!.channels) expect(JSON.stringify(c)).toBe(planCanonical(c));
      const p = r.plan!;
      expect(p.digests.invariants).toBe(createHash('sha256').update(planCanonical({ checks: p.checks, channels: p.channels.map((c) => [c.id, c.invariants]), exposures: p.exposures.map((e) => [`${e.transport}:${e.host_port}`, e.invariants]) })).digest('hex'));
      expect(planDigest(r.plan!)).toBe(r.plan!.digests.plan);
      // The lists the compiler vouches for are written without a walk: as a copy nobody vouched for is.
      expect(prettyJson(p)).toBe(prettyJson(JSON.parse(JSON.stringify(p))));
    });
  }
});

describe('instances of one component', () => {
  test('share its program argv, files and sensitive names instead of a copy each, with the same JSON', () => {
    const src = `component C {
  param token: string = "abc" sensitive
  param n: int = 1
  program { exec ["/bin/true", "x"]  env { ZED = "1" } }
}
system S { a = C  b = C { n = 2 } }
`;
    const r = compile(new MemoryHost({ 'main.mcl': src }), { entries: ['main.mcl'], mclcVersion: 'x' });
    expect(r.plan, r.diagnostics.map((d) => d.message).join('\n')).toBeDefined();
    const [a, b] = r.plan!.instances;
    expect(a.program.argv).toEqual(['/bin/true', 'x']);
    expect(a.sensitive_params).toEqual(['token']);
    expect(b.program.argv).toBe(a.program.argv);
    expect(b.program.files).toBe(a.program.files);
    expect(b.sensitive_params).toBe(a.sensitive_params);
    // What differs between them is their own.
    expect(b.program.env).not.toBe(a.program.env);
    expect(b.params).toEqual({ n: 2, token: 'abc' });
    for (const i of [a, b]) expect(JSON.stringify(i)).toBe(planCanonical(i));
  });
});
