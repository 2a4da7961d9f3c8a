// The accounting ledger: what each clone used, measured on the host (nothing
// a guest says is counted), appended as JSON lines beside the state file
// (`.mcl/state.usage.jsonl`) so that it outlives the supervisor and the
// deployment, and summed by `mclc usage`.
//
// Every record holds what was used since the record before it (a delta), so
// any sum of records is a usage figure, totals are sums of rows, and records
// are only ever appended: a supervisor that starts again appends further
// deltas and nothing is counted twice. A sample is taken every interval
// (`MCL_LEDGER_INTERVAL_MS`, default 10 s) and when a clone is stopped; what
// a clone used between its last sample and a crash is lost (at most one
// interval), since its process is gone when the exit is seen.
//
// Per clone: CPU time (user + system of its QEMU process, /proc/<pid>/stat),
// memory byte-seconds (PSS from /proc/<pid>/smaps_rollup times the time it
// was held), its PSS at the sample, the peak resident size (VmHWM), uptime,
// forks, restarts and the frames the broker denied it. Per channel: frames
// and bytes relayed each way, and denials. The file is bounded by rotation
// (renames only, like the console logs): `.1` ... up to MCL_LEDGER_FILES (16)
// files of MCL_LEDGER_BYTES (16 MiB).

import { closeSync, constants, existsSync, lstatSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Plan } from '@mcl/plan';
import { readBoundedFile } from '@mcl/plan/state-store';
import { processCpuMs, processMemory } from './procfs';
import type { SupervisorRecord } from './supervisor';
import type { ChannelStatus, UsageGrouping, UsageReport, UsageRow, UsageChannelRow } from './events';

export const LEDGER_FORMAT = 1;
export const LEDGER_INTERVAL_ENV = 'MCL_LEDGER_INTERVAL_MS';
export const LEDGER_BYTES_ENV = 'MCL_LEDGER_BYTES';
export const LEDGER_FILES_ENV = 'MCL_LEDGER_FILES';

/** Where the ledger of a state file is (`.mcl/state.json` -> `.mcl/state.usage.jsonl`). */
export function ledgerPath(stateFile: string): string {
  return join(dirname(stateFile), `${basename(stateFile).replace(/\.json$/, '')}.usage.jsonl`);
}

export interface CloneUsageRecord {
  v: number;
  /** ISO time of the sample; the records of one sample share it. */
  t: string;
  kind: 'clone';
  system: string;
  instance: string;
  label: string | null;
  clone: number;
  pid: number | null;
  cpu_ms: number;
  pss_byte_ms: number;
  /** PSS at the sample (0 when the process was gone). */
  pss_bytes: number;
  /** Peak resident set size of the process so far (VmHWM). */
  peak_rss_bytes: number;
  uptime_ms: number;
  forks: number;
  restarts: number;
  denials: number;
}

export interface ChannelUsageRecord {
  v: number;
  t: string;
  kind: 'channel';
  system: string;
  channel: string;
  /** The requiring side (`tcp:<port>` for clients of an exposure) and the providing instance. */
  from: string;
  to: string;
  from_label: string | null;
  to_label: string | null;
  frames_forward: number;
  bytes_forward: number;
  frames_backward: number;
  bytes_backward: number;
  denials: number;
}

export type UsageRecord = CloneUsageRecord | ChannelUsageRecord;

/** What the ledger samples: the supervisor's plan, its clones and the broker's counters. */
export interface LedgerSource {
  plan(): Plan | null;
  clones(): { instance: string; clone: number; pid: number }[];
  channels(): ChannelStatus[];
}

function envInt(name: string, def: number, min: number, max: number): number {
  const v = process.env[name];
  const x = Number(v);
  return v && Number.isInteger(x) && x >= min && x <= max ? x : def;
}

/** Peak resident set size (VmHWM) of a process in bytes, or 0. */
export function processPeakRss(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

interface CloneTrack {
  pid: number;
  cpu_ms: number;
  /** When this process was last sampled (or forked). */
  at: number;
  pss: number;
}

interface Pending {
  forks: number;
  restarts: number;
  denials: number;
}

export class Ledger {
  private readonly tracks = new Map<string, CloneTrack>();
  private readonly pending = new Map<string, Pending>();
  private readonly lastChannels = new Map<string, { ff: number; bf: number; fb: number; bb: number; v: number }>();
  private timer: NodeJS.Timeout | undefined;
  /** What this ledger appended since the supervisor started, per instance (for the metrics endpoint). */
  readonly totals = new Map<string, { label: string | null; cpu_ms: number; pss_byte_ms: number; uptime_ms: number; forks: number; restarts: number; denials: number }>();
  private readonly maxBytes = envInt(LEDGER_BYTES_ENV, 16 * 1024 * 1024, 4096, 1 << 30);
  private readonly files = envInt(LEDGER_FILES_ENV, 16, 1, 1000);
  lastError: string | null = null;

  constructor(
    readonly path: string,
    private readonly source: LedgerSource,
    private readonly now: () => number = Date.now,
  ) {}

  start(intervalMs = envInt(LEDGER_INTERVAL_ENV, 10_000, 50, 3_600_000)): void {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  /** Takes a last sample and stops. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
  }

  /** Counts forks, restarts and denials; samples a clone that is being stopped while its process is still there. */
  onRecord(r: SupervisorRecord): void {
    const bump = (instance: string, clone: number, k: keyof Pending) => {
      const key = `${instance}#${clone}`;
      const p = this.pending.get(key) ?? { forks: 0, restarts: 0, denials: 0 };
      p[k]++;
      this.pending.set(key, p);
    };
    if (r.event === 'fork') {
      bump(r.instance, r.clone, 'forks');
      // A forked process starts at zero CPU; its uptime begins now.
      this.tracks.set(`${r.instance}#${r.clone}`, { pid: r.pid, cpu_ms: 0, at: this.now(), pss: 0 });
    } else if (r.event === 'restart' && r.counted) bump(r.instance, r.clone, 'restarts');
    else if (r.event === 'denial' && r.instance !== undefined && r.clone !== undefined && !r.instance.startsWith('tcp:')) bump(r.instance, r.clone, 'denials');
    else if ((r.event === 'stop' || r.event === 'moved') && r.pid !== null) {
      this.sample([{ instance: r.instance, clone: r.clone, pid: r.pid }], false);
      this.tracks.delete(`${r.instance}#${r.clone}`);
    }
    else if (r.event === 'exit' && r.pid !== null) this.sample([{ instance: r.instance, clone: r.clone, pid: r.pid }], false);
  }

  /** Appends one record per clone (and per channel with traffic) for what was used since the last sample. */
  sample(clones = this.source.clones(), withChannels = true): void {
    const plan = this.source.plan();
    if (!plan) return;
    const labels = new Map(plan.instances.map((i) => [i.id, i.label ?? null]));
    const t = this.now();
    const time = new Date(t).toISOString();
    const out: UsageRecord[] = [];
    const seen = new Set<string>();
    for (const c of clones) {
      const key = `${c.instance}#${c.clone}`;
      seen.add(key);
      let track = this.tracks.get(key);
      if (!track || track.pid !== c.pid) {
        track = { pid: c.pid, cpu_ms: 0, at: t, pss: 0 };
        this.tracks.set(key, track);
      }
      const cpu = processCpuMs(c.pid);
      const mem = processMemory(c.pid);
      const alive = cpu !== undefined;
      const dt = Math.max(0, t - track.at);
      const cpuDelta = alive ? (cpu! >= track.cpu_ms ? cpu! - track.cpu_ms : cpu!) : 0;
      // The memory held since the last sample, as the mean of the two samples (PSS changes slowly; a sample
      // every interval is what the figures are worth).
      const pss = mem?.pss_bytes ?? 0;
      const byteMs = Math.round(((alive ? (track.pss + pss) / 2 : track.pss) * dt));
      const p = this.pending.get(key) ?? { forks: 0, restarts: 0, denials: 0 };
      this.pending.delete(key);
      out.push({
        v: LEDGER_FORMAT,
        t: time,
        kind: 'clone',
        system: plan.system,
        instance: c.instance,
        label: labels.get(c.instance) ?? null,
        clone: c.clone,
        pid: c.pid,
        cpu_ms: cpuDelta,
        pss_byte_ms: byteMs,
        pss_bytes: pss,
        peak_rss_bytes: alive ? processPeakRss(c.pid) : 0,
        uptime_ms: dt,
        ...p,
      });
      if (alive) Object.assign(track, { cpu_ms: cpu!, at: t, pss });
      else this.tracks.delete(key);
    }
    // Forks, restarts and denials of clones not sampled now (one that failed to fork, or is down) are not lost.
    if (withChannels) {
      for (const [key, p] of this.pending) {
        if (seen.has(key)) continue;
        const [instance, clone] = [key.slice(0, key.lastIndexOf('#')), Number(key.slice(key.lastIndexOf('#') + 1))];
        out.push({ v: LEDGER_FORMAT, t: time, kind: 'clone', system: plan.system, instance, label: labels.get(instance) ?? null, clone, pid: null, cpu_ms: 0, pss_byte_ms: 0, pss_bytes: 0, peak_rss_bytes: 0, uptime_ms: 0, ...p });
      }
      this.pending.clear();
      out.push(...this.channelRecords(plan, time, labels));
    }
    this.append(out);
  }

  private channelRecords(plan: Plan, time: string, labels: Map<string, string | null>): ChannelUsageRecord[] {
    const ends = new Map<string, { from: string; to: string }>();
    for (const c of plan.channels) ends.set(c.id, { from: c.from.instance, to: c.to.instance });
    for (const e of plan.exposures) ends.set(`tcp:${e.host_port}->${e.instance}.${e.port}`, { from: `tcp:${e.host_port}`, to: e.instance });
    const out: ChannelUsageRecord[] = [];
    for (const c of this.source.channels()) {
      const last = this.lastChannels.get(c.id) ?? { ff: 0, bf: 0, fb: 0, bb: 0, v: 0 };
      // A broker replaced by an apply starts its counters at zero again: a counter below the last one is a new count.
      const d = (now: number, before: number) => (now >= before ? now - before : now);
      const rec = {
        frames_forward: d(c.frames_forward, last.ff),
        bytes_forward: d(c.bytes_forward, last.bf),
        frames_backward: d(c.frames_backward, last.fb),
        bytes_backward: d(c.bytes_backward, last.bb),
        denials: d(c.violations, last.v),
      };
      this.lastChannels.set(c.id, { ff: c.frames_forward, bf: c.bytes_forward, fb: c.frames_backward, bb: c.bytes_backward, v: c.violations });
      if (!Object.values(rec).some((x) => x > 0)) continue;
      const e = ends.get(c.id) ?? { from: '', to: '' };
      out.push({ v: LEDGER_FORMAT, t: time, kind: 'channel', system: plan.system, channel: c.id, from: e.from, to: e.to, from_label: labels.get(e.from) ?? null, to_label: labels.get(e.to) ?? null, ...rec });
    }
    return out;
  }

  private append(records: UsageRecord[]): void {
    if (!records.length) return;
    for (const r of records) {
      if (r.kind !== 'clone') continue;
      const t = this.totals.get(r.instance) ?? { label: r.label, cpu_ms: 0, pss_byte_ms: 0, uptime_ms: 0, forks: 0, restarts: 0, denials: 0 };
      t.cpu_ms += r.cpu_ms;
      t.pss_byte_ms += r.pss_byte_ms;
      t.uptime_ms += r.uptime_ms;
      t.forks += r.forks;
      t.restarts += r.restarts;
      t.denials += r.denials;
      this.totals.set(r.instance, t);
    }
    const text = records.map((r) => JSON.stringify(r)).join('\n') + '\n';
    try {
      let size = 0;
      try {
        const st = lstatSync(this.path);
        if (!st.isFile()) throw new Error(`${this.path} is not a regular file`);
        size = st.size;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      if (size > 0 && size + Buffer.byteLength(text) > this.maxBytes) {
        rmSync(`${this.path}.${this.files}`, { force: true });
        for (let n = this.files - 1; n >= 1; n--) if (existsSync(`${this.path}.${n}`)) renameSync(`${this.path}.${n}`, `${this.path}.${n + 1}`);
        renameSync(this.path, `${this.path}.1`);
      }
      const fd = openSync(this.path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
      try {
        writeSync(fd, text);
      } finally {
        closeSync(fd);
      }
      this.lastError = null;
    } catch (e) {
      this.lastError = (e as Error).message;
    }
  }
}

// ---------------------------------------------------------------------------
// Reading and summing (`mclc usage`)

/** The ledger's files, oldest first. */
export function ledgerFiles(path: string): string[] {
  const rotated: string[] = [];
  for (let n = 1; n <= 1000 && existsSync(`${path}.${n}`); n++) rotated.unshift(`${path}.${n}`);
  return [...rotated, ...(existsSync(path) ? [path] : [])];
}

function isRecord(r: unknown): r is UsageRecord {
  if (!r || typeof r !== 'object') return false;
  const x = r as Record<string, unknown>;
  const nums = (keys: string[]) => keys.every((k) => typeof x[k] === 'number' && Number.isFinite(x[k] as number) && (x[k] as number) >= 0);
  if (typeof x.t !== 'string' || typeof x.system !== 'string') return false;
  if (x.kind === 'clone') return typeof x.instance === 'string' && nums(['clone', 'cpu_ms', 'pss_byte_ms', 'pss_bytes', 'peak_rss_bytes', 'uptime_ms', 'forks', 'restarts', 'denials']);
  if (x.kind === 'channel') return typeof x.channel === 'string' && typeof x.from === 'string' && typeof x.to === 'string' && nums(['frames_forward', 'bytes_forward', 'frames_backward', 'bytes_backward', 'denials']);
  return false;
}

const emptyRow = (key: string): UsageRow => ({
  key,
  cpu_seconds: 0,
  memory_byte_seconds: 0,
  peak_pss_bytes: 0,
  peak_rss_bytes: 0,
  uptime_seconds: 0,
  forks: 0,
  restarts: 0,
  denials: 0,
  frames_sent: 0,
  bytes_sent: 0,
  frames_received: 0,
  bytes_received: 0,
});

/**
 * Sums the ledger by instance, system, label or clone, from `since` on.
 * CPU, memory byte-seconds, uptime, forks, restarts, denials and traffic are
 * sums of the records' deltas, so the total row is the sum of the rows.
 * Traffic is counted for the instance that sent it (a request for the
 * requirer, a reply for the provider) and that received it; the clients of
 * an exposure are no instance and appear in `channels` only.
 */
export function summarizeUsage(path: string, by: UsageGrouping, since: Date | null, maxBytesPerFile = (1 << 30) + 65536): UsageReport {
  const records: UsageRecord[] = [];
  let skipped = 0;
  for (const file of ledgerFiles(path)) {
    const r = readBoundedFile(file, maxBytesPerFile, { noFollow: true });
    if (!r.ok) {
      skipped++;
      continue;
    }
    for (const line of r.text.split('\n')) {
      if (!line) continue;
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        skipped++;
        continue;
      }
      if (!isRecord(v) || Number.isNaN(Date.parse(v.t))) {
        skipped++;
        continue;
      }
      if (since && Date.parse(v.t) < since.getTime()) continue;
      records.push(v);
    }
  }
  const keyOf = (instance: string, clone: number, system: string, label: string | null) =>
    by === 'instance' ? instance : by === 'system' ? system : by === 'label' ? (label ?? '(none)') : `${instance}#${clone}`;
  const rows = new Map<string, UsageRow>();
  const row = (k: string) => rows.get(k) ?? (rows.set(k, emptyRow(k)), rows.get(k)!);
  const pssAt = new Map<string, number>();
  const totalPssAt = new Map<string, number>();
  const channels = new Map<string, UsageChannelRow>();
  for (const r of records) {
    if (r.kind === 'clone') {
      const k = keyOf(r.instance, r.clone, r.system, r.label);
      const x = row(k);
      x.cpu_seconds += r.cpu_ms / 1000;
      x.memory_byte_seconds += r.pss_byte_ms / 1000;
      x.uptime_seconds += r.uptime_ms / 1000;
      x.forks += r.forks;
      x.restarts += r.restarts;
      x.denials += r.denials;
      x.peak_rss_bytes = Math.max(x.peak_rss_bytes, r.peak_rss_bytes);
      pssAt.set(`${k}\n${r.t}`, (pssAt.get(`${k}\n${r.t}`) ?? 0) + r.pss_bytes);
      totalPssAt.set(r.t, (totalPssAt.get(r.t) ?? 0) + r.pss_bytes);
    } else {
      const c = channels.get(r.channel) ?? { channel: r.channel, from: r.from, to: r.to, frames_forward: 0, bytes_forward: 0, frames_backward: 0, bytes_backward: 0, denials: 0 };
      c.frames_forward += r.frames_forward;
      c.bytes_forward += r.bytes_forward;
      c.frames_backward += r.frames_backward;
      c.bytes_backward += r.bytes_backward;
      c.denials += r.denials;
      channels.set(r.channel, c);
      // Channels have no clone: by clone, traffic goes to the instance's clone 0 row only when it exists.
      const side = (instance: string, label: string | null) => (instance.startsWith('tcp:') || instance === '' ? null : keyOf(instance, 0, r.system, label));
      const from = side(r.from, r.from_label);
      const to = side(r.to, r.to_label);
      if (by === 'clone') continue;
      if (from) {
        const x = row(from);
        x.frames_sent += r.frames_forward;
        x.bytes_sent += r.bytes_forward;
        x.frames_received += r.frames_backward;
        x.bytes_received += r.bytes_backward;
      }
      if (to) {
        const x = row(to);
        x.frames_received += r.frames_forward;
        x.bytes_received += r.bytes_forward;
        x.frames_sent += r.frames_backward;
        x.bytes_sent += r.bytes_backward;
      }
    }
  }
  for (const [k, v] of pssAt) {
    const x = rows.get(k.slice(0, k.indexOf('\n')))!;
    x.peak_pss_bytes = Math.max(x.peak_pss_bytes, v);
  }
  const sorted = [...rows.values()].sort((a, b) => a.key.localeCompare(b.key));
  const total = emptyRow('total');
  for (const x of sorted) {
    for (const f of ['cpu_seconds', 'memory_byte_seconds', 'uptime_seconds', 'forks', 'restarts', 'denials', 'frames_sent', 'bytes_sent', 'frames_received', 'bytes_received'] as const) total[f] += x[f];
    total.peak_rss_bytes = Math.max(total.peak_rss_bytes, x.peak_rss_bytes);
  }
  total.peak_pss_bytes = Math.max(0, ...totalPssAt.values());
  const times = records.map((r) => r.t).sort();
  return {
    ledger: path,
    by,
    since: since ? since.toISOString() : null,
    first: times[0] ?? null,
    last: times[times.length - 1] ?? null,
    records: records.length,
    skipped,
    rows: sorted,
    total,
    channels: [...channels.values()].sort((a, b) => a.channel.localeCompare(b.channel)),
  };
}
