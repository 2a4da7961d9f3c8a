// @mcl/backend-kvm: deploys a plan as copy-on-write QEMU clones whose channels
// all pass through the broker. The lifecycle commands implement the CLI's
// BackendModule (plan/src/backend.ts); the VM substrate is in ./vm and ./image.

export { apply, destroy, status, logs } from './lifecycle/commands';
export { checkpoint, restore } from './lifecycle/checkpoint-commands';
export { doctor } from './lifecycle/doctor';
export { audit, auditVerify, usage } from './lifecycle/report-commands';
export { linkIdentity, linkConfig } from './lifecycle/links';
export { migrateIn, migrateOut } from './lifecycle/migrate-commands';
export { BackendFailure } from './lifecycle/errors';
/** The guest image builder, also used by `mclc render --format containerdisk` to package an image for KubeVirt. */
export { buildImage } from './image';
import { runSupervisor as run } from './lifecycle/daemon';

/** Entry of the hidden `mclc __supervise DIR` command: the per-deployment supervisor process. */
export function runSupervisor(dir: string): Promise<void> {
  return run(dir);
}
