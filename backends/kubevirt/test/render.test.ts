// `mclc render --format k8s`: golden files of the examples' objects, the same
// bytes for the same plan, every object valid against the real schemas
// (Kubernetes' own through kubernetes-models, KubeVirt's published OpenAPI
// definitions through ajv), and the network policies allowing exactly the
// paths the plan's channels and exposures need.

import { describe, expect, test } from 'vitest';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import yaml from 'js-yaml';
import { Secret, Service, ResourceQuota } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import type { Plan } from '@mcl/plan';
import { GUEST_PORT_BASE, LABELS, RenderError, cloneCount, labelValue, objectName, renderObjects, toJsonList, toYaml, vmName, wiredSlots, type KubeObject } from '../src/render';
import { examplePlan, FIXTURES, KUBE_EXAMPLES } from './plans';
import { mentionedPorts, reachability, type NetworkPolicy as Np, type Pod } from './netpol';

const UPDATE = process.env.UPDATE_GOLDEN === '1';
const GOLDEN = join(FIXTURES, '..', 'golden');

function golden(path: string, actual: string): void {
  if (UPDATE || !existsSync(path)) {
    if (!UPDATE) throw new Error(`missing golden file ${path}; run with UPDATE_GOLDEN=1 to create it`);
    mkdirSync(GOLDEN, { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  expect(actual).toBe(readFileSync(path, 'utf8'));
}

function planOf(name: string): Plan {
  const r = examplePlan(name);
  expect(r.diagnostics).toBe('');
  return r.plan!;
}

// ---------------------------------------------------------------------------
// KubeVirt's schema: the definitions copied into fixtures/kubevirt-openapi.json.
// Swagger leaves objects open; the API server's strict field validation (the
// default of server-side apply) refuses unknown fields, so every object
// definition is closed here the same way.

function kubevirtValidator(): (o: unknown) => string[] {
  const doc = JSON.parse(readFileSync(join(FIXTURES, 'kubevirt-openapi.json'), 'utf8')) as { definitions: Record<string, Record<string, unknown>> };
  const defs = structuredClone(doc.definitions);
  for (const d of Object.values(defs)) if (d.type === 'object' && d.properties && d.additionalProperties === undefined) d.additionalProperties = false;
  const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
  const validate = ajv.compile({ $ref: '#/definitions/v1.VirtualMachine', definitions: defs });
  return (o) => (validate(o) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`));
}

const CORE: Record<string, { validate(): void } extends never ? never : new (o: never) => { validate(): void }> = {
  Secret: Secret as never,
  Service: Service as never,
  ResourceQuota: ResourceQuota as never,
  Deployment: Deployment as never,
  NetworkPolicy: NetworkPolicy as never,
};

describe('render k8s', () => {
  for (const name of KUBE_EXAMPLES) {
    test(`${name}: matches its golden YAML, and the JSON list has the same objects`, () => {
      const objects = renderObjects(planOf(name));
      golden(join(GOLDEN, `${name}.k8s.yaml`), toYaml(objects));
      expect(JSON.parse(toJsonList(objects)).items).toEqual(JSON.parse(JSON.stringify(objects)));
      // The YAML reads back as the same objects (with a YAML 1.2 reader, as kubectl's).
      expect(yaml.loadAll(toYaml(objects))).toEqual(JSON.parse(JSON.stringify(objects)));
    });

    test(`${name}: the same plan gives the same bytes`, () => {
      expect(toYaml(renderObjects(planOf(name)))).toBe(toYaml(renderObjects(planOf(name))));
    });

    test(`${name}: every object is valid against the Kubernetes and KubeVirt schemas`, () => {
      const kv = kubevirtValidator();
      const objects = renderObjects(planOf(name));
      const kinds = new Set<string>();
      for (const o of objects) {
        kinds.add(o.kind);
        if (o.kind === 'VirtualMachine') {
          expect(kv(o), `${o.kind}/${o.metadata.name}`).toEqual([]);
        } else {
          const Model = CORE[o.kind];
          expect(Model, `a schema for ${o.kind}`).toBeDefined();
          expect(() => new Model(structuredClone(o) as never).validate(), `${o.kind}/${o.metadata.name}`).not.toThrow();
        }
        expect(o.metadata.name).toMatch(/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/);
        for (const v of Object.values(o.metadata.labels)) expect(labelValue(v)).toBe(v);
      }
      expect([...kinds].sort()).toEqual(expect.arrayContaining(['Deployment', 'NetworkPolicy', 'ResourceQuota', 'Secret', 'Service', 'VirtualMachine']));
    });

    test(`${name}: the network policies allow exactly the broker's paths to the wired guest ports, and nothing between guests`, () => {
      const plan = planOf(name);
      const objects = renderObjects(plan);
      const { pods, policies, brokerName } = cluster(objects);
      const got = reachability(policies, pods, mentionedPorts(policies, [80, 443, 8080, GUEST_PORT_BASE]));
      expect(got).toEqual(expectedPaths(plan, brokerName));
      // Read back as the channel graph: the (instance, port) ends the broker can reach are exactly the ends of the plan's channels and exposures.
      const reached = new Set<string>();
      for (const line of got) {
        const m = /^broker -> (.+)-(\d+) TCP\/(\d+)$/.exec(line);
        if (!m) continue;
        const inst = plan.instances.find((i) => vmName(i, Number(m[2])) === `${m[1]}-${m[2]}`)!;
        const slot = Number(m[3]) - GUEST_PORT_BASE;
        if (slot > 0) reached.add(`${inst.id}.${inst.ports.find((p) => p.slot === slot)!.name}`);
      }
      const ends = new Set([
        ...plan.channels.flatMap((c) => [`${c.from.instance}.${c.from.port}`, `${c.to.instance}.${c.to.port}`]),
        ...plan.exposures.map((x) => `${x.instance}.${x.port}`),
        ...(plan.egresses ?? []).map((e) => `${e.instance}.${e.port}`),
      ]);
      expect([...reached].sort()).toEqual([...ends].sort());
    });
  }

  test('the schema checks catch a wrong field, so their passing means something', () => {
    const kv = kubevirtValidator();
    const objects = renderObjects(planOf('webstack'));
    const vm = structuredClone(objects.find((o) => o.kind === 'VirtualMachine')!) as unknown as { spec: { template: { spec: { domain: Record<string, unknown> } } } };
    vm.spec.template.spec.domain.cpus = 2;
    expect(kv(vm).join('\n')).toMatch(/must NOT have additional properties/);
    const vm2 = structuredClone(objects.find((o) => o.kind === 'VirtualMachine')!) as unknown as { spec: { template: { spec: { domain: { cpu: Record<string, unknown> } } } } };
    vm2.spec.template.spec.domain.cpu.cores = '2';
    expect(kv(vm2).join('\n')).toMatch(/must be integer/);
    const svc = structuredClone(objects.find((o) => o.kind === 'Service')!) as unknown as { spec: { ports: { port: unknown }[] } };
    svc.spec.ports[0].port = 'http';
    expect(() => new Service(svc as never).validate()).toThrow();
  });

  test('a policy that lets one guest reach another is caught by the reachability check', () => {
    const plan = planOf('webstack');
    const objects = renderObjects(plan);
    const { pods, policies, brokerName } = cluster(objects);
    const web = policies.find((p) => p.metadata.name === 'mcl-guest-web')!;
    web.spec.egress = [{ to: [{ podSelector: { matchLabels: { [LABELS.instance]: 'db' } } }] }];
    const db = policies.find((p) => p.metadata.name === 'mcl-guest-db')!;
    db.spec.ingress!.push({ from: [{ podSelector: { matchLabels: { [LABELS.instance]: 'web' } } }] });
    const got = reachability(policies, pods, mentionedPorts(policies, [GUEST_PORT_BASE]));
    expect(got).not.toEqual(expectedPaths(plan, brokerName));
    expect(got).toContain(`web-0 -> db-0 TCP/${GUEST_PORT_BASE}`);
  });

  test("a new plan leaves the machine template of an unchanged instance as it was, so KubeVirt restarts nothing", () => {
    // The same deployment (lineage), planned twice: once from nothing, once against its state.
    const a = renderObjects(planOf('webstack'), { lineage: 'L' });
    const other = examplePlan('webstack', 'k8s', { priorState: { lineage: 'L', serial: 1 } }).plan!;
    const b = renderObjects(other, { lineage: 'L' });
    expect(other.digests.plan).not.toBe(planOf('webstack').digests.plan);
    const vm = (objs: KubeObject[]) => objs.find((o) => o.kind === 'VirtualMachine' && o.metadata.name === 'web-0')!.spec as { template: unknown };
    expect(vm(b).template).toEqual(vm(a).template);
  });

  test('names and label values follow the Kubernetes rules whatever the instance ids are', () => {
    expect(objectName('web')).toBe('web');
    expect(objectName('shop.app')).toMatch(/^shop-app-[0-9a-f]{6}$/);
    expect(objectName('Web')).not.toBe(objectName('web'));
    expect(objectName('_x')).toMatch(/^x-[0-9a-f]{6}$/);
    expect(objectName('a'.repeat(80)).length).toBeLessThanOrEqual(63);
    expect(labelValue('shop.app')).toBe('shop.app');
    const long = labelValue(`${'a.'.repeat(40)}b`);
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toMatch(/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/);
  });

  test('refuses a plan for another backend, saying how to plan for kubevirt', () => {
    const plan = planOf('webstack');
    const kvm = { ...plan, target: { name: 'local', backend: 'kvm' as const, memory_bytes: 1, vcpus: 1, vcpu_overcommit: 1 } };
    expect(() => renderObjects(kvm)).toThrow(RenderError);
    expect(() => renderObjects(kvm)).toThrow(/targets backend `kvm`, not `kubevirt`/);
  });
});

/** The pods the objects make (a launcher pod per VirtualMachine, the broker's), the DNS server and the outside world. */
function cluster(objects: KubeObject[]): { pods: Pod[]; policies: Np[]; brokerName: string } {
  const ns = objects[0].metadata.namespace!;
  const nsLabels = { 'kubernetes.io/metadata.name': ns };
  const pods: Pod[] = [];
  for (const o of objects) {
    const tmpl = (o.spec as { template?: { metadata: { labels: Record<string, string> } } } | undefined)?.template;
    if (o.kind === 'VirtualMachine') pods.push({ name: o.metadata.name, namespace: ns, labels: tmpl!.metadata.labels, namespaceLabels: nsLabels, isPod: true });
    if (o.kind === 'Deployment') pods.push({ name: 'broker', namespace: ns, labels: tmpl!.metadata.labels, namespaceLabels: nsLabels, isPod: true });
  }
  pods.push({ name: 'kube-dns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' }, namespaceLabels: { 'kubernetes.io/metadata.name': 'kube-system' }, isPod: true });
  pods.push({ name: 'other-pod', namespace: 'other', labels: { app: 'x' }, namespaceLabels: { 'kubernetes.io/metadata.name': 'other' }, isPod: true });
  pods.push({ name: 'internet', namespace: '', labels: {}, namespaceLabels: {}, isPod: false });
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy').map((o) => structuredClone(o) as unknown as Np);
  return { pods, policies, brokerName: 'broker' };
}

/**
 * What the plan needs, and nothing else: the broker dials every clone on its
 * control port and its wired ports; the world (and any pod outside the
 * namespace) reaches the broker on the exposures' ports; the broker asks the
 * DNS server for guests' addresses. Pods outside the namespace are open (no
 * policy of ours selects them), so their own paths to the outside are theirs.
 */
function expectedPaths(plan: Plan, broker: string): string[] {
  const out: string[] = [];
  for (const inst of plan.instances) {
    for (let k = 0; k < cloneCount(inst); k++) for (const s of wiredSlots(inst)) out.push(`${broker} -> ${vmName(inst, k)} TCP/${GUEST_PORT_BASE + s}`);
  }
  for (const x of plan.exposures) for (const src of ['internet', 'other-pod', 'kube-dns']) out.push(`${src} -> ${broker} TCP/${x.host_port}`);
  out.push(`${broker} -> kube-dns TCP/53`, `${broker} -> kube-dns UDP/53`);
  // An egress to a DNS name opens its port to any address outside the namespace (a NetworkPolicy names no
  // hosts); the model computes paths to pods only, so the internet does not appear.
  for (const e of plan.egresses ?? []) for (const dst of ['other-pod', 'kube-dns']) out.push(`${broker} -> ${dst} TCP/${e.destination.port}`);
  // The two pods outside the namespace reach each other on every port: that is their namespaces' business.
  return [...new Set([...out, ...outsidePaths(plan)])].sort();
}

function outsidePaths(plan: Plan): string[] {
  const ports = new Set<number>([53, 80, 443, 8080, GUEST_PORT_BASE, ...plan.exposures.map((x) => x.host_port), ...(plan.egresses ?? []).map((e) => e.destination.port)]);
  for (const inst of plan.instances) for (const s of wiredSlots(inst)) ports.add(GUEST_PORT_BASE + s);
  const out: string[] = [];
  for (const port of ports) {
    for (const proto of ['TCP', 'UDP']) {
      out.push(`other-pod -> kube-dns ${proto}/${port}`, `kube-dns -> other-pod ${proto}/${port}`, `internet -> kube-dns ${proto}/${port}`, `internet -> other-pod ${proto}/${port}`);
    }
  }
  return out;
}
