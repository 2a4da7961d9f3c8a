// `mclc checkpoint` and `mclc restore` as the CLI calls them (plan/src/backend.ts).
// They hold the state lock (a checkpoint must not race an apply or a
// destroy) and ask the deployment's supervisor, which owns the clones and
// the broker, to do the work (supervisor.ts, checkpoint.ts).

import { existsSync, mkdirSync, readdirSync, rmSync, lstatSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Plan } from '@mcl/plan';
import { callControl } from './control';
import { BackendFailure } from './errors';
import type { CheckpointOptions, CheckpointResult, EventSink, RestoreOptions, RestoreResult } from './events';
import { SOCKET } from './daemon';
import { findRunDir } from './rundir';
import { ensureSupervisor, loadState, lock, ping, runDirForApply, stopIfIdle, writeDeployedState } from './commands';
import { verifyCheckpoint, type RestoreSummary } from './checkpoint';
import type { ProcessRecord } from './supervisor';

export async function checkpoint(opts: CheckpointOptions, onEvent: EventSink): Promise<CheckpointResult> {
  const l = await lock(opts, 'checkpoint', onEvent);
  try {
    loadState(opts.stateFile);
    const found = findRunDir(opts.stateFile);
    if (found.kind !== 'ours' || !(await ping(found))) {
      throw new BackendFailure('failure', 'nothing of this deployment runs: there is nothing to checkpoint', 'see `mclc status`; apply the plan first');
    }
    const out = resolve(opts.workspace, opts.out);
    let created = false;
    if (existsSync(out)) {
      const st = lstatSync(out);
      if (!st.isDirectory() || readdirSync(out).length > 0) {
        throw new BackendFailure('usage', `${out} exists and is not an empty directory`, 'name a new directory with --out');
      }
    } else {
      mkdirSync(out, { recursive: true, mode: 0o700 });
      created = true;
    }
    try {
      return await callControl<CheckpointResult>(join(found.dir, SOCKET), { op: 'checkpoint', dir: out, instances: opts.instances }, onEvent, opts.signal);
    } catch (e) {
      // A checkpoint that failed leaves nothing behind that could pass for one (its manifest is written last).
      if (created && !opts.signal.aborted) rmSync(out, { recursive: true, force: true });
      throw e;
    }
  } finally {
    l.release();
  }
}

export async function restore(dir: string, opts: RestoreOptions, onEvent: EventSink): Promise<RestoreResult> {
  const started = Date.now();
  const l = await lock(opts, 'restore', onEvent);
  try {
    const abs = resolve(opts.workspace, dir);
    // Checked here first, so that a damaged or foreign checkpoint is refused before a supervisor is even started;
    // the supervisor checks it again as it reads it.
    onEvent({ type: 'phase', phase: 'verify', action: 'start', message: `checking ${abs}` });
    const cp = verifyCheckpoint(abs);
    onEvent({ type: 'phase', phase: 'verify', action: 'done', message: `checkpoint of ${cp.manifest.system} (plan ${cp.manifest.plan_digest.slice(0, 12)}) is complete` });
    const prior = loadState(opts.stateFile);
    if (prior && prior.backend !== 'kvm') throw new BackendFailure('stale', `the state belongs to the ${prior.backend} backend; nothing was changed`, 'destroy that deployment first or use another --state');
    if (prior?.plan_digest && prior.plan_digest !== cp.manifest.plan_digest) {
      throw new BackendFailure(
        'stale',
        `the checkpoint is of plan ${cp.manifest.plan_digest.slice(0, 12)}, but the state records plan ${prior.plan_digest.slice(0, 12)} deployed; nothing was changed`,
        'destroy the deployment first to bring the checkpoint back as it was',
      );
    }
    const rd = runDirForApply(opts.stateFile);
    await ensureSupervisor(rd, opts.supervisorCommand, onEvent);
    let r: RestoreSummary & { plan: Plan; processes?: ProcessRecord[] };
    try {
      r = await callControl(join(rd.dir, SOCKET), { op: 'restore', dir: abs, readyTimeoutMs: opts.readyTimeoutMs }, onEvent, opts.signal);
    } catch (e) {
      if (!opts.signal.aborted && e instanceof BackendFailure) await stopIfIdle(rd);
      throw e;
    }
    const live = await callControl<{ accelerator?: { name: string; note?: string } }>(join(rd.dir, SOCKET), { op: 'status' }).catch(() => ({}) as { accelerator?: undefined });
    const state = writeDeployedState(opts.stateFile, prior, cp.plan, rd, { processes: r.processes ?? [], accelerator: live.accelerator ?? null }, true, onEvent);
    return { dir: abs, plan_digest: r.plan_digest, instances: r.instances, clones: r.clones, restore_ms: r.restore_ms, elapsed_ms: Date.now() - started, state, warnings: r.warnings };
  } finally {
    l.release();
  }
}
