// Figures of one channel or exposure since the broker started: frames and
// bytes each way, calls and their outcomes, violations by kind, and the call
// round trip over the last LATENCY_SAMPLES calls.

import type { ChannelCounters, ViolationKind } from './types';

const LATENCY_SAMPLES = 1024;

/** The bytes a frame takes on the wire (UTF-8), whether the broker holds it as text or as bytes: what `bytes_*` counters and byte limits count. */
export function wireBytes(line: string | Buffer): number {
  return typeof line === 'string' ? Buffer.byteLength(line, 'utf8') : line.length;
}

const COUNTER_FIELDS = [
  'frames_to_provider',
  'frames_to_requirer',
  'bytes_to_provider',
  'bytes_to_requirer',
  'calls',
  'replies',
  'errors',
  'timeouts',
  'late_replies',
  'violations_total',
] as const;

/** A channel's running totals as a checkpoint keeps them. */
export type CounterTotals = Record<(typeof COUNTER_FIELDS)[number], number> & { violations: Partial<Record<ViolationKind, number>> };

export class Counters {
  frames_to_provider = 0;
  frames_to_requirer = 0;
  bytes_to_provider = 0;
  bytes_to_requirer = 0;
  calls = 0;
  replies = 0;
  errors = 0;
  timeouts = 0;
  late_replies = 0;
  violations: Partial<Record<ViolationKind, number>> = {};
  violations_total = 0;
  private lat = new Float64Array(LATENCY_SAMPLES);
  private latN = 0;
  private latMax = 0;

  /** The running totals (not the latency samples), for a checkpoint. */
  totals(): CounterTotals {
    const { frames_to_provider, frames_to_requirer, bytes_to_provider, bytes_to_requirer, calls, replies, errors, timeouts, late_replies, violations_total } = this;
    return { frames_to_provider, frames_to_requirer, bytes_to_provider, bytes_to_requirer, calls, replies, errors, timeouts, late_replies, violations_total, violations: { ...this.violations } };
  }

  /** Continues from totals a checkpoint recorded. */
  loadTotals(t: CounterTotals): void {
    for (const k of COUNTER_FIELDS) if (Number.isSafeInteger(t[k]) && t[k] >= 0) this[k] = t[k];
    this.violations = {};
    for (const [k, v] of Object.entries(t.violations ?? {})) if (Number.isSafeInteger(v) && (v as number) >= 0) this.violations[k as ViolationKind] = v as number;
  }

  latency(ms: number): void {
    this.lat[this.latN % LATENCY_SAMPLES] = ms;
    this.latN++;
    if (ms > this.latMax) this.latMax = ms;
  }

  snapshot(channel: string): ChannelCounters {
    const n = Math.min(this.latN, LATENCY_SAMPLES);
    const s = Array.from(this.lat.subarray(0, n)).sort((a, b) => a - b);
    const pick = (q: number) => (n === 0 ? 0 : round3(s[Math.min(n - 1, Math.floor(q * n))]));
    return {
      channel,
      frames_to_provider: this.frames_to_provider,
      frames_to_requirer: this.frames_to_requirer,
      bytes_to_provider: this.bytes_to_provider,
      bytes_to_requirer: this.bytes_to_requirer,
      calls: this.calls,
      replies: this.replies,
      errors: this.errors,
      timeouts: this.timeouts,
      late_replies: this.late_replies,
      violations: { ...this.violations },
      violations_total: this.violations_total,
      latency_ms: { p50: pick(0.5), p99: pick(0.99), max: round3(this.latMax), samples: this.latN },
    };
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
