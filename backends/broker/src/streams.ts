// Byte streams: an exposed port of protocol std.tcp.Stream relays the bytes of
// raw TCP connections (SSH, SMTP, a TLS stream for a terminator component).
// The guest port still speaks frames: every connection has a number on its
// exposure, its client's bytes go to the guest as `send data` chunks (base64,
// at most 16 KiB each) between `send opened` and `send closed`, and the guest
// answers with `notify write` chunks and `notify close` naming the number.
// Each connection is a requester of its own (its session is the connection),
// so every chunk passes the checks of a frame on a channel.

import type { Socket } from 'node:net';
import type { ChannelInvariants } from '@mcl/plan';
import { TokenBucket } from './lines';

export const STREAM_PROTOCOL = 'std.tcp.Stream';

/** Whether a protocol name denotes std.tcp.Stream (the compiler writes qualified names). */
export function isStreamProtocol(protocol: string): boolean {
  return protocol === STREAM_PROTOCOL;
}

/** The most bytes in one chunk, as stdlib/tcp.mcl's `Chunk` allows. */
export const STREAM_CHUNK_BYTES = 16 * 1024;

/** Room in a frame for the envelope and the chunk's other fields around the base64 data. */
const CHUNK_OVERHEAD = 64;

/** Bytes queued to a client that does not read, past which its connection is closed (its bytes cannot be dropped). */
export const STREAM_CLIENT_WATER = 4 * 1024 * 1024;

/** The bytes of one chunk: 16 KiB, or fewer when the exposure's `max_message` is smaller. */
export function chunkBytes(inv: ChannelInvariants): number {
  const fit = Math.floor(((inv.max_message_bytes - CHUNK_OVERHEAD) * 3) / 4);
  return Math.max(1, Math.min(STREAM_CHUNK_BYTES, fit));
}

/** Splits what a client sent into chunks of at most `size` bytes, as base64. */
export function chunks(data: Buffer, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size).toString('base64'));
  return out;
}

/**
 * The `bandwidth` of one connection: bytes a second read from its client. The
 * bytes a read delivers are taken from a bucket (one second's worth deep);
 * when that leaves it in debt, the socket is paused until the debt is paid, so
 * the client's sends wait in the kernel's buffers and TCP slows the client
 * down. Nothing is dropped: a byte stream must arrive whole.
 */
export class Throttle {
  private readonly bucket: TokenBucket;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    bytesPerSecond: number,
    private readonly sock: Socket,
    /** Whether the socket must stay paused for another reason (a checkpoint's hold). */
    private readonly held: () => boolean,
  ) {
    this.bucket = new TokenBucket(bytesPerSecond, bytesPerSecond);
  }

  /** Pays for `n` bytes just read; pauses the socket while in debt. */
  read(n: number): void {
    const wait = this.bucket.spend(n);
    if (wait === 0) return;
    // Paused again even with a timer set: something else (the broker's backpressure) may have resumed it.
    this.sock.pause();
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.sock.destroyed && !this.held()) this.sock.resume();
    }, wait);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
