// The workspace model: which `.mcl` files exist, which are open in the
// editor, and a compiler host in which an open document's unsaved text wins
// over the file on disk.

import { existsSync, statSync } from 'node:fs';
import { basename, join, parse as parsePath, relative, resolve, sep } from 'node:path';
import type { CompilerHost } from '@mcl/compiler';
import { walkSourceFiles } from '@mcl/compiler/node-host';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import { PathMapper } from './paths';

/** Folders never scanned for sources: dependencies, build output, VCS data and hidden folders. */
const SKIPPED_DIRS = new Set(['node_modules', 'dist', 'out', 'build']);

/** Guards against pathological trees (a workspace opened at `/` or at a home folder). */
const MAX_SCANNED_FILES = 20_000;
const MAX_SCANNED_DIRS = 20_000;

/**
 * The largest source the server analyses, in UTF-16 code units (bytes on
 * disk). Analysis holds several times a file's size (tokens, tree, indexes);
 * a 5 MB file cost about 1.1 GB. A larger file is analysed as if empty, with a
 * warning on it, and is not formatted.
 */
export const MAX_SOURCE_SIZE = 2 * 1024 * 1024;

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

  /** Folders scanned for sources: the workspace folders, all inside `paths.root`. */
  folders: string[] = [];
  /** Told (once per scan) when a limit stopped the scan or a file was too large to analyse. */
  onLimit: (message: string) => void = () => undefined;
  /** Files over MAX_SOURCE_SIZE, with their size, analysed as empty. */
  private readonly tooLarge = new Map<string, number>();

  constructor(
    readonly paths: PathMapper,
    private readonly base: CompilerHost,
  ) {}

  /** Scans the workspace folders for `.mcl` files (outside the stdlib folder). */
  scan(): void {
    const found: string[] = [];
    let dirs = 0;
    let stopped: string | undefined;
    for (const folder of this.folders.length ? this.folders : [this.paths.root]) {
      const abs = resolve(folder);
      if (abs === parsePath(abs).root) {
        // A whole file system is not a project: scanning it would take minutes before the first answer.
        this.onLimit(`the workspace folder ${abs} is the root of the file system; it is not scanned for .mcl files (open files are still analysed). Open the folder of your project instead.`);
        continue;
      }
      // The walk mclc shares (it never follows directory links); hidden files and folders are not part of an editor's workspace.
      const walk = walkSourceFiles(abs, {
        skipDir: (name, full) => {
          if (name.startsWith('.') || SKIPPED_DIRS.has(name) || this.paths.isStdlibPath(full) || isStdlibCopy(full)) return true;
          if (++dirs <= MAX_SCANNED_DIRS) return false;
          stopped ??= `stopped looking for .mcl files after ${MAX_SCANNED_DIRS} folders; files in the others are analysed when opened. Open the folder of your project rather than one above it.`;
          return true;
        },
        maxFiles: MAX_SCANNED_FILES - found.length,
        maxDepth: 32,
      });
      for (const f of walk.files) if (!basename(f).startsWith('.')) found.push(relative(this.paths.root, f).split(sep).join('/'));
      if (found.length >= MAX_SCANNED_FILES) break;
    }
    if (found.length >= MAX_SCANNED_FILES) stopped ??= `stopped looking for .mcl files after finding ${MAX_SCANNED_FILES}; files beyond are analysed when opened.`;
    if (stopped) this.onLimit(stopped);
    this.diskFiles = [...new Set(found)].sort();
  }

  /** The size of a file too large to analyse, or undefined. */
  tooLargeSize(file: string): number | undefined {
    return this.tooLarge.get(file);
  }

  /** Files too large to analyse, with their sizes. */
  tooLargeFiles(): [string, number][] {
    return [...this.tooLarge];
  }

  /** Records whether a source is within the limit; an oversized one is analysed as empty text. */
  private bounded(file: string, text: string | undefined, size = text?.length ?? 0): string | undefined {
    if (text === undefined && size <= MAX_SOURCE_SIZE) {
      this.tooLarge.delete(file);
      return undefined;
    }
    if (size <= MAX_SOURCE_SIZE) {
      this.tooLarge.delete(file);
      return text;
    }
    if (!this.tooLarge.has(file)) this.onLimit(`${file} is ${(size / 2 ** 20).toFixed(1)} MiB, over the ${MAX_SOURCE_SIZE / 2 ** 20} MiB the server analyses; it is treated as empty.`);
    this.tooLarge.set(file, size);
    return '';
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

  /** Forgets the standard library texts read so far (its folder changed). */
  forgetStdlib(): void {
    for (const f of [...this.diskCache.keys()]) if (f.startsWith('std:')) this.diskCache.delete(f);
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
    if (doc) return this.bounded(file, doc.getText());
    if (this.cacheDisk && this.diskCache.has(file)) return this.diskCache.get(file);
    if (this.buildReads?.has(file)) return this.buildReads.get(file);
    const text = file.startsWith('std:') ? this.base.readStdlib(file.slice(4)) : this.readBounded(file);
    if (this.cacheDisk) this.diskCache.set(file, text);
    else this.buildReads?.set(file, text);
    return text;
  }

  /**
   * An open document's file as saved on disk, or undefined: a file not on disk (a new document), a
   * standard library file, or one over the size limit (checked before reading). Builds never read
   * it (an open document's text wins); the analyzer warms the edit path with it (`Analyzer.warmUp`).
   */
  savedText(file: string): string | undefined {
    if (file.startsWith('std:')) return undefined;
    const size = this.diskSize(file);
    return size === undefined || size > MAX_SOURCE_SIZE ? undefined : this.base.readFile(file);
  }

  /** A workspace file's size on disk, or undefined when it cannot be found. */
  private diskSize(file: string): number | undefined {
    try {
      return statSync(this.paths.toFsPath(file)).size;
    } catch {
      return undefined;
    }
  }

  /** Reads a workspace file from disk unless it is over the size limit (checked before reading). */
  private readBounded(file: string): string | undefined {
    // Missing: the host's read reports it as absent.
    const size = this.diskSize(file) ?? 0;
    if (size > MAX_SOURCE_SIZE) return this.bounded(file, undefined, size);
    return this.bounded(file, this.base.readFile(file));
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
