// From command-line paths to a workspace: the root directory that module
// paths resolve from, and the entry files (workspace-relative) to compile.
//
// A PATH is a file or a directory; a directory means every `.mcl` file under
// it. The root is `--root DIR` when given, otherwise the deepest directory
// that contains every path (a directory path counts as itself, a file as its
// directory). With no PATH, the current directory is used.

import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { walkSourceFiles } from '@mcl/compiler/node-host';
import { CliError, ExitCode } from './exit';

export interface Workspace {
  /** Absolute root directory. */
  root: string;
  /** Workspace-relative entry paths with forward slashes, sorted. */
  entries: string[];
}

export function toPosix(p: string): string {
  return sep === '/' ? p : p.split(sep).join('/');
}

export function isInside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * The `.mcl` files under a directory given on the command line, with the
 * walk every mcl tool shares (walkSourceFiles: directory links are not
 * followed, special files are left out).
 */
function walk(dir: string, out: string[]): void {
  const found = walkSourceFiles(dir);
  if (found.errors.length) {
    const e = found.errors[0];
    throw new CliError(`cannot read the directory ${e.path}: ${e.code}`);
  }
  out.push(...found.files);
}

function commonDir(dirs: string[]): string {
  let common = dirs[0];
  for (const d of dirs.slice(1)) {
    while (!isInside(common, d)) {
      const up = dirname(common);
      if (up === common) break;
      common = up;
    }
  }
  return common;
}

export function resolveWorkspace(paths: string[], opts: { root?: string; cwd?: string } = {}): Workspace {
  const cwd = opts.cwd ?? process.cwd();
  const inputs = (paths.length ? paths : ['.']).map((p) => resolve(cwd, p));
  const files: string[] = [];
  const dirs: string[] = [];
  for (const p of inputs) {
    if (!existsSync(p)) {
      throw new CliError(`${relative(cwd, p) || p}: no such file or directory`, ExitCode.Invalid, 'Pass .mcl files or directories that contain them.');
    }
    if (statSync(p).isDirectory()) {
      dirs.push(p);
      walk(p, files);
    } else {
      dirs.push(dirname(p));
      files.push(p);
    }
  }
  const root = opts.root ? resolve(cwd, opts.root) : commonDir(dirs);
  if (opts.root && !(existsSync(root) && statSync(root).isDirectory())) {
    throw new CliError(`--root ${opts.root}: not a directory`);
  }
  for (const f of files) {
    if (!isInside(root, f)) {
      throw new CliError(`${relative(cwd, f)} is outside the workspace root ${relative(cwd, root) || '.'}`, ExitCode.Invalid, 'Choose a --root that contains every path.');
    }
  }
  if (files.length === 0) {
    throw new CliError(`no .mcl files found in ${paths.length ? paths.join(', ') : 'the current directory'}`, ExitCode.Invalid, 'Pass .mcl files or directories that contain them.');
  }
  const entries = [...new Set(files.map((f) => toPosix(relative(root, f))))].sort();
  return { root, entries };
}

/**
 * The standard library directory: MCL_STDLIB when set, otherwise the repository's
 * stdlib/ two levels above this module (cli/dist/mclc.mjs and cli/src/*.ts alike).
 */
export function stdlibDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MCL_STDLIB) return resolve(env.MCL_STDLIB);
  return fileURLToPath(new URL('../../stdlib/', import.meta.url)).replace(/[\\/]$/, '');
}

/** The file a diagnostic path refers to: workspace-relative, or `std:<module>` in the standard library. */
export function absoluteSourcePath(file: string, root: string, stdlib: string): string {
  if (file.startsWith('std:')) return join(stdlib, ...file.slice(4).split('.')) + '.mcl';
  return join(root, file);
}

/** The nearest directory at or above `start` that holds a `.git`, or undefined. */
export function findRepoRoot(start: string): string | undefined {
  let dir = resolve(start);
  for (;;) {
    if (existsSync(join(dir, '.git'))) return dir;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/**
 * The workspace of a lifecycle command: `--root` when given, otherwise the nearest
 * directory at or above the current one that has a `.mcl/` directory, otherwise
 * the current directory.
 */
export function lifecycleRoot(root: string | undefined, cwd = process.cwd()): string {
  if (root) return resolve(cwd, root);
  let dir = resolve(cwd);
  for (;;) {
    if (existsSync(join(dir, '.mcl'))) return dir;
    const up = dirname(dir);
    if (up === dir) return resolve(cwd);
    dir = up;
  }
}
