// `mclc audit`, `mclc audit verify` and `mclc usage` for the KVM backend:
// they read the files the supervisor appends beside the state file (audit.ts,
// ledger.ts) and need no supervisor, so they work after `destroy` too.

import { statSync } from 'node:fs';
import { readFileRange } from '@mcl/plan/state-store';
import { auditPath, readAuditLines, verifyAudit } from './audit';
import { ledgerPath, summarizeUsage } from './ledger';
import type { AuditOptions, AuditRecord, AuditVerification, BackendOptions, UsageOptions, UsageReport } from './events';

const POLL_MS = 300;
/** At most this much is read from the trail per poll of `--follow`. */
const FOLLOW_CHUNK_BYTES = 1 << 20;

function parseRecord(text: string): AuditRecord | null {
  try {
    const r = JSON.parse(text) as AuditRecord;
    return r && typeof r === 'object' && typeof r.seq === 'number' && typeof r.event === 'string' ? r : null;
  } catch {
    return null;
  }
}

/**
 * Delivers the trail's records, oldest first (lines that are not records
 * are left to `verify`). With `follow`, polls for appended lines and
 * follows a rotation (the rest of the renamed file first) until aborted.
 */
export async function audit(opts: AuditOptions, onRecord: (r: AuditRecord) => void): Promise<void> {
  const log = auditPath(opts.stateFile);
  const all = readAuditLines(log);
  if ('error' in all) throw Object.assign(new Error(all.error), { kind: 'failure' as const });
  const records = all.map((l) => parseRecord(l.text)).filter((r): r is AuditRecord => r !== null);
  for (const r of opts.tail !== undefined ? records.slice(Math.max(0, records.length - opts.tail)) : records) onRecord(r);
  if (!opts.follow) return;
  let ino: number | null = null;
  let offset = 0;
  try {
    const st = statSync(log);
    ino = st.ino;
    offset = st.size;
  } catch {
    // No trail yet: it begins with the first record.
  }
  let partial = '';
  const deliver = (text: string) => {
    const parts = (partial + text).split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) {
      const r = l ? parseRecord(l) : null;
      if (r) onRecord(r);
    }
  };
  while (!opts.signal.aborted) {
    await new Promise<void>((res) => {
      const t = setTimeout(res, POLL_MS);
      opts.signal.addEventListener('abort', () => (clearTimeout(t), res()), { once: true });
    });
    if (opts.signal.aborted) break;
    let cur = readFileRange(log, 0, 0);
    if (cur && ino !== null && cur.ino !== ino) {
      // Rotated: what was appended to the old file before the rename is in `.1` now.
      const old = readFileRange(`${log}.1`, offset, Number.MAX_SAFE_INTEGER);
      if (old && old.ino === ino) deliver(old.text);
      partial = '';
      ino = cur.ino;
      offset = 0;
    }
    if (!cur) continue;
    ino ??= cur.ino;
    if (cur.size < offset) offset = 0;
    cur = readFileRange(log, offset, FOLLOW_CHUNK_BYTES);
    if (!cur || cur.ino !== ino) continue;
    offset += Buffer.byteLength(cur.text);
    deliver(cur.text);
  }
}

export async function auditVerify(opts: BackendOptions): Promise<AuditVerification> {
  return verifyAudit(auditPath(opts.stateFile));
}

export async function usage(opts: UsageOptions): Promise<UsageReport> {
  return summarizeUsage(ledgerPath(opts.stateFile), opts.by, opts.since);
}
