// Placement over several targets (spec/hosts.md, "Placement") and the host
// policies (spec/policy.md, "Host policies").

import { describe, expect, it } from 'vitest';
import { digestMismatches } from '@mcl/plan';
import { recheckPlan } from '../src/index';
import { codes, compileText } from './helpers';
import { placeInstances } from '../src/target/place';

const COMPONENTS = `
import std.kv.{Kv}
labels { public < secret }
component Db {
  memory 256MiB
  label secret
  provide kv: Kv
  program { exec ["/bin/true"] }
}
component App {
  memory 128MiB
  label secret
  require db: Kv
  replicas 2
  program { exec ["/bin/true"] }
}
`;

const TARGETS = `
target node1 { backend kvm  memory 2GiB  vcpus 4  host "ssh://mcl@node1/srv/shop" }
target node2 { backend kvm  memory 2GiB  vcpus 4  host "ssh://mcl@node2/srv/shop" }
target node3 { backend kvm  memory 2GiB  vcpus 4 }
`;

function shop(policy = '', deploy = 'deploy Shop to [node1, node2]', extra = ''): string {
  return `${COMPONENTS}
system Shop {
  app = App
  db = Db
  cache = Db
  connect app.db -> db.kv
  policy {
${policy}
  }
}
${extra}
${TARGETS}
${deploy}
`;
}

const placement = (src: string) => {
  const r = compileText(src);
  expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return Object.fromEntries(r.plan!.instances.map((i) => [i.id, i.target]));
};

describe('placement', () => {
  it('records every target and where each instance runs', () => {
    const r = compileText(shop());
    expect(codes(r)).toEqual([]);
    const plan = r.plan!;
    expect(plan.target.name).toBe('node1');
    expect(plan.targets!.map((t) => t.name)).toEqual(['node1', 'node2']);
    // First-fit decreasing: the two 256MiB instances first (by id), then app.
    expect(Object.fromEntries(plan.instances.map((i) => [i.id, i.target]))).toEqual({ app: 'node1', cache: 'node1', db: 'node1' });
    expect(plan.checks.map((c) => c.id)).toContain('resources:memory:node2');
    expect(recheckPlan(plan)).toEqual([]);
    // Each instance's digest covers its placement and matches what apply recomputes from the file.
    expect(digestMismatches(JSON.parse(JSON.stringify(plan)))).toEqual([]);
  });

  it('records a target\'s own link address, and refuses a malformed one or one on another backend at the value', () => {
    const withLink = shop().replace('host "ssh://mcl@node2/srv/shop" }', 'host "ssh://mcl@node2/srv/shop"  link "10.9.0.2:7500" }');
    const plan = compileText(withLink).plan!;
    expect(plan.targets!.map((t) => t.link)).toEqual([undefined, '10.9.0.2:7500']);
    expect(digestMismatches(JSON.parse(JSON.stringify(plan)))).toEqual([]);
    for (const [bad, why] of [
      ['"10.9.0.2"', /`link` must be an address and port in quotes: a link is written/],
      ['"10.9.0.2:99999"', /`99999` is not a TCP port/],
      ['"bad host:7411"', /is not a host name or address/],
      ['7411', /`link` must be an address and port in quotes$/],
    ] as const) {
      const r = compileText(shop().replace('host "ssh://mcl@node2/srv/shop" }', `host "ssh://mcl@node2/srv/shop"  link ${bad} }`));
      const errors = r.diagnostics.filter((d) => d.severity === 'error');
      expect(errors.map((d) => d.code)).toEqual(['MCL0603']);
      expect(errors[0].message).toMatch(why);
    }
    const xen = compileText(shop().replace('target node2 { backend kvm  memory 2GiB  vcpus 4  host "ssh://mcl@node2/srv/shop" }', 'target node2 { backend xen  memory 2GiB  vcpus 4  host "ssh://mcl@node2/srv/shop"  link ":7411" }'));
    expect(xen.diagnostics.filter((d) => d.severity === 'error').map((d) => d.message)).toContain('`link` is a setting of backend `kvm`, not of `xen`');
  });

  it('is deterministic', () => {
    const a = compileText(shop()).plan!;
    const b = compileText(shop()).plan!;
    expect(a.digests.plan).toBe(b.digests.plan);
  });

  it('keeps a deploy to one target byte for byte as before (no targets, no instance target)', () => {
    const plan = compileText(shop('', 'deploy Shop to node1')).plan!;
    expect(plan.targets).toBeUndefined();
    expect(plan.instances.every((i) => i.target === undefined)).toBe(true);
    const listed = compileText(shop('', 'deploy Shop to [node1]')).plan!;
    expect(listed.targets).toBeUndefined();
    expect(listed.instances.map((i) => i.digest)).toEqual(plan.instances.map((i) => i.digest));
  });

  it('pins instances and systems with `place`, the longest name winning', () => {
    expect(placement(shop('', 'deploy Shop to [node1, node2] {\n  place db on node2\n}'))).toEqual({ app: 'node1', cache: 'node1', db: 'node2' });
    const nested = `${COMPONENTS}
system Store {
  db = Db
  cache = Db
  export kv = db.kv
}
system Shop {
  app = App
  store = Store
  connect app.db -> store.kv
}
${TARGETS}
deploy Shop to [node1, node2] {
  place store on node2
  place store.cache on node1
}
`;
    expect(placement(nested)).toEqual({ app: 'node1', 'store.cache': 'node1', 'store.db': 'node2' });
  });

  it('spreads what does not fit on the first target to the next', () => {
    const big = shop('', 'deploy Shop to [node1, node2, node3]').replace('memory 256MiB', 'memory 1800MiB');
    // cache (first of the two heaviest, by id) fills node1, db fills node2, app goes on to node3.
    expect(placement(big)).toEqual({ app: 'node3', cache: 'node1', db: 'node2' });
  });

  it('a moved instance is another instance (its digest changes)', () => {
    const a = compileText(shop()).plan!;
    const b = compileText(shop('', 'deploy Shop to [node1, node2] {\n  place db on node2\n}')).plan!;
    const digest = (p: typeof a, id: string) => p.instances.find((i) => i.id === id)!.digest;
    expect(digest(a, 'db')).not.toBe(digest(b, 'db'));
    expect(digest(a, 'cache')).toBe(digest(b, 'cache'));
  });

  it('names the host and what is left when an instance fits nowhere (MCL0610)', () => {
    const r = compileText(shop().replace('memory 256MiB', 'memory 4GiB'));
    const d = r.diagnostics.find((x) => x.code === 'MCL0610')!;
    expect(d.message).toMatch(/`db` .* fits on none of the targets: `node1` \(mcl@node1\) has .* left, `node2` \(mcl@node2\) has/);
    expect(r.plan).toBeUndefined();
  });

  it('reports pinned instances that overflow a target, naming it and its host', () => {
    const r = compileText(shop('', 'deploy Shop to [node1, node2] {\n  place db on node2\n  place cache on node2\n  place app on node2\n}').replace('memory 256MiB', 'memory 1500MiB'));
    const d = r.diagnostics.find((x) => x.code === 'MCL0509')!;
    expect(d.message).toContain('target `node2` on ssh://mcl@node2/srv/shop');
  });

  it('refuses targets that are the same place, mixed backends, unknown pins (MCL0611-0614)', () => {
    expect(codes(compileText(shop('', 'deploy Shop to [node1, node1]')))).toContain('MCL0612');
    expect(codes(compileText(shop('', 'deploy Shop to [node3, local]')))).toContain('MCL0612');
    expect(codes(compileText(shop('', 'deploy Shop to [node1, x]', 'target x { backend xen  memory 1GiB  vcpus 2 }')))).toContain('MCL0611');
    expect(codes(compileText(shop('', 'deploy Shop to [node1, node2] {\n  place nothing on node2\n}')))).toContain('MCL0613');
    expect(codes(compileText(shop('', 'deploy Shop to [node1, node2] {\n  place db on node3\n}')))).toContain('MCL0614');
    expect(codes(compileText(shop('', 'deploy Shop to node1 {\n  place db on node2\n}')))).toContain('MCL0614');
  });
});

describe('host policies', () => {
  it('`apart` places instances on different hosts, and fails when pinned together (MCL0560)', () => {
    expect(placement(shop('    apart db, cache'))).toEqual({ app: 'node1', cache: 'node1', db: 'node2' });
    const r = compileText(shop('    apart db, cache', 'deploy Shop to [node1, node2] {\n  place db on node1\n  place cache on node1\n}'));
    expect(codes(r)).toEqual(['MCL0560']);
    expect(r.diagnostics[0].message).toContain('`db` and `cache` must stay apart');
    // On one target nothing can be apart.
    expect(codes(compileText(shop('    apart db, cache', 'deploy Shop to node1')))).toEqual(['MCL0560']);
  });

  it('`label L only on [...]` keeps labelled instances on those targets (MCL0561)', () => {
    expect(placement(shop('    label secret only on [node2]'))).toEqual({ app: 'node2', cache: 'node2', db: 'node2' });
    const r = compileText(shop('    label secret only on [node2]', 'deploy Shop to [node1, node2] {\n  place db on node1\n}'));
    expect(codes(r)).toEqual(['MCL0561']);
    expect(codes(compileText(shop('    label secret only on [nodeX]')))).toContain('MCL0562');
  });

  it('are checked again from the plan at apply', () => {
    const plan = compileText(shop('    apart db, cache\n    label secret only on [node1, node2]')).plan!;
    expect(plan.policies!.rules).toEqual([
      { kind: 'apart', scope: '', instances: ['db', 'cache'] },
      { kind: 'label_on', scope: '', label: 'secret', targets: ['node1', 'node2'] },
    ]);
    expect(recheckPlan(plan)).toEqual([]);
    const moved = structuredClone(plan);
    moved.instances.find((i) => i.id === 'cache')!.target = moved.instances.find((i) => i.id === 'db')!.target;
    expect(recheckPlan(moved).join('\n')).toMatch(/hosts:apart:db,cache is recorded as pass but is fail/);
    const nowhere = structuredClone(plan);
    nowhere.instances[0].target = 'elsewhere';
    expect(recheckPlan(nowhere)).toContain("instance app is placed on `elsewhere`, which is not one of the plan's targets");
  });
});

describe('placeInstances', () => {
  it('places heaviest first, on the first target that fits, ties by id', () => {
    const inst = (id: string, mb: number) => ({ id, memory_bytes: mb << 20, vcpus: 1, mode: 'single', replicas: 1, template: `t${mb}` }) as never;
    const t = (name: string, mb: number) => ({ name, backend: 'kvm', memory_bytes: mb << 20, vcpus: 8, vcpu_overcommit: 1, host: `ssh://${name}` }) as never;
    const { placement: p, misfits } = placeInstances({
      instances: [inst('a', 100), inst('b', 400), inst('c', 400), inst('d', 900)],
      templates: [],
      targets: [t('n1', 1024), t('n2', 1024)],
      pins: new Map(),
      rules: { apart: [], labelOn: [] },
    });
    expect(Object.fromEntries(p)).toEqual({ d: 'n1', b: 'n2', c: 'n2', a: 'n2' });
    expect(misfits).toEqual([]);
  });
});
