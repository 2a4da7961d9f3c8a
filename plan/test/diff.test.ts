import { describe, expect, it } from 'vitest';
import { diffInstances, diffPlan } from '../src/diff';
import { channel, instance, stateOf, webstackPlan } from './fixtures';

describe('diffPlan', () => {
  it('creates everything when nothing is deployed', () => {
    const d = diffPlan(null, webstackPlan());
    expect(d.instances.map((i) => [i.id, i.action])).toEqual([
      ['app', 'create'],
      ['db', 'create'],
      ['web', 'create'],
    ]);
    expect(d.summary).toBe('Plan: 3 to add, 0 to replace, 0 to destroy.');
    expect(d.has_changes).toBe(true);
    expect(d.security.channels_added.map((c) => c.id)).toEqual(['app.db->db.kv', 'web.backend->app.api']);
    expect(d.security.exposures_added).toEqual([{ host_port: 8080, instance: 'web', port: 'http', protocol: 'std.http.Http' }]);
    expect(d.security.unchanged).toBe(false);
  });

  it('reports no changes against the state the plan was applied to', () => {
    const plan = webstackPlan();
    const d = diffPlan(stateOf(plan), plan);
    expect(d.has_changes).toBe(false);
    expect(d.counts).toEqual({ create: 0, update: 0, replace: 0, delete: 0, no_op: 3 });
    expect(d.summary).toBe('No changes. The deployment matches the plan.');
    expect(d.security.unchanged).toBe(true);
  });

  it('replaces an instance whose digest changed and names the fields, not the values', () => {
    const plan = webstackPlan();
    const state = stateOf(plan);
    plan.instances[1].params.password = 'correct horse';
    plan.instances[1].memory_bytes = 536870912;
    plan.instances[1].digest = '9'.repeat(64);
    const d = diffPlan(state, plan);
    const db = d.instances.find((i) => i.id === 'db')!;
    expect(db.action).toBe('replace');
    expect(db.changed_fields).toEqual(['memory_bytes', 'params.password']);
    expect(db.reasons).toEqual(['memory_bytes changed', 'params.password changed']);
    expect(JSON.stringify(d)).not.toContain('correct horse');
    expect(d.summary).toBe('Plan: 0 to add, 1 to replace, 0 to destroy.');
  });

  it('replaces on a digest change alone, and on a replica change', () => {
    const plan = webstackPlan();
    const state = stateOf(plan);
    plan.instances[0].digest = '8'.repeat(64);
    plan.instances[2].replicas = 5;
    plan.instances[2].digest = '7'.repeat(64);
    const d = diffPlan(state, plan);
    expect(d.instances.map((i) => [i.id, i.action, i.reasons])).toEqual([
      ['app', 'replace', ['digest changed']],
      ['db', 'no-op', []],
      ['web', 'replace', ['replicas changed']],
    ]);
    expect(d.summary).toBe('Plan: 0 to add, 2 to replace, 0 to destroy.');
  });

  it('deletes what the plan no longer has and reports the posture change', () => {
    const plan = webstackPlan();
    const state = stateOf(plan);
    state.instances.push(instance('cache', { label: 'internal' }));
    state.channels.push(channel('app', 'cache', 'cache', 'kv', 'shop.Kv'));
    plan.exposures = [{ ...plan.exposures[0], host_port: 8443 }];
    plan.instances[0].label = 'secret';
    plan.instances[0].declassifies = [{ from: 'secret', to: 'internal' }];
    plan.instances[0].digest = '6'.repeat(64);
    plan.channels[0].invariants.rate = null;
    const d = diffPlan(state, plan);
    expect(d.instances.find((i) => i.id === 'cache')!.action).toBe('delete');
    expect(d.summary).toBe('Plan: 0 to add, 1 to change, 1 to replace, 1 to destroy.');
    // db keeps running: only the broker's side of its channel changes.
    expect(d.instances.find((i) => i.id === 'db')).toMatchObject({ action: 'update', reasons: ['channel app.db->db.kv: rate changed'] });
    expect(d.instances.find((i) => i.id === 'app')!.action).toBe('replace');
    expect(d.security.channels_removed.map((c) => c.id)).toEqual(['app.cache->cache.kv']);
    expect(d.security.channels_changed).toEqual([{ id: 'app.db->db.kv', fields: ['rate'], loosened: true }]);
    expect(d.security.exposures_added.map((e) => e.host_port)).toEqual([8443]);
    expect(d.security.exposures_removed.map((e) => e.host_port)).toEqual([8080]);
    expect(d.security.labels_changed).toEqual([{ instance: 'app', before: 'internal', after: 'secret' }]);
    expect(d.security.declassifications_changed).toEqual([{ instance: 'app', added: [{ from: 'secret', to: 'internal' }], removed: [] }]);
  });

  it('reports declassifications removed and those of a new instance, not those kept or never made', () => {
    const plan = webstackPlan();
    plan.instances[0].declassifies = [{ from: 'secret', to: 'internal' }];
    plan.instances[1].declassifies = [{ from: 'internal', to: 'public' }];
    const state = stateOf(plan);
    plan.instances[0].declassifies = [];
    plan.instances.push(instance('cache', { declassifies: [{ from: 'secret', to: 'public' }] }));
    const d = diffPlan(state, plan);
    expect(d.security.declassifications_changed).toEqual([
      { instance: 'app', added: [], removed: [{ from: 'secret', to: 'internal' }] },
      { instance: 'cache', added: [{ from: 'secret', to: 'public' }], removed: [] },
    ]);
    expect(d.instances.find((i) => i.id === 'cache')!.action).toBe('create');
    // Nothing deployed: every instance is created, none replaced, and each declassification is new.
    const fresh = diffPlan(null, plan);
    expect(fresh.security.declassifications_changed).toEqual([
      { instance: 'cache', added: [{ from: 'secret', to: 'public' }], removed: [] },
      { instance: 'db', added: [{ from: 'internal', to: 'public' }], removed: [] },
    ]);
    expect(fresh.instances.map((i) => [i.id, i.action, i.reasons])).toEqual([
      ['app', 'create', ['not in the deployment']],
      ['cache', 'create', ['not in the deployment']],
      ['db', 'create', ['not in the deployment']],
      ['web', 'create', ['not in the deployment']],
    ]);
  });

  it('updates both ends of a channel that becomes a candidate of a late binding or stops being the initial one', () => {
    const plan = webstackPlan();
    const state = stateOf(plan);
    plan.channels[1] = { ...plan.channels[1], candidate: { initial: false } };
    const d = diffPlan(state, plan);
    expect(d.security.channels_changed).toEqual([{ id: 'web.backend->app.api', fields: ['candidate'], loosened: false }]);
    expect(d.instances.find((i) => i.id === 'app')).toMatchObject({ action: 'update', reasons: ['channel web.backend->app.api: candidate changed'] });
  });

  it('updates both ends of a channel whose invariants tightened, without calling it a loosening', () => {
    const plan = webstackPlan();
    const state = stateOf(plan);
    plan.channels[1].invariants.max_message_bytes = 1024;
    const d = diffPlan(state, plan);
    expect(d.security.channels_changed).toEqual([{ id: 'web.backend->app.api', fields: ['max_message_bytes'], loosened: false }]);
    expect(d.has_changes).toBe(true);
    expect(d.summary).toBe('Plan: 0 to add, 2 to change, 0 to replace, 0 to destroy.');
    expect(d.instances.map((i) => [i.id, i.action])).toEqual([
      ['app', 'update'],
      ['db', 'no-op'],
      ['web', 'update'],
    ]);
  });
});

describe('the replace/keep rule', () => {
  it('is the one a backend applies: the digests decide, the fields only explain', () => {
    const plan = webstackPlan();
    const state = stateOf(plan);
    // app's fields differ but its digest does not (a hand-edited plan or state): kept by both.
    plan.instances[0].memory_bytes *= 2;
    // web's digest differs: replaced by both, whatever its fields.
    plan.instances[2].digest = '5'.repeat(64);
    plan.instances.push(instance('cache'));
    state.instances.push(instance('old'));
    const shown = diffPlan(state, plan);
    const applied = diffInstances(new Map(state.instances.map((i) => [i.id, i.digest])), plan.instances);
    const by = (a: string) => shown.instances.filter((i) => i.action === a).map((i) => i.id);
    expect(applied).toEqual({ create: by('create'), replace: by('replace'), delete: by('delete'), keep: [...by('no-op'), ...by('update')].sort(), unknown: [] });
    expect(applied).toMatchObject({ create: ['cache'], replace: ['web'], delete: ['old'], keep: ['app', 'db'] });
  });
});
