// `migrateIn` and `migrateOut` as the CLI calls them (plan/src/backend.ts):
// the two halves of `mclc migrate`, each run on its host under that host's
// state lock, each asking the deployment's supervisor there to do the work
// (kept.ts on the destination, migrate-out.ts on the clone's home host;
// spec/hosts.md, "Live migration").

import { join } from 'node:path';
import { acquireLock, readState, writeState, type StateLock } from '@mcl/plan/state-store';
import type { DeploymentState } from '@mcl/plan';
import type { MigrateInOptions, MigrateInResult, MigrateOutOptions, MigrateOutResult } from '@mcl/plan/backend';
import { callControl } from './control';
import { BackendFailure } from './errors';
import type { EventSink } from './events';
import { SOCKET } from './daemon';
import { findRunDir, type RunDir } from './rundir';
import { loadState, lock, ping } from './commands';
import { identityLocked } from './links';
import { whoAmI } from './records';

/** How long the destination's supervisor has to start the incoming QEMU once its template is there. */
const KEEP_READY_MS = 60_000;

/** The deployment's run directory with its supervisor answering, or a failure saying to apply first. */
async function liveRunDir(stateFile: string, what: string): Promise<RunDir> {
  const found = findRunDir(stateFile);
  if (found.kind !== 'ours' || !(await ping(found))) {
    throw new BackendFailure('failure', `nothing of this deployment runs on this host: ${what}`, 'apply the plan on this host first (see `mclc status`)');
  }
  return found;
}

/**
 * On the destination host: checks that this host runs the plan `planDigest`, makes sure of this
 * host's link identity for `target`, and asks the supervisor to keep the incoming clone
 * (template built first when missing). The kept clone lives in the supervisor; the lock is held
 * only while it is set up.
 */
export async function migrateIn(opts: MigrateInOptions, onEvent: EventSink): Promise<MigrateInResult> {
  const l = await lock(opts, 'migrate-in', onEvent);
  try {
    const state = loadState(opts.stateFile);
    if (!state || state.plan_digest !== opts.planDigest) {
      throw new BackendFailure(
        'stale',
        `this host runs ${state?.plan_digest ? `plan ${state.plan_digest.slice(0, 12)}` : 'no plan'}, not plan ${opts.planDigest.slice(0, 12)} of the source; it cannot take its clone`,
        'apply the same plan on both hosts first',
      );
    }
    if (state.backend !== 'kvm') throw new BackendFailure('stale', `the state here belongs to the ${state.backend} backend`, 'move clones between hosts of the KVM backend');
    const rd = await liveRunDir(opts.stateFile, 'it cannot take a moving clone');
    const { cert } = await identityLocked(opts, opts.target);
    const r = await callControl<{ port: number; template_built: boolean; template_ms: number }>(
      join(rd.dir, SOCKET),
      {
        op: 'keep',
        instance: opts.instance,
        clone: opts.clone,
        target: opts.target,
        from: opts.from,
        listen: opts.listen,
        mode: opts.mode,
        readyTimeoutMs: KEEP_READY_MS,
      },
      onEvent,
      opts.signal,
    );
    return { port: r.port, cert, template_built: r.template_built, template_ms: r.template_ms };
  } finally {
    l.release();
  }
}

/**
 * On the clone's home host: asks the supervisor to move the clone to the destination that
 * `migrateIn` prepared, then records it in the state's `moved` (serial + 1) under the lock.
 */
export async function migrateOut(opts: MigrateOutOptions, onEvent: EventSink): Promise<MigrateOutResult> {
  const l = await lock(opts, 'migrate', onEvent);
  try {
    const state = loadState(opts.stateFile);
    if (!state || !state.instances.some((i) => i.id === opts.instance)) {
      throw new BackendFailure('usage', `no instance ${opts.instance} in the deployment on this host`, `instances here: ${(state?.instances ?? []).map((i) => i.id).join(', ') || 'none (nothing is deployed)'}`);
    }
    const rd = await liveRunDir(opts.stateFile, 'there is no clone to move');
    const r = await callControl<MigrateOutResult & { at: string }>(
      join(rd.dir, SOCKET),
      { op: 'migrate', instance: opts.instance, clone: opts.clone, to: opts.to, mode: opts.mode, who: whoAmI() },
      onEvent,
      opts.signal,
    );
    const { at, ...result } = r;
    writeState(opts.stateFile, withMoved(state, [{ instance: opts.instance, clone: opts.clone, to: opts.to.target, at }]));
    return result;
  } finally {
    l.release();
  }
}

/** `state` with `moved` entries added (replacing those of the same clones), serial + 1. */
export function withMoved(state: DeploymentState, add: NonNullable<DeploymentState['moved']>): DeploymentState {
  const keys = new Set(add.map((m) => `${m.instance}#${m.clone}`));
  const moved = [...(state.moved ?? []).filter((m) => !keys.has(`${m.instance}#${m.clone}`)), ...add].sort(
    (a, b) => a.instance.localeCompare(b.instance) || a.clone - b.clone,
  );
  return { ...state, serial: state.serial + 1, moved };
}

/**
 * Called by the home supervisor when a moved clone's QEMU ended on the other host (the move is
 * over; the restart policy brings the clone back here): its `moved` entry leaves the state, under
 * the state lock. When another command holds the lock (an apply, a destroy), nothing is written
 * here: that command writes the state from the supervisor's view. Returns whether it wrote.
 */
export async function forgetMoved(stateFile: string, instance: string, clone: number): Promise<boolean> {
  let l: StateLock;
  try {
    l = await acquireLock(stateFile, { operation: 'moved', timeoutMs: 0 });
  } catch {
    return false;
  }
  try {
    const st = readState(stateFile);
    if (!st?.moved?.some((m) => m.instance === instance && m.clone === clone)) return false;
    const moved = st.moved.filter((m) => m.instance !== instance || m.clone !== clone);
    const { moved: _old, ...rest } = st;
    writeState(stateFile, { ...rest, serial: st.serial + 1, ...(moved.length ? { moved } : {}) });
    return true;
  } finally {
    l.release();
  }
}
