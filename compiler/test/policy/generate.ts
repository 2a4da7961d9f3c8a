// Generators of large policy inputs for the benchmark and for profiling.

import { InputBuilder, type OpKind } from './build';

/** A deterministic pseudo-random generator (mulberry32), so runs are comparable. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Nested systems of 20 instances each with channels inside a system and a few
 * between systems, exposures of the front ends, and 82 rules of every kind.
 * `clean` builds a well-formed system (calls only forward inside a system,
 * one label, sends between systems), otherwise channels are random and labels
 * rise along the chain, so most rules fail with thousands of diagnostics.
 */
export function generate(instances: number, seed: number, clean: boolean): InputBuilder {
  const rnd = random(seed);
  const per = 20;
  const systems = Math.ceil(instances / per);
  const b = new InputBuilder().labels(['public', 'internal', 'secret']);
  const labels = ['public', 'internal', 'secret'];
  for (let s = 0; s < systems; s++) {
    for (let i = 0; i < per && s * per + i < instances; i++) {
      const label = clean ? 'internal' : labels[Math.min(2, Math.floor((i * 3) / per))];
      b.instance(`sys${s}.n${String(i).padStart(2, '0')}`, {
        label,
        declassifies: i % 7 === 0 ? [['secret', 'internal'], ['internal', 'public']] : [],
        ports: ['p'],
      });
    }
  }
  const ids = b.input.instances.map((x) => x.id);
  for (let k = 0; k < ids.length * 2; k++) {
    const u = Math.floor(rnd() * ids.length);
    const local = rnd() < 0.9;
    const base = u - (u % per);
    let v = local ? Math.min(ids.length - 1, base + Math.floor(rnd() * per)) : Math.floor(rnd() * ids.length);
    if (clean && v <= u) v = Math.min(ids.length - 1, u + 1 + Math.floor(rnd() * 3));
    if (v === u) continue;
    const kinds: OpKind[] = clean
      ? v - (v % per) === base ? ['call'] : ['send']
      : rnd() < 0.5 ? ['call'] : rnd() < 0.5 ? ['send'] : ['send', 'notify'];
    b.connect(`${ids[u]}.r${k}`, `${ids[v]}.p`, kinds);
  }
  // Plans list channels sorted by id.
  b.input.channels.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  for (let s = 0; s < Math.min(systems, 50); s++) b.expose(`sys${s}.n00.p`, 8000 + s);
  for (let s = 0; s < 20; s++) {
    b.noPath(`sys${s + 1}`, `sys${s}`);
    b.onlyFrom('n19', 'n18', 'n17', 'n16', 'n15', 'n14', 'n13', 'n12', 'n11', 'n10', 'n09');
    b.input.rules[b.input.rules.length - 1].scope = `sys${s}`;
    b.onlyThrough(`sys${s}.n19`, `sys${s}.n00`);
    b.noFlow('secret', `sys${s}.n00`);
  }
  b.exposedOnly(['sys0.n00.p']);
  b.budgetVcpus(instances * 2);
  return b;
}

