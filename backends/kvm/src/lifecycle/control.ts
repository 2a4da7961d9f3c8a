// The supervisor's control socket: one request per connection, JSON lines.
//
// The client writes one request object; the supervisor answers with any
// number of `{"event": ...}` lines (progress of an apply or destroy) and ends
// with exactly one `{"result": ...}` or `{"error": {kind, message, hint}}`.
// A client that goes away (Ctrl-C, SIGKILL) does not stop the work: the
// supervisor finishes it, and the next apply finds it done.

import net from 'node:net';
import { LineSplitter } from '@mcl/broker/lines';
import { MAX_STATE_BYTES } from '@mcl/plan/state-store';
import { BackendFailure, type BackendErrorKind } from './errors';
import type { BackendEvent } from './events';

export type ControlRequest =
  | { op: 'ping' }
  | { op: 'apply'; plan: unknown; replace: string[]; readyTimeoutMs: number; who?: unknown; metrics?: string }
  | { op: 'destroy'; who?: unknown }
  | { op: 'status' }
  | { op: 'logs'; instance: string }
  | { op: 'checkpoint'; dir: string; instances: string[] }
  | { op: 'restore'; dir: string; readyTimeoutMs: number }
  /** On the destination of a move: keep an incoming clone (kept.ts). */
  | ({ op: 'keep' } & import('./kept').KeepRequest)
  /** On the clone's home host: move it to the destination that keeps it (migrate-out.ts). */
  | ({ op: 'migrate'; who?: unknown } & import('./migrate-out').MigrateRequest);

export type ControlReply = { event: BackendEvent } | { result: unknown } | { error: { kind: BackendErrorKind; message: string; hint?: string } };

export type ControlHandler = (req: ControlRequest, emit: (e: BackendEvent) => void) => Promise<unknown>;

/**
 * Largest line on the control socket in bytes, either way. The largest message
 * is an apply request, which carries a plan, or a status reply, which carries
 * what the state holds; a state is at most MAX_STATE_BYTES, so neither is
 * longer. A longer line ends the connection instead of growing a buffer.
 */
export const CONTROL_SOCKET_MAX_LINE_BYTES = MAX_STATE_BYTES;

export function serveControl(path: string, handler: ControlHandler, log: (s: string) => void, maxLineBytes = CONTROL_SOCKET_MAX_LINE_BYTES): net.Server {
  const server = net.createServer((sock) => {
    let handled = false;
    const send = (m: ControlReply) => {
      if (!sock.destroyed) sock.write(JSON.stringify(m) + '\n');
    };
    const lines = new LineSplitter(maxLineBytes, {
      line: (text) => {
        if (!handled) {
          handled = true;
          handle(text);
        }
      },
      oversize: (bytes) => {
        if (handled) return;
        handled = true;
        send({ error: { kind: 'failure', message: `control request of more than ${maxLineBytes} bytes (${bytes} without a newline)` } });
        // Nothing more is read: the connection closes once the answer is written.
        sock.end(() => sock.destroy());
      },
    });
    sock.on('error', () => undefined);
    // One request per connection: what follows it is not read into memory.
    sock.on('data', (chunk: Buffer) => {
      if (!handled) lines.push(chunk);
    });
    const handle = (text: string) => {
      let req: ControlRequest;
      try {
        req = JSON.parse(text) as ControlRequest;
      } catch {
        send({ error: { kind: 'failure', message: 'malformed control request' } });
        sock.end();
        return;
      }
      handler(req, (event) => send({ event }))
        .then((result) => send({ result: result ?? null }))
        .catch((e: unknown) => {
          const err = e as Partial<BackendFailure> & Error;
          if (!(e instanceof BackendFailure)) log(`control ${req.op} failed: ${err?.stack ?? String(e)}`);
          send({ error: { kind: (err.kind as BackendErrorKind) ?? 'failure', message: err.message ?? String(e), ...(err.hint ? { hint: err.hint } : {}) } });
        })
        .finally(() => sock.end());
    };
  });
  server.listen(path);
  return server;
}

/** Sends one request and resolves with the result; events go to `onEvent`. Rejects with a BackendFailure for an error reply. */
export function callControl<T>(
  path: string,
  req: ControlRequest,
  onEvent: (e: BackendEvent) => void = () => undefined,
  signal?: AbortSignal,
  maxLineBytes = CONTROL_SOCKET_MAX_LINE_BYTES,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const sock = net.connect(path);
    let settled = false;
    const done = (f: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      sock.destroy();
      f();
    };
    const onAbort = () => done(() => reject(new BackendFailure('failure', 'interrupted; the supervisor finishes the work in progress', 'run the command again to see the result')));
    signal?.addEventListener('abort', onAbort);
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    const lines = new LineSplitter(maxLineBytes, {
      line: (text) => {
        if (settled) return;
        let m: ControlReply;
        try {
          m = JSON.parse(text) as ControlReply;
        } catch {
          return;
        }
        if ('event' in m) onEvent(m.event);
        else if ('result' in m) done(() => resolve(m.result as T));
        else if ('error' in m) done(() => reject(new BackendFailure(m.error.kind, m.error.message, m.error.hint)));
      },
      oversize: (bytes) =>
        done(() =>
          reject(
            new BackendFailure(
              'failure',
              `the supervisor sent a line of more than ${maxLineBytes} bytes (${bytes} without a newline); the connection was closed`,
              'see supervisor.log in the runtime directory',
            ),
          ),
        ),
    });
    sock.on('data', (chunk: Buffer) => lines.push(chunk));
    sock.on('error', (e) => done(() => reject(e)));
    sock.on('close', () => done(() => reject(new BackendFailure('failure', 'the supervisor closed the connection without an answer', 'see supervisor.log in the runtime directory'))));
  });
}
