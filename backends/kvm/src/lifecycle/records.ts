// What the supervisor records of its work beside the state file: the audit
// trail (audit.ts) and the accounting ledger (ledger.ts). The supervisor
// learns where the state file is from MCL_STATE_FILE, which `apply` sets
// when it starts it (inherited by a supervisor its watchdog starts again).

import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { checkStateLocation } from '@mcl/plan/state-store';
import { AuditLog, auditPath, type AuditWho } from './audit';
import { Ledger, ledgerPath, type LedgerSource } from './ledger';
import type { SupervisorRecord } from './supervisor';

/** The state file of the deployment, in the supervisor's environment. */
export const STATE_FILE_ENV = 'MCL_STATE_FILE';

/** Who this `mclc` process is, sent with the requests that change the deployment. */
export function whoAmI(): AuditWho {
  let user: string | undefined;
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry for the uid: the uid says it.
  }
  return { pid: process.pid, uid: process.getuid?.() ?? -1, ...(user ? { user } : {}), via: 'mclc' };
}

/**
 * A `who` from a control request, bounded and checked as far as the host
 * allows: `checked` is true when the pid is alive and runs as the claimed
 * uid. Only the deployment's user can reach the socket (its run directory is
 * 0700), so what it records is what that user's `mclc` said.
 */
export function requestWho(v: unknown): (AuditWho & { checked: boolean }) | null {
  if (!v || typeof v !== 'object') return null;
  const w = v as Partial<AuditWho>;
  if (!Number.isInteger(w.pid) || !Number.isInteger(w.uid)) return null;
  let checked = false;
  try {
    const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${w.pid}/status`, 'utf8'));
    checked = m !== null && Number(m[1]) === w.uid;
  } catch {
    // The process is gone (or never was).
  }
  return {
    pid: w.pid!,
    uid: w.uid!,
    ...(typeof w.user === 'string' ? { user: w.user.slice(0, 64) } : {}),
    ...(typeof w.via === 'string' ? { via: w.via.slice(0, 32) } : {}),
    checked,
  };
}

export interface Recorder {
  audit: AuditLog | null;
  ledger: Ledger | null;
  /** The supervisor's hook (SupervisorOptions.onRecord). */
  onRecord(r: SupervisorRecord): void;
  /** Appends an audit record of the supervisor's own (apply, destroy, start, stop). */
  record(event: string, fields?: Record<string, unknown>): void;
  /** Takes the ledger's last sample and flushes suppressed denials. */
  close(): void;
}

/**
 * The recorder of a supervisor whose state file is `stateFile`; records
 * nothing (and says why in the log) without one, or when the state
 * directory is not the user's own (a link, another owner). A failed write
 * is logged, never fatal: the deployment runs on.
 */
export function openRecorder(stateFile: string | undefined, source: LedgerSource, log: (s: string) => void): Recorder {
  let audit: AuditLog | null = null;
  let ledger: Ledger | null = null;
  if (!stateFile) log(`no ${STATE_FILE_ENV} in the environment: no audit trail or ledger is written`);
  else {
    try {
      checkStateLocation(stateFile);
      audit = new AuditLog(auditPath(stateFile));
      ledger = new Ledger(ledgerPath(stateFile), source);
      ledger.start();
    } catch (e) {
      log(`no audit trail or ledger is written: ${(e as Error).message}`);
    }
  }
  let auditFailing = false;
  const checkAudit = () => {
    if (audit?.lastError && !auditFailing) log(`the audit trail ${audit.path} cannot be written: ${audit.lastError}`);
    auditFailing = !!audit?.lastError;
  };
  return {
    audit,
    ledger,
    onRecord(r) {
      try {
        if (r.event === 'denial') {
          const { event: _e, ...fields } = r;
          audit?.denial(fields);
        } else {
          const { event, ...fields } = r;
          audit?.append(event, fields);
        }
        checkAudit();
        ledger?.onRecord(r);
      } catch (e) {
        log(`recording ${r.event} failed: ${(e as Error).message}`);
      }
    },
    record(event, fields = {}) {
      audit?.append(event, fields);
      checkAudit();
    },
    close() {
      ledger?.stop();
      audit?.close();
    },
  };
}
