import { describe, expect, it } from 'vitest';
import { validatePlan, validateState } from '../src/validate';
import { webstackPlan, stateOf } from './fixtures';

const mutate = (f: (p: any) => void) => {
  const p: any = webstackPlan();
  f(p);
  return p;
};

describe('validatePlan', () => {
  it('accepts a well-formed plan, parsed or as text', () => {
    const plan = webstackPlan();
    expect(validatePlan(plan)).toEqual({ plan, errors: [] });
    expect(validatePlan(JSON.stringify(plan)).errors).toEqual([]);
  });

  it('refuses an unknown major version with a message that says what to do', () => {
    const r = validatePlan(mutate((p) => (p.format_version = '2.0')));
    expect(r.plan).toBeUndefined();
    expect(r.errors).toEqual([{ path: '$.format_version', message: expect.stringContaining('plan format_version 2.0 is not supported') }]);
    expect(r.errors[0].message).toContain('upgrade mclc');
    expect(validatePlan(mutate((p) => (p.format_version = '0.9'))).errors[0].message).toContain('plan again');
    expect(validatePlan(mutate((p) => (p.format_version = 1))).errors[0].message).toContain('"major.minor"');
  });

  it('accepts a higher minor version with fields it does not know', () => {
    const newer = mutate((p) => {
      p.format_version = '1.7';
      p.future_field = { x: 1 };
      p.instances[0].future = true;
    });
    expect(validatePlan(newer).errors).toEqual([]);
    // The same unknown fields in a 1.0 plan are errors.
    const same = mutate((p) => (p.future_field = 1));
    expect(validatePlan(same).errors).toEqual([{ path: '$.future_field', message: 'unknown field "future_field"' }]);
  });

  it('names the path and the expected type of a wrong value', () => {
    const r = validatePlan(mutate((p) => (p.instances[1].memory_bytes = '256MiB')));
    expect(r.errors).toEqual([{ path: '$.instances[1].memory_bytes', message: 'expected an integer, found a string' }]);
  });

  it('reports missing fields and bad enum values', () => {
    const r = validatePlan(
      mutate((p) => {
        delete p.resources;
        p.instances[0].mode = 'many';
      }),
    );
    expect(r.errors).toContainEqual({ path: '$', message: 'missing required field "resources"' });
    expect(r.errors).toContainEqual({ path: '$.instances[0].mode', message: 'expected one of "single", "replicas", "per_session", "created", found "many"' });
  });

  it('reports errors inside message schemas by their kind', () => {
    const r = validatePlan(mutate((p) => (p.schemas['shop.Get'].fields[0].type = { kind: 'string', max_len: -1 })));
    expect(r.errors).toEqual([{ path: "$.schemas.shop.Get.fields[0].type.max_len", message: 'must be at least 0, found -1' }]);
    const k = validatePlan(mutate((p) => (p.schemas['shop.Tag'] = { kind: 'tuple' })));
    expect(k.errors).toEqual([{ path: '$.schemas.shop.Tag.kind', message: 'unknown kind "tuple"' }]);
  });

  it('checks references between instances, ports, channels and templates', () => {
    const r = validatePlan(
      mutate((p) => {
        p.channels[0].to.port = 'nope';
        p.instances[0].template = 'missing';
        p.exposures[0].instance = 'ghost';
      }),
    );
    expect(r.errors.map((e) => e.path + ': ' + e.message)).toEqual([
      '$.instances[0].template: instance "app" uses template "missing", which the plan does not list',
      '$.channels[0].to: instance "db" has no port "nope"',
      '$.channels[0].id: channel id "app.db->db.kv" should be "app.db->db.nope"',
      '$.exposures[0]: refers to instance "ghost", which the plan does not list',
    ]);
  });

  it('reports duplicate ids and a channel wired to the wrong direction', () => {
    const r = validatePlan(
      mutate((p) => {
        p.instances.push(structuredClone(p.instances[0]));
        p.channels[1].from = { instance: 'app', port: 'api' };
        p.channels[1].id = 'app.api->app.api';
      }),
    );
    const msgs = r.errors.map((e) => e.message);
    expect(msgs).toContain('duplicate instance id "app"');
    expect(msgs).toContain('port "app.api" is a provide port, expected require');
  });

  it('never throws on junk', () => {
    for (const junk of [null, 1, 'x', '{', [], { format_version: '1.0' }, { format_version: '1.0', instances: [null] }]) {
      const r = validatePlan(junk);
      expect(r.plan).toBeUndefined();
      expect(r.errors.length).toBeGreaterThan(0);
    }
  });
});

describe('validateState', () => {
  it('accepts a state and refuses a broken one', () => {
    expect(validateState(stateOf(webstackPlan())).errors).toEqual([]);
    expect(validateState({ format_version: '1.0', lineage: '', serial: -1, instances: [] }).errors.map((e) => e.path)).toEqual([
      '$.lineage',
      '$.serial',
      '$.channels',
      '$.exposures',
      '$.backend',
      '$.plan_digest',
      '$.system',
    ]);
    expect(validateState({ format_version: '3.0' }).errors[0].message).toContain('state format_version 3.0 is not supported');
  });

  it('checks every recorded instance, channel and exposure, not only the top level', () => {
    const good = stateOf(webstackPlan());
    expect(validateState({ ...good, instances: null }).errors.map((e) => e.path)).toEqual(['$.instances']);
    const noPorts = { ...good, instances: good.instances.map((i, k) => (k === 0 ? { ...i, ports: undefined } : i)) };
    expect(validateState(JSON.parse(JSON.stringify(noPorts))).errors).toEqual([{ path: '$.instances[0]', message: 'missing required field "ports"' }]);
    const badExposure = { ...good, exposures: [{ ...good.exposures[0], host_port: 'eighty' }] };
    expect(validateState(badExposure).errors.map((e) => e.path)).toEqual(['$.exposures[0].host_port']);
    // Digests are compared, never parsed: their form is not checked.
    expect(validateState({ ...good, plan_digest: 'p1', instances: good.instances.map((i) => ({ ...i, digest: 'd' })) }).errors).toEqual([]);
  });

  it('checks the clones recorded as moved to another target, entry by entry', () => {
    const good = stateOf(webstackPlan());
    const at = '2026-12-06T09:00:00.000Z';
    expect(validateState({ ...good, moved: [{ instance: 'shop.db', clone: 0, to: 'node2', at }] }).errors).toEqual([]);
    expect(validateState({ ...good, moved: {} }).errors.map((e) => e.path)).toEqual(['$.moved']);
    const bad = validateState({
      ...good,
      moved: [
        { instance: '', clone: -1, to: 'x'.repeat(300), at: 'yesterday', pid: 4242 },
        null,
        { instance: 'shop.db', clone: 0, to: 'node2', at },
        { instance: 'shop.db', clone: 0, to: 'node3', at },
      ],
    });
    expect(bad.state).toBeUndefined();
    expect(bad.errors.map((e) => e.path)).toEqual(['$.moved[0]', '$.moved[0].instance', '$.moved[0].clone', '$.moved[0].to', '$.moved[0].at', '$.moved[1]', '$.moved[3]']);
    expect(bad.errors[0].message).toContain('pid');
  });
});
