// Moving a clone by its own pages (spec/hosts.md, "Live migration", "By the
// clone's own pages").
//
// QEMU's precopy sends all of guest RAM (migrate.ts). The destination has the
// template, so what it needs is what a checkpoint keeps (vm/checkpoint.ts):
// the pages the clone wrote that differ from the template's, and the device
// state. This mode stops the clone, captures both, sends them through the
// same TLS tunnel as precopy's stream (dialMigration/listenMigration, the
// hosts' pinned identities), and starts the clone at the destination from
// them, as a restore does. The guest is stopped from the final capture to the
// destination's start, in exchange for sending megabytes instead of the whole
// RAM.
//
// Live rounds: before stopping the guest, the pages it wrote are captured and
// sent while it runs (`rounds`, one by default), and the destination writes
// them into its QEMU's RAM as they arrive. The final capture, with the guest
// stopped, then sends only the pages that changed since what was sent (each
// compared with the copy sent, or with the template for a page sent never),
// plus the template's contents of any page sent before that the clone no
// longer holds privately. A page written while a round reads it is caught by
// that comparison, so the result is exact whatever the guest did meanwhile.
// (The kernel's soft-dirty bits would say which pages were written without
// comparing, but kernels without CONFIG_MEM_SOFT_DIRTY exist, this one among
// them, and the comparison costs milliseconds for an idle clone.)
//
// Wire format (one connection, source to destination): `MCLMOVE2`, then up to
// MAX_ROUNDS live frames `P`, u32 BE length, a RAM file (the checkpoint RAM
// file format, `MCLRAM01` + deflate), then the final frame `D`, the device
// state's length (u32 BE) and bytes, the RAM file's length (u32 BE) and
// bytes. A later frame's page replaces an earlier one. The destination
// answers `ok\n` once the clone is loaded there (paused), or `error <text>\n`.
// Every length is bounded before anything is read into memory.

import { createServer, createConnection, type Socket } from 'node:net';
import { mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { captureRam, encodeRamFile, PAGE_SIZE, parseRamFile, readTemplatePages, saveDeviceState, writeGuestPages, type CapturedRam } from './checkpoint';
import { loadState, qemuPaths, readyClone, startQemu, type StartedQemu } from './clone';
import { shQuote } from './qemu';
import { MigrationError, type MigrationBroker } from './migrate';
import type { Clone, CloneOptions, Template } from './types';

const MAGIC = Buffer.from('MCLMOVE2');
/** Most bytes of device state accepted (QEMU's is tens of KiB for our machines). */
export const MAX_DEVICE_STATE_BYTES = 16 * 1024 * 1024;
/** Most live rounds a move may send before its final frame. */
export const MAX_ROUNDS = 4;
/** Live rounds stop once one sends fewer pages than this (the final frame will be about as small). */
const SMALL_ROUND_PAGES = 256;

/** What a move by pages sent and how long the guest was stopped. */
export interface PagesMoveReport {
  /** Guest stopped (source `stop` to destination continued), ms. */
  guestDowntimeMs: number;
  /** Where the downtime went: the capture of pages and device state, their transfer and load at the destination, and the switch (source killed, ports moved, guest continued and answering). */
  phases: { captureMs: number; sendAndLoadMs: number; switchMs: number };
  /** From the hold of the clone's traffic to its release at the new place, ms. */
  holdMs: number;
  totalMs: number;
  /** Private pages the source held at the final capture, and the pages sent in all (live rounds and final frame). */
  privatePages: number;
  sentPages: number;
  /** Pages sent while the guest ran (live rounds), and with it stopped (the final frame). */
  livePages: number;
  finalPages: number;
  /** Live rounds sent before the final capture. */
  rounds: number;
  deviceStateBytes: number;
  /** The RAM files sent (deflated pages and their index), all frames. */
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
  // A RAM file holds at most every page once, with its index; deflate may grow incompressible data a little.
  const maxRam = 64 + totalPages * (PAGE_SIZE + 4) + 1024 * 1024;
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

/** Reads one move from `s` (bounded), writing its live rounds' pages into the destination QEMU as they come, and restores the clone from it. */
async function receiveOne(s: Socket, template: Template, options: CloneOptions, maxRam: number, q: StartedQemu): Promise<Clone> {
  const r = new FrameReader(s);
  const totalPages = Math.ceil(template.spec.memoryBytes / PAGE_SIZE);
  const ramOf = async (what: string) => {
    const len = (await r.take(4)).readUInt32BE(0);
    if (len > maxRam) r.refuse(`${what} of ${len} bytes for a guest of ${template.spec.memoryBytes}`);
    return parseRamFile(await r.take(len), what, totalPages);
  };
  try {
    if (!(await r.take(MAGIC.length)).equals(MAGIC)) r.refuse('not a move stream');
    for (let rounds = 0; ; rounds++) {
      const kind = (await r.take(1)).toString('latin1');
      if (kind === 'P') {
        if (rounds >= MAX_ROUNDS) r.refuse(`more than ${MAX_ROUNDS} live rounds`);
        // The guest's pages as the source read them while it ran; later frames replace what changed since.
        await writeGuestPages(q.pid, template, await ramOf('a live round\'s RAM file'));
        continue;
      }
      if (kind !== 'D') r.refuse(`a frame of kind ${JSON.stringify(kind)}`);
      const devLen = (await r.take(4)).readUInt32BE(0);
      if (devLen > MAX_DEVICE_STATE_BYTES) r.refuse(`device state of ${devLen} bytes`);
      const dev = await r.take(devLen);
      const ram = await ramOf('the final RAM file');
      if (r.buffered() > 0) r.refuse('more bytes than announced');
      r.done();
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
  } catch (e) {
    r.done();
    throw e instanceof MigrationError ? e : new MigrationError(`the move was refused: ${(e as Error).message}`);
  }
}

/**
 * Reads exact byte counts from a socket, holding at most what was asked for
 * plus one socket read: the socket is paused while nobody asks.
 */
class FrameReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private wake: (() => void) | null = null;
  private failed: Error | null = null;

  constructor(private readonly s: Socket) {
    s.pause();
    s.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.have += d.length;
      s.pause();
      this.wake?.();
    });
    const end = (why: string) => () => {
      this.failed ??= new MigrationError(why);
      this.wake?.();
    };
    s.on('error', (e) => end(`the move's connection failed: ${e.message}`)());
    s.on('close', end("the move's connection closed before the whole state arrived"));
  }

  /** The next `n` bytes. */
  async take(n: number): Promise<Buffer> {
    while (this.have < n) {
      if (this.failed) throw this.failed;
      this.s.resume();
      await new Promise<void>((r) => (this.wake = r));
      this.wake = null;
    }
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.have = rest.length;
    return out;
  }

  /** Bytes read and not taken yet. */
  buffered(): number {
    return this.have;
  }

  /** Refuses the stream: closes the connection and throws why. */
  refuse(why: string): never {
    this.s.destroy();
    throw new MigrationError(`the move was refused: ${why}`);
  }

  /** Stops reading (the answer still goes back on the socket). */
  done(): void {
    this.s.removeAllListeners('close');
    this.s.pause();
  }
}

/**
 * Moves the running clone `source` by its own pages to the receiver behind
 * the tunnel's source socket: live rounds while it runs (up to `rounds`,
 * default 3, ending early once a round is small or no longer half the one
 * before: the guest writes as fast as the rounds send), then the final frame
 * with it stopped. With `broker`, its traffic is held
 * from before the stop to the release at the new place; the clone is stopped
 * only once QEMU has read everything sent to it (else it runs on a little and
 * the check is repeated, at most `attempts` times). On failure the source
 * continues and its held frames are released to it.
 */
export async function movePages<C extends { resume(): Promise<void>; kill(): Promise<unknown> } = Clone>(
  source: Clone,
  tunnel: { socket: string; bytes(): number },
  destination: { loaded: Promise<C> },
  broker?: MigrationBroker,
  options: { attempts?: number; timeoutMs?: number; rounds?: number } = {},
): Promise<{ clone: C; report: PagesMoveReport }> {
  const t0 = performance.now();
  const maxRounds = Math.max(0, Math.min(MAX_ROUNDS, options.rounds ?? 3));
  let rounds = 0;
  const sourcePrivateBytes = (await source.memory().catch(() => null))?.private ?? 0;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mcl-move-'));
  const conn = openMove(tunnel.socket, options.timeoutMs ?? 120_000);
  // What the destination holds of each page sent so far (pages never sent are the template's there).
  const sent = new Map<number, Buffer>();
  let ramBytes = 0;
  let livePages = 0;
  let held = false;
  let heldAt = 0;
  let stoppedAt = 0;
  let attempts = 0;
  let killed = false;
  try {
    conn.write(MAGIC);
    for (let previous = Infinity; rounds < maxRounds; ) {
      const ram = await captureRam(source.pid, source.template);
      const blob = await changes(ram, source.template, sent, false);
      livePages += blob.pages;
      ramBytes += blob.bytes.length;
      rounds++;
      const len = Buffer.alloc(5);
      len.write('P', 0, 'latin1');
      len.writeUInt32BE(blob.bytes.length, 1);
      await conn.send([len, blob.bytes]);
      if (blob.pages < SMALL_ROUND_PAGES || blob.pages > previous / 2) break;
      previous = blob.pages;
    }
    broker?.hold();
    held = true;
    heldAt = performance.now();
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
    const last = await changes(ram, source.template, sent, true);
    ramBytes += last.bytes.length;
    const devFile = path.join(dir, 'devices.bin');
    await saveDeviceState(source.qmp, devFile);
    const dev = await readFile(devFile);
    const head = Buffer.alloc(5);
    head.write('D', 0, 'latin1');
    head.writeUInt32BE(dev.length, 1);
    const mid = Buffer.alloc(4);
    mid.writeUInt32BE(last.bytes.length);
    const capturedAt = performance.now();
    await conn.send([head, dev, mid, last.bytes]);
    const answer = await conn.answer;
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
        sentPages: livePages + last.pages,
        livePages,
        finalPages: last.pages,
        rounds,
        deviceStateBytes: dev.length,
        ramBytes,
        wireBytes: tunnel.bytes(),
        sourcePrivateBytes,
        attempts,
      },
    };
  } catch (e) {
    // A destination that refused the stream says why before it closes: that is the error to report.
    const said = await Promise.race([conn.answer.catch(() => ''), new Promise<string>((r) => setTimeout(() => r(''), 200))]);
    conn.close();
    if (said && said !== 'ok') e = new MigrationError(`the destination refused the move: ${said}; the clone goes on running on the source`);
    // The destination's clone, if it was started, must not run beside the source.
    void destination.loaded.then((c) => c.kill(), () => undefined);
    if (!killed && stoppedAt) await source.qmp.execute('cont').catch(() => undefined);
    if (held) broker?.release();
    throw e instanceof MigrationError ? e : new MigrationError(`the move failed: ${(e as Error).message}; the clone goes on running on the source`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The RAM file of what the destination lacks of `ram`: each private page that
 * differs from what the destination holds (the copy sent before, else the
 * template's). With `final`, also the template's contents of every page sent
 * before that the clone no longer holds privately (it was given back, and
 * reads as the template's again). Updates `sent`.
 */
async function changes(ram: CapturedRam, template: Template, sent: Map<number, Buffer>, final: boolean): Promise<{ pages: number; bytes: Buffer }> {
  const page = (k: number) => ram.data.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE);
  const fresh = ram.pages.map((p, k) => (sent.has(p) ? -1 : k)).filter((k) => k >= 0);
  const tpl = await readTemplatePages(template, fresh.map((k) => ram.pages[k]));
  const out = new Map<number, Buffer>();
  fresh.forEach((k, i) => {
    if (!tpl.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE).equals(page(k))) out.set(ram.pages[k], page(k));
  });
  ram.pages.forEach((p, k) => {
    const had = sent.get(p);
    if (had && !had.equals(page(k))) out.set(p, page(k));
  });
  if (final) {
    const held = new Set(ram.pages);
    const gone = [...sent.keys()].filter((p) => !held.has(p)).sort((a, b) => a - b);
    const back = await readTemplatePages(template, gone);
    gone.forEach((p, i) => out.set(p, back.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE)));
  }
  const pages = [...out.keys()].sort((a, b) => a - b);
  // Copies: the capture's buffer is let go, and the guest may change the page again before the next round.
  for (const p of pages) sent.set(p, Buffer.from(out.get(p)!));
  return { pages: pages.length, bytes: await encodeRamFile(ram.totalPages, pages, (i) => out.get(pages[i])!) };
}

/**
 * One move's connection to the unix socket `socket`: frames are written in
 * order (`send` resolves when the socket took them), and `answer` is the
 * destination's one-line answer.
 */
function openMove(socket: string, timeoutMs: number): { write(b: Buffer): void; send(parts: Buffer[]): Promise<void>; answer: Promise<string>; close(): void } {
  const s = createConnection(socket);
  let answer = '';
  let failed: Error | null = null;
  const answered = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      s.destroy();
      reject(new MigrationError(`no answer from the destination within ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('data', (d: Buffer) => {
      answer += d.toString();
      if (answer.length > 1024) s.destroy();
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      failed = new MigrationError(`the move's connection failed: ${e.message}`);
      reject(failed);
    });
    s.on('close', () => {
      clearTimeout(timer);
      const line = answer.split('\n')[0];
      if (line) resolve(line);
      else reject((failed ??= new MigrationError('the destination closed the connection without an answer')));
    });
  });
  answered.catch(() => undefined);
  return {
    write: (b) => void s.write(b),
    send: (parts) =>
      new Promise<void>((resolve, reject) => {
        if (failed) return reject(failed);
        for (const p of parts.slice(0, -1)) s.write(p);
        s.write(parts[parts.length - 1], (e) => (e ? reject(new MigrationError(`the move's connection failed: ${e.message}`)) : resolve()));
      }),
    answer: answered,
    close: () => s.destroy(),
  };
}
