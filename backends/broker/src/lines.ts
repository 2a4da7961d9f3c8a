// A bounded line splitter for byte streams.
//
// A peer that streams megabytes without a newline must not make the broker
// buffer them: once a partial line exceeds the limit, the splitter reports it
// once and discards bytes up to the next newline. Lines are handed out as
// UTF-8 strings without the newline (a trailing `\r` is removed too).
//
// A consumer can `hold()` the splitter from inside its sink (a sender over its
// violation budget): no further line of the chunk being pushed is handed out,
// and what remains is kept until `release()`. The consumer pauses the stream at
// the same time, so what is held is at most the rest of one chunk. A release can
// hand out a few lines at a time (`release(max)`), so that the consumer checks
// what it held in short stretches.

import { isAscii } from 'node:buffer';

/**
 * Lines of at least this many bytes are decoded as Latin-1 when every byte is ASCII. For such bytes
 * the text is the UTF-8 decoding's, character for character, but the engine copies the bytes as
 * they are rather than decode them one at a time (some 0.45 against 0.3 us for 4 KiB, the ASCII
 * check included). Below it, the check costs more than the decoding it spares.
 */
export const ASCII_DECODE_MIN = 1024;

export interface LineSink {
  /** A line: its text, and its bytes, which are `buf[start, start + bytes)` (valid during this call only). */
  line(text: string, bytes: number, buf: Buffer, start: number): void;
  /** A line exceeded `limit` bytes; what follows up to the next newline is discarded. */
  oversize(bytesSeen: number): void;
}

export class LineSplitter {
  private parts: Buffer[] = [];
  private partLen = 0;
  private discarding = false;
  private holding = false;
  private held: Buffer | null = null;
  /** Lines `release(max)` may still hand out before the splitter holds again (Infinity outside a release). */
  private allowance = Infinity;
  /** When the unfinished line began (performance.now()), or null when there is none. */
  private partialSince: number | null = null;

  constructor(
    /** Largest line in bytes, newline excluded. */
    public limit: number,
    private readonly sink: LineSink,
  ) {}

  push(chunk: Buffer): void {
    this.pushChunk(chunk, false);
  }

  /** `push`; `owned`: the chunk is the splitter's own copy (what it held), so that what it holds again of it needs no copy. */
  private pushChunk(chunk: Buffer, owned: boolean): void {
    if (this.holding) {
      // The stream was paused with the hold; a chunk it had already read is kept in order.
      this.held = this.held ? Buffer.concat([this.held, chunk]) : Buffer.from(chunk);
      return;
    }
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) {
        this.partial(chunk, start, chunk.length);
        return;
      }
      if (this.discarding) {
        this.discarding = false;
        this.parts = [];
        this.partLen = 0;
      } else if (this.partLen === 0) {
        this.emit(chunk, start, nl);
      } else {
        const len = this.partLen + (nl - start);
        if (len > this.limit) {
          this.sink.oversize(len);
        } else {
          this.parts.push(chunk.subarray(start, nl));
          const whole = Buffer.concat(this.parts, len);
          this.parts = [];
          this.partLen = 0;
          this.emit(whole, 0, whole.length);
        }
        this.parts = [];
        this.partLen = 0;
      }
      this.partialSince = null;
      start = nl + 1;
      if (this.allowance !== Infinity && --this.allowance <= 0 && start < chunk.length) this.holding = true;
      if (this.holding) {
        // Copied unless it is already the splitter's own: a stream's chunk may be a pooled buffer that it reuses.
        if (start < chunk.length) this.held = owned ? chunk.subarray(start) : Buffer.from(chunk.subarray(start));
        return;
      }
    }
  }

  /** Stops handing out lines until `release()`; the rest of the chunk being pushed is kept. */
  hold(): void {
    this.holding = true;
  }

  get onHold(): boolean {
    return this.holding;
  }

  /**
   * Hands out the lines kept since `hold()` (which may hold again), then takes chunks as before; with `max`, at
   * most that many, after which it holds the rest again (`onHold`) for a later release.
   */
  release(max = Infinity): void {
    if (!this.holding) return;
    this.holding = false;
    const held = this.held;
    this.held = null;
    if (!held) return;
    this.allowance = max;
    try {
      this.pushChunk(held, true);
    } finally {
      this.allowance = Infinity;
    }
  }

  private partial(chunk: Buffer, start: number, end: number): void {
    if (this.discarding) return;
    const len = this.partLen + (end - start);
    if (len > this.limit) {
      this.partialSince ??= performance.now();
      this.sink.oversize(len);
      this.discarding = true;
      this.parts = [];
      this.partLen = 0;
      return;
    }
    if (this.partLen === 0) this.partialSince = performance.now();
    // Copy: the chunk may be a pooled buffer that the stream reuses.
    this.parts.push(Buffer.from(chunk.subarray(start, end)));
    this.partLen = len;
  }

  private emit(buf: Buffer, start: number, end: number): void {
    let e = end;
    if (e > start && buf[e - 1] === 13) e--;
    if (e - start > this.limit) {
      this.sink.oversize(e - start);
      return;
    }
    if (e === start) return; // Blank lines are keep-alives and carry nothing.
    this.sink.line(decodeLine(buf, start, e), e - start, buf, start);
  }

  /** The bytes of the unfinished line (none while discarding the rest of an oversize one), for a checkpoint. */
  partialBytes(): Buffer {
    return this.discarding ? Buffer.alloc(0) : Buffer.concat(this.parts, this.partLen);
  }

  /** Bytes held for an unfinished line. */
  get pending(): number {
    return this.partLen;
  }

  /** When the unfinished line (or the discarded rest of an oversize one) began, or null when the last line ended. */
  get unfinishedSince(): number | null {
    return this.partialSince;
  }

  reset(): void {
    this.parts = [];
    this.partLen = 0;
    this.discarding = false;
    this.holding = false;
    this.held = null;
    this.partialSince = null;
  }
}

/** The UTF-8 text of `buf[start, end)`: read as Latin-1 when it is long and all ASCII, which gives the same text. */
export function decodeLine(buf: Buffer, start: number, end: number): string {
  if (end - start >= ASCII_DECODE_MIN && isAscii(buf.subarray(start, end))) return buf.toString('latin1', start, end);
  return buf.toString('utf8', start, end);
}

/** A token bucket: `burst` tokens, refilled at `perSecond`. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    now: number = performance.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  take(now: number = performance.now()): boolean {
    const elapsed = now - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.perSecond) / 1000);
      this.last = now;
    }
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  /**
   * Takes `n` tokens, going into debt when there are not enough (bytes that
   * were already read cannot be refused, only paid for), and returns how many
   * milliseconds until the bucket is out of debt again (0 when it is not in debt).
   */
  spend(n: number, now: number = performance.now()): number {
    const elapsed = now - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.perSecond) / 1000);
      this.last = now;
    }
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.perSecond);
  }
}
