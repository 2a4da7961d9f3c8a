// `mclc audit`, `mclc audit verify` and `mclc usage` with the KVM backend,
// over an audit trail and a ledger written as the supervisor writes them.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditLog, auditPath } from '../../backends/kvm/src/lifecycle/audit';
import { ledgerPath } from '../../backends/kvm/src/lifecycle/ledger';
import { run } from '../src/cli';
import { parseSince } from '../src/commands/operations';
import { captureContext } from './capture';

let ws: string;
let stateFile: string;
beforeEach(() => {
  ws = mkdtempSync(join(tmpdir(), 'mcl-ops-cli-'));
  mkdirSync(join(ws, '.mcl'), { mode: 0o700 });
  stateFile = join(ws, '.mcl', 'state.json');
});
afterEach(() => rmSync(ws, { recursive: true, force: true }));

function trail(): void {
  const a = new AuditLog(auditPath(stateFile));
  a.append('apply', { who: { pid: 7, uid: 1000, user: 'ann', via: 'mclc', checked: true }, plan_digest: 'abc', system: 'Shop' });
  a.append('fork', { instance: 'web', clone: 0, pid: 4242, paused: false, elapsed_ms: 55 });
  a.append('denial', { channel: 'web.api->app.api', kind: 'schema', detail: 'field x missing', instance: 'web', clone: 0 });
}

const clone = (t: string, instance: string, label: string | null, f: Record<string, number>) =>
  JSON.stringify({ v: 1, t, kind: 'clone', system: 'Shop', instance, label, clone: 0, pid: 1, cpu_ms: 0, pss_byte_ms: 0, pss_bytes: 0, peak_rss_bytes: 0, uptime_ms: 0, forks: 0, restarts: 0, denials: 0, ...f });

function ledger(): void {
  const lines = [
    clone('2026-01-01T00:00:00.000Z', 'web', 'orgA', { cpu_ms: 1500, pss_byte_ms: 10_000_000, pss_bytes: 1000, uptime_ms: 10_000, forks: 1 }),
    clone('2026-01-01T00:00:00.000Z', 'db', 'orgB', { cpu_ms: 500, pss_byte_ms: 20_000_000, pss_bytes: 2000, uptime_ms: 10_000, forks: 1 }),
    clone('2026-01-01T00:00:10.000Z', 'web', 'orgA', { cpu_ms: 2500, pss_byte_ms: 10_000_000, pss_bytes: 1000, uptime_ms: 10_000, restarts: 1, denials: 2 }),
    clone('2026-01-01T00:00:10.000Z', 'db', 'orgB', { cpu_ms: 1000, pss_byte_ms: 20_000_000, pss_bytes: 3000, uptime_ms: 10_000 }),
    JSON.stringify({ v: 1, t: '2026-01-01T00:00:10.000Z', kind: 'channel', system: 'Shop', channel: 'web.db->db.db', from: 'web', to: 'db', from_label: 'orgA', to_label: 'orgB', frames_forward: 10, bytes_forward: 1000, frames_backward: 10, bytes_backward: 5000, denials: 2 }),
  ];
  writeFileSync(ledgerPath(stateFile), lines.join('\n') + '\n');
}

describe('mclc audit', () => {
  it('prints the trail for people and as JSON lines', async () => {
    trail();
    const ctx = captureContext(ws);
    expect(await run(['audit', '--root', ws], ctx)).toBe(0);
    expect(ctx.stdout).toMatch(/#0 apply by ann \(pid 7, mclc\) plan_digest=abc system=Shop/);
    expect(ctx.stdout).toMatch(/#2 denial channel=web\.api->app\.api kind=schema/);
    const j = captureContext(ws);
    expect(await run(['audit', '--root', ws, '--json', '--tail', '1'], j)).toBe(0);
    expect(j.stdout.trim().split('\n').map((l) => JSON.parse(l).event)).toEqual(['denial']);
  });

  it('verify: exit 0 on an intact trail, 1 naming the line on a tampered one', async () => {
    trail();
    let ctx = captureContext(ws);
    expect(await run(['audit', 'verify', '--root', ws], ctx)).toBe(0);
    expect(ctx.stdout).toMatch(/intact: 3 line\(s\), records 0\.\.2/);
    const p = auditPath(stateFile);
    writeFileSync(p, readFileSync(p, 'utf8').replace('"pid":4242', '"pid":1'));
    ctx = captureContext(ws);
    expect(await run(['audit', 'verify', '--root', ws], ctx)).toBe(1);
    expect(ctx.stdout).toMatch(/state\.audit\.jsonl:3 \(seq 2\): the record before it \(seq 1\) does not have the hash this one carries: it was changed/);
    ctx = captureContext(ws);
    expect(await run(['audit', '--json', 'verify', '--root', ws], ctx)).toBe(1);
    expect(JSON.parse(ctx.stdout)).toMatchObject({ ok: false, problems: [{ line: 3, seq: 2 }] });
  });
});

describe('mclc usage', () => {
  it('sums per organisation with totals that add up, as a table, JSON and CSV', async () => {
    ledger();
    const j = captureContext(ws);
    expect(await run(['usage', '--root', ws, '--json'], j)).toBe(0);
    const r = JSON.parse(j.stdout);
    expect(r.rows.map((x: { key: string }) => x.key)).toEqual(['orgA', 'orgB']);
    expect(r.rows[0]).toMatchObject({ cpu_seconds: 4, memory_byte_seconds: 20_000, forks: 1, restarts: 1, denials: 2, frames_sent: 10, frames_received: 10, bytes_sent: 1000, bytes_received: 5000 });
    expect(r.rows[1]).toMatchObject({ cpu_seconds: 1.5, memory_byte_seconds: 40_000, peak_pss_bytes: 3000, frames_sent: 10, bytes_sent: 5000 });
    expect(r.total).toMatchObject({ cpu_seconds: 5.5, memory_byte_seconds: 60_000, uptime_seconds: 40, forks: 2, restarts: 1, denials: 2, frames_sent: 20, peak_pss_bytes: 4000 });
    const csv = captureContext(ws);
    expect(await run(['usage', '--root', ws, '--by', 'instance', '--format', 'csv'], csv)).toBe(0);
    expect(csv.stdout.split('\n')[0]).toBe('instance,cpu_seconds,memory_byte_seconds,peak_pss_bytes,peak_rss_bytes,uptime_seconds,forks,restarts,denials,frames_sent,bytes_sent,frames_received,bytes_received');
    expect(csv.stdout).toMatch(/^total,5\.5,60000,/m);
    const t = captureContext(ws);
    expect(await run(['usage', '--root', ws, '--since', '2026-01-01T00:00:05Z'], t)).toBe(0);
    expect(t.stdout).toMatch(/^orgA\s+2\.50 /m);
    expect(t.stdout).toMatch(/^total\s+3\.50 /m);
    expect(t.stdout).toMatch(/web\.db->db\.db: 10\/10 frames/);
  });

  it('--since takes a time or a duration, and refuses anything else', () => {
    expect(parseSince('1h', 10_000_000).getTime()).toBe(10_000_000 - 3_600_000);
    expect(parseSince('2026-01-01T00:00:00Z').toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(() => parseSince('yesterday')).toThrow(/neither a time nor a duration/);
  });
});
