// The workspace model: which `.mcl` files exist, which are open in the
// editor, and a compiler host in which an open document's unsaved text wins
// over the file on disk.

import { existsSync } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import type { CompilerHost } from '@mcl/compiler';
import { walkSourceFiles } from '@mcl/compiler/node-host';
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
    // The walk mclc shares (it never follows directory links); hidden files and folders are not part of an editor's workspace.
    const { files } = walkSourceFiles(this.paths.root, {
      skipDir: (name, full) => name.startsWith('.') || SKIPPED_DIRS.has(name) || this.paths.isStdlibPath(full) || isStdlibCopy(full),
      maxFiles: MAX_SCANNED_FILES,
      maxDepth: 32,
    });
    this.diskFiles = files
      .filter((f) => !basename(f).startsWith('.'))
      .map((f) => relative(this.paths.root, f).split(sep).join('/'))
      .sort();
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
