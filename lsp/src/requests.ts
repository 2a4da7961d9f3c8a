// How a request reaches a feature. Every request the server answers is one
// entry of the table in handlers.ts: the request type (its method, params and
// result), what `initialize` announces for it, and a function of the params
// and a context. What every request needs is written here once, as Langium's
// `createRequestHandler` does: the server must be initialized, the document
// must be one the server analyses (inside the workspace or the standard
// library, within the size limit) or the request gets the entry's empty
// answer, a cancelled request answers with the protocol's RequestCancelled
// error instead of stale results, and a failure is logged and answered with
// InternalError rather than left to the connection library.

import {
  ErrorCodes,
  LSPErrorCodes,
  ResponseError,
  type CancellationToken,
  type Connection,
  type RequestType,
  type ServerCapabilities,
  type TextDocumentIdentifier,
} from 'vscode-languageserver';
import { RequestCancelled, type ParsedDocument, type Snapshot } from './analysis';
import type { ServerContext } from './service';

/** What a handler of a request gets besides its params. */
export interface RequestContext {
  readonly server: ServerContext;
  readonly token: CancellationToken;
  /** Writes to the server's log (the client's output channel). */
  readonly log: (message: string) => void;
  /** A checked snapshot that includes every edit made so far; rejects (answering RequestCancelled) when the request is cancelled. */
  checked(): Promise<Snapshot>;
}

/** What a handler of a request about one document gets. */
export interface DocumentContext extends RequestContext {
  /** The compiler's name of the request's document (`shop/types.mcl`, `std:http`). */
  readonly file: string;
  /** The document's URI as the client sent it. */
  readonly uri: string;
  /** The document parsed as it is now (no waiting for a build). */
  parsed(): ParsedDocument | undefined;
}

/** One entry of the table: a request, its capability and its handler with the shared handling around it. */
export interface Handler {
  readonly method: string;
  /** Merged into `initialize`'s capabilities. */
  readonly capability: ServerCapabilities;
  register(connection: Connection, server: () => ServerContext, log: (message: string) => void): void;
}

type Result<R> = R | Promise<R>;

/**
 * A request about one document. `none` answers it when the document is not
 * one the server analyses: outside the workspace and the standard library,
 * or over the size limit (such a file is analysed as empty).
 */
export function documentRequest<P extends { textDocument: TextDocumentIdentifier }, R>(
  type: RequestType<P, R, unknown>,
  capability: ServerCapabilities,
  none: R,
  handle: (params: P, c: DocumentContext) => Result<R>,
): Handler {
  return {
    method: type.method,
    capability,
    register(connection, server, log) {
      connection.onRequest(type, (params: P, token: CancellationToken) => {
        const s = server();
        const uri = params.textDocument.uri;
        const file = s.paths.fromUri(uri);
        if (!file || s.workspace.tooLargeSize(file) !== undefined) return none;
        const c: DocumentContext = { ...context(s, token, log), file, uri, parsed: () => s.analyzer.parsedDocument(file) };
        return guarded(type.method, file, token, log, () => handle(params, c));
      });
    },
  };
}

/** A request about the workspace rather than one document (workspace symbols, file operations, custom requests). */
export function workspaceRequest<P, R>(
  type: RequestType<P, R, unknown>,
  capability: ServerCapabilities,
  handle: (params: P, c: RequestContext) => Result<R>,
): Handler {
  return {
    method: type.method,
    capability,
    register(connection, server, log) {
      // Registered by name, so a request sent without params (`mcl/stats`) is
      // served too: the connection then passes the cancellation token alone.
      connection.onRequest(type.method, (...args: unknown[]) => {
        const token = args[args.length - 1] as CancellationToken;
        const params = (args.length > 1 ? args[0] : undefined) as P;
        const c = context(server(), token, log);
        return guarded(type.method, undefined, token, log, () => handle(params, c));
      });
    },
  };
}

function context(server: ServerContext, token: CancellationToken, log: (message: string) => void): RequestContext {
  return {
    server,
    token,
    log,
    async checked() {
      const s = await server.analyzer.checked(token);
      if (token.isCancellationRequested) throw new RequestCancelled();
      return s;
    },
  };
}

/** Runs a handler: cancellation becomes RequestCancelled, a failure is logged and becomes InternalError. */
async function guarded<R>(method: string, file: string | undefined, token: CancellationToken, log: (message: string) => void, run: () => Result<R>): Promise<R> {
  try {
    if (token.isCancellationRequested) throw new RequestCancelled();
    return await run();
  } catch (e) {
    if (e instanceof RequestCancelled) throw new ResponseError(LSPErrorCodes.RequestCancelled, 'cancelled');
    if (e instanceof ResponseError) throw e;
    // Bad sources never make a feature throw, so this is a bug in the server:
    // it is logged with its stack and the client is told, not left waiting.
    const where = file ? ` on ${file}` : '';
    log(`mcl: ${method} failed${where}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    throw new ResponseError(ErrorCodes.InternalError, `mcl: ${method} failed${where} (a bug, please report it): ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  }
}

/** `base` with the capabilities of every entry merged in (nested objects such as `workspace` are merged too). */
export function capabilitiesOf(handlers: readonly Handler[], base: ServerCapabilities = {}): ServerCapabilities {
  const merged: Record<string, unknown> = {};
  for (const c of [base, ...handlers.map((h) => h.capability)]) mergeInto(merged, c as Record<string, unknown>);
  return merged as ServerCapabilities;
}

function mergeInto(into: Record<string, unknown>, from: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(from)) {
    const have = into[k];
    if (isPlainObject(have) && isPlainObject(v)) mergeInto(have, v);
    else into[k] = isPlainObject(v) ? structuredClone(v) : v;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
