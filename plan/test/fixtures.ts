// Hand-made plans and states for the plan package's tests: a small web stack
// (web -> app -> db, web exposed on a host port) in the shape the compiler emits.

import { imageDigest, instanceDigest, invariantsDigest, planDigest, sourcesDigest } from '../src/digest';
import type { DeploymentState, Plan, PlanChannel, PlanInstance } from '../src/types';

const D = (c: string) => c.repeat(64);

export function instance(id: string, over: Partial<PlanInstance> = {}): PlanInstance {
  return {
    id,
    component: id[0].toUpperCase() + id.slice(1),
    template: 'busybox-256m-1c-3p',
    memory_bytes: 268435456,
    vcpus: 1,
    mode: 'single',
    replicas: 1,
    restart: { policy: 'on_failure', max_retries: 3 },
    declassifies: [],
    params: {},
    sensitive_params: [],
    program: { argv: ['/bin/sh', `/mcl/program/${id}.sh`], env: {}, files: [{ path: `/mcl/program/${id}.sh`, content: 'echo hi\n', mode: '0755' }] },
    ports: [],
    digest: D('1'),
    ...over,
  };
}

export function channel(fromInst: string, fromPort: string, toInst: string, toPort: string, protocol: string): PlanChannel {
  return {
    id: `${fromInst}.${fromPort}->${toInst}.${toPort}`,
    from: { instance: fromInst, port: fromPort },
    to: { instance: toInst, port: toPort },
    protocol,
    ops: [{ name: 'get', kind: 'call', input: 'shop.Get', output: 'shop.Item' }],
    invariants: { max_message_bytes: 1048576, rate: { per_second: 500, burst: 500 }, timeout_ms: 30000, max_inflight: 64, order: null },
  };
}

export function webstackPlan(): Plan {
  return {
    format_version: '1.0',
    mclc_version: '0.1.0',
    system: 'WebStack',
    target: { name: 'local', backend: 'kvm', memory_bytes: 8589934592, vcpus: 2, vcpu_overcommit: 4 },
    digests: { sources: D('a'), invariants: D('b'), plan: D('c') },
    sources: [{ path: 'webstack.mcl', sha256: D('d') }],
    images: [{ name: 'busybox', base: 'busybox-static', kernel: 'debian-cloud', modules: ['virtio_ring', 'virtio'], files: [], digest: D('e') }],
    templates: [{ id: 'busybox-256m-1c-3p', image: 'busybox', memory_bytes: 268435456, vcpus: 1, port_slots: 3, instance_count: 3 }],
    instances: [
      instance('app', {
        label: 'internal',
        ports: [
          { name: 'api', direction: 'provide', protocol: 'shop.Api', slot: 1, channels: ['web.backend->app.api'] },
          { name: 'db', direction: 'require', protocol: 'shop.Kv', slot: 2, channels: ['app.db->db.kv'] },
        ],
      }),
      instance('db', {
        label: 'secret',
        params: { password: 'hunter2', size: 10 },
        sensitive_params: ['password'],
        ports: [{ name: 'kv', direction: 'provide', protocol: 'shop.Kv', slot: 1, channels: ['app.db->db.kv'] }],
        digest: D('2'),
      }),
      instance('web', {
        label: 'public',
        mode: 'replicas',
        replicas: 2,
        ports: [
          { name: 'http', direction: 'provide', protocol: 'std.http.Http', slot: 1, channels: [], exposed_on: 8080 },
          { name: 'backend', direction: 'require', protocol: 'shop.Api', slot: 2, channels: ['web.backend->app.api'] },
        ],
        digest: D('3'),
      }),
    ],
    channels: [channel('app', 'db', 'db', 'kv', 'shop.Kv'), channel('web', 'backend', 'app', 'api', 'shop.Api')],
    exposures: [
      {
        host_port: 8080,
        transport: 'tcp',
        instance: 'web',
        port: 'http',
        protocol: 'std.http.Http',
        ops: [{ name: 'request', kind: 'call', input: 'std.http.Request', output: 'std.http.Response' }],
        invariants: { max_message_bytes: 1048576, rate: null, timeout_ms: 30000, max_inflight: 64, order: null },
      },
    ],
    schemas: {
      'shop.Get': { kind: 'record', fields: [{ name: 'key', optional: false, type: { kind: 'string', max_len: 64 } }] },
      'shop.Item': {
        kind: 'record',
        fields: [
          { name: 'value', optional: true, type: { kind: 'bytes', max_len: 4096 } },
          { name: 'tags', optional: false, type: { kind: 'list', element: { kind: 'ref', name: 'shop.Tag' }, max_items: 8 } },
        ],
      },
      'shop.Tag': { kind: 'enum', members: ['a', 'b'] },
    },
    checks: [
      { id: 'flow:lattice', kind: 'flow', status: 'pass', summary: 'no flow from secret to public without a declassifier' },
      { id: 'reach:db-only-from:app', kind: 'reachability', status: 'pass', summary: 'db is reachable only from app' },
    ],
    resources: {
      template_memory_bytes: 268435456,
      estimated_private_bytes: 100663296,
      estimated_total_bytes: 369098752,
      worst_case_bytes: 1073741824,
      committed_vcpus: 4,
    },
    prior_state: null,
  };
}

export function stateOf(plan: Plan, serial = 3): DeploymentState {
  return {
    format_version: '1.0',
    lineage: '5f0c7f9e-7a4e-4e59-9b53-3f0f1c9a0a11',
    serial,
    backend: 'kvm',
    plan_digest: plan.digests.plan,
    system: plan.system,
    instances: structuredClone(plan.instances),
    channels: structuredClone(plan.channels),
    exposures: structuredClone(plan.exposures),
  };
}

/** The plan with every digest computed as the compiler computes it (plan/src/digest.ts). */
export function withDigests(plan: Plan): Plan {
  plan.images = plan.images.map((i) => ({ ...i, digest: imageDigest(i) }));
  plan.instances = plan.instances.map((i) => ({ ...i, digest: instanceDigest(i) }));
  plan.digests = { sources: sourcesDigest(plan.sources), invariants: invariantsDigest(plan.channels, plan.exposures, plan.checks), plan: '' };
  plan.digests.plan = planDigest(plan);
  return plan;
}
