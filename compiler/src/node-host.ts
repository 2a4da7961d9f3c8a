// NodeHost: the file-system CompilerHost used by the CLI and the language
// server. It is the only module of @mcl/compiler that touches node:fs and
// node:path (and node:crypto, for a native SHA-256), and it is not exported from the package index (which must stay
// IO-free for the editor); import it as `@mcl/compiler/node-host`.
//
// Every path is resolved against the workspace root and refused when it would
// leave it, including through symbolic links, so a hostile module path or
// program file cannot read the rest of the machine.

import { createHash, hash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readdirSync, readSync, realpathSync, statSync, type Stats } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { CompilerHost, Unreadable } from './api';

export interface NodeHostOptions {
  /** Workspace root directory; imports and program files resolve under it. */
  root: string;
  /** Standard library directory (`stdlib/` of the mcl distribution). */
  stdlib: string;
  /** Texts that override the disk (unsaved editor buffers), by workspace-relative path. */
  overlay?: Map<string, string>;
}

/** Largest source or program file read, to keep a hostile workspace from exhausting memory. */
export const MAX_FILE_BYTES = 64 * 1024 * 1024;

// The bounded read of a regular file is @mcl/plan's (its IO subpath), so that the CLI, the compiler's
// host and the backends read hostile files one way.
export { fileType, readBoundedFile, type BoundedRead } from '@mcl/plan/state-store';
import { readBoundedFile } from '@mcl/plan/state-store';

/** A size for messages, in the binary units the language writes sizes in. */
export function formatSize(bytes: number): string {
  const one = (v: number) => String(Math.round(v * 10) / 10);
  if (bytes >= 1024 * 1024) return `${one(bytes / (1024 * 1024))} MiB`;
  return bytes >= 1024 ? `${one(bytes / 1024)} KiB` : `${bytes} bytes`;
}

/** Directories a walk never enters unless the caller says otherwise: dependencies, build output, VCS and mcl's own runtime data. */
export const SKIPPED_DIRS: ReadonlySet<string> = new Set(['node_modules', '.git', '.mcl', 'dist', '.hg', '.svn']);

export interface SourceWalkOptions {
  /** Whether to leave out a directory (by its name and absolute path). Default: the names in SKIPPED_DIRS. */
  skipDir?: (name: string, abs: string) => boolean;
  /** Stop after this many files (the result says `truncated`). Default: no limit. */
  maxFiles?: number;
  /** Do not descend more than this many directories below `dir`. Default: no limit. */
  maxDepth?: number;
}

export interface SourceWalk {
  /** Absolute paths of the `.mcl` files found, sorted. */
  files: string[];
  /** Directories that could not be listed, with the error code. */
  errors: { path: string; code: string }[];
  /** Directory symbolic links that were not followed. */
  skippedLinks: string[];
  truncated: boolean;
}

/**
 * The one directory walk of mclc (the CLI's paths and the language server's
 * workspace scan): every `.mcl` file under `dir`. Symbolic links to
 * directories are never followed, so a link loop (`d/loop -> ..`) cannot
 * hang the walk or count a file many times, and a link out of the tree
 * (`d/root -> /`) cannot make it walk the machine. A symbolic link to a file
 * is listed like the file (NodeHost reads it only when its target is inside
 * the workspace); FIFOs, sockets and devices are not sources and are left out.
 */
export function walkSourceFiles(dir: string, opts: SourceWalkOptions = {}): SourceWalk {
  const skipDir = opts.skipDir ?? ((name: string) => SKIPPED_DIRS.has(name));
  const maxFiles = opts.maxFiles ?? Infinity;
  const maxDepth = opts.maxDepth ?? Infinity;
  const out: SourceWalk = { files: [], errors: [], skippedLinks: [], truncated: false };
  const visit = (d: string, depth: number): void => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch (e) {
      out.errors.push({ path: d, code: (e as NodeJS.ErrnoException).code ?? (e as Error).message });
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (out.files.length >= maxFiles) {
        out.truncated = true;
        return;
      }
      const full = join(d, e.name);
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        let target: Stats;
        try {
          target = statSync(full);
        } catch {
          continue; // A dangling link is not a source.
        }
        if (target.isDirectory()) {
          out.skippedLinks.push(full);
          continue;
        }
        isDir = false;
        isFile = target.isFile();
      }
      if (isDir) {
        if (skipDir(e.name, full)) continue;
        if (depth >= maxDepth) {
          out.truncated = true;
          continue;
        }
        visit(full, depth + 1);
      } else if (isFile && e.name.endsWith('.mcl')) out.files.push(full);
    }
  };
  visit(dir, 0);
  return out;
}

export class NodeHost implements CompilerHost {
  readonly root: string;
  readonly stdlib: string;
  readonly overlay: Map<string, string>;
  private realRoot: string | undefined;
  /** Why files that exist were not read, by workspace-relative path (see `unreadable`). */
  private readonly failures = new Map<string, Unreadable>();

  /** `new NodeHost({ root, stdlib })`, or `new NodeHost(root, stdlib)`. */
  constructor(options: NodeHostOptions | string, stdlib?: string) {
    if (typeof options === 'string') options = { root: options, stdlib: stdlib ?? '' };
    this.root = resolve(options.root);
    this.stdlib = resolve(options.stdlib);
    this.overlay = options.overlay ?? new Map();
  }

  /** Workspace-relative path (forward slashes) of an absolute path inside the root, or undefined outside it. */
  toWorkspacePath(abs: string): string | undefined {
    const rel = relative(this.root, resolve(abs));
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return undefined;
    return rel.split(sep).join('/');
  }

  /** Absolute path of a workspace-relative path, or undefined when it would leave the root. */
  resolvePath(path: string): string | undefined {
    if (!isSafe(path)) return undefined;
    const abs = resolve(this.root, ...path.split('/'));
    const rel = relative(this.root, abs);
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return undefined;
    return abs;
  }

  readFile(path: string): string | undefined {
    const over = this.overlay.get(path);
    if (over !== undefined) return over;
    const abs = this.resolvePath(path);
    if (!abs) return undefined;
    const r = this.read(abs, this.rootReal());
    if (typeof r === 'string') return r;
    if (r) this.failures.set(path, r);
    return undefined;
  }

  /** Why `readFile(path)` gave nothing for a file that exists (CompilerHost.unreadable). */
  unreadable(path: string): Unreadable | undefined {
    return this.failures.get(path);
  }

  /** Native SHA-256 (the compiler's own pure-JS digest is the fallback for hosts without one). */
  sha256(text: string | readonly string[]): string {
    return nativeSha256(text);
  }

  readStdlib(modulePath: string): string | undefined {
    const parts = modulePath.split('.');
    if (parts.some((p) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(p))) return undefined;
    const abs = join(this.stdlib, ...parts) + '.mcl';
    let realStd: string;
    try {
      realStd = realpathSync(this.stdlib);
    } catch {
      return undefined;
    }
    const r = this.read(abs, realStd);
    return typeof r === 'string' ? r : undefined;
  }

  private rootReal(): string {
    if (this.realRoot === undefined) {
      try {
        this.realRoot = realpathSync(this.root);
      } catch {
        this.realRoot = this.root;
      }
    }
    return this.realRoot;
  }

  /**
   * Reads a regular file whose real path (after symbolic links) stays under
   * `within`, with a bounded read. Gives the text, why a file that exists was
   * not read, or undefined when there is no such file.
   */
  private read(abs: string, within: string): string | Unreadable | undefined {
    let real: string;
    try {
      // The C library's realpath: one call, where Node's own resolution in JavaScript makes an lstat
      // of every component of the path (about half the time of reading a source of a few kilobytes).
      real = realpathSync.native(abs);
    } catch {
      return undefined;
    }
    const rel = relative(within, real);
    if (rel.startsWith('..') || isAbsolute(rel)) {
      return { reason: `it is a symbolic link to ${real}, outside the workspace`, hint: 'copy the file into the workspace instead of linking to it' };
    }
    const r = readBoundedFile(real, MAX_FILE_BYTES);
    if (r.ok) return r.text;
    switch (r.kind) {
      case 'missing':
        return undefined;
      case 'too-large':
        return {
          reason: `it is ${formatSize(r.size ?? 0)} (${r.size} bytes), more than the ${formatSize(MAX_FILE_BYTES)} a source or program file may have`,
          hint: 'split it into smaller files',
        };
      case 'special':
        return { reason: `it is ${r.type}, not a regular file`, hint: 'sources and program files must be regular files' };
      case 'directory':
        return { reason: 'it is a directory', hint: 'name a file' };
      default:
        return { reason: `reading it failed (${r.code})`, hint: 'check the permissions of the file' };
    }
  }
}

function isSafe(p: string): boolean {
  if (p === '' || p.includes('\0') || p.includes('\\')) return false;
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p)) return false;
  return !p.split('/').some((s) => s === '..' || s === '');
}

/**
 * CompilerHost.sha256 with node:crypto, for any host running on Node (NodeHost,
 * the language server's in-memory host). Strings use the one-shot hash: a Hash
 * object per call cost about 12 µs, which for the 10,000 instance digests of a
 * large plan was 120 ms of a compile.
 */
export function nativeSha256(text: string | readonly string[]): string {
  if (typeof text === 'string') return hash('sha256', text, 'hex');
  const h = createHash('sha256');
  for (const part of text) h.update(part, 'utf8');
  return h.digest('hex');
}
