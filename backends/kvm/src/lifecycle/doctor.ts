// `mclc doctor` for the KVM backend: the substrate's host checks (QEMU,
// kernel, busybox, /dev/kvm and whether KVM really runs guests, shared memory)
// in the CLI's report shape.

import type { DoctorCheck, DoctorReport } from './events';

export async function doctor(): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  try {
    const vm = await import('../vm/index');
    const r = await vm.doctor();
    for (const c of r.checks) {
      checks.push({ id: c.name, status: c.ok ? 'ok' : 'fail', summary: c.detail, ...(c.hint ? { hint: c.hint } : {}) });
    }
    if (r.accelerator) {
      const tcg = r.accelerator.accel === 'tcg';
      checks.push({
        id: 'accelerator',
        status: tcg ? 'warn' : 'ok',
        summary: `guests run on ${r.accelerator.accel}: ${r.accelerator.reason}`,
        ...(tcg ? { hint: 'guests work under TCG but boot and run slower; use a host where KVM works for speed' } : {}),
      });
    }
  } catch (e) {
    checks.push({ id: 'substrate', status: 'fail', summary: `the VM substrate could not run its checks: ${(e as Error).message}`, hint: 'run backends/kvm/scripts/install-deps.sh' });
  }
  return { checks };
}
