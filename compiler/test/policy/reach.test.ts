import { describe, expect, it } from 'vitest';
import { checkPolicies } from '../../src/policy';
import { InputBuilder } from './build';

function check(result: ReturnType<typeof checkPolicies>, id: string) {
  const c = result.checks.find((x) => x.id === id);
  if (!c) throw new Error(`no check ${id}; have ${result.checks.map((x) => x.id).join(', ')}`);
  return c;
}

/** web (exposed) -> app -> db, and reports -> db: the shape of examples/broken/reachability.mcl. */
function shop(): InputBuilder {
  return new InputBuilder()
    .instance('web', { ports: ['http'] })
    .instance('app')
    .instance('reports')
    .instance('db')
    .connect('web.app', 'app.api')
    .connect('app.db', 'db.sql')
    .connect('reports.db', 'db.sql')
    .expose('web.http', 8080);
}

describe('only from', () => {
  it('passes when every channel into the target comes from a listed instance', () => {
    const b = shop();
    b.onlyFrom('db', 'app', 'reports');
    const r = checkPolicies(b.input);
    expect(check(r, 'reach:db-only-from:app,reports')).toMatchObject({ status: 'pass', kind: 'reachability' });
    expect(r.diagnostics).toEqual([]);
  });

  it('reports each channel from an unlisted instance with the channel as counterexample', () => {
    const b = shop();
    const sr = b.onlyFrom('db', 'app');
    const r = checkPolicies(b.input);
    const c = check(r, 'reach:db-only-from:app');
    expect(c.status).toBe('fail');
    expect(c.counterexample).toEqual([{ instance: 'reports' }, { channel: 'reports.db->db.sql' }, { instance: 'db' }]);
    expect(r.diagnostics).toHaveLength(1);
    const d = r.diagnostics[0];
    expect(d).toMatchObject({ code: 'MCL0501', severity: 'error', file: 'main.mcl', span: sr.rule.span });
    expect(d.message).toContain('reports.db->db.sql');
    expect(d.hint).toContain('`reports`');
    expect(d.related?.map((x) => x.span)).toEqual([
      b.input.origins.instances.reports.span,
      b.input.origins.channels['reports.db->db.sql'].span,
      b.input.origins.instances.db.span,
    ]);
  });

  it('treats an exposure of the target as a connection from outside unless `outside` is listed', () => {
    const b = shop();
    b.onlyFrom('web', 'app');
    b.onlyFrom('web', 'outside');
    const r = checkPolicies(b.input);
    const fail = check(r, 'reach:web-only-from:app');
    expect(fail.status).toBe('fail');
    expect(fail.counterexample).toEqual([{ note: 'outside, through tcp 8080 -> web.http' }, { instance: 'web' }]);
    expect(check(r, 'reach:web-only-from:outside').status).toBe('pass');
    expect(r.diagnostics.map((d) => d.code)).toEqual(['MCL0501']);
    expect(r.diagnostics[0].related?.[0].span).toEqual(b.input.origins.exposures['8080'].span);
  });

  it('ignores a self loop and channels inside a nested system target', () => {
    const b = new InputBuilder()
      .instance('loop')
      .connect('loop.self', 'loop.in', ['send'])
      .instance('shop.web')
      .instance('shop.db')
      .instance('admin')
      .connect('shop.web.db', 'shop.db.kv')
      .connect('admin.db', 'shop.db.kv');
    b.onlyFrom('loop', 'shop');
    b.onlyFrom('shop', 'admin');
    const r = checkPolicies(b.input);
    expect(check(r, 'reach:loop-only-from:shop').status).toBe('pass');
    expect(check(r, 'reach:shop-only-from:admin').status).toBe('pass');
    expect(r.diagnostics).toEqual([]);
  });
});

describe('only through', () => {
  it('passes when every path from an entry point passes through the listed instance', () => {
    const b = new InputBuilder()
      .instance('web')
      .instance('handler')
      .instance('app')
      .instance('db')
      .connect('web.h', 'handler.api')
      .connect('handler.app', 'app.orders')
      .connect('app.db', 'db.kv')
      .expose('web.http', 8080);
    b.onlyThrough('db', 'app');
    b.onlyThrough('db', 'web');
    const r = checkPolicies(b.input);
    expect(check(r, 'reach:db-only-through:app').status).toBe('pass');
    expect(check(r, 'reach:db-only-through:web').status).toBe('pass');
    expect(r.diagnostics).toEqual([]);
  });

  it('fails with the shortest bypassing path from an entry instance', () => {
    const b = shop();
    const sr = b.onlyThrough('db', 'app');
    const r = checkPolicies(b.input);
    const c = check(r, 'reach:db-only-through:app');
    expect(c.status).toBe('fail');
    expect(c.counterexample).toEqual([{ instance: 'reports' }, { channel: 'reports.db->db.sql' }, { instance: 'db' }]);
    expect(r.diagnostics).toMatchObject([{ code: 'MCL0502', span: sr.rule.span }]);
    expect(r.diagnostics[0].message).toContain('reports -> db');
  });

  it('finds paths from outside, and treats a cycle with no way in as an entry point', () => {
    const b = new InputBuilder()
      .instance('web')
      .instance('db')
      .instance('guard')
      .connect('web.db', 'db.kv')
      .connect('guard.db', 'db.kv')
      .expose('web.http', 80);
    b.onlyThrough('db', 'guard');
    let r = checkPolicies(b.input);
    expect(check(r, 'reach:db-only-through:guard').counterexample).toEqual([
      { note: 'outside, through tcp 80 -> web.http' },
      { instance: 'web' },
      { channel: 'web.db->db.kv' },
      { instance: 'db' },
    ]);
    const c = new InputBuilder()
      .instance('a')
      .instance('b')
      .instance('x')
      .connect('a.b', 'b.in')
      .connect('b.a', 'a.in')
      .connect('b.x', 'x.in');
    c.onlyThrough('x', 'a');
    c.onlyThrough('x', 'b');
    r = checkPolicies(c.input);
    // Both a and b are entry points (their cycle has no way in), so b reaches x without a.
    expect(check(r, 'reach:x-only-through:a').counterexample).toEqual([{ instance: 'b' }, { channel: 'b.x->x.in' }, { instance: 'x' }]);
    expect(check(r, 'reach:x-only-through:b').status).toBe('pass');
  });
});

describe('no path', () => {
  it('passes when there is no chain of channels', () => {
    const b = shop();
    b.noPath('db', 'web');
    b.noPath('outside', 'reports');
    const r = checkPolicies(b.input);
    expect(check(r, 'reach:no-path:db->web').status).toBe('pass');
    expect(check(r, 'reach:no-path:outside->reports').status).toBe('pass');
    expect(r.diagnostics).toEqual([]);
  });

  it('fails with the shortest path, from outside too', () => {
    const b = shop().connect('web.db', 'db.sql2');
    b.noPath('web', 'db');
    b.noPath('outside', 'db');
    const r = checkPolicies(b.input);
    expect(check(r, 'reach:no-path:web->db').counterexample).toEqual([
      { instance: 'web' },
      { channel: 'web.db->db.sql2' },
      { instance: 'db' },
    ]);
    expect(check(r, 'reach:no-path:outside->db').counterexample).toEqual([
      { note: 'outside, through tcp 8080 -> web.http' },
      { instance: 'web' },
      { channel: 'web.db->db.sql2' },
      { instance: 'db' },
    ]);
    expect(r.diagnostics.map((d) => d.code)).toEqual(['MCL0503', 'MCL0503']);
  });

  it('counts a path from an instance to itself only through a cycle', () => {
    const b = new InputBuilder().instance('a').instance('b').instance('c').connect('a.b', 'b.in').connect('b.a', 'a.in').connect('c.c', 'c.in');
    b.noPath('a', 'a');
    b.noPath('b', 'c');
    b.noPath('c', 'c');
    const r = checkPolicies(b.input);
    expect(check(r, 'reach:no-path:a->a').counterexample).toEqual([
      { instance: 'a' },
      { channel: 'a.b->b.in' },
      { instance: 'b' },
      { channel: 'b.a->a.in' },
      { instance: 'a' },
    ]);
    expect(check(r, 'reach:no-path:b->c').status).toBe('pass');
    expect(check(r, 'reach:no-path:c->c').counterexample).toEqual([{ instance: 'c' }, { channel: 'c.c->c.in' }, { instance: 'c' }]);
  });

  it('resolves names relative to the rule scope and nested systems as every instance below them', () => {
    const b = new InputBuilder()
      .instance('a.job')
      .instance('a.store')
      .instance('b.job')
      .instance('b.store')
      .instance('acct')
      .connect('a.job.results', 'a.store.kv')
      .connect('b.job.results', 'b.store.kv')
      .connect('a.job.usage', 'acct.usage', ['send'])
      .connect('b.job.usage', 'acct.usage', ['send']);
    b.noPath('a', 'b');
    b.noPath('job', 'store', 'a');
    b.noPath('store', 'job', 'a');
    let r = checkPolicies(b.input);
    expect(check(r, 'reach:no-path:a->b').status).toBe('pass');
    expect(check(r, 'reach:no-path:a.job->a.store').status).toBe('fail');
    expect(check(r, 'reach:no-path:a.store->a.job').status).toBe('pass');
    b.connect('acct.fwd', 'b.store.kv');
    r = checkPolicies(b.input);
    expect(check(r, 'reach:no-path:a->b').counterexample).toEqual([
      { instance: 'a.job' },
      { channel: 'a.job.usage->acct.usage' },
      { instance: 'acct' },
      { channel: 'acct.fwd->b.store.kv' },
      { instance: 'b.store' },
    ]);
  });
});

describe('names', () => {
  it('reports unknown names with suggestions and quick fixes', () => {
    const b = shop();
    const sr = b.onlyFrom('dbb', 'app');
    const r = checkPolicies(b.input);
    expect(check(r, 'reach:dbb-only-from:app').status).toBe('fail');
    expect(r.diagnostics).toHaveLength(1);
    const d = r.diagnostics[0];
    const ident = sr.rule.kind === 'OnlyRule' ? sr.rule.target : undefined;
    expect(d).toMatchObject({ code: 'MCL0515', span: ident?.span, hint: 'Did you mean `db`?' });
    expect(d.fixes).toEqual([{ title: 'Change to `db`', edits: [{ file: 'main.mcl', span: ident?.span, newText: 'db' }] }]);
  });

  it('lists the names of the scope when nothing is close, and rejects `outside` where it means nothing', () => {
    const b = new InputBuilder().instance('shop.web').instance('shop.db').instance('other');
    b.noPath('zzzzzz', 'db', 'shop');
    b.noPath('web', 'outside', 'shop');
    const r = checkPolicies(b.input);
    expect(r.diagnostics.map((d) => d.code)).toEqual(['MCL0515', 'MCL0518']);
    expect(r.diagnostics[0].message).toBe('`zzzzzz` is not an instance or nested system of system `shop`.');
    expect(r.diagnostics[0].hint).toBe('Use one of the names declared in system `shop`: `db`, `web`.');
    expect(check(r, 'reach:no-path:shop.web->outside').status).toBe('fail');
  });
});

describe('exposed only', () => {
  it('passes when the exposures are a subset of the list', () => {
    const b = new InputBuilder().instance('web', { ports: ['http', 'admin'] }).expose('web.http', 8080);
    b.exposedOnly(['web.http']);
    const r = checkPolicies(b.input);
    expect(check(r, 'exposure:exposed-only')).toMatchObject({ status: 'pass', kind: 'exposure' });
    expect(r.diagnostics).toEqual([]);
  });

  it('reports each extra exposure; an empty list allows none', () => {
    const b = new InputBuilder()
      .instance('web', { ports: ['http', 'admin'] })
      .expose('web.http', 8080)
      .expose('web.admin', 9090);
    const sr = b.exposedOnly(['web.http']);
    let r = checkPolicies(b.input);
    expect(check(r, 'exposure:exposed-only').counterexample).toEqual([{ instance: 'web', note: 'admin exposed on tcp 9090' }]);
    expect(r.diagnostics).toMatchObject([{ code: 'MCL0504', span: sr.rule.span }]);
    expect(r.diagnostics[0].related?.map((x) => x.span)).toEqual([b.input.origins.exposures['9090'].span, b.input.origins.instances.web.span]);

    const e = new InputBuilder().instance('web', { ports: ['http'] }).expose('web.http', 80);
    e.exposedOnly([]);
    r = checkPolicies(e.input);
    expect(check(r, 'exposure:exposed-only').status).toBe('fail');
    expect(r.diagnostics.map((d) => d.code)).toEqual(['MCL0504']);
    const none = new InputBuilder().instance('web');
    none.exposedOnly([]);
    expect(check(checkPolicies(none.input), 'exposure:exposed-only').summary).toBe('Nothing is exposed.');
  });

  it('checks only the exposures of the rule scope, flags unknown ports and stale entries', () => {
    const b = new InputBuilder()
      .instance('site.web', { ports: ['http'] })
      .instance('other', { ports: ['http'] })
      .expose('site.web.http', 80)
      .expose('other.http', 81);
    b.exposedOnly(['web.http'], 'site');
    b.exposedOnly(['other.htp', 'other.http']);
    b.exposedOnly(['web.http', 'other.http']);
    b.exposedOnly(['site.api']);
    const stale = b.exposedOnly(['site.api', 'other.http', 'other.http2']);
    b.input.exports = { 'site.api': { instance: 'site.web', port: 'http' } };
    b.input.instances.find((i) => i.id === 'other')!.ports.push({ name: 'http2', direction: 'provide', protocol: 'P', slot: 2, channels: [] });
    const r = checkPolicies(b.input);
    expect(check(r, 'exposure:exposed-only:site').status).toBe('pass');
    expect(check(r, 'exposure:exposed-only').status).toBe('fail');
    expect(check(r, 'exposure:exposed-only#2').status).toBe('fail');
    // Rules with an unknown entry report only the entry, not the exposures it might have meant.
    expect(r.diagnostics.map((d) => d.code)).toEqual(['MCL0517', 'MCL0515', 'MCL0504', 'MCL0505']);
    expect(r.diagnostics[0].hint).toBe('Did you mean `http`?');
    // `site.api` names a nested system's export: it allows the port the export leads to.
    expect(check(r, 'exposure:exposed-only#3').counterexample).toEqual([{ instance: 'other', note: 'http exposed on tcp 81' }]);
    expect(check(r, 'exposure:exposed-only#4').status).toBe('pass');
    const ref = stale.rule.kind === 'ExposedOnlyRule' ? stale.rule.ports[2] : undefined;
    expect(r.diagnostics[3]).toMatchObject({ severity: 'warning', span: ref?.span, message: '`other.http2` is listed in `exposed only` but is not exposed.' });
  });
});

describe('exposed only on nested systems', () => {
  // `site` exports `api` (site.web.http) and `console` (site.admin.http); both inner ports are named `http`.
  function site(): InputBuilder {
    const b = new InputBuilder()
      .instance('site.web', { ports: ['http'] })
      .instance('site.admin', { ports: ['http'] })
      .expose('site.web.http', 8080)
      .expose('site.admin.http', 9090);
    b.input.exports = { 'site.api': { instance: 'site.web', port: 'http' }, 'site.console': { instance: 'site.admin', port: 'http' } };
    return b;
  }

  it('names a subsystem port by its export, not by the inner port name', () => {
    const b = site();
    b.exposedOnly(['site.api']);
    const r = checkPolicies(b.input);
    expect(check(r, 'exposure:exposed-only').status).toBe('fail');
    expect(r.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual([
      'MCL0504 `site.admin.http` is exposed on tcp 9090, but `exposed only [site.api]` does not list it.',
    ]);
    expect(r.diagnostics[0].hint).toBe('Remove the exposure of `site.admin.http`, or add `site.console` to the list.');
  });

  it('rejects an inner port name instead of allowing every port of that name below the system', () => {
    const b = site();
    const sr = b.exposedOnly(['site.http']);
    const r = checkPolicies(b.input);
    expect(check(r, 'exposure:exposed-only').status).toBe('fail');
    expect(r.diagnostics.map((d) => d.code)).toEqual(['MCL0517']);
    expect(r.diagnostics[0]).toMatchObject({ message: 'System `site` has no port `http`.', span: sr.rule.kind === 'ExposedOnlyRule' ? sr.rule.ports[0].port.span : undefined });
    expect(r.diagnostics[0].hint).toBe('Its ports are `api`, `console` (a system has only the ports it exports).');
  });

  it('passes when every export that is exposed is listed, and says how to list an unexported exposure', () => {
    const b = site();
    b.exposedOnly(['site.api', 'site.console']);
    expect(checkPolicies(b.input).diagnostics).toEqual([]);
    const c = site();
    c.input.exports = { 'site.api': { instance: 'site.web', port: 'http' } };
    c.exposedOnly(['site.api']);
    const r = checkPolicies(c.input);
    expect(r.diagnostics[0].hint).toBe('Remove the exposure of `site.admin.http`, or export the port from `site` and list the export.');
  });
});

describe('summaries', () => {
  it('records the wiring and exposure checks even with no rules', () => {
    const r = checkPolicies(shop().instance('lonely').input);
    expect(check(r, 'wiring')).toEqual({
      id: 'wiring',
      kind: 'wiring',
      status: 'pass',
      summary: '3 channels between 5 instances; every other pair is isolated (default deny); 1 instance has no channel and no exposure.',
    });
    expect(check(r, 'exposure').summary).toBe('1 exposure: tcp 8080 -> web.http.');
  });

  it('sorts checks by id and numbers duplicate rules', () => {
    const b = shop();
    b.noPath('db', 'web');
    b.noPath('db', 'web');
    const r = checkPolicies(b.input);
    const ids = r.checks.map((c) => c.id);
    expect(ids).toEqual([...ids].sort());
    expect(ids).toContain('reach:no-path:db->web#2');
    expect(new Set(ids).size).toBe(ids.length);
  });
});
