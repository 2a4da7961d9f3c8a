// @mcl/backend-kubevirt: deploys a plan to a Kubernetes cluster with KubeVirt,
// as the objects of ./render.ts (spec/kubevirt.md). The lifecycle commands
// implement the CLI's BackendModule (plan/src/backend.ts); ./render is also a
// subpath of its own, which `mclc render` loads without the client library.

import { usage } from './errors';

export { apply, destroy, status, logs, doctor } from './lifecycle';

/** The kubevirt backend runs no supervisor: the cluster's controllers keep the machines running. */
export async function runSupervisor(_dir: string): Promise<void> {
  throw usage('the kubevirt backend has no supervisor process: KubeVirt keeps the machines running');
}
