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
    privateDirty: kb('Private_Dirty'),
    anonPss: kb('Pss_Anon'),
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

/** Private bytes of a QEMU process by where they are, from /proc/<pid>/smaps. */
export interface MemoryBreakdown {
  /** Pages of the template RAM file the clone copied on write (or, mapped by no other process, read). */
  guestRam: number;
  /** TCG's translation buffer: the only anonymous mapping that is writable and executable. */
  tcgCode: number;
  /** The main malloc heap (`[heap]`): QOM objects, device state, TLBs and the like. */
  heap: number;
  /** File mappings other than the RAM file: QEMU's and its libraries' relocated and writable data. */
  binaries: number;
  /** Everything else: other anonymous mappings (ROMs and firmware, thread malloc arenas, the TB hash table, large allocations), stacks. */
  other: number;
  /** The sum of the above (Private_Clean + Private_Dirty of every mapping). */
  total: number;
}

/** Parses the text of /proc/<pid>/smaps into private bytes per kind of mapping; `memPath` is the guest RAM file. */
export function parseSmapsBreakdown(text: string, memPath: string): MemoryBreakdown {
  const out: MemoryBreakdown = { guestRam: 0, tcgCode: 0, heap: 0, binaries: 0, other: 0, total: 0 };
  for (const block of text.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const header = block.slice(0, block.indexOf('\n') < 0 ? block.length : block.indexOf('\n'));
    // address perms offset dev inode [name]; the name may contain spaces.
    const m = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ (\d+)\s*(.*)$/.exec(header);
    if (!m) continue;
    const [, perms, inode, rawName] = m;
    const name = rawName.replace(/ \(deleted\)$/, '');
    let bytes = 0;
    for (const v of block.matchAll(/^Private_(?:Clean|Dirty):\s+(\d+) kB/gm)) bytes += Number(v[1]) * 1024;
    if (bytes === 0) continue;
    out.total += bytes;
    if (name === memPath) out.guestRam += bytes;
    else if (name === '[heap]') out.heap += bytes;
    else if (inode !== '0' && name.startsWith('/')) out.binaries += bytes;
    else if (name === '' && perms.includes('x')) out.tcgCode += bytes;
    else out.other += bytes;
  }
  return out;
}

/** Private bytes of a process by kind of mapping (see MemoryBreakdown); rejects when the process is gone. */
export async function readMemoryBreakdown(pid: number, memPath: string): Promise<MemoryBreakdown> {
  return parseSmapsBreakdown(await readFile(`/proc/${pid}/smaps`, 'utf8'), memPath);
}

/** Kernel same-page merging in one process, from /proc/<pid>/ksm_stat and smaps_rollup. */
export interface KsmUsage {
  /** Bytes of the process's mappings that are KSM pages (each one shared with pages of equal contents). */
  merged: number;
  /** Bytes merged into the kernel's zero page (/sys/kernel/mm/ksm/use_zero_pages). */
  zero: number;
  /** Every mapping of the process is mergeable (prctl PR_SET_MEMORY_MERGE); null when the kernel does not say. */
  mergeAny: boolean | null;
  /**
   * Pss_Anon: anonymous bytes with each page divided among the mappings that
   * share it. A KSM page counts as shared even when all its sharers are in one
   * process, so Private_* understates what the process costs; this does not.
   */
  anonPss: number;
}

/** Parses /proc/<pid>/ksm_stat (page counts) and the Pss_Anon line of smaps_rollup (kB); absent fields are 0. */
export function parseKsmUsage(ksmStat: string, rollup: string): KsmUsage {
  const n = (re: RegExp, text: string) => Number(re.exec(text)?.[1] ?? 0);
  const any = /^ksm_merge_any: (yes|no)$/m.exec(ksmStat)?.[1];
  return {
    merged: n(/^ksm_merging_pages (\d+)$/m, ksmStat) * 4096,
    zero: n(/^ksm_zero_pages (\d+)$/m, ksmStat) * 4096,
    mergeAny: any === undefined ? null : any === 'yes',
    anonPss: n(/^Pss_Anon:\s+(\d+) kB$/m, rollup) * 1024,
  };
}

/** KsmUsage of a process; a kernel without /proc/<pid>/ksm_stat reads as nothing merged. Rejects when the process is gone. */
export async function readKsmUsage(pid: number): Promise<KsmUsage> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const stat = await readFile(`/proc/${pid}/ksm_stat`, 'utf8').catch(() => '');
  return parseKsmUsage(stat, rollup);
}
