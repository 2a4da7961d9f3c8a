// `mclc doctor` for the KVM backend: the substrate's host checks (QEMU,
// kernel, busybox, /dev/kvm and whether KVM really runs guests, shared memory)
// in the CLI's report shape. Running on TCG works but is slow, so it (and a
// missing /dev/kvm with TCG working) is a warning rather than a pass or a
// failure; so is a missing zygote, which costs memory per clone.

import type { DoctorCheck, DoctorReport } from './events';
import { detectCgroups } from './cgroups';

export async function doctor(): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  try {
    const vm = await import('../vm/index');
    const r = await vm.doctor();
    const tcg = r.accelerator?.accel === 'tcg';
    for (const c of r.checks) {
      if (c.name === 'accelerator' && c.ok && tcg) {
        checks.push({ id: c.name, status: 'warn', summary: c.detail, hint: c.hint ?? 'guests work under TCG but boot and run slower; use a host where KVM works for speed' });
        continue;
      }
      // Deployments still run without these: without /dev/kvm on TCG, without the zygote with QEMU started per clone.
      const degraded = !c.ok && (c.name === 'zygote' || (c.name === 'kvm-device' && tcg));
      checks.push({ id: c.name, status: c.ok ? 'ok' : degraded ? 'warn' : 'fail', summary: c.detail, ...(c.hint ? { hint: c.hint } : {}) });
    }
  } catch (e) {
    checks.push({ id: 'substrate', status: 'fail', summary: `the VM substrate could not run its checks: ${(e as Error).message}`, hint: 'run backends/kvm/scripts/install-deps.sh' });
  }
  const cg = detectCgroups();
  checks.push(
    cg.version === 'none'
      ? { id: 'cgroups', status: 'warn', summary: `no cgroup can be made: memory and vCPU limits are not enforced (${cg.missing.join('; ')})`, hint: 'run the supervisor as root or under a service manager that delegates a cgroup with the cpu and memory controllers' }
      : {
          id: 'cgroups',
          status: cg.cpu && cg.memory ? 'ok' : 'warn',
          summary: `cgroup ${cg.version}: ${cg.cpu ? `cpu under ${cg.cpu}` : 'no cpu controller'}, ${cg.memory ? `memory under ${cg.memory}` : 'no memory controller'}${cg.missing.length ? ` (${cg.missing.join('; ')})` : ''}`,
          ...(cg.cpu && cg.memory ? {} : { hint: 'limits are enforced only for the controllers named' }),
        },
  );
  return { checks };
}
