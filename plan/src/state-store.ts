// The deployment state store: <workspace>/.mcl/state.json, guarded by a lock file.
//
// Backends call this module; the compiler never does (it reads a state only
// through `mclc plan --state`, as data). Two guarantees matter here:
//
// * A crash at any moment leaves either the old or the new state on disk,
//   never a torn file: the new content goes to a temporary file in the same
//   directory, is fsynced, renamed over the old file, and the directory is
//   fsynced so the rename itself survives a power loss.
// * At most one live process changes a deployment at a time. The lock file is
//   created exclusively (a fully written temporary file is hard-linked to the
//   lock path, which fails when the lock exists: the same guarantee as
//   O_EXCL, but a reader can never see a half-written lock). It names its
//   holder by pid and process start time, so a lock left by a process that
//   died (or whose pid was reused) is recognised as stale and taken over.

import { randomUUID } from 'node:crypto';
import { closeSync, constants, type Stats, fstatSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { STATE_FORMAT_VERSION, type BackendName, type DeploymentState } from './types';
import { validateState } from './validate';

export const STATE_DIR = '.mcl';
export const STATE_FILE = 'state.json';

/**
 * Why a state operation failed; the CLI maps these to exit-code classes.
 * `unsafe`: the state directory or file is a symbolic link or belongs to
 * another user, so its content cannot be taken as this user's deployment.
 */
export type StateErrorCode = 'locked' | 'corrupt' | 'unsupported-version' | 'io' | 'unsafe';

/** A state file larger than this is refused unread (a planted /dev/zero or a huge file must not exhaust memory). */
export const MAX_STATE_BYTES = 256 * 1024 * 1024;

export class StateError extends Error {
  readonly code: StateErrorCode;
  readonly hint: string;
  constructor(code: StateErrorCode, message: string, hint: string) {
    super(message);
    this.name = 'StateError';
    this.code = code;
    this.hint = hint;
  }
}

/** Who holds a lock, as written into the lock file. */
export interface LockHolder {
  pid: number;
  /** Start time of the process in clock ticks since boot (/proc/<pid>/stat field 22), or null where /proc is missing. */
  start_time: number | null;
  /** Kernel boot id, so a lock from before a reboot is never mistaken for a live one. */
  boot_id: string | null;
  host: string;
  /** What the holder is doing, e.g. `apply`. */
  operation: string;
  acquired_at: string;
}

export function statePath(workspace: string): string {
  return join(workspace, STATE_DIR, STATE_FILE);
}

/** The lock file guarding a state file: `<state file>.lock` beside it (`.mcl/state.lock` for the default path). */
export function lockPath(stateFile: string): string {
  return stateFile.replace(/\.json$/, '') + '.lock';
}

/** An empty state for a new deployment, with a fresh lineage. */
export function emptyState(backend: BackendName, lineage: string = randomUUID()): DeploymentState {
  return {
    format_version: STATE_FORMAT_VERSION,
    lineage,
    serial: 0,
    backend,
    plan_digest: null,
    system: null,
    instances: [],
    channels: [],
    exposures: [],
  };
}

/**
 * Refuses a state directory or state file that is not this user's own: a
 * symbolic link (a cloned repository or an unpacked archive can hold
 * `.mcl -> /home/me/other-project/.mcl`, which would hand this workspace
 * another deployment) or an entry owned by another user. Missing entries
 * are fine: nothing was deployed from here yet.
 */
export function checkStateLocation(stateFile: string): void {
  const uid = process.geteuid?.();
  const check = (path: string, what: string, isRight: (st: Stats) => boolean) => {
    let st: Stats;
    try {
      st = lstatSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new StateError('io', `cannot inspect ${path}: ${(e as Error).message}`, 'check the permissions of the state directory');
    }
    if (st.isSymbolicLink()) {
      throw new StateError('unsafe', `the ${what} ${path} is a symbolic link`, `a deployment is bound to its own state file: pass the real path with --state, or remove the link`);
    }
    if (!isRight(st)) throw new StateError('unsafe', `the ${what} ${path} is not a ${what === 'state file' ? 'regular file' : 'directory'}`, 'remove it, or pass another path with --state');
    if (uid !== undefined && st.uid !== uid) {
      throw new StateError('unsafe', `the ${what} ${path} belongs to uid ${st.uid}, not to you (uid ${uid})`, 'a deployment is managed by the user who owns its state; run mclc as that user or pass another --state');
    }
  };
  check(dirname(stateFile), 'state directory', (st) => st.isDirectory());
  check(stateFile, 'state file', (st) => st.isFile());
}

/** What to do with a state file that cannot be used, in an order that works: every lifecycle command reads the state first. */
function corruptHint(path: string): string {
  return (
    `move it aside (mv ${path} ${path}.corrupt) and run \`mclc status\`: it shows what still runs from this state's location; ` +
    'then `mclc destroy` stops it, or `mclc plan` and `mclc apply` record it again'
  );
}

/** The result of a bounded read: the text, or why there is none. */
export type BoundedRead =
  | { ok: true; text: string }
  | { ok: false; kind: 'missing' | 'directory' | 'special' | 'too-large' | 'error'; code?: string; size?: number; type?: string };

/** What `readFileRange` read: the text, where it started, and the file's size and inode when it was read. */
export interface FileRange {
  text: string;
  start: number;
  size: number;
  ino: number;
}

/**
 * Reads at most `max` bytes of a regular file from byte `start`, or the
 * last `max` bytes when `start` is `'end'`: the one way part of a file is
 * read (the end of a log, what was appended since an offset). It never
 * follows a link nor blocks on a FIFO; null when the file cannot be opened
 * or is not a regular file.
 */
export function readFileRange(path: string, start: number | 'end', max: number): FileRange | null {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return null;
    const from = start === 'end' ? Math.max(0, st.size - max) : start;
    const len = Math.max(0, Math.min(st.size - from, max));
    const buf = Buffer.alloc(len);
    const n = len ? readSync(fd, buf, 0, len, from) : 0;
    return { text: buf.subarray(0, n).toString('utf8'), start: from, size: st.size, ino: st.ino };
  } finally {
    closeSync(fd);
  }
}

/** Size of the buffer readBoundedFile reuses for every file that fits it (sources, programs, most states). */
const READ_BUFFER_BYTES = 1 << 20;
let readBuffer: Buffer | undefined;

/**
 * Reads a regular file as UTF-8, at most `limit` bytes: the one way mclc reads
 * a file named by the workspace or the command line (sources, programs,
 * plans, states). It opens without blocking (a FIFO would block `open`
 * forever), checks on the open descriptor that the file is a regular one (a
 * device such as /dev/zero never ends), and stops reading past `limit` even
 * when the file grows while it is read. With `noFollow`, a symbolic link is
 * refused (ELOOP) rather than followed.
 */
export function readBoundedFile(path: string, limit: number, opts: { noFollow?: boolean } = {}): BoundedRead {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | (constants.O_NOCTTY ?? 0) | (opts.noFollow ? constants.O_NOFOLLOW : 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { ok: false, kind: 'missing', code };
    if (code === 'EISDIR') return { ok: false, kind: 'directory', code };
    return { ok: false, kind: 'error', code: code ?? (e as Error).message };
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) return { ok: false, kind: 'directory' };
    if (!st.isFile()) return { ok: false, kind: 'special', type: fileType(st) };
    if (st.size > limit) return { ok: false, kind: 'too-large', size: st.size };
    // The bytes go into one buffer, decoded from it at the end: for a file of at most
    // READ_BUFFER_BYTES the same buffer for every read (reading the 200 sources of a large
    // workspace allocated two buffers of each file's size, the read one and the joined one),
    // for a larger file one of its own with room for the small read that finds the end, grown
    // only for a file that is still growing.
    let buf = st.size + 1 + 1024 <= READ_BUFFER_BYTES ? (readBuffer ??= Buffer.allocUnsafe(READ_BUFFER_BYTES)) : Buffer.allocUnsafe(Math.min(st.size + 1 + 1024, limit + 1));
    let total = 0;
    // The first read asks for one byte more than the file's size; the next one, which almost
    // always finds the end, is small, and only a file that is still growing is read on in large chunks.
    for (let want = st.size + 1; ; want = total === st.size ? 1024 : 1 << 20) {
      want = Math.min(want, limit + 1 - total);
      if (total + want > buf.length) {
        const grown = Buffer.allocUnsafe(Math.min(limit + 1, Math.max(total + want, 2 * buf.length)));
        buf.copy(grown, 0, 0, total);
        buf = grown;
      }
      const n = readSync(fd, buf, total, want, null);
      if (n === 0) break;
      total += n;
      if (total > limit) return { ok: false, kind: 'too-large', size: total };
    }
    return { ok: true, text: buf.toString('utf8', 0, total) };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { ok: false, kind: code === 'EISDIR' ? 'directory' : 'error', code: code ?? (e as Error).message };
  } finally {
    closeSync(fd);
  }
}

/** What kind of file a non-regular one is, for messages. */
export function fileType(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/** Reads at most MAX_STATE_BYTES of a regular file, without following a symbolic link and without blocking on a FIFO. */
function readBounded(path: string): string {
  const r = readBoundedFile(path, MAX_STATE_BYTES, { noFollow: true });
  if (r.ok) return r.text;
  if (r.kind === 'missing') throw Object.assign(new Error(`${path} does not exist`), { code: 'ENOENT' });
  if (r.kind === 'too-large') throw new StateError('corrupt', `${path} is ${r.size} bytes, more than a state can be (${MAX_STATE_BYTES})`, corruptHint(path));
  if (r.kind === 'error') throw Object.assign(new Error(`${r.code}`), { code: r.code });
  throw new StateError('corrupt', `${path} is not a regular file`, corruptHint(path));
}

/**
 * Reads the state, or returns null when the deployment was never applied.
 * A file that does not parse, has an unknown major version or any part a
 * reader uses missing or mistyped is an error, not a missing state: silently
 * starting over would orphan running guests.
 */
export function readState(stateFile: string): DeploymentState | null {
  const path = stateFile;
  checkStateLocation(path);
  let text: string;
  try {
    text = readBounded(path);
  } catch (e) {
    if (e instanceof StateError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StateError('io', `cannot read ${path}: ${(e as Error).message}`, 'check the permissions of the .mcl directory');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new StateError('corrupt', `${path} is not valid JSON: ${(e as Error).message}`, corruptHint(path));
  }
  const s = value as Partial<DeploymentState>;
  if (typeof s !== 'object' || s === null || typeof s.lineage !== 'string' || typeof s.serial !== 'number' || typeof s.format_version !== 'string') {
    throw new StateError('corrupt', `${path} is not a deployment state (lineage, serial or format_version missing)`, corruptHint(path));
  }
  const major = s.format_version.split('.')[0];
  if (major !== STATE_FORMAT_VERSION.split('.')[0]) {
    throw new StateError('unsupported-version', `${path} has state format ${s.format_version}; this mclc reads ${STATE_FORMAT_VERSION}`, 'use the mclc version that wrote this state');
  }
  const { state, errors } = validateState(value);
  if (!state) {
    const first = errors.slice(0, 3).map((e) => `${e.path}: ${e.message}`).join('; ');
    throw new StateError('corrupt', `${path} is not a valid deployment state: ${first}${errors.length > 3 ? `; and ${errors.length - 3} more` : ''}`, corruptHint(path));
  }
  return state;
}

/** Writes `content` to `path` atomically and durably (temporary file, fsync, rename, fsync of the directory). */
export function writeFileAtomic(dir: string, name: string, content: string): void {
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${name}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    const buf = Buffer.from(content, 'utf8');
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, join(dir, name));
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // The temporary file is already gone; nothing to clean.
    }
    throw e;
  }
  fsyncDir(dir);
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes the state atomically. Callers hold the lock. */
export function writeState(stateFile: string, state: DeploymentState): void {
  writeFileAtomic(dirname(stateFile), basename(stateFile), JSON.stringify(state, null, 2) + '\n');
}

// ---------------------------------------------------------------------------
// Process identity, shared with the backends (they record guest pids the same way).

/** Start time of a process in clock ticks since boot, or null when it does not exist (or /proc is unavailable). */
export function processStartTime(pid: number): number | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may itself contain spaces
  // or parentheses, so fields are counted from the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); field 22 (starttime) is rest[19].
  const v = Number(rest[19]);
  return Number.isFinite(v) ? v : null;
}

let cachedBootId: string | null | undefined;
export function bootId(): string | null {
  if (cachedBootId === undefined) {
    try {
      cachedBootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      cachedBootId = null;
    }
  }
  return cachedBootId;
}

/** True when a process with this pid exists and (where known) started at `startTime`, so a reused pid is not mistaken for it. */
export function processAlive(pid: number, startTime: number | null): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM means the process exists but belongs to someone else.
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return true; // No /proc: trust the signal probe.
  }
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // A zombie (or a process that is being torn down) has exited; only its parent has not reaped it yet.
  // Orphans reparented to an init that does not reap stay zombies for good.
  if (rest[0] === 'Z' || rest[0] === 'X') return false;
  return startTime === null || Number(rest[19]) === startTime;
}

// ---------------------------------------------------------------------------
// Locking

export interface LockOptions {
  /** What the holder does, shown to anyone who waits (`apply`, `destroy`). */
  operation: string;
  /** How long to wait for a live holder, in ms; 0 fails at once. Default 0. */
  timeoutMs?: number;
  /** Poll interval while waiting, in ms. Default 100. */
  pollMs?: number;
  /** Called once when the lock is busy and we start waiting. */
  onWait?: (holder: LockHolder) => void;
}

export interface StateLock {
  readonly path: string;
  readonly holder: LockHolder;
  /** Removes the lock file if it is still ours. Safe to call twice. */
  release(): void;
}

export function describeHolder(h: LockHolder): string {
  return `pid ${h.pid} on ${h.host} (${h.operation} since ${h.acquired_at})`;
}

function readHolder(path: string): LockHolder | null | 'missing' {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
    return typeof v.pid === 'number' ? v : null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    return null;
  }
}

function holderIsLive(h: LockHolder): boolean {
  // A lock from another host (a shared file system) cannot be checked; it is treated as live.
  if (h.host !== hostname()) return true;
  if (h.boot_id !== null && bootId() !== null && h.boot_id !== bootId()) return false;
  return processAlive(h.pid, h.start_time);
}

function sameHolder(a: LockHolder | null | 'missing', b: LockHolder | null): boolean {
  if (a === 'missing') return false;
  if (a === null || b === null) return a === b;
  return a.pid === b.pid && a.start_time === b.start_time && a.acquired_at === b.acquired_at;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Takes the lock of a state file, waiting up to `timeoutMs` for a live holder and
 * taking over a stale one. Throws StateError('locked') naming the holder when
 * the wait times out.
 */
export async function acquireLock(stateFile: string, opts: LockOptions): Promise<StateLock> {
  const dir = dirname(stateFile);
  // The state holds the sensitive parameters of every instance: the directory is private to its user.
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  checkStateLocation(stateFile);
  const path = lockPath(stateFile);
  const me: LockHolder = {
    pid: process.pid,
    start_time: processStartTime(process.pid),
    boot_id: bootId(),
    host: hostname(),
    operation: opts.operation,
    acquired_at: new Date().toISOString(),
  };
  const deadline = Date.now() + (opts.timeoutMs ?? 0);
  let waited = false;
  for (;;) {
    if (tryLink(dir, path, me)) {
      removeStaleTemporaries(stateFile);
      let released = false;
      return {
        path,
        holder: me,
        release() {
          if (released) return;
          released = true;
          if (sameHolder(readHolder(path), me)) {
            try {
              unlinkSync(path);
            } catch {
              // Already removed (for example by a destroy of the whole .mcl directory).
            }
          }
        },
      };
    }
    const holder = readHolder(path);
    if (holder === 'missing') continue; // Released between our attempt and the read: try again at once.
    if (holder === null || !holderIsLive(holder)) {
      takeOverStale(dir, path, holder);
      continue;
    }
    if (Date.now() >= deadline) {
      throw new StateError(
        'locked',
        `the deployment state ${path} is locked by ${describeHolder(holder)}`,
        opts.timeoutMs
          ? `waited ${opts.timeoutMs} ms; wait for that process to finish or raise --lock-timeout`
          : 'wait for that process to finish, or pass --lock-timeout to wait for it',
      );
    }
    if (!waited) {
      waited = true;
      opts.onWait?.(holder);
    }
    await sleep(Math.min(opts.pollMs ?? 100, Math.max(1, deadline - Date.now())));
  }
}

function tryLink(dir: string, path: string, me: LockHolder): boolean {
  const tmp = join(dir, `.lock.${process.pid}.${randomUUID().slice(0, 8)}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, JSON.stringify(me) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new StateError('io', `cannot create the lock ${path}: ${(e as Error).message}`, 'check the permissions of the .mcl directory');
  } finally {
    unlinkSync(tmp);
  }
}

/**
 * Removes a stale lock. The lock is first renamed to a name only we use, so
 * of two processes that both judged it stale only one removes it; if what we
 * renamed turns out to be a fresh lock taken in between, it is linked back.
 */
function takeOverStale(dir: string, path: string, judged: LockHolder | null): void {
  const aside = join(dir, `.lock.stale.${process.pid}.${randomUUID().slice(0, 8)}`);
  try {
    renameSync(path, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  const moved = readHolder(aside);
  if (!sameHolder(moved, judged) && moved !== 'missing' && moved !== null && holderIsLive(moved)) {
    try {
      linkSync(aside, path);
    } catch {
      // Someone else took the lock meanwhile; the holder we displaced will see its lock gone on release.
    }
  }
  try {
    unlinkSync(aside);
  } catch {
    // Nothing left to clean.
  }
}

/**
 * Removes the temporary files a writer killed mid-write left beside a state
 * file: `.<state name>.<pid>.<random>.tmp` of writeFileAtomic (a copy of the
 * state, sensitive parameters included) and the lock's own temporaries. The
 * caller holds the lock, and every writer of the state holds it, so a
 * temporary of this state is always stale; a lock temporary is stale once
 * its process is gone (another process may be trying the lock right now).
 * Only names of exactly these forms are touched, and `unlink` removes a
 * symbolic link itself, never its target.
 */
export function removeStaleTemporaries(stateFile: string): string[] {
  const dir = dirname(stateFile);
  const mine = `.${basename(stateFile)}.`;
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const ours = name.startsWith(mine) && /^\.\d+\.[0-9a-f]{8}\.tmp$/.test(name.slice(mine.length - 1));
    const lock = /^\.lock\.(?:stale\.)?(\d+)\.[0-9a-f]{8}(?:\.tmp)?$/.exec(name);
    if (!ours && !(lock && !processAlive(Number(lock[1]), null))) continue;
    try {
      unlinkSync(join(dir, name));
      removed.push(name);
    } catch {
      // Removed by someone else meanwhile.
    }
  }
  return removed;
}
