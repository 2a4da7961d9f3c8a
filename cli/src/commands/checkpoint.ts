// `mclc checkpoint` and `mclc restore`: delegated to the backend that made
// the deployment, through the optional functions of the backend contract
// (plan/src/backend.ts); a backend without them is refused with a clear
// message. The format is spec/checkpoint.md.

import { join, resolve } from 'node:path';
import type { CheckpointResult, RestoreResult } from '@mcl/plan/backend';
import { loadBackend } from '../backends';
import type { Context } from '../context';
import { CliError, ExitCode, type ExitCodeValue } from '../exit';
import { formatBytes, plural } from '../io';
import { displayPath } from '../files';
import { deployedWith, eventPrinter, parseDuration, withBackend, type LifecycleOptions } from './lifecycle';

/** The default directory of a checkpoint: beside the state, named by the time it was taken. */
function defaultOut(stateFile: string): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return join(stateFile, '..', 'checkpoints', stamp);
}

export async function checkpointCommand(ctx: Context, instances: string[], o: LifecycleOptions & { out?: string }): Promise<ExitCodeValue> {
  if (o.host !== undefined) return (await import('./remote-lifecycle')).remoteCheckpoint(ctx, instances, o);
  const row = deployedWith(ctx, o);
  const backend = await loadBackend(row);
  if (!backend.checkpoint) throw new CliError(`the ${row.title} backend cannot take checkpoints`, ExitCode.BackendFailure, 'deploy with a backend that supports them (see spec/checkpoint.md)');
  return withBackend(ctx, o, row, !!o.json, async (opts) => {
    const out = o.out ? resolve(ctx.cwd, o.out) : defaultOut(opts.stateFile);
    printCheckpointResult(ctx, o, await backend.checkpoint!({ ...opts, out, instances }, eventPrinter(ctx, o)));
    return ExitCode.Ok;
  });
}

/** What `checkpoint` prints when it is done (the same for a deployment on another host, whose directory is named as the host names it). */
export function printCheckpointResult(ctx: Context, o: { json?: boolean; host?: string }, r: CheckpointResult): void {
  if (o.json) {
    ctx.out(JSON.stringify({ '@timestamp': new Date().toISOString(), type: 'result', ...r }) + '\n');
    return;
  }
  const s = ctx.outStyle;
  const dir = o.host !== undefined ? r.dir : displayPath(ctx.cwd, r.dir);
  ctx.out(
    `${s.green(s.bold('Checkpoint complete:'))} ${plural(r.instances.length, 'instance')} (${plural(r.clones, 'clone')}) in ${dir}${o.host !== undefined ? ` on ${o.host}` : ''}\n` +
      `  paused ${r.pause_ms} ms; ${formatBytes(r.bytes)} on disk (guest pages ${formatBytes(r.ram_bytes)}, device state ${formatBytes(r.device_state_bytes)}); took ${(r.elapsed_ms / 1000).toFixed(1)}s.\n` +
      `  bring it back with \`mclc restore ${dir}${o.host !== undefined ? ` --host ${o.host}` : ''}\`.\n`,
  );
}

/** What `restore` prints when it is done. */
export function printRestoreResult(ctx: Context, o: { json?: boolean; host?: string }, r: RestoreResult): void {
  if (o.json) {
    ctx.out(JSON.stringify({ '@timestamp': new Date().toISOString(), type: 'result', ...r, state: { lineage: r.state.lineage, serial: r.state.serial } }) + '\n');
    return;
  }
  const s = ctx.outStyle;
  ctx.out(
    `${s.green(s.bold('Restore complete:'))} ${plural(r.instances.length, 'instance')} (${plural(r.clones, 'clone')}) running from ${o.host !== undefined ? r.dir : displayPath(ctx.cwd, r.dir)}; ready in ${r.restore_ms} ms.\n` +
      r.warnings.map((w) => `  ${s.yellow('warning')}: ${w}\n`).join('') +
      `  state serial ${r.state.serial}; see \`mclc status\`.\n`,
  );
}

export async function restoreCommand(ctx: Context, dir: string, o: LifecycleOptions & { readyTimeout?: string }): Promise<ExitCodeValue> {
  if (o.host !== undefined) return (await import('./remote-lifecycle')).remoteRestore(ctx, dir, o);
  const row = deployedWith(ctx, o);
  const backend = await loadBackend(row);
  if (!backend.restore) throw new CliError(`the ${row.title} backend cannot restore checkpoints`, ExitCode.BackendFailure, 'deploy with a backend that supports them (see spec/checkpoint.md)');
  const readyTimeoutMs = o.readyTimeout ? parseDuration(o.readyTimeout, '--ready-timeout') : 60_000;
  return withBackend(ctx, o, row, !!o.json, async (opts) => {
    printRestoreResult(ctx, o, await backend.restore!(resolve(ctx.cwd, dir), { ...opts, readyTimeoutMs }, eventPrinter(ctx, o)));
    return ExitCode.Ok;
  });
}
