// The supervisor's control socket: one request per connection, JSON lines.
//
// The client writes one request object; the supervisor answers with any
// number of `{"event": ...}` lines (progress of an apply or destroy) and ends
// with exactly one `{"result": ...}` or `{"error": {kind, message, hint}}`.
// A client that goes away (Ctrl-C, SIGKILL) does not stop the work: the
// supervisor finishes it, and the next apply finds it done.

import net from 'node:net';
import { BackendFailure, type BackendErrorKind } from './errors';
import type { BackendEvent } from './events';

export type ControlRequest =
  | { op: 'ping' }
  | { op: 'apply'; plan: unknown; replace: string[]; readyTimeoutMs: number }
  | { op: 'destroy' }
  | { op: 'status' }
  | { op: 'logs'; instance: string };

export type ControlReply = { event: BackendEvent } | { result: unknown } | { error: { kind: BackendErrorKind; message: string; hint?: string } };

export type ControlHandler = (req: ControlRequest, emit: (e: BackendEvent) => void) => Promise<unknown>;

export function serveControl(path: string, handler: ControlHandler, log: (s: string) => void): net.Server {
  const server = net.createServer((sock) => {
    let buf = '';
    let handled = false;
    const send = (m: ControlReply) => {
      if (!sock.destroyed) sock.write(JSON.stringify(m) + '\n');
    };
    sock.on('error', () => undefined);
    sock.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0 || handled) return;
      handled = true;
      let req: ControlRequest;
      try {
        req = JSON.parse(buf.slice(0, nl)) as ControlRequest;
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
    });
  });
  server.listen(path);
  return server;
}

/** Sends one request and resolves with the result; events go to `onEvent`. Rejects with a BackendFailure for an error reply. */
export function callControl<T>(path: string, req: ControlRequest, onEvent: (e: BackendEvent) => void = () => undefined, signal?: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const sock = net.connect(path);
    let buf = '';
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
    sock.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let m: ControlReply;
        try {
          m = JSON.parse(line) as ControlReply;
        } catch {
          continue;
        }
        if ('event' in m) onEvent(m.event);
        else if ('result' in m) done(() => resolve(m.result as T));
        else if ('error' in m) done(() => reject(new BackendFailure(m.error.kind, m.error.message, m.error.hint)));
      }
    });
    sock.on('error', (e) => done(() => reject(e)));
    sock.on('close', () => done(() => reject(new BackendFailure('failure', 'the supervisor closed the connection without an answer', 'see supervisor.log in the runtime directory'))));
  });
}
