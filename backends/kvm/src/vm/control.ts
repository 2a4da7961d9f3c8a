// The host end of the guest control port (virtio-serial slot 0).
//
// The protocol is line based ASCII; spec/guest.md is its reference. Values that
// may hold arbitrary bytes (paths, contents, argv, env) travel base64-encoded so
// that the busybox shell agent can split lines on spaces.
//
// A clone resumes with the template's memory, so its agent is in the middle of
// reading the control port when it wakes up and cannot know it was forked. The
// host therefore drives the handshake: it repeats `hello <nonce>` until the
// agent answers `ready <nonce>`. A lost line (the guest saw the port closed
// while the host was connecting) costs one retry instead of a hung clone.

import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { LineSplitter } from '@mcl/broker/lines';
import { connectUnix } from './qmp';
import type { GuestIdentity } from './types';

export interface ProgramExit {
  /** Guest pid of the program. */
  pid: number;
  /** Exit status as the shell reports it: 0..255, 128+N when killed by signal N. */
  status: number;
}

export class ControlError extends Error {
  /** The CLI's error kind: an expected failure, shown without a stack trace. */
  readonly kind = 'failure' as const;
  constructor(message: string, readonly hint?: string) {
    super(message);
    this.name = 'ControlError';
  }
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

/**
 * Largest line the guest agent may send, in bytes. Its lines are a few words
 * (spec/guest.md); a guest that sends more without a newline is misbehaving,
 * and the channel closes instead of buffering what it sends.
 */
export const CONTROL_MAX_LINE_BYTES = 64 * 1024;

/**
 * Events: `line` (every line from the guest), `exit` (ProgramExit, the program
 * ended), `boot` (the agent started from scratch: a cold boot or an agent
 * restart), `close`.
 */
export class ControlChannel extends EventEmitter {
  private readonly lines: LineSplitter;
  /** Why the channel closed, when it was not the peer closing it. */
  private closeReason: string | null = null;
  private waiters: { match: (words: string[]) => boolean; resolve: (w: string[]) => void }[] = [];
  private closedFlag = false;
  /** Exit of the program, once reported. */
  programExit: ProgramExit | null = null;
  private seq = 0;

  private constructor(
    private readonly socket: Duplex,
    maxLineBytes: number,
  ) {
    super();
    this.lines = new LineSplitter(maxLineBytes, {
      line: (text) => this.onLine(text),
      oversize: (bytes) => {
        this.closeReason = `the guest agent sent a line of more than ${maxLineBytes} bytes (${bytes} without a newline)`;
        socket.destroy();
      },
    });
    socket.on('data', (chunk: Buffer) => this.lines.push(chunk));
    socket.on('close', () => {
      this.closedFlag = true;
      this.emit('close');
    });
    socket.on('error', () => {
      // 'close' follows; a broken control connection is reported there.
    });
  }

  /** Connects to the QEMU-side listening socket of the control port (retrying while QEMU starts). */
  static async connect(path: string, timeoutMs = 10_000, signal?: AbortSignal, maxLineBytes = CONTROL_MAX_LINE_BYTES): Promise<ControlChannel> {
    return new ControlChannel(await connectUnix(path, timeoutMs, signal), maxLineBytes);
  }

  /** The control port over a stream already connected to the guest (a Xen vchan relay's stdio). */
  static over(stream: Duplex, maxLineBytes = CONTROL_MAX_LINE_BYTES): ControlChannel {
    return new ControlChannel(stream, maxLineBytes);
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Sends one raw protocol line (without newline). */
  send(line: string): void {
    if (line.includes('\n')) throw new ControlError('a control line must not contain a newline');
    this.socket.write(line + '\n');
  }

  /**
   * Waits for a line whose words satisfy `match`. Lines that arrived before the
   * call are not replayed, except through `lines` history for `ready boot`.
   */
  waitFor(match: (words: string[]) => boolean, timeoutMs: number, what: string): Promise<string[]> {
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (w: string[]) => {
          clearTimeout(timer);
          this.off('close', onClose);
          resolve(w);
        },
      };
      const onClose = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((x) => x !== waiter);
        reject(new ControlError(`control connection closed while waiting for ${what}${this.closeReason ? `: ${this.closeReason}` : ''}`));
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== waiter);
        this.off('close', onClose);
        reject(
          new ControlError(
            `the guest agent did not answer (${what}) within ${timeoutMs} ms`,
            'see the clone console log; under TCG a loaded host can make guests slow: raise the timeout',
          ),
        );
      }, timeoutMs);
      if (this.closedFlag) return onClose();
      this.once('close', onClose);
      this.waiters.push(waiter);
    });
  }

  /**
   * Repeats `hello <nonce>` every `intervalMs` until the agent answers
   * `ready <nonce>`; resolves with the time it took.
   */
  async handshake(timeoutMs = 20_000, intervalMs = 250): Promise<number> {
    const start = Date.now();
    const nonce = randomBytes(6).toString('hex');
    const reply = this.waitFor((w) => w[0] === 'ready' && w[1] === nonce, timeoutMs, 'hello');
    const hello = () => {
      if (!this.closedFlag) this.send(`hello ${nonce}`);
    };
    hello();
    const timer = setInterval(hello, intervalMs);
    try {
      await reply;
    } finally {
      clearInterval(timer);
    }
    return Date.now() - start;
  }

  /** Round trip through the agent; resolves with the time in ms. */
  async ping(timeoutMs = 5_000): Promise<number> {
    const start = Date.now();
    const n = String(++this.seq);
    const reply = this.waitFor((w) => w[0] === 'pong' && w[1] === n, timeoutMs, 'ping');
    this.send(`ping ${n}`);
    await reply;
    return Date.now() - start;
  }

  /**
   * Sends the identity of a clone and, when it has a program, starts it.
   * Resolves with the program's guest pid (null when there is none).
   */
  async sendIdentity(identity: GuestIdentity, timeoutMs = 20_000): Promise<{ programPid: number | null }> {
    const n = String(++this.seq);
    const clone = identity.clone ?? 0;
    // A hostname is at most 64 bytes; keep the clone suffix when the instance id is long.
    const suffix = clone > 0 ? `-${clone}` : '';
    const hostname = identity.hostname ?? identity.instanceId.replace(/[^A-Za-z0-9-]/g, '-').slice(0, 63 - suffix.length) + suffix;
    const seed = identity.seed ?? randomBytes(64);
    const lines: string[] = ['reset', `instance ${b64(identity.instanceId)} ${clone}`, `hostname ${b64(hostname)}`, `seed ${seed.toString('base64')}`];
    for (const p of identity.ports) {
      if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(p.name)) {
        throw new ControlError(`port name ${JSON.stringify(p.name)} cannot be a device name`, 'use letters, digits, _ . -');
      }
      if (!Number.isInteger(p.slot) || p.slot < 1) throw new ControlError(`port ${p.name}: slot ${p.slot} is not a data slot (>= 1)`);
      lines.push(`port ${p.slot} ${p.name}`);
    }
    const program = identity.program;
    if (program) {
      for (const f of program.files) {
        if (!/^0?[0-7]{3,4}$/.test(f.mode)) throw new ControlError(`file ${f.path}: mode ${f.mode} is not octal`);
        lines.push(`file ${b64(f.path)} ${f.mode} ${b64(f.content)}`);
      }
      for (const [k, v] of Object.entries(program.env).sort(([a], [b]) => (a < b ? -1 : 1))) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new ControlError(`environment variable name ${JSON.stringify(k)} is not valid`);
        lines.push(`env ${b64(`${k}=${v}`)}`);
      }
      for (const a of program.argv) lines.push(`arg ${b64(a)}`);
    }
    lines.push(program && program.argv.length > 0 ? `start ${n}` : `commit ${n}`);
    const reply = this.waitFor(
      (w) => (w[0] === 'started' || w[0] === 'committed' || w[0] === 'error') && w[1] === n,
      timeoutMs,
      'identity',
    );
    // One write: the lines are consumed in order by the agent's read loop.
    this.socket.write(lines.join('\n') + '\n');
    const words = await reply;
    if (words[0] === 'error') {
      throw new ControlError(`the guest agent refused the identity: ${Buffer.from(words[2] ?? '', 'base64').toString()}`);
    }
    return { programPid: words[0] === 'started' ? Number(words[2]) : null };
  }

  /** Asks the guest to power off (the clone's QEMU then exits because of -no-reboot). */
  poweroff(): void {
    if (!this.closedFlag) this.send('poweroff');
  }

  close(): void {
    this.socket.destroy();
  }

  private onLine(line: string): void {
    const words = line.trim().split(/\s+/);
    this.emit('line', line);
    // The status decides the restart policy: only a shell exit status (0..255) is taken as one.
    if (words[0] === 'exit' && words.length >= 3 && /^\d{1,10}$/.test(words[1]) && /^\d{1,3}$/.test(words[2]) && Number(words[2]) <= 255) {
      this.programExit = { pid: Number(words[1]), status: Number(words[2]) };
      this.emit('exit', this.programExit);
    } else if (words[0] === 'ready' && words[1] === 'boot') {
      this.emit('boot');
    }
    for (const w of [...this.waiters]) {
      if (w.match(words)) {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve(words);
      }
    }
  }
}
