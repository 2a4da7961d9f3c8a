// The kubevirt target: its settings, what the backend cannot realise
// (MCL0601), and the plan format it is written in.

import { describe, expect, test } from 'vitest';
import { PLAN_FORMAT_VERSION, validatePlan } from '@mcl/plan';
import { compileText } from './helpers';

const TARGET = 'target k8s {\n  backend kubevirt\n  namespace "shop"\n  context "prod"\n  memory 16GiB\n  vcpus 8\n}\n';

describe('kubevirt target', () => {
  test('records namespace and context in the plan, written as format 1.2', () => {
    const r = compileText(`component C { memory 128MiB }\nsystem S { c = C }\n${TARGET}deploy S to k8s\n`);
    expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(r.plan!.target).toEqual({ name: 'k8s', backend: 'kubevirt', namespace: 'shop', context: 'prod', memory_bytes: 16 * 1024 ** 3, vcpus: 8, vcpu_overcommit: 1 });
    expect(r.plan!.format_version).toBe('1.2');
    expect(PLAN_FORMAT_VERSION).toBe('1.2');
    expect(validatePlan(JSON.parse(JSON.stringify(r.plan))).errors).toEqual([]);
  });

  test('a kvm plan stays format 1.1, readable by an mclc that knows no kubevirt', () => {
    const r = compileText('component C { memory 128MiB }\nsystem S { c = C }\n');
    expect(r.plan!.format_version).toBe('1.1');
    expect(r.plan!.target).not.toHaveProperty('namespace');
  });

  test('refuses a per-session instance at the instance, saying why', () => {
    const r = compileText(`component C { memory 128MiB\n per session max 4\n expose p: Ping on tcp 9000 }\nprotocol Ping { call ping(string) -> string }\nsystem S { c = C }\n${TARGET}deploy S to k8s\n`);
    const errs = r.diagnostics.filter((d) => d.code === 'MCL0601');
    expect(errs.map((d) => d.message)).toEqual(['backend `kubevirt` cannot give `c` a fresh fork per session']);
    expect(errs[0].hint).toMatch(/KubeVirt cannot fork a running guest/);
    expect(r.plan).toBeUndefined();
  });

  test('refuses a kernel at a path of this machine, at the image property', () => {
    const r = compileText(`image mine { base "busybox-static"\n kernel "/boot/vmlinuz" }\ncomponent C { memory 128MiB\n image mine }\nsystem S { c = C }\n${TARGET}deploy S to k8s\n`);
    const errs = r.diagnostics.filter((d) => d.code === 'MCL0601');
    expect(errs.map((d) => d.message)).toEqual(['backend `kubevirt` cannot boot image `mine` with the kernel `/boot/vmlinuz` of this machine']);
    expect(compileText(`image mine { base "busybox-static"\n kernel "/boot/vmlinuz" }\ncomponent C { memory 128MiB\n image mine }\nsystem S { c = C }\n`).plan).toBeDefined();
  });

  test('counts every clone at its full memory: nothing is shared', () => {
    const src = (backend: string) =>
      `component C { memory 1GiB }\nsystem S { c = C { replicas 3 } }\ntarget t {\n  backend ${backend}\n${backend === 'kubevirt' ? '  namespace "a"\n' : ''}  memory 3GiB\n  vcpus 8\n}\ndeploy S to t\n`;
    expect(compileText(src('kvm')).plan).toBeDefined();
    const r = compileText(src('kubevirt'));
    expect(r.diagnostics.map((d) => d.code)).toContain('MCL0509');
  });

  test('needs a namespace, and refuses Kubernetes settings on other backends', () => {
    const a = compileText('component C { memory 128MiB }\nsystem S { c = C }\ntarget k { backend kubevirt\n memory 1GiB\n vcpus 1 }\ndeploy S to k\n');
    expect(a.diagnostics.filter((d) => d.code === 'MCL0603').map((d) => d.message)).toEqual(['target `k` uses backend `kubevirt` but does not say its namespace']);
    const b = compileText('component C { memory 128MiB }\nsystem S { c = C }\ntarget k { backend kvm\n namespace "x"\n memory 1GiB\n vcpus 1 }\ndeploy S to k\n');
    expect(b.diagnostics.filter((d) => d.code === 'MCL0603').map((d) => d.message)).toEqual(['`namespace` is a setting of backend `kubevirt`, not of `kvm`']);
    const c = compileText('component C { memory 128MiB }\nsystem S { c = C }\ntarget k { backend kubevirt\n namespace "Not_OK"\n memory 1GiB\n vcpus 1 }\ndeploy S to k\n');
    expect(c.diagnostics.filter((d) => d.code === 'MCL0603').map((d) => d.message)).toEqual(['`namespace` must be a Kubernetes namespace name in quotes']);
    const d = compileText('component C { memory 128MiB }\nsystem S { c = C }\ntarget k { backend kubevirtt\n namespace "a"\n memory 1GiB\n vcpus 1 }\ndeploy S to k\n');
    expect(d.diagnostics.find((x) => x.code === 'MCL0603')?.hint).toMatch(/kubevirt/);
  });
});
