// The checkpoint directory: its manifest, writing it, and checking a whole
// checkpoint before a restore changes anything (spec/checkpoint.md).
//
// A checkpoint is a directory with `checkpoint.json` (the manifest), the plan
// (`plan.json`), the broker's state (`broker.json`) and per clone its device
// state (`<instance>.<clone>.dev`) and the pages it wrote (`.ram`). The
// manifest names every file with its size and sha256, and the templates by
// key and build, so a checkpoint is judged by its contents alone: it can be
// copied to another place (or, later, another host) as a directory.

import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync, writeFileSync, renameSync, fsyncSync } from 'node:fs';
import { join } from 'node:path';
import { digestMismatches, validatePlan, type Plan } from '@mcl/plan';
import type { BrokerCheckpoint } from '@mcl/broker';
import { BackendFailure } from './errors';
import type { CheckpointResult } from './events';
import type { CheckpointFile, CloneCheckpointFiles } from './guest-runtime';
import { cloneDirBase } from './supervisor';

export const CHECKPOINT_FORMAT = 'mcl-checkpoint';
export const CHECKPOINT_FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'checkpoint.json';
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Plans and broker states are JSON of bounded size; clone files are bounded by their guest's RAM. */
const MAX_JSON_FILE_BYTES = 64 * 1024 * 1024;
/** A file name inside a checkpoint: no directory part, nothing hidden. */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._~-]{0,200}$/;

export interface CheckpointManifest {
  format: typeof CHECKPOINT_FORMAT;
  format_version: number;
  created_at: string;
  /** `deployment`: every instance and the whole broker; `instances`: the named ones. */
  scope: CheckpointResult['scope'];
  system: string;
  plan_digest: string;
  plan: CheckpointFile;
  broker: CheckpointFile;
  /** Where it was taken; for people and, later, migration. Nothing in it is a path a restore uses. */
  host: { accelerator: string | null; qemu: string | null };
  templates: { id: string; key: string; build: string; memory_bytes: number }[];
  instances: { id: string; template: string; clones: ({ index: number } & CloneCheckpointFiles)[] }[];
  /** The time every clone was stopped, ms. */
  pause_ms: number;
}

export interface RestoreSummary {
  dir: string;
  plan_digest: string;
  instances: string[];
  clones: number;
  elapsed_ms: number;
  /** From the first restored clone starting until every one answered: the time to ready. */
  restore_ms: number;
  warnings: string[];
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Writes a file of the checkpoint with mode 0600 (temp file, fsync, rename) and returns its entry. */
export function writeCheckpointFile(dir: string, name: string, data: string | Buffer): CheckpointFile {
  const tmp = join(dir, `.${name}.tmp`);
  writeFileSync(tmp, data, { mode: 0o600, flag: 'wx' });
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, name));
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  return { file: name, sha256: sha256Hex(buf), bytes: buf.length };
}

/**
 * Reads a file of a checkpoint: a regular file (a link is refused), exactly
 * as large as the manifest says, whose sha256 is the manifest's.
 */
export function readCheckpointFile(dir: string, entry: CheckpointFile, maxBytes: number): Buffer {
  const path = join(dir, entry.file);
  const bad = (why: string) => new BackendFailure('failure', `the checkpoint ${dir} is incomplete or damaged: ${entry.file} ${why}; nothing was changed`, 'take a new checkpoint, or copy the whole directory again');
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    throw bad((e as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing' : `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw bad('is not a regular file');
    if (st.size !== entry.bytes) throw bad(`has ${st.size} bytes, the manifest says ${entry.bytes}`);
    if (st.size > maxBytes) throw bad(`is larger than ${maxBytes} bytes`);
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    if (off !== buf.length) throw bad('ended early');
    if (sha256Hex(buf) !== entry.sha256) throw bad('does not match its sha256 in the manifest');
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** What a verified checkpoint holds, read into memory except the clones' files (checked, and read again by the restore). */
export interface VerifiedCheckpoint {
  dir: string;
  manifest: CheckpointManifest;
  plan: Plan;
  broker: BrokerCheckpoint;
  /**
   * With `keepFiles`, the clones' files as they were verified, by file name:
   * a restore uses these bytes, never the directory again, so a file changed
   * after the check cannot be restored.
   */
  files: Map<string, Buffer>;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isHex64 = (v: unknown) => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);

/** The problems of a file entry of the manifest (its shape, not its contents). */
function entryProblem(v: unknown, what: string): string | null {
  if (!isObj(v)) return `${what} is not an object`;
  if (typeof v.file !== 'string' || !FILE_NAME.test(v.file) || v.file === MANIFEST_FILE) return `${what}.file is not a plain file name`;
  if (!isHex64(v.sha256)) return `${what}.sha256 is not a sha256`;
  if (!Number.isSafeInteger(v.bytes) || (v.bytes as number) < 0) return `${what}.bytes is not a size`;
  return null;
}

/** Checks the manifest's shape; returns the first problem, or null. */
export function manifestProblem(m: unknown): string | null {
  if (!isObj(m)) return 'the manifest is not a JSON object';
  if (m.format !== CHECKPOINT_FORMAT) return `format is ${JSON.stringify(m.format)}, not ${CHECKPOINT_FORMAT}`;
  if (m.format_version !== CHECKPOINT_FORMAT_VERSION) return `format_version ${JSON.stringify(m.format_version)} is not supported (this mclc reads ${CHECKPOINT_FORMAT_VERSION})`;
  if (m.scope !== 'deployment' && m.scope !== 'instances') return 'scope is neither deployment nor instances';
  if (!isHex64(m.plan_digest)) return 'plan_digest is not a sha256';
  for (const k of ['plan', 'broker'] as const) {
    const p = entryProblem(m[k], k);
    if (p) return p;
  }
  if (!Array.isArray(m.templates) || !m.templates.every((t) => isObj(t) && typeof t.id === 'string' && typeof t.key === 'string' && isHex64(t.build) && Number.isSafeInteger(t.memory_bytes))) {
    return 'templates is not a list of {id, key, build, memory_bytes}';
  }
  if (!Array.isArray(m.instances)) return 'instances is not a list';
  const names = new Set<string>();
  for (const [i, inst] of m.instances.entries()) {
    if (!isObj(inst) || typeof inst.id !== 'string' || typeof inst.template !== 'string' || !Array.isArray(inst.clones)) return `instances[${i}] is not {id, template, clones}`;
    for (const [j, c] of inst.clones.entries()) {
      if (!isObj(c) || !Number.isSafeInteger(c.index) || (c.index as number) < 0) return `instances[${i}].clones[${j}].index is not a clone index`;
      for (const k of ['device_state', 'ram'] as const) {
        const p = entryProblem(c[k], `instances[${i}].clones[${j}].${k}`);
        if (p) return p;
        const f = (c[k] as { file: string }).file;
        if (names.has(f)) return `${f} is named twice`;
        names.add(f);
      }
    }
  }
  return null;
}

/**
 * Reads and checks a whole checkpoint: the manifest, every file's size and
 * sha256, the plan (a valid plan whose digests match its contents and the
 * manifest's plan digest) and the broker state. Throws a BackendFailure
 * saying what is wrong; nothing is changed by it.
 */
export function verifyCheckpoint(dir: string, opts: { keepFiles?: boolean } = {}): VerifiedCheckpoint {
  const fail = (why: string, hint = 'take a new checkpoint, or copy the whole directory again') =>
    new BackendFailure('failure', `${dir} is not a usable checkpoint: ${why}; nothing was changed`, hint);
  const manifestBuf = (() => {
    let fd: number;
    try {
      fd = openSync(join(dir, MANIFEST_FILE), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (e) {
      throw fail(`${MANIFEST_FILE} ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing (an interrupted checkpoint has none)' : 'cannot be read'}`);
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile() || st.size > MAX_MANIFEST_BYTES) throw fail(`${MANIFEST_FILE} is not a regular file of at most ${MAX_MANIFEST_BYTES} bytes`);
      const buf = Buffer.alloc(st.size);
      readSync(fd, buf, 0, buf.length, 0);
      return buf;
    } finally {
      closeSync(fd);
    }
  })();
  let manifest: unknown;
  try {
    manifest = JSON.parse(manifestBuf.toString('utf8'));
  } catch {
    throw fail(`${MANIFEST_FILE} is not JSON`);
  }
  const problem = manifestProblem(manifest);
  if (problem) throw fail(`${MANIFEST_FILE}: ${problem}`);
  const m = manifest as CheckpointManifest;
  const planBuf = readCheckpointFile(dir, m.plan, MAX_JSON_FILE_BYTES);
  const { plan, errors } = validatePlan(planBuf.toString('utf8'));
  if (!plan) throw fail(`${m.plan.file} is not a valid plan: ${errors.slice(0, 2).map((e) => `${e.path}: ${e.message}`).join('; ')}`);
  const wrong = digestMismatches(plan, (t) => {
    const h = createHash('sha256');
    for (const x of typeof t === 'string' ? [t] : t) h.update(x);
    return h.digest('hex');
  });
  if (wrong.length) throw fail(`${m.plan.file}: ${wrong[0]}`);
  if (plan.digests.plan !== m.plan_digest) throw fail(`the plan's digest ${plan.digests.plan.slice(0, 12)} is not the manifest's ${m.plan_digest.slice(0, 12)}`);
  let broker: BrokerCheckpoint;
  try {
    broker = JSON.parse(readCheckpointFile(dir, m.broker, MAX_JSON_FILE_BYTES).toString('utf8')) as BrokerCheckpoint;
  } catch (e) {
    if (e instanceof BackendFailure) throw e;
    throw fail(`${m.broker.file} is not JSON`);
  }
  if (!isObj(broker) || broker.format !== 1 || !Array.isArray(broker.ports) || !isObj(broker.counters)) throw fail(`${m.broker.file} is not a broker state of format 1`);
  const byId = new Map(plan.instances.map((i) => [i.id, i]));
  const files = new Map<string, Buffer>();
  for (const inst of m.instances) {
    const p = byId.get(inst.id);
    if (!p) throw fail(`instance ${inst.id} is not in the checkpoint's plan`);
    if (p.template !== inst.template) throw fail(`instance ${inst.id} uses template ${p.template} in the plan, not ${inst.template}`);
    const t = m.templates.find((x) => x.id === inst.template);
    if (!t) throw fail(`template ${inst.template} of ${inst.id} is not in the manifest`);
    for (const c of inst.clones) {
      // Read whole to check the digest; the largest is a clone's device state or its pages, bounded by its RAM.
      const dev = readCheckpointFile(dir, c.device_state, t.memory_bytes);
      const ram = readCheckpointFile(dir, c.ram, t.memory_bytes + 1024 * 1024);
      if (opts.keepFiles) files.set(c.device_state.file, dev).set(c.ram.file, ram);
    }
  }
  return { dir, manifest: m, plan, broker, files };
}

/** The manifest, written last: a directory without it is an incomplete checkpoint. */
export function writeManifest(dir: string, m: CheckpointManifest): void {
  writeCheckpointFile(dir, MANIFEST_FILE, JSON.stringify(m, null, 2) + '\n');
}

/** The file name stem of a clone in a checkpoint: its instance's clone directory name and index. */
export function cloneFileStem(instance: string, index: number): string {
  return `${cloneDirBase(instance).replace(/[^A-Za-z0-9_.~-]/g, '_')}.${index}`;
}

/** How long the cut waits for bytes already on their way to settle (see takeCut). */
const SETTLE_MS = 25;

export interface CutClone {
  instance: string;
  index: number;
  checkpoint: import('./guest-runtime').CloneCheckpointing;
}

export interface BrokerCut {
  hold(): void;
  checkpointState(): BrokerCheckpoint;
  resume(): void;
}

/**
 * Takes one consistent cut of a set of clones and the broker: every clone
 * stopped, then the broker given a moment to relay what the guests had
 * written before they stopped (QEMU hands it on to the receiving guests'
 * buffers, which are part of their memory), then held (nothing read, no
 * timeout) while each clone's device state and pages are read and the
 * broker's state is taken. Everything continues afterwards, also on
 * failure. Resolves with the steps that finish each clone's files and the
 * time the clones were stopped.
 */
export async function takeCut(
  clones: CutClone[],
  broker: BrokerCut,
  dir: string,
): Promise<{ finish: (() => Promise<CloneCheckpointFiles>)[]; broker: BrokerCheckpoint; pauseMs: number }> {
  const t0 = performance.now();
  let held = false;
  const paused: CutClone[] = [];
  let finish: (() => Promise<CloneCheckpointFiles>)[];
  let state: BrokerCheckpoint;
  try {
    await Promise.all(
      clones.map(async (c) => {
        await c.checkpoint.pause();
        paused.push(c);
      }),
    );
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    broker.hold();
    held = true;
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    finish = await Promise.all(clones.map((c) => c.checkpoint.capture(dir, cloneFileStem(c.instance, c.index))));
    state = broker.checkpointState();
  } finally {
    if (held) broker.resume();
    await Promise.all(paused.map((c) => c.checkpoint.cont().catch(() => undefined)));
  }
  return { finish, broker: state, pauseMs: Math.round(performance.now() - t0) };
}
