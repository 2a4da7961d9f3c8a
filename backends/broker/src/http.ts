// HTTP exposures: a host TCP port that speaks HTTP/1.1 and feeds a provided
// `std.http.Http` port with `request` calls.
//
// node:http parses the requests (a robust, well-tested parser); this file
// turns a parsed request into a `std.http.Request` message and a
// `std.http.Response` message back into an HTTP response.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MessageSchema, PlanExposure, PlanOperation } from '@mcl/plan';

export const HTTP_PROTOCOL = 'std.http.Http';

/** Whether a protocol name denotes std.http.Http (the compiler writes qualified names). */
export function isHttpProtocol(protocol: string): boolean {
  return protocol === HTTP_PROTOCOL;
}

/** The id under which an exposure appears in counters and violations. */
export function exposureId(e: Pick<PlanExposure, 'host_port' | 'instance' | 'port'>): string {
  return `tcp:${e.host_port}->${e.instance}.${e.port}`;
}

/** The operation of std.http.Http, used when the plan carries no channel of that protocol to copy it from. */
export const HTTP_OPS: PlanOperation[] = [{ name: 'request', kind: 'call', input: 'std.http.Request', output: 'std.http.Response' }];

const HEADER_NAME = "^[!#$%&'*+.^_`|~0-9a-z-]+$";
const headers: MessageSchema = {
  kind: 'map',
  key: { kind: 'string', min_len: 1, max_len: 128, pattern: HEADER_NAME },
  value: { kind: 'string', max_len: 8192 },
  max_entries: 64,
};

/** Mirrors stdlib/http.mcl, for plans that do not carry these schemas. */
export const HTTP_SCHEMAS: Record<string, MessageSchema> = {
  'std.http.Method': { kind: 'enum', members: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] },
  'std.http.Headers': headers,
  'std.http.Request': {
    kind: 'record',
    fields: [
      { name: 'method', optional: false, type: { kind: 'ref', name: 'std.http.Method' } },
      { name: 'path', optional: false, type: { kind: 'string', min_len: 1, max_len: 8192, pattern: '/.*' } },
      { name: 'headers', optional: false, type: { kind: 'ref', name: 'std.http.Headers' } },
      { name: 'body', optional: true, type: { kind: 'string', max_len: 1048576 } },
    ],
  },
  'std.http.Response': {
    kind: 'record',
    fields: [
      { name: 'status', optional: false, type: { kind: 'int', min: 100, max: 599 } },
      { name: 'headers', optional: false, type: { kind: 'ref', name: 'std.http.Headers' } },
      { name: 'body', optional: true, type: { kind: 'string', max_len: 1048576 } },
    ],
  },
};

/** Largest HTTP request body the exposure reads; the rest is refused with 413. */
export const HTTP_MAX_BODY = 1024 * 1024;

/** Reads a request's body up to `limit` bytes; resolves null when it is larger. */
export function readBody(req: IncomingMessage, limit: number): Promise<string | null> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let len = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      len += chunk.length;
      if (len > limit) {
        over = true;
        parts.length = 0;
        return;
      }
      parts.push(chunk);
    });
    req.on('end', () => resolve(over ? null : Buffer.concat(parts).toString('utf8')));
    req.on('error', () => resolve(null));
  });
}

/** Builds the `std.http.Request` message of a parsed request. */
export function toRequestMessage(req: IncomingMessage, body: string): Record<string, unknown> {
  const hs: Record<string, string> = {};
  // rawHeaders keeps repeated headers; node lower-cases `headers` but joins some differently, so join here.
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i].toLowerCase();
    const value = req.rawHeaders[i + 1];
    hs[name] = name in hs ? `${hs[name]}, ${value}` : value;
  }
  const msg: Record<string, unknown> = { method: req.method ?? '', path: req.url ?? '', headers: hs };
  if (body.length > 0) msg.body = body;
  return msg;
}

// Headers that node computes itself, or that describe the connection rather than the response.
const HOP_BY_HOP = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'trailer', 'te', 'proxy-connection']);

/** Writes a validated `std.http.Response` message. Returns false when node refuses its headers. */
export function writeResponseMessage(res: ServerResponse, msg: { status: number; headers: Record<string, string>; body?: string | null }): boolean {
  const body = typeof msg.body === 'string' ? msg.body : '';
  try {
    for (const [k, v] of Object.entries(msg.headers)) {
      if (!HOP_BY_HOP.has(k)) res.setHeader(k, v);
    }
    res.setHeader('content-length', Buffer.byteLength(body));
    res.writeHead(msg.status);
  } catch {
    return false;
  }
  res.end(body);
  return true;
}

/** A plain-text error response made by the broker itself. */
export function writeBrokerError(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = text.endsWith('\n') ? text : text + '\n';
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'x-mcl-broker': 'error' });
  res.end(body);
}
