// The kubevirt backend's requests, against a fake API server on loopback
// (test/fake-apiserver.ts): what apply sends (server-side apply with field
// manager mclc, pruning, the state and the lock), destroy, status, logs and
// doctor. A real cluster is in spec/kubevirt.md's runbook.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ApplyOptions, BackendEvent } from '@mcl/plan/backend';
import { apply, destroy, doctor, logs, status } from '../src/lifecycle';
import { examplePlan } from './plans';
import { kubeconfigFor, startFakeApiServer, type FakeApiServer } from './fake-apiserver';

let api: FakeApiServer;
let dir: string;
const savedKubeconfig = process.env.KUBECONFIG;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mcl-kubevirt-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  if (savedKubeconfig === undefined) delete process.env.KUBECONFIG;
  else process.env.KUBECONFIG = savedKubeconfig;
});
beforeEach(async () => {
  api = await startFakeApiServer();
  writeFileSync(join(dir, 'kubeconfig'), kubeconfigFor(api.url));
  process.env.KUBECONFIG = join(dir, 'kubeconfig');
  rmSync(join(dir, '.mcl'), { recursive: true, force: true });
});
afterEach(async () => {
  await api.close();
});

function options(more: Partial<ApplyOptions> = {}): ApplyOptions {
  return {
    workspace: dir,
    stateFile: join(dir, '.mcl', 'state.json'),
    lockTimeoutMs: 0,
    supervisorCommand: [],
    signal: new AbortController().signal,
    automation: true,
    replace: [],
    readyTimeoutMs: 5000,
    ...more,
  };
}

const plan = examplePlan('webstack').plan!;

describe('apply', () => {
  it('server-side applies every rendered object with field manager mclc, then writes the state and releases the lock', async () => {
    const events: BackendEvent[] = [];
    const r = await apply(plan, options(), (e) => events.push(e));
    const patches = api.requests.filter((q) => q.method === 'PATCH');
    expect(patches.length).toBe(20);
    for (const p of patches) {
      expect(p.contentType).toBe('application/apply-patch+yaml');
      expect(p.query).toMatchObject({ fieldManager: 'mclc', force: 'true' });
    }
    expect(patches.map((p) => p.path)).toContain('/apis/kubevirt.io/v1/namespaces/shop/virtualmachines/web-0');
    expect(patches.map((p) => p.path)).toContain('/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/mcl-default-deny');
    // The namespace was created, the lock taken before the first object and removed after the state.
    const paths = api.requests.map((q) => `${q.method} ${q.path}`);
    expect(paths).toContain('POST /api/v1/namespaces');
    const lockAt = paths.indexOf('POST /api/v1/namespaces/shop/configmaps');
    expect(api.requests[lockAt].body).toMatchObject({ metadata: { name: 'mcl-lock' } });
    expect(lockAt).toBeLessThan(paths.findIndex((p) => p.startsWith('PATCH')));
    expect(paths.at(-1)).toBe('DELETE /api/v1/namespaces/shop/configmaps/mcl-lock');
    const stateCm = api.store.get('/api/v1/namespaces/shop/configmaps/mcl-state') as { data: { 'state.json': string } };
    const state = JSON.parse(stateCm.data['state.json']);
    expect(state).toMatchObject({ backend: 'kubevirt', serial: 1, plan_digest: plan.digests.plan, system: plan.system, backend_data: { namespace: 'shop' } });
    expect(r.state.lineage).toBe(state.lineage);
    expect(r.created).toEqual(plan.instances.map((i) => i.id).sort());
    // Every object carries the lineage once it is known.
    const vm = api.store.get('/apis/kubevirt.io/v1/namespaces/shop/virtualmachines/web-0') as { metadata: { labels: Record<string, string> } };
    expect(vm.metadata.labels['mcl.dev/lineage']).toBe(state.lineage);
    // Progress: each clone ready, the broker ready; the workspace keeps a copy of the state.
    expect(events.filter((e) => e.action === 'ready' && e.type === 'instance')).toHaveLength(7);
    expect(events.some((e) => e.phase === 'broker' && e.action === 'ready')).toBe(true);
    expect(JSON.parse(readFileSync(join(dir, '.mcl', 'state.json'), 'utf8')).lineage).toBe(state.lineage);
    // The deployment's key: created once, 32 random bytes, the Secret the broker's pod mounts.
    const keyPath = '/api/v1/namespaces/shop/secrets/mcl-broker-key';
    const key = api.store.get(keyPath) as { data: { key: string } };
    expect(Buffer.from(key.data.key, 'base64')).toHaveLength(32);
    expect(paths.filter((p) => p === 'POST /api/v1/namespaces/shop/secrets')).toHaveLength(1);
    // A second apply keeps it (a new key would lock the running guests out) and does not prune it.
    const again = examplePlan('webstack', 'k8s', { priorState: { lineage: r.state.lineage, serial: r.state.serial } }).plan!;
    await apply(again, options(), () => {});
    expect((api.store.get(keyPath) as { data: { key: string } }).data.key).toBe(key.data.key);
  });

  it('prunes the objects a later plan no longer has, and refuses a plan made against another state', async () => {
    const first = await apply(plan, options(), () => {});
    const smaller = examplePlan('webstack', 'k8s', { exclude: ['audit'], priorState: { lineage: first.state.lineage, serial: first.state.serial } });
    expect(smaller.plan, smaller.diagnostics).toBeDefined();
    api.requests.length = 0;
    const r = await apply(smaller.plan!, options(), () => {});
    expect(r.deleted).toEqual(['audit']);
    const deletes = api.requests.filter((q) => q.method === 'DELETE').map((q) => q.path);
    expect(deletes).toContain('/apis/kubevirt.io/v1/namespaces/shop/virtualmachines/audit-0');
    expect(deletes).toContain('/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/mcl-guest-audit');
    // The machine goes before anything is applied: the new quota counts machines.
    const order = api.requests.map((q) => `${q.method} ${q.path}`);
    expect(order.indexOf('DELETE /apis/kubevirt.io/v1/namespaces/shop/virtualmachines/audit-0')).toBeLessThan(order.findIndex((x) => x.startsWith('PATCH')));
    expect(api.store.has('/apis/kubevirt.io/v1/namespaces/shop/virtualmachines/web-0')).toBe(true);
    // The first plan again: it was made with nothing deployed, and now there is a deployment.
    await expect(apply(plan, options(), () => {})).rejects.toMatchObject({ kind: 'stale' });
  });

  it("never overwrites the workspace's state of another backend's deployment", async () => {
    const kvmState = { format_version: '1.0', lineage: 'kvm-lineage', serial: 3, backend: 'kvm', plan_digest: null, system: null, instances: [], channels: [], exposures: [] };
    mkdirSync(join(dir, '.mcl'), { recursive: true });
    writeFileSync(join(dir, '.mcl', 'state.json'), JSON.stringify(kvmState));
    const events: BackendEvent[] = [];
    await apply(plan, options(), (e) => events.push(e));
    expect(JSON.parse(readFileSync(join(dir, '.mcl', 'state.json'), 'utf8')).lineage).toBe('kvm-lineage');
    expect(events.find((e) => e.type === 'warning')?.message).toMatch(/records a kvm deployment/);
  });

  it('fails with kind locked while another apply holds the lock, naming it', async () => {
    api.store.set('/api/v1/namespaces/shop', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    api.store.set('/api/v1/namespaces/shop/configmaps/mcl-lock', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'mcl-lock', namespace: 'shop' }, data: { holder: '{"operation":"apply","host":"ci-7"}' } });
    await expect(apply(plan, options(), () => {})).rejects.toMatchObject({ kind: 'locked', message: expect.stringContaining('ci-7') });
    expect(api.requests.some((q) => q.method === 'PATCH')).toBe(false);
  });

  it('gives up waiting after --ready-timeout, leaving the state unwritten', async () => {
    api.ready = false;
    await expect(apply(plan, options({ readyTimeoutMs: 100 }), () => {})).rejects.toMatchObject({ kind: 'failure', message: expect.stringMatching(/not ready after/) });
    expect(api.store.has('/api/v1/namespaces/shop/configmaps/mcl-state')).toBe(false);
    expect(api.store.has('/api/v1/namespaces/shop/configmaps/mcl-lock')).toBe(false);
  });

  it('refuses a context the kubeconfig does not have, before any request', async () => {
    await expect(apply(plan, options({ cluster: { context: 'prod' } }), () => {})).rejects.toMatchObject({ kind: 'usage', message: 'the kubeconfig has no context `prod`' });
    expect(api.requests).toEqual([]);
  });
});

describe('status, logs, destroy, doctor', () => {
  it('reports the deployment from the cluster, finding the namespace in the workspace state', async () => {
    await apply(plan, options(), () => {});
    const s = await status(options());
    expect(s.deployed).toBe(true);
    expect(s.instances.map((i) => [i.id, i.health, i.clones.length])).toEqual(plan.instances.map((i) => [i.id, 'healthy', i.mode === 'replicas' ? i.replicas : 1]));
    expect(s.exposures).toEqual([{ host_port: 8080, instance: 'web', port: 'http', listening: true, connections_total: 0, connections_open: 0 }]);
    expect(s.supervisor.running).toBe(true);
  });

  it('prints the console of an instance from its launcher pod, and refuses an unknown instance', async () => {
    await apply(plan, options(), () => {});
    api.store.set('/api/v1/namespaces/shop/pods/virt-launcher-web-0-abcde', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'virt-launcher-web-0-abcde', namespace: 'shop', labels: { 'app.kubernetes.io/managed-by': 'mclc', 'mcl.dev/instance': 'web', 'mcl.dev/clone': '0' } },
    });
    api.logs.set('virt-launcher-web-0-abcde', 'booting\nmcl agent ready\n');
    const lines: string[] = [];
    await logs('web', { ...options(), follow: false, tail: 10 }, (l) => lines.push(`${l.instance}#${l.clone} ${l.text}`));
    expect(lines).toEqual(['web#0 booting', 'web#0 mcl agent ready']);
    const logReq = api.requests.find((q) => q.path.endsWith('/log'))!;
    expect(logReq.query).toMatchObject({ container: 'guest-console-log', tailLines: '10' });
    await expect(logs('nope', { ...options(), follow: false }, () => {})).rejects.toMatchObject({ kind: 'usage' });
    // A guest that never ends its line does not make mclc hold it all.
    api.logs.set('virt-launcher-web-0-abcde', 'x'.repeat(200 * 1024));
    const long: number[] = [];
    await logs('web', { ...options(), follow: false }, (l) => long.push(l.text.length));
    expect(Math.max(...long)).toBeLessThanOrEqual(64 * 1024);
  });

  it('destroy deletes every object of the deployment and records an empty state', async () => {
    await apply(plan, options(), () => {});
    const r = await destroy({ ...options(), cluster: { namespace: 'shop' } }, () => {});
    expect(r.destroyed).toEqual(plan.instances.map((i) => i.id).sort());
    expect(r.state).toMatchObject({ serial: 2, plan_digest: null, instances: [] });
    const left = [...api.store.keys()].filter((k) => k.startsWith('/api') && k.includes('/namespaces/shop/'));
    expect(left).toEqual(['/api/v1/namespaces/shop/configmaps/mcl-state']);
  });

  it('status without a namespace and without a local state says what to pass', async () => {
    await expect(status(options())).rejects.toMatchObject({ kind: 'usage', hint: expect.stringContaining('--namespace') });
  });

  it('doctor finds the kubeconfig, reaches the API server and sees KubeVirt', async () => {
    const r = await doctor();
    expect(r.checks.map((c) => [c.id, c.status])).toEqual([
      ['kubeconfig', 'ok'],
      ['kube-context', 'ok'],
      ['kubevirt', 'ok'],
    ]);
    process.env.KUBECONFIG = join(dir, 'missing-kubeconfig');
    expect((await doctor()).checks).toEqual([expect.objectContaining({ id: 'kubeconfig', status: 'warn' })]);
    expect(existsSync(join(dir, 'missing-kubeconfig'))).toBe(false);
  });
});
