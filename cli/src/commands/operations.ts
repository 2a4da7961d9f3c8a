// `mclc audit`, `mclc audit verify` and `mclc usage`: what the deployment's
// supervisor recorded beside the state (the audit trail and the accounting
// ledger), read through the backend that made the deployment. Both are
// optional parts of the backend contract (@mcl/plan/backend).

import type { AuditRecord, AuditVerification, UsageGrouping, UsageReport, UsageRow } from '@mcl/plan/backend';
import { loadBackend } from '../backends';
import type { Context } from '../context';
import { CliError, ExitCode, type ExitCodeValue } from '../exit';
import { formatBytes } from '../io';
import { deployedWith, parseDuration, withBackend, type LifecycleOptions } from './lifecycle';

async function backendWith<K extends 'audit' | 'auditVerify' | 'usage'>(ctx: Context, o: LifecycleOptions, fn: K) {
  const row = deployedWith(ctx, o);
  const backend = await loadBackend(row);
  const f = backend[fn];
  if (!f) throw new CliError(`the ${row.title} backend keeps no ${fn === 'usage' ? 'accounting ledger' : 'audit trail'}`, ExitCode.BackendFailure);
  return { row, f: f.bind(backend) as NonNullable<(typeof backend)[K]> };
}

/** One record as a line for people: time, seq, event, who asked and the rest of its fields. */
export function renderAuditRecord(r: AuditRecord): string {
  const { seq, time, event, prev: _prev, who, ...rest } = r;
  const w = who as { user?: string; uid?: number; pid?: number; via?: string } | null | undefined;
  const by = w ? ` by ${w.user ?? (w.uid !== undefined ? `uid ${w.uid}` : '?')}${w.pid !== undefined ? ` (pid ${w.pid}${w.via ? `, ${w.via}` : ''})` : ''}` : '';
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${time} #${seq} ${event}${by}${fields ? ` ${fields}` : ''}`;
}

export async function auditCommand(ctx: Context, o: LifecycleOptions & { follow?: boolean; tail?: string }): Promise<ExitCodeValue> {
  if (o.tail !== undefined && !/^\d+$/.test(o.tail)) throw new CliError(`--tail ${JSON.stringify(o.tail)} is not a non-negative integer`);
  if (o.host !== undefined) return (await import('./remote-lifecycle')).remoteAudit(ctx, o);
  const { row, f } = await backendWith(ctx, o, 'audit');
  return withBackend(ctx, o, row, !!o.json, async (opts) => {
    await f({ ...opts, follow: !!o.follow, ...(o.tail !== undefined ? { tail: Number(o.tail) } : {}) }, (r) =>
      ctx.out(o.json ? JSON.stringify(r) + '\n' : renderAuditRecord(r) + '\n'),
    );
    return ExitCode.Ok;
  });
}

export function renderVerification(v: AuditVerification, ctx: Context): string {
  const s = ctx.outStyle;
  if (v.lines === 0 && v.ok) return 'The audit trail is empty: nothing was recorded yet.\n';
  const lines: string[] = [];
  const range = v.first_seq !== null ? `records ${v.first_seq}..${v.last_seq}` : 'no records';
  if (v.ok) lines.push(`${s.green(s.bold('The audit trail is intact:'))} ${v.lines} line(s), ${range} in ${v.files.length} file(s).`);
  else lines.push(`${s.red(s.bold('The audit trail does not verify:'))} ${v.problems.length} problem(s) in ${v.lines} line(s), ${range}.`);
  for (const p of v.problems) lines.push(s.red(`  ${p.file}${p.line !== null ? `:${p.line}` : ''}${p.seq !== null ? ` (seq ${p.seq})` : ''}: ${p.problem}`));
  if (v.note) lines.push(s.dim(`  ${v.note}`));
  if (v.head_hash) lines.push(`  head ${v.head_hash} (keep it elsewhere to detect a rewritten history later)`);
  return lines.join('\n') + '\n';
}

export async function auditVerifyCommand(ctx: Context, o: LifecycleOptions): Promise<ExitCodeValue> {
  if (o.host !== undefined) return (await import('./remote-lifecycle')).remoteAuditVerify(ctx, o);
  const { row, f } = await backendWith(ctx, o, 'auditVerify');
  return withBackend(ctx, o, row, !!o.json, async (opts) => {
    const v = await f(opts);
    ctx.out(o.json ? JSON.stringify(v, null, 2) + '\n' : renderVerification(v, ctx));
    return v.ok ? ExitCode.Ok : ExitCode.Invalid;
  });
}

/** `--since`: an ISO 8601 time, or a duration (`1h`, `30min`) meaning that long ago. */
export function parseSince(text: string, now = Date.now()): Date {
  if (/^\d+(\.\d+)?(ms|s|min|m|h)?$/.test(text.trim())) return new Date(now - parseDuration(text, '--since'));
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new CliError(`--since ${JSON.stringify(text)} is neither a time nor a duration`, ExitCode.Invalid, 'Write a time like 2026-01-31T12:00:00Z or a duration like 1h (that long ago).');
  return new Date(t);
}

const CSV_FIELDS: (keyof UsageRow)[] = [
  'key',
  'cpu_seconds',
  'memory_byte_seconds',
  'peak_pss_bytes',
  'peak_rss_bytes',
  'uptime_seconds',
  'forks',
  'restarts',
  'denials',
  'frames_sent',
  'bytes_sent',
  'frames_received',
  'bytes_received',
];

export function renderUsageCsv(r: UsageReport): string {
  const cell = (v: string | number) => (typeof v === 'number' ? String(Math.round(v * 1000) / 1000) : /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  return [[r.by, ...CSV_FIELDS.slice(1)].join(','), ...[...r.rows, r.total].map((x) => CSV_FIELDS.map((f) => cell(x[f])).join(','))].join('\n') + '\n';
}

export function renderUsageTable(r: UsageReport, ctx: Context): string {
  const s = ctx.outStyle;
  if (r.records === 0) return `No usage recorded${r.since ? ` since ${r.since}` : ''} in ${r.ledger}.\n`;
  const head = [r.by, 'cpu s', 'memory', 'peak pss', 'uptime s', 'forks', 'restarts', 'denials', 'frames out/in', 'bytes out/in'];
  const cells = (x: UsageRow) => [
    x.key,
    x.cpu_seconds.toFixed(2),
    `${formatBytes(Math.round(x.memory_byte_seconds))}·s`,
    formatBytes(x.peak_pss_bytes),
    x.uptime_seconds.toFixed(0),
    String(x.forks),
    String(x.restarts),
    String(x.denials),
    `${x.frames_sent}/${x.frames_received}`,
    `${formatBytes(x.bytes_sent)}/${formatBytes(x.bytes_received)}`,
  ];
  const table = [head, ...r.rows.map(cells), cells(r.total)];
  const widths = head.map((_, i) => Math.max(...table.map((row) => row[i].length)));
  const fmt = (row: string[]) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const lines = [s.bold(fmt(head)), ...table.slice(1, -1).map(fmt), s.bold(fmt(table[table.length - 1]))];
  lines.push(s.dim(`${r.records} record(s) from ${r.first} to ${r.last}${r.skipped ? `; ${r.skipped} line(s) skipped (not ledger records)` : ''}`));
  if (r.channels.length) {
    lines.push('', s.bold('Channels (forward = requests, backward = replies):'));
    for (const c of r.channels) {
      lines.push(`  ${c.channel}: ${c.frames_forward}/${c.frames_backward} frames, ${formatBytes(c.bytes_forward)}/${formatBytes(c.bytes_backward)}${c.denials ? `, ${c.denials} denied` : ''}`);
    }
  }
  return lines.join('\n') + '\n';
}

export async function usageCommand(ctx: Context, o: LifecycleOptions & { since?: string; by?: string; format?: string }): Promise<ExitCodeValue> {
  const since = o.since !== undefined ? parseSince(o.since) : null;
  const format = o.json ? 'json' : (o.format ?? 'table');
  if (o.host !== undefined) return (await import('./remote-lifecycle')).remoteUsage(ctx, { ...o, format });
  const { row, f } = await backendWith(ctx, o, 'usage');
  return withBackend(ctx, o, row, format === 'json', async (opts) => {
    const r = await f({ ...opts, by: (o.by ?? 'label') as UsageGrouping, since });
    ctx.out(format === 'json' ? JSON.stringify(r, null, 2) + '\n' : format === 'csv' ? renderUsageCsv(r) : renderUsageTable(r, ctx));
    return ExitCode.Ok;
  });
}
