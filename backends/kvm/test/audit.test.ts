// The audit trail: a hash chain over JSON lines, its verification (an edited,
// removed or cut-off line is found and named), rotation that keeps the chain
// verifiable, and the bound on denials written one by one.

import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AUDIT_GENESIS, AuditLog, auditPath, sha256Hex, verifyAudit } from '../src/lifecycle/audit';

let dir: string;
let log: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mcl-audit-'));
  log = auditPath(join(dir, 'state.json'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const lines = (p = log) => readFileSync(p, 'utf8').split('\n').filter(Boolean);

function write(n: number, opts = {}): AuditLog {
  const a = new AuditLog(log, opts);
  for (let i = 0; i < n; i++) a.append('fork', { instance: `i${i}`, clone: 0, pid: 100 + i });
  return a;
}

describe('audit trail', () => {
  it('lives beside the state file and chains every line to the one before', () => {
    expect(log).toBe(join(dir, 'state.audit.jsonl'));
    write(5);
    const ls = lines();
    expect(ls).toHaveLength(5);
    expect(JSON.parse(ls[0]).prev).toBe(AUDIT_GENESIS);
    for (let i = 1; i < ls.length; i++) {
      expect(JSON.parse(ls[i]).prev).toBe(sha256Hex(ls[i - 1]));
      expect(JSON.parse(ls[i]).seq).toBe(i);
    }
    const v = verifyAudit(log);
    expect(v).toMatchObject({ ok: true, lines: 5, first_seq: 0, last_seq: 4, head_hash: sha256Hex(ls[4]), problems: [] });
  });

  it('continues the chain after a restart of the writer', () => {
    write(3);
    write(2);
    const v = verifyAudit(log);
    expect(v.ok).toBe(true);
    expect(v.last_seq).toBe(4);
  });

  it('finds an edited line and says where', () => {
    write(6);
    const ls = lines();
    ls[2] = ls[2].replace('"pid":102', '"pid":999');
    writeFileSync(log, ls.join('\n') + '\n');
    const v = verifyAudit(log);
    expect(v.ok).toBe(false);
    expect(v.problems).toHaveLength(1);
    expect(v.problems[0]).toMatchObject({ line: 4, seq: 3 });
    expect(v.problems[0].problem).toMatch(/seq 2.*changed/);
  });

  it('finds a removed line in the middle', () => {
    write(6);
    const ls = lines();
    ls.splice(3, 1);
    writeFileSync(log, ls.join('\n') + '\n');
    const v = verifyAudit(log);
    expect(v.ok).toBe(false);
    expect(v.problems[0]).toMatchObject({ line: 4, seq: 4 });
    expect(v.problems[0].problem).toMatch(/records 3\.\.3 are missing/);
  });

  it('finds lines cut off the end, and an edited last line, through the head', () => {
    write(4);
    const ls = lines();
    writeFileSync(log, ls.slice(0, 3).join('\n') + '\n');
    let v = verifyAudit(log);
    expect(v.ok).toBe(false);
    expect(v.problems[0].problem).toMatch(/ends at seq 2 but the last record written was seq 3/);
    writeFileSync(log, [...ls.slice(0, 3), ls[3].replace('i3', 'ix')].join('\n') + '\n');
    v = verifyAudit(log);
    expect(v.problems[0].problem).toMatch(/last record \(seq 3\).*changed/);
  });

  it('finds a line that is not a record', () => {
    write(3);
    const ls = lines();
    ls[1] = 'garbage';
    writeFileSync(log, ls.join('\n') + '\n');
    const v = verifyAudit(log);
    expect(v.ok).toBe(false);
    expect(v.problems[0]).toMatchObject({ line: 2 });
  });

  it('rotates past its size and the chain stays verifiable across files; the oldest files go', () => {
    write(200, { maxBytes: 4096, files: 3 });
    expect(existsSync(`${log}.1`)).toBe(true);
    expect(existsSync(`${log}.3`)).toBe(true);
    expect(existsSync(`${log}.4`)).toBe(false);
    const v = verifyAudit(log);
    expect(v.ok).toBe(true);
    expect(v.last_seq).toBe(199);
    expect(v.first_seq).toBeGreaterThan(0);
    expect(v.note).toMatch(/rotated away/);
    // The first line of the current file carries the hash of the last line of .1.
    const prevFile = lines(`${log}.1`);
    expect(JSON.parse(lines()[0]).prev).toBe(sha256Hex(prevFile[prevFile.length - 1]));
    // Editing a rotated file is found too.
    const older = lines(`${log}.2`);
    older[1] = older[1].replace('"clone":0', '"clone":1');
    writeFileSync(`${log}.2`, older.join('\n') + '\n');
    const w = verifyAudit(log);
    expect(w.ok).toBe(false);
    expect(w.problems[0]).toMatchObject({ file: `${log}.2`, line: 3 });
  });

  it('writes at most 50 denials a second one by one and counts the rest in one line', () => {
    // A clock that stands still: the 500 denials arrive within one instant, however slow the machine.
    const a = new AuditLog(log, { now: () => new Date(1_000_000) });
    for (let i = 0; i < 500; i++) a.denial({ channel: 'a.x->b.y', kind: 'schema', detail: 'bad', instance: 'a', clone: 0 });
    a.close();
    const ls = lines().map((l) => JSON.parse(l));
    const one = ls.filter((l) => l.event === 'denial');
    expect(one.length).toBe(50);
    const sup = ls.find((l) => l.event === 'denials_suppressed');
    expect(sup.count + one.length).toBe(500);
    expect(sup.by_channel_and_kind['a.x->b.y schema']).toBe(sup.count);
    expect(verifyAudit(log).ok).toBe(true);
  });

  it('cuts a record that is too long down to its event, still chained', () => {
    const a = new AuditLog(log);
    a.append('apply', { detail: 'x'.repeat(40_000) });
    const e = JSON.parse(lines()[0]);
    expect(e.event).toBe('apply');
    expect(e.truncated).toMatch(/bytes/);
    expect(verifyAudit(log).ok).toBe(true);
  });
});
