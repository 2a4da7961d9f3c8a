// The run directory of a deployment, and which processes belong to it.
//
// Nothing the backend touches is taken from the content of a file it reads:
// the state file and the files of the run directory may come from a cloned
// repository, an unpacked archive or a copied workspace. So:
//
// * The run directory is derived from the state file's location only:
//   `<state dir>/run`, or, when that path is too long for the unix sockets
//   inside, `<base>/<hash of the state path>` under a private base directory
//   (`$XDG_RUNTIME_DIR/mcl`, else `<tmp>/mcl-<uid>`).
// * A run directory is this deployment's only when it carries the owner
//   record `deployment.json` written when it was created, and that record
//   names the directory's own device and inode. A copy (`cp -a ws ws2`), an
//   archive or a repository can carry the file but not the inode, so a
//   copied run directory is never mistaken for the original's.
// * The record holds a random token. Every process of the deployment (the
//   supervisor and everything it starts: zygotes, QEMU, processes started
//   ahead) runs with `MCL_DEPLOYMENT=<token>` in its environment, and no
//   signal is sent before /proc/<pid>/environ shows it. A pid from a file is
//   only ever a candidate.
// * Base directories shared by all of a user's deployments are created 0700
//   and refused when lstat shows a symbolic link, another owner, or group or
//   world access: another local user who made `/tmp/mcl-<uid>` first must not
//   receive the plans sent to a socket there.

import { randomBytes, createHash } from 'node:crypto';
import { closeSync, constants, existsSync, fstatSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { processAlive, readBoundedFile, writeFileAtomic } from '@mcl/plan/state-store';

/** The environment variable naming a process's deployment by its token. */
export const DEPLOYMENT_ENV = 'MCL_DEPLOYMENT';
/** The owner record in a run directory. */
export const OWNER_FILE = 'deployment.json';
/** A run directory path longer than this leaves too little of the 108 bytes of a socket path for `clones/<instance>.<n>/p<slot>.sock`. */
const MAX_LOCAL_RUN_DIR = 48;

interface OwnerRecord {
  token: string;
  /** Device and inode of the run directory, as decimal strings (inode numbers can exceed 2^53). */
  dev: string;
  ino: string;
  created_at: string;
}

/** A run directory that is this deployment's own. */
export interface RunDir {
  dir: string;
  token: string;
  /** The shared base directory it lies in, or null for `<state dir>/run`. */
  base: string | null;
}

/** Where the run directory of a state file is, or is looked for. */
export type RunDirLookup =
  | ({ kind: 'ours' } & RunDir)
  /** Nothing is there yet. */
  | { kind: 'none'; dir: string }
  /** Something is there that this deployment did not create; `why` says what. */
  | { kind: 'foreign'; dir: string; why: string };

function uid(): number {
  return process.geteuid?.() ?? 0;
}

/**
 * Why a directory cannot hold a user's private files, or null when it can:
 * it must be a real directory (not a symbolic link), owned by this user,
 * with no access for group or others.
 */
export function privateDirProblem(path: string): string | null {
  let st;
  try {
    st = lstatSync(path);
  } catch (e) {
    return `${path} cannot be inspected: ${(e as Error).message}`;
  }
  if (st.isSymbolicLink()) return `${path} is a symbolic link`;
  if (!st.isDirectory()) return `${path} is not a directory`;
  if (st.uid !== uid()) return `${path} belongs to uid ${st.uid}, not to you (uid ${uid()})`;
  if ((st.mode & 0o077) !== 0) return `${path} is accessible to group or others (mode ${(st.mode & 0o777).toString(8).padStart(3, '0')})`;
  return null;
}

/**
 * The shared base directories for run directories, in order of preference,
 * with the reason each one is refused (or null). The temporary directory is
 * Node's (`$TMPDIR`, else /tmp).
 */
export function runBases(env: NodeJS.ProcessEnv = process.env): { base: string; problem: string | null }[] {
  const out: { base: string; problem: string | null }[] = [];
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && xdg.startsWith('/')) {
    // XDG_RUNTIME_DIR itself is made by the login manager; only our subdirectory is ours to create.
    const problem = privateDirProblem(xdg);
    out.push({ base: join(xdg, 'mcl'), problem: problem && `XDG_RUNTIME_DIR: ${problem}` });
  }
  out.push({ base: join(tmpdir(), `mcl-${uid()}`), problem: null });
  return out;
}

/** The name of a state file's run directory under a shared base: a hash of the state file's real location. */
function hashedName(stateFile: string): string {
  let where = stateFile;
  try {
    // The same state reached through another path (a symbolic link above the workspace) is the same deployment.
    where = join(realpathSync(dirname(stateFile)), basename(stateFile));
  } catch {
    // The state directory does not exist yet; the path as given is the location.
  }
  return createHash('sha256').update(where).digest('hex').slice(0, 16);
}

/** A place a run directory can be: the local one, or one under a shared base (`base`, with the reason it is refused or null). */
interface Place {
  dir: string;
  base: string | null;
  problem: string | null;
}

function places(stateFile: string, env: NodeJS.ProcessEnv): Place[] {
  const local = join(dirname(stateFile), 'run');
  if (local.length <= MAX_LOCAL_RUN_DIR) return [{ dir: local, base: null, problem: null }];
  const name = hashedName(stateFile);
  return runBases(env).map((b) => ({ dir: join(b.base, name), base: b.base, problem: b.problem }));
}

/**
 * The places a state file's run directory can be, most preferred first: the
 * local one when it is short enough, else one per shared base.
 */
export function runDirCandidates(stateFile: string, env: NodeJS.ProcessEnv = process.env): string[] {
  return places(stateFile, env).map((p) => p.dir);
}

/** An owner record is about 150 bytes; a larger file (or a link, a FIFO) is not one and is not read. */
const MAX_OWNER_BYTES = 4096;

function readOwner(dir: string): OwnerRecord | null {
  const v = readSmallJson(join(dir, OWNER_FILE), MAX_OWNER_BYTES) as Partial<OwnerRecord> | null;
  if (!v || typeof v !== 'object' || typeof v.token !== 'string' || !/^[0-9a-f]{32}$/.test(v.token) || typeof v.dev !== 'string' || typeof v.ino !== 'string') return null;
  return v as OwnerRecord;
}

/**
 * A JSON file of the run directory, or null when it is missing, not a regular
 * file (a link is not followed), larger than `maxBytes` or not JSON: these
 * files are the deployment's own, but whoever can write the directory's place
 * could have planted them.
 */
export function readSmallJson(path: string, maxBytes: number): unknown {
  const r = readBoundedFile(path, maxBytes, { noFollow: true });
  if (!r.ok) return null;
  try {
    return JSON.parse(r.text) as unknown;
  } catch {
    return null;
  }
}

/**
 * Whether `dir` is a run directory this deployment created, and its token.
 * `base` is the shared base directory it lies in (null for the local one,
 * whose parent, the state directory, the state store checks): it must be
 * private too, or another user could have put the directory there.
 */
export function inspectRunDir(dir: string, base: string | null = null): RunDirLookup {
  let st;
  try {
    st = lstatSync(dir, { bigint: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      const p = base !== null && existsSync(base) ? privateDirProblem(base) : null;
      return p ? { kind: 'foreign', dir, why: p } : { kind: 'none', dir };
    }
    return { kind: 'foreign', dir, why: `${dir} cannot be inspected: ${(e as Error).message}` };
  }
  const problem = (base !== null ? privateDirProblem(base) : null) ?? privateDirProblem(dir);
  if (problem) return { kind: 'foreign', dir, why: problem };
  const owner = readOwner(dir);
  if (!owner) return { kind: 'foreign', dir, why: `${dir} has no valid ${OWNER_FILE}: it was not created by mclc for this state` };
  if (owner.dev !== String(st.dev) || owner.ino !== String(st.ino)) {
    return { kind: 'foreign', dir, why: `${dir} was created as another directory (it is a copy, e.g. of another workspace's)` };
  }
  return { kind: 'ours', dir, token: owner.token, base };
}

/**
 * Finds the run directory of a state file: the first place that holds this
 * deployment's own; otherwise the first free place (`none`), or, when every
 * place is taken by something else, the first of those (`foreign`).
 */
export function findRunDir(stateFile: string, env: NodeJS.ProcessEnv = process.env): RunDirLookup {
  const looked = places(stateFile, env).map((p) => (p.problem ? ({ kind: 'foreign', dir: p.dir, why: p.problem } as const) : inspectRunDir(p.dir, p.base)));
  return looked.find((l) => l.kind === 'ours') ?? looked.find((l) => l.kind === 'none') ?? looked[0];
}

/**
 * The run directory of a state file, created (with its base, 0700) when
 * there is none. Throws with the reason when the place is taken by
 * something this deployment did not create, or no base is private.
 */
export function ensureRunDir(stateFile: string, env: NodeJS.ProcessEnv = process.env): RunDir {
  const problems: string[] = [];
  for (const p of places(stateFile, env)) {
    if (p.problem) {
      problems.push(p.problem);
      continue;
    }
    if (p.base !== null) {
      try {
        mkdirSync(p.base, { mode: 0o700 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
          problems.push(`${p.base} cannot be created: ${(e as Error).message}`);
          continue;
        }
      }
    }
    const there = inspectRunDir(p.dir, p.base);
    if (there.kind === 'ours') return there;
    if (there.kind === 'foreign') {
      problems.push(there.why);
      continue;
    }
    try {
      mkdirSync(p.dir, { mode: 0o700 });
    } catch (e) {
      problems.push(`${p.dir} cannot be created: ${(e as Error).message}`);
      continue;
    }
    const st = lstatSync(p.dir, { bigint: true });
    const owner: OwnerRecord = { token: randomBytes(16).toString('hex'), dev: String(st.dev), ino: String(st.ino), created_at: new Date().toISOString() };
    writeFileAtomic(p.dir, OWNER_FILE, JSON.stringify(owner) + '\n');
    return { dir: p.dir, token: owner.token, base: p.base };
  }
  throw new RunDirError(`no usable runtime directory for ${stateFile}: ${problems.join('; ')}`, problems);
}

export class RunDirError extends Error {
  constructor(
    message: string,
    readonly problems: string[],
  ) {
    super(message);
    this.name = 'RunDirError';
  }
}

/**
 * Removes a run directory, only when it is this deployment's own (checked
 * again here). Symbolic links inside are removed, never followed.
 */
export function removeRunDir(rd: RunDir): boolean {
  const now = inspectRunDir(rd.dir, rd.base);
  if (now.kind !== 'ours' || now.token !== rd.token) return false;
  rmSync(rd.dir, { recursive: true, force: true });
  return true;
}

/** The environment entries of a process, or null when they cannot be read (gone, or another user's). */
function environOf(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
  } catch {
    return null;
  }
}

/**
 * True when `pid` is a live process of the deployment with this token: it
 * runs (with the start time, when one is given) and its environment carries
 * `MCL_DEPLOYMENT=<token>`. Checked before every signal the backend sends to
 * a process it did not just start itself.
 */
export function belongsToDeployment(pid: number, startTime: number | null, token: string): boolean {
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) return false;
  if (!/^[0-9a-f]{32}$/.test(token) || !processAlive(pid, startTime)) return false;
  return environOf(pid)?.includes(`${DEPLOYMENT_ENV}=${token}`) ?? false;
}

/** Sends SIGKILL to `pid` only when it belongs to the deployment; true when it was sent. */
export function killIfOurs(pid: number, startTime: number | null, token: string): boolean {
  if (!belongsToDeployment(pid, startTime, token)) return false;
  try {
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}
