// Renaming and moving `.mcl` files and folders (`workspace/willRenameFiles`)
// through the real server: imports and qualified names follow the module,
// program paths follow the moved file, and the server registers the filters.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TextEdit, WorkspaceEdit } from 'vscode-languageserver-protocol';
import { startClient, type Client } from './harness';
import { MAIN, TYPES } from './fixtures';

const MAIN2 = MAIN.replace('param greeting: string(max 16) = "hi"', 'param greeting: string(max 16) = "hi"\n  param o: shop.types.Order').replace(
  'component Db {\n',
  'component Db {\n  program { script "guest/db.sh" }\n',
);

let client: Client;
beforeAll(async () => {
  client = await startClient({ 'main.mcl': MAIN2, 'shop/types.mcl': TYPES, 'guest/db.sh': 'echo\n' });
  client.open('main.mcl', MAIN2);
  await client.waitForDiagnostics('main.mcl');
});
afterAll(() => client.close());

function apply(text: string, edits: TextEdit[]): string {
  const lines = text.split('\n');
  const offset = (p: { line: number; character: number }) => lines.slice(0, p.line).reduce((n, l) => n + l.length + 1, 0) + p.character;
  for (const e of [...edits].sort((a, b) => offset(b.range.start) - offset(a.range.start))) {
    text = text.slice(0, offset(e.range.start)) + e.newText + text.slice(offset(e.range.end));
  }
  return text;
}

const rename = (from: string, to: string) =>
  client.conn.sendRequest('workspace/willRenameFiles', { files: [{ oldUri: client.uri(from), newUri: client.uri(to) }] }) as Promise<WorkspaceEdit | null>;

describe('willRenameFiles', () => {
  it('rewrites imports and qualified names when a module moves', async () => {
    const edit = (await rename('shop/types.mcl', 'shop/model/types.mcl'))!;
    const out = apply(MAIN2, edit.changes![client.uri('main.mcl')]);
    expect(out).toContain('import shop.model.types.{Orders, Order}');
    expect(out).toContain('param o: shop.model.types.Order');
    expect(Object.keys(edit.changes!)).toEqual([client.uri('main.mcl')]);
  });

  it('follows a renamed folder', async () => {
    const edit = (await rename('shop', 'store'))!;
    expect(apply(MAIN2, edit.changes![client.uri('main.mcl')])).toContain('import store.types.{Orders, Order}');
  });

  it("keeps a moved file's program paths pointing at the same files", async () => {
    const edit = (await rename('main.mcl', 'sys/main.mcl'))!;
    const out = apply(MAIN2, edit.changes![client.uri('main.mcl')]);
    expect(out).toContain('script "../guest/db.sh"');
    expect(out).toContain('import shop.types.{Orders, Order}');
  });

  it('leaves imports alone when the new name cannot be a module path', async () => {
    expect(await rename('shop/types.mcl', 'shop/my-types.mcl')).toBeNull();
  });
});
