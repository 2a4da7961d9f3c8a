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

export { doctor } from './doctor';

/** The Xen backend as the KVM lifecycle sees it: its name in the state, and destroy's domain reaper. */
const XEN: lifecycle.LifecycleBackend = {
  name: 'xen',
  async reap(rd) {
    return new XenRuntime({ runDir: rd.dir, token: rd.token }).reapOrphans().catch(() => []);
  },
};

export function apply(plan: Plan, opts: ApplyOptions, onEvent: EventSink) {
  return lifecycle.apply(plan, opts, onEvent, XEN);
}

export function destroy(opts: BackendOptions, onEvent: EventSink) {
  return lifecycle.destroy(opts, onEvent, XEN);
}

export function status(opts: BackendOptions) {
  return lifecycle.status(opts);
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
