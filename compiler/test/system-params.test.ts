// Parameterised systems: a system written once with `param`s and instantiated
// with arguments, checked (settings and policies) once per instantiation.

import { describe, expect, it } from 'vitest';
import { codes, compileText } from './helpers';

const PROGRAM = 'program { exec ["/bin/true"] }';

const tenant = (platform: string, policy = 'db only from app') => `
import std.kv.{Kv}
labels { public < org_a; public < org_b }
component Db { memory 96MiB provide kv: Kv param conns: int = 4 ${PROGRAM} }
component App { memory 96MiB require db: Kv ${PROGRAM} }
system Tenant {
  param tier: label
  param n: int = 1
  param quota: size = 512MiB
  app = App { replicas n; label tier }
  db = Db { label tier; conns = n; memory quota }
  connect app.db -> db.kv
  policy { ${policy} }
}
system Platform {
${platform}
}
deploy Platform
`;

describe('parameterised systems', () => {
  it('give each instantiation its own settings, labels and component parameters', () => {
    const r = compileText(tenant('  a = Tenant { tier = org_a; n = 2 }\n  b = Tenant { tier = org_b; quota = 128MiB }'));
    expect(r.diagnostics).toEqual([]);
    const rows = r.plan!.instances.map((i) => [i.id, i.label, i.memory_bytes, i.mode === 'replicas' ? i.replicas : 1, i.params]);
    expect(rows).toEqual([
      ['a.app', 'org_a', 96 * 2 ** 20, 2, {}],
      ['a.db', 'org_a', 512 * 2 ** 20, 1, { conns: 2 }],
      ['b.app', 'org_b', 96 * 2 ** 20, 1, {}],
      ['b.db', 'org_b', 128 * 2 ** 20, 1, { conns: 1 }],
    ]);
  });

  it('check the policies inside per instantiation, and say which one breaks them', () => {
    const r = compileText(tenant('  a = Tenant { tier = org_a; n = 2 }\n  b = Tenant { tier = org_b; quota = 128MiB }', 'budget memory quota'));
    expect(r.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual([
      'MCL0512 System `a` commits 704MiB of guest memory, over its budget of 512MiB.',
      'MCL0512 System `b` commits 224MiB of guest memory, over its budget of 128MiB.',
    ]);
  });

  it('report a wrong argument where it is written', () => {
    const src = tenant('  a = Tenant { tier = org_x; n = "two" }\n  b = Tenant { replicas 2; nn = 3 }\n  c = Tenant { tier = org_a; n = 0; quota = 5 }');
    const r = compileText(src);
    expect(r.diagnostics.map((d) => `${d.code} ${src.slice(d.span.start, d.span.end)} ${d.message}`)).toEqual([
      'MCL0210 org_x unknown label `org_x`',
      'MCL0311 "two" `n` must be an integer, not `"two"`',
      'MCL0315 b `b` does not set the required parameter `tier` of system `Tenant`',
      'MCL0413 replicas 2 `b` is a system: settings apply to component instances',
      'MCL0314 nn system `Tenant` has no parameter `nn`',
      'MCL0412 0 replicas must be between 1 and 1024, not 0',
      'MCL0311 5 `quota` must be a size such as `256MiB`, not `5`',
    ]);
  });

  it('pass arguments through to nested parameterised systems', () => {
    const src = tenant('  param t: label = org_b\n  x = Tenant { tier = t; n = 3 }').replace('deploy Platform', 'system Top { p = Platform { t = org_a } }\ndeploy Top');
    const r = compileText(src);
    expect(r.diagnostics).toEqual([]);
    expect(r.plan!.instances.map((i) => [i.id, i.label, i.mode === 'replicas' ? i.replicas : 1])).toEqual([
      ['p.x.app', 'org_a', 3],
      ['p.x.db', 'org_a', 1],
    ]);
  });

  it('cannot deploy a system whose parameter has no default', () => {
    const r = compileText(tenant('  a = Tenant { tier = org_a }').replace('deploy Platform', 'deploy Tenant'));
    expect(codes(r)).toEqual(['MCL0315']);
    expect(r.diagnostics[0].message).toBe('system `Tenant` is deployed, but its parameter `tier` has no default');
  });

  it('use a name in a setting of a component as an error, not as a parameter', () => {
    const r = compileText(`component C { memory m ${PROGRAM} }\nsystem S { c = C }\n`);
    expect(codes(r)).toEqual(['MCL0412']);
  });

  it('take a record argument whose reserved-word key is quoted, and say "reserved word" with the fix for a bare one', () => {
    const src = (key: string) => `
type Ev = { "type": string, id: int }
component Job { memory 96MiB param ev: Ev ${PROGRAM} }
system Tenant { param e: Ev
  j = Job { ev = e } }
system Main { t = Tenant { e = { ${key}: "x", id: 1 } } }
deploy Main
`;
    const ok = compileText(src('"type"'));
    expect(ok.diagnostics).toEqual([]);
    expect(ok.plan!.instances[0].params).toEqual({ ev: { type: 'x', id: 1 } });
    const bare = compileText(src('type'));
    expect(bare.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual(['MCL0130 `type` is a reserved word and cannot be a key as it stands']);
    expect(bare.diagnostics[0].fixes?.[0].edits[0].newText).toBe('"type"');
  });
});
