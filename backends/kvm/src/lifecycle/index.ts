// `@mcl/backend-kvm/lifecycle`: the deployment lifecycle written against the
// GuestRuntime interface, for another substrate to plug into (the Xen backend
// supplies a runtime of domains and reuses the commands, the supervisor
// process, its watchdog, the state, the restart policies and the broker as
// they are here).

export { apply, destroy, status, logs, SUPERVISOR_START_MS, type LifecycleBackend } from './commands';
export { runSupervisor, type RunSupervisorOptions } from './daemon';
export { BackendFailure } from './errors';
export { RESTART_BACKOFF, restartAllowed } from './supervisor';
export { programFor } from './qemu-runtime';
export { DEPLOYMENT_ENV, type RunDir } from './rundir';
export type { CloneHandle, CloneRequest, ExitInfo, GuestRuntime, HelperProcess } from './guest-runtime';
export type { EventSink } from './events';
