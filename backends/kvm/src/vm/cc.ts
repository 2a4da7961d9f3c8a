// Builds a C source of this installation with the host's C compiler into the
// cache, once: `<cache>/<subdir>/<key>/<name>`, keyed by the source, the
// command, the compiler and its version and the architecture, so a changed
// source or compiler is rebuilt and an unchanged one is not. The QEMU zygote
// library (zygote.ts) and the Xen backend's programs are built this way.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { cacheDir, which } from './paths';

/** The C compiler: `$CC`, else cc or gcc on $PATH. */
export function findCompiler(): string | null {
  return process.env.CC || which('cc') || which('gcc');
}

export interface CBuild {
  /** The file built, e.g. `mcl-zygote.so`. */
  name: string;
  /** The C source's absolute path. */
  source: string;
  /** Arguments before `-o OUT SOURCE`. */
  flags: readonly string[];
  /** Arguments after the source (libraries). */
  libs?: readonly string[];
  /** The folder of the cache the builds go into. */
  subdir: string;
}

/** Why a build failed: `what` is `no-compiler`, `no-source` or `compile` (then `output` has the compiler's last lines). */
export class CBuildError extends Error {
  constructor(
    message: string,
    readonly what: 'no-compiler' | 'no-source' | 'compile',
    readonly output = '',
  ) {
    super(message);
  }
}

const builds = new Map<string, Promise<string>>();

/** The path of the built file (built now when the cache has none); concurrent callers share one build. */
export function buildC(b: CBuild, options: { cacheDir?: string } = {}): Promise<string> {
  const dir = path.join(cacheDir(options), b.subdir);
  const id = `${dir}\0${b.name}`;
  let p = builds.get(id);
  if (!p) {
    p = build(b, dir);
    builds.set(id, p);
    // A failed build is tried again by the next caller (a compiler may have been installed since).
    p.catch(() => builds.delete(id));
  }
  return p;
}

async function build(b: CBuild, dir: string): Promise<string> {
  const cc = findCompiler();
  if (!cc) throw new CBuildError(`no C compiler (cc) to build ${b.name}`, 'no-compiler');
  const source = await readFile(b.source).catch(() => {
    throw new CBuildError(`the source ${b.source} of ${b.name} is missing`, 'no-source');
  });
  const version = await execa(cc, ['--version'], { reject: false });
  const key = createHash('sha256')
    .update(source)
    .update('\0')
    .update(cc)
    .update('\0')
    .update(version.stdout ?? '')
    .update('\0')
    .update([...b.flags, ...(b.libs ?? [])].join(' '))
    .update('\0')
    .update(process.arch)
    .digest('hex')
    .slice(0, 32);
  const out = path.join(dir, key, b.name);
  if (existsSync(out)) return out;
  await mkdir(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const r = await execa(cc, [...b.flags, '-o', tmp, b.source, ...(b.libs ?? [])], { reject: false, all: true, timeout: 120_000 });
  if (r.exitCode !== 0) {
    await rm(tmp, { force: true });
    const output = String(r.all ?? '').trim().split('\n').slice(-10).join('\n');
    const how = r.exitCode === undefined ? (r.signal ?? 'did not run') : `exit code ${r.exitCode}`;
    throw new CBuildError(`building ${b.name} failed (${cc}, ${how})${output ? `:\n${output}` : ''}`, 'compile', output);
  }
  // Renamed into place, so a concurrent build or a reader never sees half a file.
  await rename(tmp, out);
  return out;
}
