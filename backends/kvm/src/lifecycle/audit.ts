// The deployment's audit trail: an append-only log of JSON lines, each
// carrying the SHA-256 of the line before it, so that a line edited or
// removed afterwards breaks the chain where it was touched.
//
// The supervisor writes it (every lifecycle action, who asked for it, every
// broker denial); the CLI writes it only when no supervisor runs (a destroy
// that had to kill the processes itself). It lives beside the state file, not
// in the run directory, so it outlives `destroy`. It is bounded by rotation:
// past `maxBytes` the file is renamed to `.1` (`.1` to `.2`, ..., the oldest
// beyond `files` removed) and the new file's first line carries the hash of
// the previous file's last line, so the chain runs on across files; only the
// start of the oldest kept file cannot be checked against what was dropped.
//
// A chain alone cannot show that lines were cut off the end, so every append
// also records the newest line's sequence number and hash in a small head
// file; `verify` compares the two. Whoever can rewrite both the log and the
// head can forge a consistent history: for evidence that holds against the
// host's own user, copy the head hash `verify` prints somewhere else.

import { createHash } from 'node:crypto';
import { closeSync, constants, existsSync, lstatSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { readBoundedFile, readFileRange } from '@mcl/plan/state-store';
import type { AuditProblem, AuditRecord, AuditVerification } from './events';

/** The `prev` of the very first line. */
export const AUDIT_GENESIS = '0'.repeat(64);
/** Longest line written; a longer record is cut down to its event and a note (see `append`). */
export const AUDIT_MAX_LINE_BYTES = 16 * 1024;
/** Environment variables that change the rotation (read by the supervisor, i.e. from the environment of the first apply). */
export const AUDIT_BYTES_ENV = 'MCL_AUDIT_LOG_BYTES';
export const AUDIT_FILES_ENV = 'MCL_AUDIT_LOG_FILES';
const DEFAULT_MAX_BYTES = 8 * 1024 * 1024;
const DEFAULT_FILES = 8;
/** Broker denials written per second at most; the rest are counted in one `denials_suppressed` line. */
const DENIALS_PER_SECOND = 50;

/** Who asked for an action, as the asking `mclc` process says (the control socket is reachable only by the deployment's user). */
export interface AuditWho {
  pid: number;
  uid: number;
  user?: string;
  /** `mclc` for a command, `watchdog` for a supervisor brought back after it died. */
  via?: string;
}

export type AuditEntry = AuditRecord;

/** Where the audit trail of a state file is: beside it, named after it (`.mcl/state.json` -> `.mcl/state.audit.jsonl`). */
export function auditPath(stateFile: string): string {
  return join(dirname(stateFile), `${basename(stateFile).replace(/\.json$/, '')}.audit.jsonl`);
}

function headPath(log: string): string {
  return log.replace(/\.jsonl$/, '') + '.head';
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The files of a log, oldest first: `log.N`, ..., `log.1`, `log`. */
export function auditFiles(log: string): string[] {
  const rotated: { n: number; path: string }[] = [];
  for (let n = 1; n <= 1000; n++) {
    const p = `${log}.${n}`;
    if (!existsSync(p)) break;
    rotated.push({ n, path: p });
  }
  return [...rotated.reverse().map((r) => r.path), ...(existsSync(log) ? [log] : [])];
}

/** Reads the last complete line of a file (at most the last 64 KiB are read), or null. */
function lastLine(path: string): string | null {
  const r = readFileRange(path, 'end', 64 * 1024);
  const lines = r ? r.text.split('\n').filter((l) => l.length > 0) : [];
  return lines.length ? lines[lines.length - 1] : null;
}

export interface AuditLogOptions {
  maxBytes?: number;
  files?: number;
  now?: () => Date;
}

/** Rotation limits from the environment (bounded, defaults when unset or nonsense). */
export function auditLimits(env: NodeJS.ProcessEnv = process.env): { maxBytes: number; files: number } {
  const n = (v: string | undefined, def: number, min: number, max: number) => {
    const x = Number(v);
    return v && Number.isInteger(x) && x >= min && x <= max ? x : def;
  };
  return { maxBytes: n(env[AUDIT_BYTES_ENV], DEFAULT_MAX_BYTES, 4096, 1 << 30), files: n(env[AUDIT_FILES_ENV], DEFAULT_FILES, 1, 1000) };
}

/**
 * The writer. It learns the chain's end from the file as it opens (the last
 * line of the log, or of `.1` right after a rotation), so a supervisor that
 * starts again continues the chain its predecessor wrote.
 */
export class AuditLog {
  private seq = 0;
  private prev = AUDIT_GENESIS;
  private readonly maxBytes: number;
  private readonly files: number;
  private readonly now: () => Date;
  private tokens = DENIALS_PER_SECOND;
  private refilledAt = -1;
  private suppressed = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | undefined;
  /** Why the last append failed, when it did (the supervisor logs it; auditing never stops the deployment). */
  lastError: string | null = null;

  constructor(
    readonly path: string,
    opts: AuditLogOptions = {},
  ) {
    const lim = auditLimits();
    this.maxBytes = opts.maxBytes ?? lim.maxBytes;
    this.files = opts.files ?? lim.files;
    this.now = opts.now ?? (() => new Date());
    const last = lastLine(path) ?? lastLine(`${path}.1`);
    if (last !== null) {
      this.prev = sha256Hex(last);
      try {
        const seq = (JSON.parse(last) as { seq?: unknown }).seq;
        this.seq = typeof seq === 'number' && Number.isInteger(seq) && seq >= 0 ? seq + 1 : 0;
      } catch {
        // A line that is not JSON: `verify` reports it; the chain still continues from its hash.
      }
    }
  }

  /** Appends one record; returns it, or null when the file could not be written (see lastError). */
  append(event: string, fields: Record<string, unknown> = {}): AuditEntry | null {
    const entry: AuditEntry = { seq: this.seq, time: this.now().toISOString(), event, ...fields, prev: this.prev };
    let line = JSON.stringify(entry);
    if (Buffer.byteLength(line) > AUDIT_MAX_LINE_BYTES) {
      line = JSON.stringify({ seq: this.seq, time: entry.time, event, truncated: `the record had ${Buffer.byteLength(line)} bytes`, prev: this.prev });
    }
    try {
      this.write(line);
    } catch (e) {
      this.lastError = (e as Error).message;
      return null;
    }
    this.lastError = null;
    this.prev = sha256Hex(line);
    this.seq++;
    return JSON.parse(line) as AuditEntry;
  }

  /**
   * Records a broker denial. A guest that floods a channel with refused
   * frames must not flood the log: beyond DENIALS_PER_SECOND, denials are
   * counted per channel and kind and written as one `denials_suppressed`
   * line a second later.
   */
  denial(fields: { channel: string | null; kind: string; detail: string; instance?: string; clone?: number }): void {
    const t = this.now().getTime();
    if (this.refilledAt < 0) this.refilledAt = t;
    this.tokens = Math.min(DENIALS_PER_SECOND, this.tokens + ((t - this.refilledAt) / 1000) * DENIALS_PER_SECOND);
    this.refilledAt = t;
    if (this.tokens >= 1) {
      this.tokens--;
      this.append('denial', { ...fields, detail: fields.detail.slice(0, 1000) });
      return;
    }
    const key = `${fields.channel ?? '(unwired)'} ${fields.kind}`;
    this.suppressed.set(key, (this.suppressed.get(key) ?? 0) + 1);
    this.flushTimer ??= setTimeout(() => this.flushSuppressed(), 1000);
    this.flushTimer.unref?.();
  }

  /** Writes the count of denials not written one by one, if any. */
  flushSuppressed(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (!this.suppressed.size) return;
    const by = Object.fromEntries([...this.suppressed].sort(([a], [b]) => a.localeCompare(b)).slice(0, 100));
    const count = [...this.suppressed.values()].reduce((a, b) => a + b, 0);
    this.suppressed.clear();
    this.append('denials_suppressed', { count, by_channel_and_kind: by });
  }

  close(): void {
    this.flushSuppressed();
  }

  private write(line: string): void {
    const bytes = Buffer.byteLength(line) + 1;
    let size = 0;
    try {
      const st = lstatSync(this.path);
      if (!st.isFile()) throw new Error(`${this.path} is not a regular file`);
      size = st.size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (size > 0 && size + bytes > this.maxBytes) this.rotate();
    const fd = openSync(this.path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    try {
      // One write of the whole line: appends of one process never interleave.
      writeSync(fd, line + '\n');
    } finally {
      closeSync(fd);
    }
    const head = headPath(this.path);
    const tmp = `${head}.tmp`;
    const hfd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
    try {
      writeSync(hfd, JSON.stringify({ seq: this.seq, hash: sha256Hex(line) }) + '\n');
    } finally {
      closeSync(hfd);
    }
    renameSync(tmp, head);
  }

  private rotate(): void {
    rmSync(`${this.path}.${this.files}`, { force: true });
    for (let n = this.files - 1; n >= 1; n--) {
      if (existsSync(`${this.path}.${n}`)) renameSync(`${this.path}.${n}`, `${this.path}.${n + 1}`);
    }
    renameSync(this.path, `${this.path}.1`);
  }
}

/** Largest file `verify` and `mclc audit` read (a rotated file is at most maxBytes plus one line). */
const MAX_READ_BYTES = (1 << 30) + AUDIT_MAX_LINE_BYTES;

/** Reads the lines of every file of a log, oldest first, with where each comes from. */
export function readAuditLines(log: string): { file: string; line: number; text: string }[] | { error: string } {
  const out: { file: string; line: number; text: string }[] = [];
  for (const file of auditFiles(log)) {
    const r = readBoundedFile(file, MAX_READ_BYTES, { noFollow: true });
    if (!r.ok) return { error: `${file} cannot be read (${r.kind}${r.code ? ` ${r.code}` : ''})` };
    const lines = r.text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    lines.forEach((text, i) => out.push({ file, line: i + 1, text }));
  }
  return out;
}

/** Checks the chain of every kept line and the head; lists every break (at most 100). */
export function verifyAudit(log: string): AuditVerification {
  const res: AuditVerification = { ok: true, files: auditFiles(log), lines: 0, first_seq: null, last_seq: null, head_hash: null, problems: [] };
  const add = (p: AuditProblem) => {
    res.ok = false;
    if (res.problems.length < 100) res.problems.push(p);
  };
  const lines = readAuditLines(log);
  if ('error' in lines) {
    add({ file: log, line: null, seq: null, problem: lines.error });
    return res;
  }
  let prevHash: string | null = null;
  let prevSeq: number | null = null;
  for (const l of lines) {
    res.lines++;
    const hash = sha256Hex(l.text);
    let e: Partial<AuditEntry> | null = null;
    try {
      e = JSON.parse(l.text) as Partial<AuditEntry>;
    } catch {
      // Reported below.
    }
    if (!e || typeof e !== 'object' || typeof e.seq !== 'number' || typeof e.prev !== 'string') {
      add({ file: l.file, line: l.line, seq: null, problem: 'the line is not an audit record (not JSON with seq and prev): it was changed' });
      prevHash = hash;
      prevSeq = prevSeq === null ? null : prevSeq + 1;
      continue;
    }
    if (prevHash === null) {
      res.first_seq = e.seq;
      if (e.seq === 0 && e.prev !== AUDIT_GENESIS) add({ file: l.file, line: l.line, seq: e.seq, problem: 'the first record does not start the chain (its prev is not the genesis hash)' });
      if (e.seq !== 0) res.note = `the oldest kept record is seq ${e.seq}; earlier records were rotated away`;
    } else {
      if (e.seq !== prevSeq! + 1) {
        add({
          file: l.file,
          line: l.line,
          seq: e.seq,
          problem: e.seq > prevSeq! + 1 ? `records ${prevSeq! + 1}..${e.seq - 1} are missing (removed)` : `seq ${e.seq} follows seq ${prevSeq}: records were reordered or inserted`,
        });
      } else if (e.prev !== prevHash) {
        add({ file: l.file, line: l.line, seq: e.seq, problem: `the record before it (seq ${prevSeq}) does not have the hash this one carries: it was changed` });
      }
    }
    prevHash = hash;
    prevSeq = e.seq;
  }
  res.last_seq = prevSeq;
  res.head_hash = prevHash;
  const head = readBoundedFile(headPath(log), 4096, { noFollow: true });
  if (head.ok) {
    let h: { seq?: unknown; hash?: unknown } | null = null;
    try {
      h = JSON.parse(head.text) as { seq?: unknown; hash?: unknown };
    } catch {
      // Reported below.
    }
    const hp = headPath(log);
    if (!h || typeof h.seq !== 'number' || typeof h.hash !== 'string') add({ file: hp, line: null, seq: null, problem: 'the head file is not valid' });
    else if (prevSeq === null) add({ file: hp, line: null, seq: h.seq, problem: `the log is empty but the head records seq ${h.seq}: the log was removed` });
    else if (h.seq > prevSeq) add({ file: hp, line: null, seq: prevSeq, problem: `the log ends at seq ${prevSeq} but the last record written was seq ${h.seq}: records were removed from the end` });
    else if (h.seq === prevSeq && h.hash !== prevHash) add({ file: hp, line: null, seq: prevSeq, problem: `the last record (seq ${prevSeq}) does not have the hash recorded when it was written: it was changed` });
    else if (h.seq < prevSeq) add({ file: hp, line: null, seq: h.seq, problem: `records after seq ${h.seq} were not written by mclc (the head records seq ${h.seq})` });
  } else if (prevSeq !== null) {
    add({ file: headPath(log), line: null, seq: null, problem: `the head file is missing (${head.kind}): removed records at the end could not be detected` });
  }
  return res;
}

/** Whether a file is there and not empty (for `mclc audit` on a workspace with no trail yet). */
export function auditExists(log: string): boolean {
  try {
    return statSync(log).size > 0 || existsSync(`${log}.1`);
  } catch {
    return existsSync(`${log}.1`);
  }
}

/** Appends one record from a process that is not the supervisor (when none runs); failures are ignored. */
export function appendAudit(stateFile: string, event: string, fields: Record<string, unknown>): void {
  try {
    new AuditLog(auditPath(stateFile)).append(event, fields);
  } catch {
    // The trail is best effort outside the supervisor.
  }
}
