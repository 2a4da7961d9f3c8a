// `x only to a, b`: where an instance (or every instance of a label) may
// send, compiled end to end from text. The rule covers components added
// later: a new channel out of `x` to an unlisted instance is refused at plan
// time, with the channel as witness, and `mclc apply` checks it again from
// the plan's recorded rules.

import { describe, expect, it } from 'vitest';
import { recheckPlan } from '../src/index';
import { codes, compileText } from './helpers';

const PROGRAM = 'program { exec ["/bin/true"] }';

const source = (extra: string, rule: string) => `
import std.kv.{Kv}
component App { memory 96MiB label secret; require db: Kv; require audit: Kv optional; require cache: Kv optional; ${PROGRAM} }
component Store { memory 96MiB label secret; provide kv: Kv; ${PROGRAM} }
component Cache { memory 96MiB label secret; provide kv: Kv; ${PROGRAM} }
system S {
  app = App
  db = Store
  audit = Store
  connect app.db -> db.kv
  connect app.audit -> audit.kv
  ${extra}
  policy { ${rule} }
}
`;

describe('only to', () => {
  it('passes when every channel out of the instance goes to a listed one', () => {
    const r = compileText(source('', 'app only to db, audit'));
    expect(r.diagnostics).toEqual([]);
    expect(r.plan!.checks.find((c) => c.id === 'reach:app-only-to:db,audit')).toMatchObject({ status: 'pass' });
    expect(r.plan!.policies!.rules).toContainEqual({ kind: 'only', scope: '', mode: 'to', target: 'app', sources: ['db', 'audit'] });
  });

  it('refuses a component added later that the instance sends to, with the channel as witness', () => {
    const r = compileText(source('cache = Cache\n  connect app.cache -> cache.kv', 'app only to db, audit'));
    expect(codes(r)).toEqual(['MCL0530']);
    const d = r.diagnostics[0];
    expect(d.message).toBe('`app only to db, audit` is violated: channel `app.cache->cache.kv` goes from `app` to `cache`, which is not in the list.');
    expect(d.hint).toBe('Remove the connection, route it through `db`, `audit`, or add `cache` to the list.');
    expect(d.related?.map((x) => x.message)).toEqual(['instance `app`', 'channel `app.cache->cache.kv`', 'instance `cache`']);
    expect(r.plan).toBeUndefined();
  });

  it('does not count channels into the instance: it constrains what the instance sends, not who calls it', () => {
    const r = compileText(source('', 'db only to app'));
    expect(r.diagnostics).toEqual([]);
  });

  it('takes a label as its subject: every instance labelled with it or above, added later included', () => {
    const ok = compileText(source('', 'secret only to db, audit'));
    expect(ok.diagnostics).toEqual([]);
    expect(ok.plan!.checks.find((c) => c.id === 'reach:label:secret-only-to:db,audit')).toMatchObject({
      status: 'pass',
      summary: 'Every channel out of the instances labelled `secret` or above goes to `db`, `audit`.',
    });
    const bad = compileText(source('cache = Cache\n  connect app.cache -> cache.kv', 'internal only to db, audit'));
    expect(codes(bad)).toEqual(['MCL0530']);
    expect(bad.diagnostics[0].message).toContain('channel `app.cache->cache.kv`');
  });

  it('reports an unknown subject or list entry as MCL0515', () => {
    expect(codes(compileText(source('', 'nobody only to db')))).toEqual(['MCL0515']);
    expect(codes(compileText(source('', 'app only to nobody')))).toEqual(['MCL0515']);
  });

  it('is checked again from the plan, so an edited plan cannot add a channel the rule forbids', () => {
    const plan = compileText(source('', 'db only to app')).plan!;
    const edited = structuredClone(plan);
    edited.channels.push({ ...structuredClone(plan.channels[0]), id: 'db.back->audit.kv', from: { instance: 'db', port: 'back' }, to: { instance: 'audit', port: 'kv' } });
    expect(recheckPlan(edited)).toContainEqual('check reach:db-only-to:app is recorded as pass but is fail: 1 channel out of `db` to outside `app`.');
  });
});
