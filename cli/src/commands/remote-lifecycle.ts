// The lifecycle commands for a deployment on another host: the same commands,
// run by the host's mclc over SSH (../remote.ts), their JSON lines rendered
// here exactly as the local commands render their own.

import { validateState, type DeploymentState, type Plan } from '@mcl/plan';
import { LINK_MAX_PEM, type MigrateInOptions, type MigrateInResult, type MigrateOutOptions, type MigrateOutResult, type ApplyResult, type LinkConfigInput, type AuditRecord, type AuditVerification, type BackendEvent, type CheckpointResult, type DestroyResult, type LogLine, type RestoreResult, type StatusReport, type UsageReport } from '@mcl/plan/backend';
import type { Context } from '../context';
import { CliError, ExitCode, type ExitCodeValue } from '../exit';
import { hostError, remoteHost, runOnHost, type RemoteHost } from '../remote';
import { eventPrinter, interruptSignal, printApplyResult, printDestroyResult, renderStatus, type LifecycleOptions } from './lifecycle';

/** Runs COMMAND on the host, handing its events to `onEvent` and its other lines to `onLine`; throws the error it reports. */
async function onHost(
  ctx: Context,
  host: RemoteHost,
  command: string,
  options: Record<string, unknown>,
  handlers: { onEvent?: (e: BackendEvent) => void; onLine: (line: Record<string, unknown>) => void; stdin?: string; json?: boolean; exitCodes?: ExitCodeValue[] },
): Promise<ExitCodeValue> {
  const interrupt = interruptSignal(ctx);
  let error: Record<string, unknown> | undefined;
  try {
    const code = await runOnHost(ctx, host, [command, JSON.stringify(options)], {
      doing: command,
      stdin: handlers.stdin,
      signal: interrupt.signal,
      onLine(line) {
        if (line.type === 'error') {
          // The first error is the one at the fault; the command may repeat it on its way out.
          if (!error) {
            error = line;
            if (handlers.json) ctx.out(JSON.stringify({ ...line, host: host.url }) + '\n');
          }
        } else if (typeof line.type === 'string' && line.type !== 'result' && 'message' in line && handlers.onEvent) {
          handlers.onEvent(line as unknown as BackendEvent);
        } else handlers.onLine(line);
      },
    });
    if (error) throw hostError(host, error, code);
    if (code !== ExitCode.Ok && command !== 'doctor' && !handlers.exitCodes?.includes(code)) throw new CliError(`${host.label}: ${command} failed (exit ${code}) without saying why`, code);
    return code;
  } finally {
    interrupt.dispose();
  }
}

export async function remoteApply(
  ctx: Context,
  plan: Plan,
  text: string,
  o: LifecycleOptions & { replace?: string[]; readyTimeout?: string; metrics?: string | true; part?: string },
): Promise<ExitCodeValue> {
  // A plan over several targets is sent whole (its digests and signature cover all of it); the host applies the part of `part`.
  const target = o.part !== undefined ? (plan.targets ?? []).find((t) => t.name === o.part) ?? plan.target : plan.target;
  const host = remoteHost(target.host!, `target ${target.name} names the host`);
  const printer = eventPrinter(ctx, o);
  return onHost(ctx, host, 'apply', { replace: o.replace ?? [], readyTimeout: o.readyTimeout, lockTimeout: o.lockTimeout, metrics: o.metrics, ...(o.part !== undefined ? { part: o.part } : {}) }, {
    stdin: text,
    json: o.json,
    onEvent: printer,
    onLine(line) {
      // The host's diff of the plan against its state, before it applies: what a local apply prints first.
      if (line.type === 'changes' && typeof line.summary === 'string') {
        if (o.json) ctx.out(JSON.stringify({ ...line, host: host.url }) + '\n');
        else ctx.err(`Applying ${plan.system} on ${host.label} (${host.address.workspace} there): ${line.summary.slice(0, 4096)}\n`);
      }
      if (line.type === 'result') printApplyResult(ctx, o, { ...(line as unknown as ApplyResult), ...(o.json ? { host: host.url } : {}) });
    },
  });
}

export async function remoteDestroy(ctx: Context, o: LifecycleOptions): Promise<ExitCodeValue> {
  const host = remoteHost(o.host!, '--host');
  return onHost(ctx, host, 'destroy', { lockTimeout: o.lockTimeout }, {
    json: o.json,
    onEvent: eventPrinter(ctx, o),
    onLine(line) {
      if (line.type === 'result') printDestroyResult(ctx, o, line as unknown as DestroyResult);
    },
  });
}

export async function remoteStatus(ctx: Context, o: LifecycleOptions): Promise<ExitCodeValue> {
  const host = remoteHost(o.host!, '--host');
  return onHost(ctx, host, 'status', { lockTimeout: o.lockTimeout }, {
    json: o.json,
    onLine(line) {
      if (line.type !== 'status' || !line.report || typeof line.report !== 'object') return;
      const report = line.report as StatusReport & { format_version?: string };
      if (o.json) ctx.out(JSON.stringify({ ...report, host: host.url }, null, 2) + '\n');
      else ctx.out(`${ctx.outStyle.dim(`on ${host.label}`)}\n${renderStatus(report, ctx)}`);
    },
  });
}

export async function remoteLogs(ctx: Context, instance: string, o: LifecycleOptions & { follow?: boolean; tail?: string; clone?: string }): Promise<ExitCodeValue> {
  const host = remoteHost(o.host!, '--host');
  const s = ctx.outStyle;
  return onHost(ctx, host, 'logs', { instance, follow: !!o.follow, tail: o.tail, clone: o.clone }, {
    json: o.json,
    onLine(raw) {
      const line = raw as unknown as LogLine;
      if (typeof line.text !== 'string') return;
      if (o.json) ctx.out(JSON.stringify(line) + '\n');
      else ctx.out(`${s.dim(`${line.instance}#${line.clone} ${line.stream === 'console' ? 'console' : 'program'} |`)} ${line.text.replace(/\n$/, '')}\n`);
    },
  });
}

/** The host's doctor report, as `{ ok, checks }`. */
export async function remoteDoctor(ctx: Context, url: string): Promise<{ ok: boolean; checks: { id: string; status: string; summary: string; hint?: string }[] }> {
  const host = remoteHost(url, '--host');
  let report: { ok: boolean; checks: { id: string; status: string; summary: string; hint?: string }[] } | undefined;
  await onHost(ctx, host, 'doctor', {}, {
    onLine(line) {
      if (line.type === 'doctor' && line.report && typeof line.report === 'object') report = line.report as typeof report;
    },
  });
  if (!report || !Array.isArray(report.checks)) throw new CliError(`${host.label} sent no doctor report`, ExitCode.BackendFailure);
  return report;
}

/** The deployment state on the host, for `mclc plan` to plan against (undefined when nothing was deployed there). */
export async function remoteState(ctx: Context, url: string): Promise<DeploymentState | undefined> {
  const host = remoteHost(url, 'the target names the host');
  let state: unknown = null;
  await onHost(ctx, host, 'state', {}, {
    onLine(line) {
      if (line.type === 'state') state = line.state ?? null;
    },
  });
  if (state === null) return undefined;
  // What the host sent is checked as a state file read here would be (it is already parsed: no need to write it out again).
  const checked = validateState(state);
  if (!checked.state) throw new CliError(`the state on ${url} is not a valid deployment state`, ExitCode.BackendFailure, 'Run `mclc status --host` against it; the host writes its state with apply and destroy.');
  return checked.state;
}

/** `checkpoint --host`: the checkpoint is written on the host (`--out` names a directory there, relative to its workspace). */
export async function remoteCheckpoint(ctx: Context, instances: string[], o: LifecycleOptions & { out?: string }): Promise<ExitCodeValue> {
  const host = remoteHost(o.host!, '--host');
  const { printCheckpointResult } = await import('./checkpoint');
  return onHost(ctx, host, 'checkpoint', { instances, ...(o.out !== undefined ? { out: o.out } : {}), lockTimeout: o.lockTimeout }, {
    json: o.json,
    onEvent: eventPrinter(ctx, o),
    onLine(line) {
      if (line.type === 'result') printCheckpointResult(ctx, o, { ...(line as unknown as CheckpointResult), ...(o.json ? { host: host.url } : {}) });
    },
  });
}

/** `restore DIR --host`: DIR is a checkpoint on the host. */
export async function remoteRestore(ctx: Context, dir: string, o: LifecycleOptions & { readyTimeout?: string }): Promise<ExitCodeValue> {
  const host = remoteHost(o.host!, '--host');
  const { printRestoreResult } = await import('./checkpoint');
  return onHost(ctx, host, 'restore', { dir, readyTimeout: o.readyTimeout, lockTimeout: o.lockTimeout }, {
    json: o.json,
    onEvent: eventPrinter(ctx, o),
    onLine(line) {
      if (line.type === 'result') printRestoreResult(ctx, o, { ...(line as unknown as RestoreResult), ...(o.json ? { host: host.url } : {}) });
    },
  });
}

/** `usage --host`: the host's ledger, summed there, rendered here as a local report is. */
export async function remoteUsage(ctx: Context, o: LifecycleOptions & { since?: string; by?: string; format?: string }): Promise<ExitCodeValue> {
  const host = remoteHost(o.host!, '--host');
  const { parseSince, renderUsageCsv, renderUsageTable } = await import('./operations');
  const since = o.since !== undefined ? parseSince(o.since).toISOString() : undefined;
  return onHost(ctx, host, 'usage', { ...(since !== undefined ? { since } : {}), ...(o.by !== undefined ? { by: o.by } : {}), lockTimeout: o.lockTimeout }, {
    json: o.format === 'json',
    onLine(line) {
      if (line.type !== 'usage' || !line.report || typeof line.report !== 'object') return;
      const r = line.report as UsageReport;
      ctx.out(o.format === 'json' ? JSON.stringify({ ...r, host: host.url }, null, 2) + '\n' : o.format === 'csv' ? renderUsageCsv(r) : `${ctx.outStyle.dim(`on ${host.label}`)}\n${renderUsageTable(r, ctx)}`);
    },
  });
}

/** `audit --host`: the host's audit trail, a record per line. */
export async function remoteAudit(ctx: Context, o: LifecycleOptions & { follow?: boolean; tail?: string }): Promise<ExitCodeValue> {
  const host = remoteHost(o.host!, '--host');
  const { renderAuditRecord } = await import('./operations');
  return onHost(ctx, host, 'audit', { follow: !!o.follow, ...(o.tail !== undefined ? { tail: o.tail } : {}) }, {
    json: o.json,
    onLine(line) {
      if (typeof line.seq !== 'number' || typeof line.event !== 'string') return;
      ctx.out(o.json ? JSON.stringify(line) + '\n' : renderAuditRecord(line as unknown as AuditRecord) + '\n');
    },
  });
}

/** `audit verify --host`: the host checks its chain; exit 1 when it is broken, as locally. */
export async function remoteAuditVerify(ctx: Context, o: LifecycleOptions): Promise<ExitCodeValue> {
  const host = remoteHost(o.host!, '--host');
  const { renderVerification } = await import('./operations');
  return onHost(ctx, host, 'audit-verify', { lockTimeout: o.lockTimeout }, {
    json: o.json,
    exitCodes: [ExitCode.Invalid],
    onLine(line) {
      if (line.type !== 'audit-verify' || !line.report || typeof line.report !== 'object') return;
      const v = line.report as AuditVerification;
      ctx.out(o.json ? JSON.stringify({ ...v, host: host.url }, null, 2) + '\n' : `${ctx.outStyle.dim(`on ${host.label}`)}\n${renderVerification(v, ctx)}`);
    },
  });
}

/** The certificate of the deployment's link identity on the host for target `name` (made there when missing; the key stays there). */
export async function remoteLinkIdentity(ctx: Context, url: string, backend: string, name: string, lockTimeout?: string): Promise<string> {
  const host = remoteHost(url, 'the target names the host');
  let cert: string | undefined;
  await onHost(ctx, host, 'link-identity', { name, backend, lockTimeout }, {
    onLine(line) {
      if (line.type === 'link-identity' && typeof line.cert === 'string' && line.cert.length <= LINK_MAX_PEM) cert = line.cert;
    },
  });
  if (cert === undefined) throw new CliError(`${host.label} sent no link certificate`, ExitCode.BackendFailure, 'Check that the host runs the same mclc version as this machine.');
  return cert;
}

/** Writes the host's link configuration (sent on standard input: it holds certificates). */
export async function remoteLinkConfig(ctx: Context, url: string, backend: string, config: LinkConfigInput, lockTimeout?: string): Promise<{ changed: boolean }> {
  const host = remoteHost(url, 'the target names the host');
  let changed: boolean | undefined;
  await onHost(ctx, host, 'link-config', { backend, lockTimeout }, {
    stdin: JSON.stringify(config),
    onLine(line) {
      if (line.type === 'link-config' && typeof line.changed === 'boolean') changed = line.changed;
    },
  });
  if (changed === undefined) throw new CliError(`${host.label} did not confirm its link configuration`, ExitCode.BackendFailure);
  return { changed };
}

/**
 * `migrate-in` on the destination host of `mclc migrate`: the source's certificate goes on
 * standard input, the rest as options; the host's events come back as they arrive, then its port
 * and its certificate.
 */
export async function remoteMigrateIn(
  ctx: Context,
  url: string,
  backend: string,
  m: Pick<MigrateInOptions, 'planDigest' | 'instance' | 'clone' | 'target' | 'from' | 'listen' | 'mode'>,
  o: { lockTimeout?: string; onEvent: (e: BackendEvent) => void },
): Promise<MigrateInResult> {
  const host = remoteHost(url, 'the target names the host');
  let result: MigrateInResult | undefined;
  const options = { backend, planDigest: m.planDigest, instance: m.instance, clone: String(m.clone), target: m.target, from: m.from.target, listen: m.listen.host, port: String(m.listen.port), mode: m.mode, lockTimeout: o.lockTimeout };
  await onHost(ctx, host, 'migrate-in', options, {
    stdin: JSON.stringify({ cert: m.from.cert }),
    onEvent: o.onEvent,
    onLine(line) {
      if (line.type !== 'migrate-in') return;
      const port = line.port;
      if (typeof port === 'number' && Number.isInteger(port) && port > 0 && port <= 65535 && typeof line.cert === 'string' && line.cert.length <= LINK_MAX_PEM) {
        result = { port, cert: line.cert, template_built: line.template_built === true, template_ms: typeof line.template_ms === 'number' ? line.template_ms : 0 };
      }
    },
  });
  if (!result) throw new CliError(`${host.label} did not say where it waits for the clone`, ExitCode.BackendFailure, 'Check that the host runs the same mclc version as this machine.');
  return result;
}

/** `migrate-out` on the source host: the destination's certificate on standard input; progress events as they arrive, then the move's figures. */
export async function remoteMigrateOut(
  ctx: Context,
  url: string,
  backend: string,
  m: Pick<MigrateOutOptions, 'instance' | 'clone' | 'to' | 'mode'>,
  o: { lockTimeout?: string; onEvent: (e: BackendEvent) => void },
): Promise<MigrateOutResult> {
  const host = remoteHost(url, 'the target names the host');
  let result: MigrateOutResult | undefined;
  const options = { backend, instance: m.instance, clone: String(m.clone), to: m.to.target, host: m.to.host, port: String(m.to.port), mode: m.mode, lockTimeout: o.lockTimeout };
  await onHost(ctx, host, 'migrate-out', options, {
    stdin: JSON.stringify({ cert: m.to.cert }),
    onEvent: o.onEvent,
    onLine(line) {
      if (line.type === 'result') result = migrateOutResult(line);
    },
  });
  if (!result) throw new CliError(`${host.label} did not report the move's result`, ExitCode.BackendFailure, `See where the clone runs with \`mclc status --host ${url}\`.`);
  return result;
}

/** The figures of a move as the host reported them, each checked: a host is not trusted to send numbers where numbers belong. */
function migrateOutResult(line: Record<string, unknown>): MigrateOutResult | undefined {
  const n = (k: string) => (typeof line[k] === 'number' && Number.isFinite(line[k]) && (line[k] as number) >= 0 ? (line[k] as number) : undefined);
  const str = (k: string) => (typeof line[k] === 'string' && (line[k] as string).length <= 256 ? (line[k] as string) : undefined);
  const mode = line.mode === 'precopy' || line.mode === 'pages' ? line.mode : undefined;
  const r = {
    instance: str('instance'),
    clone: n('clone'),
    from: str('from'),
    to: str('to'),
    mode,
    total_ms: n('total_ms'),
    downtime_ms: n('downtime_ms'),
    hold_ms: n('hold_ms'),
    bytes_sent: n('bytes_sent'),
    source_private_bytes: n('source_private_bytes'),
    attempts: n('attempts'),
  };
  return Object.values(r).every((v) => v !== undefined) ? (r as MigrateOutResult) : undefined;
}
