// Moving a clone by its own pages (spec/hosts.md, "Live migration", "By the
// clone's own pages").
//
// QEMU's precopy sends all of guest RAM (migrate.ts). The destination has the
// template, so what it needs is what a checkpoint keeps (vm/checkpoint.ts):
// the pages the clone wrote that differ from the template's, and the device
// state. This mode stops the clone, captures both, sends them through the
// same TLS tunnel as precopy's stream (dialMigration/listenMigration, the
// hosts' pinned identities), and starts the clone at the destination from
// them, as a restore does. It is stop-and-copy: the guest is stopped from the
// capture to the destination's start, in exchange for sending megabytes
// instead of the whole RAM.
//
// Wire format (one connection, source to destination): `MCLMOVE1`, then the
// device state's length (u32 BE) and bytes, then the RAM file's length (u32
// BE) and bytes (the checkpoint RAM file format, `MCLRAM01` + deflate). The
// destination answers `ok\n` once the clone is loaded there (paused), or
// `error <text>\n`. Lengths are bounded before anything is read into memory.

import { createServer, createConnection, type Socket } from 'node:net';
import { mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { captureRam, PAGE_SIZE, parseRamFile, saveDeviceState, writeGuestPages, writeRamFile } from './checkpoint';
import { loadState, qemuPaths, readyClone, startQemu, type StartedQemu } from './clone';
import { shQuote } from './qemu';
import { MigrationError, type MigrationBroker } from './migrate';
import type { Clone, CloneOptions, Template } from './types';

const MAGIC = Buffer.from('MCLMOVE1');
/** Most bytes of device state accepted (QEMU's is tens of KiB for our machines). */
export const MAX_DEVICE_STATE_BYTES = 16 * 1024 * 1024;

/** What a move by pages sent and how long the guest was stopped. */
export interface PagesMoveReport {
  /** Guest stopped (source `stop` to destination continued), ms. */
  guestDowntimeMs: number;
  /** Where the downtime went: the capture of pages and device state, their transfer and load at the destination, and the switch (source killed, ports moved, guest continued and answering). */
  phases: { captureMs: number; sendAndLoadMs: number; switchMs: number };
  /** From the hold of the clone's traffic to its release at the new place, ms. */
  holdMs: number;
  totalMs: number;
  /** Private pages the source held, and those sent (they differ from the template's). */
  privatePages: number;
  sentPages: number;
  deviceStateBytes: number;
  /** The RAM file (deflated pages and their index). */
  ramBytes: number;
  wireBytes: number;
  sourcePrivateBytes: number;
  attempts: number;
}

/**
 * The destination's receiver: listens on the unix socket `socket` (where
 * listenMigration delivers the tunnel), takes one move, and starts the clone
 * of `template` from it, paused. `loaded` resolves with the clone.
 */
export async function receivePages(template: Template, options: CloneOptions, socket: string): Promise<{ q: StartedQemu; loaded: Promise<Clone>; close(): void }> {
  await unlink(socket).catch(() => undefined);
  // The QEMU process is started now, before the source stops: the guest's downtime is then the capture, the
  // transfer and the load, not QEMU's start. Its incoming stream is device state alone (as a checkpoint's),
  // given later over QMP; the descriptor it inherits (the template's state) goes unused.
  const q = await startQemu(template, qemuPaths(options), {
    timeoutMs: options.readyTimeoutMs ?? 60_000,
    signal: options.signal,
    paused: true,
    deviceStatePath: template.statePath,
    dieWithParent: true,
  });
  const totalPages = Math.ceil(template.spec.memoryBytes / PAGE_SIZE);
  const maxRam = MAGIC.length + 64 + totalPages * (PAGE_SIZE + 4) + 1024 * 1024;
  let onLoaded!: (c: Clone) => void;
  let onFailed!: (e: Error) => void;
  const loaded = new Promise<Clone>((res, rej) => {
    onLoaded = res;
    onFailed = rej;
  });
  loaded.catch(() => undefined);
  let taken = false;
  const server = createServer((s) => {
    if (taken) {
      s.destroy();
      return;
    }
    taken = true;
    server.close();
    void receiveOne(s, template, options, maxRam, q).then(
      (c) => {
        s.end('ok\n');
        onLoaded(c);
      },
      (e: Error) => {
        s.end(`error ${e.message.replace(/\n/g, ' ').slice(0, 500)}\n`);
        q.kill('SIGKILL');
        onFailed(e);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => resolve());
  });
  return {
    q,
    loaded,
    close: () => {
      server.close();
      if (!taken) q.kill('SIGKILL');
    },
  };
}

/** Reads one move from `s` (bounded) and restores the clone from it. */
async function receiveOne(s: Socket, template: Template, options: CloneOptions, maxRam: number, q: StartedQemu): Promise<Clone> {
  const chunks: Buffer[] = [];
  let have = 0;
  let need = MAGIC.length + 4;
  let devLen = -1;
  let ramLen = -1;
  await new Promise<void>((resolve, reject) => {
    const fail = (why: string) => {
      s.destroy();
      reject(new MigrationError(`the move was refused: ${why}`));
    };
    s.on('error', (e) => reject(new MigrationError(`the move's connection failed: ${e.message}`)));
    s.on('close', () => reject(new MigrationError('the move\'s connection closed before the whole state arrived')));
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      have += d.length;
      if (have < need) return;
      const buf = Buffer.concat(chunks);
      chunks.length = 0;
      chunks.push(buf);
      if (devLen < 0) {
        if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) return fail('not a move stream');
        devLen = buf.readUInt32BE(MAGIC.length);
        if (devLen > MAX_DEVICE_STATE_BYTES) return fail(`device state of ${devLen} bytes`);
        need = MAGIC.length + 4 + devLen + 4;
        if (have < need) return;
      }
      if (ramLen < 0) {
        ramLen = buf.readUInt32BE(MAGIC.length + 4 + devLen);
        if (ramLen > maxRam) return fail(`a RAM file of ${ramLen} bytes for a guest of ${template.spec.memoryBytes}`);
        need = MAGIC.length + 8 + devLen + ramLen;
      }
      if (have > need) return fail('more bytes than announced');
      if (have === need) {
        s.removeAllListeners('close');
        s.pause();
        resolve();
      }
    });
  });
  const buf = Buffer.concat(chunks);
  const dev = buf.subarray(MAGIC.length + 4, MAGIC.length + 4 + devLen);
  const ramRaw = buf.subarray(MAGIC.length + 8 + devLen);
  const ram = await parseRamFile(ramRaw, 'the moved RAM', Math.ceil(template.spec.memoryBytes / PAGE_SIZE));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mcl-move-'));
  try {
    const devFile = path.join(dir, 'devices.bin');
    await writeFile(devFile, dev, { mode: 0o600 });
    const startedAt = Date.now();
    // As a restore (vm/checkpoint.ts): the pages first (the virtio queues' indices the load checks live in
    // guest RAM), then the device state.
    await writeGuestPages(q.pid, template, ram);
    await loadState(q.qmp, `exec:cat ${shQuote(devFile)}`, options.readyTimeoutMs ?? 60_000);
    q.loaded = true;
    return await readyClone(template, q, { ...options, paused: true }, { startedAt, connectMs: 0, pooled: false });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Moves the running clone `source` by its own pages to the receiver behind
 * the tunnel's source socket. With `broker`, its traffic is held from before
 * the stop to the release at the new place; the clone is stopped only once
 * QEMU has read everything sent to it (else it runs on a little and the check
 * is repeated, at most `attempts` times). On failure the source continues and
 * its held frames are released to it.
 */
export async function movePages<C extends { resume(): Promise<void>; kill(): Promise<unknown> } = Clone>(
  source: Clone,
  tunnel: { socket: string; bytes(): number },
  destination: { loaded: Promise<C> },
  broker?: MigrationBroker,
  options: { attempts?: number; timeoutMs?: number } = {},
): Promise<{ clone: C; report: PagesMoveReport }> {
  const t0 = performance.now();
  const sourcePrivateBytes = (await source.memory().catch(() => null))?.private ?? 0;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mcl-move-'));
  broker?.hold();
  const heldAt = performance.now();
  let stoppedAt = 0;
  let attempts = 0;
  let killed = false;
  try {
    for (;;) {
      attempts++;
      // Let the running guest read what was sent to it before the hold.
      for (let i = 0; i < 50 && broker && !(await broker.drained()); i++) await new Promise((r) => setTimeout(r, 10));
      await source.qmp.execute('stop');
      stoppedAt = performance.now();
      if (!broker || (await broker.drained())) break;
      await source.qmp.execute('cont');
      if (attempts >= (options.attempts ?? 3)) throw new MigrationError(`the clone did not read what was sent to it in ${attempts} attempts; it goes on running on the source`);
    }
    const ram = await captureRam(source.pid, source.template);
    const devFile = path.join(dir, 'devices.bin');
    await saveDeviceState(source.qmp, devFile);
    const ramFile = path.join(dir, 'ram.bin');
    const written = await writeRamFile(ramFile, ram, source.template);
    const [dev, ramData] = await Promise.all([readFile(devFile), readFile(ramFile)]);
    const head = Buffer.alloc(MAGIC.length + 4);
    MAGIC.copy(head);
    head.writeUInt32BE(dev.length, MAGIC.length);
    const mid = Buffer.alloc(4);
    mid.writeUInt32BE(ramData.length);
    const capturedAt = performance.now();
    const answer = await send(tunnel.socket, [head, dev, mid, ramData], options.timeoutMs ?? 120_000);
    const loadedAt = performance.now();
    if (answer !== 'ok') throw new MigrationError(`the destination refused the move: ${answer}`);
    const clone = await destination.loaded;
    const moved = broker?.move();
    killed = true;
    await source.kill();
    await moved;
    await clone.resume();
    const end = performance.now();
    return {
      clone,
      report: {
        guestDowntimeMs: Math.round(end - stoppedAt),
        phases: { captureMs: Math.round(capturedAt - stoppedAt), sendAndLoadMs: Math.round(loadedAt - capturedAt), switchMs: Math.round(end - loadedAt) },
        holdMs: broker ? end - heldAt : 0,
        totalMs: Math.round(end - t0),
        privatePages: ram.pages.length,
        sentPages: written.pages,
        deviceStateBytes: dev.length,
        ramBytes: ramData.length,
        wireBytes: tunnel.bytes(),
        sourcePrivateBytes,
        attempts,
      },
    };
  } catch (e) {
    // The destination's clone, if it was started, must not run beside the source.
    void destination.loaded.then((c) => c.kill(), () => undefined);
    if (!killed) await source.qmp.execute('cont').catch(() => undefined);
    broker?.release();
    throw e instanceof MigrationError ? e : new MigrationError(`the move failed: ${(e as Error).message}; the clone goes on running on the source`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes `parts` to the unix socket `socket` and resolves with the destination's one-line answer. */
function send(socket: string, parts: Buffer[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(socket);
    let answer = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new MigrationError(`no answer from the destination within ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('connect', () => {
      for (const p of parts) s.write(p);
    });
    s.on('data', (d: Buffer) => {
      answer += d.toString();
      if (answer.length > 1024) s.destroy();
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(new MigrationError(`the move's connection failed: ${e.message}`));
    });
    s.on('close', () => {
      clearTimeout(timer);
      const line = answer.split('\n')[0];
      if (line) resolve(line);
      else reject(new MigrationError('the destination closed the connection without an answer'));
    });
  });
}
