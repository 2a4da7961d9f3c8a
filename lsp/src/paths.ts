// Mapping between the compiler's file names and editor URIs.
//
// The compiler names a workspace file by its workspace-relative path with
// forward slashes (`shop/types.mcl`) and a standard library module by
// `std:<module>` (`std:http`). The editor speaks `file://` URIs. Standard
// library modules live as plain files in the stdlib folder, so go to
// definition can open them like any other file.

import { existsSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export class PathMapper {
  readonly root: string;
  private stdlib: string;

  constructor(root: string, stdlibDir: string) {
    this.root = resolve(root);
    this.stdlib = resolve(stdlibDir);
  }

  /** The standard library folder. It changes only when the client's settings name another one (see setStdlibDir). */
  get stdlibDir(): string {
    return this.stdlib;
  }

  /** Points `std:` modules at another standard library folder (a settings change while running). */
  setStdlibDir(dir: string): void {
    this.stdlib = resolve(dir);
  }

  /** The file URI of a compiler file name. */
  toUri(file: string): string {
    return pathToFileURL(this.toFsPath(file)).href;
  }

  /** The absolute file-system path of a compiler file name. */
  toFsPath(file: string): string {
    if (file.startsWith('std:')) {
      const module = file.slice(4);
      return join(this.stdlibDir, ...module.split('.')) + '.mcl';
    }
    return join(this.root, ...file.split('/'));
  }

  /**
   * The compiler file name of a URI, or undefined for a URI outside both the
   * workspace and the standard library (such a document gets no analysis,
   * because imports never resolve outside the workspace root).
   */
  fromUri(uri: string): string | undefined {
    let fsPath: string;
    try {
      fsPath = fileURLToPath(uri);
    } catch {
      return undefined;
    }
    if (!fsPath.endsWith('.mcl')) return undefined;
    // The standard library wins when it sits inside the workspace (as in the
    // mcl repository itself), because the compiler reads it as `std:` modules.
    const inStd = inside(this.stdlibDir, fsPath);
    if (inStd !== undefined) return 'std:' + inStd.slice(0, -4).split('/').join('.');
    const inRoot = inside(this.root, fsPath);
    if (inRoot !== undefined) return inRoot;
    return undefined;
  }

  /** The module path (`shop.types`, `std.http`) of a compiler file name. */
  static modulePath(file: string): string {
    if (file.startsWith('std:')) return 'std.' + file.slice(4);
    return file.replace(/\.mcl$/, '').split('/').join('.');
  }

  /** True when a workspace-relative path lies inside the stdlib folder (so the workspace scan skips it). */
  isStdlibPath(fsPath: string): boolean {
    return inside(this.stdlibDir, resolve(fsPath)) !== undefined || resolve(fsPath) === this.stdlibDir;
  }
}

/** The path of `child` relative to `dir` with forward slashes, or undefined when it is not inside. */
function inside(dir: string, child: string): string | undefined {
  const rel = relative(dir, child);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return undefined;
  return rel.split(sep).join('/');
}

/**
 * Finds the standard library folder: an explicit setting, the MCL_STDLIB
 * environment variable, then a `stdlib` folder next to the bundle (the .vsix
 * layout, `dist/../stdlib`) or two levels up (the repository layout,
 * `lsp/dist/../../stdlib`).
 */
export function findStdlibDir(explicit: string | undefined, bundleDir: string): string | undefined {
  const candidates = [
    explicit,
    process.env.MCL_STDLIB,
    join(bundleDir, '..', 'stdlib'),
    join(bundleDir, '..', '..', 'stdlib'),
    join(bundleDir, '..', '..', '..', 'stdlib'),
  ];
  for (const c of candidates) {
    if (c && existsSync(join(c, 'prelude.mcl'))) return resolve(c);
  }
  return undefined;
}
