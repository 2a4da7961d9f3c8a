// Checkpoints of single clones: device state plus only the guest memory that
// differs from the template.
//
// A clone's RAM is a private (copy-on-write) mapping of its template's RAM
// file, so the pages it wrote are exactly the anonymous pages of that mapping:
// /proc/<pid>/pagemap shows them (present and not a file page, or swapped).
// Those pages are read from /proc/<pid>/mem while the clone is stopped,
// compared with the template's page (a page written back to what it was is
// left out) and stored deflated. The device state (CPU, virtio, timers, ...)
// comes from QEMU's `xen-save-devices-state`, which writes every device's
// section but not RAM; QEMU 7.2's migration would send the whole RAM of a
// private mapping (x-ignore-shared skips only shared ones), 128 MiB for an
// idle clone instead of about 1 MiB.
//
// A restore starts a clone of the same template with the checkpoint's device
// state as its incoming stream (`deviceStatePath`, clone.ts), writes the saved
// pages into its RAM through /proc/<pid>/mem before the state is loaded (the
// virtio queues' indices live in guest RAM and are checked by the load), and
// leaves it paused: the caller continues every clone of a deployment at once.
//
// Reading and writing another process's memory needs ptrace access to it: QEMU
// runs as the same user and is a descendant of the caller (a supervisor's
// clones are), which the usual Yama setting (ptrace_scope 1) allows.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import { deflateRaw, inflateRaw } from 'node:zlib';
import { qemuPaths, readyClone, startQemu } from './clone';
import type { QmpClient } from './qmp';
import type { Clone, CloneOptions, Template } from './types';

const deflate = promisify(deflateRaw);
const inflate = promisify(inflateRaw);

export const PAGE_SIZE = 4096;
/** First bytes of a RAM file: the format and its version. */
const RAM_MAGIC = Buffer.from('MCLRAM01');
/** QEMU_VM_VMDESCRIPTION: appended so that QEMU's loader finds the description it looks for after the sections. */
const VMDESC_SECTION = 0x06;

export class CheckpointError extends Error {
  readonly kind = 'failure' as const;
  constructor(message: string, readonly hint?: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

/** Where a process maps a template's RAM file, from /proc/<pid>/maps. */
export async function guestRamMapping(pid: number, memPath: string): Promise<{ start: number; bytes: number }> {
  const maps = await readFile(`/proc/${pid}/maps`, 'utf8');
  for (const line of maps.split('\n')) {
    const path = line.replace(/^(\S+\s+){5}/, '');
    if (path !== memPath && path !== `${memPath} (deleted)`) continue;
    const [lo, hi] = line.slice(0, line.indexOf(' ')).split('-').map((x) => Number.parseInt(x, 16));
    return { start: lo, bytes: hi - lo };
  }
  throw new CheckpointError(`QEMU process ${pid} does not map the template RAM file ${memPath}`, 'the clone is not a clone of this template');
}

/**
 * Page indices of a mapping that the process holds privately (copied on
 * write, or swapped out): bit 63 present and bit 61 (file page) clear, or bit
 * 62 (swapped), per page in /proc/<pid>/pagemap.
 */
export function privatePages(pagemap: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i < pagemap.length / 8; i++) {
    const hi = pagemap.readUInt32LE(i * 8 + 4);
    const present = (hi & 0x80000000) !== 0;
    const swapped = (hi & 0x40000000) !== 0;
    const file = (hi & 0x20000000) !== 0;
    if (swapped || (present && !file)) out.push(i);
  }
  return out;
}

async function readPagemap(pid: number, start: number, pages: number): Promise<Buffer> {
  const f = await open(`/proc/${pid}/pagemap`, 'r');
  try {
    const buf = Buffer.alloc(pages * 8);
    const { bytesRead } = await f.read(buf, 0, buf.length, (start / PAGE_SIZE) * 8);
    if (bytesRead !== buf.length) throw new CheckpointError(`short read of /proc/${pid}/pagemap`);
    return buf;
  } finally {
    await f.close();
  }
}

/** The guest pages a stopped clone holds privately, read from its memory: what a checkpoint keeps of its RAM. */
export interface CapturedRam {
  totalPages: number;
  pages: number[];
  data: Buffer;
}

/**
 * Reads the pages a clone wrote. The clone must be stopped (QMP `stop`) and
 * stay so until this resolves, so that the pages are one cut with its device
 * state. Runs in tens of milliseconds for an idle clone; comparing and
 * compressing (writeRamFile) can happen after the clone continues.
 */
export async function captureRam(pid: number, template: Template): Promise<CapturedRam> {
  const map = await guestRamMapping(pid, template.memPath);
  const totalPages = map.bytes / PAGE_SIZE;
  const pages = privatePages(await readPagemap(pid, map.start, totalPages));
  const data = Buffer.alloc(pages.length * PAGE_SIZE);
  const mem = await open(`/proc/${pid}/mem`, 'r').catch((e: Error) => {
    throw new CheckpointError(`cannot read the memory of QEMU process ${pid}: ${e.message}`, 'the checkpoint must be taken by the process that started the clone (the supervisor)');
  });
  try {
    // Runs of adjacent pages are read in one call.
    for (let i = 0; i < pages.length; ) {
      let j = i + 1;
      while (j < pages.length && pages[j] === pages[j - 1] + 1) j++;
      const len = (j - i) * PAGE_SIZE;
      const { bytesRead } = await mem.read(data, i * PAGE_SIZE, len, map.start + pages[i] * PAGE_SIZE);
      if (bytesRead !== len) throw new CheckpointError(`short read of the guest memory of QEMU process ${pid}`);
      i = j;
    }
  } finally {
    await mem.close();
  }
  return { totalPages, pages, data };
}

/**
 * Writes the RAM file of a checkpoint: the captured pages that differ from
 * the template's. Format (spec/checkpoint.md): `MCLRAM01`, then a raw
 * deflate stream of: page size (u32 BE), pages in the guest (u32 BE), stored
 * pages n (u32 BE), n page indices (u32 BE, ascending), n pages.
 */
export async function writeRamFile(file: string, ram: CapturedRam, template: Template): Promise<{ pages: number; bytes: number; sha256: string }> {
  const tpl = await readTemplatePages(template, ram.pages);
  const keep: number[] = [];
  for (let k = 0; k < ram.pages.length; k++) {
    if (!tpl.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE).equals(ram.data.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE))) keep.push(k);
  }
  const out = await encodeRamFile(
    ram.totalPages,
    keep.map((k) => ram.pages[k]),
    (i) => ram.data.subarray(keep[i] * PAGE_SIZE, (keep[i] + 1) * PAGE_SIZE),
  );
  await writeFileAtomic(file, out);
  return { pages: keep.length, bytes: out.length, sha256: sha256(out) };
}

/**
 * The bytes of a RAM file (format above) holding pages `pages` (ascending
 * guest page indices) of a guest of `totalPages`, page i's contents being
 * `page(i)`.
 */
export async function encodeRamFile(totalPages: number, pages: readonly number[], page: (i: number) => Buffer): Promise<Buffer> {
  const head = Buffer.alloc(12 + pages.length * 4);
  head.writeUInt32BE(PAGE_SIZE, 0);
  head.writeUInt32BE(totalPages, 4);
  head.writeUInt32BE(pages.length, 8);
  pages.forEach((p, i) => head.writeUInt32BE(p, 12 + i * 4));
  const body = Buffer.concat([head, ...pages.map((_, i) => page(i))]);
  return Buffer.concat([RAM_MAGIC, await deflate(body, { level: 1 })]);
}

/** The template's contents of pages `pages` (ascending guest page indices), page k at k * PAGE_SIZE; runs of adjacent pages are read in one call. */
export async function readTemplatePages(template: Template, pages: readonly number[]): Promise<Buffer> {
  const out = Buffer.alloc(pages.length * PAGE_SIZE);
  const tpl = await open(template.memPath, 'r');
  try {
    for (let i = 0; i < pages.length; ) {
      let j = i + 1;
      while (j < pages.length && pages[j] === pages[j - 1] + 1) j++;
      const len = (j - i) * PAGE_SIZE;
      const { bytesRead } = await tpl.read(out, i * PAGE_SIZE, len, pages[i] * PAGE_SIZE);
      if (bytesRead !== len) throw new CheckpointError(`short read of the template RAM file ${template.memPath}`);
      i = j;
    }
  } finally {
    await tpl.close();
  }
  return out;
}

/** Parses the contents of a RAM file (already checked against its digest); throws CheckpointError on anything malformed. */
export async function parseRamFile(raw: Buffer, file: string, maxPages: number): Promise<{ totalPages: number; pages: number[]; data: Buffer }> {
  if (!raw.subarray(0, RAM_MAGIC.length).equals(RAM_MAGIC)) throw new CheckpointError(`${file} is not a checkpoint RAM file (format ${RAM_MAGIC.toString()})`);
  let body: Buffer;
  try {
    // The inflated size is bounded by the guest's RAM plus the index.
    body = await inflate(raw.subarray(RAM_MAGIC.length), { maxOutputLength: 12 + maxPages * (PAGE_SIZE + 4) });
  } catch (e) {
    throw new CheckpointError(`${file} is damaged: ${(e as Error).message}`);
  }
  const bad = (why: string) => new CheckpointError(`${file} is damaged: ${why}`);
  if (body.length < 12) throw bad('too short');
  if (body.readUInt32BE(0) !== PAGE_SIZE) throw bad(`page size ${body.readUInt32BE(0)}`);
  const totalPages = body.readUInt32BE(4);
  const n = body.readUInt32BE(8);
  if (totalPages !== maxPages) throw bad(`it is for a guest of ${totalPages} pages, the template has ${maxPages}`);
  if (body.length !== 12 + n * (4 + PAGE_SIZE)) throw bad('its length does not match its page count');
  const pages: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = body.readUInt32BE(12 + i * 4);
    if (p >= totalPages || (i > 0 && p <= pages[i - 1])) throw bad(`page index ${p} out of order or range`);
    pages.push(p);
  }
  return { totalPages, pages, data: body.subarray(12 + n * 4) };
}

/**
 * Saves the device state of a stopped clone into `file` (QEMU writes it), with
 * a description section appended so QEMU's loader does not complain of its
 * absence. The file must not exist: QEMU creates it.
 */
export async function saveDeviceState(qmp: QmpClient, file: string): Promise<void> {
  await unlink(file).catch(() => undefined);
  await qmp.execute('xen-save-devices-state', { filename: file, live: false }, 30_000);
  const desc = Buffer.from('{}');
  const trailer = Buffer.alloc(5);
  trailer[0] = VMDESC_SECTION;
  trailer.writeUInt32BE(desc.length, 1);
  const f = await open(file, 'a');
  try {
    // QEMU creates the file 0660 (less the umask); a guest's device state is its owner's alone.
    await f.chmod(0o600);
    await f.write(Buffer.concat([trailer, desc]));
  } finally {
    await f.close();
  }
}

/**
 * Starts a clone of `template` from a checkpoint: device state `devFile`,
 * the pages of `ram` (readRamFile) written over the template's. Resolves
 * with the clone paused (resume() continues it and does the control
 * handshake).
 */
export async function restoreClone(
  template: Template,
  options: CloneOptions,
  devFile: string,
  ram: { pages: number[]; data: Buffer },
): Promise<Clone> {
  const startedAt = Date.now();
  const readyTimeoutMs = options.readyTimeoutMs ?? 20_000;
  const q = await startQemu(
    template,
    qemuPaths(options),
    { timeoutMs: readyTimeoutMs, signal: options.signal, paused: true, deviceStatePath: devFile, dieWithParent: true },
  );
  return readyClone(template, q, { ...options, paused: true }, { startedAt, connectMs: Date.now() - startedAt, pooled: false }, () => writeGuestPages(q.pid, template, ram));
}

/** Writes saved pages over a not yet running clone's RAM (through /proc/<pid>/mem), runs of adjacent pages in one call. */
export async function writeGuestPages(pid: number, template: Template, ram: { pages: number[]; data: Buffer }): Promise<void> {
  const map = await guestRamMapping(pid, template.memPath);
  const mem = await open(`/proc/${pid}/mem`, 'r+');
  try {
    for (let i = 0; i < ram.pages.length; ) {
      let j = i + 1;
      while (j < ram.pages.length && ram.pages[j] === ram.pages[j - 1] + 1) j++;
      await mem.write(ram.data, i * PAGE_SIZE, (j - i) * PAGE_SIZE, map.start + ram.pages[i] * PAGE_SIZE);
      i = j;
    }
  } finally {
    await mem.close();
  }
}

/**
 * Which boot of a template a clone comes from: the digest of its saved device
 * state, which differs from boot to boot (clocks, CPU state) as its RAM does.
 * Two templates with the same key but another build have other RAM, over
 * which a clone's pages would make no sense.
 */
export function templateBuildId(template: Template): string {
  return sha256(readFileSync(template.statePath));
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** sha256 and size of a file, read whole (checkpoint files are bounded by the guest's RAM). */
export async function fileDigest(file: string): Promise<{ sha256: string; bytes: number }> {
  const data = await readFile(file);
  return { sha256: sha256(data), bytes: data.length };
}

async function writeFileAtomic(file: string, data: Buffer | string): Promise<void> {
  const tmp = `${file}.tmp`;
  const f = await open(tmp, 'wx', 0o600);
  try {
    await f.writeFile(data);
    await f.sync();
  } finally {
    await f.close();
  }
  await rename(tmp, file);
}

export { writeFileAtomic };
