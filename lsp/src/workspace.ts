// The workspace model: which `.mcl` files exist, which are open in the
// editor, and a compiler host in which an open document's unsaved text wins
// over the file on disk.

import { existsSync, readdirSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { CompilerHost } from '@mcl/compiler';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import { PathMapper } from './paths';

/** Folders never scanned for sources: dependencies, build output, VCS data and hidden folders. */
const SKIPPED_DIRS = new Set(['node_modules', 'dist', 'out', 'build']);

/** Guards against pathological trees (a workspace opened at `/`). */
const MAX_SCANNED_FILES = 20_000;

export class Workspace {
  /** Open documents by compiler file name. */
  private readonly open = new Map<string, TextDocument>();
  /** Workspace files found on disk, compiler file names, sorted. */
  private diskFiles: string[] = [];
  /**
   * Disk contents read so far. Kept only while the client tells us about file
   * changes (watched files); otherwise every build reads the disk again.
   */
  private readonly diskCache = new Map<string, string | undefined>();
  cacheDisk = false;
  /**
   * Disk reads during one build, so a build reads each file once even when the
   * disk is not cached between builds. Set by the analyzer around a build.
   */
  buildReads: Map<string, string | undefined> | undefined;

  constructor(
    readonly paths: PathMapper,
    private readonly base: CompilerHost,
  ) {}

  /** Scans the workspace root for `.mcl` files (outside the stdlib folder). */
  scan(): void {
    const found: string[] = [];
    const walk = (dir: string, depth: number): void => {
      if (depth > 32 || found.length >= MAX_SCANNED_FILES) return;
      let entries;
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        if (e.name.startsWith('.')) continue;
        const full = join(dir, e.name);
        if (e.isDirectory()) {
          if (SKIPPED_DIRS.has(e.name) || this.paths.isStdlibPath(full) || isStdlibCopy(full)) continue;
          walk(full, depth + 1);
        } else if (e.isFile() && e.name.endsWith('.mcl')) {
          found.push(relative(this.paths.root, full).split(sep).join('/'));
          if (found.length >= MAX_SCANNED_FILES) return;
        }
      }
    };
    walk(this.paths.root, 0);
    found.sort();
    this.diskFiles = found;
  }

  /** A file changed, appeared or vanished on disk. */
  fileChanged(file: string, kind: 'created' | 'changed' | 'deleted'): void {
    this.diskCache.delete(file);
    if (file.startsWith('std:')) return;
    if (kind === 'created' && !this.diskFiles.includes(file)) {
      this.diskFiles.push(file);
      this.diskFiles.sort();
    } else if (kind === 'deleted') {
      this.diskFiles = this.diskFiles.filter((f) => f !== file);
    }
  }

  setOpen(file: string, doc: TextDocument): void {
    this.open.set(file, doc);
  }

  close(file: string): void {
    this.open.delete(file);
    this.diskCache.delete(file);
  }

  openDocument(file: string): TextDocument | undefined {
    return this.open.get(file);
  }

  openFiles(): string[] {
    return [...this.open.keys()];
  }

  /** The entries of a whole-workspace compile: every workspace file on disk plus unsaved new documents. */
  entries(): string[] {
    const set = new Set(this.diskFiles);
    for (const f of this.open.keys()) if (!f.startsWith('std:')) set.add(f);
    return [...set].sort();
  }

  /** The current text of a file: the open document, else the disk. */
  text(file: string): string | undefined {
    const doc = this.open.get(file);
    if (doc) return doc.getText();
    if (this.cacheDisk && this.diskCache.has(file)) return this.diskCache.get(file);
    if (this.buildReads?.has(file)) return this.buildReads.get(file);
    const text = file.startsWith('std:') ? this.base.readStdlib(file.slice(4)) : this.base.readFile(file);
    if (this.cacheDisk) this.diskCache.set(file, text);
    else this.buildReads?.set(file, text);
    return text;
  }

  /** The compiler host seen by builds: open documents first, then the disk. */
  readonly host: CompilerHost = {
    readFile: (path: string) => this.text(path),
    readStdlib: (modulePath: string) => this.text('std:' + modulePath),
  };
}

/**
 * A folder holding a copy of the standard library (the packaged extension's
 * `stdlib/`, a vendored copy) is not part of the workspace: its files are
 * `std.` modules, not workspace modules.
 */
function isStdlibCopy(dir: string): boolean {
  return existsSync(join(dir, 'prelude.mcl'));
}
