// The table of request handlers and the handling every request shares
// (requests.ts), driven without a server: a stand-in connection records what
// is registered and calls the handlers directly.

import { describe, expect, it } from 'vitest';
import { CancellationTokenSource, ErrorCodes, HoverRequest, LSPErrorCodes, RequestType, ResponseError, type Connection } from 'vscode-languageserver';
import { HANDLERS } from '../src/handlers';
import { capabilitiesOf, documentRequest, workspaceRequest, type Handler } from '../src/requests';
import type { ServerContext } from '../src/service';

type Registered = (...args: unknown[]) => unknown;

function serve(handler: Handler, server: Partial<ServerContext> = fakeServer()) {
  const registered = new Map<string, Registered>();
  const connection = { onRequest: (type: string | { method: string }, fn: Registered) => registered.set(typeof type === 'string' ? type : type.method, fn) };
  const logged: string[] = [];
  handler.register(connection as unknown as Connection, () => server as ServerContext, (m) => logged.push(m));
  return { call: registered.get(handler.method)!, logged };
}

function fakeServer(): Partial<ServerContext> {
  return {
    paths: { fromUri: (uri: string) => (uri.startsWith('file:///ws/') ? uri.slice('file:///ws/'.length) : undefined) } as ServerContext['paths'],
    workspace: { tooLargeSize: (file: string) => (file === 'big.mcl' ? 3e6 : undefined) } as ServerContext['workspace'],
    analyzer: { parsedDocument: () => undefined, checked: async () => ({ generation: 1 }) } as unknown as ServerContext['analyzer'],
  };
}

const hoverAt = (uri: string) => ({ textDocument: { uri }, position: { line: 0, character: 0 } });

describe('request handlers', () => {
  it('answers with the empty answer for documents outside the workspace or over the size limit, without calling the feature', async () => {
    let calls = 0;
    const { call } = serve(documentRequest(HoverRequest.type, {}, null, () => (calls++, { contents: 'x' })));
    const token = new CancellationTokenSource().token;
    expect(await call(hoverAt('file:///elsewhere/a.mcl'), token)).toBeNull();
    expect(await call(hoverAt('file:///ws/big.mcl'), token)).toBeNull();
    expect(calls).toBe(0);
    expect(await call(hoverAt('file:///ws/a.mcl'), token)).toEqual({ contents: 'x' });
  });

  it('gives the handler the compiler file name, the URI and a checked snapshot', async () => {
    const { call } = serve(documentRequest(HoverRequest.type, {}, null, async (_p, c) => ({ contents: `${c.file} ${c.uri} ${(await c.checked()).generation}` })));
    expect(await call(hoverAt('file:///ws/shop/a.mcl'), new CancellationTokenSource().token)).toEqual({ contents: 'shop/a.mcl file:///ws/shop/a.mcl 1' });
  });

  it('answers a cancelled request with RequestCancelled', async () => {
    const source = new CancellationTokenSource();
    const { call } = serve(documentRequest(HoverRequest.type, {}, null, async (_p, c) => (source.cancel(), await c.checked(), { contents: 'stale' })));
    await expect(call(hoverAt('file:///ws/a.mcl'), source.token)).rejects.toMatchObject({ code: LSPErrorCodes.RequestCancelled });
  });

  it('logs a failing handler and answers InternalError; a ResponseError goes through as it is', async () => {
    const failing = serve(documentRequest(HoverRequest.type, {}, null, () => {
      throw new Error('boom');
    }));
    const token = new CancellationTokenSource().token;
    const e = await (failing.call(hoverAt('file:///ws/a.mcl'), token) as Promise<unknown>).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ResponseError);
    expect((e as ResponseError<unknown>).code).toBe(ErrorCodes.InternalError);
    expect((e as ResponseError<unknown>).message).toMatch(/textDocument\/hover failed on a\.mcl .*boom/);
    expect(failing.logged.join('\n')).toMatch(/textDocument\/hover failed on a\.mcl: Error: boom/);
    const refusing = serve(documentRequest(HoverRequest.type, {}, null, () => {
      throw new ResponseError(ErrorCodes.InvalidParams, 'no');
    }));
    await expect(refusing.call(hoverAt('file:///ws/a.mcl'), token)).rejects.toMatchObject({ code: ErrorCodes.InvalidParams, message: 'no' });
    expect(refusing.logged).toEqual([]);
  });

  it('serves a workspace request sent with and without params', async () => {
    const { call } = serve(workspaceRequest(new RequestType<{ n: number } | undefined, number, void>('x/count'), {}, (p) => p?.n ?? 0));
    const token = new CancellationTokenSource().token;
    expect(await call(token)).toBe(0);
    expect(await call({ n: 3 }, token)).toBe(3);
  });

  it('merges the capabilities of the entries, nested objects included', () => {
    const a = workspaceRequest(new RequestType<void, void, void>('x/a'), { hoverProvider: true, workspace: { fileOperations: { willRename: { filters: [] } } } }, () => undefined);
    const b = workspaceRequest(new RequestType<void, void, void>('x/b'), { workspace: { workspaceFolders: { supported: true } } }, () => undefined);
    expect(capabilitiesOf([a, b], { definitionProvider: true })).toEqual({
      definitionProvider: true,
      hoverProvider: true,
      workspace: { fileOperations: { willRename: { filters: [] } }, workspaceFolders: { supported: true } },
    });
  });

  it('has one entry per method', () => {
    const methods = HANDLERS.map((h) => h.method);
    expect(new Set(methods).size).toBe(methods.length);
    expect(methods).toContain('textDocument/hover');
  });
});
