// Per-process figures from /proc, for `mclc status`.

import { readFileSync } from 'node:fs';

export interface ProcMemory {
  rss_bytes: number;
  pss_bytes: number;
  /** Private_Clean + Private_Dirty: what this clone alone costs. */
  private_bytes: number;
}

/** Memory of a process from /proc/<pid>/smaps_rollup, or undefined when it is gone or unreadable. */
export function processMemory(pid: number): ProcMemory | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  } catch {
    return undefined;
  }
  return parseSmapsRollup(text);
}

export function parseSmapsRollup(text: string): ProcMemory {
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { rss_bytes: kb('Rss'), pss_bytes: kb('Pss'), private_bytes: kb('Private_Clean') + kb('Private_Dirty') };
}

/** User + system CPU time of a process in ms (fields 14 and 15 of /proc/<pid>/stat), or undefined. */
export function processCpuMs(pid: number, ticksPerSecond = 100): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return parseStatCpuMs(text, ticksPerSecond);
}

export function parseStatCpuMs(text: string, ticksPerSecond = 100): number | undefined {
  // Fields are counted after the command name, which is in parentheses and may contain spaces.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3; utime is field 14 (rest[11]), stime field 15 (rest[12]).
  const ticks = Number(rest[11]) + Number(rest[12]);
  // Linux reports these in USER_HZ, which is 100 on every architecture we run on.
  return Number.isFinite(ticks) ? Math.round((ticks * 1000) / ticksPerSecond) : undefined;
}
