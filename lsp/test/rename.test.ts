// Rename across files, and the reasons given when a rename is refused.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkspaceEdit } from 'vscode-languageserver-protocol';
import { parseFixture, positionAt, startClient, type Client } from './harness';

const types = parseFixture(`type [|Ord$0er|] = { item: string }
protocol Orders { call place([|Order|]) }
`);
const main = parseFixture(`import shop.types.{Orders, [|Order|]}
import std.http.{Ht$1tp}

component Web {
  provide api: Http
  require orders: Orders
  param [|limit|]: int = 1
}
component App { provide orders: Orders }
$2component Other { param x: int = 1 }

system Shop {
  web = Web { [|li$3mit|] = 2 }
  app = App
  connect web.orders -> app.orders
}
`);

let client: Client;
beforeAll(async () => {
  client = await startClient({ 'shop/types.mcl': types.text, 'main.mcl': main.text });
  client.open('main.mcl', main.text);
  await client.waitForDiagnostics('main.mcl');
});
afterAll(() => client.close());

function renameAt(path: string, text: string, offset: number, newName: string): Promise<WorkspaceEdit> {
  return client.conn.sendRequest('textDocument/rename', { textDocument: { uri: client.uri(path) }, position: positionAt(text, offset), newName });
}

describe('rename', () => {
  it('renames a type in its module and in every importer', async () => {
    const edit = await renameAt('shop/types.mcl', types.text, types.cursors[0], 'Purchase');
    const byPos = (a: { start: { line: number; character: number } }, b: { start: { line: number; character: number } }) =>
      a.start.line - b.start.line || a.start.character - b.start.character;
    const inTypes = edit.changes![client.uri('shop/types.mcl')].map((e) => e.range).sort(byPos);
    const inMain = edit.changes![client.uri('main.mcl')].map((e) => e.range);
    expect(inTypes).toEqual(types.ranges.map((r) => ({ start: positionAt(types.text, r.start), end: positionAt(types.text, r.end) })));
    expect(inMain).toEqual([{ start: positionAt(main.text, main.ranges[0].start), end: positionAt(main.text, main.ranges[0].end) }]);
    for (const e of [...edit.changes![client.uri('shop/types.mcl')], ...edit.changes![client.uri('main.mcl')]]) expect(e.newText).toBe('Purchase');
  });

  it('renames a parameter and its overrides', async () => {
    const edit = await renameAt('main.mcl', main.text, main.cursors[3], 'max_items');
    const ranges = edit.changes![client.uri('main.mcl')].map((e) => e.range).sort((a, b) => a.start.line - b.start.line);
    expect(ranges).toEqual(main.ranges.slice(1).map((r) => ({ start: positionAt(main.text, r.start), end: positionAt(main.text, r.end) })));
  });

  it('refuses standard library symbols with a reason', async () => {
    await expect(
      client.conn.sendRequest('textDocument/prepareRename', { textDocument: { uri: client.uri('main.mcl') }, position: positionAt(main.text, main.cursors[1]) }),
    ).rejects.toThrow(/standard library/);
  });

  it('refuses keywords with a reason', async () => {
    await expect(
      client.conn.sendRequest('textDocument/prepareRename', {
        textDocument: { uri: client.uri('main.mcl') },
        position: positionAt(main.text, main.cursors[2] + 3),
      }),
    ).rejects.toThrow(/keyword/);
  });

  it('refuses a name that clashes with another declaration', async () => {
    await expect(renameAt('shop/types.mcl', types.text, types.cursors[0], 'Orders')).rejects.toThrow(/already declared/);
  });

  it('refuses a reserved word or an invalid name', async () => {
    await expect(renameAt('shop/types.mcl', types.text, types.cursors[0], 'component')).rejects.toThrow(/reserved/);
    await expect(renameAt('shop/types.mcl', types.text, types.cursors[0], '9lives')).rejects.toThrow(/not a valid name/);
  });
});
