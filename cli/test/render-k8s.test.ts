// `mclc render PLAN --format k8s`: the objects of a kubevirt plan on standard
// output or one file per object, verified as `apply` verifies a plan.

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { prettyJson } from '@mcl/plan';
import { run } from '../src/cli';
import { captureContext } from './capture';
import { examplePlan } from '../../backends/kubevirt/test/plans';

const tmp = mkdtempSync(join(tmpdir(), 'mclc-render-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const planFile = join(tmp, 'shop.plan');
writeFileSync(planFile, prettyJson(examplePlan('webstack').plan));

async function mclc(args: string[]) {
  const ctx = captureContext(tmp);
  const code = await run(args, ctx);
  return { code, stdout: ctx.stdout, stderr: ctx.stderr };
}

describe('mclc render --format k8s', () => {
  it('prints the objects as YAML, the same bytes every time, and as a JSON list with --json', async () => {
    const a = await mclc(['render', 'shop.plan']);
    expect(a.stderr).toBe('');
    expect(a.code).toBe(0);
    expect(a.stdout.startsWith('---\napiVersion: v1\nkind: Secret\n')).toBe(true);
    expect((await mclc(['render', 'shop.plan', '--format', 'k8s'])).stdout).toBe(a.stdout);
    const j = await mclc(['render', 'shop.plan', '--json']);
    const list = JSON.parse(j.stdout) as { kind: string; items: { kind: string }[] };
    expect(list.kind).toBe('List');
    expect(list.items.filter((o) => o.kind === 'VirtualMachine')).toHaveLength(7);
  });

  it('writes one file per object with --out, and removes only the files an earlier render wrote', async () => {
    const dir = join(tmp, 'k8s');
    expect((await mclc(['render', 'shop.plan', '--out', 'k8s'])).code).toBe(0);
    const first = readdirSync(dir).sort();
    expect(first[0]).toBe('000-secret-mcl-plan.yaml');
    expect(readFileSync(join(dir, first[0]), 'utf8')).toMatch(/^# Rendered by mclc from plan sha256:[0-9a-f]{64}; do not edit\n---\n/);
    writeFileSync(join(dir, '099-virtualmachine-gone-0.yaml'), '# Rendered by mclc from plan sha256:00; do not edit\n');
    writeFileSync(join(dir, '098-virtualmachine-mine-0.yaml'), 'kind: VirtualMachine\n');
    writeFileSync(join(dir, 'kustomization.yaml'), 'resources: []\n');
    expect((await mclc(['render', 'shop.plan', '--out', 'k8s'])).code).toBe(0);
    const second = readdirSync(dir).sort();
    expect(second).not.toContain('099-virtualmachine-gone-0.yaml');
    expect(second).toContain('098-virtualmachine-mine-0.yaml');
    expect(second).toContain('kustomization.yaml');
    expect(second.filter((f) => !['098-virtualmachine-mine-0.yaml', 'kustomization.yaml'].includes(f))).toEqual(first);
  });

  it('refuses a plan for another backend, and an edited plan', async () => {
    writeFileSync(join(tmp, 'kvm.plan'), prettyJson(examplePlan('webstack', 'local').plan));
    const kvm = await mclc(['render', 'kvm.plan']);
    expect(kvm.code).toBe(1);
    expect(kvm.stderr).toMatch(/targets backend `kvm`, not `kubevirt`/);
    const edited = JSON.parse(readFileSync(planFile, 'utf8'));
    edited.instances[0].memory_bytes *= 2;
    writeFileSync(join(tmp, 'edited.plan'), prettyJson(edited));
    const r = await mclc(['render', 'edited.plan']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/digests do not match|digest does not match/);
    expect(r.stdout).toBe('');
    expect(existsSync(join(tmp, 'edited'))).toBe(false);
  });

  it('--format containerdisk writes a build context per guest image, named as the VirtualMachines pull it', async () => {
    const saved = process.env.MCL_CACHE_DIR;
    process.env.MCL_CACHE_DIR = join(tmp, 'cache');
    try {
      expect((await mclc(['render', 'shop.plan', '--format', 'containerdisk'])).stderr).toMatch(/give it --out DIR/);
      const r = await mclc(['render', 'shop.plan', '--format', 'containerdisk', '--out', 'images']);
      expect(r.stderr).toMatch(/^busybox: images\/busybox \(build and push as registry\.example\.com\/mcl\/guest-busybox:[0-9a-f]{16}\)\n$/);
      expect(r.code).toBe(0);
      const ctxDir = join(tmp, 'images', 'busybox');
      expect(readdirSync(ctxDir).sort()).toEqual(['Dockerfile', 'boot', 'image.txt']);
      expect(readFileSync(join(ctxDir, 'Dockerfile'), 'utf8')).toMatch(/\nFROM scratch\nCOPY boot\/vmlinuz \/boot\/vmlinuz\nCOPY boot\/initrd.img \/boot\/initrd.img\n$/);
      const ref = readFileSync(join(ctxDir, 'image.txt'), 'utf8').trim();
      // The reference is the one the rendered VirtualMachines boot from.
      expect((await mclc(['render', 'shop.plan'])).stdout).toContain(`image: "${ref}"`);
      expect(readFileSync(join(ctxDir, 'boot', 'initrd.img')).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    } finally {
      if (saved === undefined) delete process.env.MCL_CACHE_DIR;
      else process.env.MCL_CACHE_DIR = saved;
    }
  }, 120_000);
});
