// Factory ports: a component creates instances of another at run time, within
// a declared bound. The compiler treats the created instance as its factory's
// `max` clones for every check, and records the factory in the plan.

import { describe, expect, test } from 'vitest';
import { digestMismatches, validatePlan } from '@mcl/plan';
import { codes, compileText } from './helpers';

const PROTOS = 'protocol Jobs { call run(string) -> string }\nprotocol Kv { call get(string) -> string }\n';
const WORKER = 'component Worker {\n  param job: string(1..64)\n  param size: int(1..100) = 1\n  provide jobs: Jobs\n  require store: Kv\n  restart on-failure max 3\n}\ncomponent Store { provide kv: Kv }\n';
const coord = (factory = 'factory Worker { max 8; param job }') => `component Coord {\n  require workers: ${factory}\n}\n`;
const KVM = 'target big { backend kvm  memory 64GiB  vcpus 64 }\ndeploy Farm to big\n';
const farm = (body: string, factory?: string, target = KVM) => `${PROTOS}${WORKER}${coord(factory)}system Farm {\n${body}\n}\n${target}`;
const WIRED = 'c = Coord\nw = Worker { created by c.workers }\ns = Store\nconnect c.workers -> w.jobs\nconnect w.store -> s.kv';

const errors = (src: string) => compileText(src).diagnostics.filter((d) => d.severity === 'error');

describe('factory ports', () => {
  test('a created instance is planned with its creator, its bound and the parameters chosen at run time', () => {
    const r = compileText(farm(WIRED));
    expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const w = r.plan!.instances.find((i) => i.id === 'w')!;
    expect(w.mode).toBe('created');
    expect(w.replicas).toBe(0);
    expect(w.max_instances).toBe(8);
    expect(w.created_by).toEqual({ detached: false, instance: 'c', max: 8, params: { job: { kind: 'string', min_len: 1, max_len: 64 } }, port: 'workers' });
    // The creator's port takes the protocol of the created instance's port it is connected to.
    const c = r.plan!.instances.find((i) => i.id === 'c')!;
    expect(c.ports).toEqual([{ channels: ['c.workers->w.jobs'], direction: 'require', name: 'workers', protocol: 'main.Jobs', slot: 1 }]);
    expect(r.plan!.channels.map((x) => x.id)).toEqual(['c.workers->w.jobs', 'w.store->s.kv']);
    expect(validatePlan(JSON.parse(JSON.stringify(r.plan))).errors).toEqual([]);
    // The digests hold over the canonical form, which orders the parameter schemas' fields too.
    expect(digestMismatches(JSON.parse(JSON.stringify(r.plan)))).toEqual([]);
    // Every factory at its bound: 8 workers, the coordinator and the store.
    expect(r.plan!.resources.committed_vcpus).toBe(10);
  });

  test('the budget must hold with every factory at its maximum', () => {
    expect(codes(compileText(farm(`${WIRED}\npolicy { budget vcpus 10 }`)))).not.toContain('MCL0513');
    expect(codes(compileText(farm(`${WIRED}\npolicy { budget vcpus 9 }`)))).toContain('MCL0513');
  });

  test('a replicated creator multiplies its factory bound', () => {
    const r = compileText(farm(WIRED.replace('c = Coord', 'c = Coord { replicas 3 }')));
    expect(r.plan!.instances.find((i) => i.id === 'w')!.max_instances).toBe(24);
  });

  test('reachability and `no path` see the created instances and their channels', () => {
    const r = compileText(farm(`${WIRED}\npolicy { no path c -> s }`));
    expect(codes(r)).toContain('MCL0503');
  });

  test('detached factories are recorded', () => {
    const r = compileText(farm(WIRED, 'factory Worker { max 2; param job; detached }'));
    expect(r.plan!.instances.find((i) => i.id === 'w')!.created_by!.detached).toBe(true);
  });

  test('a parameter the creator chooses need not be set; others still must', () => {
    const e = errors(farm(WIRED, 'factory Worker { max 2 }'));
    expect(e.map((d) => d.message)).toEqual(['`w` does not set the required parameter `job` of `Worker`']);
  });

  test('a factory without a bound, on a provided port, or naming an unknown parameter is refused', () => {
    expect(errors(farm(WIRED, 'factory Worker { param job }')).map((d) => [d.code, d.message])).toEqual([['MCL0450', 'factory `workers` has no bound: how many instances may it create?']]);
    expect(errors(farm(WIRED, 'factory Worker { max 0; param job }')).map((d) => d.code)).toEqual(['MCL0412']);
    expect(errors(farm(WIRED, 'factory Worker { max 4; param job, jbo }')).map((d) => [d.code, d.message, d.hint])).toEqual([
      ['MCL0314', '`Worker` has no parameter `jbo` to choose at creation', 'did you mean `job`?'],
    ]);
    const r = errors(`${PROTOS}${WORKER}component P { provide p: factory Worker { max 1 } }\nsystem S { p = P }\n`);
    expect(r.map((d) => d.code)).toEqual(['MCL0450']);
  });

  test('`created by` must name a factory of the same component, once', () => {
    expect(errors(farm(WIRED.replace('created by c.workers', 'created by c.wrkers'))).map((d) => d.code)).toContain('MCL0452');
    expect(errors(farm(WIRED.replace('created by c.workers', 'created by x.workers'))).map((d) => d.code)).toContain('MCL0401');
    const mismatch = errors(farm(WIRED.replace('w = Worker', 's2 = Store { created by c.workers }\nw = Worker')));
    expect(mismatch.map((d) => d.message)).toContain('`c.workers` creates `main.Worker`, not `main.Store`');
    const twice = errors(farm(`${WIRED}\nw2 = Worker { created by c.workers }\nconnect w2.store -> s.kv`));
    expect(twice.map((d) => d.message)).toContain('`c.workers` already creates `w`: a factory port creates the instances of one declaration');
    const inComponent = errors(`${PROTOS}${WORKER.replace('restart on-failure max 3', 'created by c.workers')}${coord()}system Farm {\n${WIRED}\n}\n`);
    expect(inComponent.map((d) => d.code)).toContain('MCL0452');
  });

  test('a factory that creates nothing, or whose channel goes elsewhere, is refused at the fault', () => {
    const none = errors(farm('c = Coord'));
    expect(none.map((d) => [d.code, d.message])).toEqual([['MCL0451', '`c.workers` is a factory of `Worker` but no instance of this system is created by it']]);
    const elsewhere = errors(farm(`${WIRED.replace('connect c.workers -> w.jobs', 'w0 = Worker { job = "x" }\nconnect w0.store -> s.kv\nconnect c.workers -> w0.jobs')}`));
    expect(elsewhere.map((d) => d.code)).toEqual(['MCL0453']);
    // An optional factory port may stay unused.
    expect(errors(farm('c = Coord', 'factory Worker { max 2 } optional'))).toEqual([]);
  });

  test('a Xen target plans the created instance as a KVM one does', () => {
    const tgt = 'target dom0 { backend xen  memory 64GiB  vcpus 64 }\ndeploy Farm to dom0\n';
    const r = compileText(farm(WIRED, undefined, tgt));
    expect(errors(farm(WIRED, undefined, tgt))).toEqual([]);
    expect(r.plan!.instances.find((i) => i.id === 'w')).toMatchObject({ mode: 'created', replicas: 0, max_instances: 8 });
  });

  test('a backend that cannot fork at run time refuses the created instance', () => {
    const tgt = 'target k8s {\n  backend kubevirt\n  namespace "farm"\n  memory 16GiB\n  vcpus 16\n}\ndeploy Farm to k8s\n';
    const e = errors(farm(WIRED, undefined, tgt));
    expect(e.map((d) => [d.code, d.message])).toEqual([['MCL0601', 'backend `kubevirt` cannot create instances of `w` at run time']]);
  });
});
