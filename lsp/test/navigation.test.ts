// Hover, go to definition (also into the standard library) and find references.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { Hover, Location } from 'vscode-languageserver-protocol';
import { positionAt, startClient, STDLIB, type Client } from './harness';
import { at, MAIN, SHOP_FILES, TYPES } from './fixtures';

let client: Client;

beforeAll(async () => {
  client = await startClient(SHOP_FILES);
  client.open('main.mcl', MAIN);
  await client.waitForDiagnostics('main.mcl');
});
afterAll(() => client.close());

function hoverAt(offset: number): Promise<Hover | null> {
  return client.conn.sendRequest('textDocument/hover', { textDocument: { uri: client.uri('main.mcl') }, position: positionAt(MAIN, offset) });
}

describe('hover', () => {
  it('shows a protocol with its operations and documentation', async () => {
    const h = await hoverAt(at(MAIN, 'Orders', 2, 1));
    const text = (h?.contents as { value: string }).value;
    expect(text).toMatch(/protocol (shop\.types\.)?Orders/);
    expect(text).toContain('place');
    expect(text).toContain('cancel');
    expect(text).toContain('Placing and cancelling orders.');
  });

  it('shows the resolved parameter values of an instance', async () => {
    const h = await hoverAt(at(MAIN, 'app = App', 1));
    const text = (h?.contents as { value: string }).value;
    expect(text).toMatch(/max_quantity = 5` \(set here\)/);
    expect(text).toMatch(/greeting = "hi"` \(default\)/);
    expect(text).toContain('256MiB');
  });

  it('shows the resolved channel, defaults included, over a connect', async () => {
    const h = await hoverAt(at(MAIN, 'connect web.orders', 2));
    const text = (h?.contents as { value: string }).value;
    expect(text).toContain('channel web.orders->app.orders');
    expect(text).toContain('allow place');
    expect(text).toContain('max_message 1MiB');
    expect(text).toContain('timeout 30s');
    expect(text).toContain('max_inflight 64');
    expect(text).toContain('rate unlimited');
  });

  it('lists what a module declares on its import', async () => {
    const h = await hoverAt(at(MAIN, 'std.http', 5));
    const text = (h?.contents as { value: string }).value;
    expect(text).toContain('module std.http');
    expect(text).toContain('protocol `Http`');
    expect(text).toContain('type `Request`');
  });

  it('shows a parameter with its doc comment', async () => {
    const h = await hoverAt(at(MAIN, 'max_quantity = 5', 2));
    const text = (h?.contents as { value: string }).value;
    expect(text).toContain('max_quantity');
    expect(text).toContain('Largest quantity accepted.');
  });
});

describe('definition', () => {
  it('goes from a use to the declaration in another module', async () => {
    const locs = (await client.conn.sendRequest('textDocument/definition', {
      textDocument: { uri: client.uri('main.mcl') },
      position: positionAt(MAIN, at(MAIN, 'require orders: Orders', 18)),
    })) as Location[];
    expect(locs).toHaveLength(1);
    expect(locs[0].uri).toBe(client.uri('shop/types.mcl'));
    expect(locs[0].range.start).toEqual(positionAt(TYPES, at(TYPES, 'protocol Orders', 9)));
  });

  it('goes into the standard library file', async () => {
    const locs = (await client.conn.sendRequest('textDocument/definition', {
      textDocument: { uri: client.uri('main.mcl') },
      position: positionAt(MAIN, at(MAIN, 'http: Http', 7)),
    })) as Location[];
    expect(locs).toHaveLength(1);
    expect(locs[0].uri).toBe(pathToFileURL(join(STDLIB, 'http.mcl')).href);
    // Inside the stdlib file, names resolve too.
    const http = readFileSync(join(STDLIB, 'http.mcl'), 'utf8');
    const h = (await client.conn.sendRequest('textDocument/hover', {
      textDocument: { uri: locs[0].uri },
      position: positionAt(http, http.indexOf('call request(Request)') + 15),
    })) as Hover;
    expect((h.contents as { value: string }).value).toContain('type Request = {');
    expect((h.contents as { value: string }).value).toContain('in `std.http`');
  });

  it('goes from a port reference in a connect to the port declaration', async () => {
    const locs = (await client.conn.sendRequest('textDocument/definition', {
      textDocument: { uri: client.uri('main.mcl') },
      position: positionAt(MAIN, at(MAIN, 'app.db -> db.kv', 5)),
    })) as Location[];
    expect(locs[0].range.start).toEqual(positionAt(MAIN, at(MAIN, 'require db: Kv', 8)));
  });
});

describe('references', () => {
  it('finds every use of a type across files', async () => {
    const locs = (await client.conn.sendRequest('textDocument/references', {
      textDocument: { uri: client.uri('shop/types.mcl') },
      position: positionAt(TYPES, at(TYPES, 'type Order', 6)),
      context: { includeDeclaration: true },
    })) as Location[];
    const where = locs.map((l) => `${l.uri.endsWith('main.mcl') ? 'main' : 'types'}:${l.range.start.line}`).sort();
    // The declaration, its use in `place(Order)`, and the import in main.mcl.
    expect(where).toEqual(['main:2', 'types:1', 'types:13']);
  });

  it('leaves out the declaration when asked', async () => {
    const locs = (await client.conn.sendRequest('textDocument/references', {
      textDocument: { uri: client.uri('main.mcl') },
      position: positionAt(MAIN, at(MAIN, 'db = Db', 0)),
      context: { includeDeclaration: false },
    })) as Location[];
    // `connect app.db -> db.kv` and `db only from app`.
    expect(locs.map((l) => l.range.start.line).sort((a, b) => a - b)).toEqual([30, 32]);
  });
});

describe('document highlight', () => {
  it('marks the declaration and every use of an instance in the file', async () => {
    const hl = (await client.conn.sendRequest('textDocument/documentHighlight', {
      textDocument: { uri: client.uri('main.mcl') },
      position: positionAt(MAIN, at(MAIN, 'db = Db', 0)),
    })) as { range: { start: { line: number } }; kind: number }[];
    expect(hl.map((h) => `${h.range.start.line}:${h.kind}`).sort()).toEqual(['28:3', '30:2', '32:2']);
  });
});

describe('incremental edits', () => {
  it('applies ranged changes and answers against the edited text', async () => {
    // Rename the instance `web` to `front` in its declaration only, with a ranged change.
    const line = 26;
    await client.conn.sendNotification('textDocument/didChange', {
      textDocument: { uri: client.uri('main.mcl'), version: 50 },
      contentChanges: [{ range: { start: { line, character: 2 }, end: { line, character: 5 } }, text: 'front' }],
    });
    const ds = await client.waitForDiagnostics('main.mcl', (d) => d.some((x) => /web/.test(typeof x.message === 'string' ? x.message : x.message.value)));
    expect(ds.some((d) => d.severity === 1)).toBe(true);
    const h = (await client.conn.sendRequest('textDocument/hover', {
      textDocument: { uri: client.uri('main.mcl') },
      position: { line, character: 4 },
    })) as Hover;
    expect((h.contents as { value: string }).value).toContain('front');
    // Put it back.
    await client.conn.sendNotification('textDocument/didChange', {
      textDocument: { uri: client.uri('main.mcl'), version: 51 },
      contentChanges: [{ range: { start: { line, character: 2 }, end: { line, character: 7 } }, text: 'web' }],
    });
    await client.waitForDiagnostics('main.mcl', (d) => d.every((x) => x.severity !== 1));
  });
});
