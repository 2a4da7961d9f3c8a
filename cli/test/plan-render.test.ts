import { describe, expect, it } from 'vitest';
import { diffPlan } from '@mcl/plan';
import { renderChanges, renderChecks } from '../src/plan-render';
import { channel, instance, stateOf, webstackPlan } from '../../plan/test/fixtures';

describe('plan views', () => {
  it('lists instance changes with reasons and every kind of posture change', () => {
    const plan = webstackPlan();
    const state = stateOf(plan);
    state.instances.push(instance('cache', { component: 'Cache' }));
    state.channels.push(channel('app', 'cache', 'cache', 'kv', 'shop.Kv'));
    plan.instances[0].label = 'secret';
    plan.instances[0].declassifies = [{ from: 'secret', to: 'internal' }];
    plan.instances[0].digest = '5'.repeat(64);
    plan.channels[0].invariants.rate = null;
    plan.exposures[0] = { ...plan.exposures[0], host_port: 8443 };
    expect(renderChanges(diffPlan(state, plan)).join('\n')).toBe(
      [
        'Instances:',
        '  -/+ app    App    replace (declassifies changed, label changed)',
        '  -   cache  Cache  destroy',
        '  ~   db     Db     rewire in place (channel app.db->db.kv: rate changed)',
        '      (1 instance unchanged)',
        '',
        'Security posture:',
        '  - channel app.cache -> cache.kv (shop.Kv)',
        '  ~ channel app.db->db.kv: rate changed (allows more than before)',
        '  + exposure tcp 8443 -> web.http (std.http.Http)',
        '  - exposure tcp 8080 -> web.http (std.http.Http)',
        '  ~ label of app: internal -> secret',
        '  + app may declassify secret -> internal',
      ].join('\n'),
    );
  });

  it('prints nothing for a plan without changes', () => {
    const plan = webstackPlan();
    expect(renderChanges(diffPlan(stateOf(plan), plan))).toEqual([]);
  });

  it('shows failed and warned checks with their counterexample path', () => {
    const lines = renderChecks([
      { id: 'a', kind: 'flow', status: 'pass', summary: 'fine' },
      { id: 'b', kind: 'resources', status: 'warn', summary: 'tight' },
      { id: 'c', kind: 'reachability', status: 'fail', summary: 'db reachable', counterexample: [{ instance: 'web' }, { channel: 'web.db->db.sql', note: 'direct' }] },
    ]);
    expect(lines).toEqual([
      'Checks: 1 passed, 1 warning, 1 failed',
      '  warn b: tight',
      '  FAIL c: db reachable',
      '         -> instance web',
      '         -> channel web.db->db.sql, direct',
    ]);
  });
});
