// The lifecycle commands on a kubevirt deployment, through mclc's own option
// handling, against the fake API server of the backend's tests (loopback):
// apply streams progress, status finds the deployment from the workspace's
// copy of the state or from --namespace alone, destroy empties it.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prettyJson } from '@mcl/plan';
import { run } from '../src/cli';
import { captureContext } from './capture';
import { examplePlan } from '../../backends/kubevirt/test/plans';
import { kubeconfigFor, startFakeApiServer, type FakeApiServer } from '../../backends/kubevirt/test/fake-apiserver';

let api: FakeApiServer;
const tmp = mkdtempSync(join(tmpdir(), 'mclc-kubevirt-'));
const saved = process.env.KUBECONFIG;

beforeAll(async () => {
  api = await startFakeApiServer();
  writeFileSync(join(tmp, 'kubeconfig'), kubeconfigFor(api.url));
  process.env.KUBECONFIG = join(tmp, 'kubeconfig');
  writeFileSync(join(tmp, 'shop.plan'), prettyJson(examplePlan('webstack').plan));
});
afterAll(async () => {
  await api.close();
  rmSync(tmp, { recursive: true, force: true });
  if (saved === undefined) delete process.env.KUBECONFIG;
  else process.env.KUBECONFIG = saved;
});

async function mclc(args: string[], cwd = tmp) {
  const ctx = captureContext(cwd, { ...process.env });
  const code = await run(args, ctx);
  return { code, stdout: ctx.stdout, stderr: ctx.stderr };
}

describe('mclc on a kubevirt deployment', () => {
  it('applies with progress as JSON lines, then status finds it from the workspace and from --namespace alone', async () => {
    const a = await mclc(['apply', 'shop.plan', '--root', tmp, '--json']);
    expect(a.stderr).not.toMatch(/error/);
    expect(a.code).toBe(0);
    const events = a.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; action?: string; instance?: string });
    expect(events.filter((e) => e.type === 'instance' && e.action === 'ready')).toHaveLength(7);
    expect(events.at(-1)).toMatchObject({ type: 'result', accelerator: { name: 'kubevirt' } });

    const s = await mclc(['status', '--root', tmp, '--json']);
    expect(s.code).toBe(0);
    expect(JSON.parse(s.stdout)).toMatchObject({ deployed: true, system: 'webstack.Shop' });
    const elsewhere = mkdtempSync(join(tmp, 'runner-'));
    const s2 = await mclc(['status', '--root', elsewhere, '--namespace', 'shop', '--json'], elsewhere);
    expect(s2.code).toBe(0);
    expect(JSON.parse(s2.stdout).instances).toHaveLength(6);
  });

  it("applies beside a local KVM deployment without taking its state for the cluster's", async () => {
    const ws = mkdtempSync(join(tmp, 'both-'));
    mkdirSync(join(ws, '.mcl'));
    const kvmState = { format_version: '1.0', lineage: 'kvm-lineage', serial: 3, backend: 'kvm', plan_digest: 'x', system: 'webstack.Shop', instances: examplePlan('webstack', 'local').plan!.instances, channels: [], exposures: [] };
    writeFileSync(join(ws, '.mcl', 'state.json'), prettyJson(kvmState));
    const other = join(tmp, 'other.plan');
    writeFileSync(other, prettyJson({ ...JSON.parse(readFileSync(join(tmp, 'shop.plan'), 'utf8')) }));
    await mclc(['destroy', '--root', tmp, '--namespace', 'shop']);
    const a = await mclc(['apply', other, '--root', ws]);
    expect(a.stderr).not.toMatch(/stale|error/);
    expect(a.code).toBe(0);
    expect(JSON.parse(readFileSync(join(ws, '.mcl', 'state.json'), 'utf8')).lineage).toBe('kvm-lineage');
  });

  it('destroy with --namespace empties the deployment; a context the kubeconfig lacks is a usage error', async () => {
    const bad = await mclc(['status', '--root', tmp, '--context', 'nope']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('the kubeconfig has no context `nope`');
    const d = await mclc(['destroy', '--root', tmp, '--namespace', 'shop']);
    expect(d.code).toBe(0);
    expect(d.stdout).toContain('Destroy complete');
    expect(JSON.parse((await mclc(['status', '--root', tmp, '--json'])).stdout).deployed).toBe(false);
  });
});
