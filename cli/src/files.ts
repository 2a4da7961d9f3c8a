// Small file utilities for the CLI: reading with a clear error, and writing
// atomically so an interrupted command never leaves half a plan behind.

import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { CliError, ExitCode } from './exit';

/** A path as people should read it: relative to `cwd` when it is below it, else absolute. */
export function displayPath(cwd: string, abs: string): string {
  const rel = relative(cwd, abs);
  if (rel === '') return '.';
  return !rel.startsWith('..') && !isAbsolute(rel) ? rel : abs;
}

export function readText(path: string, cwd: string, what = 'file'): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const shown = displayPath(cwd, path);
    if (code === 'ENOENT') throw new CliError(`${shown}: no such ${what}`, ExitCode.Invalid);
    if (code === 'EISDIR') throw new CliError(`${shown} is a directory, not a ${what}`, ExitCode.Invalid);
    throw new CliError(`cannot read ${shown}: ${code ?? (e as Error).message}`, ExitCode.Invalid);
  }
}

export function writeAtomic(path: string, text: string, cwd: string): void {
  const shown = displayPath(cwd, path);
  try {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (e) {
    throw new CliError(`cannot write ${shown}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, ExitCode.Invalid);
  }
}
