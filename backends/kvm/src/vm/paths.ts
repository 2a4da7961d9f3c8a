// Where the substrate keeps its files, and where the host programs are.

import { accessSync, constants, statfsSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

/** The cache directory: `options.cacheDir`, else `$MCL_CACHE_DIR`, else `~/.cache/mcl`. */
export function cacheDir(options: { cacheDir?: string } = {}): string {
  return path.resolve(options.cacheDir || process.env.MCL_CACHE_DIR || path.join(homedir(), '.cache', 'mcl'));
}

/**
 * Directory for template RAM files: `$MCL_SHM_DIR`, else /dev/shm. Template
 * RAM lives on tmpfs so that clones map it from the page cache without disk IO;
 * a host reboot empties it, which invalidates the templates (they are rebuilt).
 */
export function shmDir(): string {
  return path.resolve(process.env.MCL_SHM_DIR || '/dev/shm');
}

/** Free bytes in a directory's file system, or null when it cannot be read. */
export function freeBytes(dir: string): number | null {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

/** Finds an executable on $PATH (and the sbin directories, which root's PATH may lack). */
export function which(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // Not here; keep looking.
    }
  }
  return null;
}

/** The QEMU system emulator: `$MCL_QEMU`, else qemu-system-x86_64 on $PATH. */
export function findQemu(): string | null {
  return process.env.MCL_QEMU ?? which('qemu-system-x86_64');
}
