// Whole-system checks: every rule kind on one input shaped like
// examples/webstack, with the exact list of checks the plan records.

import { describe, expect, it } from 'vitest';
import { checkPolicies } from '../../src/policy';
import { GiB, InputBuilder, MiB } from './build';

function webstack(): InputBuilder {
  const b = new InputBuilder({ name: 'laptop', memory_bytes: 4 * GiB, vcpus: 2, vcpu_overcommit: 8 })
    .labels(['public', 'internal', 'secret'])
    .instance('web', { label: 'internal', declassifies: [['internal', 'public']], ports: ['http', 'auth', 'handler'], template: 'busybox-128m-1c-4p' })
    .instance('auth', { label: 'secret', declassifies: [['secret', 'internal']], template: 'busybox-128m-1c-3p' })
    .instance('handler', { label: 'internal', replicas: 2, template: 'busybox-128m-1c-3p' })
    .instance('app', { label: 'secret', declassifies: [['secret', 'internal']], template: 'busybox-128m-1c-4p' })
    .instance('db', { label: 'secret', template: 'busybox-128m-1c-2p' })
    .instance('audit', { label: 'secret', template: 'busybox-128m-1c-2p' })
    .connect('web.auth', 'auth.auth')
    .connect('web.handler', 'handler.api')
    .connect('handler.app', 'app.orders')
    .connect('app.db', 'db.kv')
    .connect('app.audit', 'audit.logs', ['send'])
    .connect('auth.audit', 'audit.logs', ['send'])
    .expose('web.http', 8080);
  b.onlyFrom('db', 'app');
  b.onlyThrough('db', 'app');
  b.onlyFrom('auth', 'web');
  b.exposedOnly(['web.http']);
  b.noFlow('secret', 'web');
  b.noPath('handler', 'auth');
  b.budgetMemory(1 * GiB);
  b.budgetVcpus(8);
  return b;
}

describe('a whole system', () => {
  it('records every check, all passing, for the webstack', () => {
    const r = checkPolicies(webstack().input);
    expect(r.diagnostics).toEqual([]);
    expect(r.checks.map((c) => [c.id, c.kind, c.status])).toEqual([
      ['call-cycles', 'call-cycles', 'pass'],
      ['exposure', 'exposure', 'pass'],
      ['exposure:exposed-only', 'exposure', 'pass'],
      ['flow:labels', 'flow', 'pass'],
      ['flow:lattice', 'flow', 'pass'],
      ['flow:no-flow:secret->web', 'flow', 'pass'],
      ['reach:auth-only-from:web', 'reachability', 'pass'],
      ['reach:db-only-from:app', 'reachability', 'pass'],
      ['reach:db-only-through:app', 'reachability', 'pass'],
      ['reach:no-path:handler->auth', 'reachability', 'pass'],
      ['resources:budget:memory', 'resources', 'pass'],
      ['resources:budget:vcpus', 'resources', 'pass'],
      ['resources:memory', 'resources', 'pass'],
      ['resources:vcpus', 'resources', 'pass'],
      ['wiring', 'wiring', 'pass'],
    ]);
    // Three templates of 128 MiB, seven clones at 12.8 MiB + 32 MiB each.
    expect(r.resources.template_memory_bytes).toBe(3 * 128 * MiB);
    expect(r.resources.estimated_private_bytes).toBe(7 * (Math.ceil(12.8 * MiB) + 32 * MiB));
    expect(r.resources.committed_vcpus).toBe(7);
    expect(r.checks.every((c) => c.status !== 'pass' || c.counterexample === undefined)).toBe(true);
  });

  it('reports the violations a careless change introduces, each once', () => {
    const b = webstack();
    // The handler gets a direct line to the token store and the database, and the store answers back to the web tier.
    b.connect('handler.auth', 'auth.auth2').connect('handler.db', 'db.kv2').connect('web.db', 'db.kv3');
    const r = checkPolicies(b.input);
    expect(r.checks.filter((c) => c.status !== 'pass').map((c) => c.id)).toEqual([
      'flow:lattice',
      'flow:no-flow:secret->web',
      'reach:auth-only-from:web',
      'reach:db-only-from:app',
      'reach:db-only-through:app',
      'reach:no-path:handler->auth',
    ]);
    expect(r.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual([
      'MCL0501 `db only from app` is violated: channel `handler.db->db.kv2` comes from `handler`, which is not in the list.',
      'MCL0501 `db only from app` is violated: channel `web.db->db.kv3` comes from `web`, which is not in the list.',
      'MCL0502 `db only through app` is violated: the path outside -> web -> db reaches `db` without passing through `app`.',
      'MCL0501 `auth only from web` is violated: channel `handler.auth->auth.auth2` comes from `handler`, which is not in the list.',
      'MCL0508 `no flow secret -> web` is violated: db -> web.',
      'MCL0503 `no path handler -> auth` is violated: handler -> auth.',
      'MCL0507 Data labelled `secret` reaches `handler`, which is labelled internal, over channel `handler.db->db.kv2`: db -> handler.',
      'MCL0507 Data labelled `secret` reaches `web`, which is labelled internal, over channel `web.db->db.kv3`: db -> web.',
    ]);
  });

  it('is deterministic and never mutates its input', () => {
    const b = webstack();
    const before = JSON.stringify(b.input);
    const a = checkPolicies(b.input);
    expect(JSON.stringify(b.input)).toBe(before);
    expect(JSON.stringify(checkPolicies(b.input))).toBe(JSON.stringify(a));
  });

  it('checks rules of nested systems in their scope', () => {
    const b = new InputBuilder()
      .instance('shop.web')
      .instance('shop.db')
      .instance('shop.cache')
      .instance('ops')
      .connect('shop.web.db', 'shop.db.kv')
      .connect('shop.cache.db', 'shop.db.kv')
      .connect('ops.db', 'shop.db.kv');
    b.onlyFromIn('shop', 'db', 'web', 'cache');
    b.onlyFromIn('shop', 'db', 'web');
    const r = checkPolicies(b.input);
    expect(r.checks.find((c) => c.id === 'reach:shop.db-only-from:shop.web,shop.cache')?.counterexample).toEqual([
      { instance: 'ops' },
      { channel: 'ops.db->shop.db.kv' },
      { instance: 'shop.db' },
    ]);
    expect(r.checks.find((c) => c.id === 'reach:shop.db-only-from:shop.web')?.status).toBe('fail');
    expect(r.diagnostics.filter((d) => d.code === 'MCL0501')).toHaveLength(3);
  });
});
