// Where the substrate keeps its files, and where the host programs are.

import { accessSync, constants, existsSync, statfsSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * The repository root: the nearest ancestor of this module holding
 * backends/kvm/guest/agent.sh. This module runs both from its source file
 * (backends/kvm/src/vm/) and bundled into the CLI (cli/dist/), so a fixed
 * relative path would be right in only one of the two. MCL_HOME overrides it
 * for installs that keep the guest files elsewhere.
 */
export function mclHome(): string {
  if (home !== undefined) return home;
  return (home = findRepoRoot());
}

let home: string | undefined;

function findRepoRoot(): string {
  if (process.env.MCL_HOME) return path.resolve(process.env.MCL_HOME);
  for (let dir = here; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'backends', 'kvm', 'guest', 'agent.sh'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(here, '../../../..');
  }
}
