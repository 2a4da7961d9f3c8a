// `mclc validate --watch`: checks the sources, then checks them again whenever
// one of them changes, with the compiler's incremental analysis
// (IncrementalCompiler): a round parses again only the files that changed,
// checks again only the modules the change affects and takes the rest over,
// with the diagnostics a check from scratch gives (the compiler's tests hold
// it to that).
//
// What changed is decided from the files themselves, never from what a
// watcher reports: each round stats every file the last round read (and every
// file the paths now name), and a file whose identity, size or times differ is
// read again. Watchers on the folders of those files only say when to look,
// and a poll every second looks anyway (a folder too many to watch, a watcher
// the system refused, a file created in a new folder).

import { type FSWatcher, statSync, watch } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { IncrementalCompiler, type CompilerHost, type Unreadable } from '@mcl/compiler';
import { NodeHost } from '@mcl/compiler/node-host';
import { compileWorkspace, exitCodeFor, type CompileOutcome } from './compile';
import { CliError, ExitCode } from './exit';
import { resolveWorkspace, stdlibDir, type Workspace } from './workspace';

/** How often the files are looked at even when no watcher said anything (ms). */
const WATCH_POLL_MS = 1000;
/** How long after a watcher's first event a round starts, so that a save's several events make one round (ms). */
const SETTLE_MS = 30;
/** Most folders watched; past it, changes in the others are found by the poll. */
const MAX_WATCHED_DIRS = 256;

/** One round of checking: its number (1 is the first check), what changed since the last, and its result. */
export interface WatchRound {
  round: number;
  /** Workspace-relative paths of the files that changed, appeared or vanished since the last round (empty for the first). */
  changed: string[];
  workspace: Workspace;
  out: CompileOutcome;
  /** Wall time of the round's compile (ms). */
  elapsedMs: number;
  /** Modules checked again and taken over by the round's compile. */
  modules: { checked: number; takenOver: number };
}

export interface WatchOptions {
  paths: string[];
  cwd: string;
  root?: string;
  target?: string;
  system?: string;
  /** Stops watching; `watchSources` then resolves. */
  signal: AbortSignal;
  onRound(round: WatchRound): void;
  /** A round that could not run (the paths name no `.mcl` file any more, a folder cannot be read); watching goes on. */
  onError(error: CliError, round: number): void;
}

/** A file's identity and contents as `stat` sees them, or null when it does not exist. */
function signature(abs: string): string | null {
  try {
    const s = statSync(abs, { bigint: true });
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch {
    return null;
  }
}

/**
 * A host over the file system that reads a file again only when its signature changed since it was
 * last read, and remembers what each round's compile read (so the next round knows what to look
 * at). Reading itself, with its checks and bounds, is NodeHost's.
 */
class WatchedHost implements CompilerHost {
  private readonly node: NodeHost;
  /** What each workspace file the last round read was when read, and what reading it gave. */
  private readonly files = new Map<string, { sig: string | null; text: string | undefined }>();
  /** The files the round under way has read so far. */
  private readonly read = new Set<string>();
  /** The standard library does not change under a running mclc: each module is read once. */
  private readonly std = new Map<string, string | undefined>();

  constructor(root: string, stdlib: string) {
    this.node = new NodeHost({ root, stdlib });
  }

  readFile(path: string): string | undefined {
    const abs = this.node.resolvePath(path);
    if (abs === undefined) return undefined;
    this.read.add(path);
    const sig = signature(abs);
    const known = this.files.get(path);
    if (known && known.sig === sig) return known.text;
    const text = sig === null ? undefined : this.node.readFile(path);
    this.files.set(path, { sig, text });
    return text;
  }

  readStdlib(modulePath: string): string | undefined {
    if (!this.std.has(modulePath)) this.std.set(modulePath, this.node.readStdlib(modulePath));
    return this.std.get(modulePath);
  }

  unreadable(path: string): Unreadable | undefined {
    return this.node.unreadable(path);
  }

  sha256(text: string | readonly string[]): string {
    return this.node.sha256(text);
  }

  /** The files the last round read whose signature is no longer the one they were read with. */
  changed(): string[] {
    const out: string[] = [];
    for (const [path, known] of this.files) {
      const abs = this.node.resolvePath(path);
      if (abs !== undefined && known.sig !== signature(abs)) out.push(path);
    }
    return out;
  }

  /** Ends a round: forgets the files its compile did not read, so the next round does not look at them. */
  endRound(): void {
    for (const path of this.files.keys()) if (!this.read.has(path)) this.files.delete(path);
    this.read.clear();
  }

  /** The folders of the files the last round read. */
  folders(): Set<string> {
    const dirs = new Set<string>();
    for (const path of this.files.keys()) {
      const abs = this.node.resolvePath(path);
      if (abs !== undefined) dirs.add(dirname(abs));
    }
    return dirs;
  }
}

/**
 * Checks the sources the paths name, then again after each change, until `signal` aborts.
 * Resolves with the exit code of the last round (that of `mclc validate` on the sources as they
 * were last checked), or with the invalid-input code when no round could run.
 */
export async function watchSources(o: WatchOptions): Promise<number> {
  let host: WatchedHost | undefined;
  let rootOf: string | undefined;
  let compiler = new IncrementalCompiler();
  let round = 0;
  let lastCode: number = ExitCode.Invalid;
  let entries: string[] = [];
  const watchers = new Map<string, FSWatcher>();
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;

  const nudge = (delay: number) => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      wake?.();
    }, delay);
  };
  const poll = setInterval(() => wake?.(), WATCH_POLL_MS);
  const stop = () => wake?.();
  o.signal.addEventListener('abort', stop);

  /** Watches the folders of the files looked at (and of the paths), and no others. */
  const watchFolders = (dirs: Set<string>) => {
    for (const [dir, w] of watchers) {
      if (!dirs.has(dir)) {
        w.close();
        watchers.delete(dir);
      }
    }
    for (const dir of dirs) {
      if (watchers.has(dir) || watchers.size >= MAX_WATCHED_DIRS) continue;
      try {
        const w = watch(dir, { persistent: false }, () => nudge(SETTLE_MS));
        // A folder that vanishes, or a watch the system withdraws, is left to the poll.
        w.on('error', () => {
          w.close();
          if (watchers.get(dir) === w) watchers.delete(dir);
        });
        watchers.set(dir, w);
      } catch {
        // Out of watches (inotify's limit), or the folder is gone: the poll finds its changes.
      }
    }
  };

  try {
    let checked = false;
    let lastError: string | undefined;
    for (;;) {
      if (o.signal.aborted) break;
      let ws: Workspace | undefined;
      try {
        ws = resolveWorkspace(o.paths, { root: o.root, cwd: o.cwd });
      } catch (e) {
        if (!(e instanceof CliError)) throw e;
        // Told once, not at every poll while it lasts.
        if (e.message !== lastError) o.onError(e, ++round);
        lastError = e.message;
        lastCode = e.code;
        entries = [];
      }
      if (ws) {
        lastError = undefined;
        if (!host || rootOf !== ws.root) {
          // What was read and checked under another root names other files: start afresh.
          host = new WatchedHost(ws.root, stdlibDir());
          compiler = new IncrementalCompiler();
          rootOf = ws.root;
          checked = false;
        }
        const next = ws.entries;
        const before = new Set(entries);
        const now = new Set(next);
        const added = next.filter((e) => !before.has(e));
        const removed = entries.filter((e) => !now.has(e));
        const changed = checked ? [...new Set([...host.changed(), ...added, ...removed])].sort() : [];
        if (!checked || changed.length > 0) {
          round++;
          checked = true;
          entries = next;
          const started = performance.now();
          const out = compileWorkspace({ workspace: ws, target: o.target, system: o.system, emitPlan: false }, { host, compiler });
          const elapsedMs = performance.now() - started;
          host.endRound();
          lastCode = exitCodeFor(out.diagnostics);
          o.onRound({ round, changed, workspace: ws, out, elapsedMs, modules: { checked: compiler.stats.checked, takenOver: compiler.stats.reused } });
        }
        const dirs = host.folders();
        for (const p of o.paths.length ? o.paths : ['.']) {
          const abs = resolve(o.cwd, p);
          try {
            dirs.add(statSync(abs).isDirectory() ? abs : dirname(abs));
          } catch {
            // Gone since the workspace was resolved: the next round tells.
          }
        }
        watchFolders(dirs);
      }
      if (o.signal.aborted) break;
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
  } finally {
    clearInterval(poll);
    if (timer) clearTimeout(timer);
    o.signal.removeEventListener('abort', stop);
    for (const w of watchers.values()) w.close();
  }
  return lastCode;
}
