// A bounded line splitter for byte streams.
//
// A peer that streams megabytes without a newline must not make the broker
// buffer them: once a partial line exceeds the limit, the splitter reports it
// once and discards bytes up to the next newline. Lines are handed out as
// UTF-8 strings without the newline (a trailing `\r` is removed too).

export interface LineSink {
  line(text: string, bytes: number): void;
  /** A line exceeded `limit` bytes; what follows up to the next newline is discarded. */
  oversize(bytesSeen: number): void;
}

export class LineSplitter {
  private parts: Buffer[] = [];
  private partLen = 0;
  private discarding = false;

  constructor(
    /** Largest line in bytes, newline excluded. */
    public limit: number,
    private readonly sink: LineSink,
  ) {}

  push(chunk: Buffer): void {
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
      start = nl + 1;
    }
  }

  private partial(chunk: Buffer, start: number, end: number): void {
    if (this.discarding) return;
    const len = this.partLen + (end - start);
    if (len > this.limit) {
      this.sink.oversize(len);
      this.discarding = true;
      this.parts = [];
      this.partLen = 0;
      return;
    }
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
    this.sink.line(buf.toString('utf8', start, e), e - start);
  }

  /** Bytes held for an unfinished line. */
  get pending(): number {
    return this.partLen;
  }

  reset(): void {
    this.parts = [];
    this.partLen = 0;
    this.discarding = false;
  }
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
}
