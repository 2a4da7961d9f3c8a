// A small QMP client: JSON over a unix socket.
//
// QMP sends a greeting, then expects `qmp_capabilities` before any other
// command. Every command carries an `id` and responses are matched by it, so
// several commands may be in flight; asynchronous events arrive interleaved and
// are emitted as `event`.

import { EventEmitter } from 'node:events';
import net from 'node:net';
import { LineSplitter } from '@mcl/broker/lines';

/**
 * Largest QMP message in bytes. The replies and events this client asks for are
 * a few hundred bytes; a QEMU that sends a megabyte without a newline is broken
 * or compromised, and the connection ends instead of buffering it.
 */
export const QMP_MAX_LINE_BYTES = 1024 * 1024;

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export class QmpError extends Error {
  constructor(
    message: string,
    /** QMP error class, e.g. `GenericError`, or `Timeout`/`Closed` for failures of the client. */
    readonly errorClass: string,
  ) {
    super(message);
    this.name = 'QmpError';
  }
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
  command: string;
}

export interface QmpConnectOptions {
  /** Keep retrying the connection (QEMU may not have created the socket yet) up to this long; default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Largest message in bytes; a longer one ends the connection. Default QMP_MAX_LINE_BYTES. */
  maxLineBytes?: number;
}

export class QmpClient extends EventEmitter {
  private readonly lines: LineSplitter;
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closedError: Error | null = null;
  /** The greeting's QEMU version, e.g. `{ major: 7, minor: 2, micro: 22 }`. */
  version: { major: number; minor: number; micro: number } | null = null;

  private constructor(
    private readonly socket: net.Socket,
    maxLineBytes: number,
  ) {
    super();
    this.lines = new LineSplitter(maxLineBytes, {
      line: (text) => this.onMessage(text),
      oversize: (bytes) => {
        this.onClose(new QmpError(`QMP message of more than ${maxLineBytes} bytes (${bytes} without a newline); the connection was closed`, 'Closed'));
        socket.destroy();
      },
    });
    socket.on('data', (chunk: Buffer) => this.lines.push(chunk));
    socket.on('close', () => this.onClose(new QmpError('QMP connection closed', 'Closed')));
    socket.on('error', (err) => this.onClose(new QmpError(`QMP socket error: ${err.message}`, 'Closed')));
  }

  /** Connects, reads the greeting and negotiates capabilities. */
  static async connect(path: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const socket = await connectUnix(path, options.timeoutMs ?? 10_000, options.signal);
    const client = new QmpClient(socket, options.maxLineBytes ?? QMP_MAX_LINE_BYTES);
    await client.waitGreeting(options.timeoutMs ?? 10_000);
    await client.execute('qmp_capabilities');
    return client;
  }

  private greeting: ((v: unknown) => void) | null = null;

  private waitGreeting(timeoutMs: number): Promise<void> {
    if (this.version) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new QmpError('no QMP greeting from QEMU', 'Timeout')), timeoutMs);
      this.greeting = (v) => {
        clearTimeout(timer);
        const q = (v as { QMP?: { version?: { qemu?: { major: number; minor: number; micro: number } } } }).QMP;
        this.version = q?.version?.qemu ?? { major: 0, minor: 0, micro: 0 };
        resolve();
      };
      this.once('close', (err: Error) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** Runs a command and resolves with its `return` value; rejects with QmpError on an error response or timeout. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = String(this.nextId++);
    const message = JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id });
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpError(`QMP command ${command} got no response within ${timeoutMs} ms`, 'Timeout'));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, command });
      this.socket.write(message + '\n');
    });
  }

  /** Waits for the next event named `name` that satisfies `predicate`. */
  waitEvent(name: string, predicate: (e: QmpEvent) => boolean = () => true, timeoutMs = 10_000): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const onEvent = (e: QmpEvent) => {
        if (e.event === name && predicate(e)) {
          cleanup();
          resolve(e);
        }
      };
      const onClose = (err: Error) => {
        cleanup();
        reject(err);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new QmpError(`no QMP event ${name} within ${timeoutMs} ms`, 'Timeout'));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('event', onEvent);
        this.off('close', onClose);
      };
      this.on('event', onEvent);
      this.on('close', onClose);
    });
  }

  get closed(): boolean {
    return this.closedError !== null;
  }

  close(): void {
    this.socket.destroy();
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      // QMP only ever sends JSON objects; ignore anything else rather than tearing the connection down.
      return;
    }
    if ('QMP' in msg) {
      this.greeting?.(msg);
      this.greeting = null;
      return;
    }
    if ('event' in msg) {
      this.emit('event', msg as unknown as QmpEvent);
      return;
    }
    const id = typeof msg.id === 'string' ? msg.id : undefined;
    const pending = id !== undefined ? this.pending.get(id) : undefined;
    if (!pending || id === undefined) return;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    if ('error' in msg) {
      const e = msg.error as { class?: string; desc?: string };
      pending.reject(new QmpError(`QMP ${pending.command}: ${e.desc ?? 'error'}`, e.class ?? 'GenericError'));
    } else {
      pending.resolve(msg.return);
    }
  }

  private onClose(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.emit('close', err);
  }
}

/**
 * Connects to a unix socket that a just-started process is about to create:
 * retries on ENOENT/ECONNREFUSED with a short back-off until the deadline.
 */
export async function connectUnix(path: string, timeoutMs: number, signal?: AbortSignal, onread?: net.OnReadOpts): Promise<net.Socket> {
  const deadline = Date.now() + timeoutMs;
  let delay = 2;
  for (;;) {
    signal?.throwIfAborted();
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const s = net.createConnection(onread ? { path, onread } : { path });
        s.once('connect', () => {
          s.removeAllListeners('error');
          resolve(s);
        });
        s.once('error', (err) => {
          s.destroy();
          reject(err);
        });
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || Date.now() + delay > deadline) {
        throw new Error(`cannot connect to ${path} within ${timeoutMs} ms: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10);
    }
  }
}
