// @mcl/backend-xen: deploys a plan as Xen domains whose channels all pass
// through the broker. The lifecycle (commands, the supervisor process and its
// watchdog, state, restart policies, sessions, status, logs, destroy,
// stale-plan refusal) is the KVM backend's, written against its GuestRuntime
// interface (@mcl/backend-kvm/lifecycle); this package supplies XenRuntime,
// domains instead of QEMU clones (xen-runtime.ts), and removes the
// deployment's domains where KVM kills processes.

import type { ApplyOptions, BackendOptions, EventSink, LogSink, LogsOptions } from '@mcl/plan/backend';
import type { Plan } from '@mcl/plan';
import * as lifecycle from '@mcl/backend-kvm/lifecycle';
import { XenRuntime } from './xen-runtime';
import { envNumber } from './toolstack';

export { doctor } from './doctor';

/**
 * How long apply waits for the supervisor it started to answer:
 * `$MCL_XEN_SUPERVISOR_START_MS` (at least 1 s), else 120 s. The supervisor
 * runs in dom0, a guest of the hypervisor whose every page-table change is a
 * hypercall, and a nested dom0 under TCG on a loaded machine takes far longer
 * than KVM's 15 s to start node twice (the watchdog, then the supervisor).
 */
export function supervisorStartMs(env: NodeJS.ProcessEnv = process.env): number {
  return envNumber(env, 'MCL_XEN_SUPERVISOR_START_MS', 120_000, 1000);
}

/**
 * How long `status` waits for the supervisor's answer to its ping:
 * `$MCL_XEN_PING_TIMEOUT_MS` (at least 1 s), else 30 s. The KVM backend's
 * 5 s is too short for a supervisor in a nested dom0 on a loaded machine,
 * and status would then show the deployment with no clone.
 */
export function pingTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  return envNumber(env, 'MCL_XEN_PING_TIMEOUT_MS', 30_000, 1000);
}

/** The Xen backend as the KVM lifecycle sees it: its name in the state, its supervisor's start and ping bounds, and destroy's domain reaper. */
const XEN: lifecycle.LifecycleBackend = {
  name: 'xen',
  get supervisorStartMs() {
    return supervisorStartMs();
  },
  get pingTimeoutMs() {
    return pingTimeoutMs();
  },
  async reap(rd) {
    return new XenRuntime({ runDir: rd.dir, token: rd.token }).reapOrphans().catch(() => []);
  },
};

export { XEN as lifecycleBackend };

export function apply(plan: Plan, opts: ApplyOptions, onEvent: EventSink) {
  return lifecycle.apply(plan, opts, onEvent, XEN);
}

export function destroy(opts: BackendOptions, onEvent: EventSink) {
  return lifecycle.destroy(opts, onEvent, XEN);
}

export function status(opts: BackendOptions) {
  return lifecycle.status(opts, XEN);
}

export function logs(instanceId: string, opts: LogsOptions, onLine: LogSink) {
  return lifecycle.logs(instanceId, opts, onLine);
}

/** Entry of `mclc --backend xen __supervise DIR`: the supervisor with a runtime of domains. */
export async function runSupervisor(dir: string): Promise<void> {
  const token = process.env[lifecycle.DEPLOYMENT_ENV] ?? '';
  // The token is checked against the run directory by runSupervisor before anything runs; the runtime only
  // names domains with it. The log goes to the supervisor's own log through stderr.
  const runtime = new XenRuntime({ runDir: dir, token, log: (l) => process.stderr.write(`${new Date().toISOString()} xen: ${l}\n`) });
  return lifecycle.runSupervisor(dir, { runtime });
}
