// A clone's console log, bounded in size, in number of files and in rate.
//
// The guest decides how much it writes to its serial console: a program that
// prints in a loop wrote 1.1 MB/s under TCG into a log that QEMU appended to
// as a file (`-chardev file`), until the host disk was full. Nothing outside
// QEMU can cap such a file: QEMU keeps it open, so a rename only moves the
// file it keeps writing to, and truncating it under a running writer races
// with every write. So a clone's console is a unix socket (`-chardev
// socket,server=on,wait=off`) and its owner reads it and writes the log
// itself (this module):
//
// - Size: when the next chunk would take the file past `maxBytes`, the file
//   is rotated by renames only (`console.log` -> `console.log.1` -> ... ->
//   `console.log.<files>`, the oldest removed) and a new one begun. Nothing
//   is ever read back into memory, so a log costs the same to keep at any
//   size. A clone's console takes at most (files + 1) x (maxBytes + 64 KiB)
//   on disk.
// - Buffering: each chunk is written synchronously before the next is read,
//   so nothing queues in this process.
// - Rate: QEMU's serial port writes the socket a byte per write, and the
//   kernel charges each such write a whole socket buffer (about 1 KiB of
//   accounting) against QEMU's send buffer, so a few hundred bytes unread
//   make QEMU's serial port wait, and the guest's writes to its console block
//   until the owner reads. The owner's reading costs CPU per byte (the kernel
//   frees a buffer for each): a flooding guest took a fifth of a core of the
//   supervisor, which also runs the broker, at 57 KiB/s. So the owner reads
//   at most every few milliseconds (the kernel gathers the bytes meanwhile)
//   and at most `bytesPerSecond` (after a burst of a second's worth), and a
//   flooding guest slows itself down rather than the supervisor. The default,
//   32 KiB/s, is about three times a 115200-baud serial line: a console for
//   boot messages, errors and the program's own output, not a data channel
//   (ports are). A FIFO (`-chardev pipe`) would merge QEMU's one-byte writes
//   and cost less per byte, but needs a mkfifo per clone and blocks QEMU's
//   writes once nobody reads it.
//
// Where no one reads the socket (its owner died), QEMU drops what the guest
// writes; it does not buffer it. The template's cold boot keeps a file
// console: it is short and its log is a bounded one-off.

import { closeSync, fstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import type net from 'node:net';
import { connectUnix } from './qmp';

export interface ConsoleLogLimits {
  /** Size of one file before it is rotated; default `$MCL_CONSOLE_LOG_BYTES`, else 4 MiB. */
  maxBytes?: number;
  /** Rotated files kept besides the current one; default `$MCL_CONSOLE_LOG_FILES`, else 3. */
  files?: number;
  /** Bytes per second read from the guest before it is made to wait; default `$MCL_CONSOLE_RATE`, else 32 KiB/s. */
  bytesPerSecond?: number;
}

const MIB = 1024 * 1024;
/** How much of its rate a guest that was quiet may write at once, in ms. */
const BURST_MS = 1000;
/** The least time between two reads of a console, in ms (see onData). */
const READ_INTERVAL_MS = 5;

function envInt(name: string, fallback: number, min: number): number {
  const v = process.env[name];
  if (v === undefined || !/^\d+$/.test(v)) return fallback;
  return Math.max(min, Number(v));
}

/** The limits in effect: the given ones, else the environment's, else the defaults. */
export function consoleLogLimits(given: ConsoleLogLimits = {}): Required<ConsoleLogLimits> {
  return {
    maxBytes: given.maxBytes ?? envInt('MCL_CONSOLE_LOG_BYTES', 4 * MIB, 4096),
    files: given.files ?? envInt('MCL_CONSOLE_LOG_FILES', 3, 0),
    bytesPerSecond: given.bytesPerSecond ?? envInt('MCL_CONSOLE_RATE', 32 * 1024, 1024),
  };
}

/**
 * Rotates `path` by renames: `path.<files - 1>` becomes `path.<files>` (the
 * oldest is removed), ..., `path` becomes `path.1`. With `files` 0 the
 * current file is removed. Missing files are skipped.
 */
export function rotateLogFiles(path: string, files: number): void {
  rmSync(files > 0 ? `${path}.${files}` : path, { force: true });
  for (let i = files - 1; i >= 1; i--) renameQuiet(`${path}.${i}`, `${path}.${i + 1}`);
  if (files > 0) renameQuiet(path, `${path}.1`);
}

function renameQuiet(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** The log files of `path` that exist or may exist, oldest first: `path.<files>`, ..., `path.1`, `path`. */
export function logFilesOldestFirst(path: string, files: number): string[] {
  return [...Array.from({ length: files }, (_, i) => `${path}.${files - i}`), path];
}

export class ConsoleLog {
  private fd: number | null = null;
  private size = 0;
  private readonly limits: Required<ConsoleLogLimits>;
  /** When everything read so far is paid for at the rate (a token bucket kept as a time). */
  private paidUntil = 0;
  private resumeTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** QEMU exited: what is left in the socket is read to its end (drainAndClose), not paced. */
  private draining = false;
  /** Chunks the guest wrote that could not be written (the disk is full): counted, not retried. */
  lostBytes = 0;
  /** Bytes read from the guest, and in how many reads. */
  bytes = 0;
  reads = 0;

  /**
   * Connects to the console socket `socketPath` (retrying while QEMU starts)
   * and reads it into `path` until the socket closes. `header` (a line) is
   * written first, before anything of the guest.
   */
  static async connect(
    socketPath: string,
    path: string,
    options: { limits?: ConsoleLogLimits; header?: string; timeoutMs: number; signal?: AbortSignal },
  ): Promise<ConsoleLog> {
    let log: ConsoleLog | undefined;
    const early: Buffer[] = [];
    // Node reads into this one buffer and calls back with each read; pausing the socket then stops reading
    // from the kernel (with 'data' events it would go on reading into its own queue, a byte at a time).
    const onread: net.OnReadOpts = {
      buffer: Buffer.alloc(65_536),
      callback: (n: number, buf: Uint8Array) => {
        const chunk = Buffer.from(buf.buffer, buf.byteOffset, n);
        // The buffer is reused by the next read: a chunk is written at once, or copied while there is no log yet.
        if (log) log.onData(chunk);
        else early.push(Buffer.from(chunk));
        return true;
      },
    };
    const socket = await connectUnix(socketPath, options.timeoutMs, options.signal, onread);
    log = new ConsoleLog(path, socket, options.limits, options.header);
    for (const c of early.splice(0)) log.onData(c);
    return log;
  }

  private constructor(
    readonly path: string,
    private readonly socket: net.Socket,
    limits: ConsoleLogLimits = {},
    header?: string,
  ) {
    this.limits = consoleLogLimits(limits);
    this.open();
    if (header) this.write(Buffer.from(`${header}\n`));
    socket.on('close', () => this.close());
    socket.on('error', () => {
      // 'close' follows.
    });
  }

  private open(): void {
    // Appended to: the file may hold QEMU's own messages already (a zygote's child writes its stderr there).
    this.fd = openSync(this.path, 'a', 0o600);
    this.size = fstatSync(this.fd).size;
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.bytes += chunk.length;
    this.reads++;
    this.write(chunk);
    // A quiet guest may write a second's worth at once; beyond that the reader waits until what it read is
    // paid for at the rate.
    // QEMU's serial port writes the socket a byte at a time: after each read the reader waits a little, and
    // the kernel gathers what comes meanwhile into the next one (see the top of this file).
    const now = Date.now();
    this.paidUntil = Math.max(this.paidUntil, now - BURST_MS) + (chunk.length * 1000) / this.limits.bytesPerSecond;
    if (!this.resumeTimer && !this.draining) {
      this.socket.pause();
      this.resumeTimer = setTimeout(() => {
        this.resumeTimer = undefined;
        if (!this.closed) this.socket.resume();
      }, Math.max(READ_INTERVAL_MS, Math.ceil(this.paidUntil - now)));
      this.resumeTimer.unref();
    }
  }

  private write(chunk: Buffer): void {
    try {
      if (this.fd === null) this.open();
      if (this.size > 0 && this.size + chunk.length > this.limits.maxBytes) {
        closeSync(this.fd!);
        this.fd = null;
        rotateLogFiles(this.path, this.limits.files);
        this.open();
      }
      // A chunk is at most what one socket read returns (64 KiB), so a file ends at most that far past the limit.
      writeSync(this.fd!, chunk);
      this.size += chunk.length;
    } catch {
      // A full disk or a removed directory (the clone is being torn down) must not take the owner down.
      // Without a file (it could not be opened again after a rotation), the next chunk tries again.
      this.lostBytes += chunk.length;
    }
  }

  /**
   * QEMU has exited, so its end of the socket is closed: reads what is still
   * in the socket (the last lines a program wrote before it ended, which the
   * reader's pause between reads may not have taken yet) to the end of the
   * stream, without waiting on the rate, then closes. Bounded by `timeoutMs`
   * (what is left is at most the socket's buffer, and the file cap holds).
   */
  drainAndClose(timeoutMs = 2_000): void {
    if (this.closed || this.draining) return;
    this.draining = true;
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.resumeTimer = undefined;
    const t = setTimeout(() => this.close(), timeoutMs);
    t.unref();
    this.socket.once('close', () => clearTimeout(t));
    this.socket.resume();
  }

  /** Stops reading and closes the file. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.socket.destroy();
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
