// Small file utilities for the CLI: reading with a bound and a clear error,
// and writing atomically so an interrupted command never leaves half a plan
// behind.

import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, realpathSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { formatSize, readBoundedFile } from '@mcl/compiler/node-host';
import { CliError, ExitCode } from './exit';

/**
 * Largest plan or state file read. A plan of 10,000 instances is a few tens
 * of MB; this bound only keeps a hostile or mistaken file (a device, a huge
 * download) from exhausting memory.
 */
export const MAX_DOCUMENT_BYTES = 128 * 1024 * 1024;

/** A path as people should read it: relative to `cwd` when it is below it, else absolute. */
export function displayPath(cwd: string, abs: string): string {
  const rel = relative(cwd, abs);
  if (rel === '') return '.';
  return !rel.startsWith('..') && !isAbsolute(rel) ? rel : abs;
}

/**
 * Reads a regular file of at most `limit` bytes (a bounded read that never
 * blocks on a FIFO nor reads a device without end), or fails with a message
 * that says what is wrong with it.
 */
export function readText(path: string, cwd: string, what = 'file', limit = MAX_DOCUMENT_BYTES): string {
  const r = readBoundedFile(path, limit);
  if (r.ok) return r.text;
  const shown = displayPath(cwd, path);
  switch (r.kind) {
    case 'missing':
      throw new CliError(`${shown}: no such ${what}`, ExitCode.Invalid);
    case 'directory':
      throw new CliError(`${shown} is a directory, not a ${what}`, ExitCode.Invalid);
    case 'special':
      throw new CliError(`${shown} is ${r.type}, not a regular file; a ${what} must be a regular file`, ExitCode.Invalid);
    case 'too-large':
      throw new CliError(`${shown} is too large for a ${what}: ${formatSize(r.size ?? 0)} (${r.size} bytes), more than the limit of ${formatSize(limit)}`, ExitCode.Invalid);
    default:
      throw new CliError(`cannot read ${shown}: ${r.code}`, ExitCode.Invalid);
  }
}

/**
 * Writes a file atomically: a temporary file beside it, then a rename. The
 * temporary file has an unpredictable name and is created exclusively, so a
 * link planted where it would go is never followed. A symbolic link at
 * `path` itself is replaced; callers that must keep links write to the real
 * path (see `mclc fmt`).
 */
export function writeAtomic(path: string, text: string | TextParts, cwd: string, opts: { mode?: number } = {}): void {
  const shown = displayPath(cwd, path);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    mkdirSync(dirname(path), { recursive: true });
    const fd = openSync(tmp, 'wx', opts.mode ?? 0o666);
    try {
      if (typeof text === 'string') writeTextChunked(fd, text);
      else writeTextParts(fd, text);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new CliError(`cannot write ${shown}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, ExitCode.Invalid);
  }
}

/** UTF-16 code units encoded per write: at most three bytes each, so a chunk always fits the buffer. */
const WRITE_CHUNK_UNITS = 256 * 1024;
let writeBuffer: Buffer | undefined;

/**
 * Writes `text` as UTF-8 through one reused buffer of under a megabyte, a
 * chunk at a time. Encoding a whole plan at once (writeFileSync with a
 * string) allocates a fresh buffer of the plan's size: for the 24 MB plan of
 * 10,000 instances that allocation and its page faults took ten times as
 * long as encoding and writing the same bytes through a small buffer that
 * stays in cache. A chunk never ends between the two halves of a surrogate
 * pair, so the bytes are exactly those of encoding the whole text.
 */
export function writeTextChunked(fd: number, text: string): void {
  writeBuffer ??= Buffer.allocUnsafe(3 * WRITE_CHUNK_UNITS);
  for (let start = 0; start < text.length; ) {
    let end = Math.min(text.length, start + WRITE_CHUNK_UNITS);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
    const bytes = writeBuffer.write(end - start === text.length ? text : text.slice(start, end), 0, 'utf8');
    for (let off = 0; off < bytes; ) off += writeSync(fd, writeBuffer, off, bytes - off);
    start = end;
  }
}

/** A text given as the pieces it is made of, in order (prettyJsonParts of @mcl/plan), for writing without joining them. */
export type TextParts = (emit: (part: string) => void) => void;

/**
 * Writes the pieces `parts` emits as UTF-8, gathered in the same reused buffer
 * as writeTextChunked, so that a large text made of many small pieces (the
 * plan file) never exists as one string. A piece never ends between the two
 * halves of a surrogate pair, so the bytes are those of the joined text.
 */
export function writeTextParts(fd: number, parts: TextParts): void {
  const buf = (writeBuffer ??= Buffer.allocUnsafe(3 * WRITE_CHUNK_UNITS));
  let used = 0;
  const flush = (): void => {
    for (let off = 0; off < used; ) off += writeSync(fd, buf, off, used - off);
    used = 0;
  };
  parts((part) => {
    // Three bytes per UTF-16 code unit at most: a piece that might not fit is written after what is gathered.
    if (used + 3 * part.length > buf.length) flush();
    if (3 * part.length > buf.length) writeTextChunked(fd, part);
    else used += buf.write(part, used, 'utf8');
  });
  flush();
}

/** The real path of a file (after symbolic links), or undefined when it cannot be resolved. */
export function realPath(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}
