// Memory and CPU accounting of QEMU processes, from /proc.

import { readFile } from 'node:fs/promises';
import type { MemoryUsage } from './types';

/** Parses the text of /proc/<pid>/smaps_rollup (values are in kB). */
export function parseSmapsRollup(text: string): MemoryUsage {
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return {
    rss: kb('Rss'),
    pss: kb('Pss'),
    private: kb('Private_Clean') + kb('Private_Dirty'),
    shared: kb('Shared_Clean') + kb('Shared_Dirty'),
    swap: kb('Swap'),
  };
}

/** RSS, PSS, private and shared bytes of a process; rejects when the process is gone. */
export async function readMemory(pid: number): Promise<MemoryUsage> {
  return parseSmapsRollup(await readFile(`/proc/${pid}/smaps_rollup`, 'utf8'));
}

/** User + system CPU time of a process in ms (from /proc/<pid>/stat, clock ticks assumed 100/s). */
export async function readCpuMs(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name is in parentheses and may contain spaces; fields follow the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) * 10;
}

/**
 * Private bytes (clean + dirty) of the mappings of `file` in a process: for a
 * clone and its template RAM file, the guest pages it copied on write.
 */
export async function readMappingPrivate(pid: number, file: string): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps`, 'utf8');
  let total = 0;
  for (const block of text.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const header = block.slice(0, block.indexOf('\n'));
    if (!header.endsWith(` ${file}`) && !header.endsWith(` ${file} (deleted)`)) continue;
    for (const m of block.matchAll(/^Private_(?:Clean|Dirty):\s+(\d+) kB/gm)) total += Number(m[1]) * 1024;
  }
  return total;
}
