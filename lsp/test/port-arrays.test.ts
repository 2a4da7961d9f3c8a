// The editor knows port arrays: hover on an element names the array and its
// length, completion after `r.` offers the array, the semantic tokens cover
// the element index, and a source with a fan-out has no diagnostics.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CompletionItem, CompletionList, Hover, SemanticTokens } from 'vscode-languageserver-protocol';
import { parseFixture, positionAt, startClient, type Client } from './harness';

const STORE = `protocol Kv { call get(string) -> string }
component Router { require shards: Kv[2] }
component Shard { provide kv: Kv }
system Store {
  r = Router
  a = Shard
  b = Shard
  connect r.shards[*] -> [a.kv, b.kv]
}
`;

let client: Client;
beforeAll(async () => {
  client = await startClient({ 'store.mcl': STORE });
  client.open('store.mcl', STORE);
  await client.waitForDiagnostics('store.mcl');
});
afterAll(() => client.close());

describe('port arrays in the editor', () => {
  it('hover on an element names the array and its length', async () => {
    const h = (await client.conn.sendRequest('textDocument/hover', {
      textDocument: { uri: client.uri('store.mcl') },
      position: positionAt(STORE, STORE.indexOf('shards[*]') + 1),
    })) as Hover | null;
    expect((h?.contents as { value: string }).value).toContain('require shards: store.Kv[2]');
  });

  it('offers the array after `r.` in a connect', async () => {
    const f = parseFixture(`${STORE}system T {\n  r = Router\n  connect r.$0\n}`);
    client.open('edit.mcl', f.text);
    const r = (await client.conn.sendRequest('textDocument/completion', {
      textDocument: { uri: client.uri('edit.mcl') },
      position: positionAt(f.text, f.cursors[0]),
    })) as CompletionList | CompletionItem[] | null;
    expect((Array.isArray(r) ? r : (r?.items ?? [])).map((i) => i.label)).toContain('shards');
  });

  it('gives the fan-out semantic tokens', async () => {
    const t = (await client.conn.sendRequest('textDocument/semanticTokens/full', { textDocument: { uri: client.uri('store.mcl') } })) as SemanticTokens;
    // Every token is on a line and column of the text; the fan-out line has tokens for its ports.
    const line = STORE.split('\n').findIndex((l) => l.includes('[*]'));
    let at = 0;
    const lines: number[] = [];
    for (let i = 0; i < t.data.length; i += 5) lines.push((at += t.data[i]));
    expect(lines.filter((l) => l === line).length).toBeGreaterThanOrEqual(5);
  });
});
